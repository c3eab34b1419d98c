/* fl_graph: building a graph, validating it (names, cycles, shapes) and planning its buffers. */
#include "fl_graph_impl.h"
#include "fl_ops_conv_impl.h"

#include "fl_convk.h"
#include "fl_error.h"
#include "fl_linalg.h"
#include "fl_mem.h"
#include "fl_tensor.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct fl_op_info s_ops[FL_OP_COUNT_] = {
    [FL_OP_CONV] = {"Conv", 2, 3, fl_conv_infer, fl_conv_fwd, fl_conv_bwd, fl_conv_fwd_part,
                    fl_conv_splits},
    [FL_OP_GEMM] = {"Gemm", 2, 3, fl_gemm_infer, fl_gemm_fwd, fl_gemm_bwd, NULL, NULL},
    [FL_OP_MATMUL] = {"MatMul", 2, 2, fl_matmul_infer, fl_gemm_fwd, fl_gemm_bwd, NULL, NULL},
    [FL_OP_RELU] = {"Relu", 1, 1, fl_unary_infer, fl_unary_fwd, fl_unary_bwd, NULL, NULL},
    [FL_OP_CLIP] = {"Clip", 1, 1, fl_unary_infer, fl_unary_fwd, fl_unary_bwd, NULL, NULL},
    [FL_OP_SIGMOID] = {"Sigmoid", 1, 1, fl_unary_infer, fl_unary_fwd, fl_unary_bwd, NULL, NULL},
    [FL_OP_HARDSIGMOID] = {"HardSigmoid", 1, 1, fl_unary_infer, fl_unary_fwd, fl_unary_bwd, NULL,
                           NULL},
    [FL_OP_HARDSWISH] = {"HardSwish", 1, 1, fl_unary_infer, fl_unary_fwd, fl_unary_bwd, NULL, NULL},
    [FL_OP_ADD] = {"Add", 2, 2, fl_binary_infer, fl_binary_fwd, fl_binary_bwd, NULL, NULL},
    [FL_OP_SUB] = {"Sub", 2, 2, fl_binary_infer, fl_binary_fwd, fl_binary_bwd, NULL, NULL},
    [FL_OP_MUL] = {"Mul", 2, 2, fl_binary_infer, fl_binary_fwd, fl_binary_bwd, NULL, NULL},
    [FL_OP_DIV] = {"Div", 2, 2, fl_binary_infer, fl_binary_fwd, fl_binary_bwd, NULL, NULL},
    [FL_OP_MAXPOOL] = {"MaxPool", 1, 1, fl_pool_infer, fl_maxpool_fwd, fl_maxpool_bwd, NULL, NULL},
    [FL_OP_AVGPOOL] = {"AveragePool", 1, 1, fl_pool_infer, fl_avgpool_fwd, fl_avgpool_bwd, NULL,
                       NULL},
    [FL_OP_GLOBALAVGPOOL] = {"GlobalAveragePool", 1, 1, fl_gap_infer, fl_gap_fwd, fl_gap_bwd, NULL,
                             NULL},
    [FL_OP_FLATTEN] = {"Flatten", 1, 1, fl_flatten_infer, fl_copy_fwd, fl_copy_bwd, NULL, NULL},
    [FL_OP_RESHAPE] = {"Reshape", 1, 1, fl_reshape_infer, fl_copy_fwd, fl_copy_bwd, NULL, NULL},
    [FL_OP_CONCAT] = {"Concat", 1, FL_GRAPH_MAX_INPUTS, fl_concat_infer, fl_concat_fwd,
                      fl_concat_bwd, NULL, NULL},
    [FL_OP_IDENTITY] = {"Identity", 1, 1, fl_unary_infer, fl_copy_fwd, fl_copy_bwd, NULL, NULL},
    [FL_OP_DROPOUT] = {"Dropout", 1, 1, fl_unary_infer, fl_copy_fwd, fl_copy_bwd, NULL, NULL},
    [FL_OP_BATCHNORM] = {"BatchNormalization", 5, 5, fl_bn_infer, fl_bn_fwd, fl_bn_bwd, NULL, NULL},
};

const struct fl_op_info *fl_op_info(enum fl_op op)
{
    if ((int)op <= 0 || op >= FL_OP_COUNT_)
        return NULL;
    return &s_ops[op];
}

