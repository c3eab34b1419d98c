/* fl_onnx_ops: ONNX nodes into the engine's nodes, with the shapes of their outputs (batch
 * first) so that later Shape nodes fold. Attribute values the engine cannot run are refused
 * here, naming the node. Flatten, Reshape, Squeeze, Unsqueeze and Concat are in
 * fl_onnx_shape.c. */
#include "fl_onnx_impl.h"

#include "fl_error.h"

#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char fl_ox_supported[] =
    "Conv, Gemm, MatMul, BatchNormalization, Relu, Clip, Sigmoid, HardSigmoid, HardSwish, "
    "Add, Sub, Mul, Div, MaxPool, AveragePool, GlobalAveragePool, Flatten, Reshape, Squeeze, "
    "Unsqueeze, Concat, "
    "Dropout, Identity, Softmax and LogSoftmax (as the last node), and on constants and shapes "
    "Constant, Shape, Gather, Slice, Cast, Unsqueeze, Squeeze, ConstantOfShape, Range";

int fl_ox_in(const struct fl_ox *ox, const Onnx__NodeProto *n, size_t k)
{
    if (k >= n->n_input || !n->input[k] || !*n->input[k])
        return -1;
    return fl_ox_find(ox, n->input[k]);
}

bool fl_ox_is_const(const struct fl_ox *ox, int v)
{
    return v >= 0 && ox->vals[v].kind != FL_OX_ACT;
}

int fl_ox_act(struct fl_ox *ox, const Onnx__NodeProto *n, size_t k, int *v)
{
    *v = fl_ox_in(ox, n, k);
    if (*v < 0)
        return fl_ox_fail(ox, FL_EFORMAT, "input %zu is missing", k);
    const struct fl_ox_val *x = &ox->vals[*v];
    if (x->alias >= 0)
        return fl_ox_fail(ox, FL_EINVAL,
                          "reads '%.200s', the output of a Softmax: Softmax is supported only "
                          "as the model's last node",
                          x->name);
    if (x->kind != FL_OX_ACT)
        return fl_ox_fail(ox, FL_EINVAL,
                          "input %zu '%.200s' is a constant where the engine "
                          "needs a value computed from the input",
                          k, x->name);
    if (x->ndim < 2 || x->ndim > 4)
        return fl_ox_fail(ox, FL_EMISMATCH, "input '%.200s' has %d axes (2 to 4, batch first)",
                          x->name, x->ndim);
    return 0;
}

/* Input k, a float constant of ndim axes (ndim < 0: any) or absent when optional. */
static int s_param(struct fl_ox *ox, const Onnx__NodeProto *n, size_t k, int ndim, bool optional,
                   int *v)
{
    *v = fl_ox_in(ox, n, k);
    if (*v < 0 && optional && (k >= n->n_input || !*n->input[k]))
        return 0;
    if (*v < 0)
        return fl_ox_fail(ox, FL_EFORMAT, "input %zu is missing", k);
    const struct fl_ox_val *p = &ox->vals[*v];
    if (p->kind != FL_OX_FLOAT)
        return fl_ox_fail(ox, FL_EINVAL,
                          "input %zu '%.200s' must be a float constant "
                          "(an initializer)",
                          k, p->name);
    if ((ndim >= 0 && p->ndim != ndim) || p->ndim > FL_GRAPH_MAX_DIMS || p->numel == 0)
        return fl_ox_fail(ox, FL_EMISMATCH,
                          "input %zu '%.200s' has %d axes and %zu values (%d axes and at least "
                          "one value are needed: 2-D convolutions, [in, out] matrices)",
                          k, p->name, p->ndim, p->numel, ndim >= 0 ? ndim : p->ndim);
    return 0;
}

static int s_out(struct fl_ox *ox, const Onnx__NodeProto *n, int ndim, const int64_t *shape, int *v)
{
    int64_t dims[FL_OX_MAX_DIMS]; /* shape may point into ox->vals, which grows */
    if (n->n_output < 1 || ndim > FL_OX_MAX_DIMS)
        return fl_ox_fail(ox, FL_EFORMAT, "no output");
    memcpy(dims, shape, (size_t)ndim * sizeof *dims);
    int rc = fl_ox_new_val(ox, n->output[0], FL_OX_ACT, v);
    if (rc)
        return rc;
    ox->vals[*v].ndim = ndim;
    memcpy(ox->vals[*v].dims, dims, (size_t)ndim * sizeof *dims);
    for (int d = 1; d < ndim; d++)
        if (dims[d] < 1 || dims[d] > FL_ONNX_MAX_NUMEL)
            return fl_ox_fail(ox, FL_EMISMATCH, "output axis %d would be %lld", d,
                              (long long)dims[d]);
    return 0;
}

