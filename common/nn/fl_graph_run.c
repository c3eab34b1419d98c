/* fl_graph_run: the forward and backward passes of a planned graph, the training loss, and the
 * accessors of values, parameters and gradients. */
#include "fl_graph_impl.h"

#include "fl_error.h"
#include "fl_layers.h"
#include "fl_ops_conv_impl.h"

#include <string.h>

struct s_job {
    fl_graph_t *g;             /* the graph */
    const struct fl_gnode *nd; /* the node run */
    fl_op_run_fn *fn;          /* its forward or backward kernel */
    int ntasks;                /* pieces the batch is cut into */
};

/* Task t's samples [*b0, *b1) of a batch cut into ntasks pieces. */
static void s_samples(const fl_graph_t *g, int t, int ntasks, size_t *b0, size_t *b1)
{
    size_t n = (size_t)g->batch;
    *b0 = n * (size_t)t / (size_t)ntasks;
    *b1 = n * ((size_t)t + 1) / (size_t)ntasks;
}

static void s_task(void *arg, int t)
{
    const struct s_job *j = arg;
    size_t b0, b1;
    s_samples(j->g, t, j->ntasks, &b0, &b1);
    if (b1 > b0)
        j->fn(j->g, j->nd, t, b0, b1);
}

static void s_part_task(void *arg, int t)
{
    const struct s_job *j = arg;
    fl_op_info(j->nd->op)->part(j->g, j->nd, t, j->ntasks);
}

static int s_ntasks(const fl_graph_t *g)
{
    return g->batch < g->nworkers ? g->batch : g->nworkers;
}

static void s_run(fl_graph_t *g, const struct fl_gnode *nd, fl_op_run_fn *fn)
{
    struct s_job j = {g, nd, fn, s_ntasks(g)};
    if (j.ntasks <= 1)
        s_task(&j, 0);
    else
        fl_pool_run(g->pool, j.ntasks, s_task, &j);
}

void fl_graph_node_forward(fl_graph_t *g, const struct fl_gnode *nd)
{
    const struct fl_op_info *info = fl_op_info(nd->op);
    if (g->batch < g->nworkers && info->part && info->splits(g, nd)) { /* too few samples */
        struct s_job j = {g, nd, NULL, g->nworkers};
        fl_pool_run(g->pool, j.ntasks, s_part_task, &j);
        return;
    }
    s_run(g, nd, info->forward);
}

int fl_graph_prepare(fl_graph_t *g)
{
    fl_lora_merge_all(g);
    return fl_cv_cache_all(g) ? fl_fail(FL_ENOMEM, "graph: out of memory for conv weights") : 0;
}

void fl_graph_touch(fl_graph_t *g)
{
    g->param_gen++;
}

/* Weight floats the depth-first nodes may read together (256 KiB: half the second-level cache
 * of the machines measured, so that they stay there from one sample to the next), and the
 * samples a worker takes through them at a time. mobilenet_v2 at 64x64, batch 32, one thread:
 * its first blocks ran 1.1-2.1x faster on 2 samples at a time than over the batch (the
 * activations of 32 samples leave the caches; features.2's expanded 96x32x32 planes are 12.6
 * MB), the later ones 0.8-0.95x (their weights are read again for each group); by 2 samples
 * through features.0-6, the whole pass 1.05-1.07x. */
#define S_DF_WEIGHTS ((size_t)64 << 10)
#define S_DF_GROUP   2
/* ...when they are at least this many (a conv's per-call set-up, its gather table, is paid
 * for every group: resnet18's stem and pool alone ran 0.95-0.98x). */
#define S_DF_MIN_NODES 8

/* Can node nd run depth-first: values the same whatever the samples computed with it? */
static bool s_df_node(const fl_graph_t *g, const struct fl_gnode *nd)
{
    switch (nd->op) {
    case FL_OP_CONV:
        return fl_conv_per_sample(g, nd);
    case FL_OP_GEMM:
    case FL_OP_MATMUL: /* OpenBLAS: its bits depend on the columns */
    case FL_OP_COUNT_:
        return false;
    default:
        return true;
    }
}

/* The first nodes (in order) that may run depth-first, their weights together within
 * S_DF_WEIGHTS: at the current batch (each node's own test), or whatever the batch (every op
 * but Gemm and MatMul, which never do). 0 when fewer than S_DF_MIN_NODES. */