const char *fl_op_name(enum fl_op op)
{
    const struct fl_op_info *info = fl_op_info(op);
    return info ? info->name : "?";
}

struct fl_op_attrs fl_op_attrs_default(void)
{
    struct fl_op_attrs a;
    memset(&a, 0, sizeof a);
    a.stride[0] = a.stride[1] = 1;
    a.dilation[0] = a.dilation[1] = 1;
    a.group = 1;
    a.alpha = a.beta = 1.0f;
    a.min = -INFINITY;
    a.max = INFINITY;
    a.epsilon = 1e-5f;
    a.axis = 1;
    return a;
}

const char *fl_gv_shape_str(const struct fl_gvalue *v, char *buf, size_t len)
{
    if (v->ndim == 0) {
        snprintf(buf, len, "?");
        return buf;
    }
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < v->ndim && used < len; i++)
        used +=
            (size_t)snprintf(buf + used, len - used, "%s%lld", i ? "x" : "", (long long)v->dims[i]);
    return buf;
}

fl_graph_t *fl_graph_new(fl_pool_t *pool)
{
    fl_graph_t *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->pool = pool;
    g->nworkers = fl_pool_size(pool);
    if (g->nworkers > FL_GRAPH_MAX_WORKERS)
        g->nworkers = FL_GRAPH_MAX_WORKERS;
    g->input = g->output = -1;
    g->simd = fl_convk_supported();
    g->depth_first = true;
    fl_linalg_init();
    return g;
}

void fl_graph_use_simd(fl_graph_t *g, bool allow)
{
    g->simd = allow && fl_convk_supported();
}

void fl_graph_use_depth_first(fl_graph_t *g, bool allow)
{
    g->depth_first = allow;
}

void fl_graph_destroy(fl_graph_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_graph_t *g = *self_p;
    for (int i = 0; i < g->nvalues; i++) {
        if (g->values[i].alias < 0 && !g->values[i].in_arena)
            free(g->values[i].data);
        free(g->values[i].grad);
    }
    for (int i = 0; i < g->nnodes; i++) {
        free(g->nodes[i].argmax);
        free(g->nodes[i].wc);
    }
    for (int t = 0; t < FL_GRAPH_MAX_WORKERS; t++) {
        free(g->scratch[t]);
        if (g->wgrad[t] && t > 0)
            for (int v = 0; v < g->nvalues; v++)
                free(g->wgrad[t][v]);
        free(g->wgrad[t]);
    }
    free(g->dlogits);
    free(g->arena);
    free(g->loras);
    free(g->order);
    free(g->values);
    free(g->nodes);
    free(g);
    *self_p = NULL;
}

static int s_find_value(const fl_graph_t *g, const char *name)
{
    for (int i = 0; i < g->nvalues; i++)
        if (strcmp(g->values[i].name, name) == 0)
            return i;
    return -1;
}

static int s_find_node(const fl_graph_t *g, const char *name)
{
    for (int i = 0; i < g->nnodes; i++)
        if (strcmp(g->nodes[i].name, name) == 0)
            return i;
    return -1;
}

static int s_check_name(const fl_graph_t *g, const char *what, const char *name)
{
    if (g->planned)
        return fl_fail(FL_EINVAL, "graph: cannot add %s '%s' after planning", what, name);
    if (!name || !name[0] || strlen(name) >= FL_GRAPH_NAME_MAX)
        return fl_fail(FL_EINVAL, "graph: %s name empty or longer than %d bytes", what,
                       FL_GRAPH_NAME_MAX - 1);
    return 0;
}

/* A new value called name (unique), or -1 with a message. */
static int s_new_value(fl_graph_t *g, const char *name, enum fl_gvalue_kind kind)
{
    if (s_find_value(g, name) >= 0) {
        fl_fail(FL_EINVAL, "graph: value '%s' defined twice", name);
        return -1;
    }
    if (g->nvalues == g->cap_values) {
        int cap = g->cap_values ? 2 * g->cap_values : 16;
        struct fl_gvalue *v = realloc(g->values, (size_t)cap * sizeof *v);
        if (!v) {
            fl_fail(FL_ENOMEM, "graph: out of memory");
            return -1;
        }
        g->values = v;
        g->cap_values = cap;
    }
    struct fl_gvalue *v = &g->values[g->nvalues];
    memset(v, 0, sizeof *v);
    snprintf(v->name, sizeof v->name, "%s", name);
    v->kind = kind;
    v->producer = -1;
    v->alias = -1;
    return g->nvalues++;
}

