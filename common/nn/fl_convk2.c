/* fl_convk2: fl_convk's kernels for CPUs with AVX2 and FMA but not AVX-512 (fl_convk.c calls
 * them there). The same packed panels of FL_CONVK_NR columns, taken as two halves of 16: a
 * register block of 6 rows of W by 16 columns (12 accumulators of 8 floats) over the whole k,
 * then bias and activation on the way out. Each element is one chain of multiply-adds over k
 * in order, whatever the rows and panels asked. Compiled for AVX2 by function attributes only. */
#include "fl_convk.h"

#include <immintrin.h>
#include <stdint.h>

#define S_TARGET   __attribute__((target("avx2,fma")))
#define S_MR       6
#define S_NR       FL_CONVK_NR
#define S_PREFETCH FL_CONVK_BOFF_PAD /* rows of a panel ahead */

static inline S_TARGET __m256 s_act8(const struct fl_convk_job *j, __m256 v)
{
    if (j->act == FL_CONVK_RELU) /* v > 0 ? v : 0 */
        return _mm256_max_ps(v, _mm256_setzero_ps());
    if (j->act == FL_CONVK_CLIP) /* lo > v ? lo : v, then hi < v ? hi : v */
        return _mm256_min_ps(_mm256_set1_ps(j->hi), _mm256_max_ps(_mm256_set1_ps(j->lo), v));
    return v;
}

/* Lanes 0 .. n-1 of a mask vector (n may be outside 0..8). */
static inline S_TARGET __m256i s_mask(int n)
{
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), iota);
}

/* v through activation act (a constant where inlined: no branch per vector); lo, hi:
 * FL_CONVK_CLIP's bounds. */
static inline __attribute__((always_inline)) S_TARGET __m256 s_actv(int act, __m256 v, __m256 lo,
                                                                    __m256 hi)
{
    if (act == FL_CONVK_RELU) /* v > 0 ? v : 0 */
        return _mm256_max_ps(v, _mm256_setzero_ps());
    if (act == FL_CONVK_CLIP) /* lo > v ? lo : v, then hi < v ? hi : v */
        return _mm256_min_ps(hi, _mm256_max_ps(lo, v));
    return v;
}

static const float s_zeros[S_MR]; /* the bias of a product without one */

/* Rows 0 .. mr-1 of a register block (c0, c1: nv vectors a row) plus bias (S_MR floats, rows
 * past mr unread), plus res (when not NULL: laid out as dst), through act, stored at dst + i * p:
 * all 8 nv lanes (full), or the first nc under masks. act and full are constants where inlined, so
 * each way is its own straight code (the block's stores are a large share of a product of small k:
 * 24 in mobilenet_v2's expansions). */
static inline __attribute__((always_inline)) S_TARGET void
s_out(int act, bool full, const __m256 c0[S_MR], const __m256 c1[S_MR], int mr, int nv, float *dst,
      const float *res, size_t p, const float *bias, int nc, __m256 lo, __m256 hi)
{
    __m256i m0 = s_mask(nc), m1 = s_mask(nc - 8);
#pragma GCC unroll 6
    for (int i = 0; i < S_MR; i++) {
        if (i >= mr)
            break;
        __m256 bv = _mm256_broadcast_ss(bias + i);
        float *d = dst + (size_t)i * p;
        const float *rr = res ? res + (size_t)i * p : NULL;
        __m256 v0 = _mm256_add_ps(c0[i], bv);
        if (rr)
            v0 = _mm256_add_ps(v0,
                               full || nc >= 8 ? _mm256_loadu_ps(rr) : _mm256_maskload_ps(rr, m0));
        v0 = s_actv(act, v0, lo, hi);
        if (full || nc >= 8)
            _mm256_storeu_ps(d, v0);
        else
            _mm256_maskstore_ps(d, m0, v0);
        if (nv > 1) {
            __m256 v1 = _mm256_add_ps(c1[i], bv);
            if (rr)
                v1 = _mm256_add_ps(v1,
                                   full ? _mm256_loadu_ps(rr + 8) : _mm256_maskload_ps(rr + 8, m1));
            v1 = s_actv(act, v1, lo, hi);
            if (full)
                _mm256_storeu_ps(d + 8, v1);
            else
                _mm256_maskstore_ps(d + 8, m1, v1);
        }
    }
}

