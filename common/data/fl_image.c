/* fl_image: decoding (libpng, libjpeg-turbo, both with their errors caught by setjmp/longjmp
 * instead of their default handlers, which print and exit) and PIL-exact preparation. */
#include "fl_image.h"
#include "fl_error.h"
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
#include <unistd.h>
#ifdef __SSE4_1__
#include <smmintrin.h>
#endif

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

static int s_jpeg_decode(const uint8_t *buf, size_t len, const char *name, struct fl_image *out)
{
    struct jpeg_decompress_struct ci;
    struct s_jerr err;
    struct fl_image img = {0};
    uint8_t *volatile pix = NULL;
    int rc = 0;
    ci.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = s_jpeg_error_exit;
    err.pub.emit_message = s_jpeg_emit;
    err.pub.output_message = s_jpeg_output;
    err.msg[0] = '\0';
    if (setjmp(err.jb)) {
        free(pix);
        rc = fl_fail(FL_EFORMAT, "%s: corrupt JPEG: %s", name, err.msg);
        jpeg_destroy_decompress(&ci);
        return rc;
    }
    jpeg_create_decompress(&ci);
    jpeg_mem_src(&ci, buf, (unsigned long)len);
    jpeg_read_header(&ci, TRUE);
    if ((rc = s_check_size(name, ci.image_width, ci.image_height)) != 0)
        goto out_destroy;
    if (ci.jpeg_color_space == JCS_CMYK || ci.jpeg_color_space == JCS_YCCK) {
        rc = fl_fail(FL_EFORMAT, "%s: CMYK JPEG: fedtl reads grey and colour JPEGs", name);
        goto out_destroy;
    }
    ci.out_color_space = ci.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&ci);
    img.w = (int)ci.output_width, img.h = (int)ci.output_height, img.c = ci.output_components;
    if (img.c != 1 && img.c != 3) {
        rc = fl_fail(FL_EFORMAT, "%s: JPEG with %d channels", name, img.c);
        goto out_destroy;
    }
    if (!(pix = malloc((size_t)img.w * (size_t)img.h * (size_t)img.c))) {
        rc = fl_fail(FL_ENOMEM, "%s: out of memory for %d x %d pixels", name, img.w, img.h);
        goto out_destroy;
    }
    while (ci.output_scanline < ci.output_height) {
        JSAMPROW row = pix + (size_t)ci.output_scanline * (size_t)img.w * (size_t)img.c;
        jpeg_read_scanlines(&ci, &row, 1);
    }
    jpeg_finish_decompress(&ci);
    img.p = pix;
    pix = NULL;
    *out = img;
out_destroy:
    free(pix);
    jpeg_destroy_decompress(&ci);
    return rc;
}

