/* fl_image_prep: the preparation half of fl_image (fl_image.h): PIL's convert("L"), PIL's
 * bilinear resize in its 22-bit fixed-point arithmetic (a pixel's three channels summed in
 * one SSE4.1 register where the compiler targets it: the same integer sums), torchvision's
 * CenterCrop and ToTensor. Pure computation on pixels in memory: no files, no libraries. */
#include "fl_error.h"
#include "fl_image.h"
#include "fl_image_work.h"
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

static double s_triangle(double x)
{
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* The weights from in_size to out_size in *co, kept when co already holds them. */
static int s_coeffs(int in_size, int out_size, struct fl_image_axis *co)
{
    if (co->in == in_size && co->out == out_size)
        return 0;
    double scale = (double)in_size / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double *pre = malloc((size_t)ksize * sizeof *pre);
    free(co->bounds);
    free(co->k);
    co->in = co->out = 0;
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
    co->in = in_size, co->out = out_size;
    return 0;
}

static void s_axis_free(struct fl_image_axis *co)
{
    free(co->bounds);
    free(co->k);
    memset(co, 0, sizeof *co);
}

static uint8_t s_clip8(int32_t v)
{
    if (v >= (1 << S_PREC << 8))
        return 255;
    if (v <= 0)
        return 0;
    return (uint8_t)(v >> S_PREC);
}

/* One row's horizontal pass for output pixels x0 .. x0 + w - 1: out[w * c] from in, PIL's
 * sums and rounding. */
static void s_resample_row(const uint8_t *in, int in_w, uint8_t *out, int x0, int w, int c,
                           const struct fl_image_axis *cx)
{
    for (int o = 0; o < w; o++) {
        int xx = x0 + o;
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
            if (o + 1 < w)
                memcpy(out + 3 * o, &px3, 4); /* the 4th byte is the next pixel's, written next */
            else
                out[3 * o] = (uint8_t)px3, out[3 * o + 1] = (uint8_t)(px3 >> 8),
                        out[3 * o + 2] = (uint8_t)(px3 >> 16);
#else
            int32_t s0 = 1 << (S_PREC - 1), s1 = s0, s2 = s0;
            for (int x = 0; x < n; x++, p += 3) {
                s0 += p[0] * k[x];
                s1 += p[1] * k[x];
                s2 += p[2] * k[x];
            }
            out[3 * o] = s_clip8(s0), out[3 * o + 1] = s_clip8(s1), out[3 * o + 2] = s_clip8(s2);
#endif
            continue;
        }
        for (int ch = 0; ch < c; ch++) {
            int32_t ss = 1 << (S_PREC - 1);
            for (int x = 0; x < n; x++)
                ss += p[x * c + ch] * k[x];
            out[(size_t)o * c + ch] = s_clip8(ss);
        }
    }
}

/* One output row's vertical pass: the int32 sums of n rows of tmp (len bytes each, stride
 * apart) weighted by k, rounded to out[len]. */
static void s_resample_col(const uint8_t *tmp, size_t len, const int32_t *k, int n, int32_t *acc,
                           uint8_t *out)
{
    for (size_t i = 0; i < len; i++)
        acc[i] = 1 << (S_PREC - 1);
    for (int y = 0; y < n; y++) { /* whole rows at a time: integer sums, PIL's values */
        const uint8_t *src = tmp + (size_t)y * len;
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
        _mm_storel_epi64((__m128i *)(out + i), px);
    }
#endif
    for (; i < len; i++)
        out[i] = s_clip8(acc[i]);
}

/* The window [x0, x0 + w) x [y0, y0 + h) of img resized to W x H (PIL's bilinear: horizontal
 * pass then vertical, each rounded to 8 bits), into w->dst as w x h pixels. Each output pixel
 * depends only on its own weights, so the window's pixels are those of the whole resize. */
static int s_resize_window(struct fl_image_work *wk, const struct fl_image *img, int W, int H,
                           int x0, int y0, int w, int h)
{
    int c = img->c, rc;
    if ((rc = s_coeffs(img->w, W, &wk->cx)) || (rc = s_coeffs(img->h, H, &wk->cy)))
        return rc;
    const struct fl_image_axis *cy = &wk->cy;
    /* the input rows the window's output rows read (PIL's ybox_first..ybox_last) */
    int first = cy->bounds[2 * y0];
    int end = cy->bounds[2 * (y0 + h - 1)] + cy->bounds[2 * (y0 + h - 1) + 1];
    size_t len = (size_t)w * (size_t)c;
    if (fl_image_buf_reserve(&wk->tmp, len * (size_t)(end - first)) ||
        fl_image_buf_reserve(&wk->dst, len * (size_t)h) ||
        fl_image_buf_reserve(&wk->acc, len * sizeof(int32_t)))
        return fl_fail(FL_ENOMEM, "image: out of memory for resampling");
    for (int y = first; y < end; y++)
        s_resample_row(img->p + (size_t)y * img->w * c, img->w,
                       wk->tmp.p + (size_t)(y - first) * len, x0, w, c, &wk->cx);
    for (int yy = 0; yy < h; yy++) {
        const int32_t *k = cy->k + (size_t)(y0 + yy) * cy->ksize;
        int ymin = cy->bounds[2 * (y0 + yy)] - first, n = cy->bounds[2 * (y0 + yy) + 1];
        s_resample_col(wk->tmp.p + (size_t)ymin * len, len, k, n, (int32_t *)(void *)wk->acc.p,
                       wk->dst.p + (size_t)yy * len);
    }
    return 0;
}

