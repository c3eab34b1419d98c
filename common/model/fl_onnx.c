/* fl_onnx: see fl_onnx.h. The file, its graph input, the order of its nodes and the result;
 * tensors in fl_onnx_tensor.c, ops in fl_onnx_ops.c, folding in fl_onnx_fold.c. */
#include "fl_graphadapt.h"
#include "fl_onnx_impl.h"

#include "fl_error.h"
#include "fl_fs.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fl_ox_fail(struct fl_ox *ox, int err, const char *fmt, ...)
{
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (ox->cur)
        return fl_fail(err, "onnx: %s: node '%.200s' (%.64s): %s", ox->origin, ox->curname,
                       ox->cur->op_type ? ox->cur->op_type : "?", what);
    return fl_fail(err, "onnx: %s: %s", ox->origin, what);
}

static uint64_t s_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

int fl_ox_map_put(struct fl_ox_map *m, const char *key, int val)
{
    if (2 * (m->n + 1) > m->cap) {
        struct fl_ox_map b = {m->cap ? 2 * m->cap : 64, 0, NULL, NULL};
        b.keys = calloc(b.cap, sizeof *b.keys);
        b.vals = calloc(b.cap, sizeof *b.vals);
        if (!b.keys || !b.vals) {
            free(b.keys), free(b.vals);
            return fl_fail(FL_ENOMEM, "onnx: out of memory");
        }
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i])
                fl_ox_map_put(&b, m->keys[i], m->vals[i]);
        fl_ox_map_free(m);
        *m = b;
    }
    size_t i = s_hash(key) & (m->cap - 1);
    while (m->keys[i] && strcmp(m->keys[i], key) != 0)
        i = (i + 1) & (m->cap - 1);
    if (!m->keys[i])
        m->n++;
    m->keys[i] = key;
    m->vals[i] = val;
    return 0;
}

int fl_ox_map_get(const struct fl_ox_map *m, const char *key)
{
    if (!m->cap || !key)
        return -1;
    size_t i = s_hash(key) & (m->cap - 1);
    while (m->keys[i]) {
        if (strcmp(m->keys[i], key) == 0)
            return m->vals[i];
        i = (i + 1) & (m->cap - 1);
    }
    return -1;
}

