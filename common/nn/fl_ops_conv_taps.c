/* fl_ops_conv_taps: which window taps a conv's product keeps, W's columns for them, and those
 * columns kept between forward passes for a frozen weight. A 3x3 padded conv on a 1x1 plane (the
 * last stage of resnet18 on 32x32 inputs) reads one tap in nine: compacting W's columns at every
 * call reads the whole weight anyway, so for a weight no gradient changes the compacted copy is
 * made once and kept until a parameter may have been written (fl_graph_touch). */
#include "fl_ops_conv_impl.h"

#include "fl_error.h"
#include "fl_graph_impl.h"

#include <stdlib.h>

/* Output columns [*o0, *o1) of a row whose input column ox * sw - pl + kj * dw is inside
 * [0, w). */
void fl_cv_valid_cols(const struct fl_wgeom *q, int kj, int *o0, int *o1)
{
    int off = kj * q->dw - q->pl; /* ix = ox * sw + off */
    int lo = off >= 0 ? 0 : (-off + q->sw - 1) / q->sw;
    int hi = q->w - off <= 0 ? 0 : (q->w - off + q->sw - 1) / q->sw;
    *o0 = lo < q->ow ? lo : q->ow;
    *o1 = hi < *o0 ? *o0 : hi > q->ow ? q->ow : hi;
}

/* The window taps a conv's col matrix holds: all of them, or (one group, a kernel of at most
 * FL_CV_MAX_TAPS taps) only the live ones: a tap that lands in the padding for every output row or
 * every output column contributes nothing (a 3x3 padded conv on a 1x1 or 2x2 plane, as in the
 * last stage of a CNN on small images), so its rows of col and columns of W are dropped
 * (struct fl_cv_taps, fl_ops_conv_impl.h). */
void fl_cv_taps_of(const struct fl_wgeom *q, bool allow, struct fl_cv_taps *T)
{
    int kk = q->kh * q->kw;
    T->n = kk;
    T->pruned = false;
    if (!allow || q->groups != 1 || kk > FL_CV_MAX_TAPS || q->direct)
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
            fl_cv_valid_cols(q, kj, &o0, &o1);
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
void fl_cv_compact(const struct fl_wgeom *q, const struct fl_cv_taps *T, const float *src, int rows,
                   float *dst)
{
    size_t kk = (size_t)q->kh * q->kw, kq = (size_t)q->c * T->n;
    for (size_t r = 0; r < (size_t)rows; r++)
        for (size_t c = 0; c < (size_t)q->c; c++)
            for (int l = 0; l < T->n; l++)
                dst[r * kq + c * T->n + l] = src[(r * q->c + c) * kk + T->idx[l]];
}

/* Is node nd's W a frozen parameter whose product drops taps? Then its kept columns can be
 * cached: nothing but a writer who calls fl_graph_touch (or fl_graph_param) changes it. A
 * factored LoRA compacts its A with W at each call, so such nodes keep doing both. */
static bool s_cacheable(const fl_graph_t *g, const struct fl_gnode *nd, struct fl_wgeom *q,
                        struct fl_cv_taps *T)
{
    if (nd->op != FL_OP_CONV || !g->simd || fl_lora_of(g, nd))
        return false;
    const struct fl_gvalue *w = &g->values[nd->in[1]];
    if (w->kind != FL_GV_PARAM || w->derived || w->needs_grad)
        return false;
    fl_wgeom_of(g, nd, q);
    if (q->depthwise)
        return false;
    fl_cv_taps_of(q, true, T);
    return T->pruned;
}

int fl_cv_cache_all(fl_graph_t *g)
{
    if (g->wc_gen == g->param_gen + 1) /* nothing written since the last pass */
        return 0;
    for (int i = 0; i < g->nnodes; i++) {
        struct fl_gnode *nd = &g->nodes[i];
        struct fl_wgeom q;
        struct fl_cv_taps T;
        if (nd->wc_gen == g->param_gen + 1 || !s_cacheable(g, nd, &q, &T))
            continue;
        size_t n = (size_t)q.mg * q.c * T.n;
        if (!nd->wc && !(nd->wc = malloc(n * sizeof *nd->wc)))
            return FL_ENOMEM;
        fl_cv_compact(&q, &T, g->values[nd->in[1]].data, q.mg, nd->wc);
        nd->wc_gen = g->param_gen + 1;
    }
    g->wc_gen = g->param_gen + 1;
    return 0;
}

const float *fl_cv_cached(const fl_graph_t *g, const struct fl_gnode *nd)
{
    return nd->wc && nd->wc_gen == g->param_gen + 1 ? nd->wc : NULL;
}
