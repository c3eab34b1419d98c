/* fl_ops_depthwise: the graph's depthwise Conv (one input channel per group). With the engine's
 * kernels, 3x3 windows at stride 1 or 2 on output rows of 4 and of 8 to 32 go channel plane by
 * plane to fl_dwk4_run / fl_dwk8_run (each input row shifted in registers, no padded copy),
 * longer rows to fl_dwk_run (padded rows copied, taps summed in registers). Other large planes
 * go channel by channel over a zero-padded copy of the input plane, each tap adding a weighted
 * input row to an output row (the inner loop runs along the row and vectorises). Small planes
 * (the last stages of a CNN: 8x8 and below, where rows are too short for that) are transposed
 * to channels-last, [position, channel], so that the inner loop runs over the channels; 2x2
 * planes at batches of 4 and more go by a 4x4 matrix a channel instead. */
#include "fl_ops_window.h"

#include "fl_convk.h"

#include <string.h>

/* Output planes up to this many positions run channels-last. */
#define S_CL_MAX_POSITIONS 64

FL_INLINE bool s_channels_last(const struct fl_wgeom *q)
{
    return q->mg == 1 && q->oh * q->ow <= S_CL_MAX_POSITIONS;
}

/* Output rows at least this long take fl_dwk_run (when it fits the window and stride). */
#define S_DWK_MIN_OW 9

FL_INLINE bool s_dwk(const fl_graph_t *g, const struct fl_wgeom *q)
{
    return g->simd && q->ow >= S_DWK_MIN_OW &&
           fl_dwk_fits(q->kh, q->kw, q->sh, q->sw, q->dh, q->dw);
}

FL_INLINE struct fl_dwk_plane s_dwk_plane(const struct fl_wgeom *q)
{
    return (struct fl_dwk_plane){q->h, q->w, q->pt, q->pl, q->sh, q->oh, q->ow};
}

/* Output rows of 8 to 32 (fl_dwk8_run) or 4 (fl_dwk4_run): ahead of both fl_dwk_run and
 * channels-last. */
FL_INLINE bool s_dwk8(const fl_graph_t *g, const struct fl_wgeom *q)
{
    struct fl_dwk_plane d = s_dwk_plane(q);
    return g->simd && fl_dwk_fits(q->kh, q->kw, q->sh, q->sw, q->dh, q->dw) &&
           (fl_dwk8_fits(&d) || fl_dwk4_fits(&d));
}

/* Rows and columns of a depthwise conv's zero-padded input plane: every tap of every output
 * lands inside it. */
FL_INLINE void s_padded(const struct fl_wgeom *q, int *ph, int *pw)
{
    int rows = (q->oh - 1) * q->sh + (q->kh - 1) * q->dh + 1;
    int cols = (q->ow - 1) * q->sw + (q->kw - 1) * q->dw + 1;
    *ph = rows > q->h + q->pt ? rows : q->h + q->pt;
    *pw = cols > q->w + q->pl ? cols : q->w + q->pl;
}

size_t fl_depthwise_scratch(const struct fl_wgeom *q)
{
    size_t c = (size_t)q->groups, hw = (size_t)q->h * q->w, kk = (size_t)q->kh * q->kw;
    if (s_channels_last(q)) { /* wT, dwT [kk, c]; xT, dxT [hw, c]; yT [ohw, c]; s_mat's M */
        size_t cl = c * (2 * kk + 2 * hw + (size_t)q->oh * q->ow);
        return cl > 16 * (c + 1) ? cl : 16 * (c + 1);
    }
    int ph, pw;
    s_padded(q, &ph, &pw);
    struct fl_dwk_plane d = s_dwk_plane(q);
    size_t rows = 2 * (size_t)ph * pw, dwk = fl_dwk_scratch(&d);
    return rows > dwk ? rows : dwk;
}

FL_INLINE void s_pad_plane(const struct fl_wgeom *q, const float *x, float *buf, int ph, int pw)
{
    memset(buf, 0, (size_t)ph * pw * sizeof *buf);
    for (int iy = 0; iy < q->h; iy++)
        memcpy(buf + (size_t)(iy + q->pt) * pw + q->pl, x + (size_t)iy * q->w,
               (size_t)q->w * sizeof *buf);
}

