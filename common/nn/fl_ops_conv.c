/* fl_ops_conv: the graph's Conv on NCHW values (stride, asymmetric padding, dilation, groups):
 * its shape inference and forward pass. A worker's samples go through in chunks, one im2col
 * matrix and one fl_gemm per chunk and group (the batch folded into the GEMM's N), or fl_convk
 * (AVX-512 or AVX2) where it runs; a 1x1 stride-1 unpadded conv needs no im2col; a LoRA on a
 * plain conv stays factored (W x + s B A x). The backward pass: fl_ops_conv_bwd.c; the window
 * geometry: fl_ops_window.c; depthwise convs: fl_ops_depthwise.c; pools: fl_ops_pool.c. */
#include "fl_ops_window.h"
#include "fl_ops_conv_impl.h"

#include "fl_convk.h"
#include "fl_error.h"
#include "fl_linalg.h"

#include <float.h>
#include <string.h>

/* Scratch floats a worker uses for a chunk of samples: one GEMM over a chunk amortises
 * OpenBLAS's packing of the weight, which dominates when a sample's output plane is small (the
 * last stages of a CNN); 1 MiB keeps the im2col matrix near the cache (measured on resnet18 and
 * mobilenet_v2 at 32x32 and 64x64, batch 32: 4 MiB and 16 MiB were slower, 256 and 512 KiB too). */
#define S_CHUNK_FLOATS ((size_t)256 << 10)
/* ...but at least this many columns (samples times positions) when the planes are small: the
 * backward pass's W^T dY packs W once per chunk, and with resnet18's last stage at 64x64 (2x2
 * planes, W 512 x 4608) a 1 MiB chunk held 6 samples, so W was packed 6 times per batch. */
#define S_CHUNK_MIN_COLS 128

/* Rank of a LoRA on the node's weight (0 for none). */
static int s_lora_rank(const fl_graph_t *g, const struct fl_gnode *nd)
{
    for (int i = 0; i < g->nloras; i++)
        if (g->loras[i].weff == nd->in[1])
            return g->loras[i].rank;
    return 0;
}

/* Rows of a conv's full col matrix: c * kh * kw. */
static size_t s_kfull(const struct fl_wgeom *q)
{
    return (size_t)q->c * q->kh * q->kw;
}

/* Scratch floats per sample of a chunk: col and dcol [k, p], the gathered output or its
 * gradient [out, p], and a factored LoRA's A col and B^T dY [rank, p]. */
static size_t s_chunk_floats(const struct fl_wgeom *q, int rank)
{
    size_t k = (size_t)q->c * q->kh * q->kw, p = (size_t)q->oh * q->ow;
    return (2 * k + (size_t)q->mg * q->groups + 2 * (size_t)rank) * p;
}

