/* fl_image_work: what one thread reuses from one image to the next while it reads and prepares
 * many (fl_image_work_t in fl_image.h): the file's bytes, the decoded pixels, the resize's
 * rows and weights, a JPEG decoder. Internal to fl_image.c and fl_image_prep.c. */
#ifndef FL_IMAGE_WORK_H
#define FL_IMAGE_WORK_H

#include <stddef.h>
#include <stdint.h>

/* One axis' resampling weights, as PIL's precompute_coeffs + normalize_coeffs_8bpc. */
struct fl_image_axis {
    int in, out; /* the sizes they resample between (0: none yet) */
    int ksize;   /* weights per output pixel */
    int *bounds; /* [out, 2]: first input pixel, number of input pixels */
    int32_t *k;  /* [out, ksize] fixed-point weights */
};

/* A growable byte buffer. */
struct fl_image_buf {
    uint8_t *p; /* malloc'd, cap bytes */
    size_t cap; /* bytes allocated */
};

struct fl_image_work {
    struct fl_image_buf file;    /* the file's bytes */
    struct fl_image_buf pix;     /* the decoded pixels */
    struct fl_image_buf conv;    /* the pixels converted to the target's channels */
    struct fl_image_buf tmp;     /* the horizontal pass' rows */
    struct fl_image_buf dst;     /* the resized, cropped pixels */
    struct fl_image_buf acc;     /* the vertical pass' int32 sums */
    struct fl_image_axis cx, cy; /* the last weights, kept while the sizes repeat */
    struct fl_image_jpeg *jpeg;  /* a JPEG decoder kept between files (NULL: none yet) */
};

/* Make b hold at least n bytes (contents not kept); 0 or FL_ENOMEM. */
int fl_image_buf_reserve(struct fl_image_buf *b, size_t n);
/* Free the resize's buffers and weights (fl_image_prep.c's part of the work). */
void fl_image_work_release_prep(struct fl_image_work *w);

#endif
