/* fl_dwk: 3x3 depthwise convolutions at stride 1 or 2 (dilation 1) with AVX2 and FMA (which
 * AVX-512 CPUs have too), channel plane by channel plane. Each input plane is first copied into
 * zero-padded rows, at stride 2 split into its even and odd columns, so that every tap of 8
 * consecutive outputs is one unaligned load of 8 consecutive floats: output x reads padded
 * columns x + 0, 1, 2 at stride 1, even[x], odd[x], even[x + 1] at stride 2. The next plane is
 * copied before this one is computed, so the computing loads never wait on the copy's stores.
 * Each block of 8 outputs sums its 9 taps in registers (one partial sum per window row, two
 * blocks at a time: six independent chains), then adds the rows' sums and applies the
 * activation as it stores. At stride 1 the blocks are of two output rows, which share two input
 * rows' loads (mobilenet_v2's 16x16 planes: 1.13x). */
#include "fl_convk.h"

#include <immintrin.h>
#include <stdint.h>

#define S_TARGET __attribute__((target("avx2,fma")))
#define S_INLINE static inline __attribute__((always_inline)) S_TARGET

/* Floats of a padded row: every load of the last block stays inside. */
static int s_len(const struct fl_dwk_plane *q)
{
    return ((q->ow + 7) & ~7) + 8;
}

/* Padded rows the outputs read. */
static int s_rows(const struct fl_dwk_plane *q)
{
    return q->stride * (q->oh - 1) + 3;
}

/* Blocks of 8 input columns a padded row is copied from (at stride 2: before the split). */
static int s_blocks(const struct fl_dwk_plane *q)
{
    return q->stride * s_len(q) / 8;
}

/* Floats of one copied plane (both halves at stride 2). */
static size_t s_plane(const struct fl_dwk_plane *q)
{
    return (size_t)q->stride * s_rows(q) * s_len(q);
}

bool fl_dwk_fits(int kh, int kw, int sh, int sw, int dh, int dw)
{
    return kh == 3 && kw == 3 && dh == 1 && dw == 1 && sh == sw && (sh == 1 || sh == 2);
}

size_t fl_dwk_scratch(const struct fl_dwk_plane *q)
{
    return 2 * s_plane(q) + 9 * (size_t)s_blocks(q);
}

/* Where padded-row block b reads an input row: at [b] (the input column of lane 0; 0 when no
 * lane is inside) under mask mk [8 b ..] (the lanes inside the row). */
S_INLINE void s_table(const struct fl_dwk_plane *q, int32_t *at, int32_t *mk)
{
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int b = 0; b < s_blocks(q); b++) {
        int a = 8 * b - q->pl;
        __m256i in = _mm256_and_si256(_mm256_cmpgt_epi32(iota, _mm256_set1_epi32(-a - 1)),
                                      _mm256_cmpgt_epi32(_mm256_set1_epi32(q->w - a), iota));
        at[b] = _mm256_testz_si256(in, in) ? 0 : a;
        _mm256_storeu_si256((__m256i *)(mk + 8 * b), in);
    }
}

/* Block b of an input row (row: its first column) by the table. */
S_INLINE __m256 s_load(const float *row, const int32_t *at, const int32_t *mk, int b)
{
    const float *src = (const float *)((uintptr_t)row + (intptr_t)at[b] * 4);
    return _mm256_maskload_ps(src, _mm256_loadu_si256((const __m256i *)(mk + 8 * b)));
}

/* Input plane x, zero-padded, into e (rows len apart), at stride 2 its even columns into e and
 * its odd ones into o. */
S_INLINE void s_fill(const struct fl_dwk_plane *q, const float *x, const int32_t *at,
                     const int32_t *mk, float *e, float *o)
{
    int len = s_len(q);
    for (int r = 0; r < s_rows(q); r++) {
        int iy = r - q->pt;
        float *er = e + (size_t)r * len, *odr = o + (size_t)r * len;
        if (iy < 0 || iy >= q->h) {
            for (int c = 0; c < len; c += 8) {
                _mm256_storeu_ps(er + c, _mm256_setzero_ps());
                if (q->stride == 2)
                    _mm256_storeu_ps(odr + c, _mm256_setzero_ps());
            }
            continue;
        }
        const float *row = x + (size_t)iy * q->w;
        if (q->stride == 1) {
            for (int b = 0; b < len / 8; b++)
                _mm256_storeu_ps(er + 8 * b, s_load(row, at, mk, b));
            continue;
        }
        for (int i = 0; i < len / 8; i++) {
            __m256 a = s_load(row, at, mk, 2 * i), c = s_load(row, at, mk, 2 * i + 1);
            /* per 128-bit lane: a0 a2 c0 c2 | a4 a6 c4 c6; the 64-bit swap puts them in order */
            __m256 ev = _mm256_shuffle_ps(a, c, 0x88), od = _mm256_shuffle_ps(a, c, 0xdd);
            _mm256_storeu_ps(er + 8 * i,
                             _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev), 0xd8)));
            _mm256_storeu_ps(odr + 8 * i,
                             _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(od), 0xd8)));
        }
    }
}

