/* fl_onnx_shape: the ONNX nodes that move data without arithmetic (Flatten, Reshape, Squeeze,
 * Unsqueeze, Concat) into the engine's Flatten, Reshape and Concat, keeping the batch axis
 * first; a Reshape's target is a constant by now (shape computations are folded). */
#include "fl_onnx_impl.h"

#include "fl_error.h"

#include <string.h>

static size_t s_per_sample(const struct fl_ox_val *x)
{
    size_t n = 1;
    for (int d = 1; d < x->ndim; d++)
        n *= (size_t)x->dims[d];
    return n;
}

int fl_ox_flatten(struct fl_ox *ox, const Onnx__NodeProto *n)
{
    int x, rc = fl_ox_act(ox, n, 0, &x);
    if (rc)
        return rc;
    int64_t axis = fl_ox_attr_i(n, "axis", 1);
    if (axis < 0)
        axis += ox->vals[x].ndim;
    if (axis != 1)
        return fl_ox_fail(ox, FL_EINVAL, "axis %lld is not supported (1: keep the batch axis)",
                          (long long)fl_ox_attr_i(n, "axis", 1));
    int64_t dims[2] = {FL_OX_BATCH, (int64_t)s_per_sample(&ox->vals[x])};
    return fl_ox_node(ox, n, FL_OP_FLATTEN, &x, 1, 2, dims, NULL);
}

int fl_ox_reshape(struct fl_ox *ox, const Onnx__NodeProto *n)
{
    int x, rc = fl_ox_act(ox, n, 0, &x);
    if (rc)
        return rc;
    int64_t sh[FL_OX_MAX_DIMS];
    int ns;
    const Onnx__AttributeProto *at = fl_ox_attr(n, "shape");
    int sv = fl_ox_in(ox, n, 1);
    if (sv >= 0 && ox->vals[sv].kind == FL_OX_INT && ox->vals[sv].numel <= FL_OX_MAX_DIMS) {
        ns = (int)ox->vals[sv].numel;
        memcpy(sh, ox->vals[sv].i, (size_t)ns * sizeof *sh);
    } else if (sv < 0 && at && at->n_ints <= FL_OX_MAX_DIMS) {
        ns = (int)at->n_ints;
        if (ns) /* ints is NULL when empty */
            memcpy(sh, at->ints, (size_t)ns * sizeof *sh);
    } else
        return fl_ox_fail(ox, FL_EINVAL,
                          "the shape must be a constant of at most %d entries "
                          "(or a computation on the input's shape that folds)",
                          FL_OX_MAX_DIMS);
    const struct fl_ox_val *xv = &ox->vals[x];
    size_t per = s_per_sample(xv), known = 1;
    int infer = -1;
    bool allowzero = fl_ox_attr_i(n, "allowzero", 0) != 0;
    if (ns < 2 || ns > FL_GRAPH_MAX_DIMS)
        return fl_ox_fail(ox, FL_EINVAL, "a shape of %d entries (batch and 1 to 3 axes)", ns);
    int64_t dims[FL_GRAPH_MAX_DIMS] = {FL_OX_BATCH};
    for (int d = 1; d < ns; d++) {
        int64_t s = sh[d];
        if (s == 0 && !allowzero && d < xv->ndim)
            s = xv->dims[d];
        if (s == -1 && infer < 0) {
            infer = d;
            continue;
        }
        if (s < 1 || s > FL_ONNX_MAX_NUMEL)
            return fl_ox_fail(ox, FL_EINVAL, "shape entry %d = %lld", d, (long long)sh[d]);
        dims[d] = s;
        if ((known *= (size_t)s) > (size_t)FL_ONNX_MAX_NUMEL)
            return fl_ox_fail(ox, FL_EINVAL, "shape entry %d = %lld", d, (long long)sh[d]);
    }
    if (infer >= 0 && known && per % known == 0)
        dims[infer] = (int64_t)(per / known), known = per;
    /* The batch entry: computed from the input's shape, 0 (copy), -1 with every other axis
     * given, the file's static batch size, or any size when the per-sample size is given. */
    bool batch_ok = sh[0] == FL_OX_BATCH || sh[0] == 0 || sh[0] == -1 ||
                    (sh[0] > 0 && (sh[0] == ox->file_batch || infer < 0));
    if (known != per || !batch_ok || (sh[0] == -1 && infer >= 0))
        return fl_ox_fail(ox, FL_EMISMATCH,
                          "shape of %d entries (first %lld) for an input of %zu values per "
                          "sample: only reshapes that keep the batch axis are supported",
                          ns, (long long)sh[0], per);
    struct fl_op_attrs a = fl_op_attrs_default();
    a.nshape = ns;
    a.shape[0] = 0;
    for (int d = 1; d < ns; d++)
        a.shape[d] = dims[d];
    return fl_ox_node(ox, n, FL_OP_RESHAPE, &x, 1, ns, dims, &a);
}