void fl_ox_map_free(struct fl_ox_map *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

void fl_ox_short_name(const char *name, char out[FL_GRAPH_NAME_MAX])
{
    size_t len = strlen(name);
    if (len <= FL_GRAPHADAPT_NODE_CHARS) {
        memcpy(out, name, len + 1);
        return;
    }
    /* 50 bytes in all: an adapter names a node's tensors after its first 50 bytes
     * ("<node>.lora_A", fl_graphadapt.h), so two longer names sharing those would clash. */
    snprintf(out, FL_GRAPH_NAME_MAX, "%.33s~%016llx", name, (unsigned long long)s_hash(name));
}

int fl_ox_find(const struct fl_ox *ox, const char *name)
{
    return fl_ox_map_get(&ox->names, name);
}

int fl_ox_new_val(struct fl_ox *ox, const char *name, enum fl_ox_kind kind, int *idx)
{
    if (!name || !*name)
        return fl_ox_fail(ox, FL_EFORMAT, "a value has no name");
    if (fl_ox_find(ox, name) >= 0)
        return fl_ox_fail(ox, FL_EFORMAT, "value '%.200s' is defined twice", name);
    if (ox->nvals == ox->capv) {
        int cap = ox->capv ? 2 * ox->capv : 256;
        struct fl_ox_val *v = realloc(ox->vals, (size_t)cap * sizeof *v);
        if (!v)
            return fl_fail(FL_ENOMEM, "onnx: out of memory");
        ox->vals = v;
        ox->capv = cap;
    }
    struct fl_ox_val *v = &ox->vals[ox->nvals];
    memset(v, 0, sizeof *v);
    v->kind = kind;
    v->alias = -1;
    if (!(v->name = strdup(name)))
        return fl_fail(FL_ENOMEM, "onnx: out of memory");
    int rc = fl_ox_map_put(&ox->names, v->name, ox->nvals);
    if (rc) {
        free(v->name);
        return rc;
    }
    *idx = ox->nvals++;
    return 0;
}

int fl_ox_new_const(struct fl_ox *ox, const char *base, enum fl_ox_kind kind, int ndim,
                    const int64_t *dims, int *idx)
{
    char name[FL_GRAPH_NAME_MAX * 4 + 16];
    int64_t shape[FL_OX_MAX_DIMS]; /* dims may point into ox->vals, which grows */
    memcpy(shape, dims, (size_t)ndim * sizeof *dims);
    dims = shape;
    snprintf(name, sizeof name, "%.256s", base);
    for (int k = 1; fl_ox_find(ox, name) >= 0; k++)
        snprintf(name, sizeof name, "%.256s_%d", base, k);
    size_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= (size_t)dims[d];
    int rc = fl_ox_new_val(ox, name, kind, idx);
    if (rc)
        return rc;
    struct fl_ox_val *v = &ox->vals[*idx];
    v->ndim = ndim;
    memcpy(v->dims, dims, (size_t)ndim * sizeof *dims);
    v->numel = n;
    if (kind == FL_OX_FLOAT)
        v->f = fl_falloc(n ? n : 1);
    else
        v->i = calloc(n ? n : 1, sizeof *v->i);
    if (!v->f && !v->i)
        return fl_fail(FL_ENOMEM, "onnx: out of memory for %zu values", n);
    return 0;
}

int fl_ox_emit(struct fl_ox *ox, const char *name, enum fl_op op, const int *in, int nin, int out,
               const struct fl_op_attrs *a)
{
    if (ox->nnodes >= FL_GRAPHDEF_MAX_NODES)
        return fl_ox_fail(ox, FL_ERANGE, "more than %d nodes", FL_GRAPHDEF_MAX_NODES);
    if (ox->nnodes == ox->capn) {
        int cap = ox->capn ? 2 * ox->capn : 64;
        struct fl_ox_node *n = realloc(ox->nodes, (size_t)cap * sizeof *n);
        if (!n)
            return fl_fail(FL_ENOMEM, "onnx: out of memory");
        ox->nodes = n;
        ox->capn = cap;
    }
    struct fl_ox_node *nd = &ox->nodes[ox->nnodes];
    memset(nd, 0, sizeof *nd);
    if (!(nd->name = strdup(name)))
        return fl_fail(FL_ENOMEM, "onnx: out of memory");
    nd->op = op;
    nd->nin = nin;
    for (int k = 0; k < nin; k++) {
        nd->in[k] = in[k];
        ox->vals[in[k]].readers++;
    }
    nd->out = out;
    nd->a = a ? *a : fl_op_attrs_default();
    ox->nnodes++;
    return 0;
}

const Onnx__AttributeProto *fl_ox_attr(const Onnx__NodeProto *n, const char *name)
{
    for (size_t i = 0; i < n->n_attribute; i++)
        if (n->attribute[i]->name && strcmp(n->attribute[i]->name, name) == 0)
            return n->attribute[i];
    return NULL;
}

int64_t fl_ox_attr_i(const Onnx__NodeProto *n, const char *name, int64_t def)
{
    const Onnx__AttributeProto *a = fl_ox_attr(n, name);
    return a && a->has_i ? a->i : def;
}

float fl_ox_attr_f(const Onnx__NodeProto *n, const char *name, float def)
{
    const Onnx__AttributeProto *a = fl_ox_attr(n, name);
    return a && a->has_f ? a->f : def;
}

static int s_opset(struct fl_ox *ox, const Onnx__ModelProto *m)
{
    ox->opset = 0;
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = m->opset_import[i];
        if ((!o->domain || !*o->domain || strcmp(o->domain, "ai.onnx") == 0) && o->has_version)
            ox->opset = (int)o->version;
    }
    if (ox->opset < FL_ONNX_OPSET_MIN || ox->opset > FL_ONNX_OPSET_MAX)
        return fl_ox_fail(ox, FL_EVERSION, "opset %d of the default domain (%d to %d are read)",
                          ox->opset, FL_ONNX_OPSET_MIN, FL_ONNX_OPSET_MAX);
    return 0;
}