int fl_ox_node(struct fl_ox *ox, const Onnx__NodeProto *n, enum fl_op op, const int *in, int nin,
               int ndim, const int64_t *dims, const struct fl_op_attrs *a)
{
    int out, rc = s_out(ox, n, ndim, dims, &out);
    return rc ? rc : fl_ox_emit(ox, ox->curname, op, in, nin, out, a);
}

/* An ints attribute of exactly cnt entries into out (left as it is when absent). */
static int s_ints(struct fl_ox *ox, const Onnx__NodeProto *n, const char *name, int cnt, int *out)
{
    const Onnx__AttributeProto *a = fl_ox_attr(n, name);
    if (!a)
        return 0;
    if ((int)a->n_ints != cnt)
        return fl_ox_fail(ox, FL_EINVAL, "attribute %s has %zu values (%d for a 2-D window)", name,
                          a->n_ints, cnt);
    for (int i = 0; i < cnt; i++) {
        if (a->ints[i] < -65536 || a->ints[i] > 65536)
            return fl_ox_fail(ox, FL_ERANGE, "attribute %s = %lld", name, (long long)a->ints[i]);
        out[i] = (int)a->ints[i];
    }
    return 0;
}

/* Window geometry: strides, pads (auto_pad resolved), dilations; output size into hw. */
static int s_window(struct fl_ox *ox, const Onnx__NodeProto *n, const int64_t *x, int kh, int kw,
                    struct fl_op_attrs *a, int64_t hw[2])
{
    int rc = s_ints(ox, n, "strides", 2, a->stride);
    if (rc == 0)
        rc = s_ints(ox, n, "pads", 4, a->pads);
    if (rc == 0)
        rc = s_ints(ox, n, "dilations", 2, a->dilation);
    if (rc)
        return rc;
    int k[2] = {kh, kw};
    const Onnx__AttributeProto *ap = fl_ox_attr(n, "auto_pad");
    char mode[16] = "NOTSET";
    if (ap && ap->has_s)
        snprintf(mode, sizeof mode, "%.*s", (int)ap->s.len, (const char *)ap->s.data);
    for (int i = 0; i < 2; i++) {
        int64_t in = x[2 + i], s = a->stride[i], d = a->dilation[i];
        if (s < 1 || d < 1 || k[i] < 1 || k[i] > 65536)
            return fl_ox_fail(ox, FL_EINVAL, "kernel %d, stride %lld, dilation %lld on axis %d",
                              k[i], (long long)s, (long long)d, i);
        int64_t span = d * (k[i] - 1) + 1;
        if (strcmp(mode, "SAME_UPPER") == 0 || strcmp(mode, "SAME_LOWER") == 0) {
            int64_t out = (in + s - 1) / s, tot = (out - 1) * s + span - in;
            tot = tot < 0 ? 0 : tot;
            int lo = (int)(mode[5] == 'U' ? tot / 2 : tot - tot / 2);
            a->pads[i] = lo, a->pads[i + 2] = (int)tot - lo;
        } else if (strcmp(mode, "VALID") == 0)
            a->pads[i] = a->pads[i + 2] = 0;
        else if (strcmp(mode, "NOTSET") != 0)
            return fl_ox_fail(ox, FL_EINVAL, "auto_pad '%s' is not supported", mode);
        int64_t len = in + a->pads[i] + a->pads[i + 2];
        if (a->pads[i] < 0 || a->pads[i + 2] < 0 || len < span)
            return fl_ox_fail(ox, FL_EMISMATCH,
                              "a %dx%d window (pads %d,%d,%d,%d) does not fit input %lldx%lld", kh,
                              kw, a->pads[0], a->pads[1], a->pads[2], a->pads[3], (long long)x[2],
                              (long long)x[3]);
        hw[i] = (len - span) / s + 1;
    }
    return 0;
}

