/* fl_image: PNG and JPEG images decoded (libpng, libjpeg-turbo) and prepared as a base wants
 * them, the way torchvision prepares a PIL image: convert("RGB") or convert("L"), Resize of the
 * shorter side with PIL's bilinear filter, CenterCrop, ToTensor. Sizes are checked from the
 * header before any pixel buffer is allocated; the libraries' errors come back as codes. */
#ifndef FL_IMAGE_H
#define FL_IMAGE_H

#include "fl_arch.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest side and pixel count an image may claim (a decompression bomb is refused from its
 * header): 32768 per side, 2^26 pixels (an 8192 x 8192 photograph). */
#define FL_IMAGE_MAX_SIDE   32768
#define FL_IMAGE_MAX_PIXELS ((uint64_t)1 << 26)
/* Largest image file read, in bytes. */
#define FL_IMAGE_MAX_FILE ((size_t)256 << 20)

/* 8-bit pixels, interleaved, rows top to bottom: p[(y * w + x) * c + k]. */
struct fl_image {
    int w, h;   /* width and height in pixels */
    int c;      /* channels: 1 (grey) or 3 (RGB) */
    uint8_t *p; /* [h, w, c], malloc'd */
};

/* How images become a base's input features. A zero field means "as the files are". */
struct fl_image_target {
    int channels;    /* 1 (grey) or 3 (RGB); 0: each file's own (grey 1, colour 3) */
    int height;      /* input height and width after the crop; 0: the files' own size */
    int width;       /* (all files must then agree, after the resize) */
    int resize;      /* shorter side resized to this first (PIL bilinear); 0: not resized */
    float pixel_max; /* feature value of a full-intensity pixel: 1 (ToTensor's [0, 1]) or 255
                        (raw bytes, what IDX files hold); 0 means 255 */
    bool hwc;        /* features interleaved (HWC, a chain base's layout) instead of CHW */
};

/* Is buf the start of a PNG or a JPEG file? */
int fl_image_sniff(const uint8_t *buf, size_t len);
/* Decode PNG or JPEG bytes into *out (freed with fl_image_free): grey stays grey, colour,
 * palette and alpha images become RGB (alpha dropped, as PIL's convert("RGB")), 16-bit
 * samples keep their high byte. name names the source in messages. FL_EFORMAT for a file that
 * is not an image, is corrupt or truncated; FL_ERANGE for one claiming more than
 * FL_IMAGE_MAX_SIDE / FL_IMAGE_MAX_PIXELS (refused before allocating). *out zeroed on error. */
int fl_image_decode(const uint8_t *buf, size_t len, const char *name, struct fl_image *out);
/* Read and decode the file at path (at most FL_IMAGE_MAX_FILE bytes). */
int fl_image_read(const char *path, struct fl_image *out);
void fl_image_free(struct fl_image *img);

/* Convert to c channels in place: grey to RGB repeats the value, RGB to grey uses PIL's
 * convert("L"): L = (19595 R + 38470 G + 7471 B + 2^15) >> 16 (ITU-R 601-2). */
int fl_image_convert(struct fl_image *img, int c);
/* Resize to w x h with PIL's Image.resize(BILINEAR): a triangle filter whose support grows
 * with the reduction (antialiasing), 22-bit fixed-point weights, horizontal pass then
 * vertical, each rounded to 8 bits. */
int fl_image_resize(struct fl_image *img, int w, int h);
/* torchvision's Resize(size) for an int size: the shorter side becomes size, the longer
 * int(size * long / short); unchanged when the shorter side already is size. */
int fl_image_resize_shorter(struct fl_image *img, int size);
/* torchvision's CenterCrop((h, w)): offsets round((H - h) / 2) (half to even). FL_EMISMATCH
 * when the image is smaller than h x w. */
int fl_image_crop_center(struct fl_image *img, int w, int h);
/* Prepare img for a base: convert, resize, crop as target says, then write its
 * channels * height * width features to out in CHW order, scaled by target->pixel_max / 255.
 * Only the pixels the crop keeps are resampled (each is PIL's value whatever the crop); img
 * is not changed. name names the image in messages. With zero target fields, out must hold
 * img's own (converted, resized) size: fl_image_prepared_dims tells it. */
int fl_image_prepare(const struct fl_image *img, const struct fl_image_target *target,
                     const char *name, float *out, size_t out_len);
/* Channels, height and width img would have after fl_image_prepare's convert, resize, crop. */
void fl_image_prepared_dims(const struct fl_image *img, const struct fl_image_target *target,
                            int *c, int *h, int *w);

/* Buffers one thread reuses while it reads and prepares many images (the file's bytes, the
 * pixels, the resize's rows and weights, a JPEG decoder): no allocation per image once they
 * have grown. Not thread-safe: one per thread. */
typedef struct fl_image_work fl_image_work_t;
fl_image_work_t *fl_image_work_new(void);
void fl_image_work_destroy(fl_image_work_t **self_p);
/* fl_image_read with w's buffers: out's pixels belong to w and stay valid until w's next read
 * (never fl_image_free them). */
int fl_image_work_read(fl_image_work_t *w, const char *path, struct fl_image *out);
/* fl_image_prepare with w's buffers; the same features. */
int fl_image_work_prepare(fl_image_work_t *w, const struct fl_image *img,
                          const struct fl_image_target *target, const char *name, float *out,
                          size_t out_len);

/* Write img to path atomically: JPEG (at quality 1-100) when the name ends in .jpg or .jpeg,
 * else PNG. */
int fl_image_write(const char *path, const struct fl_image *img, int quality);

/* Do a and b prepare images alike (field by field: padding bytes are not compared)? */
bool fl_image_target_eq(const struct fl_image_target *a, const struct fl_image_target *b);
/* The target a base's input asks for: its channels and size (arch; a flat input, in_h and
 * in_w 1, leaves the files' own), the resize and pixel scale its file records (meta). */
void fl_image_target_for_base(struct fl_image_target *t, const struct fl_arch *arch,
                              const struct fl_base_meta *meta);

#endif