/* col [c*T->n, oh*ow] (rows ld floats apart) of one group's input planes x [c, h, w]. */
static void s_im2col(const struct fl_wgeom *q, const struct fl_cv_taps *T, const float *restrict x,
                     float *restrict col, size_t ld)
{
    for (int c = 0; c < q->c; c++)
        for (int l = 0; l < T->n; l++) {
            int tap = T->pruned ? T->idx[l] : l, ki = tap / q->kw, kj = tap % q->kw;
            float *row = col + ((size_t)c * T->n + l) * ld;
            const float *plane = x + (size_t)c * q->h * q->w;
            int o0, o1, off = kj * q->dw - q->pl;
            fl_cv_valid_cols(q, kj, &o0, &o1);
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
void fl_cv_col2im(const struct fl_wgeom *q, const struct fl_cv_taps *T, const float *dcol,
                  float *dx, size_t ld)
{
    for (int c = 0; c < q->c; c++)
        for (int l = 0; l < T->n; l++) {
            int tap = T->pruned ? T->idx[l] : l, ki = tap / q->kw, kj = tap % q->kw;
            const float *row = dcol + ((size_t)c * T->n + l) * ld;
            float *plane = dx + (size_t)c * q->h * q->w;
            int o0, o1, off = kj * q->dw - q->pl;
            fl_cv_valid_cols(q, kj, &o0, &o1);
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

/* Scratch floats before the chunk's: compacted W and A, and dA (see s_ctx). */
static size_t s_fixed_floats(const struct fl_wgeom *q, int rank)
{
    struct fl_cv_taps T;
    fl_cv_taps_of(q, true, &T);
    size_t k = (size_t)q->c * q->kh * q->kw;
    return T.pruned ? ((size_t)q->mg + 2 * (size_t)rank) * k : 0;
}

/* Samples per chunk of a worker's share (the scratch was sized for it at planning). */
size_t fl_cv_chunk(const fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q)
{
    int rank = s_lora_rank(g, nd);
    size_t nb = (nd->scratch - s_fixed_floats(q, rank)) / s_chunk_floats(q, rank);
    return nb < 1 ? 1 : nb;
}

/* Scratch floats of a conv (not depthwise) whose chunks hold what S_CHUNK_FLOATS does, at
 * least `least` samples, at most a worker's share: the portable path's chunk, or fl_convk's
 * panels (a chunk's columns, or a small batch's). */
static size_t s_scratch(const fl_graph_t *g, const struct fl_wgeom *q, int rank, size_t least)
{
    size_t workers = g->nworkers > 0 ? (size_t)g->nworkers : 1, few = workers > 1 ? workers - 1 : 1;
    size_t share = ((size_t)g->max_batch + workers - 1) / workers;
    size_t nb = S_CHUNK_FLOATS / s_chunk_floats(q, rank); /* samples a chunk */
    nb = nb < least ? least : nb;
    nb = nb < 1 ? 1 : nb > share ? share : nb;
    size_t plain = s_fixed_floats(q, rank) + s_chunk_floats(q, rank) * nb;
    size_t cols = (size_t)q->oh * q->ow *
                  (nb > few                     ? nb
                   : few > (size_t)g->max_batch ? (size_t)g->max_batch
                                                : few);
    size_t lora = rank ? ((size_t)rank + (size_t)q->mg) * cols : 0;
    size_t fast = s_fixed_floats(q, rank) + (size_t)q->kh * q->kw * q->oh * q->ow +
                  s_kfull(q) * (cols + FL_CONVK_NR) + lora;
    return plain > fast ? plain : fast;
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
    int rc = fl_window_infer(g, nd, (int)w->dims[0], (int)w->dims[2], (int)w->dims[3]);
    if (rc)
        return rc;
    struct fl_wgeom q;
    fl_wgeom_of(g, nd, &q);
    size_t p = (size_t)q.oh * q.ow, least = (S_CHUNK_MIN_COLS + p - 1) / p;
    nd->scratch =
        q.depthwise ? fl_depthwise_scratch(&q) : s_scratch(g, &q, s_lora_rank(g, nd), least);
    nd->classes_fit = fl_cv_classes_fit(&q);
    if (fl_cv_pad_fits(g, nd, &q) && s_fixed_floats(&q, 0) + fl_cv_pad_scratch(&q) > nd->scratch)
        nd->scratch = s_fixed_floats(&q, 0) + fl_cv_pad_scratch(&q);
    size_t classes = fl_cv_classes_scratch(g, &q);
    if (classes)
        nd->scratch = s_fixed_floats(&q, 0) + classes > nd->scratch
                          ? s_fixed_floats(&q, 0) + classes
                          : nd->scratch;
    return 0;
}

/* The context of a kernel call as worker t; with pruned taps, W's rows [r0, r1) are compacted
 * (the others are not read). */
void fl_cv_ctx_init(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q, int t,
                    bool allow_prune, int r0, int r1, struct fl_cv_ctx *x)
{
    x->L = fl_lora_of(g, nd);
    x->w = fl_gv_data(g, x->L ? x->L->w : nd->in[1], 0);
    x->a = x->L ? g->values[x->L->a].data : NULL;
    fl_cv_taps_of(q, allow_prune, &x->taps);
    x->k = q->c * x->taps.n;
    int r = x->L ? x->L->rank : 0;
    size_t kfull = (size_t)q->c * q->kh * q->kw, fixed = s_fixed_floats(q, s_lora_rank(g, nd));
    float *base = g->scratch[t];
    x->work = base + fixed;
    x->dap = NULL;
    if (!x->taps.pruned)
        return;
    const float *wc = x->L ? NULL : fl_cv_cached(g, nd); /* the same taps: fl_cv_taps_of(q, true) */
    if (wc) {
        x->w = wc;
        return;
    }
    fl_cv_compact(q, &x->taps, x->w + (size_t)r0 * kfull, r1 - r0, base + (size_t)r0 * x->k);
    x->w = base;
    if (x->L) {
        fl_cv_compact(q, &x->taps, x->a, r, base + (size_t)q->mg * kfull);
        x->a = base + (size_t)q->mg * kfull;
        x->dap = base + ((size_t)q->mg + (size_t)r) * kfull;
    }
}

/* col [k, nb*p] of group gi of samples [s0, s0 + nb) (sample j in columns j*p..). */
void fl_cv_gather_col(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q,
                      const struct fl_cv_taps *T, int gi, size_t s0, size_t nb, float *col)
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
                             const struct fl_cv_ctx *x, size_t s0, size_t nb)
{
    const float *b = nd->nin == 3 ? fl_gv_data(g, nd->in[2], 0) : NULL;
    int k = x->k, p = q->oh * q->ow, m = q->mg * q->groups;
    size_t ld = nb * (size_t)p;
    float *col = x->work, *yc = col + 2 * (size_t)k * ld, *ac = yc + (size_t)m * ld;
    for (int gi = 0; gi < q->groups; gi++) {
        fl_cv_gather_col(g, nd, q, &x->taps, gi, s0, nb, col);
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
        const float *res = fl_cv_res(g, nd, s0 + j);
        for (int o = 0; o < m; o++) {
            const float *src = yc + o * ld + j * p;
            float bo = b ? b[o] : 0.0f, *dst = y + (size_t)o * p;
            for (int i = 0; i < p; i++)
                dst[i] = src[i] + bo;
            for (int i = 0; res && i < p; i++)
                dst[i] += res[(size_t)o * p + (size_t)i];
            fl_act_apply(nd, dst, (size_t)p);
        }
    }
}

/* Does the conv's product take fl_convk_run_narrow? Fewer columns at this batch (the same for
 * every worker) than a vector holds. */
static bool s_narrow(const fl_graph_t *g, const struct fl_wgeom *q)
{
    return (size_t)q->oh * q->ow * (size_t)g->batch < FL_CONVK_NARROW;
}

/* A narrow product needs k of a few vectors: its dot products end in reductions (eight at once
 * on AVX2). It reads W in place with its dead taps (zeros in B): the product is bound by
 * reading W, which compacting the kept taps' columns first would read too, by scattered floats,
 * and then write and read again. Measured on AVX2 with mobilenet_v2 at 64x64, batch 1: its
 * 1x1 convs on 2x2 planes (k 160 to 960) took 1.5-1.8x less time than through OpenBLAS, which
 * packs the whole weight for 4 columns. The AVX-512 kernel keeps the bound it was measured
 * with (1024 beat 256 there). */
#define S_NARROW_MIN_K(wide) ((wide) ? 1024 : 64)

/* Can fl_convk run node nd's forward pass? One group (a factored LoRA too). */
static bool s_fast(const fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q)
{
    (void)nd;
    return g->simd && !q->depthwise && q->groups == 1 &&
           (!s_narrow(g, q) || s_kfull(q) >= S_NARROW_MIN_K(fl_convk_wide()));
}

/* Does node nd's forward pass take fl_cv_fwd_pad? Before tap classes too: resnet18's 3x3
 * convs on 16x16 planes (classes drop 8% of their multiply-adds) ran 1.13-1.26x faster so. */
static bool s_padded(const fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q)
{
    return s_fast(g, nd, q) && fl_cv_pad_fits(g, nd, q);
}

/* A factored LoRA's term on rows [ma, mb) and columns [c0, c1) of a chunk whose main product j
 * stored without the activation: ac [rank, ncols] = A col by fl_convk (panels [pa, pb), or the
 * narrow kernel), then y = act(y + s B ac), each sample's run of positions at a time. */
static void s_lora_fwd_fast(const struct fl_gnode *nd, const struct fl_cv_ctx *x,
                            const struct fl_convk_job *j, const float *B, float *ac, bool narrow,
                            size_t pa, size_t pb, size_t ma, size_t mb, size_t c0, size_t c1)
{
    const struct fl_glora *L = x->L;
    size_t r = (size_t)L->rank, ncols = (size_t)j->ncols, p = (size_t)j->p;
    struct fl_convk_job ja = *j;
    ja.m = L->rank, ja.w = x->a, ja.y = ac, ja.p = j->ncols, ja.ystride = 0, ja.bias = NULL;
    ja.act = FL_CONVK_NONE, ja.res = NULL; /* (a conv with LoRA takes no residual: fl_graph_fuse) */
    if (narrow)
        fl_convk_run_narrow(&ja, 0, L->rank);
    else
        fl_convk_run(&ja, 0, L->rank, (int)pa, (int)pb);
    for (size_t cs = c0; cs < c1;) {
        size_t ce = (cs / p + 1) * p < c1 ? (cs / p + 1) * p : c1;
        for (size_t o = ma; o < mb; o++) {
            float *restrict dst = j->y + cs / p * j->ystride + o * p + cs % p;
            for (size_t i = 0; i < r; i++) {
                float coef = L->scale * B[o * r + i];
                const float *restrict ai = ac + i * ncols + cs;
                for (size_t c = 0; c < ce - cs; c++)
                    dst[c] += coef * ai[c];
            }
            fl_act_apply(nd, dst, ce - cs);
        }
        cs = ce;
    }
}

/* How part `part` of nparts shares a chunk of ncols columns: panels [*pa, *pb) (a wide chunk)
 * or output channels [*ma, *mb) (a narrow one: the last stages of a CNN at batch 1, where the
 * weight dominates). Cuts fall on panel and register-block boundaries. */
static void s_share(const struct fl_wgeom *q, size_t ncols, bool narrow, int part, int nparts,
                    size_t *pa, size_t *pb, size_t *ma, size_t *mb)
{
    size_t nr = FL_CONVK_NR, mr = narrow ? 4 : FL_CONVK_MR, mg = (size_t)q->mg;
    size_t npan = narrow ? 1 : (ncols + nr - 1) / nr, mblk = (mg + mr - 1) / mr;
    *pa = 0, *pb = npan, *ma = 0, *mb = mg;
    if (nparts > 1 && !narrow && ncols >= mg) {
        *pa = npan * (size_t)part / (size_t)nparts;
        *pb = npan * ((size_t)part + 1) / (size_t)nparts;
    } else if (nparts > 1) {
        *ma = mblk * (size_t)part / (size_t)nparts * mr;
        *mb = mblk * ((size_t)part + 1) / (size_t)nparts * mr;
        *mb = *mb < mg ? *mb : mg;
        *ma = *ma < *mb ? *ma : *mb;
    }
}

/* A gathered conv's W of up to this many floats (64 KiB) and at least this many columns runs
 * panel by panel (fl_convk_job's by_panels): resnet18's 7x7 stem (64 x 147) 1.02-1.06x the
 * whole pass at batch 32. Slower so: mobilenet_v2's direct 1x1 convs (0.90x) and its 3x3 stem
 * (k 27), whose stores then scatter over the output planes for little work each. */
#define S_BY_PANELS_W ((size_t)16 << 10)
#define S_BY_PANELS_K 64

struct fl_convk_job fl_cv_job(const fl_graph_t *g, const struct fl_gnode *nd,
                              const struct fl_wgeom *q, const float *w, int k, bool raw)
{
    return (struct fl_convk_job){.m = q->mg,
                                 .k = k,
                                 .w = w,
                                 .ldw = k,
                                 .p = q->oh * q->ow,
                                 .ystride = g->values[nd->out].numel,
                                 .bias = nd->nin == 3 ? fl_gv_data(g, nd->in[2], 0) : NULL,
                                 .act = raw                     ? FL_CONVK_NONE
                                        : nd->act == FL_OP_RELU ? FL_CONVK_RELU
                                        : nd->act == FL_OP_CLIP ? FL_CONVK_CLIP
                                                                : FL_CONVK_NONE,
                                 .lo = nd->act_min,
                                 .hi = nd->act_max};
}

/* Does fl_convk read a 1x1 conv's input where it lies instead of packing it? Where packing
 * costs most for each multiply-add: W of no more rows (outputs) than columns (inputs), as in
 * mobilenet_v2's projections; the AVX2 kernel only. Its planes must hold whole half panels (16
 * positions, 64 bytes). A half panel's rows are a plane apart: p / 16 cache lines, which must
 * not be a multiple of 32, or the rows would fall into one or two of the first-level cache's 64
 * sets (planes of 1024 positions ran 1.3-2.3x slower so). Measured one node at a time, one
 * thread, best of 30 to 300 runs, against packing: mobilenet_v2's projections (k 96 to 576, m
 * 24 to 96) on 16x16 to 4x4 planes 1.10-1.19x faster at batch 32 and 1.08-1.29x at batch 1,
 * on 28x28 at batch 16 1.28-1.50x, 56x56 and 112x112 at batch 4 1.18-1.69x; its expansions
 * (k 24, m 144) on 16x16 planes 0.91-0.96x. */
static bool s_in_place(const struct fl_wgeom *q, bool narrow)
{
    size_t p = (size_t)q->oh * q->ow;
    return q->direct && q->mg <= q->c && !narrow && !fl_convk_wide() && p % 16 == 0 &&
           (p / 16) % 32 != 0;
}

/* Forward of samples [b0, b1) with fl_convk as worker t, part `part` of nparts (see s_share):
 * chunks of samples whose packed columns fill the scratch, packed straight from the input
 * (panels, or columns for planes under FL_CONVK_NARROW positions) or read where they lie
 * (s_in_place), the product stored into the output planes with the bias and the fused
 * activation. Each element is the same sum in the same order whatever the chunks and parts,
 * so the thread count does not change the result. */
static void s_conv_fwd_fast(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q,
                            int t, size_t b0, size_t b1, int part, int nparts)
{
    const size_t nr = FL_CONVK_NR, p = (size_t)q->oh * q->ow;
    bool narrow = s_narrow(g, q), prune = !narrow || fl_cv_cached(g, nd);
    struct fl_cv_taps T; /* a narrow product keeps its dead taps unless they were dropped from a
                          * cached W (see S_NARROW_MIN_K) */
    fl_cv_taps_of(q, prune, &T);
    const struct fl_glora *L = fl_lora_of(g, nd);
    size_t k = (size_t)q->c * T.n, fixed = s_fixed_floats(q, s_lora_rank(g, nd));
    size_t apk = (size_t)q->kh * q->kw * p; /* chunks as without S_CHUNK_MIN_COLS: */
    size_t avail = s_scratch(g, q, s_lora_rank(g, nd), 1) - fixed - apk; /* B near the cache */
    size_t per = k + (L ? (size_t)L->rank + (size_t)q->mg : 0);          /* floats a column */
    size_t nb = avail > k * nr + per * p ? (avail - k * nr) / (per * p) : 1;
    size_t pa, pb, ma, mb; /* the first chunk's share fixes the rows compacted */
    s_share(q, (b1 - b0 < nb ? b1 - b0 : nb) * p, narrow, part, nparts, &pa, &pb, &ma, &mb);
    if (ma == mb)
        return;
    struct fl_cv_ctx x;
    fl_cv_ctx_init(g, nd, q, t, prune, nparts > 1 ? (int)ma : 0, nparts > 1 ? (int)mb : q->mg, &x);
    struct fl_convk_job j = fl_cv_job(g, nd, q, x.w, x.k, L != NULL); /* act after LoRA's */
    j.bp = x.work + apk;
    j.by_panels = !q->direct && x.k >= S_BY_PANELS_K && (size_t)q->mg * x.k <= S_BY_PANELS_W;
    if (s_in_place(q, narrow)) {
        j.bx = fl_gv_data(g, nd->in[0], 0);
        j.xp = j.xow = (int)p;
        j.xstride = g->values[nd->in[0]].numel;
    }
    float *ac = x.work + apk + k * (nb * p + nr); /* a factored LoRA's A col */
    const float *B = L ? g->values[L->b].data : NULL;
    int32_t *idx = (int32_t *)x.work; /* the gather's offsets (not for 1x1 or narrow) */
    if (!narrow && !q->direct)
        fl_cv_tap_index(q, &x.taps, idx);
    for (size_t s0 = b0; s0 < b1; s0 += nb) {
        size_t n = b1 - s0 < nb ? b1 - s0 : nb, ncols = n * p;
        s_share(q, ncols, narrow, part, nparts, &pa, &pb, &ma, &mb);
        if (pa == pb || ma == mb)
            continue;
        j.ncols = (int)ncols;
        j.y = fl_gv_data(g, nd->out, s0);
        j.res = fl_cv_res(g, nd, s0);
        if (narrow) {
            for (size_t sj = 0; sj < n; sj++)
                fl_cv_pack_narrow(q, &x.taps, fl_gv_data(g, nd->in[0], s0 + sj), x.work + apk, k,
                                  sj * p);
            fl_convk_run_narrow(&j, (int)ma, (int)mb);
            if (L)
                s_lora_fwd_fast(nd, &x, &j, B, ac, true, 0, 1, ma, mb, 0, ncols);
            continue;
        }
        size_t c0 = pa * nr, c1 = pb * nr < ncols ? pb * nr : ncols;
        if (j.bx) /* read where it lies */
            j.bx = fl_gv_data(g, nd->in[0], s0);
        else if (q->direct && p < nr) /* a panel's columns span several samples */
            fl_cv_pack_direct(fl_gv_data(g, nd->in[0], s0), g->values[nd->in[0]].numel, p, q->c,
                              x.work + apk, k, c0, c1);
        for (size_t sj = c0 / p; sj * p < c1 && !j.bx && !(q->direct && p < nr); sj++) {
            size_t i0 = sj * p < c0 ? c0 - sj * p : 0, i1 = (sj + 1) * p > c1 ? c1 - sj * p : p;
            const float *xs = fl_gv_data(g, nd->in[0], s0 + sj);
            if (q->direct) {
                fl_cv_pack_sample(q, &x.taps, xs, x.work + apk, k, sj * p, (int)i0, (int)i1);
                continue;
            }
            for (size_t i = i0; i < i1;) { /* runs within a panel */
                size_t col = sj * p + i, lane = col % nr,
                       len = nr - lane < i1 - i ? nr - lane : i1 - i;
                fl_convk_pack(xs, (size_t)q->h * q->w, q->c, x.taps.n, idx + i, p, (int)len,
                              x.work + apk + col / nr * k * nr + lane);
                i += len;
            }
        }
        fl_convk_run(&j, (int)ma, (int)mb, (int)pa, (int)pb);
        if (L)
            s_lora_fwd_fast(nd, &x, &j, B, ac, false, pa, pb, ma, mb, c0, c1);
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
    if (s_padded(g, nd, &q)) {
        fl_cv_fwd_pad(g, nd, &q, t, b0, b1, 0, 1);
        return;
    }
    if (s_fast(g, nd, &q) && fl_cv_classes_pay(g, nd)) {
        fl_cv_fwd_classes(g, nd, &q, t, b0, b1);
        return;
    }
    if (s_fast(g, nd, &q)) {
        s_conv_fwd_fast(g, nd, &q, t, b0, b1, 0, 1);
        return;
    }
    struct fl_cv_ctx x;
    fl_cv_ctx_init(g, nd, &q, t, true, 0, q.mg, &x);
    size_t nb = fl_cv_chunk(g, nd, &q);
    for (size_t s = b0; s < b1; s += nb)
        s_conv_fwd_chunk(g, nd, &q, &x, s, b1 - s < nb ? b1 - s : nb);
}

bool fl_conv_per_sample(const fl_graph_t *g, const struct fl_gnode *nd)
{
    struct fl_wgeom q;
    fl_wgeom_of(g, nd, &q);
    return g->simd &&
           (q.depthwise || s_padded(g, nd, &q) || (s_fast(g, nd, &q) && !fl_cv_classes_pay(g, nd)));
}

/* Below these, a conv's forward pass is not worth sharing among workers: multiply-adds, and
 * weight floats (read once whatever the batch: the last stages at batch 1). Measured on 2
 * workers at batch 1 against 4x these (and 4x the depthwise one): mobilenet_v2 32x32 1.19x
 * (its 2x2-plane convs of 25-37K weights shared too), resnet18 and 64x64 inputs 1.00-1.01x. */
#define S_SPLIT_MACS    ((size_t)1 << 15)
#define S_SPLIT_WEIGHTS ((size_t)1 << 13)

bool fl_conv_splits(const fl_graph_t *g, const struct fl_gnode *nd)
{
    struct fl_wgeom q;
    fl_wgeom_of(g, nd, &q);
    size_t wts = (size_t)q.mg * s_kfull(&q), macs = wts * (size_t)g->batch * q.oh * q.ow;
    if (q.depthwise)
        return fl_depthwise_splits(g, &q);
    return (s_padded(g, nd, &q) || (s_fast(g, nd, &q) && !fl_cv_classes_pay(g, nd))) &&
           (macs >= S_SPLIT_MACS || wts >= S_SPLIT_WEIGHTS);
}

void fl_conv_fwd_part(fl_graph_t *g, const struct fl_gnode *nd, int part, int nparts)
{
    struct fl_wgeom q;
    fl_wgeom_of(g, nd, &q);
    if (q.depthwise)
        fl_depthwise_fwd_part(g, nd, &q, part, nparts);
    else if (s_padded(g, nd, &q))
        fl_cv_fwd_pad(g, nd, &q, part, 0, (size_t)g->batch, part, nparts);
    else
        s_conv_fwd_fast(g, nd, &q, part, 0, (size_t)g->batch, part, nparts);
}