/* The graph input's per-sample shape: from the file, dynamic axes fixed by opts. */
static int s_input(struct fl_ox *ox, const Onnx__ValueInfoProto *vi)
{
    const Onnx__TypeProto *tp = vi->type;
    const Onnx__TensorShapeProto *sh = NULL;
    if (tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && tp->tensor_type)
        sh = tp->tensor_type->shape;
    const struct fl_onnx_opts *o = ox->opts;
    bool given = o && o->in_ndim > 0;
    if (given && o->in_ndim > 3)
        return fl_ox_fail(ox, FL_EINVAL, "input shape of %d axes given (1 to 3)", o->in_ndim);
    int nd = sh ? (int)sh->n_dim - 1 : (given ? o->in_ndim : -1);
    if (nd < 1 || nd > 3)
        return fl_ox_fail(ox, FL_EMISMATCH,
                          "input '%.200s' has %d axes: batch and 1 to 3 per sample are needed",
                          vi->name, nd + 1);
    if (given && o->in_ndim != nd)
        return fl_ox_fail(ox, FL_EMISMATCH,
                          "input '%.200s' has %d axes per sample, the shape given %d", vi->name, nd,
                          o->in_ndim);
    int64_t dims[3];
    bool dynamic = false;
    const Onnx__TensorShapeProto__Dimension *d0 = sh ? sh->dim[0] : NULL;
    ox->file_batch = d0 && d0->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
                         ? d0->dim_value
                         : -1;
    for (int d = 0; d < nd; d++) {
        const Onnx__TensorShapeProto__Dimension *dm = sh ? sh->dim[d + 1] : NULL;
        bool known = dm && dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
                     dm->dim_value > 0;
        if (known && given && dm->dim_value != o->in_dims[d])
            return fl_ox_fail(ox, FL_EMISMATCH,
                              "input '%.200s' has axis %d = %lld, the shape given %lld", vi->name,
                              d + 1, (long long)dm->dim_value, (long long)o->in_dims[d]);
        dynamic |= !known;
        dims[d] = given ? o->in_dims[d] : known ? dm->dim_value : -1;
        if (dims[d] > FL_ONNX_MAX_AXIS || (given && dims[d] < 1))
            return fl_ox_fail(ox, FL_ERANGE, "input '%.200s': absurd dimensions (axis %d = %lld)",
                              vi->name, d + 1, (long long)dims[d]);
    }
    if (!dynamic || given) {
        int64_t total = 1;
        for (int d = 0; d < nd; d++)
            total *= dims[d];
        if (total > FL_ONNX_MAX_NUMEL)
            return fl_ox_fail(ox, FL_ERANGE,
                              "input '%.200s': absurd dimensions (%lld values "
                              "per sample)",
                              vi->name, (long long)total);
    }
    if (dynamic && !given)
        return fl_ox_fail(ox, FL_EINVAL,
                          "input '%.200s' has dynamic dimensions (only the batch axis may be): "
                          "give its per-sample shape (--input-shape, e.g. 3x32x32)",
                          vi->name);
    int rc = fl_ox_new_val(ox, vi->name, FL_OX_ACT, &ox->input);
    if (rc)
        return rc;
    struct fl_ox_val *v = &ox->vals[ox->input];
    v->ndim = nd + 1;
    v->dims[0] = FL_OX_BATCH;
    memcpy(v->dims + 1, dims, (size_t)nd * sizeof *dims);
    return 0;
}

static int s_inputs(struct fl_ox *ox, const Onnx__GraphProto *g)
{
    int rc;
    for (size_t i = 0; i < g->n_initializer; i++) {
        int idx;
        if ((rc = fl_ox_tensor(ox, g->initializer[i], g->initializer[i]->name, &idx)))
            return rc;
    }
    const Onnx__ValueInfoProto *in = NULL;
    for (size_t i = 0; i < g->n_input; i++) {
        if (!g->input[i]->name || fl_ox_find(ox, g->input[i]->name) >= 0)
            continue; /* an initializer also listed as an input (older exporters) */
        if (in)
            return fl_ox_fail(ox, FL_EINVAL, "more than one input ('%.200s', '%.200s')", in->name,
                              g->input[i]->name);
        in = g->input[i];
    }
    if (!in)
        return fl_ox_fail(ox, FL_EFORMAT, "the graph has no input");
    return s_input(ox, in);
}

