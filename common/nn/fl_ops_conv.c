/* fl_ops_conv: the graph's Conv on NCHW values (stride, asymmetric padding, dilation, groups)
 * and the shape inference of every windowed op. A worker's samples go through in chunks, one
 * im2col matrix and one fl_gemm per chunk and group (the batch folded into the GEMM's N); a 1x1
 * stride-1 unpadded conv needs no im2col; a LoRA on a plain conv stays factored (W x + s B A x);
 * depthwise convs: fl_ops_depthwise.c; pools: fl_ops_pool.c. */
#include "fl_ops_window.h"

#include "fl_error.h"
#include "fl_linalg.h"

#include <float.h>
#include <string.h>

void fl_wgeom_of(const fl_graph_t *g, const struct fl_gnode *nd, struct fl_wgeom *q)
{
    const struct fl_gvalue *x = &g->values[nd->in[0]], *y = &g->values[nd->out];
    memset(q, 0, sizeof *q);
    q->groups = nd->op == FL_OP_CONV ? nd->a.group : 1;
    q->c = (int)x->dims[0] / q->groups;
    q->h = (int)x->dims[1], q->w = (int)x->dims[2];
    if (nd->op == FL_OP_CONV) {
        const struct fl_gvalue *wt = &g->values[nd->in[1]];
        q->kh = (int)wt->dims[2], q->kw = (int)wt->dims[3];
        q->mg = (int)wt->dims[0] / q->groups;
    } else {
        q->kh = nd->a.kernel[0], q->kw = nd->a.kernel[1];
    }
    q->sh = nd->a.stride[0], q->sw = nd->a.stride[1];
    q->pt = nd->a.pads[0], q->pl = nd->a.pads[1];
    q->dh = nd->op == FL_OP_CONV ? nd->a.dilation[0] : 1;
    q->dw = nd->op == FL_OP_CONV ? nd->a.dilation[1] : 1;
    q->oh = y->ndim == 3 ? (int)y->dims[1] : 0;
    q->ow = y->ndim == 3 ? (int)y->dims[2] : 0;
    q->depthwise = nd->op == FL_OP_CONV && q->c == 1 && q->groups > 1;
    q->direct = q->kh == 1 && q->kw == 1 && q->sh == 1 && q->sw == 1 && q->pt == 0 && q->pl == 0 &&
                nd->a.pads[2] == 0 && nd->a.pads[3] == 0;
}

/* Output size along one axis, or 0 when the window does not fit (64-bit: the kernel comes
 * from a weight's shape, which a file sets). */
static int s_out_size(int64_t in, int64_t pad0, int64_t pad1, int64_t k, int64_t stride,
                      int64_t dil)
{
    int64_t span = dil * (k - 1) + 1, len = in + pad0 + pad1;
    return len < span ? 0 : (int)((len - span) / stride + 1);
}

#define S_GEOM_MAX 4096 /* kernel, stride, dilation and padding along an axis */

static int s_window_infer(fl_graph_t *g, struct fl_gnode *nd, int c_out, int kh, int kw)
{
    struct fl_gvalue *x = &g->values[nd->in[0]], *y = &g->values[nd->out];
    char xs[64];
    const struct fl_op_attrs *a = &nd->a;
    if (x->ndim != 3)
        return fl_fail(FL_EMISMATCH, "graph: node '%s' (%s) needs a CxHxW input, '%s' is %s",
                       nd->name, fl_op_name(nd->op), x->name, fl_gv_shape_str(x, xs, sizeof xs));
    bool conv = nd->op == FL_OP_CONV;
    int dh = conv ? a->dilation[0] : 1, dw = conv ? a->dilation[1] : 1;
    if (a->stride[0] < 1 || a->stride[1] < 1 || dh < 1 || dw < 1 || kh < 1 || kw < 1 ||
        a->stride[0] > S_GEOM_MAX || a->stride[1] > S_GEOM_MAX || dh > S_GEOM_MAX ||
        dw > S_GEOM_MAX || kh > S_GEOM_MAX || kw > S_GEOM_MAX)
        return fl_fail(FL_EINVAL,
                       "graph: node '%s' has kernel %dx%d, stride %dx%d, dilation %dx%d "
                       "(each 1 to %d)",
                       nd->name, kh, kw, a->stride[0], a->stride[1], dh, dw, S_GEOM_MAX);
    for (int i = 0; i < 4; i++)
        if (a->pads[i] < 0 || a->pads[i] > S_GEOM_MAX || (!conv && a->pads[i] >= (i % 2 ? kw : kh)))
            return fl_fail(FL_EINVAL, "graph: node '%s' has padding %d on side %d", nd->name,
                           a->pads[i], i);
    int oh = s_out_size((int)x->dims[1], a->pads[0], a->pads[2], kh, a->stride[0], dh);
    int ow = s_out_size((int)x->dims[2], a->pads[1], a->pads[3], kw, a->stride[1], dw);
    if (oh < 1 || ow < 1)
        return fl_fail(FL_EMISMATCH, "graph: node '%s': a %dx%d window does not fit input %s",
                       nd->name, kh, kw, fl_gv_shape_str(x, xs, sizeof xs));
    int64_t dims[3] = {c_out, oh, ow};
    y->ndim = 3;
    memcpy(y->dims, dims, sizeof dims);
    y->numel = (size_t)c_out * (size_t)oh * (size_t)ow;
    return 0;
}

