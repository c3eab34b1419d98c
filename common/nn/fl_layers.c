/* fl_layers: conv2d through im2col + GEMM, dense through GEMM, and the cheap elementwise
 * layers. Products go through fl_gemm; callers split batches over threads (fl_model). */
#include "fl_layers.h"
#include "fl_error.h"
#include "fl_linalg.h"

#include <float.h>
#include <math.h>
#include <string.h>

int fl_conv_geom_init(struct fl_conv_geom *g)
{
    if (g->n <= 0 || g->h <= 0 || g->w <= 0 || g->c <= 0 || g->k <= 0 || g->stride <= 0 ||
        g->pad < 0 || g->out_c <= 0)
        return FL_EINVAL;
    int hh = g->h + 2 * g->pad - g->k;
    int ww = g->w + 2 * g->pad - g->k;
    if (hh < 0 || ww < 0)
        return FL_EINVAL;
    g->oh = hh / g->stride + 1;
    g->ow = ww / g->stride + 1;
    return 0;
}

void fl_im2col(const struct fl_conv_geom *g, const float *x, float *col)
{
    const int k = g->k, c = g->c;
    const size_t patch = (size_t)k * k * c;
    for (int n = 0; n < g->n; n++) {
        const float *xn = x + (size_t)n * g->h * g->w * c;
        float *rows = col + (size_t)n * g->oh * g->ow * patch;
        for (int oh = 0; oh < g->oh; oh++) {
            for (int ow = 0; ow < g->ow; ow++) {
                float *dst = rows + ((size_t)oh * g->ow + ow) * patch;
                int iw0 = ow * g->stride - g->pad;
                for (int kh = 0; kh < k; kh++) {
                    int ih = oh * g->stride - g->pad + kh;
                    float *d = dst + (size_t)kh * k * c;
                    if (ih < 0 || ih >= g->h) {
                        memset(d, 0, sizeof(float) * k * c);
                        continue;
                    }
                    const float *src = xn + (size_t)ih * g->w * c;
                    if (iw0 >= 0 && iw0 + k <= g->w) {
                        memcpy(d, src + (size_t)iw0 * c, sizeof(float) * k * c);
                        continue;
                    }
                    for (int kw = 0; kw < k; kw++) {
                        int iw = iw0 + kw;
                        if (iw < 0 || iw >= g->w)
                            memset(d + kw * c, 0, sizeof(float) * c);
                        else
                            memcpy(d + kw * c, src + (size_t)iw * c, sizeof(float) * c);
                    }
                }
            }
        }
    }
}

void fl_col2im(const struct fl_conv_geom *g, const float *dcol, float *dx)
{
    const int k = g->k, c = g->c;
    const size_t patch = (size_t)k * k * c;
    for (int n = 0; n < g->n; n++) {
        float *dxn = dx + (size_t)n * g->h * g->w * c;
        const float *rows = dcol + (size_t)n * g->oh * g->ow * patch;
        memset(dxn, 0, sizeof(float) * g->h * g->w * c);
        for (int oh = 0; oh < g->oh; oh++) {
            for (int ow = 0; ow < g->ow; ow++) {
                const float *src = rows + ((size_t)oh * g->ow + ow) * patch;
                for (int kh = 0; kh < k; kh++) {
                    int ih = oh * g->stride - g->pad + kh;
                    if (ih < 0 || ih >= g->h)
                        continue;
                    for (int kw = 0; kw < k; kw++) {
                        int iw = ow * g->stride - g->pad + kw;
                        if (iw < 0 || iw >= g->w)
                            continue;
                        float *d = dxn + ((size_t)ih * g->w + iw) * c;
                        const float *s = src + ((size_t)kh * k + kw) * c;
                        for (int ch = 0; ch < c; ch++)
                            d[ch] += s[ch];
                    }
                }
            }
        }
    }
}

static void s_add_bias(size_t rows, int cols, const float *b, float *y)
{
    if (!b)
        return;
    for (size_t i = 0; i < rows; i++) {
        float *r = y + i * cols;
        for (int j = 0; j < cols; j++)
            r[j] += b[j];
    }
}

void fl_conv2d_forward(const struct fl_conv_geom *g, const float *x, const float *w, const float *b,
                       float *col, float *y)
{
    int rows = g->n * g->oh * g->ow;
    int patch = g->k * g->k * g->c;
    fl_im2col(g, x, col);
    fl_gemm(false, true, rows, g->out_c, patch, 1.0f, col, patch, w, patch, 0.0f, y, g->out_c);
    s_add_bias((size_t)rows, g->out_c, b, y);
}

void fl_conv2d_backward(const struct fl_conv_geom *g, const float *col, const float *w,
                        const float *dy, float *dw, float *db, float *dcol, float *dx)
{
    int rows = g->n * g->oh * g->ow;
    int patch = g->k * g->k * g->c;
    if (dw)
        fl_gemm(true, false, g->out_c, patch, rows, 1.0f, dy, g->out_c, col, patch, 0.0f, dw,
                patch);
    if (db) {
        memset(db, 0, sizeof(float) * g->out_c);
        fl_colsum(rows, g->out_c, 1.0f, dy, db);
    }
    if (dx) {
        fl_gemm(false, false, rows, patch, g->out_c, 1.0f, dy, g->out_c, w, patch, 0.0f, dcol,
                patch);
        fl_col2im(g, dcol, dx);
    }
}

