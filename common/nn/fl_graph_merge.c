/* fl_graph_merge: see fl_graph_merge.h. The description is edited on a copy (inputs renamed,
 * the head turned into a Gemm), then rebuilt with any Add a MatMul's BitFit needs; the merged
 * parameters are gathered last, each name from the merged weights, the adapter or the base. */
#include "fl_graph_merge.h"

#include "fl_error.h"
#include "fl_graphadapt.h"
#include "fl_linalg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct s_merge {
    const struct fl_graphdef *def; /* the base description (unchanged) */
    const struct fl_tensor *base;  /* base parameters */
    size_t nbase;                  /* their count */
    const struct fl_tensor *ad;    /* adapter tensors */
    size_t nad;                    /* their count */
    bool *used;                    /* [nad]: adapter tensor taken by a rule */
    struct fl_graphdef d;          /* the description being edited */
    bool *bias_after;              /* [nnodes]: MatMul gets an Add of "N.bias" after it */
    struct fl_tensor *merged;      /* merged LoRA weights (owned) */
    size_t nmerged;                /* their count */
};

/* The adapter tensor called name, marked used, or NULL. */
static const struct fl_tensor *s_take(struct s_merge *m, const char *name)
{
    for (size_t i = 0; i < m->nad; i++)
        if (strcmp(m->ad[i].name, name) == 0) {
            m->used[i] = true;
            return &m->ad[i];
        }
    return NULL;
}

/* Does any node of the base description other than slot `slot` of node `node` read value? */
static bool s_read_elsewhere(const struct fl_graphdef *d, const char *value, int node, int slot)
{
    for (int i = 0; i < d->nnodes; i++)
        for (int k = 0; k < d->nodes[i].nin; k++)
            if ((i != node || k != slot) && strcmp(d->nodes[i].in[k], value) == 0)
                return true;
    return false;
}

/* Is name already a value of the base (input, node output or a parameter some node reads)? */
static bool s_taken(const struct fl_graphdef *d, const char *name)
{
    return strcmp(name, d->input) == 0 || fl_graphdef_producer(d, name) >= 0 ||
           s_read_elsewhere(d, name, -1, -1);
}

/* Node slot `slot` of node n reads the adapter's tensor `name` from now on. */
static int s_rewire(struct s_merge *m, int n, int slot, const char *name)
{
    if (s_read_elsewhere(m->def, name, n, slot))
        return fl_fail(FL_EMISMATCH,
                       "merge: the adapter's '%s' has the name of a base value other "
                       "nodes read",
                       name);
    snprintf(m->d.nodes[n].in[slot], FL_GRAPH_NAME_MAX, "%s", name);
    if (m->d.nodes[n].nin <= slot)
        m->d.nodes[n].nin = slot + 1;
    return 0;
}

/* The base parameter node n reads at slot, or NULL with a message. */
static const struct fl_tensor *s_param(struct s_merge *m, int n, int slot)
{
    const struct fl_gdef_node *nd = &m->def->nodes[n];
    const struct fl_tensor *t = NULL;
    if (slot < nd->nin && fl_graphdef_is_param(m->def, nd->in[slot]))
        t = fl_tensor_find(m->base, m->nbase, nd->in[slot]);
    if (!t)
        fl_fail(FL_EMISMATCH, "merge: node '%s' (%s) has no parameter at input %d", nd->name,
                fl_op_name(nd->op), slot + 1);
    return t;
}

static bool s_shape2(const struct fl_tensor *t, int64_t d0, int64_t d1)
{
    return t->ndim == 2 && t->shape[0] == d0 && t->shape[1] == d1;
}

