/* fl_graphadapt: see fl_graphadapt.h. */
#include "fl_graphadapt.h"

#include "fl_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool fl_graphadapt_is_linear(const struct fl_graphdef *d, int i)
{
    enum fl_op op = d->nodes[i].op;
    return op == FL_OP_CONV || op == FL_OP_GEMM || op == FL_OP_MATMUL;
}

int fl_graphadapt_head(const struct fl_graphdef *d)
{
    const char *v = d->output;
    for (int steps = 0; steps <= d->nnodes; steps++) {
        int p = fl_graphdef_producer(d, v);
        if (p < 0)
            return -1;
        enum fl_op op = d->nodes[p].op;
        if (op == FL_OP_GEMM || op == FL_OP_MATMUL)
            return d->nodes[p].nin >= 2 && fl_graphdef_is_param(d, d->nodes[p].in[1]) ? p : -1;
        if (op != FL_OP_IDENTITY && op != FL_OP_DROPOUT && op != FL_OP_FLATTEN)
            return -1;
        v = d->nodes[p].in[0];
    }
    return -1;
}

int fl_graphadapt_node(const struct fl_graphdef *d, const struct fl_tensor *t, size_t n, int i,
                       struct fl_gadapt_node *out)
{
    memset(out, 0, sizeof *out);
    const struct fl_gdef_node *nd = &d->nodes[i];
    if (!fl_graphadapt_is_linear(d, i) || nd->nin < 2 || !fl_graphdef_is_param(d, nd->in[1]))
        return fl_fail(FL_EINVAL, "node '%s' (%s) is not a Conv, Gemm or MatMul with a weight",
                       nd->name, fl_op_name(nd->op));
    const struct fl_tensor *w = fl_tensor_find(t, n, nd->in[1]);
    bool conv = nd->op == FL_OP_CONV;
    if (!w || w->ndim != (conv ? 4 : 2))
        return fl_fail(FL_EINVAL, "node '%s' (%s): weight '%s' is missing or not %d-D", nd->name,
                       fl_op_name(nd->op), nd->in[1], conv ? 4 : 2);
    out->node = i;
    out->weight = nd->in[1];
    out->wndim = w->ndim;
    memcpy(out->wshape, w->shape, sizeof out->wshape);
    bool trans = nd->op == FL_OP_GEMM && nd->a.trans_b;
    out->rows = conv || trans ? w->shape[0] : w->shape[1];
    out->cols = (int64_t)(fl_tensor_numel(w) / (size_t)out->rows);
    out->params = fl_tensor_numel(w);
    if (nd->nin >= 3 && fl_graphdef_is_param(d, nd->in[2])) {
        const struct fl_tensor *b = fl_tensor_find(t, n, nd->in[2]);
        out->bias = nd->in[2];
        out->params += b ? fl_tensor_numel(b) : 0;
    }
    out->depthwise = conv && nd->a.group > 1 && w->shape[1] == 1;
    out->lora = !out->depthwise;
    return 0;
}

/* Spatial downsampling: a Conv or a pooling window with a stride above 1. */
static bool s_downsamples(const struct fl_gdef_node *nd)
{
    bool windowed = nd->op == FL_OP_CONV || nd->op == FL_OP_MAXPOOL || nd->op == FL_OP_AVGPOOL;
    return windowed && (nd->a.stride[0] > 1 || nd->a.stride[1] > 1);
}

int fl_graphadapt_default_targets(const struct fl_graphdef *d, enum fl_adapter_kind kind,
                                  char (*targets)[FL_TARGET_NAME_MAX], int max)
{
    int head = fl_graphadapt_head(d), picked[FL_MAX_TARGETS], n = 0;
    if (kind == FL_ADAPTER_HEAD || max <= 0)
        return 0;
    if (max > FL_MAX_TARGETS)
        max = FL_MAX_TARGETS;
    if (kind == FL_ADAPTER_LORA || kind == FL_ADAPTER_FFA_LORA) {
        int want = FL_GRAPHADAPT_DEFAULT_LORA < max ? FL_GRAPHADAPT_DEFAULT_LORA : max;
        for (int i = d->nnodes - 1; i >= 0 && n < want; i--)
            if (i != head && fl_graphadapt_is_linear(d, i) && d->nodes[i].a.group == 1)
                picked[n++] = i;
    } else {
        int from = 0, last = -1;
        for (int i = 0; i < d->nnodes; i++) {
            if (s_downsamples(&d->nodes[i]))
                from = i;
            if (i != head && fl_graphadapt_is_linear(d, i))
                last = i;
        }
        for (int i = d->nnodes - 1; i >= from && n < max; i--)
            if (i != head && fl_graphadapt_is_linear(d, i))
                picked[n++] = i;
        if (n == 0 && last >= 0)
            picked[n++] = last;
    }
    for (int k = 0; k < n; k++) /* in graph order */
        snprintf(targets[k], FL_TARGET_NAME_MAX, "%s", d->nodes[picked[n - 1 - k]].name);
    return n;
}