static int s_set_dims(struct fl_gvalue *v, int ndim, const int64_t *dims, int maxdim)
{
    if (ndim < 1 || ndim > maxdim)
        return fl_fail(FL_EINVAL, "graph: value '%s' has %d axes (1 to %d allowed)", v->name, ndim,
                       maxdim);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 1 || dims[i] > (1 << 24) || n > SIZE_MAX / (size_t)dims[i] / 4)
            return fl_fail(FL_EINVAL, "graph: value '%s' axis %d has size %lld", v->name, i,
                           (long long)dims[i]);
        v->dims[i] = dims[i];
        n *= (size_t)dims[i];
    }
    v->ndim = ndim;
    v->numel = n;
    return 0;
}

int fl_graph_add_input(fl_graph_t *g, const char *name, int ndim, const int64_t *dims)
{
    int rc = s_check_name(g, "input", name);
    if (rc)
        return rc;
    if (g->input >= 0)
        return fl_fail(FL_EINVAL, "graph: second input '%s' (one input per graph)", name);
    int v = s_new_value(g, name, FL_GV_INPUT);
    if (v < 0)
        return FL_EINVAL;
    rc = s_set_dims(&g->values[v], ndim, dims, FL_GRAPH_MAX_DIMS - 1);
    if (rc) {
        g->nvalues--;
        return rc;
    }
    g->input = v;
    return 0;
}

int fl_graph_add_param(fl_graph_t *g, const char *name, int ndim, const int64_t *dims,
                       const float *data, bool trainable)
{
    int rc = s_check_name(g, "parameter", name);
    if (rc)
        return rc;
    int v = s_new_value(g, name, FL_GV_PARAM);
    if (v < 0)
        return FL_EINVAL;
    struct fl_gvalue *p = &g->values[v];
    rc = s_set_dims(p, ndim, dims, FL_GRAPH_MAX_DIMS);
    if (rc == 0 && !(p->data = fl_falloc(p->numel)))
        rc = fl_fail(FL_ENOMEM, "graph: out of memory for parameter '%s'", name);
    if (rc) {
        g->nvalues--;
        return rc;
    }
    if (data)
        memcpy(p->data, data, p->numel * sizeof(float));
    p->trainable = trainable;
    return 0;
}

int fl_graph_add_node(fl_graph_t *g, const char *name, enum fl_op op, const char *const *inputs,
                      int ninputs, const char *output, const struct fl_op_attrs *attrs)
{
    int rc = s_check_name(g, "node", name);
    if (rc)
        return rc;
    const struct fl_op_info *info = fl_op_info(op);
    if (!info)
        return fl_fail(FL_EINVAL, "graph: node '%s' has unknown op %d", name, (int)op);
    if (ninputs < info->min_in || ninputs > info->max_in)
        return fl_fail(FL_EINVAL, "graph: node '%s' (%s) takes %d to %d inputs, given %d", name,
                       info->name, info->min_in, info->max_in, ninputs);
    if (s_find_node(g, name) >= 0)
        return fl_fail(FL_EINVAL, "graph: node '%s' defined twice", name);
    if ((rc = s_check_name(g, "output value", output)))
        return rc;
    for (int i = 0; i < ninputs; i++)
        if ((rc = s_check_name(g, "input value", inputs[i])))
            return rc;
    if (g->nnodes == g->cap_nodes) {
        int cap = g->cap_nodes ? 2 * g->cap_nodes : 16;
        struct fl_gnode *n = realloc(g->nodes, (size_t)cap * sizeof *n);
        if (!n)
            return fl_fail(FL_ENOMEM, "graph: out of memory");
        g->nodes = n;
        g->cap_nodes = cap;
    }
    int v = s_new_value(g, output, FL_GV_ACT);
    if (v < 0)
        return FL_EINVAL;
    struct fl_gnode *nd = &g->nodes[g->nnodes];
    memset(nd, 0, sizeof *nd);
    nd->res = -1;
    snprintf(nd->name, sizeof nd->name, "%s", name);
    nd->op = op;
    nd->nin = ninputs;
    for (int i = 0; i < ninputs; i++) {
        snprintf(nd->in_names[i], sizeof nd->in_names[i], "%s", inputs[i]);
        nd->in[i] = -1;
    }
    nd->out = v;
    nd->a = attrs ? *attrs : fl_op_attrs_default();
    g->values[v].producer = g->nnodes++;
    return 0;
}