void fl_dense_forward(int n, int in, int out, const float *x, const float *w, const float *b,
                      float *y)
{
    fl_gemm(false, true, n, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
    s_add_bias((size_t)n, out, b, y);
}

void fl_dense_backward(int n, int in, int out, const float *x, const float *w, const float *dy,
                       float *dw, float *db, float *dx)
{
    if (dw)
        fl_gemm(true, false, out, in, n, 1.0f, dy, out, x, in, 0.0f, dw, in);
    if (db) {
        memset(db, 0, sizeof(float) * out);
        fl_colsum(n, out, 1.0f, dy, db);
    }
    if (dx)
        fl_gemm(false, false, n, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in);
}

void fl_relu_forward(size_t len, const float *x, float *y)
{
    for (size_t i = 0; i < len; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void fl_relu_backward(size_t len, const float *y, const float *dy, float *dx)
{
    for (size_t i = 0; i < len; i++) {
        float d = dy[i]; /* an unconditional load lets the loop vectorise */
        dx[i] = y[i] > 0.0f ? d : 0.0f;
    }
}

/* One window element against the running max, without branches so it vectorises over the
 * channels (a data-dependent branch here mispredicts about half the time). */
static inline void s_pool_take(int c, const float *p, int32_t idx, float *y, int32_t *arg)
{
    for (int ch = 0; ch < c; ch++) {
        float v = p[ch], m = y[ch];
        int32_t gt = -(int32_t)(v > m);
        y[ch] = v > m ? v : m;
        arg[ch] = (arg[ch] & ~gt) | ((idx + ch) & gt);
    }
}

void fl_maxpool_forward(const struct fl_conv_geom *g, const float *x, float *y, int32_t *argmax)
{
    const int c = g->c;
    for (int n = 0; n < g->n; n++) {
        const float *xn = x + (size_t)n * g->h * g->w * c;
        for (int oh = 0; oh < g->oh; oh++) {
            for (int ow = 0; ow < g->ow; ow++) {
                size_t o = (((size_t)n * g->oh + oh) * g->ow + ow) * c;
                float *yo = y + o;
                int32_t *ao = argmax + o;
                int ih0 = oh * g->stride, iw0 = ow * g->stride;
                int32_t first = (int32_t)(((size_t)ih0 * g->w + iw0) * c);
                for (int ch = 0; ch < c; ch++) {
                    yo[ch] = xn[first + ch];
                    ao[ch] = first + ch;
                }
                for (int kh = 0; kh < g->k && ih0 + kh < g->h; kh++) {
                    for (int kw = 0; kw < g->k && iw0 + kw < g->w; kw++) {
                        int32_t idx = (int32_t)(((size_t)(ih0 + kh) * g->w + iw0 + kw) * c);
                        s_pool_take(c, xn + idx, idx, yo, ao);
                    }
                }
            }
        }
    }
}

void fl_maxpool_backward(const struct fl_conv_geom *g, const int32_t *argmax, const float *dy,
                         float *dx)
{
    const size_t in_per = (size_t)g->h * g->w * g->c;
    const size_t out_per = (size_t)g->oh * g->ow * g->c;
    for (int n = 0; n < g->n; n++) {
        float *dxn = dx + (size_t)n * in_per;
        memset(dxn, 0, sizeof(float) * in_per);
        for (size_t o = 0; o < out_per; o++)
            dxn[argmax[(size_t)n * out_per + o]] += dy[(size_t)n * out_per + o];
    }
}

double fl_softmax_xent(int n, int k, const float *logits, const int32_t *labels, float *dlogits,
                       int *correct)
{
    double loss = 0;
    int hits = 0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k;
        int arg = 0;
        float mx = z[0];
        for (int j = 1; j < k; j++) {
            if (z[j] > mx) {
                mx = z[j];
                arg = j;
            }
        }
        double sum = 0;
        for (int j = 0; j < k; j++)
            sum += exp((double)z[j] - mx);
        double lse = mx + log(sum);
        loss += lse - z[labels[i]];
        hits += arg == labels[i];
        if (dlogits) {
            float *d = dlogits + (size_t)i * k;
            for (int j = 0; j < k; j++)
                d[j] = (float)(exp((double)z[j] - lse) / n);
            d[labels[i]] -= 1.0f / (float)n;
        }
    }
    if (correct)
        *correct = hits;
    return n > 0 ? loss / n : 0.0;
}

void fl_lora_merge(int out, int in, int r, float scale, const float *w, const float *a,
                   const float *b, float *w_eff)
{
    memcpy(w_eff, w, sizeof(float) * (size_t)out * in);
    fl_gemm(false, false, out, in, r, scale, b, r, a, in, 1.0f, w_eff, in);
}

void fl_lora_backward(int out, int in, int r, float scale, const float *a, const float *b,
                      const float *dw_eff, float *da, float *db)
{
    if (db)
        fl_gemm(false, true, out, r, in, scale, dw_eff, in, a, in, 0.0f, db, r);
    if (da)
        fl_gemm(true, false, r, in, out, scale, b, r, dw_eff, in, 0.0f, da, in);
}