/* Scratch floats a worker uses for a chunk of samples: one GEMM over a chunk amortises
 * OpenBLAS's packing of the weight, which dominates when a sample's output plane is small (the
 * last stages of a CNN); 1 MiB keeps the im2col matrix near the cache (measured on resnet18 and
 * mobilenet_v2 at 32x32 and 64x64, batch 32: 4 MiB and 16 MiB were slower, 256 and 512 KiB too). */
#define S_CHUNK_FLOATS ((size_t)256 << 10)

/* Rank of a LoRA on the node's weight (0 for none). */
static int s_lora_rank(const fl_graph_t *g, const struct fl_gnode *nd)
{
    for (int i = 0; i < g->nloras; i++)
        if (g->loras[i].weff == nd->in[1])
            return g->loras[i].rank;
    return 0;
}

/* Scratch floats per sample of a chunk: col and dcol [k, p], the gathered output or its
 * gradient [out, p], and a factored LoRA's A col and B^T dY [rank, p]. */
static size_t s_chunk_floats(const struct fl_wgeom *q, int rank)
{
    size_t k = (size_t)q->c * q->kh * q->kw, p = (size_t)q->oh * q->ow;
    return (2 * k + (size_t)q->mg * q->groups + 2 * (size_t)rank) * p;
}

/* Output columns [*o0, *o1) of a row whose input column ox * sw - pl + kj * dw is inside
 * [0, w). */
static void s_valid_cols(const struct fl_wgeom *q, int kj, int *o0, int *o1)
{
    int off = kj * q->dw - q->pl; /* ix = ox * sw + off */
    int lo = off >= 0 ? 0 : (-off + q->sw - 1) / q->sw;
    int hi = q->w - off <= 0 ? 0 : (q->w - off + q->sw - 1) / q->sw;
    *o0 = lo < q->ow ? lo : q->ow;
    *o1 = hi < *o0 ? *o0 : hi > q->ow ? q->ow : hi;
}

/* The window taps a conv's col matrix holds: all of them, or (one group, a kernel of at most
 * S_MAX_TAPS taps) only the live ones: a tap that lands in the padding for every output row or
 * every output column contributes nothing (a 3x3 padded conv on a 1x1 or 2x2 plane, as in the
 * last stage of a CNN on small images), so its rows of col and columns of W are dropped. */
#define S_MAX_TAPS 64

struct s_taps {
    int n;               /* taps kept */
    bool pruned;         /* some were dropped: idx lists the kept ones */
    int idx[S_MAX_TAPS]; /* ki * kw + kj of each kept tap */
};

static void s_taps_of(const struct fl_wgeom *q, bool allow, struct s_taps *T)
{
    int kk = q->kh * q->kw;
    T->n = kk;
    T->pruned = false;
    if (!allow || q->groups != 1 || kk > S_MAX_TAPS || q->direct)
        return;
    int n = 0;
    for (int ki = 0; ki < q->kh; ki++) {
        bool rows = false;
        for (int oy = 0; oy < q->oh && !rows; oy++) {
            int iy = oy * q->sh - q->pt + ki * q->dh;
            rows = iy >= 0 && iy < q->h;
        }
        for (int kj = 0; kj < q->kw; kj++) {
            int o0, o1;
            s_valid_cols(q, kj, &o0, &o1);
            if (rows && o0 < o1)
                T->idx[n++] = ki * q->kw + kj;
        }
    }
    T->pruned = n < kk;
    T->n = n > 0 ? n : kk;
    if (n == 0)
        T->pruned = false;
}