/* W' = W + (alpha/rank) B A on target node n. */
static int s_lora(struct s_merge *m, int n, const struct fl_adapter_meta *meta)
{
    const struct fl_gdef_node *nd = &m->def->nodes[n];
    if (nd->op != FL_OP_CONV && nd->op != FL_OP_GEMM && nd->op != FL_OP_MATMUL)
        return fl_fail(FL_EINVAL, "merge: LoRA target '%s' is a %s (Conv, Gemm or MatMul only)",
                       nd->name, fl_op_name(nd->op));
    const struct fl_tensor *w = s_param(m, n, 1);
    if (!w)
        return FL_EMISMATCH;
    char an[FL_NAME_MAX], bn[FL_NAME_MAX];
    fl_graphadapt_tensor_name(an, nd->name, "lora_A");
    fl_graphadapt_tensor_name(bn, nd->name, "lora_B");
    const struct fl_tensor *a = s_take(m, an), *b = s_take(m, bn);
    int64_t rows = w->shape[0], cols = (int64_t)(fl_tensor_numel(w) / (size_t)rows);
    if (!a || !b || !s_shape2(a, meta->rank, cols) || !s_shape2(b, rows, meta->rank))
        return fl_fail(FL_EMISMATCH,
                       "merge: LoRA on '%s' needs '%s' [%d, %lld] and '%s' [%lld, %d] "
                       "in the adapter",
                       nd->name, an, meta->rank, (long long)cols, bn, (long long)rows, meta->rank);
    struct fl_tensor *t = realloc(m->merged, (m->nmerged + 1) * sizeof *t);
    if (!t)
        return fl_fail(FL_ENOMEM, "merge: out of memory");
    m->merged = t;
    t = &m->merged[m->nmerged];
    int rc = fl_tensor_copy(t, w);
    if (rc)
        return fl_fail(rc, "merge: out of memory for '%s'", w->name);
    m->nmerged++;
    if (s_read_elsewhere(m->def, w->name, n, 1)) {
        /* W is shared: the merged weight is this node's alone. */
        snprintf(t->name, sizeof t->name, "%.50s.lora_merged", nd->name);
        if (s_taken(m->def, t->name))
            return fl_fail(FL_EMISMATCH, "merge: '%s' is taken", t->name);
        snprintf(m->d.nodes[n].in[1], FL_GRAPH_NAME_MAX, "%s", t->name);
    }
    fl_gemm(false, false, (int)rows, (int)cols, meta->rank, meta->alpha / (float)meta->rank,
            b->data, meta->rank, a->data, (int)cols, 1.0f, t->data, (int)cols);
    return 0;
}

/* Output channels or features of node n (Conv, Gemm, MatMul, BatchNormalization), or -1. */
static int64_t s_out_features(struct s_merge *m, int n)
{
    const struct fl_gdef_node *nd = &m->def->nodes[n];
    const struct fl_tensor *w = s_param(m, n, 1);
    if (!w)
        return -1;
    if (nd->op == FL_OP_CONV || (nd->op == FL_OP_GEMM && nd->a.trans_b))
        return w->shape[0];
    if (nd->op == FL_OP_BATCHNORM)
        return (int64_t)fl_tensor_numel(w);
    return w->shape[w->ndim - 1];
}

/* "N.bias" replaces (or becomes) target node n's bias. */
static int s_bitfit(struct s_merge *m, int n)
{
    const struct fl_gdef_node *nd = &m->def->nodes[n];
    if (nd->op != FL_OP_CONV && nd->op != FL_OP_GEMM && nd->op != FL_OP_MATMUL &&
        nd->op != FL_OP_BATCHNORM)
        return fl_fail(FL_EINVAL,
                       "merge: BitFit target '%s' is a %s (Conv, Gemm, MatMul or "
                       "BatchNormalization only)",
                       nd->name, fl_op_name(nd->op));
    char bn[FL_NAME_MAX];
    fl_graphadapt_tensor_name(bn, nd->name, "bias");
    if (strlen(bn) >= FL_GRAPH_NAME_MAX)
        return fl_fail(FL_EINVAL, "merge: '%s' is too long a name", bn);
    const struct fl_tensor *b = s_take(m, bn);
    int64_t out = s_out_features(m, n);
    if (out < 0)
        return FL_EMISMATCH;
    if (!b || b->ndim != 1 || b->shape[0] != out)
        return fl_fail(FL_EMISMATCH, "merge: BitFit on '%s' needs '%s' [%lld] in the adapter",
                       nd->name, bn, (long long)out);
    if (nd->op == FL_OP_MATMUL) {
        if (s_read_elsewhere(m->def, bn, -1, -1))
            return fl_fail(FL_EMISMATCH, "merge: '%s' is a base value too", bn);
        m->bias_after[n] = true;
        return 0;
    }
    /* Training adds the trained bias as it is (it starts from beta C), so beta becomes 1. */
    if (nd->op == FL_OP_GEMM)
        m->d.nodes[n].a.beta = 1.0f;
    return s_rewire(m, n, 2, bn);
}

