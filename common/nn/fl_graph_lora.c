/* fl_graph_lora: LoRA adapters on a graph's Conv, Gemm and MatMul weights. The node reads a
 * derived parameter weff = W + (alpha/rank) B A, merged once per forward pass; the kernels
 * give weff's gradient, from which A's and B's follow after the backward pass. */
#include "fl_graph_impl.h"

#include "fl_error.h"
#include "fl_linalg.h"
#include "fl_mem.h"
#include "fl_rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int s_value(const fl_graph_t *g, const char *name)
{
    for (int i = 0; i < g->nvalues; i++)
        if (strcmp(g->values[i].name, name) == 0)
            return i;
    return -1;
}

static int s_node(const fl_graph_t *g, const char *name)
{
    for (int i = 0; i < g->nnodes; i++)
        if (strcmp(g->nodes[i].name, name) == 0)
            return i;
    return -1;
}

void fl_graph_lora_init_a(float *a, int rank, int cols, uint64_t seed)
{
    struct fl_rng rng;
    fl_rng_seed(&rng, seed);
    for (size_t i = 0; i < (size_t)rank * (size_t)cols; i++)
        a[i] = (float)(fl_rng_normal(&rng) / sqrt((double)cols));
}

/* Add the three parameters of a LoRA on weight w and record it. */
static int s_add(fl_graph_t *g, int n, int w, int rank, float alpha, uint64_t seed, bool train_a)
{
    const struct fl_gvalue *wv = &g->values[w];
    int rows = (int)wv->dims[0], cols = (int)(wv->numel / (size_t)rows);
    int64_t wdims[FL_GRAPH_MAX_DIMS], ad[2] = {rank, cols}, bd[2] = {rows, rank};
    int wnd = wv->ndim;
    memcpy(wdims, wv->dims, sizeof wdims);
    char an[FL_GRAPH_NAME_MAX], bn[FL_GRAPH_NAME_MAX], wn[FL_GRAPH_NAME_MAX];
    const char *node = g->nodes[n].name;
    snprintf(an, sizeof an, "%.50s.lora_A", node);
    snprintf(bn, sizeof bn, "%.50s.lora_B", node);
    snprintf(wn, sizeof wn, "%.50s.lora_W", node);
    float *init = fl_malloc_array((size_t)rank * (size_t)cols, sizeof *init);
    struct fl_glora *l = realloc(g->loras, ((size_t)g->nloras + 1) * sizeof *l);
    if (!init || !l) {
        free(init);
        return fl_fail(FL_ENOMEM, "graph: out of memory for LoRA on '%s'", node);
    }
    g->loras = l;
    fl_graph_lora_init_a(init, rank, cols, seed);
    int rc = fl_graph_add_param(g, an, 2, ad, init, train_a);
    free(init);
    if (rc || (rc = fl_graph_add_param(g, bn, 2, bd, NULL, true)) ||
        (rc = fl_graph_add_param(g, wn, wnd, wdims, NULL, false)))
        return rc;
    struct fl_glora *L = &g->loras[g->nloras++];
    L->w = w;
    L->a = s_value(g, an);
    L->b = s_value(g, bn);
    L->weff = s_value(g, wn);
    L->rows = rows, L->cols = cols, L->rank = rank;
    L->scale = alpha / (float)rank;
    g->values[L->weff].derived = true;
    snprintf(g->nodes[n].in_names[1], sizeof g->nodes[n].in_names[1], "%s", wn);
    return 0;
}