/* dst [rows, c*T->n] = the kept taps' columns of src [rows, c*kh*kw]. */
static void s_compact(const struct fl_wgeom *q, const struct s_taps *T, const float *src, int rows,
                      float *dst)
{
    size_t kk = (size_t)q->kh * q->kw, kq = (size_t)q->c * T->n;
    for (size_t r = 0; r < (size_t)rows; r++)
        for (size_t c = 0; c < (size_t)q->c; c++)
            for (int l = 0; l < T->n; l++)
                dst[r * kq + c * T->n + l] = src[(r * q->c + c) * kk + T->idx[l]];
}

/* col [c*T->n, oh*ow] (rows ld floats apart) of one group's input planes x [c, h, w]. */
static void s_im2col(const struct fl_wgeom *q, const struct s_taps *T, const float *restrict x,
                     float *restrict col, size_t ld)
{
    for (int c = 0; c < q->c; c++)
        for (int l = 0; l < T->n; l++) {
            int tap = T->pruned ? T->idx[l] : l, ki = tap / q->kw, kj = tap % q->kw;
            float *row = col + ((size_t)c * T->n + l) * ld;
            const float *plane = x + (size_t)c * q->h * q->w;
            int o0, o1, off = kj * q->dw - q->pl;
            s_valid_cols(q, kj, &o0, &o1);
            for (int oy = 0; oy < q->oh; oy++, row += q->ow) {
                int iy = oy * q->sh - q->pt + ki * q->dh;
                if (iy < 0 || iy >= q->h || o0 == o1) {
                    memset(row, 0, (size_t)q->ow * sizeof *row);
                    continue;
                }
                const float *src = plane + (size_t)iy * q->w;
                for (int ox = 0; ox < o0; ox++)
                    row[ox] = 0.0f;
                if (q->sw == 1) /* short rows: a loop beats a call to memcpy */
                    for (int ox = o0; ox < o1; ox++)
                        row[ox] = src[ox + off];
                else
                    for (int ox = o0; ox < o1; ox++)
                        row[ox] = src[ox * q->sw + off];
                for (int ox = o1; ox < q->ow; ox++)
                    row[ox] = 0.0f;
            }
        }
}

/* dx [c, h, w] += the scatter of dcol [c*T->n, oh*ow] (rows ld floats apart). */
static void s_col2im(const struct fl_wgeom *q, const struct s_taps *T, const float *dcol, float *dx,
                     size_t ld)
{
    for (int c = 0; c < q->c; c++)
        for (int l = 0; l < T->n; l++) {
            int tap = T->pruned ? T->idx[l] : l, ki = tap / q->kw, kj = tap % q->kw;
            const float *row = dcol + ((size_t)c * T->n + l) * ld;
            float *plane = dx + (size_t)c * q->h * q->w;
            int o0, o1, off = kj * q->dw - q->pl;
            s_valid_cols(q, kj, &o0, &o1);
            for (int oy = 0; oy < q->oh; oy++, row += q->ow) {
                int iy = oy * q->sh - q->pt + ki * q->dh;
                if (iy < 0 || iy >= q->h)
                    continue;
                float *dst = plane + (size_t)iy * q->w;
                for (int ox = o0; ox < o1; ox++)
                    dst[ox * q->sw + off] += row[ox];
            }
        }
}

/* What a kernel call shares across its chunks: the taps, the weight (and a factored LoRA's A)
 * as the GEMMs read them (compacted when taps were dropped), and the chunk's scratch. */
struct s_ctx {
    struct s_taps taps;       /* the col matrix's taps */
    int k;                    /* rows of col: c * taps.n */
    const float *w, *a;       /* W [out, k] and A [rank, k] as used */
    const struct fl_glora *L; /* factored LoRA, or NULL */
    float *dap;               /* [rank, k]: dA of the kept taps (pruned only) */
    float *work;              /* chunk scratch */
};

/* Scratch floats before the chunk's: compacted W and A, and dA (see s_ctx). */
static size_t s_fixed_floats(const struct fl_wgeom *q, int rank)
{
    struct s_taps T;
    s_taps_of(q, true, &T);
    size_t k = (size_t)q->c * q->kh * q->kw;
    return T.pruned ? ((size_t)q->mg + 2 * (size_t)rank) * k : 0;
}

/* Samples per chunk of a worker's share (the scratch was sized for it at planning). */
static size_t s_chunk(const fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q)
{
    int rank = s_lora_rank(g, nd);
    size_t nb = (nd->scratch - s_fixed_floats(q, rank)) / s_chunk_floats(q, rank);
    return nb < 1 ? 1 : nb;
}