/* As s_out for 16 columns that are 16 / split samples of split positions each (planes of 2x2
 * or 2x4 at batch 32 and more): row i of sample s at dst + s * ys + i * split, written from the
 * registers (through a tile, scattered lane by lane, such planes' 1x1 convs spent a quarter of
 * their time storing). */
static inline __attribute__((always_inline)) S_TARGET void
s_out_split(int act, int split, const __m256 c0[S_MR], const __m256 c1[S_MR], int mr, float *dst,
            const float *res, size_t ys, const float *bias, __m256 lo, __m256 hi)
{
#pragma GCC unroll 6
    for (int i = 0; i < S_MR; i++) {
        if (i >= mr)
            break;
        __m256 bv = _mm256_broadcast_ss(bias + i);
        __m256 v0 = _mm256_add_ps(c0[i], bv), v1 = _mm256_add_ps(c1[i], bv);
        if (res) { /* the residual's lanes gathered as the stores below scatter them */
            const float *rr = res + (size_t)i * (size_t)split;
            __m256 r0 = split == 8 ? _mm256_loadu_ps(rr)
                                   : _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(rr)),
                                                          _mm_loadu_ps(rr + ys), 1);
            __m256 r1 =
                split == 8 ? _mm256_loadu_ps(rr + ys)
                           : _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(rr + 2 * ys)),
                                                  _mm_loadu_ps(rr + 3 * ys), 1);
            v0 = _mm256_add_ps(v0, r0);
            v1 = _mm256_add_ps(v1, r1);
        }
        v0 = s_actv(act, v0, lo, hi);
        v1 = s_actv(act, v1, lo, hi);
        float *d = dst + (size_t)i * (size_t)split;
        if (split == 8) {
            _mm256_storeu_ps(d, v0);
            _mm256_storeu_ps(d + ys, v1);
        } else {
            _mm_storeu_ps(d, _mm256_castps256_ps128(v0));
            _mm_storeu_ps(d + ys, _mm256_extractf128_ps(v0, 1));
            _mm_storeu_ps(d + 2 * ys, _mm256_castps256_ps128(v1));
            _mm_storeu_ps(d + 3 * ys, _mm256_extractf128_ps(v1, 1));
        }
    }
}

/* Rows a .. (mr of them, lda apart; the missing ones repeat the last) times the 16 columns of
 * a half panel bp (row kk at bp + boff[kk], or kk * ldb: S_NR packed, a plane in place) over k,
 * nv vectors of its 2 (B's row kk meeting column km[kk] of the rows when km); stored into tile
 * [S_MR][16], or (dst not NULL) with bias and activation straight into the output: row i at
 * dst + i * p, the first nc columns (split 4 or 8: as s_out_split, 16 columns of planes of
 * split positions, j->ystride apart). */
