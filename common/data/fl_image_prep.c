/* fl_image_prep: the preparation half of fl_image (fl_image.h): PIL's convert("L"), PIL's
 * bilinear resize in its 22-bit fixed-point arithmetic (a pixel's three channels summed in
 * one SSE4.1 register where the compiler targets it: the same integer sums), torchvision's
 * CenterCrop and ToTensor. Pure computation on pixels in memory: no files, no libraries. */
#include "fl_error.h"
#include "fl_image.h"
#include "fl_mem.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE4_1__
#include <smmintrin.h>
#endif

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

bool fl_image_target_eq(const struct fl_image_target *a, const struct fl_image_target *b)
{
    return a->channels == b->channels && a->height == b->height && a->width == b->width &&
           a->resize == b->resize && a->pixel_max == b->pixel_max && a->hwc == b->hwc;
}

void fl_image_target_for_base(struct fl_image_target *t, const struct fl_arch *arch,
                              const struct fl_base_meta *meta)
{
    *t = (struct fl_image_target){.resize = meta->image_resize, .pixel_max = meta->pixel_max};
    if (arch->in_h > 1 || arch->in_w > 1) /* a flat input (an MLP's) leaves the files' own */
        t->channels = arch->in_c, t->height = arch->in_h, t->width = arch->in_w;
    t->hwc = !arch->graph && arch->nlayers > 0; /* a chain reads HxWxC */
}