/* Depthwise convolution of one sample, channel by channel on a zero-padded copy of its input
 * plane (buf), so that each tap adds a weighted input row to an output row with no bounds
 * test: the inner loop runs over the output row and vectorises. */
FL_INLINE void s_rows_fwd(const struct fl_gnode *nd, const struct fl_wgeom *q, const float *x,
                          const float *w, const float *b, float *y, float *buf, int o0, int o1)
{
    int ph, pw;
    s_padded(q, &ph, &pw);
    size_t plane = (size_t)q->h * q->w, kk = (size_t)q->kh * q->kw;
    for (int o = o0; o < o1; o++) {
        const float *wk = w + (size_t)o * kk;
        if (o % q->mg == 0 || o == o0)
            s_pad_plane(q, x + (size_t)(o / q->mg) * plane, buf, ph, pw);
        for (int oy = 0; oy < q->oh; oy++) {
            float *restrict yr = y + ((size_t)o * q->oh + oy) * q->ow;
            for (int ox = 0; ox < q->ow; ox++)
                yr[ox] = b ? b[o] : 0.0f;
            for (int ki = 0; ki < q->kh; ki++) {
                const float *restrict xr = buf + (size_t)(oy * q->sh + ki * q->dh) * pw;
                for (int kj = 0; kj < q->kw; kj++) {
                    float wv = wk[ki * q->kw + kj];
                    const float *restrict xt = xr + kj * q->dw;
                    if (q->sw == 1)
                        for (int ox = 0; ox < q->ow; ox++)
                            yr[ox] += wv * xt[ox];
                    else
                        for (int ox = 0; ox < q->ow; ox++)
                            yr[ox] += wv * xt[ox * q->sw];
                }
            }
        }
        fl_act_apply(nd, y + (size_t)o * q->oh * q->ow, (size_t)q->oh * q->ow);
    }
}

/* Output channels [o0, o1) of one sample through fl_dwk_run (fl_dwk8_run or fl_dwk4_run when
 * buf is NULL). */
static void s_dwk_fwd(const struct fl_gnode *nd, const struct fl_wgeom *q, const float *x,
                      const float *w, const float *b, float *y, float *buf, int o0, int o1)
{
    struct fl_dwk_job j = {.q = s_dwk_plane(q),
                           .x = x,
                           .xstride = (size_t)q->h * q->w,
                           .mg = q->mg,
                           .w = w,
                           .bias = b,
                           .y = y,
                           .ystride = (size_t)q->oh * q->ow,
                           .act = nd->act == FL_OP_RELU   ? FL_CONVK_RELU
                                  : nd->act == FL_OP_CLIP ? FL_CONVK_CLIP
                                                          : FL_CONVK_NONE,
                           .lo = nd->act_min,
                           .hi = nd->act_max};
    if (buf)
        fl_dwk_run(&j, o0, o1, buf);
    else if (fl_dwk4_fits(&j.q))
        fl_dwk4_run(&j, o0, o1);
    else
        fl_dwk8_run(&j, o0, o1);
}

/* dw, db and dx (each may be NULL) of one sample's depthwise conv; buf holds two padded planes
 * (the input, the input's gradient). */
FL_INLINE void s_rows_bwd(const struct fl_wgeom *q, const float *x, const float *w, const float *dy,
                          float *dw, float *db, float *dx, float *buf)
{
    int ph, pw;
    s_padded(q, &ph, &pw);
    size_t plane = (size_t)q->h * q->w, p = (size_t)q->oh * q->ow, kk = (size_t)q->kh * q->kw;
    float *dbuf = buf + (size_t)ph * pw;
    for (int o = 0; o < q->groups * q->mg; o++) {
        const float *wk = w + (size_t)o * kk, *dyp = dy + (size_t)o * p;
        float sum = 0.0f;
        for (size_t i = 0; db && i < p; i++)
            sum += dyp[i];
        if (db)
            db[o] += sum;
        if (dw && o % q->mg == 0)
            s_pad_plane(q, x + (size_t)(o / q->mg) * plane, buf, ph, pw);
        if (dx)
            memset(dbuf, 0, (size_t)ph * pw * sizeof *dbuf);
        for (int ki = 0; ki < q->kh; ki++)
            for (int kj = 0; kj < q->kw; kj++) {
                float wv = wk[ki * q->kw + kj], acc = 0.0f;
                for (int oy = 0; oy < q->oh; oy++) {
                    size_t at = (size_t)(oy * q->sh + ki * q->dh) * pw + (size_t)kj * q->dw;
                    const float *restrict dyr = dyp + (size_t)oy * q->ow, *xt = buf + at;
                    float *restrict dxt = dbuf + at;
                    for (int ox = 0; dw && ox < q->ow; ox++)
                        acc += dyr[ox] * xt[ox * q->sw];
                    for (int ox = 0; dx && ox < q->ow; ox++)
                        dxt[ox * q->sw] += wv * dyr[ox];
                }
                if (dw)
                    dw[(size_t)o * kk + (size_t)ki * q->kw + kj] += acc;
            }
        for (int iy = 0; dx && iy < q->h; iy++) {
            float *restrict dr = dx + (size_t)(o / q->mg) * plane + (size_t)iy * q->w;
            const float *restrict sr = dbuf + (size_t)(iy + q->pt) * pw + q->pl;
            for (int ix = 0; ix < q->w; ix++)
                dr[ix] += sr[ix];
        }
    }
}

