/* fl_ops_conv_impl: what the forward (fl_ops_conv.c) and backward (fl_ops_conv_bwd.c) halves
 * of the graph's Conv share: the taps a call keeps, its context, and the helpers both use. */
#ifndef FL_OPS_CONV_IMPL_H
#define FL_OPS_CONV_IMPL_H

#include "fl_convk.h"
#include "fl_ops_window.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A kxk conv's taps: all of them, or (a kernel of at most FL_CV_MAX_TAPS taps) only the live
 * ones (fl_ops_conv.c says which those are). */
#define FL_CV_MAX_TAPS 64

struct fl_cv_taps {
    int n;                   /* taps kept */
    bool pruned;             /* some were dropped: idx lists the kept ones */
    int idx[FL_CV_MAX_TAPS]; /* ki * kw + kj of each kept tap */
};

/* Output columns [*o0, *o1) of a row whose input column ox * sw - pl + kj * dw is inside
 * [0, w). */
void fl_cv_valid_cols(const struct fl_wgeom *q, int kj, int *o0, int *o1);
/* The taps a conv's col matrix holds: all (allow false), or only the live ones. */
void fl_cv_taps_of(const struct fl_wgeom *q, bool allow, struct fl_cv_taps *T);
/* dst [rows, c*T->n] = the kept taps' columns of src [rows, c*kh*kw]. */
void fl_cv_compact(const struct fl_wgeom *q, const struct fl_cv_taps *T, const float *src, int rows,
                   float *dst);
/* Before a forward pass: the kept columns of every frozen conv weight that drops taps, made
 * again where a parameter may have changed since (fl_graph_touch). 0 or FL_ENOMEM. */
int fl_cv_cache_all(fl_graph_t *g);
/* Node nd's cached W [out, c * kept taps] (the taps of fl_cv_taps_of(q, true)), or NULL. */
const float *fl_cv_cached(const fl_graph_t *g, const struct fl_gnode *nd);

/* What a kernel call shares across its chunks: the taps, the weight (and a factored LoRA's A)
 * as the GEMMs read them (compacted when taps were dropped), and the chunk's scratch. */
struct fl_cv_ctx {
    struct fl_cv_taps taps;   /* the col matrix's taps */
    int k;                    /* rows of col: c * taps.n */
    const float *w, *a;       /* W [out, k] and A [rank, k] as used */
    const struct fl_glora *L; /* factored LoRA, or NULL */
    float *dap;               /* [rank, k]: dA of the kept taps (pruned only) */
    float *work;              /* chunk scratch */
};

/* The context of a kernel call as worker t; with pruned taps, W's rows [r0, r1) are compacted
 * (the others are not read). */
void fl_cv_ctx_init(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q, int t,
                    bool allow_prune, int r0, int r1, struct fl_cv_ctx *x);
/* Samples per chunk of a worker's share (the scratch was sized for it at planning). */
size_t fl_cv_chunk(const fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q);
/* dx [c, h, w] += the scatter of dcol [c*T->n, oh*ow] (rows ld floats apart). */
void fl_cv_col2im(const struct fl_wgeom *q, const struct fl_cv_taps *T, const float *dcol,
                  float *dx, size_t ld);
/* col [k, nb*p] of group gi of samples [s0, s0 + nb) (sample j in columns j*p..). */
void fl_cv_gather_col(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q,
                      const struct fl_cv_taps *T, int gi, size_t s0, size_t nb, float *col);

/* fl_ops_conv_pack.c: the input packed for fl_convk. Columns [i0, i1) of sample x's positions
 * (col0: its first column in the chunk) into panels bp [k rows] (panel j / NR at j / NR * k * NR,
 * row r of it NR floats at r * NR). */
void fl_cv_pack_sample(const struct fl_wgeom *q, const struct fl_cv_taps *T, const float *x,
                       float *bp, size_t k, size_t col0, int i0, int i1);
/* Columns [c0, c1) of a 1x1 conv's chunk into panels as above, for planes of p < FL_CONVK_NR
 * positions (a panel spans samples): x0 the chunk's first sample, samples xs floats apart. */
void fl_cv_pack_direct(const float *x0, size_t xs, size_t p, int nch, float *bp, size_t k,
                       size_t c0, size_t c1);
/* Sample x's columns for fl_convk_run_narrow: column j's k values at bt + j * k, from col0. */
void fl_cv_pack_narrow(const struct fl_wgeom *q, const struct fl_cv_taps *T, const float *x,
                       float *bt, size_t k, size_t col0);
/* idx [T->n][oh*ow]: the input plane offset each kept tap reads at each position, -1 in the
 * padding (fl_convk_pack's table). */
void fl_cv_tap_index(const struct fl_wgeom *q, const struct fl_cv_taps *T, int32_t *idx);

/* Are node nd's values, at the current batch, the same whatever samples a call computes together
 * (the engine's own kernels: each element one sum in a fixed order)? */
bool fl_conv_per_sample(const fl_graph_t *g, const struct fl_gnode *nd);

/* Node nd's fl_convk job as every path starts it: W [mg, k] (rows k apart), the output planes,
 * the bias and the fused activation (none when raw: a factored LoRA's term comes first). */
/* The residual a conv adds to its output for sample s on (a fused Add's other operand, laid
 * out as the output), NULL for none. */
static inline const float *fl_cv_res(const fl_graph_t *g, const struct fl_gnode *nd, size_t s)
{
    return nd->res >= 0 ? fl_gv_data(g, nd->res, s) : NULL;
}

struct fl_convk_job fl_cv_job(const fl_graph_t *g, const struct fl_gnode *nd,
                              const struct fl_wgeom *q, const float *w, int k, bool raw);

/* fl_ops_conv_pad.c: can node nd's forward pass read its input from a padded copy (AVX2, one
 * group, a window of more than one tap, output rows of whole half panels, no factored LoRA)? Its
 * scratch (floats, after the fixed part), and samples [b0, b1) as worker t, panels of part `part`
 * of nparts. */
bool fl_cv_pad_fits(const fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q);
size_t fl_cv_pad_scratch(const struct fl_wgeom *q);
void fl_cv_fwd_pad(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q, int t,
                   size_t b0, size_t b1, int part, int nparts);

/* fl_ops_conv_class.c: would a conv of geometry q gain by tap classes (enough of its product
 * in the padding; found once, at planning: fl_gnode's classes_fit)? Does node nd's forward pass
 * at the current batch go by tap classes (the AVX2 kernel), and that pass over samples [b0, b1)
 * as worker t. */
bool fl_cv_classes_fit(const struct fl_wgeom *q);
bool fl_cv_classes_pay(const fl_graph_t *g, const struct fl_gnode *nd);
/* Scratch floats that pass needs (0 where it never runs). */
size_t fl_cv_classes_scratch(const fl_graph_t *g, const struct fl_wgeom *q);
void fl_cv_fwd_classes(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q, int t,
                       size_t b0, size_t b1);

#endif