S_INLINE __m256 s_act(__m256 v, enum fl_convk_act act, __m256 lo, __m256 hi)
{
    if (act == FL_CONVK_RELU)
        return _mm256_max_ps(v, _mm256_setzero_ps());
    if (act == FL_CONVK_CLIP)
        return _mm256_min_ps(hi, _mm256_max_ps(lo, v));
    return v;
}

/* The 9 taps of the 8 outputs from column x: tap i reads p[i] + x. */
S_INLINE __m256 s_block(const float *const p[9], int x, const __m256 w[9], __m256 bias)
{
    __m256 a0 = _mm256_fmadd_ps(w[0], _mm256_loadu_ps(p[0] + x), bias);
    __m256 a1 = _mm256_mul_ps(w[3], _mm256_loadu_ps(p[3] + x));
    __m256 a2 = _mm256_mul_ps(w[6], _mm256_loadu_ps(p[6] + x));
    a0 = _mm256_fmadd_ps(w[1], _mm256_loadu_ps(p[1] + x), a0);
    a1 = _mm256_fmadd_ps(w[4], _mm256_loadu_ps(p[4] + x), a1);
    a2 = _mm256_fmadd_ps(w[7], _mm256_loadu_ps(p[7] + x), a2);
    a0 = _mm256_fmadd_ps(w[2], _mm256_loadu_ps(p[2] + x), a0);
    a1 = _mm256_fmadd_ps(w[5], _mm256_loadu_ps(p[5] + x), a1);
    a2 = _mm256_fmadd_ps(w[8], _mm256_loadu_ps(p[8] + x), a2);
    return _mm256_add_ps(_mm256_add_ps(a0, a1), a2);
}

/* At stride 1, the 8 outputs from column x of two output rows, v0 and v1, whose windows share
 * two input rows: tap i of row v0 reads p[i] + x, of row v1 p[i + 3] + x (each input row's
 * three loads serve both). The same sums in the same order as s_block. */
S_INLINE void s_block_rows(const float *const p[12], int x, const __m256 w[9], __m256 bias,
                           __m256 *v0, __m256 *v1)
{
    __m256 r0 = _mm256_loadu_ps(p[0] + x), r1 = _mm256_loadu_ps(p[1] + x);
    __m256 r2 = _mm256_loadu_ps(p[2] + x);
    __m256 a0 = _mm256_fmadd_ps(w[0], r0, bias);
    a0 = _mm256_fmadd_ps(w[1], r1, a0);
    a0 = _mm256_fmadd_ps(w[2], r2, a0);
    r0 = _mm256_loadu_ps(p[3] + x), r1 = _mm256_loadu_ps(p[4] + x), r2 = _mm256_loadu_ps(p[5] + x);
    __m256 a1 = _mm256_mul_ps(w[3], r0), b0 = _mm256_fmadd_ps(w[0], r0, bias);
    a1 = _mm256_fmadd_ps(w[4], r1, a1), b0 = _mm256_fmadd_ps(w[1], r1, b0);
    a1 = _mm256_fmadd_ps(w[5], r2, a1), b0 = _mm256_fmadd_ps(w[2], r2, b0);
    r0 = _mm256_loadu_ps(p[6] + x), r1 = _mm256_loadu_ps(p[7] + x), r2 = _mm256_loadu_ps(p[8] + x);
    __m256 a2 = _mm256_mul_ps(w[6], r0), b1 = _mm256_mul_ps(w[3], r0);
    a2 = _mm256_fmadd_ps(w[7], r1, a2), b1 = _mm256_fmadd_ps(w[4], r1, b1);
    a2 = _mm256_fmadd_ps(w[8], r2, a2), b1 = _mm256_fmadd_ps(w[5], r2, b1);
    *v0 = _mm256_add_ps(_mm256_add_ps(a0, a1), a2);
    r0 = _mm256_loadu_ps(p[9] + x), r1 = _mm256_loadu_ps(p[10] + x);
    r2 = _mm256_loadu_ps(p[11] + x);
    __m256 b2 = _mm256_mul_ps(w[6], r0);
    b2 = _mm256_fmadd_ps(w[7], r1, b2);
    b2 = _mm256_fmadd_ps(w[8], r2, b2);
    *v1 = _mm256_add_ps(_mm256_add_ps(b0, b1), b2);
}

