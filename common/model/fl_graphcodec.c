/* fl_graphcodec: see fl_graphcodec.h. */
#include "fl_graphcodec.h"

#include "fl_error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define S_GEOM_MAX  4096      /* largest kernel, stride, padding or dilation */
#define S_GROUP_MAX (1 << 16) /* most convolution groups */
#define S_AXIS_MAX  4         /* |axis| of Concat and Flatten */
#define S_DIM_MAX   (1 << 24) /* largest input axis or Reshape entry */

/* One node's message and the arrays it points at. */
struct s_node {
    Fedtl__GraphNode msg;                  /* the message */
    char *inputs[FL_GRAPH_MAX_INPUTS];     /* msg.inputs */
    int32_t kernel[2], stride[2], pads[4]; /* msg.kernel, msg.stride, msg.pads */
    int32_t dilation[2];                   /* msg.dilation */
    int64_t shape[FL_GRAPH_MAX_DIMS];      /* msg.shape */
};

static bool s_name_ok(const char *s)
{
    return s && s[0] && memchr(s, '\0', FL_GRAPH_NAME_MAX) != NULL;
}

static bool s_in(int v, int lo, int hi)
{
    return v >= lo && v <= hi;
}

/* Attribute ranges of node nd. */
static int s_check_attrs(const struct fl_gdef_node *nd, const char *origin, int err)
{
    const struct fl_op_attrs *a = &nd->a;
    bool ok = a->group >= 1 && a->group <= S_GROUP_MAX && s_in(a->axis, -S_AXIS_MAX, S_AXIS_MAX) &&
              s_in(a->nshape, 0, FL_GRAPH_MAX_DIMS);
    for (int i = 0; i < 2; i++)
        ok = ok && s_in(a->kernel[i], 0, S_GEOM_MAX) && s_in(a->stride[i], 1, S_GEOM_MAX) &&
             s_in(a->dilation[i], 1, S_GEOM_MAX);
    for (int i = 0; i < 4; i++)
        ok = ok && s_in(a->pads[i], 0, S_GEOM_MAX);
    for (int i = 0; ok && i < a->nshape; i++)
        ok = a->shape[i] >= -1 && a->shape[i] <= S_DIM_MAX;
    if (!ok)
        return fl_fail(err, "%s: graph node '%s' (%s) has an attribute out of range", origin,
                       nd->name, fl_op_name(nd->op));
    if (!isfinite(a->alpha) || !isfinite(a->beta) || !isfinite(a->epsilon) || a->epsilon < 0 ||
        isnan(a->min) || isnan(a->max) || a->min > a->max)
        return fl_fail(err, "%s: graph node '%s' (%s) has a non-finite or inverted number", origin,
                       nd->name, fl_op_name(nd->op));
    return 0;
}

