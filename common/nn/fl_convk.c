/* fl_convk: a register-blocked AVX-512 product: 14 rows of W by a 32-column panel of B held in
 * 28 vector accumulators over the whole k (W read in place, each element broadcast; B's panel
 * read as two vectors a row), then bias and activation on the way out. Compiled for AVX-512 by
 * function attributes only (the build's baseline stays portable); callers ask
 * fl_convk_supported() first. */
#include "fl_convk.h"

#include <immintrin.h>
#include <stdint.h>

#define S_TARGET __attribute__((target("avx512f,avx512vl,avx512bw,fma")))
#define S_MR     FL_CONVK_MR
#define S_NR     FL_CONVK_NR

bool fl_convk_wide(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("fma");
}

bool fl_convk_supported(void)
{
    __builtin_cpu_init();
    return fl_convk_wide() || (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"));
}

static inline float s_act(const struct fl_convk_job *j, float v)
{
    if (j->act == FL_CONVK_RELU)
        return v > 0 ? v : 0;
    if (j->act == FL_CONVK_CLIP) {
        v = v < j->lo ? j->lo : v;
        return v > j->hi ? j->hi : v;
    }
    return v;
}

static inline S_TARGET __m512 s_act16(const struct fl_convk_job *j, __m512 v)
{
    if (j->act == FL_CONVK_RELU) /* v > 0 ? v : 0 */
        return _mm512_max_ps(v, _mm512_setzero_ps());
    if (j->act == FL_CONVK_CLIP) /* lo > v ? lo : v, then hi < v ? hi : v */
        return _mm512_min_ps(_mm512_set1_ps(j->hi), _mm512_max_ps(_mm512_set1_ps(j->lo), v));
    return v;
}

/* Where a register block goes straight to the output: row i at dst + i * p, columns under
 * masks k0 and k1, plus bias[i] (bias may be NULL), through the activation. */
struct s_out {
    float *dst;        /* row 0, column 0 of the block in the output */
    size_t p;          /* floats between rows (a channel plane) */
    const float *bias; /* the block's first row's bias, or NULL */
    __mmask16 k0, k1;  /* columns 0..15 and 16..31 stored */
};

/* Rows a .. (mr of them, lda apart; the missing ones repeat the last) times panel bp over k,
 * nv vectors of the panel's 2 (nv 1: the first 16 columns only); stored into tile [MR][NR], or
 * (out not NULL) with the epilogue straight from the registers into the output. */
static inline __attribute__((always_inline)) S_TARGET void
s_micro(const struct fl_convk_job *j, int k, const float *a, size_t lda, int mr, const float *bp,
        int nv, float *tile, const struct s_out *out)
{
    const float *r[S_MR];
    for (int i = 0; i < S_MR; i++)
        r[i] = a + (size_t)(i < mr ? i : mr - 1) * lda;
    __m512 c0[S_MR], c1[S_MR];
#pragma GCC unroll 14
    for (int i = 0; i < S_MR; i++)
        c0[i] = c1[i] = _mm512_setzero_ps();
    for (int kk = 0; kk < k; kk++, bp += S_NR) {
        __m512 b0 = _mm512_loadu_ps(bp), b1 = nv > 1 ? _mm512_loadu_ps(bp + 16) : b0;
#pragma GCC unroll 14
        for (int i = 0; i < S_MR; i++) {
            __m512 av = _mm512_set1_ps(r[i][kk]);
            c0[i] = _mm512_fmadd_ps(av, b0, c0[i]);
            if (nv > 1)
                c1[i] = _mm512_fmadd_ps(av, b1, c1[i]);
        }
    }
    if (!out) {
#pragma GCC unroll 14
        for (int i = 0; i < S_MR; i++) {
            _mm512_store_ps(tile + i * S_NR, c0[i]);
            if (nv > 1)
                _mm512_store_ps(tile + i * S_NR + 16, c1[i]);
        }
        return;
    }
#pragma GCC unroll 14
    for (int i = 0; i < S_MR; i++) {
        if (i >= mr)
            break;
        __m512 bv = _mm512_set1_ps(out->bias ? out->bias[i] : 0.0f);
        float *d = out->dst + (size_t)i * out->p;
        _mm512_mask_storeu_ps(d, out->k0, s_act16(j, _mm512_add_ps(c0[i], bv)));
        if (nv > 1)
            _mm512_mask_storeu_ps(d + 16, out->k1, s_act16(j, _mm512_add_ps(c1[i], bv)));
    }
}

static __attribute__((noinline)) S_TARGET void s_micro2(const struct fl_convk_job *j, int k,
                                                        const float *a, size_t lda, int mr,
                                                        const float *bp, float *tile,
                                                        const struct s_out *out)
{
    if (out)
        s_micro(j, k, a, lda, mr, bp, 2, NULL, out);
    else
        s_micro(j, k, a, lda, mr, bp, 2, tile, NULL);
}

static __attribute__((noinline)) S_TARGET void s_micro1(const struct fl_convk_job *j, int k,
                                                        const float *a, size_t lda, int mr,
                                                        const float *bp, float *tile,
                                                        const struct s_out *out)
{
    if (out)
        s_micro(j, k, a, lda, mr, bp, 1, NULL, out);
    else
        s_micro(j, k, a, lda, mr, bp, 1, tile, NULL);
}

/* Rows o0 .. o0+mr-1, columns c0 .. c0+nc-1 of Y from tile, plus bias, through the activation:
 * each run of columns within one sample (positions in a row of its planes) by vectors. */
static S_TARGET void s_store(const struct fl_convk_job *j, const float *tile, int o0, int mr,
                             int c0, int nc)
{
    size_t p = (size_t)j->p;
    for (int c = 0; c < nc;) {
        size_t col = (size_t)c0 + (size_t)c, pos = col % p;
        int run = p - pos < (size_t)(nc - c) ? (int)(p - pos) : nc - c;
        float *base = j->y + col / p * j->ystride + pos;
        __mmask16 k0 = run >= 16 ? 0xffff : (__mmask16)((1u << run) - 1);
        __mmask16 k1 = run >= 32 ? 0xffff : run > 16 ? (__mmask16)((1u << (run - 16)) - 1) : 0;
        for (int i = 0; i < mr; i++) {
            int o = o0 + i;
            __m512 bv = _mm512_set1_ps(j->bias ? j->bias[o] : 0.0f);
            const float *src = tile + i * S_NR + c;
            float *dst = base + (size_t)o * p;
            __m512 v0 = _mm512_maskz_loadu_ps(k0, src);
            _mm512_mask_storeu_ps(dst, k0, s_act16(j, _mm512_add_ps(v0, bv)));
            if (k1) {
                __m512 v1 = _mm512_maskz_loadu_ps(k1, src + 16);
                _mm512_mask_storeu_ps(dst + 16, k1, s_act16(j, _mm512_add_ps(v1, bv)));
            }
        }
        c += run;
    }
}

static S_TARGET void s_run(const struct fl_convk_job *j, int m0, int m1, int p0, int p1)
{
    float tile[S_MR * S_NR] __attribute__((aligned(64)));
    size_t p = (size_t)j->p;
    for (int o = m0; o < m1; o += S_MR) {
        int mr = m1 - o < S_MR ? m1 - o : S_MR;
        const float *a = j->w + (size_t)o * (size_t)j->ldw;
        for (int pn = p0; pn < p1; pn++) {
            int c0 = pn * S_NR, nc = j->ncols - c0 < S_NR ? j->ncols - c0 : S_NR;
            const float *bp = j->bp + (size_t)pn * (size_t)j->k * S_NR;
            size_t pos = (size_t)c0 % p;
            struct s_out out = {j->y + (size_t)c0 / p * j->ystride + (size_t)o * p + pos, p,
                                j->bias ? j->bias + o : NULL,
                                nc >= 16 ? 0xffff : (__mmask16)((1u << nc) - 1),
                                nc >= 32  ? 0xffff
                                : nc > 16 ? (__mmask16)((1u << (nc - 16)) - 1)
                                          : 0};
            bool direct = pos + (size_t)nc <= p; /* one sample's run of positions */
            if (nc > 16)
                s_micro2(j, j->k, a, (size_t)j->ldw, mr, bp, tile, direct ? &out : NULL);
            else
                s_micro1(j, j->k, a, (size_t)j->ldw, mr, bp, tile, direct ? &out : NULL);
            if (!direct)
                s_store(j, tile, o, mr, c0, nc);
        }
    }
}

/* A 4 x nc block of dot products over k: rows of W against columns of B (both contiguous),
 * 16 values of k at a time, the rest under a mask; each sum reduced at the end. */
static inline __attribute__((always_inline)) S_TARGET void
s_dots(int k, const float *const a[4], const float *const b[4], int nc, float out[4][4])
{
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
#pragma GCC unroll 4
        for (int c = 0; c < nc; c++)
            acc[i][c] = _mm512_setzero_ps();
    for (int kk = 0; kk < k; kk += 16) {
        __mmask16 m = k - kk >= 16 ? 0xffff : (__mmask16)((1u << (k - kk)) - 1);
        __m512 av[4], bv[4];
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++)
            av[i] = _mm512_maskz_loadu_ps(m, a[i] + kk);
#pragma GCC unroll 4
        for (int c = 0; c < nc; c++)
            bv[c] = _mm512_maskz_loadu_ps(m, b[c] + kk);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++)
#pragma GCC unroll 4
            for (int c = 0; c < nc; c++)
                acc[i][c] = _mm512_fmadd_ps(av[i], bv[c], acc[i][c]);
    }
    for (int i = 0; i < 4; i++)
        for (int c = 0; c < nc; c++)
            out[i][c] = _mm512_reduce_add_ps(acc[i][c]);
}

