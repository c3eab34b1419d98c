/* fl_ops_shape: the graph's dense products (Gemm, MatMul, one fl_gemm per worker's rows) and
 * the ops that move data without arithmetic (Flatten, Reshape, Identity, Dropout, Concat). */
#include "fl_graph_impl.h"

#include "fl_error.h"
#include "fl_linalg.h"

#include <string.h>

static void s_set_vec(struct fl_gvalue *y, int64_t n)
{
    memset(y->dims, 0, sizeof y->dims);
    y->ndim = 1;
    y->dims[0] = n;
    y->numel = (size_t)n;
}

int fl_gemm_infer(fl_graph_t *g, struct fl_gnode *nd)
{
    const struct fl_gvalue *x = &g->values[nd->in[0]], *w = &g->values[nd->in[1]];
    char xs[64], ws[64], cs[64];
    if (x->kind == FL_GV_PARAM || x->ndim != 1)
        return fl_fail(FL_EMISMATCH,
                       "graph: node '%s' (%s) needs a vector per sample, '%s' is %s "
                       "(Flatten first)",
                       nd->name, fl_op_name(nd->op), x->name, fl_gv_shape_str(x, xs, sizeof xs));
    bool tb = nd->a.trans_b;
    if (w->kind != FL_GV_PARAM || w->ndim != 2 || w->dims[tb ? 1 : 0] != x->dims[0])
        return fl_fail(FL_EMISMATCH,
                       "graph: node '%s' (%s): weight '%s' %s%s does not fit input %s", nd->name,
                       fl_op_name(nd->op), w->name, fl_gv_shape_str(w, ws, sizeof ws),
                       tb ? " (transposed)" : "", fl_gv_shape_str(x, xs, sizeof xs));
    int64_t m = w->dims[tb ? 0 : 1];
    if (nd->nin == 3) {
        const struct fl_gvalue *c = &g->values[nd->in[2]];
        if (c->kind != FL_GV_PARAM || (c->numel != (size_t)m && c->numel != 1))
            return fl_fail(FL_EMISMATCH, "graph: node '%s' (Gemm): bias '%s' %s for %lld outputs",
                           nd->name, c->name, fl_gv_shape_str(c, cs, sizeof cs), (long long)m);
    }
    s_set_vec(&g->values[nd->out], m);
    /* A factored LoRA's X A^T and dY B, [rows, rank] each, for a worker's share of a batch. */
    for (int i = 0; i < g->nloras; i++)
        if (g->loras[i].weff == nd->in[1]) {
            size_t workers = g->nworkers > 0 ? (size_t)g->nworkers : 1;
            size_t share = ((size_t)g->max_batch + workers - 1) / workers;
            nd->scratch = 2 * share * (size_t)g->loras[i].rank;
        }
    return 0;
}

int fl_matmul_infer(fl_graph_t *g, struct fl_gnode *nd)
{
    nd->a.trans_b = false;
    nd->a.alpha = 1.0f;
    return fl_gemm_infer(g, nd);
}

void fl_gemm_fwd(fl_graph_t *g, const struct fl_gnode *nd, int t, size_t b0, size_t b1)
{
    int k = (int)g->values[nd->in[0]].numel, m = (int)g->values[nd->out].numel;
    int rows = (int)(b1 - b0);
    bool tb = nd->a.trans_b;
    float *y = fl_gv_data(g, nd->out, b0);
    const float *x = fl_gv_data(g, nd->in[0], b0);
    const struct fl_glora *L = fl_lora_of(g, nd); /* factored: W x + s B (A x), tb only */
    const float *w = L ? g->values[L->w].data : fl_gv_data(g, nd->in[1], 0);
    fl_gemm(false, tb, rows, m, k, nd->a.alpha, x, k, w, tb ? k : m, 0.0f, y, m);
    if (L) {
        int r = L->rank;
        float *u = g->scratch[t];
        fl_gemm(false, true, rows, r, k, 1.0f, x, k, g->values[L->a].data, k, 0.0f, u, r);
        fl_gemm(false, true, rows, m, r, L->scale * nd->a.alpha, u, r, g->values[L->b].data, r,
                1.0f, y, m);
    }
    if (nd->nin < 3)
        return;
    const struct fl_gvalue *cv = &g->values[nd->in[2]];
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < m; j++)
            y[(size_t)r * m + j] += nd->a.beta * cv->data[cv->numel == 1 ? 0 : j];
}