int fl_ox_concat(struct fl_ox *ox, const Onnx__NodeProto *n)
{
    int in[FL_GRAPH_MAX_INPUTS], rc = 0;
    if (n->n_input < 1 || n->n_input > FL_GRAPH_MAX_INPUTS)
        return fl_ox_fail(ox, FL_EINVAL, "%zu inputs (1 to %d)", n->n_input, FL_GRAPH_MAX_INPUTS);
    for (size_t k = 0; rc == 0 && k < n->n_input; k++)
        rc = fl_ox_act(ox, n, k, &in[k]);
    if (rc)
        return rc;
    const struct fl_ox_val *x0 = &ox->vals[in[0]];
    int64_t axis = fl_ox_attr_i(n, "axis", 1), dims[FL_OX_MAX_DIMS];
    if (axis < 0)
        axis += x0->ndim;
    if (axis < 1 || axis >= x0->ndim)
        return fl_ox_fail(ox, FL_EINVAL, "axis %lld (1 to %d: not the batch axis)",
                          (long long)fl_ox_attr_i(n, "axis", 1), x0->ndim - 1);
    memcpy(dims, x0->dims, sizeof dims);
    for (size_t k = 1; k < n->n_input; k++) {
        const struct fl_ox_val *xk = &ox->vals[in[k]];
        bool ok = xk->ndim == x0->ndim;
        for (int d = 1; ok && d < x0->ndim; d++)
            ok = d == axis || xk->dims[d] == x0->dims[d];
        if (!ok)
            return fl_ox_fail(ox, FL_EMISMATCH, "'%.200s' does not fit '%.200s' on axis %lld",
                              xk->name, x0->name, (long long)axis);
        dims[axis] += xk->dims[axis];
    }
    struct fl_op_attrs a = fl_op_attrs_default();
    a.axis = (int)axis;
    return fl_ox_node(ox, n, FL_OP_CONCAT, in, (int)n->n_input, x0->ndim, dims, &a);
}

/* Squeeze / Unsqueeze of an activation: a Reshape keeping the batch axis. */
int fl_ox_squeeze(struct fl_ox *ox, const Onnx__NodeProto *n, bool un)
{
    int x, rc = fl_ox_act(ox, n, 0, &x);
    if (rc)
        return rc;
    const struct fl_ox_val *xv = &ox->vals[x];
    int64_t ax[FL_OX_MAX_DIMS];
    int na = 0, av = fl_ox_in(ox, n, 1);
    const Onnx__AttributeProto *at = fl_ox_attr(n, "axes");
    if (av >= 0 && ox->vals[av].kind == FL_OX_INT && ox->vals[av].numel <= FL_OX_MAX_DIMS) {
        na = (int)ox->vals[av].numel;
        memcpy(ax, ox->vals[av].i, (size_t)na * sizeof *ax);
    } else if (av < 0 && at && at->n_ints <= FL_OX_MAX_DIMS) {
        na = (int)at->n_ints;
        if (na) /* ints is NULL when empty */
            memcpy(ax, at->ints, (size_t)na * sizeof *ax);
    } else if (av >= 0 || un)
        return fl_ox_fail(ox, FL_EINVAL, "axes must be a constant list");
    int nd = un ? xv->ndim + na : xv->ndim, o = 0;
    bool mark[FL_OX_MAX_DIMS * 2] = {false};
    for (int k = 0; k < na; k++) {
        int64_t a = ax[k] < 0 ? ax[k] + nd : ax[k];
        if (a < 1 || a >= nd || (!un && xv->dims[a] != 1) || mark[a])
            return fl_ox_fail(ox, FL_EINVAL,
                              "axis %lld (the batch axis stays; a squeezed axis "
                              "has size 1)",
                              (long long)ax[k]);
        mark[a] = true;
    }
    int64_t dims[FL_OX_MAX_DIMS * 2] = {FL_OX_BATCH};
    for (int d = 1, s = 1; d < nd; d++) {
        if (un)
            dims[++o] = mark[d] ? 1 : xv->dims[s++];
        else if (!(na > 0 ? mark[d] : xv->dims[d] == 1))
            dims[++o] = xv->dims[d];
    }
    if (o < 1 || o + 1 > FL_GRAPH_MAX_DIMS)
        return fl_ox_fail(ox, FL_EINVAL, "the result would have %d axes per sample (1 to 3)", o);
    struct fl_op_attrs a = fl_op_attrs_default();
    a.nshape = o + 1;
    for (int d = 1; d <= o; d++)
        a.shape[d] = dims[d];
    return fl_ox_node(ox, n, FL_OP_RESHAPE, &x, 1, o + 1, dims, &a);
}
