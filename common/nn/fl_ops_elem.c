/* fl_ops_elem: the graph's element-wise ops: activations (Relu, Clip, Sigmoid, HardSigmoid,
 * HardSwish), arithmetic with ONNX broadcasting (Add, Sub, Mul, Div), and frozen-statistics
 * BatchNormalization. */
#include "fl_graph_impl.h"

#include "fl_error.h"

#include <math.h>
#include <string.h>

int fl_unary_infer(fl_graph_t *g, struct fl_gnode *nd)
{
    const struct fl_gvalue *x = &g->values[nd->in[0]];
    struct fl_gvalue *y = &g->values[nd->out];
    if (x->kind == FL_GV_PARAM)
        return fl_fail(FL_EINVAL,
                       "graph: node '%s' (%s) reads parameter '%s' (constant "
                       "folding is not supported)",
                       nd->name, fl_op_name(nd->op), x->name);
    y->ndim = x->ndim;
    memcpy(y->dims, x->dims, sizeof y->dims);
    y->numel = x->numel;
    return 0;
}

static float s_hsig(float x, float alpha, float beta)
{
    float v = alpha * x + beta;
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

/* One loop per op (a switch inside the loop keeps the compiler from vectorising it). */
void fl_unary_fwd(fl_graph_t *g, const struct fl_gnode *nd, int t, size_t b0, size_t b1)
{
    if (nd->fused) /* its conv wrote the output */
        return;
    size_t per = g->values[nd->out].numel, n = (b1 - b0) * per;
    const float *restrict x = fl_gv_data(g, nd->in[0], b0);
    float *restrict y = fl_gv_data(g, nd->out, b0);
    float lo = nd->a.min, hi = nd->a.max, al = nd->a.alpha, be = nd->a.beta;
    switch (nd->op) {
    case FL_OP_RELU:
        for (size_t i = 0; i < n; i++)
            y[i] = x[i] > 0 ? x[i] : 0;
        break;
    case FL_OP_CLIP:
        for (size_t i = 0; i < n; i++) {
            float v = x[i] < lo ? lo : x[i];
            y[i] = v > hi ? hi : v;
        }
        break;
    case FL_OP_SIGMOID:
        for (size_t i = 0; i < n; i++)
            y[i] = 1.0f / (1.0f + expf(-x[i]));
        break;
    case FL_OP_HARDSIGMOID:
        for (size_t i = 0; i < n; i++)
            y[i] = s_hsig(x[i], al, be);
        break;
    default: /* FL_OP_HARDSWISH */
        for (size_t i = 0; i < n; i++)
            y[i] = x[i] * s_hsig(x[i], 1.0f / 6, 0.5f);
        break;
    }
}

void fl_unary_bwd(fl_graph_t *g, const struct fl_gnode *nd, int t, size_t b0, size_t b1)
{
    float *restrict dx = fl_gv_grad(g, nd->in[0], t, b0);
    if (!dx)
        return;
    size_t per = g->values[nd->out].numel, n = (b1 - b0) * per;
    const float *restrict x = fl_gv_data(g, nd->in[0], b0);
    const float *restrict y = fl_gv_data(g, nd->out, b0);
    const float *restrict dy = fl_gv_grad(g, nd->out, t, b0);
    float lo = nd->a.min, hi = nd->a.max, al = nd->a.alpha, be = nd->a.beta;
    switch (nd->op) {
    case FL_OP_RELU:
        for (size_t i = 0; i < n; i++)
            dx[i] += y[i] > 0 ? dy[i] : 0.0f;
        break;
    case FL_OP_CLIP:
        for (size_t i = 0; i < n; i++)
            dx[i] += x[i] > lo && x[i] < hi ? dy[i] : 0.0f;
        break;
    case FL_OP_SIGMOID:
        for (size_t i = 0; i < n; i++)
            dx[i] += y[i] * (1.0f - y[i]) * dy[i];
        break;
    case FL_OP_HARDSIGMOID:
        for (size_t i = 0; i < n; i++) {
            float u = al * x[i] + be;
            dx[i] += u > 0 && u < 1 ? al * dy[i] : 0.0f;
        }
        break;
    default: /* FL_OP_HARDSWISH: 0 below -3, 1 above 3, x/3 + 1/2 between */
        for (size_t i = 0; i < n; i++) {
            float v = x[i], d = v <= -3.0f ? 0.0f : v >= 3.0f ? 1.0f : v / 3.0f + 0.5f;
            dx[i] += d * dy[i];
        }
        break;
    }
}

/* Per-sample shape of a binary op's operand, right-aligned on 4 axes; a parameter's leading
 * axes beyond out_nd (its batch axis, which must be 1) are dropped. Returns its per-sample
 * ndim or -1. */
static int s_operand(const struct fl_gvalue *v, int out_nd, int64_t d4[4])
{
    int off = 0, nd = v->ndim;
    if (v->kind == FL_GV_PARAM)
        while (nd > out_nd) {
            if (v->dims[off] != 1)
                return -1;
            off++, nd--;
        }
    if (nd > 4)
        return -1;
    for (int i = 0; i < 4; i++)
        d4[i] = i < 4 - nd ? 1 : v->dims[off + i - (4 - nd)];
    return nd;
}

int fl_binary_infer(fl_graph_t *g, struct fl_gnode *nd)
{
    const struct fl_gvalue *a = &g->values[nd->in[0]], *b = &g->values[nd->in[1]];
    struct fl_gvalue *y = &g->values[nd->out];
    char as[64], bs[64];
    if (a->kind == FL_GV_PARAM && b->kind == FL_GV_PARAM)
        return fl_fail(FL_EINVAL,
                       "graph: node '%s' (%s) reads two parameters (constant folding "
                       "is not supported)",
                       nd->name, fl_op_name(nd->op));
    int out_nd = 0;
    for (int k = 0; k < 2; k++) {
        const struct fl_gvalue *v = k ? b : a;
        if (v->kind != FL_GV_PARAM && v->ndim > out_nd)
            out_nd = v->ndim;
    }
    int64_t d[2][4], o[4];
    int na = s_operand(a, out_nd, d[0]), nb = s_operand(b, out_nd, d[1]);
    bool ok = na >= 0 && nb >= 0;
    for (int i = 0; ok && i < 4; i++) {
        o[i] = d[0][i] > d[1][i] ? d[0][i] : d[1][i];
        ok = (d[0][i] == 1 || d[0][i] == o[i]) && (d[1][i] == 1 || d[1][i] == o[i]);
    }
    if (!ok)
        return fl_fail(FL_EMISMATCH, "graph: node '%s' (%s): shapes %s and %s do not broadcast",
                       nd->name, fl_op_name(nd->op), fl_gv_shape_str(a, as, sizeof as),
                       fl_gv_shape_str(b, bs, sizeof bs));
    if (na > out_nd)
        out_nd = na;
    if (nb > out_nd)
        out_nd = nb;
    y->ndim = out_nd;
    y->numel = 1;
    for (int i = 0; i < out_nd; i++) {
        y->dims[i] = o[4 - out_nd + i];
        y->numel *= (size_t)y->dims[i];
    }
    for (int k = 0; k < 2; k++) {
        const struct fl_gvalue *v = k ? b : a;
        int64_t stride = 1;
        for (int i = 3; i >= 0; i--) {
            nd->bstride[k][i + 1] = d[k][i] == 1 ? 0 : stride;
            stride *= d[k][i];
        }
        nd->bstride[k][0] = v->kind == FL_GV_PARAM ? 0 : (int64_t)v->numel;
    }
    for (int i = 0; i < 4; i++)
        nd->bdims[i + 1] = o[i];
    return 0;
}

/* Calls body with ia, ib (operand offsets) and iy (output offset) for every element of samples
 * [b0, b1). */
#define S_BCAST_LOOP(nd, b0, b1, ...)                                                              \
    for (size_t s = (b0); s < (b1); s++)                                                           \
        for (int64_t i0 = 0; i0 < (nd)->bdims[1]; i0++)                                            \
            for (int64_t i1 = 0; i1 < (nd)->bdims[2]; i1++)                                        \
                for (int64_t i2 = 0; i2 < (nd)->bdims[3]; i2++) {                                  \
                    const int64_t *sa = (nd)->bstride[0], *sb = (nd)->bstride[1];                  \
                    int64_t ia = (int64_t)s * sa[0] + i0 * sa[1] + i1 * sa[2] + i2 * sa[3];        \
                    int64_t ib = (int64_t)s * sb[0] + i0 * sb[1] + i1 * sb[2] + i2 * sb[3];        \
                    int64_t iy = (((int64_t)s * (nd)->bdims[1] + i0) * (nd)->bdims[2] + i1) *      \
                                     (nd)->bdims[3] * (nd)->bdims[4] +                             \
                                 i2 * (nd)->bdims[4];                                              \
                    for (int64_t i3 = 0; i3 < (nd)->bdims[4];                                      \
                         i3++, ia += sa[4], ib += sb[4], iy++) {                                   \
                        __VA_ARGS__                                                                \
                    }                                                                              \
                }

void fl_binary_fwd(fl_graph_t *g, const struct fl_gnode *nd, int t, size_t b0, size_t b1)
{
    if (nd->fused) /* a residual Add its conv made */
        return;
    const float *a = g->values[nd->in[0]].data, *b = g->values[nd->in[1]].data;
    float *y = g->values[nd->out].data;
    enum fl_op op = nd->op;
    S_BCAST_LOOP(nd, b0, b1, {
        float u = a[ia], v = b[ib];
        y[iy] = op == FL_OP_ADD ? u + v : op == FL_OP_SUB ? u - v : op == FL_OP_MUL ? u * v : u / v;
    })
}

void fl_binary_bwd(fl_graph_t *g, const struct fl_gnode *nd, int t, size_t b0, size_t b1)
{
    const float *a = g->values[nd->in[0]].data, *b = g->values[nd->in[1]].data;
    const float *dy = g->values[nd->out].grad;
    /* Base of each gradient: a parameter's per-worker buffer, else the whole batched buffer
     * (the offsets computed by the loop include the sample). */
    float *da = fl_gv_grad(g, nd->in[0], t, 0), *db = fl_gv_grad(g, nd->in[1], t, 0);
    enum fl_op op = nd->op;
    S_BCAST_LOOP(nd, b0, b1, {
        float d = dy[iy], u = a[ia], v = b[ib];
        if (da)
            da[ia] += op == FL_OP_MUL ? d * v : op == FL_OP_DIV ? d / v : d;
        if (db)
            db[ib] += op == FL_OP_ADD   ? d
                      : op == FL_OP_SUB ? -d
                      : op == FL_OP_MUL ? d * u
                                        : -d * u / (v * v);
    })
}

int fl_bn_infer(fl_graph_t *g, struct fl_gnode *nd)
{
    const struct fl_gvalue *x = &g->values[nd->in[0]];
    char xs[64], ps[64];
    if (x->kind == FL_GV_PARAM || x->ndim < 1)
        return fl_fail(FL_EINVAL, "graph: node '%s' (BatchNormalization) reads parameter '%s'",
                       nd->name, x->name);
    for (int i = 1; i < 5; i++) {
        const struct fl_gvalue *p = &g->values[nd->in[i]];
        if (p->kind != FL_GV_PARAM || p->numel != (size_t)x->dims[0])
            return fl_fail(FL_EMISMATCH,
                           "graph: node '%s' (BatchNormalization): input %d '%s' is %s, the "
                           "input %s has %lld channels",
                           nd->name, i, p->name, fl_gv_shape_str(p, ps, sizeof ps),
                           fl_gv_shape_str(x, xs, sizeof xs), (long long)x->dims[0]);
    }
    return fl_unary_infer(g, nd);
}

void fl_bn_fwd(fl_graph_t *g, const struct fl_gnode *nd, int t, size_t b0, size_t b1)
{
    const struct fl_gvalue *xv = &g->values[nd->in[0]];
    size_t c = (size_t)xv->dims[0], plane = xv->numel / c;
    const float *sc = fl_gv_data(g, nd->in[1], 0), *sh = fl_gv_data(g, nd->in[2], 0);
    const float *mu = fl_gv_data(g, nd->in[3], 0), *var = fl_gv_data(g, nd->in[4], 0);
    for (size_t s = b0; s < b1; s++) {
        const float *x = fl_gv_data(g, nd->in[0], s);
        float *y = fl_gv_data(g, nd->out, s);
        for (size_t ch = 0; ch < c; ch++) {
            float k = sc[ch] / sqrtf(var[ch] + nd->a.epsilon);
            for (size_t i = ch * plane; i < (ch + 1) * plane; i++)
                y[i] = (x[i] - mu[ch]) * k + sh[ch];
        }
    }
}

void fl_bn_bwd(fl_graph_t *g, const struct fl_gnode *nd, int t, size_t b0, size_t b1)
{
    const struct fl_gvalue *xv = &g->values[nd->in[0]];
    size_t c = (size_t)xv->dims[0], plane = xv->numel / c;
    const float *sc = fl_gv_data(g, nd->in[1], 0), *mu = fl_gv_data(g, nd->in[3], 0);
    const float *var = fl_gv_data(g, nd->in[4], 0);
    float *dsc = fl_gv_grad(g, nd->in[1], t, 0), *dsh = fl_gv_grad(g, nd->in[2], t, 0);
    float *dmu = fl_gv_grad(g, nd->in[3], t, 0), *dvar = fl_gv_grad(g, nd->in[4], t, 0);
    for (size_t s = b0; s < b1; s++) {
        const float *x = fl_gv_data(g, nd->in[0], s), *dy = fl_gv_grad(g, nd->out, t, s);
        float *dx = fl_gv_grad(g, nd->in[0], t, s);
        for (size_t ch = 0; ch < c; ch++) {
            float inv = 1.0f / sqrtf(var[ch] + nd->a.epsilon), k = sc[ch] * inv;
            double sdy = 0, sdyx = 0;
            for (size_t i = ch * plane; i < (ch + 1) * plane; i++) {
                if (dx)
                    dx[i] += dy[i] * k;
                sdy += dy[i];
                sdyx += (double)dy[i] * (x[i] - mu[ch]);
            }
            if (dsc)
                dsc[ch] += (float)(sdyx * inv);
            if (dsh)
                dsh[ch] += (float)sdy;
            if (dmu)
                dmu[ch] -= (float)(sdy * k);
            if (dvar)
                dvar[ch] += (float)(sdyx * sc[ch] * -0.5 * inv * inv * inv);
        }
    }
}
