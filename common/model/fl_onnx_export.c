/* fl_onnx_export: see fl_onnx_export.h. The ModelProto is built in an arena (every message and
 * string one allocation recorded there, all freed at once), with raw_data pointing at the
 * parameters themselves on a little-endian host, and packed straight into the file through a
 * ProtobufCBuffer, so the weights are never copied into one large buffer. */
#include "fl_onnx_export.h"

#include "fl_error.h"
#include "fl_fs.h"

#include "onnx.pb-c.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_PAGE      4096
#define S_PB_LIMIT  ((size_t)2 << 30) /* protobuf's own limit on one message */
#define S_MAX_EXTRA 3                 /* initializers one node adds (Clip's min and max) */

struct s_arena {
    void **p;    /* allocations */
    size_t n;    /* used */
    size_t cap;  /* allocated */
    bool failed; /* an allocation failed */
};

static void *s_new(struct s_arena *ar, size_t size)
{
    if (ar->failed)
        return NULL;
    if (ar->n == ar->cap) {
        size_t cap = ar->cap ? 2 * ar->cap : 256;
        void **p = realloc(ar->p, cap * sizeof *p);
        if (!p) {
            ar->failed = true;
            return NULL;
        }
        ar->p = p;
        ar->cap = cap;
    }
    void *q = calloc(1, size ? size : 1);
    if (!q)
        ar->failed = true;
    else
        ar->p[ar->n++] = q;
    return q;
}

static void s_arena_free(struct s_arena *ar)
{
    for (size_t i = 0; i < ar->n; i++)
        free(ar->p[i]);
    free(ar->p);
    memset(ar, 0, sizeof *ar);
}

static char *s_str(struct s_arena *ar, const char *s)
{
    size_t len = strlen(s);
    char *d = s_new(ar, len + 1);
    if (d)
        memcpy(d, s, len + 1);
    return d;
}

/* What the export builds. */
struct s_ex {
    struct s_arena ar;              /* every message and string */
    const struct fl_graphdef *def;  /* the network */
    const struct fl_tensor *params; /* its parameters */
    size_t nparams;                 /* their count */
    Onnx__GraphProto *g;            /* the graph being filled */
    size_t cap_init;                /* initializers allocated in g */
    size_t init_bytes;              /* float bytes of the parameters written */
};

/* ---- attributes ---------------------------------------------------------------------------- */

static Onnx__AttributeProto *s_attr(struct s_ex *x, Onnx__NodeProto *nd, const char *name,
                                    Onnx__AttributeProto__AttributeType type)
{
    Onnx__AttributeProto *a = s_new(&x->ar, sizeof *a);
    if (!a)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = s_str(&x->ar, name);
    a->has_type = 1;
    a->type = type;
    nd->attribute[nd->n_attribute++] = a;
    return a;
}

static void s_attr_i(struct s_ex *x, Onnx__NodeProto *nd, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = s_attr(x, nd, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a)
        a->has_i = 1, a->i = v;
}

static void s_attr_f(struct s_ex *x, Onnx__NodeProto *nd, const char *name, float v)
{
    Onnx__AttributeProto *a = s_attr(x, nd, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a)
        a->has_f = 1, a->f = v;
}