static inline __attribute__((always_inline)) S_TARGET void
s_micro(const struct fl_convk_job *j, int k, const float *a, size_t lda, int mr, const float *bp,
        size_t ldb, const int32_t *boff, int nv, const int32_t *km, float *tile, float *dst,
        size_t p, const float *bias, int nc, int split)
{
    const float *r[S_MR];
    for (int i = 0; i < S_MR; i++)
        r[i] = a + (size_t)(i < mr ? i : mr - 1) * lda;
    __m256 c0[S_MR], c1[S_MR];
#pragma GCC unroll 6
    for (int i = 0; i < S_MR; i++)
        c0[i] = c1[i] = _mm256_setzero_ps();
    for (int kk = 0; kk < k; kk++) {
        const float *br = boff ? bp + boff[kk] : bp + (size_t)kk * ldb;
        _mm_prefetch((const char *)(boff ? bp + boff[kk + S_PREFETCH] : br + S_PREFETCH * ldb),
                     _MM_HINT_T0);
        __m256 b0 = _mm256_loadu_ps(br), b1 = nv > 1 ? _mm256_loadu_ps(br + 8) : b0;
#pragma GCC unroll 6
        for (int i = 0; i < S_MR; i++) {
            __m256 av = _mm256_broadcast_ss(r[i] + (km ? km[kk] : kk));
            c0[i] = _mm256_fmadd_ps(av, b0, c0[i]);
            if (nv > 1)
                c1[i] = _mm256_fmadd_ps(av, b1, c1[i]);
        }
    }
    if (!dst) {
#pragma GCC unroll 6
        for (int i = 0; i < S_MR; i++) {
            _mm256_store_ps(tile + i * 16, c0[i]);
            if (nv > 1)
                _mm256_store_ps(tile + i * 16 + 8, c1[i]);
        }
        return;
    }
    /* read from the job once, before any store (which might alias it for the compiler) */
    const int act = (int)j->act;
    const __m256 lo = _mm256_set1_ps(j->lo), hi = _mm256_set1_ps(j->hi);
    const float *bz = bias ? bias : s_zeros;
    const float *res = j->res ? j->res + (dst - j->y) : NULL; /* laid out as y */
    bool full = nc >= 8 * nv;
    if (split == 4 && act == FL_CONVK_RELU) /* each way its own straight code */
        s_out_split(FL_CONVK_RELU, 4, c0, c1, mr, dst, res, j->ystride, bz, lo, hi);
    else if (split == 4 && act == FL_CONVK_CLIP)
        s_out_split(FL_CONVK_CLIP, 4, c0, c1, mr, dst, res, j->ystride, bz, lo, hi);
    else if (split == 4)
        s_out_split(FL_CONVK_NONE, 4, c0, c1, mr, dst, res, j->ystride, bz, lo, hi);
    else if (split == 8 && act == FL_CONVK_RELU)
        s_out_split(FL_CONVK_RELU, 8, c0, c1, mr, dst, res, j->ystride, bz, lo, hi);
    else if (split == 8 && act == FL_CONVK_CLIP)
        s_out_split(FL_CONVK_CLIP, 8, c0, c1, mr, dst, res, j->ystride, bz, lo, hi);
    else if (split == 8)
        s_out_split(FL_CONVK_NONE, 8, c0, c1, mr, dst, res, j->ystride, bz, lo, hi);
    else if (act == FL_CONVK_RELU && full)
        s_out(FL_CONVK_RELU, true, c0, c1, mr, nv, dst, res, p, bz, nc, lo, hi);
    else if (act == FL_CONVK_CLIP && full)
        s_out(FL_CONVK_CLIP, true, c0, c1, mr, nv, dst, res, p, bz, nc, lo, hi);
    else if (full)
        s_out(FL_CONVK_NONE, true, c0, c1, mr, nv, dst, res, p, bz, nc, lo, hi);
    else
        s_out(act, false, c0, c1, mr, nv, dst, res, p, bz, nc, lo, hi);
}

/* s_micro for nv vectors, each way it runs compiled apart: into the output (from B packed, in
 * place, or through j->boff; split: from B packed only), into the tile, or into the tile with
 * j->km. */
static inline __attribute__((always_inline)) S_TARGET void
s_micro_nv(const struct fl_convk_job *j, int k, const float *a, size_t lda, int mr, const float *bp,
           size_t ldb, int nv, float *tile, float *dst, size_t p, const float *bias, int nc,
           int split)
{
    if (dst && j->boff) /* from an input, rows by the table */
        s_micro(j, k, a, lda, mr, bp, 0, j->boff, nv, NULL, NULL, dst, p, bias, nc, 0);
    else if (dst && ldb != S_NR) /* in place: B's rows a plane apart */
        s_micro(j, k, a, lda, mr, bp, ldb, NULL, nv, NULL, NULL, dst, p, bias, nc, 0);
    else if (dst)
        s_micro(j, k, a, lda, mr, bp, S_NR, NULL, nv, NULL, NULL, dst, p, bias, nc, split);
    else if (j->km)
        s_micro(j, k, a, lda, mr, bp, S_NR, NULL, nv, j->km, tile, NULL, p, bias, nc, 0);
    else
        s_micro(j, k, a, lda, mr, bp, S_NR, NULL, nv, NULL, tile, NULL, p, bias, nc, 0);
}