void fl_image_work_release_prep(struct fl_image_work *w)
{
    free(w->conv.p);
    free(w->tmp.p);
    free(w->dst.p);
    free(w->acc.p);
    w->conv = w->tmp = w->dst = w->acc = (struct fl_image_buf){0};
    s_axis_free(&w->cx);
    s_axis_free(&w->cy);
}

int fl_image_resize(struct fl_image *img, int w, int h)
{
    if (w < 1 || h < 1 || (uint64_t)w * (uint64_t)h > FL_IMAGE_MAX_PIXELS)
        return fl_fail(FL_ERANGE, "image: cannot resize to %d x %d", w, h);
    if (w == img->w && h == img->h)
        return 0;
    struct fl_image_work wk = {0};
    int rc = s_resize_window(&wk, img, w, h, 0, 0, w, h);
    if (rc == 0) {
        free(img->p);
        img->p = wk.dst.p, wk.dst.p = NULL;
        img->w = w, img->h = h;
    }
    fl_image_work_release_prep(&wk);
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

/* torchvision's CenterCrop offset along one axis: round((in - out) / 2), half to even. */
static int s_crop_offset(int in, int out)
{
    return (int)nearbyint((in - out) / 2.0);
}

int fl_image_crop_center(struct fl_image *img, int w, int h)
{
    if (w == img->w && h == img->h)
        return 0;
    if (w > img->w || h > img->h)
        return fl_fail(FL_EMISMATCH, "image is %d x %d, smaller than the %d x %d crop", img->w,
                       img->h, w, h);
    int top = s_crop_offset(img->h, h), left = s_crop_offset(img->w, w);
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

/* img's pixels as c channels: img itself, or a conversion (fl_image_convert's) in wk->conv. */
static int s_convert_view(struct fl_image_work *wk, const struct fl_image *img, int c,
                          struct fl_image *view)
{
    *view = *img;
    if (c == img->c)
        return 0;
    if (c != 1 && c != 3)
        return fl_fail(FL_EINVAL, "image: cannot convert to %d channels", c);
    size_t n = (size_t)img->w * (size_t)img->h;
    if (fl_image_buf_reserve(&wk->conv, n * (size_t)c))
        return fl_fail(FL_ENOMEM, "image: out of memory");
    uint8_t *q = wk->conv.p;
    const uint8_t *p = img->p;
    if (c == 1)
        for (size_t i = 0; i < n; i++, p += 3)
            q[i] = (uint8_t)((p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16);
    else
        for (size_t i = 0; i < n; i++)
            q[3 * i] = q[3 * i + 1] = q[3 * i + 2] = p[i];
    view->p = q, view->c = c;
    return 0;
}

/* ToTensor: w x h pixels of c channels, rows stride bytes apart, as features in CHW (or HWC)
 * order, each byte v becoming v / 255 * pixel_max (v itself for raw bytes). */
static void s_to_features(const uint8_t *p, size_t stride, int w, int h, int c,
                          const struct fl_image_target *t, float *out)
{
    bool raw = t->pixel_max == 0.0f || t->pixel_max == 255.0f;
    float scale = raw ? 1.0f : t->pixel_max, lut[256];
    for (int v = 0; v < 256; v++)
        lut[v] = raw ? (float)v : (float)v / 255.0f * scale;
    size_t plane = (size_t)w * h;
    for (int y = 0; y < h; y++, p += stride) {
        float *o = out + (size_t)y * w * (t->hwc ? c : 1);
        if (t->hwc || c == 1) {
            for (size_t i = 0; i < (size_t)w * c; i++)
                o[i] = lut[p[i]];
        } else {
            for (int ch = 0; ch < c; ch++, o += plane)
                for (int x = 0; x < w; x++)
                    o[x] = lut[p[(size_t)x * c + ch]];
        }
    }
}

int fl_image_work_prepare(fl_image_work_t *wk, const struct fl_image *img,
                          const struct fl_image_target *t, const char *name, float *out,
                          size_t out_len)
{
    int c, h, w, W, H, rc;
    fl_image_prepared_dims(img, t, &c, &h, &w);
    if ((size_t)c * h * w != out_len)
        return fl_fail(FL_EMISMATCH, "%s: is %d x %d x %d after preparation, %zu features expected",
                       name, c, h, w, out_len);
    s_shorter_dims(img->w, img->h, t->resize, &W, &H);
    if (w > W || h > H)
        return fl_fail(FL_EMISMATCH, "%s: is %d x %d, smaller than the base's %d x %d input%s",
                       name, W, H, w, h, t->resize ? "" : " (record a --resize in the base)");
    if (W < 1 || H < 1 || (uint64_t)W * (uint64_t)H > FL_IMAGE_MAX_PIXELS)
        return fl_fail(FL_ERANGE, "%s: cannot resize to %d x %d", name, W, H);
    struct fl_image src;
    if ((rc = s_convert_view(wk, img, c, &src)))
        return rc;
    int top = s_crop_offset(H, h), left = s_crop_offset(W, w);
    if (W == src.w && H == src.h) {
        s_to_features(src.p + ((size_t)top * src.w + left) * c, (size_t)src.w * c, w, h, c, t, out);
        return 0;
    }
    if ((rc = s_resize_window(wk, &src, W, H, left, top, w, h)))
        return rc;
    s_to_features(wk->dst.p, (size_t)w * c, w, h, c, t, out);
    return 0;
}

int fl_image_prepare(const struct fl_image *img, const struct fl_image_target *t, const char *name,
                     float *out, size_t out_len)
{
    struct fl_image_work wk = {0};
    int rc = fl_image_work_prepare(&wk, img, t, name, out, out_len);
    fl_image_work_release_prep(&wk);
    return rc;
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
