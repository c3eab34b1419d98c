/* fl_ops_conv_bwd: the backward pass of the graph's Conv (fl_ops_conv.c has the forward pass
 * and the shape inference): per chunk of a worker's samples, dW (and a factored LoRA's dA, dB)
 * from the chunk's col matrix, and dx by one GEMM into dcol scattered back (col2im). */
#include "fl_ops_conv_impl.h"

#include "fl_linalg.h"

#include <string.h>

/* dx of group gi of samples [s0, s0 + nb) += the scatter of dcol [k, nb*p]. */
static void s_scatter_dcol(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q,
                           const struct fl_cv_taps *T, int t, int gi, size_t s0, size_t nb,
                           const float *dcol)
{
    int k = q->c * T->n, p = q->oh * q->ow;
    size_t ld = nb * (size_t)p, xin = (size_t)q->c * q->h * q->w;
    for (size_t j = 0; j < nb; j++) {
        float *dxs = fl_gv_grad(g, nd->in[0], t, s0 + j) + gi * xin;
        if (!q->direct) {
            fl_cv_col2im(q, T, dcol + j * p, dxs, ld);
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
                             const struct fl_cv_ctx *x, int t, size_t s0, size_t nb,
                             const float *dyc)
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
        fl_cv_gather_col(g, nd, q, &x->taps, 0, s0, nb, col);
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
                             const struct fl_cv_ctx *x, int t, size_t s0, size_t nb)
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
            fl_cv_gather_col(g, nd, q, &x->taps, gi, s0, nb, col);
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
    struct fl_cv_ctx x; /* a weight gradient needs every tap's columns */
    fl_cv_ctx_init(g, nd, &q, t, !g->values[nd->in[1]].needs_grad, 0, q.mg, &x);
    size_t nb = fl_cv_chunk(g, nd, &q);
    for (size_t s = b0; s < b1; s += nb)
        s_conv_bwd_chunk(g, nd, &q, &x, t, s, b1 - s < nb ? b1 - s : nb);
}