/* s_micro_nv for 2 vectors and for 1 (never split), each its own code. */
static __attribute__((noinline)) S_TARGET void
s_micro2(const struct fl_convk_job *j, int k, const float *a, size_t lda, int mr, const float *bp,
         size_t ldb, float *tile, float *dst, size_t p, const float *bias, int nc, int split)
{
    s_micro_nv(j, k, a, lda, mr, bp, ldb, 2, tile, dst, p, bias, nc, split);
}

static __attribute__((noinline)) S_TARGET void
s_micro1(const struct fl_convk_job *j, int k, const float *a, size_t lda, int mr, const float *bp,
         size_t ldb, float *tile, float *dst, size_t p, const float *bias, int nc)
{
    s_micro_nv(j, k, a, lda, mr, bp, ldb, 1, tile, dst, p, bias, nc, 0);
}

/* Where column c of Y goes (row 0; row o is o * p further): in its sample's plane, or where
 * j->cmap says. */
static inline size_t s_col_at(const struct fl_convk_job *j, int c)
{
    size_t p = (size_t)j->p;
    return j->cmap ? j->cmap[c] : (size_t)c / p * j->ystride + (size_t)c % p;
}

/* Rows o0 .. o0+mr-1, columns c0 .. c0+nc-1 of Y from tile (rows 16 floats apart), plus bias,
 * plus j->res (gathered into a tile first), through the activation (in vectors, in the tile),
 * then each column to its sample's plane (or where j->cmap says): a run of one sample's
 * positions at a time (small planes: a panel's 16 columns span several samples; on 1x1 planes,
 * one float each). */
static S_TARGET void s_store(const struct fl_convk_job *j, float *tile, int o0, int mr, int c0,
                             int nc)
{
    size_t p = (size_t)j->p;
    float rt[S_MR * 16] __attribute__((aligned(32)));
    for (int c = 0; j->res && c < 16; c++)
        for (int i = 0; i < mr; i++)
            rt[i * 16 + c] = c < nc ? j->res[s_col_at(j, c0 + c) + (size_t)(o0 + i) * p] : 0.0f;
    for (int i = 0; i < mr; i++)
        for (int h = 0; h < 16; h += 8) {
            __m256 v = _mm256_add_ps(_mm256_load_ps(tile + i * 16 + h),
                                     _mm256_set1_ps(j->bias ? j->bias[o0 + i] : 0.0f));
            if (j->res)
                v = _mm256_add_ps(v, _mm256_load_ps(rt + i * 16 + h));
            _mm256_store_ps(tile + i * 16 + h, s_act8(j, v));
        }
    if (j->cmap) {
        for (int c = 0; c < nc; c++) {
            float *restrict d = j->y + j->cmap[c0 + c] + (size_t)o0 * p;
            for (int i = 0; i < mr; i++)
                d[(size_t)i * p] = tile[i * 16 + c];
        }
        return;
    }
    size_t s = (size_t)c0 / p, pos = (size_t)c0 % p;
    for (int c = 0; c < nc; s++, pos = 0) {
        size_t len = p - pos < (size_t)(nc - c) ? p - pos : (size_t)(nc - c);
        float *restrict d = j->y + s * j->ystride + (size_t)o0 * p + pos;
        for (int i = 0; i < mr; i++)
            for (size_t e = 0; e < len; e++)
                d[(size_t)i * p + e] = tile[i * 16 + c + (int)e];
        c += (int)len;
    }
}