void fl_gemm_bwd(fl_graph_t *g, const struct fl_gnode *nd, int t, size_t b0, size_t b1)
{
    int k = (int)g->values[nd->in[0]].numel, m = (int)g->values[nd->out].numel;
    int rows = (int)(b1 - b0);
    bool tb = nd->a.trans_b;
    float al = nd->a.alpha;
    const float *x = fl_gv_data(g, nd->in[0], b0), *w = fl_gv_data(g, nd->in[1], 0);
    const float *dy = fl_gv_grad(g, nd->out, t, b0);
    float *dx = fl_gv_grad(g, nd->in[0], t, b0), *dw = fl_gv_grad(g, nd->in[1], t, 0);
    const struct fl_glora *L = fl_lora_of(g, nd);
    if (L) { /* factored (tb): u = X A^T, v = dY B; dB += s dY^T u, dA += s v^T X, dX += s v A */
        int r = L->rank;
        float sa = L->scale * al, *u = g->scratch[t], *v = u + (size_t)rows * r;
        float *da = fl_gv_grad(g, L->a, t, 0), *db = fl_gv_grad(g, L->b, t, 0);
        const float *A = g->values[L->a].data;
        w = g->values[L->w].data;
        fl_gemm(false, false, rows, r, m, 1.0f, dy, m, g->values[L->b].data, r, 0.0f, v, r);
        if (db) {
            fl_gemm(false, true, rows, r, k, 1.0f, x, k, A, k, 0.0f, u, r);
            fl_gemm(true, false, m, r, rows, sa, dy, m, u, r, 1.0f, db, r);
        }
        if (da)
            fl_gemm(true, false, r, k, rows, sa, v, r, x, k, 1.0f, da, k);
        if (dx)
            fl_gemm(false, false, rows, k, r, sa, v, r, A, k, 1.0f, dx, k);
    }
    if (dw && tb)
        fl_gemm(true, false, m, k, rows, al, dy, m, x, k, 1.0f, dw, k);
    else if (dw)
        fl_gemm(true, false, k, m, rows, al, x, k, dy, m, 1.0f, dw, m);
    if (dx)
        fl_gemm(false, !tb, rows, k, m, al, dy, m, w, tb ? k : m, 1.0f, dx, k);
    float *dc = nd->nin == 3 ? fl_gv_grad(g, nd->in[2], t, 0) : NULL;
    if (!dc)
        return;
    bool scalar = g->values[nd->in[2]].numel == 1;
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < m; j++)
            dc[scalar ? 0 : j] += nd->a.beta * dy[(size_t)r * m + j];
}

int fl_flatten_infer(fl_graph_t *g, struct fl_gnode *nd)
{
    const struct fl_gvalue *x = &g->values[nd->in[0]];
    if (nd->a.axis != 1)
        return fl_fail(FL_EINVAL, "graph: node '%s' (Flatten): axis %d (only 1 is supported)",
                       nd->name, nd->a.axis);
    if (x->kind == FL_GV_PARAM)
        return fl_fail(FL_EINVAL, "graph: node '%s' (Flatten) reads parameter '%s'", nd->name,
                       x->name);
    s_set_vec(&g->values[nd->out], (int64_t)x->numel);
    return 0;
}

int fl_reshape_infer(fl_graph_t *g, struct fl_gnode *nd)
{
    const struct fl_gvalue *x = &g->values[nd->in[0]];
    struct fl_gvalue *y = &g->values[nd->out];
    const struct fl_op_attrs *a = &nd->a;
    char xs[64];
    int nd_out = a->nshape - 1, infer = -1;
    if (x->kind == FL_GV_PARAM || nd_out < 1 || nd_out > 3 ||
        (a->shape[0] != 0 && a->shape[0] != -1))
        return fl_fail(FL_EINVAL,
                       "graph: node '%s' (Reshape): a shape of %d axes keeping the "
                       "batch axis (0 or -1 first) is needed",
                       nd->name, a->nshape);
    size_t known = 1;
    for (int i = 0; i < nd_out; i++) {
        int64_t d = a->shape[i + 1];
        if (d == 0 && i < x->ndim)
            d = x->dims[i];
        if (d == -1 && infer < 0 && a->shape[0] == 0) {
            infer = i;
            continue;
        }
        if (d < 1)
            return fl_fail(FL_EINVAL, "graph: node '%s' (Reshape): bad axis %d = %lld", nd->name,
                           i + 1, (long long)a->shape[i + 1]);
        y->dims[i] = d;
        known *= (size_t)d;
    }
    if (infer >= 0 && known > 0 && x->numel % known == 0)
        y->dims[infer] = (int64_t)(x->numel / known), known = x->numel;
    if (known != x->numel)
        return fl_fail(FL_EMISMATCH,
                       "graph: node '%s' (Reshape): input %s has %zu values per "
                       "sample, the shape %zu",
                       nd->name, fl_gv_shape_str(x, xs, sizeof xs), x->numel, known);
    y->ndim = nd_out;
    y->numel = x->numel;
    return 0;
}