int fl_conv_infer(fl_graph_t *g, struct fl_gnode *nd)
{
    const struct fl_gvalue *x = &g->values[nd->in[0]], *w = &g->values[nd->in[1]];
    char xs[64], ws[64], bs[64];
    if (w->kind != FL_GV_PARAM || w->ndim != 4)
        return fl_fail(FL_EMISMATCH,
                       "graph: node '%s' (Conv) needs a 4-axis weight parameter, "
                       "'%s' is %s",
                       nd->name, w->name, fl_gv_shape_str(w, ws, sizeof ws));
    int grp = nd->a.group;
    if (x->ndim != 3 || grp < 1 || x->dims[0] % grp || w->dims[0] % grp ||
        w->dims[1] * grp != x->dims[0])
        return fl_fail(
            FL_EMISMATCH, "graph: node '%s' (Conv): weight %s with %d groups does not fit input %s",
            nd->name, fl_gv_shape_str(w, ws, sizeof ws), grp, fl_gv_shape_str(x, xs, sizeof xs));
    if (nd->nin == 3) {
        const struct fl_gvalue *b = &g->values[nd->in[2]];
        if (b->kind != FL_GV_PARAM || b->numel != (size_t)w->dims[0])
            return fl_fail(FL_EMISMATCH, "graph: node '%s' (Conv): bias %s for %lld outputs",
                           nd->name, fl_gv_shape_str(b, bs, sizeof bs), (long long)w->dims[0]);
    }
    int rc = s_window_infer(g, nd, (int)w->dims[0], (int)w->dims[2], (int)w->dims[3]);
    if (rc)
        return rc;
    struct fl_wgeom q;
    fl_wgeom_of(g, nd, &q);
    size_t per = s_chunk_floats(&q, s_lora_rank(g, nd)),
           workers = g->nworkers > 0 ? (size_t)g->nworkers : 1;
    size_t share = ((size_t)g->max_batch + workers - 1) / workers, nb = S_CHUNK_FLOATS / per;
    nd->scratch = q.depthwise ? fl_depthwise_scratch(&q)
                              : s_fixed_floats(&q, s_lora_rank(g, nd)) + per * (nb < 1       ? 1
                                                                                : nb > share ? share
                                                                                             : nb);
    return 0;
}

int fl_pool_infer(fl_graph_t *g, struct fl_gnode *nd)
{
    return s_window_infer(g, nd, (int)g->values[nd->in[0]].dims[0], nd->a.kernel[0],
                          nd->a.kernel[1]);
}

static void s_ctx_init(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q, int t,
                       bool allow_prune, struct s_ctx *x)
{
    x->L = fl_lora_of(g, nd);
    x->w = fl_gv_data(g, x->L ? x->L->w : nd->in[1], 0);
    x->a = x->L ? g->values[x->L->a].data : NULL;
    s_taps_of(q, allow_prune, &x->taps);
    x->k = q->c * x->taps.n;
    int r = x->L ? x->L->rank : 0;
    size_t kfull = (size_t)q->c * q->kh * q->kw, fixed = s_fixed_floats(q, s_lora_rank(g, nd));
    float *base = g->scratch[t];
    x->work = base + fixed;
    x->dap = NULL;
    if (!x->taps.pruned)
        return;
    s_compact(q, &x->taps, x->w, q->mg, base);
    x->w = base;
    if (x->L) {
        s_compact(q, &x->taps, x->a, r, base + (size_t)q->mg * kfull);
        x->a = base + (size_t)q->mg * kfull;
        x->dap = base + ((size_t)q->mg + (size_t)r) * kfull;
    }
}

/* col [k, nb*p] of group gi of samples [s0, s0 + nb) (sample j in columns j*p..). */
static void s_gather_col(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q,
                         const struct s_taps *T, int gi, size_t s0, size_t nb, float *col)
{
    int k = q->c * T->n, p = q->oh * q->ow;
    size_t ld = nb * (size_t)p, xin = (size_t)q->c * q->h * q->w;
    for (size_t j = 0; j < nb; j++) {
        const float *x = fl_gv_data(g, nd->in[0], s0 + j) + gi * xin;
        if (q->direct)
            for (int c = 0; c < k; c++)
                memcpy(col + c * ld + j * p, x + (size_t)c * p, (size_t)p * sizeof *col);
        else
            s_im2col(q, T, x, col + j * p, ld);
    }
}