static int s_conv(struct fl_ox *ox, const Onnx__NodeProto *n)
{
    int in[3], rc = fl_ox_act(ox, n, 0, &in[0]);
    if (rc == 0)
        rc = s_param(ox, n, 1, 4, false, &in[1]);
    if (rc == 0)
        rc = s_param(ox, n, 2, 1, true, &in[2]);
    if (rc)
        return rc;
    const int64_t *x = ox->vals[in[0]].dims, *w = ox->vals[in[1]].dims;
    struct fl_op_attrs a = fl_op_attrs_default();
    int64_t grp = fl_ox_attr_i(n, "group", 1), hw[2];
    int ks[2] = {(int)(w[2] & 0xfffff), (int)(w[3] & 0xfffff)};
    if (ox->vals[in[0]].ndim != 4 || grp < 1 || grp > x[1] || x[1] % grp || w[0] % grp ||
        w[1] * grp != x[1] || (in[2] >= 0 && ox->vals[in[2]].numel != (size_t)w[0]))
        return fl_ox_fail(ox, FL_EMISMATCH,
                          "weight %lldx%lldx%lldx%lld with %lld groups does not fit input of "
                          "%d axes with %lld channels (a 2-D conv on NCHW is needed)",
                          (long long)w[0], (long long)w[1], (long long)w[2], (long long)w[3],
                          (long long)grp, ox->vals[in[0]].ndim, (long long)x[1]);
    if ((rc = s_ints(ox, n, "kernel_shape", 2, ks)))
        return rc;
    if (ks[0] != w[2] || ks[1] != w[3])
        return fl_ox_fail(ox, FL_EMISMATCH, "kernel_shape %dx%d, weight %lldx%lld", ks[0], ks[1],
                          (long long)w[2], (long long)w[3]);
    a.group = (int)grp;
    if ((rc = s_window(ox, n, x, (int)w[2], (int)w[3], &a, hw)))
        return rc;
    int64_t dims[4] = {FL_OX_BATCH, w[0], hw[0], hw[1]};
    return fl_ox_node(ox, n, FL_OP_CONV, in, in[2] >= 0 ? 3 : 2, 4, dims, &a);
}

static int s_pool(struct fl_ox *ox, const Onnx__NodeProto *n, bool max)
{
    int x, rc = fl_ox_act(ox, n, 0, &x);
    if (rc)
        return rc;
    const int64_t *xd = ox->vals[x].dims;
    struct fl_op_attrs a = fl_op_attrs_default();
    int64_t hw[2];
    a.kernel[0] = a.kernel[1] = 0;
    if (ox->vals[x].ndim != 4)
        return fl_ox_fail(ox, FL_EMISMATCH, "a 2-D pool on NCHW is needed (input of %d axes)",
                          ox->vals[x].ndim);
    if ((rc = s_ints(ox, n, "kernel_shape", 2, a.kernel)))
        return rc;
    int dil[2] = {1, 1};
    if ((rc = s_ints(ox, n, "dilations", 2, dil)))
        return rc;
    if (dil[0] != 1 || dil[1] != 1 || (n->n_output > 1 && *n->output[1]))
        return fl_ox_fail(ox, FL_EINVAL, "dilations and the Indices output are not supported");
    if ((rc = s_window(ox, n, xd, a.kernel[0], a.kernel[1], &a, hw)))
        return rc;
    a.dilation[0] = a.dilation[1] = 1;
    a.count_include_pad = fl_ox_attr_i(n, "count_include_pad", 0) != 0;
    for (int i = 0; fl_ox_attr_i(n, "ceil_mode", 0) && i < 2; i++) {
        int64_t len = xd[2 + i] + a.pads[i] + a.pads[i + 2], k = a.kernel[i], s = a.stride[i];
        int64_t c = (len - k + s - 1) / s + 1;
        if ((c - 1) * s >= xd[2 + i] + a.pads[i]) /* the last window starts in the padding */
            c--;
        if (c == hw[i])
            continue;
        int extra = (int)((c - 1) * s + k - len);
        if (!max || a.pads[i + 2] + extra >= k)
            return fl_ox_fail(ox, FL_EINVAL,
                              "ceil_mode=1 changes the output size here and is "
                              "supported only on MaxPool");
        a.pads[i + 2] += extra; /* a max over a window clipped at the edge */
        hw[i] = c;
    }
    int64_t dims[4] = {FL_OX_BATCH, xd[1], hw[0], hw[1]};
    return fl_ox_node(ox, n, max ? FL_OP_MAXPOOL : FL_OP_AVGPOOL, &x, 1, 4, dims, &a);
}