/* Rows o .. o+mr-1 of Y over panels [g0, g1) (tile: S_MR x 16 floats, 32-byte aligned). */
static S_TARGET void s_run_group(const struct fl_convk_job *j, int o, int mr, int g0, int g1,
                                 float *tile)
{
    size_t p = (size_t)j->p;
    const float *a = j->w + (size_t)o * (size_t)j->ldw;
    for (int pn = g0; pn < g1; pn++)
        for (int h = 0; h < 2; h++) {
            int c0 = pn * S_NR + 16 * h, nc = j->ncols - c0 < 16 ? j->ncols - c0 : 16;
            if (nc <= 0)
                break;
            const float *bp;
            size_t ldb = S_NR, pos = (size_t)c0 % p;
            if (j->bx) { /* 16 columns of one row of a sample's input */
                size_t xp = (size_t)j->xp, at = (size_t)c0 % xp;
                size_t oy = at / (size_t)j->xow, ox = at % (size_t)j->xow;
                bp = j->bx + (size_t)c0 / xp * j->xstride + oy * (size_t)j->xrow + ox;
                ldb = xp;
            } else
                bp = j->bp + (size_t)pn * (size_t)j->k * S_NR + 16 * h;
            bool direct = !j->cmap && pos + (size_t)nc <= p; /* one sample's run of positions */
            /* or whole samples' runs (c0 is a multiple of 16, so of p) */
            int split =
                !direct && !j->cmap && !j->bx && nc == 16 && (p == 4 || p == 8) ? (int)p : 0;
            float *dst =
                direct || split ? j->y + (size_t)c0 / p * j->ystride + (size_t)o * p + pos : NULL;
            const float *bias = j->bias ? j->bias + o : NULL;
            if (nc > 8)
                s_micro2(j, j->k, a, (size_t)j->ldw, mr, bp, ldb, tile, dst, p, bias, nc, split);
            else
                s_micro1(j, j->k, a, (size_t)j->ldw, mr, bp, ldb, tile, dst, p, bias, nc);
            if (!dst)
                s_store(j, tile, o, mr, c0, nc);
        }
}

S_TARGET void fl_convk2_run(const struct fl_convk_job *j, int m0, int m1, int p0, int p1)
{
    float tile[S_MR * 16] __attribute__((aligned(32)));
    if (j->by_panels) {
        for (int pn = p0; pn < p1; pn++)
            for (int o = m0; o < m1; o += S_MR)
                s_run_group(j, o, m1 - o < S_MR ? m1 - o : S_MR, pn, pn + 1, tile);
        return;
    }
    for (int o = m0; o < m1; o += S_MR)
        s_run_group(j, o, m1 - o < S_MR ? m1 - o : S_MR, p0, p1, tile);
}

/* Lane i of the result: the sum of v[i]'s eight lanes (two rounds of pairwise adds, then the
 * two halves). */
static inline __attribute__((always_inline)) S_TARGET __m256 s_hsum8(const __m256 v[8])
{
    __m256 a = _mm256_hadd_ps(v[0], v[1]), b = _mm256_hadd_ps(v[2], v[3]);
    __m256 c = _mm256_hadd_ps(v[4], v[5]), d = _mm256_hadd_ps(v[6], v[7]);
    __m256 ab = _mm256_hadd_ps(a, b), cd = _mm256_hadd_ps(c, d);
    return _mm256_add_ps(_mm256_permute2f128_ps(ab, cd, 0x20),
                         _mm256_permute2f128_ps(ab, cd, 0x31));
}

/* out [2][4] = 2 rows of W (a0, a1) times nc <= 4 columns of B (b[c], contiguous over k): dot
 * products 8 values of k at a time in 8 accumulators (the tail under a mask), reduced together
 * at the end. Columns past nc repeat the last. */