/* Forward of samples [s0, s0 + nb) as one GEMM per group: col [k, nb*p] (sample j in columns
 * j*p..), Y [out, nb*p] = W col (+ s B (A col)), then each sample's planes get their columns
 * and the bias. */
static void s_conv_fwd_chunk(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q,
                             const struct s_ctx *x, size_t s0, size_t nb)
{
    const float *b = nd->nin == 3 ? fl_gv_data(g, nd->in[2], 0) : NULL;
    int k = x->k, p = q->oh * q->ow, m = q->mg * q->groups;
    size_t ld = nb * (size_t)p;
    float *col = x->work, *yc = col + 2 * (size_t)k * ld, *ac = yc + (size_t)m * ld;
    for (int gi = 0; gi < q->groups; gi++) {
        s_gather_col(g, nd, q, &x->taps, gi, s0, nb, col);
        fl_gemm(false, false, q->mg, (int)ld, k, 1.0f, x->w + (size_t)gi * q->mg * k, k, col,
                (int)ld, 0.0f, yc + (size_t)gi * q->mg * ld, (int)ld);
    }
    if (x->L) { /* one group */
        fl_gemm(false, false, x->L->rank, (int)ld, k, 1.0f, x->a, k, col, (int)ld, 0.0f, ac,
                (int)ld);
        fl_gemm(false, false, m, (int)ld, x->L->rank, x->L->scale, g->values[x->L->b].data,
                x->L->rank, ac, (int)ld, 1.0f, yc, (int)ld);
    }
    for (size_t j = 0; j < nb; j++) {
        float *y = fl_gv_data(g, nd->out, s0 + j);
        for (int o = 0; o < m; o++) {
            const float *src = yc + o * ld + j * p;
            float bo = b ? b[o] : 0.0f, *dst = y + (size_t)o * p;
            for (int i = 0; i < p; i++)
                dst[i] = src[i] + bo;
        }
    }
}

void fl_conv_fwd(fl_graph_t *g, const struct fl_gnode *nd, int t, size_t b0, size_t b1)
{
    struct fl_wgeom q;
    fl_wgeom_of(g, nd, &q);
    if (q.depthwise) {
        fl_depthwise_fwd(g, nd, &q, t, b0, b1);
        return;
    }
    struct s_ctx x;
    s_ctx_init(g, nd, &q, t, true, &x);
    size_t nb = s_chunk(g, nd, &q);
    for (size_t s = b0; s < b1; s += nb)
        s_conv_fwd_chunk(g, nd, &q, &x, s, b1 - s < nb ? b1 - s : nb);
}

/* dx of group gi of samples [s0, s0 + nb) += the scatter of dcol [k, nb*p]. */
static void s_scatter_dcol(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q,
                           const struct s_taps *T, int t, int gi, size_t s0, size_t nb,
                           const float *dcol)
{
    int k = q->c * T->n, p = q->oh * q->ow;
    size_t ld = nb * (size_t)p, xin = (size_t)q->c * q->h * q->w;
    for (size_t j = 0; j < nb; j++) {
        float *dxs = fl_gv_grad(g, nd->in[0], t, s0 + j) + gi * xin;
        if (!q->direct) {
            s_col2im(q, T, dcol + j * p, dxs, ld);
            continue;
        }
        for (int c = 0; c < k; c++) {
            const float *src = dcol + c * ld + j * p;
            float *dst = dxs + (size_t)c * p;
            for (int i = 0; i < p; i++)
                dst[i] += src[i];
        }
    }
}

/* A factored LoRA's backward on a chunk (one group): with u = B^T dY and a = A col,
 * dA += s u col^T, dB += s dY a^T, dcol = W^T dY + s A^T u. */