int fl_graph_set_trainable(fl_graph_t *g, const char *name, bool trainable)
{
    if (g->planned)
        return fl_fail(FL_EINVAL, "graph: '%s' made %s after planning", name,
                       trainable ? "trainable" : "frozen");
    int v = s_find_value(g, name);
    if (v < 0 || g->values[v].kind != FL_GV_PARAM || g->values[v].derived)
        return fl_fail(FL_ENOTFOUND, "graph: no parameter '%s'", name);
    g->values[v].trainable = trainable;
    return 0;
}

int fl_graph_set_output(fl_graph_t *g, const char *name)
{
    int rc = s_check_name(g, "output", name);
    if (rc)
        return rc;
    snprintf(g->output_name, sizeof g->output_name, "%s", name);
    return 0;
}

/* Resolve input names; order the nodes so that each runs after its inputs' producers (depth
 * first, refusing a cycle with the name of a node on it). */
static int s_visit(fl_graph_t *g, int n, char *state, int *pos)
{
    if (state[n] == 2)
        return 0;
    if (state[n] == 1)
        return fl_fail(FL_EINVAL, "graph: cycle through node '%s'", g->nodes[n].name);
    state[n] = 1;
    struct fl_gnode *nd = &g->nodes[n];
    for (int i = 0; i < nd->nin; i++) {
        int p = g->values[nd->in[i]].producer;
        int rc = p >= 0 ? s_visit(g, p, state, pos) : 0;
        if (rc)
            return rc;
    }
    state[n] = 2;
    g->order[(*pos)++] = n;
    return 0;
}

static int s_resolve_and_order(fl_graph_t *g)
{
    if (g->input < 0)
        return fl_fail(FL_EINVAL, "graph: no input");
    if (!g->output_name[0])
        return fl_fail(FL_EINVAL, "graph: no output set");
    if ((g->output = s_find_value(g, g->output_name)) < 0)
        return fl_fail(FL_ENOTFOUND, "graph: output '%s' is not a value", g->output_name);
    if (g->values[g->output].kind != FL_GV_ACT)
        return fl_fail(FL_EINVAL, "graph: output '%s' is not computed by a node", g->output_name);
    for (int n = 0; n < g->nnodes; n++) {
        struct fl_gnode *nd = &g->nodes[n];
        for (int i = 0; i < nd->nin; i++)
            if ((nd->in[i] = s_find_value(g, nd->in_names[i])) < 0)
                return fl_fail(FL_ENOTFOUND, "graph: node '%s' reads unknown value '%s'", nd->name,
                               nd->in_names[i]);
    }
    char *state = calloc((size_t)g->nnodes + 1, 1);
    free(g->order);
    g->order = fl_malloc_array((size_t)g->nnodes + 1, sizeof *g->order);
    if (!state || !g->order) {
        free(state);
        return fl_fail(FL_ENOMEM, "graph: out of memory");
    }
    int pos = 0, rc = 0;
    for (int n = 0; n < g->nnodes && rc == 0; n++)
        rc = s_visit(g, n, state, &pos);
    free(state);
    return rc;
}

/* Which values a gradient flows into: trainable parameters, the input when asked, and every
 * node output that depends on one of them. */
static void s_mark_grads(fl_graph_t *g, bool input_grad)
{
    for (int v = 0; v < g->nvalues; v++)
        g->values[v].needs_grad = g->values[v].kind == FL_GV_PARAM && g->values[v].trainable;
    g->values[g->input].needs_grad = input_grad;
    fl_lora_mark(g);
    for (int k = 0; k < g->nnodes; k++) {
        const struct fl_gnode *nd = &g->nodes[g->order[k]];
        for (int i = 0; i < nd->nin; i++)
            if (g->values[nd->in[i]].needs_grad)
                g->values[nd->out].needs_grad = true;
    }
    fl_lora_settle(g);
}