static void s_attr_ints(struct s_ex *x, Onnx__NodeProto *nd, const char *name, const int *v, int n)
{
    Onnx__AttributeProto *a = s_attr(x, nd, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *ints = s_new(&x->ar, (size_t)n * sizeof *ints);
    if (!a || !ints)
        return;
    for (int i = 0; i < n; i++)
        ints[i] = v[i];
    a->n_ints = (size_t)n;
    a->ints = ints;
}

/* ---- initializers -------------------------------------------------------------------------- */

static Onnx__TensorProto *s_init_new(struct s_ex *x, const char *name, int ndim,
                                     const int64_t *dims, int32_t type)
{
    Onnx__TensorProto *t = s_new(&x->ar, sizeof *t);
    int64_t *d = s_new(&x->ar, (size_t)(ndim ? ndim : 1) * sizeof *d);
    if (!t || !d)
        return NULL;
    onnx__tensor_proto__init(t);
    t->name = s_str(&x->ar, name);
    if (ndim)
        memcpy(d, dims, (size_t)ndim * sizeof *d);
    t->n_dims = (size_t)ndim;
    t->dims = d;
    t->has_data_type = 1;
    t->data_type = type;
    if (x->g->n_initializer < x->cap_init)
        x->g->initializer[x->g->n_initializer++] = t;
    return t;
}

/* Is name used already: the input, a node's output, a name a node reads, an initializer? */
static bool s_name_used(const struct s_ex *x, const char *name)
{
    const struct fl_graphdef *d = x->def;
    if (strcmp(name, d->input) == 0 || fl_graphdef_producer(d, name) >= 0)
        return true;
    for (int i = 0; i < d->nnodes; i++)
        for (int k = 0; k < d->nodes[i].nin; k++)
            if (strcmp(d->nodes[i].in[k], name) == 0)
                return true;
    for (size_t i = 0; i < x->g->n_initializer; i++)
        if (strcmp(x->g->initializer[i]->name, name) == 0)
            return true;
    return false;
}

/* "<node>.<what>", or "<node>.<what>.<k>" when that is taken. */
static char *s_fresh_name(struct s_ex *x, const char *node, const char *what)
{
    char buf[FL_GRAPH_NAME_MAX + 32];
    snprintf(buf, sizeof buf, "%s.%s", node, what);
    for (int k = 1; s_name_used(x, buf) && k < 1000; k++)
        snprintf(buf, sizeof buf, "%s.%s.%d", node, what, k);
    return s_str(&x->ar, buf);
}

/* Float data as little-endian bytes: the data itself on a little-endian host. */
static const uint8_t *s_le(struct s_ex *x, const float *v, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    uint8_t *b = s_new(&x->ar, n * 4);
    for (size_t i = 0; b && i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        u = __builtin_bswap32(u);
        memcpy(b + 4 * i, &u, 4);
    }
    return b;
#else
    (void)x;
    return (const uint8_t *)v;
#endif
}

/* A scalar float initializer for node's input `what`; returns its name. */
static char *s_scalar(struct s_ex *x, const char *node, const char *what, float v)
{
    char *name = s_fresh_name(x, node, what);
    float *val = s_new(&x->ar, sizeof *val);
    Onnx__TensorProto *t = name && val ? s_init_new(x, name, 0, NULL, 1) : NULL;
    if (!t)
        return NULL;
    *val = v;
    t->has_raw_data = 1;
    t->raw_data.len = 4;
    t->raw_data.data = (uint8_t *)s_le(x, val, 1);
    return name;
}

/* The parameter `name` as an initializer, once. */
static int s_param(struct s_ex *x, const struct fl_gdef_node *nd, const char *name)
{
    for (size_t i = 0; i < x->g->n_initializer; i++)
        if (strcmp(x->g->initializer[i]->name, name) == 0)
            return 0;
    const struct fl_tensor *p = fl_tensor_find(x->params, x->nparams, name);
    if (!p)
        return fl_fail(FL_ENOTFOUND,
                       "onnx export: node '%s' (%s) reads '%s', which is no "
                       "parameter given",
                       nd->name, fl_op_name(nd->op), name);
    Onnx__TensorProto *t =
        s_init_new(x, name, p->ndim, p->shape, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT);
    if (!t)
        return fl_fail(FL_ENOMEM, "onnx export: out of memory");
    size_t numel = fl_tensor_numel(p);
    t->has_raw_data = 1;
    t->raw_data.len = numel * sizeof(float);
    t->raw_data.data = (uint8_t *)s_le(x, p->data, numel);
    x->init_bytes += t->raw_data.len;
    return 0;
}

/* ---- nodes --------------------------------------------------------------------------------- */

/* Conv's kernel_shape comes from its weight [out, in/group, kh, kw]. */
static int s_conv_attrs(struct s_ex *x, const struct fl_gdef_node *nd, Onnx__NodeProto *p)
{
    const struct fl_tensor *w = fl_tensor_find(x->params, x->nparams, nd->in[1]);
    if (!w || w->ndim != 4)
        return fl_fail(FL_EINVAL, "onnx export: Conv '%s' needs a weight of 4 axes", nd->name);
    int k[2] = {(int)w->shape[2], (int)w->shape[3]};
    s_attr_ints(x, p, "kernel_shape", k, 2);
    s_attr_ints(x, p, "strides", nd->a.stride, 2);
    s_attr_ints(x, p, "pads", nd->a.pads, 4); /* [top, left, bottom, right] = ONNX's order */
    s_attr_ints(x, p, "dilations", nd->a.dilation, 2);
    s_attr_i(x, p, "group", nd->a.group);
    return 0;
}

/* Attributes, and the inputs that opset 13 takes as tensors (Clip's bounds, Reshape's shape). */
static int s_attrs(struct s_ex *x, const struct fl_gdef_node *nd, Onnx__NodeProto *p)
{
    const struct fl_op_attrs *a = &nd->a;
    switch (nd->op) {
    case FL_OP_CONV:
        return s_conv_attrs(x, nd, p);
    case FL_OP_GEMM:
        s_attr_f(x, p, "alpha", a->alpha);
        s_attr_f(x, p, "beta", a->beta);
        s_attr_i(x, p, "transB", a->trans_b ? 1 : 0);
        break;
    case FL_OP_HARDSIGMOID:
        s_attr_f(x, p, "alpha", a->alpha);
        s_attr_f(x, p, "beta", a->beta);
        break;
    case FL_OP_MAXPOOL:
    case FL_OP_AVGPOOL:
        s_attr_ints(x, p, "kernel_shape", a->kernel, 2);
        s_attr_ints(x, p, "strides", a->stride, 2);
        s_attr_ints(x, p, "pads", a->pads, 4);
        if (nd->op == FL_OP_AVGPOOL)
            s_attr_i(x, p, "count_include_pad", a->count_include_pad ? 1 : 0);
        break;
    case FL_OP_FLATTEN:
    case FL_OP_CONCAT:
        s_attr_i(x, p, "axis", a->axis);
        break;
    case FL_OP_BATCHNORM:
        s_attr_f(x, p, "epsilon", a->epsilon);
        break;
    case FL_OP_CLIP: {
        bool lo = isfinite(a->min), hi = isfinite(a->max);
        if (lo || hi)
            p->input[p->n_input++] = lo ? s_scalar(x, nd->name, "min", a->min) : s_str(&x->ar, "");
        if (hi)
            p->input[p->n_input++] = s_scalar(x, nd->name, "max", a->max);
        break;
    }
    case FL_OP_RESHAPE: {
        if (a->nshape < 1 || a->nshape > FL_GRAPH_MAX_DIMS)
            return fl_fail(FL_EINVAL, "onnx export: Reshape '%s' has %d axes", nd->name, a->nshape);
        int64_t n = a->nshape, *v = s_new(&x->ar, (size_t)n * sizeof *v);
        char *name = s_fresh_name(x, nd->name, "shape");
        Onnx__TensorProto *t =
            v && name ? s_init_new(x, name, 1, &n, ONNX__TENSOR_PROTO__DATA_TYPE__INT64) : NULL;
        if (!t)
            return fl_fail(FL_ENOMEM, "onnx export: out of memory");
        memcpy(v, a->shape, (size_t)n * sizeof *v);
        t->n_int64_data = (size_t)n;
        t->int64_data = v;
        p->input[p->n_input++] = name;
        break;
    }
    default:
        break;
    }
    return 0;
}

static int s_node(struct s_ex *x, const struct fl_gdef_node *nd)
{
    if (nd->op <= 0 || nd->op >= FL_OP_COUNT_ || nd->nin < 1 || nd->nin > FL_GRAPH_MAX_INPUTS)
        return fl_fail(FL_EINVAL, "onnx export: node '%s': op %d with %d inputs", nd->name,
                       (int)nd->op, nd->nin);
    Onnx__NodeProto *p = s_new(&x->ar, sizeof *p);
    char **in = s_new(&x->ar, (FL_GRAPH_MAX_INPUTS + S_MAX_EXTRA) * sizeof *in);
    char **out = s_new(&x->ar, sizeof *out);
    Onnx__AttributeProto **at = s_new(&x->ar, 8 * sizeof *at);
    if (!p || !in || !out || !at)
        return fl_fail(FL_ENOMEM, "onnx export: out of memory");
    onnx__node_proto__init(p);
    p->name = s_str(&x->ar, nd->name);
    p->op_type = s_str(&x->ar, fl_op_name(nd->op));
    p->input = in;
    p->output = out;
    p->attribute = at;
    p->n_output = 1;
    out[0] = s_str(&x->ar, nd->out);
    for (int k = 0; k < nd->nin; k++) {
        in[p->n_input++] = s_str(&x->ar, nd->in[k]);
        int rc = fl_graphdef_is_param(x->def, nd->in[k]) ? s_param(x, nd, nd->in[k]) : 0;
        if (rc)
            return rc;
    }
    int rc = s_attrs(x, nd, p);
    if (rc == 0 && x->ar.failed)
        rc = fl_fail(FL_ENOMEM, "onnx export: out of memory");
    x->g->node[x->g->n_node++] = p;
    return rc;
}

/* ---- inputs and outputs -------------------------------------------------------------------- */

static Onnx__ValueInfoProto *s_value_info(struct s_ex *x, const char *name, int ndim,
                                          const int64_t *dims)
{
    Onnx__ValueInfoProto *v = s_new(&x->ar, sizeof *v);
    Onnx__TypeProto *tp = s_new(&x->ar, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = s_new(&x->ar, sizeof *tt);
    Onnx__TensorShapeProto *sh = s_new(&x->ar, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **d = s_new(&x->ar, (size_t)(ndim + 1) * sizeof *d);
    if (!v || !tp || !tt || !sh || !d)
        return NULL;
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    for (int i = 0; i <= ndim; i++) {
        if (!(d[i] = s_new(&x->ar, sizeof *d[i])))
            return NULL;
        onnx__tensor_shape_proto__dimension__init(d[i]);
        if (i == 0) {
            d[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d[i]->dim_param = s_str(&x->ar, "batch");
        } else {
            d[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d[i]->dim_value = dims[i - 1];
        }
    }
    sh->n_dim = (size_t)ndim + 1;
    sh->dim = d;
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sh;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    v->name = s_str(&x->ar, name);
    v->type = tp;
    return x->ar.failed ? NULL : v;
}

/* Per-sample shape of the output: from the head's weight when a Gemm or MatMul writes it
 * (through Identity, Dropout or a bias Add), else by planning the graph for one sample. */
static int s_out_shape(struct s_ex *x, int64_t dims[FL_GRAPH_MAX_DIMS])
{
    const struct fl_graphdef *d = x->def;
    int p = fl_graphdef_producer(d, d->output);
    while (p >= 0 && (d->nodes[p].op == FL_OP_IDENTITY || d->nodes[p].op == FL_OP_DROPOUT ||
                      (d->nodes[p].op == FL_OP_ADD && fl_graphdef_is_param(d, d->nodes[p].in[1]))))
        p = fl_graphdef_producer(d, d->nodes[p].in[0]);
    const struct fl_gdef_node *nd = p >= 0 ? &d->nodes[p] : NULL;
    const struct fl_tensor *w =
        nd && nd->nin > 1 ? fl_tensor_find(x->params, x->nparams, nd->in[1]) : NULL;
    if (w && w->ndim == 2 && (nd->op == FL_OP_GEMM || nd->op == FL_OP_MATMUL)) {
        dims[0] = nd->op == FL_OP_GEMM && nd->a.trans_b ? w->shape[0] : w->shape[1];
        return 1;
    }
    fl_graph_t *g = fl_graph_from_def(d, x->params, x->nparams, NULL);
    int rc = g ? fl_graph_plan(g, 1, false) : FL_EINVAL;
    int nd_out = rc == 0 ? fl_graph_value_shape(g, d->output, dims) : -1;
    fl_graph_destroy(&g);
    if (nd_out < 1)
        return fl_fail(FL_EINVAL, "onnx export: the output '%s' has no shape: %s", d->output,
                       fl_error_msg());
    return nd_out;
}

/* ---- writing ------------------------------------------------------------------------------- */

struct s_fbuf {
    ProtobufCBuffer base; /* protobuf-c's appender */
    FILE *f;              /* where bytes go */
    bool err;             /* a write failed */
};

static void s_fbuf_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
    struct s_fbuf *fb = (struct s_fbuf *)b;
    if (!fb->err && len && fwrite(data, 1, len, fb->f) != len)
        fb->err = true;
}

/* Move every initializer's bytes into the side file beside path. */
static int s_write_external(struct s_ex *x, const char *path)
{
    size_t len = strlen(path);
    char *side = malloc(len + sizeof FL_ONNX_EXTERNAL_SUFFIX);
    if (!side)
        return fl_fail(FL_ENOMEM, "onnx export: out of memory");
    memcpy(side, path, len);
    memcpy(side + len, FL_ONNX_EXTERNAL_SUFFIX, sizeof FL_ONNX_EXTERNAL_SUFFIX);
    const char *slash = strrchr(side, '/');
    char *location = s_str(&x->ar, slash ? slash + 1 : side);
    struct fl_atomic_file af;
    int rc = fl_atomic_open(&af, side, 0644);
    free(side);
    if (rc)
        return rc;
    static const uint8_t zeros[S_PAGE];
    uint64_t off = 0;
    for (size_t i = 0; rc == 0 && i < x->g->n_initializer; i++) {
        Onnx__TensorProto *t = x->g->initializer[i];
        if (!t->has_raw_data)
            continue; /* Reshape's shape stays inline */
        size_t pad = (size_t)((S_PAGE - off % S_PAGE) % S_PAGE);
        if ((pad && fwrite(zeros, 1, pad, af.f) != pad) ||
            fwrite(t->raw_data.data, 1, t->raw_data.len, af.f) != t->raw_data.len)
            rc = fl_fail(FL_EIO, "onnx export: %s: %s", location, strerror(errno));
        off += pad;
        Onnx__StringStringEntryProto **e = s_new(&x->ar, 3 * sizeof *e);
        char num[2][32];
        snprintf(num[0], sizeof num[0], "%llu", (unsigned long long)off);
        snprintf(num[1], sizeof num[1], "%zu", t->raw_data.len);
        const char *kv[3][2] = {{"location", location}, {"offset", num[0]}, {"length", num[1]}};
        for (int k = 0; e && k < 3; k++) {
            if (!(e[k] = s_new(&x->ar, sizeof *e[k])))
                break;
            onnx__string_string_entry_proto__init(e[k]);
            e[k]->key = s_str(&x->ar, kv[k][0]);
            e[k]->value = s_str(&x->ar, kv[k][1]);
        }
        if (rc == 0 && x->ar.failed)
            rc = fl_fail(FL_ENOMEM, "onnx export: out of memory");
        off += t->raw_data.len;
        t->has_raw_data = 0;
        t->raw_data.len = 0;
        t->raw_data.data = NULL;
        t->n_external_data = 3;
        t->external_data = e;
        t->has_data_location = 1;
        t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    }
    if (rc) {
        fl_atomic_abort(&af);
        return rc;
    }
    return fl_atomic_commit(&af);
}

static int s_write(const Onnx__ModelProto *m, const char *path)
{
    size_t size = onnx__model_proto__get_packed_size(m);
    if (size >= S_PB_LIMIT)
        return fl_fail(FL_ERANGE,
                       "onnx export: %s: the model is %zu bytes, more than protobuf's "
                       "2 GB (lower external_above)",
                       path, size);
    struct fl_atomic_file af;
    int rc = fl_atomic_open(&af, path, 0644);
    if (rc)
        return rc;
    struct s_fbuf fb = {.base = {.append = s_fbuf_append}, .f = af.f};
    if (onnx__model_proto__pack_to_buffer(m, &fb.base) != size || fb.err) {
        fl_atomic_abort(&af);
        return fl_fail(FL_EIO, "onnx export: %s: %s", path, strerror(errno));
    }
    return fl_atomic_commit(&af);
}

/* ---- the model ----------------------------------------------------------------------------- */

static int s_graph(struct s_ex *x)
{
    const struct fl_graphdef *d = x->def;
    if (d->nnodes < 1 || d->in_ndim < 1 || d->in_ndim > 3 || !d->output[0] || !d->input[0])
        return fl_fail(FL_EINVAL, "onnx export: the graph has no nodes, input or output");
    Onnx__GraphProto *g = s_new(&x->ar, sizeof *g);
    if (!g)
        return fl_fail(FL_ENOMEM, "onnx export: out of memory");
    onnx__graph_proto__init(g);
    x->g = g;
    x->cap_init = (size_t)d->nnodes * (FL_GRAPH_MAX_INPUTS + S_MAX_EXTRA);
    g->name = s_str(&x->ar, "fedtl");
    g->node = s_new(&x->ar, (size_t)d->nnodes * sizeof *g->node);
    g->initializer = s_new(&x->ar, x->cap_init * sizeof *g->initializer);
    g->input = s_new(&x->ar, sizeof *g->input);
    g->output = s_new(&x->ar, sizeof *g->output);
    if (!g->node || !g->initializer || !g->input || !g->output)
        return fl_fail(FL_ENOMEM, "onnx export: out of memory");
    int rc = 0;
    for (int i = 0; rc == 0 && i < d->nnodes; i++)
        rc = s_node(x, &d->nodes[i]);
    int64_t od[FL_GRAPH_MAX_DIMS];
    int ond = rc == 0 ? s_out_shape(x, od) : 0;
    if (rc || ond < 0)
        return rc ? rc : ond;
    g->input[0] = s_value_info(x, d->input, d->in_ndim, d->in_dims);
    g->output[0] = s_value_info(x, d->output, ond, od);
    g->n_input = g->n_output = 1;
    if (!g->input[0] || !g->output[0])
        return fl_fail(FL_ENOMEM, "onnx export: out of memory");
    return 0;
}

int fl_onnx_export_with(const char *path, const struct fl_graphdef *def,
                        const struct fl_tensor *params, size_t n,
                        const struct fl_onnx_export_opts *o)
{
    struct s_ex x = {.def = def, .params = params, .nparams = n};
    size_t external_above = o && o->external_above ? o->external_above : FL_ONNX_EXTERNAL_ABOVE;
    Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
    Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT, *opsets[1] = {&opset};
    int rc = s_graph(&x);
    if (rc)
        goto out_free;
    opset.domain = "";
    opset.has_version = 1;
    opset.version = FL_ONNX_OPSET;
    for (int i = 0; i < def->nnodes; i++)
        if (def->nodes[i].op == FL_OP_HARDSWISH)
            opset.version = 14; /* HardSwish came with opset 14 */
    m.has_ir_version = 1;
    m.ir_version = FL_ONNX_IR_VERSION;
    m.n_opset_import = 1;
    m.opset_import = opsets;
    m.producer_name = (char *)(o && o->producer_name ? o->producer_name : "fedtl");
    m.graph = x.g;
    if (x.init_bytes > external_above)
        rc = s_write_external(&x, path);
    if (rc == 0)
        rc = s_write(&m, path);
out_free:
    s_arena_free(&x.ar);
    return rc;
}

int fl_onnx_export(const char *path, const struct fl_graphdef *def, const struct fl_tensor *params,
                   size_t n, const char *producer_name)
{
    struct fl_onnx_export_opts o = {.producer_name = producer_name};
    return fl_onnx_export_with(path, def, params, n, &o);
}