static inline __attribute__((always_inline)) S_TARGET void
s_dots(int k, const float *a0, const float *a1, const float *const b[4], int nc, float out[8],
       const float *pf0, const float *pf1)
{
    __m256 acc[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        acc[i] = _mm256_setzero_ps();
    int k8 = k & ~7, k16 = k & ~15;
    for (int kk = 0; kk < k8; kk += 8) {
        if (kk % 16 == 0 && kk < k16) { /* a line of each row read next, every other step */
            _mm_prefetch((const char *)(pf0 + kk), _MM_HINT_T0);
            _mm_prefetch((const char *)(pf1 + kk), _MM_HINT_T0);
        }
        __m256 w0 = _mm256_loadu_ps(a0 + kk), w1 = _mm256_loadu_ps(a1 + kk);
#pragma GCC unroll 4
        for (int c = 0; c < nc; c++) {
            __m256 bv = _mm256_loadu_ps(b[c] + kk);
            __asm__("" : "+x"(bv)); /* one load for both rows, not one folded into each FMA */
            acc[c] = _mm256_fmadd_ps(w0, bv, acc[c]);
            acc[4 + c] = _mm256_fmadd_ps(w1, bv, acc[4 + c]);
        }
    }
    if (k8 < k) {
        __m256i m = s_mask(k - k8);
        __m256 w0 = _mm256_maskload_ps(a0 + k8, m), w1 = _mm256_maskload_ps(a1 + k8, m);
#pragma GCC unroll 4
        for (int c = 0; c < nc; c++) {
            __m256 bv = _mm256_maskload_ps(b[c] + k8, m);
            acc[c] = _mm256_fmadd_ps(w0, bv, acc[c]);
            acc[4 + c] = _mm256_fmadd_ps(w1, bv, acc[4 + c]);
        }
    }
    _mm256_storeu_ps(out, s_hsum8(acc));
}

/* Each width its own unrolled loop: no column computed twice. pf0, pf1: rows read next. */
static __attribute__((noinline)) S_TARGET void s_dots_n(int k, const float *a0, const float *a1,
                                                        const float *const b[4], int nc,
                                                        float out[8], const float *pf0,
                                                        const float *pf1)
{
    if (nc == 1)
        s_dots(k, a0, a1, b, 1, out, pf0, pf1);
    else if (nc == 2)
        s_dots(k, a0, a1, b, 2, out, pf0, pf1);
    else if (nc == 3)
        s_dots(k, a0, a1, b, 3, out, pf0, pf1);
    else
        s_dots(k, a0, a1, b, 4, out, pf0, pf1);
}

/* Rows of W the narrow kernel prefetches ahead of the two it reads (4 measured 1.02-1.05x
 * faster than 2 on mobilenet_v2 64x64 and resnet18 32x32 at batch 1, one thread; 8 no better
 * than 4). */
#define S_PF_ROWS 4

/* Blocks of 2 rows of W by 4 columns of B: 8 accumulators and the 6 vectors they read fit
 * AVX2's 16 registers; a block's rows of W (at most a few KiB) stay in L1 for the next columns,
 * so W is read from memory once. */
S_TARGET void fl_convk2_run_narrow(const struct fl_convk_job *j, int m0, int m1)
{
    size_t p = (size_t)j->p, k = (size_t)j->k, at[FL_CONVK_NARROW];
    for (int g0 = 0; g0 < j->ncols; g0 += FL_CONVK_NARROW) { /* one group as the engine calls */
        int g1 = j->ncols - g0 < FL_CONVK_NARROW ? j->ncols : g0 + FL_CONVK_NARROW;
        for (int c = g0; c < g1; c++) /* each column's place in the output, found once */
            at[c - g0] = (size_t)c / p * j->ystride + (size_t)c % p;
        for (int o = m0; o < m1; o += 2) {
            int mr = m1 - o < 2 ? m1 - o : 2;
            const float *a0 = j->w + (size_t)o * (size_t)j->ldw;
            const float *a1 = mr > 1 ? a0 + j->ldw : a0;
            const float *pf = o + S_PF_ROWS < m1 ? a0 + S_PF_ROWS * (size_t)j->ldw : a0;
            float b0 = j->bias ? j->bias[o] : 0.0f, b1 = j->bias && mr > 1 ? j->bias[o + 1] : 0.0f;
            __m256 bv = _mm256_setr_ps(b0, b0, b0, b0, b1, b1, b1, b1);
            for (int c0 = g0; c0 < g1; c0 += 4) {
                int nc = g1 - c0 < 4 ? g1 - c0 : 4;
                const float *b[4];
                float out[8];
                for (int c = 0; c < 4; c++)
                    b[c] = j->bp + (size_t)(c0 + (c < nc ? c : nc - 1)) * k;
                s_dots_n(j->k, a0, a1, b, nc, out, pf, pf + (o + S_PF_ROWS + 1 < m1 ? j->ldw : 0));
                __m256 v = _mm256_add_ps(_mm256_loadu_ps(out), bv);
                if (j->res) { /* the residual's lanes as the stores below place them */
                    float rv[8] = {0};
                    for (int c = 0; c < nc; c++) {
                        const float *rr = j->res + at[c0 - g0 + c] + (size_t)o * p;
                        rv[c] = rr[0];
                        rv[4 + c] = mr > 1 ? rr[p] : 0.0f;
                    }
                    v = _mm256_add_ps(v, _mm256_loadu_ps(rv));
                }
                _mm256_storeu_ps(out, s_act8(j, v));
                for (int c = 0; c < nc; c++) { /* row o's sums in lanes 0-3, row o + 1's in 4-7 */
                    float *dst = j->y + at[c0 - g0 + c] + (size_t)o * p;
                    dst[0] = out[c];
                    if (mr > 1)
                        dst[p] = out[4 + c];
                }
            }
        }
    }
}

/* A run of a panel row's lanes [a, b): zeros (step 0), or x[base + (i - a) * step]. */
struct s_run {
    int a, b;     /* lanes */
    int step;     /* 0: padding; else the input offset's stride from lane to lane */
    int32_t base; /* the input offset of lane a */
};

/* The runs of lanes 0 .. len-1 of one tap's offsets il (at most FL_CONVK_NR runs). */
static int s_runs(const int32_t *il, int len, struct s_run *run)
{
    int n = 0;
    for (int i = 0; i < len;) {
        int j = i + 1, step = 0;
        if (il[i] < 0)
            while (j < len && il[j] < 0)
                j++;
        else if (i + 1 < len && il[i + 1] > il[i]) {
            step = il[i + 1] - il[i];
            while (j < len && il[j] == il[j - 1] + step)
                j++;
        } else
            step = 1;
        run[n++] = (struct s_run){i, j, step, il[i]};
        i = j;
    }
    return n;
}

/* d [n] = src[0], src[2], ..., src[2 n - 2]: 8 at a time from two vectors (per 128-bit lane
 * the even floats of both, then the 64-bit halves in order) while the second vector ends before
 * the last float read, then one by one. */
static inline __attribute__((always_inline)) S_TARGET void s_evens(const float *src, int n,
                                                                   float *d)
{
    int i = 0;
    for (; i + 8 < n; i += 8) {
        __m256 a = _mm256_loadu_ps(src + 2 * i), b = _mm256_loadu_ps(src + 2 * i + 8);
        __m256 ev = _mm256_shuffle_ps(a, b, 0x88);
        _mm256_storeu_ps(d + i,
                         _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev), 0xd8)));
    }
    for (; i < n; i++)
        d[i] = src[2 * (size_t)i];
}