static __attribute__((noinline)) S_TARGET void
s_dots_n(int k, const float *const a[4], const float *const b[4], int nc, float out[4][4])
{
    switch (nc) { /* each width its own unrolled loop: no column computed twice */
    case 1:
        s_dots(k, a, b, 1, out);
        break;
    case 2:
        s_dots(k, a, b, 2, out);
        break;
    case 3:
        s_dots(k, a, b, 3, out);
        break;
    default:
        s_dots(k, a, b, 4, out);
        break;
    }
}

static S_TARGET void s_run_narrow(const struct fl_convk_job *j, int m0, int m1)
{
    size_t p = (size_t)j->p, k = (size_t)j->k;
    for (int o = m0; o < m1; o += 4) {
        int mr = m1 - o < 4 ? m1 - o : 4;
        const float *a[4];
        for (int i = 0; i < 4; i++)
            a[i] = j->w + (size_t)(o + (i < mr ? i : mr - 1)) * (size_t)j->ldw;
        for (int c0 = 0; c0 < j->ncols; c0 += 4) {
            int nc = j->ncols - c0 < 4 ? j->ncols - c0 : 4;
            const float *b[4];
            float out[4][4];
            for (int c = 0; c < 4; c++)
                b[c] = j->bp + (size_t)(c0 + (c < nc ? c : nc - 1)) * k;
            s_dots_n(j->k, a, b, nc, out);
            for (int c = 0; c < nc; c++) {
                size_t col = (size_t)c0 + (size_t)c;
                float *dst = j->y + col / p * j->ystride + col % p;
                for (int i = 0; i < mr; i++)
                    dst[(size_t)(o + i) * p] =
                        s_act(j, out[i][c] + (j->bias ? j->bias[o + i] : 0.0f));
            }
        }
    }
}