/* The head reads "head.weight" and "head.bias" as a Gemm with transB. */
static int s_head(struct s_merge *m, const struct fl_tensor *hw, const struct fl_adapter_meta *meta)
{
    int n = fl_graphadapt_head(m->def);
    if (n < 0)
        return fl_fail(
            FL_EMISMATCH,
            "merge: the adapter has a head, the graph no Gemm/MatMul computing its output");
    const struct fl_gdef_node *nd = &m->def->nodes[n];
    for (int t = 0; t < meta->ntargets && t < FL_MAX_TARGETS; t++)
        if (strncmp(meta->targets[t], nd->name, sizeof meta->targets[t]) == 0)
            return fl_fail(FL_EMISMATCH, "merge: '%s' is both the head and a target", nd->name);
    const struct fl_tensor *w = s_param(m, n, 1), *hb = s_take(m, "head.bias");
    if (!w)
        return FL_EMISMATCH;
    int64_t in = nd->op == FL_OP_GEMM && nd->a.trans_b ? w->shape[w->ndim - 1] : w->shape[0];
    if (hw->ndim != 2 || hw->shape[1] != in || !hb || hb->ndim != 1 || hb->shape[0] != hw->shape[0])
        return fl_fail(FL_EMISMATCH,
                       "merge: the new head of '%s' needs 'head.weight' [classes, %lld] "
                       "and 'head.bias' [classes]",
                       nd->name, (long long)in);
    int rc = s_rewire(m, n, 1, "head.weight");
    if (rc == 0)
        rc = s_rewire(m, n, 2, "head.bias");
    if (rc)
        return rc;
    struct fl_gdef_node *h = &m->d.nodes[n];
    struct fl_op_attrs a = fl_op_attrs_default();
    a.trans_b = true;
    h->op = FL_OP_GEMM;
    h->a = a;
    return 0;
}

/* Rebuild m->d into out with the Adds MatMul BitFit needs. */
static int s_rebuild(struct s_merge *m, struct fl_graphdef *out)
{
    fl_graphdef_init(out);
    snprintf(out->input, sizeof out->input, "%s", m->d.input);
    snprintf(out->output, sizeof out->output, "%s", m->d.output);
    out->in_ndim = m->d.in_ndim;
    memcpy(out->in_dims, m->d.in_dims, sizeof out->in_dims);
    int rc = 0;
    for (int i = 0; rc == 0 && i < m->d.nnodes; i++) {
        const struct fl_gdef_node *nd = &m->d.nodes[i];
        const char *in[FL_GRAPH_MAX_INPUTS];
        for (int k = 0; k < nd->nin; k++)
            in[k] = nd->in[k];
        if (!m->bias_after[i]) {
            rc = fl_graphdef_add(out, nd->name, nd->op, in, nd->nin, nd->out, &nd->a);
            continue;
        }
        char mid[FL_GRAPH_NAME_MAX + 16], add[FL_GRAPH_NAME_MAX + 16], bias[FL_NAME_MAX];
        snprintf(mid, sizeof mid, "%s.pre_bias", nd->name);
        snprintf(add, sizeof add, "%s/bitfit", nd->name);
        fl_graphadapt_tensor_name(bias, nd->name, "bias");
        if (strlen(mid) >= FL_GRAPH_NAME_MAX || strlen(add) >= FL_GRAPH_NAME_MAX ||
            s_taken(m->def, mid) || fl_graphdef_find(m->def, add) >= 0)
            return fl_fail(FL_EMISMATCH, "merge: no room for BitFit's Add after '%s'", nd->name);
        const char *ain[2] = {mid, bias};
        rc = fl_graphdef_add(out, nd->name, nd->op, in, nd->nin, mid, &nd->a);
        if (rc == 0)
            rc = fl_graphdef_add(out, add, FL_OP_ADD, ain, 2, nd->out, NULL);
    }
    return rc;
}

static void s_free_all(struct fl_tensor *t, size_t n)
{
    for (size_t i = 0; t && i < n; i++)
        fl_tensor_free(&t[i]);
    free(t);
}

/* Parameter `name` of the merged graph into *t: a merged weight (its data handed over), else
 * the adapter's or the base's tensor (borrowed). */
