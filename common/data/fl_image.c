/* fl_image: decoding and encoding (libpng, libjpeg-turbo, both with their errors caught by
 * setjmp/longjmp instead of their default handlers, which print and exit). The preparation
 * (PIL-exact conversion, resize, crop, scaling) is in fl_image_prep.c. */
#include "fl_image.h"
#include "fl_error.h"
#include "fl_image_work.h"
#include "fl_fs.h"
#include "fl_mem.h"

#include <jpeglib.h>
#include <errno.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static const uint8_t s_png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

enum { S_NOT_IMAGE, S_PNG, S_JPEG };

static int s_kind(const uint8_t *buf, size_t len)
{
    if (len >= 8 && memcmp(buf, s_png_sig, 8) == 0)
        return S_PNG;
    if (len >= 3 && buf[0] == 0xff && buf[1] == 0xd8 && buf[2] == 0xff)
        return S_JPEG;
    return S_NOT_IMAGE;
}

int fl_image_sniff(const uint8_t *buf, size_t len)
{
    return s_kind(buf, len) != S_NOT_IMAGE;
}

void fl_image_free(struct fl_image *img)
{
    if (!img)
        return;
    free(img->p);
    memset(img, 0, sizeof *img);
}

/* Refuse sizes before any pixel buffer exists. */
static int s_check_size(const char *name, uint64_t w, uint64_t h)
{
    if (w == 0 || h == 0)
        return fl_fail(FL_EFORMAT, "%s: image is %llu x %llu pixels", name, (unsigned long long)w,
                       (unsigned long long)h);
    if (w > FL_IMAGE_MAX_SIDE || h > FL_IMAGE_MAX_SIDE || w * h > FL_IMAGE_MAX_PIXELS)
        return fl_fail(FL_ERANGE,
                       "%s: image claims %llu x %llu pixels, more than fedtl decodes (%d per "
                       "side, %llu in all): refused as a possible decompression bomb",
                       name, (unsigned long long)w, (unsigned long long)h, FL_IMAGE_MAX_SIDE,
                       (unsigned long long)FL_IMAGE_MAX_PIXELS);
    return 0;
}

/* ---- PNG ---- */

/* State of one PNG decode, reachable from libpng's callbacks. */
struct s_png {
    const uint8_t *buf; /* the file */
    size_t len, pos;    /* its length, bytes consumed */
    char msg[160];      /* libpng's error message */
};