/* dst [cols, rows] = the transpose of src [rows, cols]: fl_convk_transpose when simd, else by
 * 16 x 16 tiles (each tile's rows and columns stay in the first-level cache; a plain double
 * loop strides through memory). */
FL_INLINE void s_transpose(bool simd, const float *restrict src, float *restrict dst, size_t rows,
                           size_t cols)
{
    if (simd) {
        fl_convk_transpose(src, dst, rows, cols);
        return;
    }
    for (size_t r0 = 0; r0 < rows; r0 += 16)
        for (size_t c0 = 0; c0 < cols; c0 += 16) {
            size_t r1 = r0 + 16 < rows ? r0 + 16 : rows, c1 = c0 + 16 < cols ? c0 + 16 : cols;
            for (size_t c = c0; c < c1; c++)
                for (size_t r = r0; r < r1; r++)
                    dst[c * rows + r] = src[r * cols + c];
        }
}

/* Calls body for every output position o (oy, ox) and window tap k landing on input position i,
 * inside the input. */
#define S_TAPS(q, ...)                                                                             \
    for (int oy = 0; oy < (q)->oh; oy++)                                                           \
        for (int ox = 0; ox < (q)->ow; ox++)                                                       \
            for (int ki = 0; ki < (q)->kh; ki++) {                                                 \
                int iy = oy * (q)->sh - (q)->pt + ki * (q)->dh;                                    \
                if (iy < 0 || iy >= (q)->h)                                                        \
                    continue;                                                                      \
                for (int kj = 0; kj < (q)->kw; kj++) {                                             \
                    int ix = ox * (q)->sw - (q)->pl + kj * (q)->dw;                                \
                    if (ix < 0 || ix >= (q)->w)                                                    \
                        continue;                                                                  \
                    size_t o = (size_t)oy * (q)->ow + ox, i = (size_t)iy * (q)->w + ix;            \
                    size_t k = (size_t)ki * (q)->kw + kj;                                          \
                    __VA_ARGS__                                                                    \
                }                                                                                  \
            }

/* Channels summed in registers at once by s_cl_fwd (4 vectors of AVX2, 2 of AVX-512), and the
 * most taps it lists for a position (larger windows take S_TAPS's loop). */
#define S_CL_BLOCK 32
#define S_CL_TAPS  64

/* 8 floats, read and written at any float's alignment. */
typedef float s_v8 __attribute__((vector_size(32), aligned(4)));

/* c channels of one sample channels-last: xT [hw, c] in, y [c, ohw] out; wT [kk, c]; yT
 * scratch. Each position's taps inside the input are listed once, then summed for a block of
 * channels in registers (the bias first, then the taps in window order, as S_TAPS's loop). */