void fl_graphadapt_tensor_name(char out[FL_NAME_MAX], const char *node, const char *what)
{
    snprintf(out, FL_NAME_MAX, "%.*s.%s", FL_GRAPHADAPT_NODE_CHARS, node, what);
}

int fl_arch_from_graph(const struct fl_graphdef *d, const char *name, int num_classes,
                       struct fl_arch *out)
{
    memset(out, 0, sizeof *out);
    if (!name || !name[0] || strlen(name) >= sizeof out->name)
        return fl_fail(FL_EINVAL, "graph model name empty or longer than %d bytes",
                       (int)sizeof out->name - 1);
    if (d->in_ndim < 1 || d->in_ndim > 3)
        return fl_fail(FL_EINVAL, "%s: the graph's input has %d axes (1 to 3)", name, d->in_ndim);
    int64_t dims[3] = {1, 1, 1};
    for (int i = 0; i < d->in_ndim; i++) {
        if (d->in_dims[i] < 1 || d->in_dims[i] > (1 << 24))
            return fl_fail(FL_EINVAL, "%s: input axis %d has size %lld", name, i,
                           (long long)d->in_dims[i]);
        dims[i] = d->in_dims[i];
    }
    if (dims[0] * dims[1] * dims[2] > (1 << 24))
        return fl_fail(FL_EINVAL, "%s: input of %lld values is too large", name,
                       (long long)(dims[0] * dims[1] * dims[2]));
    if (num_classes < 2 || num_classes > FL_MAX_CLASSES)
        return fl_fail(FL_EINVAL, "%s: %d classes (2 to %d)", name, num_classes, FL_MAX_CLASSES);
    snprintf(out->name, sizeof out->name, "%s", name);
    out->in_c = (int32_t)dims[0];
    out->in_h = (int32_t)dims[1];
    out->in_w = (int32_t)dims[2];
    out->num_classes = num_classes;
    out->graph = d;
    return 0;
}

uint64_t fl_graphadapt_node_seed(uint64_t seed, const char *node)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *c = node; *c; c++)
        h = (h ^ (uint8_t)*c) * 1099511628211ULL;
    return seed ^ h;
}

int fl_graphadapt_complete(const struct fl_graphdef *d, const struct fl_tensor *base, size_t nbase,
                           const struct fl_adapter_meta *meta, const struct fl_tensor *ad,
                           size_t nad, struct fl_tensor **out, size_t *nout)
{
    int extra = meta->kind == FL_ADAPTER_FFA_LORA ? meta->ntargets : 0;
    struct fl_tensor *t = calloc(nad + (size_t)extra + 1, sizeof *t);
    if (!t)
        return fl_fail(FL_ENOMEM, "out of memory");
    size_t n = 0;
    for (; n < nad; n++) {
        t[n] = ad[n];
        t[n].owned = false;
    }
    int rc = 0;
    for (int i = 0; rc == 0 && i < extra; i++) {
        char an[FL_NAME_MAX];
        fl_graphadapt_tensor_name(an, meta->targets[i], "lora_A");
        if (fl_tensor_find(ad, nad, an))
            continue;
        int node = fl_graphdef_find(d, meta->targets[i]);
        struct fl_gadapt_node x;
        if (node < 0)
            rc = fl_fail(FL_EMISMATCH, "the adapter's target '%s' is no node of the base",
                         meta->targets[i]);
        else if ((rc = fl_graphadapt_node(d, base, nbase, node, &x)) == 0) {
            /* A reads W as the engine does: rows its first axis, cols the rest. */
            const struct fl_tensor *w = fl_tensor_find(base, nbase, x.weight);
            int64_t cols = (int64_t)(fl_tensor_numel(w) / (size_t)w->shape[0]);
            if ((rc = fl_tensor_init2(&t[n], an, meta->rank, cols)) == 0) {
                fl_graph_lora_init_a(t[n].data, meta->rank, (int)cols,
                                     fl_graphadapt_node_seed(meta->seed, d->nodes[node].name));
                n++;
            }
        }
    }
    if (rc) {
        for (size_t i = 0; i < n; i++)
            fl_tensor_free(&t[i]);
        free(t);
        return rc;
    }
    *out = t;
    *nout = n;
    return 0;
}