/* Output plane y of output channel o from its copied input plane (e, o as s_fill left them). */
S_INLINE void s_plane_out(const struct fl_dwk_job *j, int o, const float *e, const float *od)
{
    const struct fl_dwk_plane *q = &j->q;
    int len = s_len(q);
    __m256 w[9];
    for (int i = 0; i < 9; i++)
        w[i] = _mm256_set1_ps(j->w[(size_t)o * 9 + (size_t)i]);
    __m256 bv = _mm256_set1_ps(j->bias ? j->bias[o] : 0.0f);
    __m256 lv = _mm256_set1_ps(j->lo), hv = _mm256_set1_ps(j->hi);
    __m256i mask =
        _mm256_cmpgt_epi32(_mm256_set1_epi32(q->ow & 7), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    float *y = j->y + (size_t)o * j->ystride;
    int oy = 0;
    for (; q->stride == 1 && oy + 2 <= q->oh; oy += 2) { /* two rows at a time */
        const float *p[12];
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 3; c++)
                p[3 * r + c] = e + (size_t)(oy + r) * len + c;
        float *yr = y + (size_t)oy * q->ow;
        for (int ox = 0; ox < q->ow; ox += 8) {
            __m256 v0, v1;
            s_block_rows(p, ox, w, bv, &v0, &v1);
            v0 = s_act(v0, j->act, lv, hv), v1 = s_act(v1, j->act, lv, hv);
            if (ox + 8 <= q->ow) {
                _mm256_storeu_ps(yr + ox, v0);
                _mm256_storeu_ps(yr + q->ow + ox, v1);
            } else {
                _mm256_maskstore_ps(yr + ox, mask, v0);
                _mm256_maskstore_ps(yr + q->ow + ox, mask, v1);
            }
        }
    }
    for (; oy < q->oh; oy++) {
        const float *p[9];
        for (int ki = 0; ki < 3; ki++) {
            size_t r = (size_t)(oy * q->stride + ki) * len;
            p[3 * ki] = e + r;
            p[3 * ki + 1] = q->stride == 1 ? e + r + 1 : od + r;
            p[3 * ki + 2] = q->stride == 1 ? e + r + 2 : e + r + 1;
        }
        float *yr = y + (size_t)oy * q->ow;
        int ox = 0;
        for (; ox + 16 <= q->ow; ox += 16) {
            __m256 v0 = s_block(p, ox, w, bv), v1 = s_block(p, ox + 8, w, bv);
            _mm256_storeu_ps(yr + ox, s_act(v0, j->act, lv, hv));
            _mm256_storeu_ps(yr + ox + 8, s_act(v1, j->act, lv, hv));
        }
        for (; ox < q->ow; ox += 8) {
            __m256 v = s_act(s_block(p, ox, w, bv), j->act, lv, hv);
            if (ox + 8 <= q->ow)
                _mm256_storeu_ps(yr + ox, v);
            else
                _mm256_maskstore_ps(yr + ox, mask, v);
        }
    }
}

S_TARGET void fl_dwk_run(const struct fl_dwk_job *j, int o0, int o1, float *buf)
{
    const struct fl_dwk_plane *q = &j->q;
    size_t half = s_plane(q) / (size_t)q->stride; /* the odd columns' offset at stride 2 */
    float *cur = buf, *next = buf + s_plane(q);
    int32_t *at = (int32_t *)(next + s_plane(q)), *mk = at + s_blocks(q);
    s_table(q, at, mk);
    if (o0 < o1)
        s_fill(q, j->x + (size_t)(o0 / j->mg) * j->xstride, at, mk, cur, cur + half);
    for (int o = o0; o < o1; o++) {
        bool fresh = o + 1 < o1 && (o + 1) / j->mg != o / j->mg; /* another input plane next */
        if (fresh)
            s_fill(q, j->x + (size_t)((o + 1) / j->mg) * j->xstride, at, mk, next, next + half);
        s_plane_out(j, o, cur, cur + half);
        if (fresh) {
            float *t = cur;
            cur = next;
            next = t;
        }
    }
}

