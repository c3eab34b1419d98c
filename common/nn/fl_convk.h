/* fl_convk: the graph engine's own AVX-512 (or AVX2) kernel for the product at the heart of a
 * convolution's forward pass, Y [m, n] = W [m, k] B [k, n], B being the conv's im2col matrix
 * packed by the caller in panels of FL_CONVK_NR columns (written there directly from the
 * input, never as a plain matrix first), with the conv's bias and fused activation applied as
 * Y is stored into the output planes. Chosen at run time when the CPU has AVX-512, or AVX2 and
 * FMA (fl_convk2.c; fl_convk_supported); callers keep the portable path (OpenBLAS) for other
 * CPUs, and tests check the one against the other. Internal to the graph engine. */
#ifndef FL_CONVK_H
#define FL_CONVK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* For the engine's loops compiled more than once: FL_AVX512 (FL_AVX2) on a function compiles
 * it (and the FL_INLINE functions it calls) for AVX-512 (AVX2 and FMA); callers choose the
 * first only when fl_convk_wide(), the second when fl_convk_supported() otherwise. */
#define FL_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma")))
#define FL_AVX2   __attribute__((target("avx2,fma")))
#define FL_INLINE static inline __attribute__((always_inline))

#define FL_CONVK_NR 32 /* columns of a packed panel of B (two 16-float vectors) */
#define FL_CONVK_MR 14 /* rows of W per register block (28 accumulators) */

/* Fused activation applied as Y is stored. */
enum fl_convk_act {
    FL_CONVK_NONE = 0, /* y */
    FL_CONVK_RELU,     /* y > 0 ? y : 0 */
    FL_CONVK_CLIP      /* y < lo ? lo : y > hi ? hi : y */
};

/* One product and where its result goes. B's panel P holds columns P*NR .. P*NR+NR-1 as
 * [k][NR] (row r of the panel: NR consecutive floats; columns past ncols are ignored). Column
 * j of B is position j % p of sample j / p: Y's element (o, j) is stored at
 * y[(j / p) * ystride + o * p + j % p] (NCHW planes of consecutive samples). */
struct fl_convk_job {
    int m, k;              /* rows of W (output channels), rows of B */
    const float *w;        /* W [m, k], rows ldw floats apart */
    int ldw;               /* floats between W's rows */
    const float *bp;       /* B packed in panels */
    int ncols;             /* columns of B */
    float *y;              /* output of the first sample */
    int p;                 /* positions per sample (a channel plane) */
    size_t ystride;        /* floats between consecutive samples' outputs */
    const float *bias;     /* [m], or NULL */
    enum fl_convk_act act; /* fused activation */
    float lo, hi;          /* FL_CONVK_CLIP's bounds */
    /* AVX2 kernel only (fl_convk_wide() false), both NULL otherwise. km: B's row r meets W's
     * column km[r] (not r): B holds a subset of W's columns, in W's order. cmap: column j is
     * stored at y[cmap[j] + o * p] (not by samples and positions as above). */
    const int32_t *km;
    const size_t *cmap;
    /* AVX2 kernel: panel by panel, every row of W over each (W small, B large: a conv's
     * gathered columns stream from memory once instead of once per 6 rows of W). */
    bool by_panels;
    /* AVX2 kernel only, NULL otherwise: B read from an input instead of packed panels (bp is
     * not read then). Column j, position oy * xow + ox of sample j / xp (xp positions each),
     * starts at bx + (j / xp) * xstride + oy * xrow + ox, and its row r lies boff[r] floats
     * further (r * xp when boff is NULL; boff holds FL_CONVK_BOFF_PAD more entries after the
     * last row, read ahead). Every 16 columns from a multiple of 16 must lie in one row: xow a
     * multiple of 16. */
    const float *bx;
    size_t xstride;
    const int32_t *boff;
    int xp, xow, xrow;
    /* AVX2 kernel only, NULL otherwise: a residual laid out as y (y's element y + e gets
     * res[e]), added after the bias and before the activation (a residual Add fused into the
     * conv: the same sums in the same order as the conv's output and then the Add). */
    const float *res;
};

#define FL_CONVK_BOFF_PAD 8 /* entries after boff's last row (copies of it) */

/* Does this CPU (and OS) run the kernels below (AVX-512, or AVX2 and FMA)? */
bool fl_convk_supported(void);
/* Does it run them with AVX-512? */
bool fl_convk_wide(void);

