/* fl_graph_prefix: the frozen prefix of a planned graph and its frontier (fl_graph.h). A node
 * is frozen when its output needs no gradient (fl_graph_plan marks every value downstream of
 * a trainable parameter); the frontier is the set of frozen values that other nodes read. */
#include "fl_graph_impl.h"

#include "fl_error.h"

#include <stdlib.h>
#include <string.h>

struct fl_graph_cut {
    fl_graph_t *g; /* the graph (borrowed) */
    int nfrozen;   /* frozen nodes */
    int *frozen;   /* their indices, in execution order */
    int nrest;     /* the other nodes */
    int *rest;     /* their indices, in execution order */
    int nfront;    /* frontier values */
    int *front;    /* their value indices, ascending */
    size_t dim;    /* floats per sample of a packed frontier; 0: no cut */
};

/* Run the forward kernels of the listed nodes on the graph's current batch. */
static void s_run(fl_graph_t *g, const int *nodes, int n)
{
    for (int k = 0; k < n; k++)
        fl_graph_node_forward(g, &g->nodes[nodes[k]]);
}

void fl_graph_cut_destroy(fl_graph_cut_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_graph_cut_t *c = *self_p;
    free(c->frozen);
    free(c->rest);
    free(c->front);
    free(c);
    *self_p = NULL;
}

/* Mark the frontier: frozen values (or the input) read by a node that is not frozen. */
static void s_frontier(fl_graph_cut_t *c, char *is_front)
{
    fl_graph_t *g = c->g;
    for (int k = 0; k < c->nrest; k++) {
        const struct fl_gnode *nd = &g->nodes[c->rest[k]];
        for (int i = 0; i < nd->nin; i++) {
            const struct fl_gvalue *v = &g->values[nd->in[i]];
            if (v->kind != FL_GV_PARAM && !v->needs_grad)
                is_front[nd->in[i]] = 1;
        }
    }
    c->dim = 0;
    for (int v = 0; v < g->nvalues; v++) {
        if (!is_front[v])
            continue;
        c->front[c->nfront++] = v;
        c->dim += g->values[v].numel;
    }
    if (c->nrest == 0 || c->nfront == 0 || is_front[g->input])
        c->dim = 0;
}

fl_graph_cut_t *fl_graph_cut_new(fl_graph_t *g)
{
    if (!g->planned) {
        fl_fail(FL_EINVAL, "graph: a cut needs a planned graph");
        return NULL;
    }
    fl_graph_cut_t *c = calloc(1, sizeof *c);
    char *is_front = calloc((size_t)g->nvalues + 1, 1);
    if (c) {
        c->g = g;
        c->frozen = calloc((size_t)g->nnodes + 1, sizeof *c->frozen);
        c->rest = calloc((size_t)g->nnodes + 1, sizeof *c->rest);
        c->front = calloc((size_t)g->nvalues + 1, sizeof *c->front);
    }
    if (!c || !is_front || !c->frozen || !c->rest || !c->front) {
        free(is_front);
        fl_graph_cut_destroy(&c);
        fl_fail(FL_ENOMEM, "graph: out of memory for the frozen prefix");
        return NULL;
    }
    for (int k = 0; k < g->nnodes; k++) {
        int n = g->order[k];
        if (g->values[g->nodes[n].out].needs_grad)
            c->rest[c->nrest++] = n;
        else
            c->frozen[c->nfrozen++] = n;
    }
    s_frontier(c, is_front);
    free(is_front);
    return c;
}

size_t fl_graph_cut_dim(const fl_graph_cut_t *c)
{
    return c->dim;
}

int fl_graph_cut_nvalues(const fl_graph_cut_t *c)
{
    return c->dim ? c->nfront : 0;
}

const char *fl_graph_cut_value(const fl_graph_cut_t *c, int i)
{
    return i >= 0 && i < fl_graph_cut_nvalues(c) ? c->g->values[c->front[i]].name : NULL;
}

static int s_check(const fl_graph_cut_t *c, int n)
{
    if (c->dim == 0)
        return fl_fail(FL_EINVAL, "graph: no frozen prefix to run");
    if (n < 1 || n > c->g->max_batch)
        return fl_fail(FL_EINVAL, "graph: batch of %d (planned for 1 to %d)", n, c->g->max_batch);
    return 0;
}

int fl_graph_cut_forward_prefix(const fl_graph_cut_t *c, const float *x, int n, float *out)
{
    int rc = s_check(c, n);
    if (rc)
        return rc;
    fl_graph_t *g = c->g;
    g->batch = n;
    struct fl_gvalue *in = &g->values[g->input];
    memcpy(in->data, x, (size_t)n * in->numel * sizeof(float));
    if ((rc = fl_graph_prepare(g)))
        return rc;
    s_run(g, c->frozen, c->nfrozen);
    for (int s = 0; s < n; s++) {
        float *dst = out + (size_t)s * c->dim;
        for (int k = 0; k < c->nfront; k++) {
            size_t len = g->values[c->front[k]].numel;
            memcpy(dst, fl_gv_data(g, c->front[k], (size_t)s), len * sizeof(float));
            dst += len;
        }
    }
    return 0;
}

int fl_graph_cut_forward_rest(const fl_graph_cut_t *c, const float *packed, int n)
{
    int rc = s_check(c, n);
    if (rc)
        return rc;
    fl_graph_t *g = c->g;
    g->batch = n;
    for (int s = 0; s < n; s++) {
        const float *src = packed + (size_t)s * c->dim;
        for (int k = 0; k < c->nfront; k++) {
            size_t len = g->values[c->front[k]].numel;
            memcpy(fl_gv_data(g, c->front[k], (size_t)s), src, len * sizeof(float));
            src += len;
        }
    }
    if ((rc = fl_graph_prepare(g)))
        return rc;
    s_run(g, c->rest, c->nrest);
    return 0;
}