/* Node indices in an order where each node comes after the producers of its inputs. */
static int s_order(struct fl_ox *ox, const Onnx__GraphProto *g, int **order_p)
{
    size_t n = g->n_node;
    struct fl_ox_map prod = {0};
    int *deg = calloc(n + 1, sizeof *deg), *order = calloc(n + 1, sizeof *order);
    int rc = deg && order ? 0 : fl_fail(FL_ENOMEM, "onnx: out of memory");
    for (size_t i = 0; rc == 0 && i < n; i++)
        for (size_t k = 0; rc == 0 && k < g->node[i]->n_output; k++) {
            const char *o = g->node[i]->output[k];
            if (o && *o && (fl_ox_map_get(&prod, o) >= 0 || fl_ox_find(ox, o) >= 0))
                rc =
                    fl_fail(FL_EFORMAT, "onnx: %s: value '%.200s' is written twice", ox->origin, o);
            else if (o && *o)
                rc = fl_ox_map_put(&prod, o, (int)i);
        }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const Onnx__NodeProto *nd = g->node[i];
        for (size_t k = 0; rc == 0 && k < nd->n_input; k++) {
            const char *s = nd->input[k];
            if (!s || !*s || fl_ox_find(ox, s) >= 0)
                continue;
            if (fl_ox_map_get(&prod, s) < 0)
                rc = fl_fail(FL_ENOTFOUND,
                             "onnx: %s: node '%.200s' (%.64s) reads '%.200s', which is no "
                             "node's output, no initializer and not the input (missing "
                             "initializer?)",
                             ox->origin, nd->name ? nd->name : "", nd->op_type, s);
            deg[i]++;
        }
    }
    /* Kahn over the consumers of each node (an edge per input read): take the nodes whose
     * inputs are all known. */
    size_t done = 0, head = 0, nedge = 0;
    size_t *first = rc ? NULL : calloc(n + 2, sizeof *first);
    int *edge = NULL;
    for (size_t i = 0; first && i < n; i++)
        nedge += g->node[i]->n_input;
    if (rc == 0 && (!first || !(edge = calloc(nedge + 1, sizeof *edge))))
        rc = fl_fail(FL_ENOMEM, "onnx: out of memory");
    for (int pass = 0; rc == 0 && pass < 2; pass++) {
        for (size_t j = 0; j < n; j++)
            for (size_t q = 0; q < g->node[j]->n_input; q++) {
                int p = fl_ox_map_get(&prod, g->node[j]->input[q]);
                if (p >= 0 && pass == 0)
                    first[p + 2]++;
                else if (p >= 0)
                    edge[first[p + 1]++] = (int)j;
            }
        for (size_t i = 0; pass == 0 && i < n; i++)
            first[i + 2] += first[i + 1];
    }
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (deg[i] == 0)
            order[done++] = (int)i;
    while (rc == 0 && head < done) {
        int p = order[head++];
        for (size_t e = p ? first[p] : 0; e < first[p + 1]; e++)
            if (--deg[edge[e]] == 0)
                order[done++] = edge[e];
    }
    free(first);
    free(edge);
    for (size_t i = 0; rc == 0 && done < n && i < n; i++)
        if (deg[i] > 0)
            rc =
                fl_fail(FL_EFORMAT, "onnx: %s: the graph has a cycle through node '%.200s' (%.64s)",
                        ox->origin, g->node[i]->name ? g->node[i]->name : "", g->node[i]->op_type);
    fl_ox_map_free(&prod);
    free(deg);
    if (rc)
        free(order), order = NULL;
    *order_p = order;
    return rc;
}

