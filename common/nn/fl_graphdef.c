/* fl_graphdef: see fl_graphdef.h. */
#include "fl_graphdef.h"

#include "fl_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fl_graphdef_init(struct fl_graphdef *d)
{
    memset(d, 0, sizeof *d);
}

void fl_graphdef_free(struct fl_graphdef *d)
{
    free(d->nodes);
    memset(d, 0, sizeof *d);
}

int fl_graphdef_copy(struct fl_graphdef *dst, const struct fl_graphdef *src)
{
    struct fl_graphdef c = *src;
    c.cap = src->nnodes;
    c.nodes = NULL;
    if (c.cap && !(c.nodes = malloc((size_t)c.cap * sizeof *c.nodes)))
        return fl_fail(FL_ENOMEM, "graph: out of memory copying %d nodes", src->nnodes);
    if (c.cap)
        memcpy(c.nodes, src->nodes, (size_t)c.cap * sizeof *c.nodes);
    *dst = c;
    return 0;
}

static int s_name(char *dst, const char *what, const char *name, const char *node)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len >= FL_GRAPH_NAME_MAX)
        return fl_fail(FL_EINVAL, "graph: node '%.64s': %s name %s", node ? node : "?", what,
                       len ? "is longer than 63 bytes" : "is empty");
    memcpy(dst, name, len + 1);
    return 0;
}

int fl_graphdef_add(struct fl_graphdef *d, const char *name, enum fl_op op,
                    const char *const *inputs, int nin, const char *output,
                    const struct fl_op_attrs *attrs)
{
    if (nin < 0 || nin > FL_GRAPH_MAX_INPUTS)
        return fl_fail(FL_EINVAL, "graph: node '%.64s' has %d inputs (at most %d)",
                       name ? name : "?", nin, FL_GRAPH_MAX_INPUTS);
    if (d->nnodes >= FL_GRAPHDEF_MAX_NODES)
        return fl_fail(FL_ERANGE, "graph: more than %d nodes", FL_GRAPHDEF_MAX_NODES);
    if (d->nnodes == d->cap) {
        int cap = d->cap ? 2 * d->cap : 32;
        struct fl_gdef_node *n = realloc(d->nodes, (size_t)cap * sizeof *n);
        if (!n)
            return fl_fail(FL_ENOMEM, "graph: out of memory");
        d->nodes = n;
        d->cap = cap;
    }
    struct fl_gdef_node *nd = &d->nodes[d->nnodes];
    memset(nd, 0, sizeof *nd);
    int rc = s_name(nd->name, "its", name, name);
    if (rc == 0)
        rc = s_name(nd->out, "output", output, name);
    for (int i = 0; rc == 0 && i < nin; i++)
        rc = s_name(nd->in[i], "input", inputs[i], name);
    if (rc)
        return rc;
    nd->op = op;
    nd->nin = nin;
    nd->a = attrs ? *attrs : fl_op_attrs_default();
    d->nnodes++;
    return 0;
}

int fl_graphdef_find(const struct fl_graphdef *d, const char *name)
{
    for (int i = 0; i < d->nnodes; i++)
        if (strcmp(d->nodes[i].name, name) == 0)
            return i;
    return -1;
}

int fl_graphdef_producer(const struct fl_graphdef *d, const char *value)
{
    for (int i = 0; i < d->nnodes; i++)
        if (strcmp(d->nodes[i].out, value) == 0)
            return i;
    return -1;
}

bool fl_graphdef_is_param(const struct fl_graphdef *d, const char *value)
{
    return strcmp(value, d->input) != 0 && fl_graphdef_producer(d, value) < 0;
}

/* Add parameter `name` from params unless the graph has it already. */
static int s_add_param(fl_graph_t *g, const struct fl_gdef_node *nd, const char *name,
                       const struct fl_tensor *params, size_t n)
{
    size_t numel;
    if (fl_graph_param(g, name, &numel))
        return 0;
    const struct fl_tensor *t = fl_tensor_find(params, n, name);
    if (!t)
        return fl_fail(FL_ENOTFOUND,
                       "graph: node '%s' (%s) reads '%s', which is no node's "
                       "output, not the input and not a parameter",
                       nd->name, fl_op_name(nd->op), name);
    return fl_graph_add_param(g, name, t->ndim, t->shape, t->data, false);
}

fl_graph_t *fl_graph_from_def(const struct fl_graphdef *d, const struct fl_tensor *params, size_t n,
                              fl_pool_t *pool)
{
    fl_graph_t *g = fl_graph_new(pool);
    if (!g) {
        fl_fail(FL_ENOMEM, "graph: out of memory");
        return NULL;
    }
    int rc = fl_graph_add_input(g, d->input, d->in_ndim, d->in_dims);
    for (int i = 0; rc == 0 && i < d->nnodes; i++) {
        const struct fl_gdef_node *nd = &d->nodes[i];
        const char *in[FL_GRAPH_MAX_INPUTS];
        for (int k = 0; rc == 0 && k < nd->nin; k++) {
            in[k] = nd->in[k];
            if (fl_graphdef_is_param(d, in[k]))
                rc = s_add_param(g, nd, in[k], params, n);
        }
        if (rc == 0)
            rc = fl_graph_add_node(g, nd->name, nd->op, in, nd->nin, nd->out, &nd->a);
    }
    if (rc == 0)
        rc = fl_graph_set_output(g, d->output);
    if (rc)
        fl_graph_destroy(&g);
    return g;
}