/* The tap offsets of a panel row fall in runs (a row of output positions at stride 1 reads a
 * row of the input); each run is found once per tap and copied for every channel. */
S_TARGET void fl_convk2_pack(const float *x, size_t plane, int nch, int ntaps, const int32_t *idx,
                             size_t ldi, int len, float *dst)
{
    struct s_run run[S_NR];
    for (int l = 0; l < ntaps; l++) {
        int nrun = s_runs(idx + (size_t)l * ldi, len, run);
        if (nrun * 4 > len) { /* short runs (small planes): lane by lane */
            const int32_t *il = idx + (size_t)l * ldi;
            for (int c = 0; c < nch; c++) {
                const float *xc = x + (size_t)c * plane;
                float *restrict row = dst + ((size_t)c * ntaps + l) * S_NR;
                for (int i = 0; i < len; i++)
                    row[i] = il[i] < 0 ? 0.0f : xc[il[i]];
            }
            continue;
        }
        for (int c = 0; c < nch; c++) {
            const float *xc = x + (size_t)c * plane;
            float *row = dst + ((size_t)c * ntaps + l) * S_NR;
            for (int r = 0; r < nrun; r++) {
                const struct s_run *u = &run[r];
                float *restrict d = row + u->a;
                const float *restrict src = xc + u->base;
                int n = u->b - u->a;
                if (u->step == 0)
                    for (int i = 0; i < n; i++)
                        d[i] = 0.0f;
                else if (u->step == 1)
                    for (int i = 0; i < n; i++)
                        d[i] = src[i];
                else if (u->step == 2)
                    s_evens(src, n, d);
                else
                    for (int i = 0; i < n; i++)
                        d[i] = src[(size_t)i * (size_t)u->step];
            }
        }
    }
}

