/* fl_graph_prepend_norm: see fl_graph_merge.h. */
#include "fl_error.h"
#include "fl_graph_merge.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_CENTRED    "fedtl.norm.centred"
#define S_NORMALISED "fedtl.norm.normalised"

/* Shape norm tensor src (len values) to broadcast over the input of def, as name, owned. */
static int s_shaped(const struct fl_graphdef *def, const struct fl_tensor *src, const char *name,
                    struct fl_tensor *dst)
{
    size_t len = fl_tensor_numel(src), in = 1;
    for (int i = 0; i < def->in_ndim; i++)
        in *= (size_t)def->in_dims[i];
    int64_t shape[FL_TENSOR_MAX_DIMS] = {1, 1, 1, 1};
    int nd = 1;
    if (len == in && len > 1) {
        nd = def->in_ndim;
        memcpy(shape, def->in_dims, (size_t)nd * sizeof *shape);
    } else if (len > 1 && def->in_ndim >= 2 && (int64_t)len == def->in_dims[0]) {
        nd = def->in_ndim; /* [C, 1, 1]: one value per channel */
        shape[0] = (int64_t)len;
    } else if (len != 1) {
        return fl_fail(FL_EINVAL,
                       "graph: %s has %zu values; the input takes 1, one per channel "
                       "or %zu",
                       src->name, len, in);
    }
    int rc = fl_tensor_init(dst, name, nd, shape);
    if (rc == 0)
        memcpy(dst->data, src->data, len * sizeof(float));
    return rc;
}

static bool s_identity(const struct fl_tensor *t, float v)
{
    for (size_t i = 0, n = fl_tensor_numel(t); i < n; i++)
        if (t->data[i] != v)
            return false;
    return true;
}

int fl_graph_prepend_norm(const struct fl_graphdef *def, const struct fl_tensor *params, size_t n,
                          struct fl_graphdef *out_def, struct fl_tensor **out, size_t *nout)
{
    const struct fl_tensor *mean = fl_tensor_find(params, n, "norm.mean");
    const struct fl_tensor *stdv = fl_tensor_find(params, n, "norm.std");
    bool add = mean && stdv && !(s_identity(mean, 0.0f) && s_identity(stdv, 1.0f));
    struct fl_tensor *t = calloc(n + 2, sizeof *t);
    if (!t)
        return fl_fail(FL_ENOMEM, "graph: out of memory");
    size_t k = 0;
    int rc = 0;
    if (add && ((rc = s_shaped(def, mean, "fedtl.norm.mean", &t[k++])) ||
                (rc = s_shaped(def, stdv, "fedtl.norm.std", &t[k++]))))
        goto fail;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(params[i].name, "norm.mean") == 0 || strcmp(params[i].name, "norm.std") == 0)
            continue;
        t[k] = params[i];
        t[k++].owned = false;
    }
    fl_graphdef_init(out_def);
    if ((rc = fl_graphdef_copy(out_def, def)))
        goto fail;
    if (add) {
        struct fl_graphdef d;
        fl_graphdef_init(&d);
        snprintf(d.input, sizeof d.input, "%s", def->input);
        snprintf(d.output, sizeof d.output, "%s", def->output);
        d.in_ndim = def->in_ndim;
        memcpy(d.in_dims, def->in_dims, sizeof d.in_dims);
        const char *sub[2] = {def->input, "fedtl.norm.mean"},
                   *dv[2] = {S_CENTRED, "fedtl.norm.std"};
        rc = fl_graphdef_add(&d, "fedtl.norm.sub", FL_OP_SUB, sub, 2, S_CENTRED, NULL);
        if (rc == 0)
            rc = fl_graphdef_add(&d, "fedtl.norm.div", FL_OP_DIV, dv, 2, S_NORMALISED, NULL);
        for (int i = 0; rc == 0 && i < out_def->nnodes; i++) {
            struct fl_gdef_node nd = out_def->nodes[i];
            const char *in[FL_GRAPH_MAX_INPUTS];
            for (int j = 0; j < nd.nin; j++)
                in[j] = strcmp(nd.in[j], def->input) == 0 ? S_NORMALISED : nd.in[j];
            rc = fl_graphdef_add(&d, nd.name, nd.op, in, nd.nin, nd.out, &nd.a);
        }
        fl_graphdef_free(out_def);
        *out_def = d;
        if (rc)
            goto fail;
    }
    *out = t;
    *nout = k;
    return 0;
fail:
    fl_graphdef_free(out_def);
    for (size_t i = 0; i < k; i++)
        fl_tensor_free(&t[i]);
    free(t);
    return rc;
}