static S_TARGET void s_pack(const float *x, size_t plane, int nch, int ntaps, const int32_t *idx,
                            size_t ldi, int len, float *dst)
{
    __mmask16 k0 = len >= 16 ? 0xffff : (__mmask16)((1u << len) - 1);
    __mmask16 k1 = len >= 32 ? 0xffff : len > 16 ? (__mmask16)((1u << (len - 16)) - 1) : 0;
    const __m512i zero = _mm512_setzero_si512();
    for (int l = 0; l < ntaps; l++) {
        const int32_t *il = idx + (size_t)l * ldi;
        __m512i i0 = _mm512_maskz_loadu_epi32(k0, il), i1 = _mm512_maskz_loadu_epi32(k1, il + 16);
        __mmask16 v0 = _mm512_mask_cmpge_epi32_mask(k0, i0, zero);
        __mmask16 v1 = _mm512_mask_cmpge_epi32_mask(k1, i1, zero);
        for (int c = 0; c < nch; c++) {
            const float *xc = x + (size_t)c * plane;
            float *row = dst + ((size_t)c * ntaps + l) * S_NR;
            __m512 g0 = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), v0, i0, xc, 4);
            _mm512_mask_storeu_ps(row, k0, g0);
            if (k1) {
                __m512 g1 = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), v1, i1, xc, 4);
                _mm512_mask_storeu_ps(row + 16, k1, g1);
            }
        }
    }
}