/* Rows of 8 to 32 outputs (fl_dwk8_run): each input row, nv vectors at stride 1 (2 nv at
 * stride 2, its even and odd columns apart), becomes the vectors its three taps read: the row
 * itself, and its columns shifted by a lane each way (lanes crossing from the neighbouring
 * vector, the padding's zero at the ends); the output rows then sum 9 taps from those in
 * registers, bias first, in window order. No padded copy of the plane, no masked loads: what
 * fl_dwk_run spends on instead of the taps (mobilenet_v2 at 64x64: its 16x16 and 32x32 convs
 * at stride 1 1.2-1.4x faster than there, 32x32 at stride 2 3.2x). */
#define S_DWK8_MAX_ROWS 32
#define S_DWK8_MAX_NV   4

bool fl_dwk8_fits(const struct fl_dwk_plane *q)
{
    return q->ow % 8 == 0 && q->ow <= 8 * S_DWK8_MAX_NV && q->pl == 1 &&
           q->w == q->ow * q->stride && q->pt <= 1 && q->h >= 1 && q->h <= S_DWK8_MAX_ROWS &&
           (q->oh - 1) * q->stride - q->pt + 2 <= q->h;
}

/* r [3][nv]: the left, centre and right taps' vectors of input row x (w floats). */
S_INLINE void s_row8(const float *x, int nv, int stride, __m256 r[3][S_DWK8_MAX_NV])
{
    const __m256i rot_r = _mm256_setr_epi32(7, 0, 1, 2, 3, 4, 5, 6); /* lane i <- i - 1 */
    const __m256i rot_l = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 0); /* lane i <- i + 1 */
    const __m256 zero = _mm256_setzero_ps();
    __m256 c[S_DWK8_MAX_NV], o[S_DWK8_MAX_NV];
    for (int v = 0; v < nv; v++) {
        if (stride == 1) {
            c[v] = _mm256_loadu_ps(x + 8 * v);
            continue;
        }
        __m256 a = _mm256_loadu_ps(x + 16 * v), b = _mm256_loadu_ps(x + 16 * v + 8);
        c[v] = _mm256_castpd_ps(
            _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xd8));
        o[v] = _mm256_castpd_ps(
            _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xdd)), 0xd8));
    }
    for (int v = 0; v < nv; v++) {
        /* stride 1: columns - 1 and + 1; stride 2: the odd columns before (2i - 1), after */
        const __m256 *s = stride == 1 ? c : o;
        __m256 prev = v > 0 ? _mm256_permutevar8x32_ps(s[v - 1], rot_r) : zero;
        r[0][v] = _mm256_blend_ps(_mm256_permutevar8x32_ps(s[v], rot_r), prev, 0x01);
        r[1][v] = c[v];
        if (stride == 1) {
            __m256 next = v + 1 < nv ? _mm256_permutevar8x32_ps(c[v + 1], rot_l) : zero;
            r[2][v] = _mm256_blend_ps(_mm256_permutevar8x32_ps(c[v], rot_l), next, 0x80);
        } else
            r[2][v] = o[v];
    }
}

/* fl_dwk8_run for rows of nv vectors (a constant in each caller: arrays in registers). */
S_INLINE void s_run8(const struct fl_dwk_job *j, int o0, int o1, int nv)
{
    const struct fl_dwk_plane *q = &j->q;
    /* rows[1 + iy] for input rows -1 .. h: the vectors taps 0, 1, 2 read (zeros outside) */
    __m256 rows[S_DWK8_MAX_ROWS + 2][3][S_DWK8_MAX_NV];
    for (int t = 0; t < 3; t++)
        for (int v = 0; v < nv; v++)
            rows[0][t][v] = rows[q->h + 1][t][v] = _mm256_setzero_ps();
    __m256 lv = _mm256_set1_ps(j->lo), hv = _mm256_set1_ps(j->hi);
    for (int o = o0; o < o1; o++) {
        const float *x = j->x + (size_t)(o / j->mg) * j->xstride;
        if (o == o0 || o % j->mg == 0)
            for (int iy = 0; iy < q->h; iy++)
                s_row8(x + (size_t)iy * q->w, nv, q->stride, rows[1 + iy]);
        __m256 w[9];
        for (int i = 0; i < 9; i++)
            w[i] = _mm256_set1_ps(j->w[(size_t)o * 9 + (size_t)i]);
        __m256 bv = _mm256_set1_ps(j->bias ? j->bias[o] : 0.0f);
        float *y = j->y + (size_t)o * j->ystride;
        for (int oy = 0; oy < q->oh; oy++) {
            __m256(*r)[3][S_DWK8_MAX_NV] = &rows[oy * q->stride - q->pt + 1];
            for (int v = 0; v < nv; v++) {
                __m256 acc = bv;
                for (int ki = 0; ki < 3; ki++)
                    for (int kj = 0; kj < 3; kj++)
                        acc = _mm256_fmadd_ps(w[3 * ki + kj], r[ki][kj][v], acc);
                _mm256_storeu_ps(y + (size_t)oy * q->ow + 8 * (size_t)v,
                                 s_act(acc, j->act, lv, hv));
            }
        }
    }
}