FL_INLINE void s_cl_fwd(bool simd, const struct fl_wgeom *q, size_t c, const float *xT,
                        const float *wT, const float *b, float *yT, float *y)
{
    size_t ohw = (size_t)q->oh * q->ow;
    if (q->kh * q->kw > S_CL_TAPS) {
        for (size_t o = 0; o < ohw; o++)
            for (size_t ch = 0; ch < c; ch++)
                yT[o * c + ch] = b ? b[ch] : 0.0f;
        S_TAPS(q, {
            float *restrict yo = yT + o * c;
            const float *restrict xi = xT + i * c, *restrict wk = wT + k * c;
            for (size_t ch = 0; ch < c; ch++)
                yo[ch] += wk[ch] * xi[ch];
        })
        s_transpose(simd, yT, y, ohw, c);
        return;
    }
    size_t xo[S_CL_TAPS], wo[S_CL_TAPS];
    for (int oy = 0; oy < q->oh; oy++)
        for (int ox = 0; ox < q->ow; ox++) {
            int n = 0;
            for (int ki = 0; ki < q->kh; ki++) {
                int iy = oy * q->sh - q->pt + ki * q->dh;
                for (int kj = 0; iy >= 0 && iy < q->h && kj < q->kw; kj++) {
                    int ix = ox * q->sw - q->pl + kj * q->dw;
                    if (ix < 0 || ix >= q->w)
                        continue;
                    xo[n] = ((size_t)iy * q->w + (size_t)ix) * c;
                    wo[n++] = ((size_t)ki * q->kw + (size_t)kj) * c;
                }
            }
            float *restrict yo = yT + ((size_t)oy * q->ow + (size_t)ox) * c;
            size_t ch = 0;
            for (; ch + S_CL_BLOCK <= c; ch += S_CL_BLOCK) {
                s_v8 acc[S_CL_BLOCK / 8];
                for (int v = 0; v < S_CL_BLOCK / 8; v++)
                    acc[v] = b ? *(const s_v8 *)(b + ch + 8 * (size_t)v) : (s_v8){0};
                for (int l = 0; l < n; l++) {
                    const float *xi = xT + xo[l] + ch, *wk = wT + wo[l] + ch;
                    for (int v = 0; v < S_CL_BLOCK / 8; v++)
                        acc[v] += *(const s_v8 *)(wk + 8 * v) * *(const s_v8 *)(xi + 8 * v);
                }
                for (int v = 0; v < S_CL_BLOCK / 8; v++)
                    *(s_v8 *)(yo + ch + 8 * (size_t)v) = acc[v];
            }
            for (; ch + 8 <= c; ch += 8) { /* the rest by vectors, then by floats */
                s_v8 acc = b ? *(const s_v8 *)(b + ch) : (s_v8){0};
                for (int l = 0; l < n; l++)
                    acc += *(const s_v8 *)(wT + wo[l] + ch) * *(const s_v8 *)(xT + xo[l] + ch);
                *(s_v8 *)(yo + ch) = acc;
            }
            for (; ch < c; ch++) {
                float a = b ? b[ch] : 0.0f;
                for (int l = 0; l < n; l++)
                    a += wT[wo[l] + ch] * xT[xo[l] + ch];
                yo[ch] = a;
            }
        }
    s_transpose(simd, yT, y, ohw, c);
}

/* One sample channels-last backward: dyT [ohw, c]; dwT += (when xT), dxT = (when dxT). */
FL_INLINE void s_cl_bwd(const struct fl_wgeom *q, const float *xT, const float *wT,
                        const float *dyT, float *dwT, float *dxT)
{
    size_t c = (size_t)q->groups;
    S_TAPS(q, {
        const float *restrict dyo = dyT + o * c, *restrict wk = wT + k * c;
        const float *restrict xi = xT ? xT + i * c : NULL;
        float *restrict dwk = dwT + k * c, *restrict dxi = dxT ? dxT + i * c : NULL;
        for (size_t ch = 0; xi && ch < c; ch++)
            dwk[ch] += dyo[ch] * xi[ch];
        for (size_t ch = 0; dxi && ch < c; ch++)
            dxi[ch] += wk[ch] * dyo[ch];
    })
}

/* 4 positions in, 4 out (2x2 planes: the last stages of a CNN at 32x32 inputs), where the
 * channels-last transposes would cost more than the taps: output channel c's plane is a 4 x 4
 * matrix M_c times its input plane, M_c[o][i] the weight of the tap through which output
 * position o reads input position i, 0 where none does (the input positions' order is the
 * window's: the bias first, then the taps as S_TAPS's loop). Two channels a vector of 8, one
 * in each 128-bit half; input position i broadcast within each half. The matrices are made
 * for each call: worth it from a few samples on (at batch 1, mobilenet_v2 32x32 took 1.12x
 * longer than channels-last). */