static int s_alloc(fl_graph_t *g)
{
    size_t scratch = 1;
    if (fl_graph_share_memory(g))
        return FL_ENOMEM;
    for (int n = 0; n < g->nnodes; n++) {
        if (g->nodes[n].scratch > scratch)
            scratch = g->nodes[n].scratch;
        if (g->nodes[n].op == FL_OP_MAXPOOL &&
            !(g->nodes[n].argmax =
                  fl_malloc_array((size_t)g->max_batch, g->values[g->nodes[n].out].numel * 4)))
            return FL_ENOMEM;
    }
    for (int v = 0; v < g->nvalues; v++) {
        struct fl_gvalue *x = &g->values[v];
        size_t n = x->kind == FL_GV_PARAM ? x->numel : x->numel * (size_t)g->max_batch;
        if (x->kind != FL_GV_PARAM && x->alias < 0 && !x->in_arena && !(x->data = fl_falloc(n)))
            return FL_ENOMEM;
        if (x->needs_grad && !(x->grad = fl_falloc(n)))
            return FL_ENOMEM;
    }
    for (int v = 0; v < g->nvalues; v++)
        if (g->values[v].alias >= 0)
            g->values[v].data = g->values[g->values[v].alias].data;
    for (int t = 0; t < g->nworkers; t++) {
        if (!(g->scratch[t] = fl_falloc(scratch)))
            return FL_ENOMEM;
        if (!(g->wgrad[t] = calloc((size_t)g->nvalues, sizeof(float *))))
            return FL_ENOMEM;
        for (int v = 0; v < g->nvalues; v++) {
            struct fl_gvalue *x = &g->values[v];
            if (x->kind != FL_GV_PARAM || !x->needs_grad)
                continue;
            g->wgrad[t][v] = t == 0 ? x->grad : fl_falloc(x->numel);
            if (!g->wgrad[t][v])
                return FL_ENOMEM;
        }
    }
    size_t classes = g->values[g->output].numel;
    if (!(g->dlogits = fl_falloc(classes * (size_t)g->max_batch)))
        return FL_ENOMEM;
    return 0;
}

/* Does a value's shape hold: 1 to FL_GRAPH_MAX_DIMS axes of 1 to 2^24, whose product (checked
 * axis by axis, so that nothing wraps) is numel and at most INT32_MAX? Shape inference works
 * on dimensions a hostile file chose; this is the one check after every op. */
static bool s_dims_sane(const struct fl_gvalue *v)
{
    if (v->ndim < 1 || v->ndim > FL_GRAPH_MAX_DIMS)
        return false;
    uint64_t n = 1;
    for (int i = 0; i < v->ndim; i++) {
        if (v->dims[i] < 1 || v->dims[i] > (1 << 24))
            return false;
        n *= (uint64_t)v->dims[i];
        if (n > INT32_MAX)
            return false;
    }
    return n == v->numel;
}

int fl_graph_plan(fl_graph_t *g, int max_batch, bool input_grad)
{
    if (g->planned)
        return fl_fail(FL_EINVAL, "graph: planned twice");
    if (max_batch < 1)
        return fl_fail(FL_EINVAL, "graph: batch capacity %d", max_batch);
    g->max_batch = max_batch;
    for (int v = 0; v < g->nvalues; v++)
        if (g->values[v].kind == FL_GV_ACT)
            g->values[v].ndim = 0;
    int rc = s_resolve_and_order(g);
    for (int k = 0; rc == 0 && k < g->nnodes; k++) {
        struct fl_gnode *nd = &g->nodes[g->order[k]];
        for (int i = 0; i < nd->nin; i++)
            if (g->values[nd->in[i]].ndim == 0)
                return fl_fail(FL_EINVAL, "graph: node '%s' reads '%s' before it is computed",
                               nd->name, nd->in_names[i]);
        rc = s_ops[nd->op].infer(g, nd);
        const struct fl_gvalue *y = &g->values[nd->out];
        if (rc == 0 && !s_dims_sane(y))
            rc = fl_fail(FL_ERANGE,
                         "graph: node '%s' makes a value of more than 2^31 elements "
                         "or an axis over 2^24",
                         nd->name);
        if (rc == 0 && (y->numel > INT32_MAX || y->numel > SIZE_MAX / 4 / (size_t)max_batch))
            rc = fl_fail(FL_ERANGE, "graph: node '%s' makes %zu values per sample", nd->name,
                         y->numel);
    }
    if (rc)
        return rc;
    s_mark_grads(g, input_grad);
    /* the kept conv columns too: passes allocate nothing */
    if (fl_graph_fuse(g) || s_alloc(g) || fl_cv_cache_all(g))
        return fl_fail(FL_ENOMEM, "graph: out of memory planning %d nodes for batch %d", g->nnodes,
                       max_batch);
    g->planned = true;
    return 0;
}