/* r [16] rows of a 16 x 16 block, transposed in place (unpacks, then 128-bit lane shuffles). */
static inline __attribute__((always_inline)) S_TARGET void s_transpose16(__m512 r[16])
{
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
        __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++) {
            t[8 * i + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0x88);
            t[8 * i + 4 + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0xdd);
        }
    for (int j = 0; j < 8; j++) {
        r[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
        r[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xdd);
    }
}

static S_TARGET void s_transpose(const float *src, float *dst, size_t rows, size_t cols)
{
    for (size_t r0 = 0; r0 < rows; r0 += 16)
        for (size_t c0 = 0; c0 < cols; c0 += 16) {
            size_t nr = rows - r0 < 16 ? rows - r0 : 16, nc = cols - c0 < 16 ? cols - c0 : 16;
            __mmask16 kc = (__mmask16)((1u << nc) - 1), kr = (__mmask16)((1u << nr) - 1);
            __m512 r[16];
            for (size_t i = 0; i < 16; i++)
                r[i] = i < nr ? _mm512_maskz_loadu_ps(kc, src + (r0 + i) * cols + c0)
                              : _mm512_setzero_ps();
            s_transpose16(r);
            for (size_t c = 0; c < nc; c++)
                _mm512_mask_storeu_ps(dst + (c0 + c) * rows + r0, kr, r[c]);
        }
}

/* The AVX-512 kernels above where the CPU has them, else fl_convk2.c's AVX2 ones. */
void fl_convk_run(const struct fl_convk_job *j, int m0, int m1, int p0, int p1)
{
    (fl_convk_wide() ? s_run : fl_convk2_run)(j, m0, m1, p0, p1);
}

void fl_convk_run_narrow(const struct fl_convk_job *j, int m0, int m1)
{
    (fl_convk_wide() ? s_run_narrow : fl_convk2_run_narrow)(j, m0, m1);
}

void fl_convk_pack(const float *x, size_t plane, int nch, int ntaps, const int32_t *idx, size_t ldi,
                   int len, float *dst)
{
    (fl_convk_wide() ? s_pack : fl_convk2_pack)(x, plane, nch, ntaps, idx, ldi, len, dst);
}

void fl_convk_transpose(const float *src, float *dst, size_t rows, size_t cols)
{
    (fl_convk_wide() ? s_transpose : fl_convk2_transpose)(src, dst, rows, cols);
}