void fl_copy_fwd(fl_graph_t *g, const struct fl_gnode *nd, int t, size_t b0, size_t b1)
{
    size_t per = g->values[nd->out].numel;
    memcpy(fl_gv_data(g, nd->out, b0), fl_gv_data(g, nd->in[0], b0),
           (b1 - b0) * per * sizeof(float));
}

void fl_copy_bwd(fl_graph_t *g, const struct fl_gnode *nd, int t, size_t b0, size_t b1)
{
    float *dx = fl_gv_grad(g, nd->in[0], t, b0);
    const float *dy = fl_gv_grad(g, nd->out, t, b0);
    size_t n = (b1 - b0) * g->values[nd->out].numel;
    for (size_t i = 0; dx && i < n; i++)
        dx[i] += dy[i];
}

/* Per-sample axis of a concat (ONNX's axis counts the batch; negative counts from the end). */
static int s_concat_axis(const fl_graph_t *g, const struct fl_gnode *nd)
{
    int nd0 = g->values[nd->in[0]].ndim, ax = nd->a.axis;
    return (ax < 0 ? ax + nd0 + 1 : ax) - 1;
}

int fl_concat_infer(fl_graph_t *g, struct fl_gnode *nd)
{
    const struct fl_gvalue *x0 = &g->values[nd->in[0]];
    struct fl_gvalue *y = &g->values[nd->out];
    int ax = s_concat_axis(g, nd);
    char s0[64], si[64];
    if (ax < 0 || ax >= x0->ndim)
        return fl_fail(FL_EINVAL, "graph: node '%s' (Concat): axis %d out of range for %s",
                       nd->name, nd->a.axis, fl_gv_shape_str(x0, s0, sizeof s0));
    int64_t sum = 0;
    for (int i = 0; i < nd->nin; i++) {
        const struct fl_gvalue *x = &g->values[nd->in[i]];
        bool ok = x->kind != FL_GV_PARAM && x->ndim == x0->ndim;
        for (int k = 0; ok && k < x->ndim; k++)
            ok = k == ax || x->dims[k] == x0->dims[k];
        if (!ok)
            return fl_fail(FL_EMISMATCH, "graph: node '%s' (Concat): '%s' %s does not fit '%s' %s",
                           nd->name, x->name, fl_gv_shape_str(x, si, sizeof si), x0->name,
                           fl_gv_shape_str(x0, s0, sizeof s0));
        sum += x->dims[ax];
    }
    y->ndim = x0->ndim;
    memcpy(y->dims, x0->dims, sizeof y->dims);
    y->dims[ax] = sum;
    y->numel = x0->numel / (size_t)x0->dims[ax] * (size_t)sum;
    return 0;
}

/* Copies between the output and the inputs, one chunk per input per outer index; back: the
 * inputs' gradients accumulate the output's. */
static void s_concat(fl_graph_t *g, const struct fl_gnode *nd, int t, size_t b0, size_t b1,
                     bool back)
{
    int ax = s_concat_axis(g, nd);
    const struct fl_gvalue *x0 = &g->values[nd->in[0]];
    size_t outer = 1, inner = 1;
    for (int k = 0; k < ax; k++)
        outer *= (size_t)x0->dims[k];
    for (int k = ax + 1; k < x0->ndim; k++)
        inner *= (size_t)x0->dims[k];
    for (size_t s = b0; s < b1; s++) {
        float *y = back ? fl_gv_grad(g, nd->out, t, s) : fl_gv_data(g, nd->out, s);
        for (size_t o = 0; o < outer; o++)
            for (int i = 0; i < nd->nin; i++) {
                size_t chunk = (size_t)g->values[nd->in[i]].dims[ax] * inner;
                float *x = back ? fl_gv_grad(g, nd->in[i], t, s) : fl_gv_data(g, nd->in[i], s);
                if (x && back)
                    for (size_t j = 0; j < chunk; j++)
                        x[o * chunk + j] += y[j];
                else if (x)
                    memcpy(y, x + o * chunk, chunk * sizeof(float));
                y += chunk;
            }
    }
}

void fl_concat_fwd(fl_graph_t *g, const struct fl_gnode *nd, int t, size_t b0, size_t b1)
{
    s_concat(g, nd, t, b0, b1, false);
}

void fl_concat_bwd(fl_graph_t *g, const struct fl_gnode *nd, int t, size_t b0, size_t b1)
{
    s_concat(g, nd, t, b0, b1, true);
}