static bool s_reads(const fl_graph_t *g, int value, int except)
{
    for (int n = 0; n < g->nnodes; n++) {
        if (n == except)
            continue;
        for (int i = 0; i < g->nodes[n].nin; i++)
            if (strcmp(g->nodes[n].in_names[i], g->values[value].name) == 0)
                return true;
    }
    return strcmp(g->output_name, g->values[value].name) == 0;
}

int fl_graph_fold_batchnorm(fl_graph_t *g, const char *bn_node)
{
    int b = s_find_node(g, bn_node);
    if (b < 0 || g->nodes[b].op != FL_OP_BATCHNORM)
        return fl_fail(FL_ENOTFOUND, "graph: no BatchNormalization node '%s'", bn_node);
    if (g->planned)
        return fl_fail(FL_EINVAL, "graph: fold '%s' before planning", bn_node);
    struct fl_gnode *bn = &g->nodes[b];
    int x = s_find_value(g, bn->in_names[0]);
    int c = x >= 0 ? g->values[x].producer : -1;
    if (c < 0 || g->nodes[c].op != FL_OP_CONV)
        return fl_fail(FL_EINVAL, "graph: '%s' does not follow a Conv", bn_node);
    struct fl_gnode *conv = &g->nodes[c];
    if (s_reads(g, x, b))
        return fl_fail(FL_EINVAL, "graph: the output of '%s' is read by more than '%s'", conv->name,
                       bn_node);
    int w = s_find_value(g, conv->in_names[0 + 1]), p[4];
    for (int i = 0; i < 4; i++)
        p[i] = s_find_value(g, bn->in_names[1 + i]);
    if (w < 0 || g->values[w].kind != FL_GV_PARAM || g->values[w].ndim != 4 || s_reads(g, w, c))
        return fl_fail(FL_EINVAL, "graph: the weight of '%s' is not its own parameter", conv->name);
    int64_t out = g->values[w].dims[0];
    for (int i = 0; i < 4; i++)
        if (p[i] < 0 || g->values[p[i]].kind != FL_GV_PARAM || g->values[p[i]].numel != (size_t)out)
            return fl_fail(FL_EINVAL, "graph: '%s' input %d is not a parameter of %lld values",
                           bn_node, i + 1, (long long)out);
    if (conv->nin < 3) {
        char name[FL_GRAPH_NAME_MAX];
        snprintf(name, sizeof name, "%.50s.bias", conv->name);
        int rc = fl_graph_add_param(g, name, 1, &out, NULL, false);
        if (rc)
            return rc;
        conv = &g->nodes[c];
        snprintf(conv->in_names[2], sizeof conv->in_names[2], "%s", name);
        conv->nin = 3;
    }
    int bias = s_find_value(g, conv->in_names[2]);
    if (bias < 0 || g->values[bias].numel != (size_t)out || s_reads(g, bias, c))
        return fl_fail(FL_EINVAL, "graph: the bias of '%s' is not its own parameter", conv->name);
    float *wd = g->values[w].data, *bd = g->values[bias].data;
    const float *sc = g->values[p[0]].data, *sh = g->values[p[1]].data;
    const float *mean = g->values[p[2]].data, *var = g->values[p[3]].data;
    size_t per = g->values[w].numel / (size_t)out;
    for (int64_t o = 0; o < out; o++) {
        float k = sc[o] / sqrtf(var[o] + bn->a.epsilon);
        for (size_t i = 0; i < per; i++)
            wd[(size_t)o * per + i] *= k;
        bd[o] = (bd[o] - mean[o]) * k + sh[o];
    }
    bn->op = FL_OP_IDENTITY;
    bn->nin = 1;
    return 0;
}