#define S_MAT_MIN_SAMPLES 4

FL_INLINE bool s_mat(const struct fl_wgeom *q, size_t samples)
{
    return q->mg == 1 && q->h * q->w == 4 && q->oh * q->ow == 4 && samples >= S_MAT_MIN_SAMPLES;
}

/* Input position i of both channels of v (lanes i and 4 + i), each across its half. */
#define S_HALVES(v, i) __builtin_shufflevector(v, v, i, i, i, i, 4 + i, 4 + i, 4 + i, 4 + i)

/* Channels s_mat_range takes through every sample at a time (their matrices: 8 KiB). */
#define S_MAT_BLOCK 128

/* Channels [c0, c1) of samples [b0, b1) by s_mat's matrices (M: 16 * (c1 - c0 + 1) floats of
 * the worker's scratch, [channel pair][input position][2 channels][4 output positions]). */
FL_INLINE void s_mat_range(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q,
                           const float *w, const float *b, float *M, size_t b0, size_t b1,
                           size_t c0, size_t c1)
{
    size_t cc = c1 - c0, kk = (size_t)q->kh * q->kw;
    memset(M, 0, 16 * (cc + 1) * sizeof *M);
    S_TAPS(q, {
        for (size_t ch = 0; ch < cc; ch++)
            M[(ch / 2 * 4 + i) * 8 + ch % 2 * 4 + o] = w[(c0 + ch) * kk + k];
    })
    for (size_t cb = 0; cb < cc; cb += S_MAT_BLOCK) /* a block's matrices stay in L1 */
        for (size_t s = b0; s < b1; s++) {
            const float *x = fl_gv_data(g, nd->in[0], s) + 4 * c0;
            float *y = fl_gv_data(g, nd->out, s) + 4 * c0;
            size_t ce = cb + S_MAT_BLOCK < cc ? cb + S_MAT_BLOCK : cc;
            for (size_t ch = cb; ch < ce; ch += 2) {
                const float *m = M + ch / 2 * 32;
                float v0 = b ? b[c0 + ch] : 0.0f, v1 = b && ch + 1 < cc ? b[c0 + ch + 1] : 0.0f;
                if (ch + 1 == cc) { /* an odd last channel */
                    for (int o = 0; o < 4; o++) {
                        float a = v0;
                        for (int i = 0; i < 4; i++)
                            a += m[8 * i + o] * x[4 * ch + (size_t)i];
                        y[4 * ch + (size_t)o] = a;
                    }
                    break;
                }
                s_v8 xv = *(const s_v8 *)(x + 4 * ch);
                s_v8 acc = {v0, v0, v0, v0, v1, v1, v1, v1};
                acc += *(const s_v8 *)m * S_HALVES(xv, 0);
                acc += *(const s_v8 *)(m + 8) * S_HALVES(xv, 1);
                acc += *(const s_v8 *)(m + 16) * S_HALVES(xv, 2);
                acc += *(const s_v8 *)(m + 24) * S_HALVES(xv, 3);
                *(s_v8 *)(y + 4 * ch) = acc;
            }
            fl_act_apply(nd, y + 4 * cb, 4 * (ce - cb));
        }
}

/* Channels [c0, c1) of samples [b0, b1) channels-last (buf: the worker's scratch). */
FL_INLINE void s_cl_range(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q,
                          const float *w, const float *b, float *buf, size_t b0, size_t b1,
                          size_t c0, size_t c1)
{
    size_t c = (size_t)q->groups, cc = c1 - c0, hw = (size_t)q->h * q->w;
    size_t kk = (size_t)q->kh * q->kw, ohw = (size_t)q->oh * q->ow;
    float *wT = buf, *xT = wT + 2 * c * kk, *yT = xT + 2 * c * hw;
    s_transpose(g->simd, w + c0 * kk, wT, cc, kk);
    for (size_t s = b0; s < b1; s++) {
        float *y = fl_gv_data(g, nd->out, s) + c0 * ohw;
        s_transpose(g->simd, fl_gv_data(g, nd->in[0], s) + c0 * hw, xT, cc, hw);
        s_cl_fwd(g->simd, q, cc, xT, wT, b ? b + c0 : NULL, yT, y);
        fl_act_apply(nd, y, cc * ohw);
    }
}