static int s_df_prefix(const fl_graph_t *g, bool any_batch)
{
    size_t w = 0;
    int k = 0;
    for (; k < g->nnodes; k++) {
        const struct fl_gnode *nd = &g->nodes[g->order[k]];
        bool may = any_batch ? nd->op != FL_OP_GEMM && nd->op != FL_OP_MATMUL
                             : !g->values[nd->out].needs_grad && s_df_node(g, nd);
        if (!may)
            break;
        for (int i = 0; i < nd->nin; i++)
            if (g->values[nd->in[i]].kind == FL_GV_PARAM)
                w += g->values[nd->in[i]].numel;
        if (w > S_DF_WEIGHTS)
            break;
    }
    return k >= S_DF_MIN_NODES ? k : 0;
}

int fl_graph_df_bound(const fl_graph_t *g)
{
    /* as planned: not run depth-first later either */
    return g->depth_first && g->simd ? s_df_prefix(g, true) : 0;
}

/* Nodes (from the first, in order) an inference pass runs depth-first: 0 for none (at most
 * the bound the values' memory was planned for). */
static int s_df_nodes(const fl_graph_t *g)
{
    int workers = g->nworkers > 1 ? g->nworkers : 1;
    if (!g->depth_first || !g->simd || g->batch < 2 * workers)
        return 0;
    int k = s_df_prefix(g, false);
    return k <= g->df_bound ? k : 0;
}

struct s_df_job {
    fl_graph_t *g;
    int nk;     /* the first nk nodes */
    int ntasks; /* workers */
};

static void s_df_task(void *arg, int t)
{
    const struct s_df_job *j = arg;
    size_t b0, b1;
    s_samples(j->g, t, j->ntasks, &b0, &b1);
    for (size_t s = b0; s < b1; s += S_DF_GROUP) {
        size_t e = b1 - s < S_DF_GROUP ? b1 : s + S_DF_GROUP;
        for (int k = 0; k < j->nk; k++) {
            const struct fl_gnode *nd = &j->g->nodes[j->g->order[k]];
            fl_op_info(nd->op)->forward(j->g, nd, t, s, e);
        }
    }
}

int fl_graph_forward(fl_graph_t *g, const float *x, int n)
{
    if (!g->planned)
        return fl_fail(FL_EINVAL, "graph: forward before planning");
    if (n < 1 || n > g->max_batch)
        return fl_fail(FL_EINVAL, "graph: batch of %d (planned for 1 to %d)", n, g->max_batch);
    g->batch = n;
    struct fl_gvalue *in = &g->values[g->input];
    memcpy(in->data, x, (size_t)n * in->numel * sizeof(float));
    int rc = fl_graph_prepare(g);
    if (rc)
        return rc;
    struct s_df_job j = {g, s_df_nodes(g), s_ntasks(g)};
    if (j.nk && j.ntasks > 1)
        fl_pool_run(g->pool, j.ntasks, s_df_task, &j);
    else if (j.nk)
        s_df_task(&j, 0);
    for (int k = j.nk; k < g->nnodes; k++)
        fl_graph_node_forward(g, &g->nodes[g->order[k]]);
    return 0;
}

static void s_zero_grads(fl_graph_t *g, int ntasks)
{
    for (int v = 0; v < g->nvalues; v++) {
        struct fl_gvalue *x = &g->values[v];
        if (!x->needs_grad)
            continue;
        if (x->kind != FL_GV_PARAM) {
            memset(x->grad, 0, (size_t)g->batch * x->numel * sizeof(float));
            continue;
        }
        for (int t = 0; t < ntasks; t++)
            memset(g->wgrad[t][v], 0, x->numel * sizeof(float));
    }
}

/* Worker 0's parameter gradients are the graph's: add the others' into them. */
static void s_reduce_grads(fl_graph_t *g, int ntasks)
{
    for (int v = 0; v < g->nvalues; v++) {
        struct fl_gvalue *x = &g->values[v];
        if (x->kind != FL_GV_PARAM || !x->needs_grad)
            continue;
        for (int t = 1; t < ntasks; t++) {
            const float *src = g->wgrad[t][v];
            for (size_t i = 0; i < x->numel; i++)
                x->grad[i] += src[i];
        }
    }
}