static void s_png_error(png_structp png, png_const_charp msg)
{
    struct s_png *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void s_png_warning(png_structp png, png_const_charp msg)
{
    (void)png, (void)msg; /* warnings (a bad ancillary chunk) do not stop a decode */
}

static void s_png_read(png_structp png, png_bytep out, size_t n)
{
    struct s_png *s = png_get_io_ptr(png);
    if (n > s->len - s->pos)
        png_error(png, "file is truncated");
    memcpy(out, s->buf + s->pos, n);
    s->pos += n;
}

static uint32_t s_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int s_png_decode(const uint8_t *buf, size_t len, const char *name, struct fl_image *out)
{
    /* The IHDR chunk must come first: its size is checked before libpng sees anything. */
    if (len < 33 || memcmp(buf + 12, "IHDR", 4) != 0)
        return fl_fail(FL_EFORMAT, "%s: PNG file is truncated or has no IHDR chunk", name);
    int rc = s_check_size(name, s_be32(buf + 16), s_be32(buf + 20));
    if (rc)
        return rc;
    struct s_png s = {.buf = buf, .len = len};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &s, s_png_error, s_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_bytep *volatile rows = NULL;
    uint8_t *volatile pix = NULL;
    struct fl_image img = {0};
    if (!info) {
        rc = fl_fail(FL_ENOMEM, "%s: out of memory for the PNG decoder", name);
        goto out_destroy;
    }
    if (setjmp(png_jmpbuf(png))) {
        free(pix);
        rc = fl_fail(FL_EFORMAT, "%s: corrupt PNG: %s", name, s.msg);
        goto out_destroy;
    }
    png_set_read_fn(png, &s, s_png_read);
    png_set_user_limits(png, FL_IMAGE_MAX_SIDE, FL_IMAGE_MAX_SIDE);
    png_set_chunk_malloc_max(png, 8u << 20);
    png_read_info(png, info);
    png_uint_32 w, h;
    int depth, color, interlace;
    png_get_IHDR(png, info, &w, &h, &depth, &color, &interlace, NULL, NULL);
    if (depth == 16)
        png_set_strip_16(png);
    if (color == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int c = png_get_channels(png, info);
    if ((c != 1 && c != 3) || png_get_rowbytes(png, info) != (size_t)w * (size_t)c)
        png_error(png, "unexpected pixel layout");
    img.w = (int)w, img.h = (int)h, img.c = c;
    pix = malloc((size_t)w * h * (size_t)c);
    rows = malloc(h * sizeof *rows);
    if (!pix || !rows) {
        free(pix);
        rc = fl_fail(FL_ENOMEM, "%s: out of memory for %u x %u pixels", name, w, h);
        goto out_destroy;
    }
    for (png_uint_32 y = 0; y < h; y++)
        rows[y] = pix + (size_t)y * w * (size_t)c;
    png_read_image(png, rows);
    img.p = pix;
    *out = img;
out_destroy:
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    return rc;
}

/* ---- JPEG ---- */

/* libjpeg's error manager with a way back: every error and every warning (a truncated file
 * only warns) jumps to the decode's setjmp. */
struct s_jerr {
    struct jpeg_error_mgr pub; /* libjpeg's part, first */
    jmp_buf jb;                /* where to go back to */
    char msg[JMSG_LENGTH_MAX]; /* the message */
};

static void s_jpeg_error_exit(j_common_ptr cinfo)
{
    struct s_jerr *e = (struct s_jerr *)cinfo->err;
    e->pub.format_message(cinfo, e->msg);
    longjmp(e->jb, 1);
}

static void s_jpeg_emit(j_common_ptr cinfo, int level)
{
    if (level < 0) /* a warning: corrupt or truncated data */
        s_jpeg_error_exit(cinfo);
}

static void s_jpeg_output(j_common_ptr cinfo)
{
    (void)cinfo;
}

/* A JPEG decoder: created once, aborted back to its start after each image. */
struct fl_image_jpeg {
    struct jpeg_decompress_struct ci; /* libjpeg's state */
    struct s_jerr err;                /* its error manager */
};

static void s_jpeg_errors(struct s_jerr *err)
{
    err->pub.error_exit = s_jpeg_error_exit;
    err->pub.emit_message = s_jpeg_emit;
    err->pub.output_message = s_jpeg_output;
    err->msg[0] = '\0';
}

static int s_jpeg_init(struct fl_image_jpeg *d)
{
    d->ci.err = jpeg_std_error(&d->err.pub);
    s_jpeg_errors(&d->err);
    if (setjmp(d->err.jb)) {
        jpeg_destroy_decompress(&d->ci);
        return fl_fail(FL_ENOMEM, "out of memory for the JPEG decoder: %s", d->err.msg);
    }
    jpeg_create_decompress(&d->ci);
    return 0;
}

/* Decode into keep's bytes (out's pixels then belong to keep) or, keep NULL, into pixels
 * malloc'd for out. d is ready for the next image whatever happens. */
static int s_jpeg_decode(struct fl_image_jpeg *d, const uint8_t *buf, size_t len, const char *name,
                         struct fl_image *out, struct fl_image_buf *keep)
{
    struct jpeg_decompress_struct *ci = &d->ci;
    struct fl_image img = {0};
    uint8_t *volatile pix = NULL;
    int rc = 0;
    d->err.msg[0] = '\0';
    if (setjmp(d->err.jb)) {
        if (!keep)
            free(pix);
        jpeg_abort_decompress(ci);
        return fl_fail(FL_EFORMAT, "%s: corrupt JPEG: %s", name, d->err.msg);
    }
    jpeg_mem_src(ci, buf, (unsigned long)len);
    jpeg_read_header(ci, TRUE);
    if ((rc = s_check_size(name, ci->image_width, ci->image_height)) != 0)
        goto out_abort;
    if (ci->jpeg_color_space == JCS_CMYK || ci->jpeg_color_space == JCS_YCCK) {
        rc = fl_fail(FL_EFORMAT, "%s: CMYK JPEG: fedtl reads grey and colour JPEGs", name);
        goto out_abort;
    }
    ci->out_color_space = ci->num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(ci);
    img.w = (int)ci->output_width, img.h = (int)ci->output_height, img.c = ci->output_components;
    if (img.c != 1 && img.c != 3) {
        rc = fl_fail(FL_EFORMAT, "%s: JPEG with %d channels", name, img.c);
        goto out_abort;
    }
    size_t stride = (size_t)img.w * (size_t)img.c, n = stride * (size_t)img.h;
    if (keep ? fl_image_buf_reserve(keep, n) != 0 : !(pix = malloc(n))) {
        rc = fl_fail(FL_ENOMEM, "%s: out of memory for %d x %d pixels", name, img.w, img.h);
        goto out_abort;
    }
    if (keep)
        pix = keep->p;
    while (ci->output_scanline < ci->output_height) {
        JSAMPROW rows[8];
        JDIMENSION left = ci->output_height - ci->output_scanline, k = left < 8 ? left : 8;
        for (JDIMENSION r = 0; r < k; r++)
            rows[r] = pix + ((size_t)ci->output_scanline + r) * stride;
        jpeg_read_scanlines(ci, rows, k);
    }
    jpeg_finish_decompress(ci);
    img.p = pix;
    *out = img;
    return 0;
out_abort:
    if (!keep)
        free(pix);
    jpeg_abort_decompress(ci);
    return rc;
}

int fl_image_decode(const uint8_t *buf, size_t len, const char *name, struct fl_image *out)
{
    memset(out, 0, sizeof *out);
    switch (s_kind(buf, len)) {
    case S_PNG:
        return s_png_decode(buf, len, name, out);
    case S_JPEG: {
        struct fl_image_jpeg d;
        int rc = s_jpeg_init(&d);
        if (rc)
            return rc;
        rc = s_jpeg_decode(&d, buf, len, name, out, NULL);
        jpeg_destroy_decompress(&d.ci);
        return rc;
    }
    default:
        return fl_fail(FL_EFORMAT, "%s: not an image (fedtl reads PNG and JPEG)", name);
    }
}

int fl_image_read(const char *path, struct fl_image *out)
{
    unsigned char *buf;
    size_t len;
    memset(out, 0, sizeof *out);
    int rc = fl_fs_read_file(path, FL_IMAGE_MAX_FILE, &buf, &len);
    if (rc)
        return rc;
    rc = fl_image_decode(buf, len, path, out);
    free(buf);
    return rc;
}

/* ---- reading many images with one thread's buffers ---- */

int fl_image_buf_reserve(struct fl_image_buf *b, size_t n)
{
    if (n <= b->cap)
        return 0;
    size_t cap = n < SIZE_MAX / 2 ? n + n / 2 : n; /* room for the next, slightly larger one */
    uint8_t *p = malloc(cap);
    if (!p)
        return FL_ENOMEM;
    free(b->p);
    b->p = p, b->cap = cap;
    return 0;
}

fl_image_work_t *fl_image_work_new(void)
{
    return calloc(1, sizeof(fl_image_work_t));
}

void fl_image_work_destroy(fl_image_work_t **self_p)
{
    fl_image_work_t *w = self_p ? *self_p : NULL;
    if (!w)
        return;
    if (w->jpeg) {
        jpeg_destroy_decompress(&w->jpeg->ci);
        free(w->jpeg);
    }
    free(w->file.p);
    free(w->pix.p);
    fl_image_work_release_prep(w);
    free(w);
    *self_p = NULL;
}

/* The whole file at path in b, in one read; *len its length. */
static int s_read_into(const char *path, struct fl_image_buf *b, size_t *len)
{
    int fd;
    struct stat st;
    int rc = fl_fs_open_regular(path, &fd, &st);
    if (rc)
        return rc;
    size_t n = (size_t)st.st_size;
    if (n > FL_IMAGE_MAX_FILE)
        rc = fl_fail(FL_ERANGE, "%s: %zu bytes, more than the %zu allowed", path, n,
                     FL_IMAGE_MAX_FILE);
    else if (fl_image_buf_reserve(b, n + 1) != 0)
        rc = fl_fail(FL_ENOMEM, "%s: out of memory", path);
    else if (fl_fs_read_fd(fd, b->p, n) != n)
        rc = fl_fail(FL_ETRUNC, "%s: short read", path);
    close(fd);
    *len = n;
    return rc;
}

int fl_image_work_read(fl_image_work_t *w, const char *path, struct fl_image *out)
{
    size_t len;
    memset(out, 0, sizeof *out);
    int rc = s_read_into(path, &w->file, &len);
    if (rc)
        return rc;
    switch (s_kind(w->file.p, len)) {
    case S_PNG:
        if ((rc = s_png_decode(w->file.p, len, path, out)) != 0)
            return rc;
        free(w->pix.p); /* the pixels libpng's decode allocated become w's */
        w->pix.p = out->p, w->pix.cap = (size_t)out->w * (size_t)out->h * (size_t)out->c;
        return 0;
    case S_JPEG:
        if (!w->jpeg) {
            if (!(w->jpeg = malloc(sizeof *w->jpeg)))
                return fl_fail(FL_ENOMEM, "out of memory for the JPEG decoder");
            if ((rc = s_jpeg_init(w->jpeg)) != 0) {
                free(w->jpeg);
                w->jpeg = NULL;
                return rc;
            }
        }
        return s_jpeg_decode(w->jpeg, w->file.p, len, path, out, &w->pix);
    default:
        return fl_fail(FL_EFORMAT, "%s: not an image (fedtl reads PNG and JPEG)", path);
    }
}

/* ---- encoding (for fedtl export-images, the tests and the benchmark) ---- */

static int s_write_png(FILE *f, const struct fl_image *img, const char *path)
{
    struct s_png s = {0};
    png_structp png =
        png_create_write_struct(PNG_LIBPNG_VER_STRING, &s, s_png_error, s_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    int rc = 0;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return fl_fail(FL_ENOMEM, "%s: out of memory for the PNG encoder", path);
    }
    if (setjmp(png_jmpbuf(png))) {
        rc = fl_fail(FL_EIO, "%s: cannot write PNG: %s", path, s.msg);
        goto out_destroy;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)img->w, (png_uint_32)img->h, 8,
                 img->c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < img->h; y++)
        png_write_row(png, img->p + (size_t)y * img->w * img->c);
    png_write_end(png, NULL);
out_destroy:
    png_destroy_write_struct(&png, &info);
    return rc;
}

static int s_write_jpeg(FILE *f, const struct fl_image *img, int quality, const char *path)
{
    struct jpeg_compress_struct ci;
    struct s_jerr err;
    ci.err = jpeg_std_error(&err.pub);
    s_jpeg_errors(&err);
    if (setjmp(err.jb)) {
        jpeg_destroy_compress(&ci);
        return fl_fail(FL_EIO, "%s: cannot write JPEG: %s", path, err.msg);
    }
    jpeg_create_compress(&ci);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = (JDIMENSION)img->w;
    ci.image_height = (JDIMENSION)img->h;
    ci.input_components = img->c;
    ci.in_color_space = img->c == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, quality, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = img->p + (size_t)ci.next_scanline * img->w * img->c;
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    return 0;
}

int fl_image_write(const char *path, const struct fl_image *img, int quality)
{
    const char *dot = strrchr(path, '.');
    bool jpeg = dot && (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0);
    if (img->c != 1 && img->c != 3)
        return fl_fail(FL_EINVAL, "%s: cannot write an image of %d channels", path, img->c);
    /* Written beside and renamed into place, without fsync: exports write thousands of files
     * and a crash leaves at worst a temporary file, never half an image under the name. */
    size_t len = strlen(path) + 5;
    char *tmp = malloc(len);
    if (!tmp)
        return fl_fail(FL_ENOMEM, "out of memory");
    snprintf(tmp, len, "%s.tmp", path);
    FILE *f = fopen(tmp, "wbx");
    int rc;
    if (!f) {
        rc = fl_fail(FL_EIO, "%s: %s", tmp, strerror(errno));
        goto out_free;
    }
    rc = jpeg ? s_write_jpeg(f, img, quality, path) : s_write_png(f, img, path);
    if (fclose(f) != 0 && rc == 0)
        rc = fl_fail(FL_EIO, "%s: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = fl_fail(FL_EIO, "%s: %s", path, strerror(errno));
    if (rc)
        unlink(tmp);
out_free:
    free(tmp);
    return rc;
}