FL_INLINE void s_fwd(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q, int t,
                     size_t b0, size_t b1)
{
    const float *w = fl_gv_data(g, nd->in[1], 0);
    const float *b = nd->nin == 3 ? fl_gv_data(g, nd->in[2], 0) : NULL;
    if (s_dwk(g, q) || s_dwk8(g, q)) {
        float *buf = s_dwk8(g, q) ? NULL : g->scratch[t];
        for (size_t s = b0; s < b1; s++)
            s_dwk_fwd(nd, q, fl_gv_data(g, nd->in[0], s), w, b, fl_gv_data(g, nd->out, s), buf, 0,
                      q->groups * q->mg);
        return;
    }
    if (!s_channels_last(q)) {
        for (size_t s = b0; s < b1; s++)
            s_rows_fwd(nd, q, fl_gv_data(g, nd->in[0], s), w, b, fl_gv_data(g, nd->out, s),
                       g->scratch[t], 0, q->groups * q->mg);
        return;
    }
    if (g->simd && s_mat(q, b1 - b0)) /* direct calls: inlined into each target's build */
        s_mat_range(g, nd, q, w, b, g->scratch[t], b0, b1, 0, (size_t)q->groups);
    else
        s_cl_range(g, nd, q, w, b, g->scratch[t], b0, b1, 0, (size_t)q->groups);
}

FL_INLINE void s_bwd(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q, int t,
                     size_t b0, size_t b1)
{
    const float *w = fl_gv_data(g, nd->in[1], 0);
    float *dw = fl_gv_grad(g, nd->in[1], t, 0);
    float *db = nd->nin == 3 ? fl_gv_grad(g, nd->in[2], t, 0) : NULL;
    if (!s_channels_last(q)) {
        for (size_t s = b0; s < b1; s++)
            s_rows_bwd(q, fl_gv_data(g, nd->in[0], s), w, fl_gv_grad(g, nd->out, t, s), dw, db,
                       fl_gv_grad(g, nd->in[0], t, s), g->scratch[t]);
        return;
    }
    size_t c = (size_t)q->groups, hw = (size_t)q->h * q->w, kk = (size_t)q->kh * q->kw;
    size_t ohw = (size_t)q->oh * q->ow;
    float *wT = g->scratch[t], *dwT = wT + c * kk, *xT = dwT + c * kk, *dxT = xT + c * hw;
    float *dyT = dxT + c * hw;
    s_transpose(g->simd, w, wT, c, kk);
    memset(dwT, 0, c * kk * sizeof *dwT);
    for (size_t s = b0; s < b1; s++) {
        const float *dy = fl_gv_grad(g, nd->out, t, s);
        float *dx = fl_gv_grad(g, nd->in[0], t, s);
        for (size_t ch = 0; db && ch < c; ch++)
            for (size_t o = 0; o < ohw; o++)
                db[ch] += dy[ch * ohw + o];
        s_transpose(g->simd, dy, dyT, c, ohw);
        if (dw)
            s_transpose(g->simd, fl_gv_data(g, nd->in[0], s), xT, c, hw);
        if (dx)
            memset(dxT, 0, c * hw * sizeof *dxT);
        s_cl_bwd(q, dw ? xT : NULL, wT, dyT, dwT, dx ? dxT : NULL);
        for (size_t ch = 0; dx && ch < c; ch++)
            for (size_t i = 0; i < hw; i++)
                dx[ch * hw + i] += dxT[i * c + ch];
    }
    for (size_t ch = 0; dw && ch < c; ch++)
        for (size_t k = 0; k < kk; k++)
            dw[ch * kk + k] += dwT[k * c + ch];
}

/* The kernels above compiled three times, for AVX-512, AVX2 and any x86-64, chosen by the graph
 * and the CPU. */
static FL_AVX512 void s_fwd_avx512(fl_graph_t *g, const struct fl_gnode *nd,
                                   const struct fl_wgeom *q, int t, size_t b0, size_t b1)
{
    s_fwd(g, nd, q, t, b0, b1);
}

static FL_AVX2 void s_fwd_avx2(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q,
                               int t, size_t b0, size_t b1)
{
    s_fwd(g, nd, q, t, b0, b1);
}