static int s_gap(struct fl_ox *ox, const Onnx__NodeProto *n)
{
    int x, rc = fl_ox_act(ox, n, 0, &x);
    if (rc)
        return rc;
    if (ox->vals[x].ndim != 4)
        return fl_ox_fail(ox, FL_EMISMATCH, "input of %d axes (NCHW is needed)", ox->vals[x].ndim);
    int64_t dims[4] = {FL_OX_BATCH, ox->vals[x].dims[1], 1, 1};
    return fl_ox_node(ox, n, FL_OP_GLOBALAVGPOOL, &x, 1, 4, dims, NULL);
}

/* A scalar float from constant input k (absent: def). */
static int s_scalar(struct fl_ox *ox, const Onnx__NodeProto *n, size_t k, float def, float *out)
{
    int v = fl_ox_in(ox, n, k);
    *out = def;
    if (v < 0 && (k >= n->n_input || !*n->input[k]))
        return 0;
    if (v < 0 || ox->vals[v].kind == FL_OX_ACT || ox->vals[v].numel != 1)
        return fl_ox_fail(ox, FL_EINVAL, "input %zu must be a constant scalar", k);
    *out = ox->vals[v].kind == FL_OX_FLOAT ? ox->vals[v].f[0] : (float)ox->vals[v].i[0];
    return 0;
}

static int s_unary(struct fl_ox *ox, const Onnx__NodeProto *n, enum fl_op op)
{
    int x, rc = fl_ox_act(ox, n, 0, &x);
    if (rc)
        return rc;
    struct fl_op_attrs a = fl_op_attrs_default();
    if (op == FL_OP_HARDSIGMOID) {
        a.alpha = fl_ox_attr_f(n, "alpha", 0.2f);
        a.beta = fl_ox_attr_f(n, "beta", 0.5f);
    } else if (op == FL_OP_CLIP && ox->opset < 11) {
        a.min = fl_ox_attr_f(n, "min", -FLT_MAX);
        a.max = fl_ox_attr_f(n, "max", FLT_MAX);
    } else if (op == FL_OP_CLIP) {
        if ((rc = s_scalar(ox, n, 1, -FLT_MAX, &a.min)) ||
            (rc = s_scalar(ox, n, 2, FLT_MAX, &a.max)))
            return rc;
    }
    const struct fl_ox_val *xv = &ox->vals[x];
    return fl_ox_node(ox, n, op, &x, 1, xv->ndim, xv->dims, &a);
}

static int s_batchnorm(struct fl_ox *ox, const Onnx__NodeProto *n)
{
    int in[5], rc = fl_ox_act(ox, n, 0, &in[0]);
    for (size_t k = 1; rc == 0 && k < 5; k++)
        if ((rc = s_param(ox, n, k, -1, false, &in[k])) == 0 &&
            ox->vals[in[k]].numel != (size_t)ox->vals[in[0]].dims[1])
            rc = fl_ox_fail(ox, FL_EMISMATCH, "'%.200s' has %zu values for %lld channels",
                            ox->vals[in[k]].name, ox->vals[in[k]].numel,
                            (long long)ox->vals[in[0]].dims[1]);
    if (rc)
        return rc;
    bool extra = false;
    for (size_t k = 1; k < n->n_output; k++)
        extra |= n->output[k] && *n->output[k];
    if (fl_ox_attr_i(n, "training_mode", 0) || extra)
        return fl_ox_fail(ox, FL_EINVAL, "training mode is not supported (frozen statistics)");
    struct fl_op_attrs a = fl_op_attrs_default();
    a.epsilon = fl_ox_attr_f(n, "epsilon", 1e-5f);
    const struct fl_ox_val *xv = &ox->vals[in[0]];
    return fl_ox_node(ox, n, FL_OP_BATCHNORM, in, 5, xv->ndim, xv->dims, &a);
}