static void s_lora_bwd_chunk(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q,
                             const struct s_ctx *x, int t, size_t s0, size_t nb, const float *dyc)
{
    const struct fl_glora *L = x->L;
    int k = x->k, p = q->oh * q->ow, m = q->mg, r = L->rank;
    size_t ld = nb * (size_t)p;
    float *col = x->work, *dcol = col + (size_t)k * ld, *u = dcol + (size_t)(k + m) * ld;
    float *ac = u + (size_t)r * ld, *da = fl_gv_grad(g, L->a, t, 0);
    float *dbl = fl_gv_grad(g, L->b, t, 0);
    const float *B = g->values[L->b].data;
    fl_gemm(true, false, r, (int)ld, m, 1.0f, B, r, dyc, (int)ld, 0.0f, u, (int)ld);
    if (da || dbl)
        s_gather_col(g, nd, q, &x->taps, 0, s0, nb, col);
    if (da && !x->dap)
        fl_gemm(false, true, r, k, (int)ld, L->scale, u, (int)ld, col, (int)ld, 1.0f, da, k);
    if (da && x->dap) { /* the kept taps' columns, then into dA's */
        fl_gemm(false, true, r, k, (int)ld, L->scale, u, (int)ld, col, (int)ld, 0.0f, x->dap, k);
        size_t kk = (size_t)q->kh * q->kw;
        for (size_t i = 0; i < (size_t)r * q->c; i++)
            for (int l = 0; l < x->taps.n; l++)
                da[i * kk + x->taps.idx[l]] += x->dap[i * x->taps.n + l];
    }
    if (dbl) {
        fl_gemm(false, false, r, (int)ld, k, 1.0f, x->a, k, col, (int)ld, 0.0f, ac, (int)ld);
        fl_gemm(false, true, m, r, (int)ld, L->scale, dyc, (int)ld, ac, (int)ld, 1.0f, dbl, r);
    }
    if (!g->values[nd->in[0]].needs_grad)
        return;
    fl_gemm(true, false, k, (int)ld, m, 1.0f, x->w, k, dyc, (int)ld, 0.0f, dcol, (int)ld);
    fl_gemm(true, false, k, (int)ld, r, L->scale, x->a, k, u, (int)ld, 1.0f, dcol, (int)ld);
    s_scatter_dcol(g, nd, q, &x->taps, t, 0, s0, nb, dcol);
}

/* Backward of samples [s0, s0 + nb): dY gathered into [out, nb*p]; dW += dY col^T, db += the
 * rows of dY, dcol = W^T dY scattered back into each sample's dx. Only what is wanted. */
static void s_conv_bwd_chunk(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q,
                             const struct s_ctx *x, int t, size_t s0, size_t nb)
{
    float *dw = fl_gv_grad(g, nd->in[1], t, 0);
    float *db = nd->nin == 3 ? fl_gv_grad(g, nd->in[2], t, 0) : NULL;
    int k = x->k, p = q->oh * q->ow, m = q->mg * q->groups;
    size_t ld = nb * (size_t)p;
    float *col = x->work, *dcol = col + (size_t)k * ld, *dyc = dcol + (size_t)k * ld;
    for (size_t j = 0; j < nb; j++) {
        const float *dy = fl_gv_grad(g, nd->out, t, s0 + j);
        for (int o = 0; o < m; o++)
            memcpy(dyc + o * ld + j * p, dy + (size_t)o * p, (size_t)p * sizeof *dyc);
    }
    for (int o = 0; db && o < m; o++) {
        float sum = 0.0f;
        for (size_t i = 0; i < ld; i++)
            sum += dyc[o * ld + i];
        db[o] += sum;
    }
    if (x->L) {
        s_lora_bwd_chunk(g, nd, q, x, t, s0, nb, dyc);
        return;
    }
    for (int gi = 0; gi < q->groups; gi++) {
        const float *dyg = dyc + (size_t)gi * q->mg * ld, *wg = x->w + (size_t)gi * q->mg * k;
        if (dw) {
            s_gather_col(g, nd, q, &x->taps, gi, s0, nb, col);
            fl_gemm(false, true, q->mg, k, (int)ld, 1.0f, dyg, (int)ld, col, (int)ld, 1.0f,
                    dw + (size_t)gi * q->mg * k, k);
        }
        if (!g->values[nd->in[0]].needs_grad)
            continue;
        fl_gemm(true, false, k, (int)ld, q->mg, 1.0f, wg, k, dyg, (int)ld, 0.0f, dcol, (int)ld);
        s_scatter_dcol(g, nd, q, &x->taps, t, gi, s0, nb, dcol);
    }
}

void fl_conv_bwd(fl_graph_t *g, const struct fl_gnode *nd, int t, size_t b0, size_t b1)
{
    struct fl_wgeom q;
    fl_wgeom_of(g, nd, &q);
    if (q.depthwise) {
        fl_depthwise_bwd(g, nd, &q, t, b0, b1);
        return;
    }
    struct s_ctx x; /* a weight gradient needs every tap's columns */
    s_ctx_init(g, nd, &q, t, !g->values[nd->in[1]].needs_grad, &x);
    size_t nb = s_chunk(g, nd, &q);
    for (size_t s = b0; s < b1; s += nb)
        s_conv_bwd_chunk(g, nd, &q, &x, t, s, b1 - s < nb ? b1 - s : nb);
}