static void s_fwd_portable(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q,
                           int t, size_t b0, size_t b1)
{
    s_fwd(g, nd, q, t, b0, b1);
}

static FL_AVX512 void s_bwd_avx512(fl_graph_t *g, const struct fl_gnode *nd,
                                   const struct fl_wgeom *q, int t, size_t b0, size_t b1)
{
    s_bwd(g, nd, q, t, b0, b1);
}

static FL_AVX2 void s_bwd_avx2(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q,
                               int t, size_t b0, size_t b1)
{
    s_bwd(g, nd, q, t, b0, b1);
}

static void s_bwd_portable(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q,
                           int t, size_t b0, size_t b1)
{
    s_bwd(g, nd, q, t, b0, b1);
}

void fl_depthwise_fwd(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q, int t,
                      size_t b0, size_t b1)
{
    (!g->simd ? s_fwd_portable : fl_convk_wide() ? s_fwd_avx512 : s_fwd_avx2)(g, nd, q, t, b0, b1);
}

void fl_depthwise_bwd(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q, int t,
                      size_t b0, size_t b1)
{
    (!g->simd ? s_bwd_portable : fl_convk_wide() ? s_bwd_avx512 : s_bwd_avx2)(g, nd, q, t, b0, b1);
}

/* Below this many multiply-adds a batch's depthwise conv is not worth sharing out (by output
 * channels; see fl_ops_conv.c's S_SPLIT_MACS). */
#define S_SPLIT_MACS ((size_t)1 << 13)

bool fl_depthwise_splits(const fl_graph_t *g, const struct fl_wgeom *q)
{
    size_t m = (size_t)q->groups * q->mg;
    size_t macs = m * (size_t)q->oh * q->ow * q->kh * q->kw * (size_t)g->batch;
    return macs >= S_SPLIT_MACS;
}

FL_INLINE void s_fwd_part(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q,
                          int part, int nparts)
{
    size_t m = (size_t)q->groups * q->mg;
    const float *w = fl_gv_data(g, nd->in[1], 0);
    const float *b = nd->nin == 3 ? fl_gv_data(g, nd->in[2], 0) : NULL;
    int o0 = (int)(m * (size_t)part / (size_t)nparts);
    int o1 = (int)(m * ((size_t)part + 1) / (size_t)nparts);
    if (!s_dwk(g, q) && !s_dwk8(g, q) && s_channels_last(q)) { /* an output channel an input's */
        if (o0 < o1 && g->simd && s_mat(q, (size_t)g->batch))
            s_mat_range(g, nd, q, w, b, g->scratch[part], 0, (size_t)g->batch, (size_t)o0,
                        (size_t)o1);
        else if (o0 < o1)
            s_cl_range(g, nd, q, w, b, g->scratch[part], 0, (size_t)g->batch, (size_t)o0,
                       (size_t)o1);
        return;
    }
    for (size_t s = 0; s < (size_t)g->batch && o0 < o1; s++)
        if (s_dwk(g, q) || s_dwk8(g, q))
            s_dwk_fwd(nd, q, fl_gv_data(g, nd->in[0], s), w, b, fl_gv_data(g, nd->out, s),
                      s_dwk8(g, q) ? NULL : g->scratch[part], o0, o1);
        else
            s_rows_fwd(nd, q, fl_gv_data(g, nd->in[0], s), w, b, fl_gv_data(g, nd->out, s),
                       g->scratch[part], o0, o1);
}

static FL_AVX512 void s_fwd_part_avx512(fl_graph_t *g, const struct fl_gnode *nd,
                                        const struct fl_wgeom *q, int part, int nparts)
{
    s_fwd_part(g, nd, q, part, nparts);
}

static FL_AVX2 void s_fwd_part_avx2(fl_graph_t *g, const struct fl_gnode *nd,
                                    const struct fl_wgeom *q, int part, int nparts)
{
    s_fwd_part(g, nd, q, part, nparts);
}

static void s_fwd_part_portable(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q,
                                int part, int nparts)
{
    s_fwd_part(g, nd, q, part, nparts);
}

void fl_depthwise_fwd_part(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q,
                           int part, int nparts)
{
    (!g->simd          ? s_fwd_part_portable
     : fl_convk_wide() ? s_fwd_part_avx512
                       : s_fwd_part_avx2)(g, nd, q, part, nparts);
}