int fl_graph_add_lora(fl_graph_t *g, const char *node, int rank, float alpha, uint64_t seed,
                      bool train_a)
{
    int n = s_node(g, node);
    if (n < 0)
        return fl_fail(FL_ENOTFOUND, "graph: no node '%s' for LoRA", node);
    enum fl_op op = g->nodes[n].op;
    if (op != FL_OP_CONV && op != FL_OP_GEMM && op != FL_OP_MATMUL)
        return fl_fail(FL_EINVAL, "graph: LoRA on '%s' (%s): only Conv, Gemm and MatMul", node,
                       fl_op_name(op));
    if (g->planned)
        return fl_fail(FL_EINVAL, "graph: LoRA on '%s' after planning", node);
    int w = s_value(g, g->nodes[n].in_names[1]);
    if (w < 0 || g->values[w].kind != FL_GV_PARAM || g->values[w].derived || g->values[w].ndim < 2)
        return fl_fail(FL_EINVAL,
                       "graph: LoRA on '%s': its weight '%s' is not a parameter of "
                       "2 or more axes (or carries a LoRA already)",
                       node, g->nodes[n].in_names[1]);
    int rows = (int)g->values[w].dims[0], cols = (int)(g->values[w].numel / (size_t)rows);
    if (rank < 1 || rank > rows || rank > cols)
        return fl_fail(FL_EINVAL, "graph: LoRA on '%s': rank %d for a %dx%d weight", node, rank,
                       rows, cols);
    return s_add(g, n, w, rank, alpha, seed, train_a);
}

void fl_lora_mark(fl_graph_t *g)
{
    for (int i = 0; i < g->nloras; i++) {
        const struct fl_glora *L = &g->loras[i];
        g->values[L->weff].needs_grad =
            g->values[L->a].needs_grad || g->values[L->b].needs_grad || g->values[L->w].needs_grad;
    }
}

/* The node reading value v (a LoRA's weff has exactly one). */
static const struct fl_gnode *s_reader(const fl_graph_t *g, int v)
{
    for (int n = 0; n < g->nnodes; n++)
        if (g->nodes[n].nin > 1 && g->nodes[n].in[1] == v)
            return &g->nodes[n];
    return NULL;
}

/* A plain Conv (one group) or a Gemm reading W transposed, with a frozen W, never needs the
 * merged weight: W x + s B (A x) costs rank (rows + cols) per output column instead of a
 * rows x cols merge and a rows x cols weight gradient per step. */
void fl_lora_settle(fl_graph_t *g)
{
    for (int i = 0; i < g->nloras; i++) {
        struct fl_glora *L = &g->loras[i];
        const struct fl_gnode *nd = s_reader(g, L->weff);
        L->factored =
            nd && !g->values[L->w].needs_grad &&
            ((nd->op == FL_OP_CONV && nd->a.group == 1) || (nd->op == FL_OP_GEMM && nd->a.trans_b));
        if (L->factored)
            g->values[L->weff].needs_grad = false;
    }
}

const struct fl_glora *fl_lora_of(const fl_graph_t *g, const struct fl_gnode *nd)
{
    for (int i = 0; nd->nin > 1 && i < g->nloras; i++)
        if (g->loras[i].weff == nd->in[1] && g->loras[i].factored)
            return &g->loras[i];
    return NULL;
}

void fl_lora_merge_all(fl_graph_t *g)
{
    for (int i = 0; i < g->nloras; i++) {
        const struct fl_glora *L = &g->loras[i];
        if (L->factored)
            continue;
        float *weff = g->values[L->weff].data;
        memcpy(weff, g->values[L->w].data, g->values[L->w].numel * sizeof(float));
        fl_gemm(false, false, L->rows, L->cols, L->rank, L->scale, g->values[L->b].data, L->rank,
                g->values[L->a].data, L->cols, 1.0f, weff, L->cols);
    }
}

void fl_lora_backward_all(fl_graph_t *g)
{
    for (int i = 0; i < g->nloras; i++) {
        const struct fl_glora *L = &g->loras[i];
        const float *dw = g->values[L->weff].grad;
        if (!dw || L->factored)
            continue;
        struct fl_gvalue *a = &g->values[L->a], *b = &g->values[L->b], *w = &g->values[L->w];
        /* weff = W + s B A: dA = s B^T dweff, dB = s dweff A^T, dW = dweff. */
        if (a->grad)
            fl_gemm(true, false, L->rank, L->cols, L->rows, L->scale, b->data, L->rank, dw, L->cols,
                    0.0f, a->grad, L->cols);
        if (b->grad)
            fl_gemm(false, true, L->rows, L->rank, L->cols, L->scale, dw, L->cols, a->data, L->cols,
                    0.0f, b->grad, L->rank);
        if (w->grad)
            memcpy(w->grad, dw, w->numel * sizeof(float));
    }
}