/* r [8] rows of an 8 x 8 block, transposed in place (unpacks, shuffles, 128-bit lane swaps). */
static inline __attribute__((always_inline)) S_TARGET void s_transpose8(__m256 r[8])
{
    __m256 t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) {
        u[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
        u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
    }
    for (int j = 0; j < 4; j++) {
        r[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
        r[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
    }
}

/* The transpose of src's block [r0, r0 + nr) x [c0, c0 + nc) (an edge of the 8 x 8 blocks):
 * 4 x 4 blocks in registers, the rest float by float. */
static S_TARGET void s_transpose_edge(const float *src, float *dst, size_t rows, size_t cols,
                                      size_t r0, size_t c0, size_t nr, size_t nc)
{
    size_t r4 = nr & ~(size_t)3, c4 = nc & ~(size_t)3;
    for (size_t r = r0; r < r0 + r4; r += 4)
        for (size_t c = c0; c < c0 + c4; c += 4) {
            __m128 a = _mm_loadu_ps(src + r * cols + c), b = _mm_loadu_ps(src + (r + 1) * cols + c);
            __m128 d = _mm_loadu_ps(src + (r + 2) * cols + c);
            __m128 e = _mm_loadu_ps(src + (r + 3) * cols + c);
            _MM_TRANSPOSE4_PS(a, b, d, e);
            _mm_storeu_ps(dst + c * rows + r, a);
            _mm_storeu_ps(dst + (c + 1) * rows + r, b);
            _mm_storeu_ps(dst + (c + 2) * rows + r, d);
            _mm_storeu_ps(dst + (c + 3) * rows + r, e);
        }
    for (size_t r = r0; r < r0 + nr; r++) /* the last columns, then the last rows */
        for (size_t c = r < r0 + r4 ? c0 + c4 : c0; c < c0 + nc; c++)
            dst[c * rows + r] = src[r * cols + c];
}

S_TARGET void fl_convk2_transpose(const float *src, float *dst, size_t rows, size_t cols)
{
    if (rows == 1 || cols == 1) { /* the same floats in the same order */
        for (size_t i = 0; i < rows * cols; i++)
            dst[i] = src[i];
        return;
    }
    for (size_t r0 = 0; r0 < rows; r0 += 8)
        for (size_t c0 = 0; c0 < cols; c0 += 8) {
            size_t nr = rows - r0 < 8 ? rows - r0 : 8, nc = cols - c0 < 8 ? cols - c0 : 8;
            if (nr < 8 || nc < 8) {
                s_transpose_edge(src, dst, rows, cols, r0, c0, nr, nc);
                continue;
            }
            __m256 r[8];
            for (size_t i = 0; i < 8; i++)
                r[i] = _mm256_loadu_ps(src + (r0 + i) * cols + c0);
            s_transpose8(r);
            for (size_t c = 0; c < 8; c++)
                _mm256_storeu_ps(dst + (c0 + c) * rows + r0, r[c]);
        }
}