int fl_image_decode(const uint8_t *buf, size_t len, const char *name, struct fl_image *out)
{
    memset(out, 0, sizeof *out);
    switch (s_kind(buf, len)) {
    case S_PNG:
        return s_png_decode(buf, len, name, out);
    case S_JPEG:
        return s_jpeg_decode(buf, len, name, out);
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

/* ---- preparation ---- */

int fl_image_convert(struct fl_image *img, int c)
{
    if (c == img->c)
        return 0;
    if (c != 1 && c != 3)
        return fl_fail(FL_EINVAL, "image: cannot convert to %d channels", c);
    size_t n = (size_t)img->w * (size_t)img->h;
    uint8_t *q = malloc(n * (size_t)c);
    if (!q)
        return fl_fail(FL_ENOMEM, "image: out of memory");
    const uint8_t *p = img->p;
    if (c == 1)
        for (size_t i = 0; i < n; i++, p += 3)
            q[i] = (uint8_t)((p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16);
    else
        for (size_t i = 0; i < n; i++)
            q[3 * i] = q[3 * i + 1] = q[3 * i + 2] = p[i];
    free(img->p);
    img->p = q;
    img->c = c;
    return 0;
}

/* PIL's fixed-point precision for 8-bit resampling. */
#define S_PREC 22

/* One axis' resampling weights, as PIL's precompute_coeffs + normalize_coeffs_8bpc. */
struct s_coeffs {
    int ksize;   /* weights per output pixel */
    int *bounds; /* [out, 2]: first input pixel, number of input pixels */
    int32_t *k;  /* [out, ksize] fixed-point weights */
};

static double s_triangle(double x)
{
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

static int s_coeffs(int in_size, int out_size, struct s_coeffs *co)
{
    double scale = (double)in_size / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double *pre = malloc((size_t)ksize * sizeof *pre);
    co->ksize = ksize;
    co->bounds = fl_malloc_array((size_t)out_size * 2, sizeof *co->bounds);
    co->k = fl_malloc_array((size_t)out_size * (size_t)ksize, sizeof *co->k);
    if (!pre || !co->bounds || !co->k) {
        free(pre);
        return fl_fail(FL_ENOMEM, "image: out of memory for resampling");
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5), xmax;
        if (xmin < 0)
            xmin = 0;
        xmax = (int)(center + support + 0.5);
        if (xmax > in_size)
            xmax = in_size;
        xmax -= xmin;
        int x;
        for (x = 0; x < xmax; x++) {
            pre[x] = s_triangle((x + xmin - center + 0.5) * ss);
            ww += pre[x];
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0)
                pre[x] /= ww;
        for (; x < ksize; x++)
            pre[x] = 0;
        for (x = 0; x < ksize; x++)
            co->k[(size_t)xx * ksize + x] = (int32_t)(pre[x] < 0 ? -0.5 + pre[x] * (1 << S_PREC)
                                                                 : 0.5 + pre[x] * (1 << S_PREC));
        co->bounds[2 * xx] = xmin;
        co->bounds[2 * xx + 1] = xmax;
    }
    free(pre);
    return 0;
}

static uint8_t s_clip8(int32_t v)
{
    if (v >= (1 << S_PREC << 8))
        return 255;
    if (v <= 0)
        return 0;
    return (uint8_t)(v >> S_PREC);
}

/* One row's horizontal pass: out[w * c] from in, PIL's sums and rounding. */
static void s_resample_row(const uint8_t *in, int in_w, uint8_t *out, int w, int c,
                           const struct s_coeffs *cx)
{
    for (int xx = 0; xx < w; xx++) {
        const int32_t *k = cx->k + (size_t)xx * cx->ksize;
        int n = cx->bounds[2 * xx + 1];
        const uint8_t *p = in + (size_t)cx->bounds[2 * xx] * c;
        if (c == 3) {
#ifdef __SSE4_1__
            /* the three channels in one register (the same integer sums, so the same bytes) */
            __m128i acc = _mm_set1_epi32(1 << (S_PREC - 1));
            const uint8_t *last = in + (size_t)(in_w - 1) * 3; /* 4 bytes read past it: no */
            for (int x = 0; x < n; x++, p += 3) {
                int32_t px;
                if (p < last)
                    memcpy(&px, p, 4); /* the 4th byte lands in a lane never read */
                else
                    px = p[0] | p[1] << 8 | p[2] << 16;
                __m128i v = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(px));
                acc = _mm_add_epi32(acc, _mm_mullo_epi32(v, _mm_set1_epi32(k[x])));
            }
            /* >> 22 and saturation to 0..255: s_clip8 on each lane */
            __m128i b = _mm_srai_epi32(acc, S_PREC);
            b = _mm_packus_epi16(_mm_packs_epi32(b, b), b);
            uint32_t px3 = (uint32_t)_mm_cvtsi128_si32(b);
            if (xx + 1 < w)
                memcpy(out + 3 * xx, &px3, 4); /* the 4th byte is the next pixel's, written next */
            else
                out[3 * xx] = (uint8_t)px3, out[3 * xx + 1] = (uint8_t)(px3 >> 8),
                        out[3 * xx + 2] = (uint8_t)(px3 >> 16);
#else
            int32_t s0 = 1 << (S_PREC - 1), s1 = s0, s2 = s0;
            for (int x = 0; x < n; x++, p += 3) {
                s0 += p[0] * k[x];
                s1 += p[1] * k[x];
                s2 += p[2] * k[x];
            }
            out[3 * xx] = s_clip8(s0), out[3 * xx + 1] = s_clip8(s1), out[3 * xx + 2] = s_clip8(s2);
#endif
            continue;
        }
        for (int ch = 0; ch < c; ch++) {
            int32_t ss = 1 << (S_PREC - 1);
            for (int x = 0; x < n; x++)
                ss += p[x * c + ch] * k[x];
            out[(size_t)xx * c + ch] = s_clip8(ss);
        }
    }
}

int fl_image_resize(struct fl_image *img, int w, int h)
{
    if (w < 1 || h < 1 || (uint64_t)w * (uint64_t)h > FL_IMAGE_MAX_PIXELS)
        return fl_fail(FL_ERANGE, "image: cannot resize to %d x %d", w, h);
    if (w == img->w && h == img->h)
        return 0;
    struct s_coeffs cx = {0}, cy = {0};
    uint8_t *tmp = NULL, *dst = NULL;
    int c = img->c, rc;
    if ((rc = s_coeffs(img->w, w, &cx)) || (rc = s_coeffs(img->h, h, &cy)))
        goto out_free;
    /* Horizontal pass over the rows the vertical pass reads (PIL's ybox_first..ybox_last). */
    int y0 = cy.bounds[0], y1 = cy.bounds[2 * h - 2] + cy.bounds[2 * h - 1], th = y1 - y0;
    tmp = malloc((size_t)w * (size_t)th * (size_t)c);
    dst = malloc((size_t)w * (size_t)h * (size_t)c);
    if (!tmp || !dst) {
        rc = fl_fail(FL_ENOMEM, "image: out of memory for resampling");
        goto out_free;
    }
    for (int y = 0; y < th; y++)
        s_resample_row(img->p + (size_t)(y + y0) * img->w * c, img->w, tmp + (size_t)y * w * c, w,
                       c, &cx);
    int32_t *acc = fl_malloc_array((size_t)w * c, sizeof *acc);
    if (!acc) {
        rc = fl_fail(FL_ENOMEM, "image: out of memory for resampling");
        goto out_free;
    }
    for (int yy = 0; yy < h; yy++) { /* whole rows at a time: integer sums, PIL's values */
        const int32_t *k = cy.k + (size_t)yy * cy.ksize;
        int ymin = cy.bounds[2 * yy] - y0, n = cy.bounds[2 * yy + 1];
        size_t len = (size_t)w * c;
        for (size_t i = 0; i < len; i++)
            acc[i] = 1 << (S_PREC - 1);
        for (int y = 0; y < n; y++) {
            const uint8_t *src = tmp + (size_t)(y + ymin) * len;
            int32_t ky = k[y];
            for (size_t i = 0; i < len; i++)
                acc[i] += src[i] * ky;
        }
        size_t i = 0;
#ifdef __SSE4_1__
        for (; i + 8 <= len; i += 8) { /* >> 22 and saturation: s_clip8, 8 at a time */
            __m128i a = _mm_srai_epi32(_mm_loadu_si128((const __m128i *)(acc + i)), S_PREC);
            __m128i b = _mm_srai_epi32(_mm_loadu_si128((const __m128i *)(acc + i + 4)), S_PREC);
            __m128i px = _mm_packus_epi16(_mm_packs_epi32(a, b), _mm_setzero_si128());
            _mm_storel_epi64((__m128i *)(dst + (size_t)yy * len + i), px);
        }
#endif
        for (; i < len; i++)
            dst[(size_t)yy * len + i] = s_clip8(acc[i]);
    }
    free(acc);
    free(img->p);
    img->p = dst;
    img->w = w, img->h = h;
    dst = NULL;
out_free:
    free(cx.bounds);
    free(cx.k);
    free(cy.bounds);
    free(cy.k);
    free(tmp);
    free(dst);
    return rc;
}

/* The size torchvision's Resize(size) gives a w x h image. */
static void s_shorter_dims(int w, int h, int size, int *ow, int *oh)
{
    if (size <= 0 || (w <= h ? w : h) == size) {
        *ow = w, *oh = h;
    } else if (w <= h) {
        *ow = size, *oh = (int)((int64_t)size * h / w);
    } else {
        *oh = size, *ow = (int)((int64_t)size * w / h);
    }
}

int fl_image_resize_shorter(struct fl_image *img, int size)
{
    int w, h;
    s_shorter_dims(img->w, img->h, size, &w, &h);
    return fl_image_resize(img, w, h);
}

int fl_image_crop_center(struct fl_image *img, int w, int h)
{
    if (w == img->w && h == img->h)
        return 0;
    if (w > img->w || h > img->h)
        return fl_fail(FL_EMISMATCH, "image is %d x %d, smaller than the %d x %d crop", img->w,
                       img->h, w, h);
    int top = (int)nearbyint((img->h - h) / 2.0), left = (int)nearbyint((img->w - w) / 2.0);
    size_t c = (size_t)img->c;
    uint8_t *q = malloc((size_t)w * (size_t)h * c);
    if (!q)
        return fl_fail(FL_ENOMEM, "image: out of memory");
    for (int y = 0; y < h; y++)
        memcpy(q + (size_t)y * w * c, img->p + ((size_t)(y + top) * img->w + left) * c, w * c);
    free(img->p);
    img->p = q;
    img->w = w, img->h = h;
    return 0;
}

void fl_image_prepared_dims(const struct fl_image *img, const struct fl_image_target *t, int *c,
                            int *h, int *w)
{
    *c = t->channels ? t->channels : img->c;
    s_shorter_dims(img->w, img->h, t->resize, w, h);
    if (t->width && t->height)
        *w = t->width, *h = t->height;
}

int fl_image_prepare(struct fl_image *img, const struct fl_image_target *t, const char *name,
                     float *out, size_t out_len)
{
    int c, h, w, rc;
    fl_image_prepared_dims(img, t, &c, &h, &w);
    if ((size_t)c * h * w != out_len)
        return fl_fail(FL_EMISMATCH, "%s: is %d x %d x %d after preparation, %zu features expected",
                       name, c, h, w, out_len);
    if ((rc = fl_image_convert(img, c)) || (rc = fl_image_resize_shorter(img, t->resize)))
        return rc;
    if (w > img->w || h > img->h)
        return fl_fail(FL_EMISMATCH, "%s: is %d x %d, smaller than the base's %d x %d input%s",
                       name, img->w, img->h, w, h,
                       t->resize ? "" : " (record a --resize in the base)");
    if ((rc = fl_image_crop_center(img, w, h)))
        return rc;
    size_t plane = (size_t)w * h;
    bool raw = t->pixel_max == 0.0f || t->pixel_max == 255.0f;
    float scale = raw ? 1.0f : t->pixel_max;
    for (int ch = 0; ch < c; ch++)
        for (size_t i = 0; i < plane; i++) {
            float v = img->p[i * c + ch];
            out[t->hwc ? i * c + ch : ch * plane + i] = raw ? v : v / 255.0f * scale;
        }
    return 0;
}

void fl_image_target_for_base(struct fl_image_target *t, const struct fl_arch *arch,
                              const struct fl_base_meta *meta)
{
    *t = (struct fl_image_target){.resize = meta->image_resize, .pixel_max = meta->pixel_max};
    if (arch->in_h > 1 || arch->in_w > 1) /* a flat input (an MLP's) leaves the files' own */
        t->channels = arch->in_c, t->height = arch->in_h, t->width = arch->in_w;
    t->hwc = !arch->graph && arch->nlayers > 0; /* a chain reads HxWxC */
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
    err.pub.error_exit = s_jpeg_error_exit;
    err.pub.emit_message = s_jpeg_emit;
    err.pub.output_message = s_jpeg_output;
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