static int s_nodes(struct fl_ox *ox, const Onnx__GraphProto *g)
{
    if (g->n_node > FL_ONNX_MAX_NODES)
        return fl_ox_fail(ox, FL_ERANGE, "%zu nodes (at most %d)", g->n_node, FL_ONNX_MAX_NODES);
    for (size_t i = 0; i < g->n_node; i++)
        if (!g->node[i]->op_type)
            return fl_ox_fail(ox, FL_EFORMAT, "node %zu has no op type", i);
    int *order, rc = s_order(ox, g, &order);
    for (size_t i = 0; rc == 0 && i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[order[i]];
        ox->cur = n;
        if (n->name && *n->name)
            snprintf(ox->curname, sizeof ox->curname, "%s", n->name);
        else
            snprintf(ox->curname, sizeof ox->curname, "%.64s_%d", n->op_type, order[i]);
        rc = fl_ox_translate(ox, n);
    }
    ox->cur = NULL;
    free(order);
    return rc;
}

static int s_output(struct fl_ox *ox, const Onnx__GraphProto *g)
{
    if (g->n_output != 1 || !g->output[0]->name)
        return fl_ox_fail(ox, FL_EINVAL, "the graph has %zu outputs (one, the logits, is read)",
                          g->n_output);
    int v = fl_ox_find(ox, g->output[0]->name);
    while (v >= 0 && ox->vals[v].alias >= 0)
        v = ox->vals[v].alias;
    if (v < 0 || ox->vals[v].kind != FL_OX_ACT || v == ox->input)
        return fl_ox_fail(ox, FL_EINVAL, "output '%.200s' is not computed from the input",
                          g->output[0]->name);
    if (ox->vals[v].ndim != 2)
        return fl_ox_fail(ox, FL_EMISMATCH,
                          "output '%.200s' has %d axes (logits [batch, "
                          "classes] are needed)",
                          g->output[0]->name, ox->vals[v].ndim);
    ox->output = v;
    return 0;
}

/* Names of nodes unique and short. */
static int s_node_name(struct fl_ox *ox, struct fl_ox_map *seen, const struct fl_ox_node *nd,
                       char out[FL_GRAPH_NAME_MAX])
{
    fl_ox_short_name(nd->name, out);
    char base[FL_GRAPH_NAME_MAX];
    memcpy(base, out, sizeof base);
    for (int k = 1; fl_ox_map_get(seen, out) >= 0; k++) {
        char suf[16];
        int sl = snprintf(suf, sizeof suf, "_%d", k);
        snprintf(out, FL_GRAPH_NAME_MAX, "%.*s%s", FL_GRAPH_NAME_MAX - 1 - sl, base, suf);
    }
    char *keep = strdup(out);
    int rc = keep ? fl_ox_map_put(seen, keep, 1) : fl_fail(FL_ENOMEM, "onnx: out of memory");
    (void)ox;
    return rc;
}

/* The description and the parameters (constants read by nodes, data moved out). */
static int s_result(struct fl_ox *ox, struct fl_graphdef *def, struct fl_tensor **params,
                    size_t *nparams)
{
    struct fl_ox_map seen = {0};
    size_t np = 0;
    int rc = 0;
    struct fl_tensor *ps = calloc((size_t)ox->nvals + 1, sizeof *ps);
    if (!ps)
        return fl_fail(FL_ENOMEM, "onnx: out of memory");
    fl_ox_short_name(ox->vals[ox->input].name, def->input);
    def->in_ndim = ox->vals[ox->input].ndim - 1;
    memcpy(def->in_dims, ox->vals[ox->input].dims + 1, (size_t)def->in_ndim * sizeof(int64_t));
    fl_ox_short_name(ox->vals[ox->output].name, def->output);
    for (int i = 0; rc == 0 && i < ox->nnodes; i++) {
        const struct fl_ox_node *nd = &ox->nodes[i];
        if (nd->dead)
            continue;
        char name[FL_GRAPH_NAME_MAX], out[FL_GRAPH_NAME_MAX], in[FL_GRAPH_MAX_INPUTS][64];
        const char *inp[FL_GRAPH_MAX_INPUTS];
        for (int k = 0; k < nd->nin; k++) {
            struct fl_ox_val *v = &ox->vals[nd->in[k]];
            fl_ox_short_name(v->name, in[k]);
            inp[k] = in[k];
            if (v->kind != FL_OX_FLOAT || fl_tensor_find(ps, np, in[k]))
                continue;
            struct fl_tensor *t = &ps[np++];
            snprintf(t->name, sizeof t->name, "%s", in[k]);
            t->ndim = v->ndim ? v->ndim : 1;
            for (int d = 0; d < t->ndim; d++)
                t->shape[d] = v->ndim ? v->dims[d] : 1;
            t->data = v->f;
            t->owned = true;
            v->f = NULL;
        }
        fl_ox_short_name(ox->vals[nd->out].name, out);
        rc = s_node_name(ox, &seen, nd, name);
        if (rc == 0)
            rc = fl_graphdef_add(def, name, nd->op, inp, nd->nin, out, &nd->a);
    }
    for (size_t i = 0; i < seen.cap; i++)
        free((char *)seen.keys[i]);
    fl_ox_map_free(&seen);
    *params = ps;
    *nparams = np;
    return rc;
}