static int s_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* No two of the n names equal (sorted copy of the pointers); what names them in messages. */
static int s_unique(const char **names, size_t n, const char *origin, const char *what, int err)
{
    qsort(names, n, sizeof *names, s_cmp_str);
    for (size_t i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            return fl_fail(err, "%s: graph %s '%s' appears twice", origin, what, names[i]);
    return 0;
}

static int s_check_names(const struct fl_graphdef *d, const char *origin, int err)
{
    const char **names = malloc(((size_t)d->nnodes + 1) * sizeof *names);
    if (!names)
        return fl_fail(FL_ENOMEM, "%s: out of memory", origin);
    for (int i = 0; i < d->nnodes; i++)
        names[i] = d->nodes[i].name;
    int rc = s_unique(names, (size_t)d->nnodes, origin, "node name", err);
    for (int i = 0; i < d->nnodes; i++)
        names[i] = d->nodes[i].out;
    names[d->nnodes] = d->input;
    if (rc == 0)
        rc = s_unique(names, (size_t)d->nnodes + 1, origin, "value", err);
    free(names);
    return rc;
}

int fl_graphcodec_check(const struct fl_graphdef *d, const char *origin, int err)
{
    if (!s_name_ok(d->input) || !s_name_ok(d->output))
        return fl_fail(err, "%s: graph input or output name empty or longer than %d bytes", origin,
                       FL_GRAPH_NAME_MAX - 1);
    if (d->in_ndim < 1 || d->in_ndim > 3)
        return fl_fail(err, "%s: graph input has %d axes (1 to 3 allowed)", origin, d->in_ndim);
    int64_t numel = 1;
    for (int i = 0; i < d->in_ndim; i++) {
        if (d->in_dims[i] < 1 || d->in_dims[i] > S_DIM_MAX || numel * d->in_dims[i] > S_DIM_MAX)
            return fl_fail(err, "%s: graph input axis %d has size %lld", origin, i,
                           (long long)d->in_dims[i]);
        numel *= d->in_dims[i];
    }
    if (d->nnodes < 1 || d->nnodes > FL_GRAPHDEF_MAX_NODES || !d->nodes)
        return fl_fail(err, "%s: graph has %d nodes (1 to %d allowed)", origin, d->nnodes,
                       FL_GRAPHDEF_MAX_NODES);
    for (int i = 0; i < d->nnodes; i++) {
        const struct fl_gdef_node *nd = &d->nodes[i];
        if (!s_name_ok(nd->name) || !s_name_ok(nd->out))
            return fl_fail(err, "%s: graph node %d has no valid name or output", origin, i);
        if ((int)nd->op < 1 || nd->op >= FL_OP_COUNT_)
            return fl_fail(err, "%s: graph node '%s' has unknown op %d", origin, nd->name,
                           (int)nd->op);
        if (nd->nin < 1 || nd->nin > FL_GRAPH_MAX_INPUTS)
            return fl_fail(err, "%s: graph node '%s' has %d inputs (1 to %d allowed)", origin,
                           nd->name, nd->nin, FL_GRAPH_MAX_INPUTS);
        for (int k = 0; k < nd->nin; k++)
            if (!s_name_ok(nd->in[k]))
                return fl_fail(err, "%s: graph node '%s' input %d has no valid name", origin,
                               nd->name, k);
        int rc = s_check_attrs(nd, origin, err);
        if (rc)
            return rc;
    }
    return s_check_names(d, origin, err);
}

static void s_node_view(struct s_node *v, const struct fl_gdef_node *nd)
{
    Fedtl__GraphNode init = FEDTL__GRAPH_NODE__INIT;
    Fedtl__GraphNode *m = &v->msg;
    const struct fl_op_attrs *a = &nd->a;
    *m = init;
    m->name = (char *)nd->name;
    m->op = (Fedtl__Op)nd->op;
    for (int k = 0; k < nd->nin; k++)
        v->inputs[k] = (char *)nd->in[k];
    m->n_inputs = (size_t)nd->nin;
    m->inputs = v->inputs;
    m->output = (char *)nd->out;
    memcpy(v->kernel, a->kernel, sizeof v->kernel);
    memcpy(v->stride, a->stride, sizeof v->stride);
    memcpy(v->pads, a->pads, sizeof v->pads);
    memcpy(v->dilation, a->dilation, sizeof v->dilation);
    memcpy(v->shape, a->shape, sizeof v->shape);
    m->n_kernel = m->n_stride = m->n_dilation = 2;
    m->n_pads = 4;
    m->kernel = v->kernel;
    m->stride = v->stride;
    m->pads = v->pads;
    m->dilation = v->dilation;
    m->group = a->group;
    m->count_include_pad = a->count_include_pad;
    m->alpha = a->alpha;
    m->beta = a->beta;
    m->trans_b = a->trans_b;
    m->min = a->min;
    m->max = a->max;
    m->epsilon = a->epsilon;
    m->axis = a->axis;
    m->n_shape = (size_t)a->nshape;
    m->shape = v->shape;
}

int fl_graphcodec_view(const struct fl_graphdef *d, const char *origin,
                       struct fl_graphcodec_view *v)
{
    memset(v, 0, sizeof *v);
    int rc = fl_graphcodec_check(d, origin, FL_EINVAL);
    if (rc)
        return rc;
    struct s_node *nodes = calloc((size_t)d->nnodes, sizeof *nodes);
    v->ptrs = calloc((size_t)d->nnodes, sizeof *v->ptrs);
    v->nodes = nodes;
    if (!nodes || !v->ptrs) {
        fl_graphcodec_view_free(v);
        return fl_fail(FL_ENOMEM, "%s: out of memory", origin);
    }
    for (int i = 0; i < d->nnodes; i++) {
        s_node_view(&nodes[i], &d->nodes[i]);
        v->ptrs[i] = &nodes[i].msg;
    }
    Fedtl__Graph init = FEDTL__GRAPH__INIT;
    v->msg = init;
    v->msg.input = (char *)d->input;
    memcpy(v->dims, d->in_dims, sizeof v->dims);
    v->msg.n_input_dims = (size_t)d->in_ndim;
    v->msg.input_dims = v->dims;
    v->msg.output = (char *)d->output;
    v->msg.n_nodes = (size_t)d->nnodes;
    v->msg.nodes = v->ptrs;
    return 0;
}

void fl_graphcodec_view_free(struct fl_graphcodec_view *v)
{
    free(v->ptrs);
    free(v->nodes);
    memset(v, 0, sizeof *v);
}

/* Copy a decoded string into a name buffer; false when it does not fit. */
static bool s_copy(char dst[FL_GRAPH_NAME_MAX], const char *src)
{
    size_t len = src ? strlen(src) : 0;
    if (len >= FL_GRAPH_NAME_MAX)
        return false;
    memcpy(dst, src ? src : "", len + 1);
    return true;
}

static int s_node_read(const Fedtl__GraphNode *p, int i, const char *origin,
                       struct fl_gdef_node *nd)
{
    if (!s_copy(nd->name, p->name) || !s_copy(nd->out, p->output))
        return fl_fail(FL_EFORMAT, "%s: graph node %d: name or output longer than %d bytes", origin,
                       i, FL_GRAPH_NAME_MAX - 1);
    if (p->n_inputs < 1 || p->n_inputs > FL_GRAPH_MAX_INPUTS || p->n_kernel != 2 ||
        p->n_stride != 2 || p->n_pads != 4 || p->n_dilation != 2 || p->n_shape > FL_GRAPH_MAX_DIMS)
        return fl_fail(FL_EFORMAT,
                       "%s: graph node '%s' has a wrong number of inputs or of "
                       "attribute values",
                       origin, nd->name);
    for (size_t k = 0; k < p->n_inputs; k++)
        if (!s_copy(nd->in[k], p->inputs[k]))
            return fl_fail(FL_EFORMAT, "%s: graph node '%s': input %zu is longer than %d bytes",
                           origin, nd->name, k, FL_GRAPH_NAME_MAX - 1);
    nd->op = (enum fl_op)p->op;
    nd->nin = (int)p->n_inputs;
    struct fl_op_attrs *a = &nd->a;
    *a = fl_op_attrs_default();
    memcpy(a->kernel, p->kernel, sizeof a->kernel);
    memcpy(a->stride, p->stride, sizeof a->stride);
    memcpy(a->pads, p->pads, sizeof a->pads);
    memcpy(a->dilation, p->dilation, sizeof a->dilation);
    a->group = p->group;
    a->count_include_pad = p->count_include_pad;
    a->alpha = p->alpha;
    a->beta = p->beta;
    a->trans_b = p->trans_b;
    a->min = p->min;
    a->max = p->max;
    a->epsilon = p->epsilon;
    a->axis = p->axis;
    a->nshape = (int)p->n_shape;
    for (size_t k = 0; k < p->n_shape; k++)
        a->shape[k] = p->shape[k];
    return 0;
}

int fl_graphcodec_read(const Fedtl__Graph *p, const char *origin, struct fl_graphdef **out)
{
    *out = NULL;
    if (p->n_nodes < 1 || p->n_nodes > FL_GRAPHDEF_MAX_NODES)
        return fl_fail(FL_EFORMAT, "%s: graph has %zu nodes (1 to %d allowed)", origin, p->n_nodes,
                       FL_GRAPHDEF_MAX_NODES);
    if (p->n_input_dims < 1 || p->n_input_dims > 3)
        return fl_fail(FL_EFORMAT, "%s: graph input has %zu axes (1 to 3 allowed)", origin,
                       p->n_input_dims);
    struct fl_graphdef *d = calloc(1, sizeof *d);
    if (!d || !(d->nodes = calloc(p->n_nodes, sizeof *d->nodes))) {
        free(d);
        return fl_fail(FL_ENOMEM, "%s: out of memory for %zu graph nodes", origin, p->n_nodes);
    }
    d->nnodes = d->cap = (int)p->n_nodes;
    int rc = 0;
    if (!s_copy(d->input, p->input) || !s_copy(d->output, p->output))
        rc = fl_fail(FL_EFORMAT, "%s: graph input or output name longer than %d bytes", origin,
                     FL_GRAPH_NAME_MAX - 1);
    d->in_ndim = (int)p->n_input_dims;
    for (size_t i = 0; i < p->n_input_dims; i++)
        d->in_dims[i] = p->input_dims[i];
    for (int i = 0; rc == 0 && i < d->nnodes; i++)
        rc = s_node_read(p->nodes[i], i, origin, &d->nodes[i]);
    if (rc == 0)
        rc = fl_graphcodec_check(d, origin, FL_EFORMAT);
    if (rc) {
        fl_graphcodec_free(&d);
        return rc;
    }
    *out = d;
    return 0;
}

void fl_graphcodec_free(struct fl_graphdef **d_p)
{
    if (!d_p || !*d_p)
        return;
    fl_graphdef_free(*d_p);
    free(*d_p);
    *d_p = NULL;
}