static int s_take_param(struct s_merge *m, const char *name, struct fl_tensor *t)
{
    for (size_t i = 0; i < m->nmerged; i++)
        if (strcmp(m->merged[i].name, name) == 0) {
            *t = m->merged[i];
            m->merged[i].owned = false;
            return 0;
        }
    const struct fl_tensor *src = NULL;
    for (size_t i = 0; !src && i < m->nad; i++)
        if (m->used[i] && strcmp(m->ad[i].name, name) == 0)
            src = &m->ad[i];
    if (!src && !(src = fl_tensor_find(m->base, m->nbase, name)))
        return FL_ENOTFOUND;
    *t = *src;
    t->owned = false;
    return 0;
}

/* The parameters od reads, once each, in the order they are first read. */
static int s_gather(struct s_merge *m, const struct fl_graphdef *od, struct fl_tensor **out,
                    size_t *nout)
{
    size_t cap = 0, n = 0;
    for (int i = 0; i < od->nnodes; i++)
        cap += (size_t)od->nodes[i].nin;
    struct fl_tensor *t = calloc(cap ? cap : 1, sizeof *t);
    if (!t)
        return fl_fail(FL_ENOMEM, "merge: out of memory");
    for (int i = 0; i < od->nnodes; i++)
        for (int k = 0; k < od->nodes[i].nin; k++) {
            const char *name = od->nodes[i].in[k];
            if (!fl_graphdef_is_param(od, name) || fl_tensor_find(t, n, name))
                continue;
            if (s_take_param(m, name, &t[n]) != 0) {
                s_free_all(t, n);
                return fl_fail(FL_EMISMATCH, "merge: node '%s' reads '%s', which is no parameter",
                               od->nodes[i].name, name);
            }
            n++;
        }
    *out = t;
    *nout = n;
    return 0;
}

/* Every rule the adapter's kind calls for, on the working copy. */
static int s_apply(struct s_merge *m, const struct fl_adapter_meta *meta)
{
    bool lora = meta->kind == FL_ADAPTER_LORA || meta->kind == FL_ADAPTER_FFA_LORA;
    if (lora && (meta->rank < 1 || meta->rank > 1 << 16))
        return fl_fail(FL_EINVAL, "merge: LoRA rank %d", meta->rank);
    int rc = 0;
    for (int t = 0; rc == 0 && t < meta->ntargets && t < FL_MAX_TARGETS; t++) {
        if (!lora && meta->kind != FL_ADAPTER_BITFIT)
            break;
        int n = fl_graphdef_find(m->def, meta->targets[t]);
        if (n < 0)
            return fl_fail(FL_EINVAL, "merge: target '%.32s' is no node of the graph",
                           meta->targets[t]);
        rc = lora ? s_lora(m, n, meta) : s_bitfit(m, n);
    }
    const struct fl_tensor *hw = rc == 0 ? s_take(m, "head.weight") : NULL;
    if (hw)
        rc = s_head(m, hw, meta);
    for (size_t i = 0; rc == 0 && i < m->nad; i++)
        if (!m->used[i])
            rc = fl_fail(FL_EMISMATCH, "merge: the adapter's '%s' fits no rule of a %s adapter",
                         m->ad[i].name, fl_adapter_kind_name(meta->kind));
    return rc;
}

int fl_graph_merge_adapter(const struct fl_graphdef *def, const struct fl_tensor *base,
                           size_t nbase, const struct fl_adapter_meta *meta,
                           const struct fl_tensor *adapter, size_t nadapter,
                           struct fl_graphdef *out_def, struct fl_tensor **out, size_t *nout)
{
    struct s_merge m = {.def = def, .base = base, .nbase = nbase, .ad = adapter, .nad = nadapter};
    struct fl_graphdef od;
    fl_graphdef_init(&od);
    int rc = fl_graphdef_copy(&m.d, def);
    if (rc)
        return rc;
    m.used = calloc(nadapter ? nadapter : 1, sizeof *m.used);
    m.bias_after = calloc(def->nnodes ? (size_t)def->nnodes : 1, sizeof *m.bias_after);
    if (!m.used || !m.bias_after)
        rc = fl_fail(FL_ENOMEM, "merge: out of memory");
    if (rc == 0)
        rc = s_apply(&m, meta);
    if (rc == 0)
        rc = s_rebuild(&m, &od);
    if (rc == 0)
        rc = s_gather(&m, &od, out, nout);
    if (rc == 0)
        *out_def = od;
    else
        fl_graphdef_free(&od);
    s_free_all(m.merged, m.nmerged);
    free(m.used);
    free(m.bias_after);
    fl_graphdef_free(&m.d);
    return rc;
}