static void s_free(struct fl_ox *ox)
{
    for (int i = 0; i < ox->nvals; i++) {
        free(ox->vals[i].name);
        free(ox->vals[i].f);
        free(ox->vals[i].i);
    }
    for (int i = 0; i < ox->nnodes; i++)
        free(ox->nodes[i].name);
    free(ox->vals);
    free(ox->nodes);
    fl_ox_map_free(&ox->names);
}

int fl_onnx_import_mem(const uint8_t *buf, size_t len, const char *origin, const char *dir,
                       const struct fl_onnx_opts *opts, struct fl_graphdef *def,
                       struct fl_tensor **params, size_t *nparams)
{
    struct fl_ox ox = {.origin = origin ? origin : "(memory)", .dir = dir, .opts = opts};
    ox.input = ox.output = -1;
    fl_graphdef_init(def);
    *params = NULL;
    *nparams = 0;
    if (len > FL_ONNX_MAX_FILE)
        return fl_ox_fail(&ox, FL_ERANGE, "%zu bytes (at most %zu)", len, FL_ONNX_MAX_FILE);
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, buf);
    if (!m)
        return fl_ox_fail(&ox, FL_EFORMAT,
                          "not an ONNX model (the protobuf does not parse: truncated or "
                          "another format)");
    int rc = m->graph ? s_opset(&ox, m)
                      : fl_ox_fail(&ox, FL_EFORMAT, "not an ONNX model (it holds no graph)");
    if (rc == 0)
        rc = s_inputs(&ox, m->graph);
    if (rc == 0)
        rc = s_nodes(&ox, m->graph);
    if (rc == 0)
        rc = s_output(&ox, m->graph);
    if (rc == 0)
        rc = fl_ox_post(&ox);
    if (rc == 0)
        rc = s_result(&ox, def, params, nparams);
    onnx__model_proto__free_unpacked(m, NULL);
    s_free(&ox);
    if (rc) {
        fl_graphdef_free(def);
        fl_onnx_free_params(params, *nparams);
        *nparams = 0;
    }
    return rc;
}

int fl_onnx_import(const char *path, const struct fl_onnx_opts *opts, struct fl_graphdef *def,
                   struct fl_tensor **params, size_t *nparams)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    fl_graphdef_init(def);
    *params = NULL;
    *nparams = 0;
    int rc = fl_fs_read_file(path, FL_ONNX_MAX_FILE, &buf, &len);
    if (rc) {
        char why[512];
        snprintf(why, sizeof why, "%s", fl_error_msg());
        return fl_fail(rc, "onnx: cannot read the model: %s", why);
    }
    char *dir = strdup(path);
    if (!dir) {
        free(buf);
        return fl_fail(FL_ENOMEM, "onnx: out of memory");
    }
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[slash == dir ? 1 : 0] = '\0';
    else
        strcpy(dir, ".");
    rc = fl_onnx_import_mem(buf, len, path, dir, opts, def, params, nparams);
    free(dir);
    free(buf);
    return rc;
}

void fl_onnx_free_params(struct fl_tensor **params, size_t n)
{
    if (!params || !*params)
        return;
    for (size_t i = 0; i < n; i++)
        fl_tensor_free(&(*params)[i]);
    free(*params);
    *params = NULL;
}