S_TARGET void fl_dwk8_run(const struct fl_dwk_job *j, int o0, int o1)
{
    switch (j->q.ow / 8) {
    case 1:
        s_run8(j, o0, o1, 1);
        break;
    case 2:
        s_run8(j, o0, o1, 2);
        break;
    case 3:
        s_run8(j, o0, o1, 3);
        break;
    default:
        s_run8(j, o0, o1, 4);
        break;
    }
}

/* Rows of 4 at stride 1 (fl_dwk4_run: 4x4 planes, the middle stages of a CNN at 64x64): a
 * vector holds two rows of the plane, read in place (zeros for rows above and below it, as
 * many as the padding asks), and its left and right taps shift each half by a lane (permutes
 * within the 128-bit halves, the padding's zero blended in at the ends); two output rows a
 * vector (an even number of them), 9 taps in registers, bias first, in window order. */
bool fl_dwk4_fits(const struct fl_dwk_plane *q)
{
    return q->stride == 1 && q->ow == 4 && q->w == 4 && q->pl == 1 && q->oh % 2 == 0;
}

/* Rows r and r + 1 of plane x (h rows of 4), zeros outside. */
S_INLINE __m256 s_rows4(const float *x, int h, int r)
{
    if (r >= 0 && r + 1 < h)
        return _mm256_loadu_ps(x + 4 * r);
    __m128 z = _mm_setzero_ps();
    __m128 a = r >= 0 && r < h ? _mm_loadu_ps(x + 4 * r) : z;
    __m128 b = r + 1 >= 0 && r + 1 < h ? _mm_loadu_ps(x + 4 * (r + 1)) : z;
    return _mm256_insertf128_ps(_mm256_castps128_ps256(a), b, 1);
}

S_TARGET void fl_dwk4_run(const struct fl_dwk_job *j, int o0, int o1)
{
    const struct fl_dwk_plane *q = &j->q;
    const __m256 zero = _mm256_setzero_ps();
    __m256 lv = _mm256_set1_ps(j->lo), hv = _mm256_set1_ps(j->hi);
    for (int o = o0; o < o1; o++) {
        const float *x = j->x + (size_t)(o / j->mg) * j->xstride, *wk = j->w + (size_t)o * 9;
        __m256 bv = _mm256_set1_ps(j->bias ? j->bias[o] : 0.0f);
        float *y = j->y + (size_t)o * j->ystride;
        for (int oy = 0; oy < q->oh; oy += 2) {
            __m256 acc = bv;
            for (int ki = 0; ki < 3; ki++) { /* rows oy + ki - pt and the one after */
                __m256 c = s_rows4(x, q->h, oy + ki - q->pt);
                __m256 l = _mm256_blend_ps(_mm256_permute_ps(c, 0x90), zero, 0x11); /* i - 1 */
                __m256 r = _mm256_blend_ps(_mm256_permute_ps(c, 0x39), zero, 0x88); /* i + 1 */
                acc = _mm256_fmadd_ps(_mm256_broadcast_ss(wk + 3 * ki), l, acc);
                acc = _mm256_fmadd_ps(_mm256_broadcast_ss(wk + 3 * ki + 1), c, acc);
                acc = _mm256_fmadd_ps(_mm256_broadcast_ss(wk + 3 * ki + 2), r, acc);
            }
            _mm256_storeu_ps(y + (size_t)oy * 4, s_act(acc, j->act, lv, hv));
        }
    }
}