static int s_gemm(struct fl_ox *ox, const Onnx__NodeProto *n, bool matmul)
{
    int in[3], rc = fl_ox_act(ox, n, 0, &in[0]);
    if (rc == 0)
        rc = s_param(ox, n, 1, 2, false, &in[1]);
    in[2] = -1;
    if (rc == 0 && !matmul)
        rc = s_param(ox, n, 2, -1, true, &in[2]);
    if (rc)
        return rc;
    struct fl_op_attrs a = fl_op_attrs_default();
    if (!matmul) {
        a.alpha = fl_ox_attr_f(n, "alpha", 1.0f);
        a.beta = fl_ox_attr_f(n, "beta", 1.0f);
        a.trans_b = fl_ox_attr_i(n, "transB", 0) != 0;
        if (fl_ox_attr_i(n, "transA", 0))
            return fl_ox_fail(ox, FL_EINVAL, "transA=1 is not supported");
    }
    const int64_t *w = ox->vals[in[1]].dims, *x = ox->vals[in[0]].dims;
    int64_t k = w[a.trans_b ? 1 : 0], m = w[a.trans_b ? 0 : 1];
    size_t cn = in[2] >= 0 ? ox->vals[in[2]].numel : 1;
    if (ox->vals[in[0]].ndim != 2 || x[1] != k || (cn != 1 && cn != (size_t)m))
        return fl_ox_fail(ox, FL_EMISMATCH,
                          "weight %lldx%lld%s (bias of %zu) does not fit input of %d axes with "
                          "%lld features (a [batch, features] input is needed)",
                          (long long)w[0], (long long)w[1], a.trans_b ? " transposed" : "", cn,
                          ox->vals[in[0]].ndim, (long long)x[1]);
    int64_t dims[2] = {FL_OX_BATCH, m};
    return fl_ox_node(ox, n, matmul ? FL_OP_MATMUL : FL_OP_GEMM, in, in[2] >= 0 ? 3 : 2, 2, dims,
                      &a);
}

/* Add, Sub, Mul, Div with one or two activations (a constant operand becomes a parameter). */
static int s_binary(struct fl_ox *ox, const Onnx__NodeProto *n, enum fl_op op)
{
    int in[2];
    for (int k = 0; k < 2; k++) {
        in[k] = fl_ox_in(ox, n, (size_t)k);
        if (in[k] < 0)
            return fl_ox_fail(ox, FL_EFORMAT, "input %d is missing", k);
        int rc = ox->vals[in[k]].kind == FL_OX_ACT ? fl_ox_act(ox, n, (size_t)k, &in[k]) : 0;
        if (rc)
            return rc;
        if (ox->vals[in[k]].kind == FL_OX_INT) { /* an integer constant operand: as floats */
            const struct fl_ox_val *c = &ox->vals[in[k]];
            for (size_t j = 0; j < c->numel; j++)
                if (c->i[j] == FL_OX_BATCH)
                    return fl_ox_fail(ox, FL_EINVAL,
                                      "input %d depends on the batch size, which fedtl does not "
                                      "fix at import",
                                      k);
            int f;
            if ((rc = fl_ox_new_const(ox, c->name, FL_OX_FLOAT, c->ndim, c->dims, &f)))
                return rc;
            c = &ox->vals[in[k]];
            for (size_t j = 0; j < c->numel; j++)
                ox->vals[f].f[j] = (float)c->i[j];
            in[k] = f;
        }
        if (ox->vals[in[k]].kind != FL_OX_ACT &&
            (ox->vals[in[k]].ndim > FL_GRAPH_MAX_DIMS || ox->vals[in[k]].numel == 0))
            return fl_ox_fail(ox, FL_EMISMATCH, "constant operand '%.200s' of %d axes",
                              ox->vals[in[k]].name, ox->vals[in[k]].ndim);
    }
    const struct fl_ox_val *a = &ox->vals[in[0]], *b = &ox->vals[in[1]];
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    int64_t dims[FL_OX_MAX_DIMS];
    bool ok = (a->kind != FL_OX_ACT || a->ndim == nd) && (b->kind != FL_OX_ACT || b->ndim == nd);
    for (int d = 0; ok && d < nd; d++) {
        int64_t da = d - (nd - a->ndim) >= 0 ? a->dims[d - (nd - a->ndim)] : 1;
        int64_t db = d - (nd - b->ndim) >= 0 ? b->dims[d - (nd - b->ndim)] : 1;
        dims[d] = da == 1 ? db : da;
        ok = da == db || da == 1 || db == 1;
    }
    if (!ok || dims[0] != FL_OX_BATCH)
        return fl_ox_fail(ox, FL_EMISMATCH,
                          "shapes of '%.200s' (%d axes) and '%.200s' (%d axes) do not "
                          "broadcast per sample",
                          a->name, a->ndim, b->name, b->ndim);
    return fl_ox_node(ox, n, op, in, 2, nd, dims, NULL);
}