int fl_graph_backward(fl_graph_t *g, const float *dout)
{
    if (!g->planned || g->batch < 1)
        return fl_fail(FL_EINVAL, "graph: backward before a forward pass");
    struct fl_gvalue *out = &g->values[g->output];
    if (!out->needs_grad)
        return 0;
    int ntasks = s_ntasks(g);
    s_zero_grads(g, ntasks);
    memcpy(out->grad, dout, (size_t)g->batch * out->numel * sizeof(float));
    for (int k = g->nnodes - 1; k >= 0; k--) {
        const struct fl_gnode *nd = &g->nodes[g->order[k]];
        if (g->values[nd->out].needs_grad)
            s_run(g, nd, fl_op_info(nd->op)->backward);
    }
    s_reduce_grads(g, ntasks);
    fl_lora_backward_all(g);
    return 0;
}

int fl_graph_train_step(fl_graph_t *g, const float *x, const int32_t *labels, int n, double *loss,
                        int *correct)
{
    int rc = fl_graph_forward(g, x, n);
    if (rc)
        return rc;
    const struct fl_gvalue *out = &g->values[g->output];
    if (out->ndim != 1)
        return fl_fail(FL_EINVAL, "graph: output '%s' is not a vector of logits", out->name);
    int k = (int)out->numel;
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= k)
            return fl_fail(FL_ERANGE, "graph: label %d of sample %d outside 0..%d", (int)labels[i],
                           i, k - 1);
    double l = fl_softmax_xent(n, k, out->data, labels, g->dlogits, correct);
    if (loss)
        *loss = l;
    return fl_graph_backward(g, g->dlogits);
}

static int s_value(const fl_graph_t *g, const char *name)
{
    for (int i = 0; i < g->nvalues; i++)
        if (strcmp(g->values[i].name, name) == 0)
            return i;
    return -1;
}

const float *fl_graph_output(const fl_graph_t *g, size_t *per_sample)
{
    if (!g->planned)
        return NULL;
    if (per_sample)
        *per_sample = g->values[g->output].numel;
    return g->values[g->output].data;
}

const float *fl_graph_value(const fl_graph_t *g, const char *name, size_t *per_sample)
{
    int v = s_value(g, name);
    if (v < 0 || !g->values[v].data || g->values[v].shared ||
        (g->values[v].alias >= 0 && g->values[g->values[v].alias].shared))
        return NULL;
    if (per_sample)
        *per_sample = g->values[v].numel;
    return g->values[v].data;
}

int fl_graph_value_shape(const fl_graph_t *g, const char *name, int64_t dims[FL_GRAPH_MAX_DIMS])
{
    int v = s_value(g, name);
    if (v < 0 || g->values[v].ndim == 0)
        return -1;
    memcpy(dims, g->values[v].dims, sizeof g->values[v].dims);
    return g->values[v].ndim;
}

const float *fl_graph_input_grad(const fl_graph_t *g)
{
    return g->input >= 0 ? g->values[g->input].grad : NULL;
}

float *fl_graph_param(fl_graph_t *g, const char *name, size_t *numel)
{
    int v = s_value(g, name);
    if (v < 0 || g->values[v].kind != FL_GV_PARAM || g->values[v].derived)
        return NULL;
    if (numel)
        *numel = g->values[v].numel;
    fl_graph_touch(g); /* the caller may write it */
    return g->values[v].data;
}

const float *fl_graph_grad(const fl_graph_t *g, const char *name)
{
    int v = s_value(g, name);
    if (v < 0 || g->values[v].kind != FL_GV_PARAM || g->values[v].derived)
        return NULL;
    return g->values[v].grad;
}

int fl_graph_nparams(const fl_graph_t *g)
{
    int n = 0;
    for (int v = 0; v < g->nvalues; v++)
        n += g->values[v].kind == FL_GV_PARAM && !g->values[v].derived;
    return n;
}

const char *fl_graph_param_name(const fl_graph_t *g, int i)
{
    for (int v = 0; v < g->nvalues; v++)
        if (g->values[v].kind == FL_GV_PARAM && !g->values[v].derived && i-- == 0)
            return g->values[v].name;
    return NULL;
}