/* Rows [m0, m1) of Y over panels [p0, p1) of job j. Only when fl_convk_supported(). Each
 * element is the same sum in the same order whatever the rows and panels asked, so splitting a
 * job among threads does not change its result. */
void fl_convk_run(const struct fl_convk_job *j, int m0, int m1, int p0, int p1);

/* Rows [m0, m1) of Y for a job whose B is packed by columns instead: column j's k values at
 * bp + j * k (for products of fewer than FL_CONVK_NARROW columns, small planes at batch 1,
 * where a panel's vector would be mostly empty). Same contract as fl_convk_run otherwise. */
void fl_convk_run_narrow(const struct fl_convk_job *j, int m0, int m1);

/* Gather one sample's columns into a panel: for input channel c < nch and tap l < ntaps, the
 * panel's row c * ntaps + l, lanes 0 .. len-1 from dst on (len <= FL_CONVK_NR, within the
 * panel), gets x[c * plane + idx[l * ldi + i]], or 0 where that index is negative (padding).
 * Only when fl_convk_supported(). */
void fl_convk_pack(const float *x, size_t plane, int nch, int ntaps, const int32_t *idx, size_t ldi,
                   int len, float *dst);

/* dst [cols, rows] = the transpose of src [rows, cols], by 16 x 16 blocks in registers.
 * Only when fl_convk_supported(). */
void fl_convk_transpose(const float *src, float *dst, size_t rows, size_t cols);

#define FL_CONVK_NARROW 16 /* products of fewer columns use fl_convk_run_narrow */

/* The AVX2 builds of the four functions above (fl_convk2.c), same contracts; only fl_convk.c
 * calls them, on CPUs with AVX2 and FMA but not AVX-512. */
void fl_convk2_run(const struct fl_convk_job *j, int m0, int m1, int p0, int p1);
void fl_convk2_run_narrow(const struct fl_convk_job *j, int m0, int m1);
void fl_convk2_pack(const float *x, size_t plane, int nch, int ntaps, const int32_t *idx,
                    size_t ldi, int len, float *dst);
void fl_convk2_transpose(const float *src, float *dst, size_t rows, size_t cols);

/* fl_dwk.c: 3x3 depthwise convolutions, stride 1 or 2 both ways, dilation 1, channel plane by
 * channel plane with AVX2 and FMA (AVX-512 CPUs too). Only when fl_convk_supported(). */
struct fl_dwk_plane {
    int h, w;   /* input plane */
    int pt, pl; /* padding before (top, left); the output's geometry says the rest */
    int stride; /* 1 or 2 */
    int oh, ow; /* output plane */
};
/* Output channel o's plane y + o * ystride [oh, ow] = the 3x3 window sums of input plane
 * x + (o / mg) * xstride [h, w] (zeros outside) weighted by w + 9 o (row by row), plus bias[o]
 * (when bias), through act. */
struct fl_dwk_job {
    struct fl_dwk_plane q;
    const float *x;
    size_t xstride;
    int mg;
    const float *w, *bias;
    float *y;
    size_t ystride;
    enum fl_convk_act act;
    float lo, hi; /* FL_CONVK_CLIP's bounds */
};
/* Does a depthwise conv of this window, stride and dilation take fl_dwk_run? */
bool fl_dwk_fits(int kh, int kw, int sh, int sw, int dh, int dw);
/* Scratch floats fl_dwk_run needs for planes of this geometry. */
size_t fl_dwk_scratch(const struct fl_dwk_plane *q);
/* Output channels [o0, o1) of job j; buf: fl_dwk_scratch floats. */
void fl_dwk_run(const struct fl_dwk_job *j, int o0, int o1, float *buf);
/* Output rows of 8, 16, 24 or 32 from input rows as long (stride 1) or twice as long (stride
 * 2), one column of padding on the left, at most one row on top, planes of up to 32 rows: does
 * the plane take fl_dwk8_run (ahead of fl_dwk_run), and that run over output channels [o0, o1)
 * (no scratch). */
bool fl_dwk8_fits(const struct fl_dwk_plane *q);
void fl_dwk8_run(const struct fl_dwk_job *j, int o0, int o1);
/* Rows of 4 from rows of 4 (stride 1; an even number of output rows, at most 16 input rows),
 * one column of padding on the left, at most one row on top: fl_dwk4_run, same contract. */
bool fl_dwk4_fits(const struct fl_dwk_plane *q);
void fl_dwk4_run(const struct fl_dwk_job *j, int o0, int o1);

#endif