/* Softmax / LogSoftmax: dropped (the loss applies its own); only as the last node. */
static int s_softmax(struct fl_ox *ox, const Onnx__NodeProto *n)
{
    int x, out, rc = fl_ox_act(ox, n, 0, &x);
    if (rc == 0)
        rc = s_out(ox, n, ox->vals[x].ndim, ox->vals[x].dims, &out);
    if (rc == 0)
        ox->vals[out].alias = x;
    return rc;
}

static int s_copy(struct fl_ox *ox, const Onnx__NodeProto *n, enum fl_op op)
{
    int x, rc = fl_ox_act(ox, n, 0, &x);
    if (rc)
        return rc;
    return fl_ox_node(ox, n, op, &x, 1, ox->vals[x].ndim, ox->vals[x].dims, NULL);
}

int fl_ox_translate(struct fl_ox *ox, const Onnx__NodeProto *n)
{
    bool done = false;
    int rc = fl_ox_fold(ox, n, &done);
    if (rc || done)
        return rc;
    const char *t = n->op_type;
    if (n->domain && *n->domain && strcmp(n->domain, "ai.onnx") != 0)
        return fl_ox_fail(ox, FL_EINVAL,
                          "op domain '%.64s' is not supported (opset %d); "
                          "supported: %s",
                          n->domain, ox->opset, fl_ox_supported);
    static const struct {
        const char *name;
        enum fl_op op;
    } unary[] = {{"Relu", FL_OP_RELU},
                 {"Sigmoid", FL_OP_SIGMOID},
                 {"HardSigmoid", FL_OP_HARDSIGMOID},
                 {"HardSwish", FL_OP_HARDSWISH},
                 {"Clip", FL_OP_CLIP}},
      binary[] = {{"Add", FL_OP_ADD}, {"Sub", FL_OP_SUB}, {"Mul", FL_OP_MUL}, {"Div", FL_OP_DIV}};
    for (size_t i = 0; i < sizeof unary / sizeof *unary; i++)
        if (strcmp(t, unary[i].name) == 0)
            return s_unary(ox, n, unary[i].op);
    for (size_t i = 0; i < sizeof binary / sizeof *binary; i++)
        if (strcmp(t, binary[i].name) == 0)
            return s_binary(ox, n, binary[i].op);
    if (strcmp(t, "Conv") == 0)
        return s_conv(ox, n);
    if (strcmp(t, "MaxPool") == 0 || strcmp(t, "AveragePool") == 0)
        return s_pool(ox, n, t[0] == 'M');
    if (strcmp(t, "GlobalAveragePool") == 0)
        return s_gap(ox, n);
    if (strcmp(t, "BatchNormalization") == 0)
        return s_batchnorm(ox, n);
    if (strcmp(t, "Gemm") == 0 || strcmp(t, "MatMul") == 0)
        return s_gemm(ox, n, t[0] == 'M');
    if (strcmp(t, "Flatten") == 0)
        return fl_ox_flatten(ox, n);
    if (strcmp(t, "Reshape") == 0)
        return fl_ox_reshape(ox, n);
    if (strcmp(t, "Concat") == 0)
        return fl_ox_concat(ox, n);
    if (strcmp(t, "Squeeze") == 0 || strcmp(t, "Unsqueeze") == 0)
        return fl_ox_squeeze(ox, n, t[0] == 'U');
    if (strcmp(t, "Softmax") == 0 || strcmp(t, "LogSoftmax") == 0)
        return s_softmax(ox, n);
    if (strcmp(t, "Dropout") == 0 || strcmp(t, "Identity") == 0)
        return s_copy(ox, n, t[0] == 'D' ? FL_OP_DROPOUT : FL_OP_IDENTITY);
    return fl_ox_fail(ox, FL_EINVAL, "op %.64s is not supported (model opset %d); supported: %s", t,
                      ox->opset, fl_ox_supported);
}
