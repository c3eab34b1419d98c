/* fl_onnx_fold: nodes whose inputs are all constants are computed at import, and Shape of an
 * activation is its known shape (batch entry FL_OX_BATCH), so that the shape computations
 * exporters put in front of a Reshape (Shape, Gather, Slice, Cast, Concat, Unsqueeze, Squeeze,
 * ConstantOfShape, Range, Add/Sub/Mul/Div) become constants. */
#include "fl_onnx_impl.h"

#include "fl_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The output value of n: a constant of the given kind and shape. */
static int s_result(struct fl_ox *ox, const Onnx__NodeProto *n, enum fl_ox_kind kind, int ndim,
                    const int64_t *shape, int *v)
{
    int64_t dims[FL_OX_MAX_DIMS]; /* shape may point into ox->vals, which grows */
    if (n->n_output < 1 || !n->output[0] || !*n->output[0])
        return fl_ox_fail(ox, FL_EFORMAT, "no output");
    if (ndim > FL_OX_MAX_DIMS)
        return fl_ox_fail(ox, FL_ERANGE, "a result of %d axes", ndim);
    memcpy(dims, shape, (size_t)ndim * sizeof *dims);
    int64_t total = 1;
    for (int d = 0; d < ndim; d++)
        if (dims[d] < 0 || dims[d] > FL_ONNX_MAX_FOLDED || (total *= dims[d]) > FL_ONNX_MAX_FOLDED)
            return fl_ox_fail(ox, FL_ERANGE,
                              "absurd dimensions in a constant computed at import "
                              "(at most %lld values)",
                              (long long)FL_ONNX_MAX_FOLDED);
    int rc = fl_ox_new_val(ox, n->output[0], kind, v);
    if (rc)
        return rc;
    struct fl_ox_val *r = &ox->vals[*v];
    r->ndim = ndim;
    memcpy(r->dims, dims, (size_t)ndim * sizeof *dims);
    r->numel = (size_t)total;
    if (kind == FL_OX_FLOAT)
        r->f = fl_falloc(r->numel ? r->numel : 1);
    else
        r->i = calloc(r->numel ? r->numel : 1, sizeof *r->i);
    return r->f || r->i ? 0 : fl_fail(FL_ENOMEM, "onnx: out of memory");
}

/* A double as an int64, saturated (NaN: 0). */
static int64_t s_f2i(double x)
{
    if (!(x == x))
        return 0;
    return x >= 9.2e18 ? INT64_MAX : x <= -9.2e18 ? INT64_MIN : (int64_t)x;
}

static double s_get(const struct fl_ox_val *v, size_t j)
{
    return v->kind == FL_OX_FLOAT ? (double)v->f[j] : (double)v->i[j];
}

static void s_set(struct fl_ox_val *v, size_t j, double x, int64_t i)
{
    if (v->kind == FL_OX_FLOAT)
        v->f[j] = (float)x;
    else
        v->i[j] = i;
}

/* Copy element j of src into element k of dst (same kind). */
static void s_move(struct fl_ox_val *dst, size_t k, const struct fl_ox_val *src, size_t j)
{
    if (dst->kind == FL_OX_FLOAT)
        dst->f[k] = src->f[j];
    else
        dst->i[k] = src->i[j];
}

/* Input k as a list of ints (a constant of at most FL_OX_MAX_DIMS * 2 values). */
static int s_ints_in(struct fl_ox *ox, const Onnx__NodeProto *n, size_t k, int64_t *out, int *cnt)
{
    int v = fl_ox_in(ox, n, k);
    if (v < 0 || ox->vals[v].kind != FL_OX_INT || ox->vals[v].numel > 2 * FL_OX_MAX_DIMS)
        return fl_ox_fail(ox, FL_EINVAL, "input %zu must be a constant list of integers", k);
    *cnt = (int)ox->vals[v].numel;
    memcpy(out, ox->vals[v].i, (size_t)*cnt * sizeof *out);
    return 0;
}

/* An ints attribute or, from opset `since`, input k (absent: *cnt = -1). */
static int s_list(struct fl_ox *ox, const Onnx__NodeProto *n, const char *attr, size_t k, int since,
                  int64_t *out, int *cnt)
{
    *cnt = -1;
    if (ox->opset >= since) {
        if (fl_ox_in(ox, n, k) < 0)
            return k < n->n_input && *n->input[k] ? fl_ox_fail(ox, FL_EFORMAT,
                                                               "input %zu is "
                                                               "missing",
                                                               k)
                                                  : 0;
        return s_ints_in(ox, n, k, out, cnt);
    }
    const Onnx__AttributeProto *a = fl_ox_attr(n, attr);
    if (!a)
        return 0;
    if (a->n_ints > 2 * FL_OX_MAX_DIMS)
        return fl_ox_fail(ox, FL_EINVAL, "attribute %s has %zu values", attr, a->n_ints);
    *cnt = (int)a->n_ints;
    if (a->n_ints) /* ints is NULL when empty */
        memcpy(out, a->ints, a->n_ints * sizeof *out);
    return 0;
}

static int s_constant(struct fl_ox *ox, const Onnx__NodeProto *n)
{
    int v;
    const Onnx__AttributeProto *a;
    if ((a = fl_ox_attr(n, "value")) && a->t)
        return fl_ox_tensor(ox, a->t, n->n_output ? n->output[0] : NULL, &v);
    bool isf = (a = fl_ox_attr(n, "value_float")) || (a = fl_ox_attr(n, "value_floats"));
    if (!isf && !(a = fl_ox_attr(n, "value_int")) && !(a = fl_ox_attr(n, "value_ints")))
        return fl_ox_fail(ox, FL_EINVAL,
                          "a Constant needs a value, value_float(s) or "
                          "value_int(s) attribute");
    bool list = a->n_floats || a->n_ints || (a->has_type && (a->type == 6 || a->type == 7));
    int64_t len = isf ? (int64_t)a->n_floats : (int64_t)a->n_ints;
    int rc = s_result(ox, n, isf ? FL_OX_FLOAT : FL_OX_INT, list ? 1 : 0, &len, &v);
    struct fl_ox_val *r = rc ? NULL : &ox->vals[v];
    for (size_t j = 0; r && j < r->numel; j++)
        s_set(r, j, list && isf ? a->floats[j] : a->f, list ? (isf ? 0 : a->ints[j]) : a->i);
    return rc;
}

static int s_shape(struct fl_ox *ox, const Onnx__NodeProto *n, int x)
{
    const struct fl_ox_val *xv = &ox->vals[x];
    int64_t nd = xv->ndim, b = fl_ox_attr_i(n, "start", 0), e = fl_ox_attr_i(n, "end", nd);
    b = b < 0 ? b + nd : b, e = e < 0 ? e + nd : e;
    b = b < 0 ? 0 : b > nd ? nd : b, e = e < b ? b : e > nd ? nd : e;
    int64_t len = e - b;
    int v, rc = s_result(ox, n, FL_OX_INT, 1, &len, &v);
    for (int64_t d = b; rc == 0 && d < e; d++)
        ox->vals[v].i[d - b] = ox->vals[x].dims[d];
    return rc;
}

/* Cast, Identity, Dropout, Unsqueeze, Squeeze, Reshape, Flatten: the same data, maybe
 * converted, in a new shape. */
static int s_reshaped(struct fl_ox *ox, const Onnx__NodeProto *n, int x, enum fl_ox_kind kind,
                      int ndim, const int64_t *dims)
{
    int64_t total = 1;
    for (int d = 0; d < ndim; d++)
        total *= dims[d];
    if (total != (int64_t)ox->vals[x].numel)
        return fl_ox_fail(ox, FL_EMISMATCH, "a shape of %lld values for '%.200s' of %zu",
                          (long long)total, ox->vals[x].name, ox->vals[x].numel);
    int v, rc = s_result(ox, n, kind, ndim, dims, &v);
    const struct fl_ox_val *xv = &ox->vals[x];
    for (size_t j = 0; rc == 0 && j < xv->numel; j++)
        s_set(&ox->vals[v], j, s_get(xv, j), xv->kind == FL_OX_INT ? xv->i[j] : s_f2i(xv->f[j]));
    return rc;
}

static int s_squeeze(struct fl_ox *ox, const Onnx__NodeProto *n, int x, bool un)
{
    int64_t ax[2 * FL_OX_MAX_DIMS], dims[FL_OX_MAX_DIMS];
    int na, rc = s_list(ox, n, "axes", 1, 13, ax, &na);
    const struct fl_ox_val *xv = &ox->vals[x];
    int nd = un ? xv->ndim + (na > 0 ? na : 0) : xv->ndim;
    if (rc || (un && na < 1) || nd > FL_OX_MAX_DIMS)
        return rc ? rc : fl_ox_fail(ox, FL_EINVAL, "bad axes");
    bool mark[FL_OX_MAX_DIMS] = {false};
    for (int k = 0; k < na; k++) {
        int64_t a = ax[k] < 0 ? ax[k] + nd : ax[k];
        if (a < 0 || a >= nd || (!un && xv->dims[a] != 1) || mark[a])
            return fl_ox_fail(ox, FL_EINVAL, "axis %lld", (long long)ax[k]);
        mark[a] = true;
    }
    int o = 0;
    for (int d = 0, s = 0; d < nd; d++) {
        if (un)
            dims[o++] = mark[d] ? 1 : xv->dims[s++];
        else if (!(na > 0 ? mark[d] : xv->dims[d] == 1))
            dims[o++] = xv->dims[d];
    }
    return s_reshaped(ox, n, x, xv->kind, o, dims);
}

static int s_const_reshape(struct fl_ox *ox, const Onnx__NodeProto *n, int x)
{
    int64_t sh[2 * FL_OX_MAX_DIMS], known = 1;
    int ns, infer = -1, rc = s_ints_in(ox, n, 1, sh, &ns);
    if (rc || ns > FL_OX_MAX_DIMS)
        return rc ? rc : fl_ox_fail(ox, FL_EINVAL, "a shape of %d entries", ns);
    const struct fl_ox_val *xv = &ox->vals[x];
    for (int d = 0; d < ns; d++) {
        if (sh[d] == 0 && d < xv->ndim)
            sh[d] = xv->dims[d];
        if (sh[d] == -1 && infer < 0)
            infer = d;
        else if (sh[d] < 0 || sh[d] > FL_ONNX_MAX_NUMEL || (known *= sh[d]) > FL_ONNX_MAX_NUMEL)
            return fl_ox_fail(ox, FL_EINVAL, "shape entry %d = %lld", d, (long long)sh[d]);
    }
    if (infer >= 0)
        sh[infer] = known ? (int64_t)xv->numel / known : 0;
    return s_reshaped(ox, n, x, xv->kind, ns, sh);
}

static int s_gather(struct fl_ox *ox, const Onnx__NodeProto *n, int x, int ix)
{
    const struct fl_ox_val *xv = &ox->vals[x], *iv = &ox->vals[ix];
    int64_t axis = fl_ox_attr_i(n, "axis", 0), dims[FL_OX_MAX_DIMS];
    axis = axis < 0 ? axis + xv->ndim : axis;
    if (iv->kind != FL_OX_INT || axis < 0 || axis >= xv->ndim ||
        xv->ndim + iv->ndim - 1 > FL_OX_MAX_DIMS)
        return fl_ox_fail(ox, FL_EINVAL, "axis %lld of a constant of %d axes, integer indices",
                          (long long)axis, xv->ndim);
    size_t outer = 1, inner = 1;
    int nd = 0;
    for (int d = 0; d < axis; d++)
        outer *= (size_t)xv->dims[d], dims[nd++] = xv->dims[d];
    for (int d = 0; d < iv->ndim; d++)
        dims[nd++] = iv->dims[d];
    for (int d = (int)axis + 1; d < xv->ndim; d++)
        inner *= (size_t)xv->dims[d], dims[nd++] = xv->dims[d];
    int v, rc = s_result(ox, n, xv->kind, nd, dims, &v);
    xv = &ox->vals[x], iv = &ox->vals[ix];
    int64_t len = xv->dims[axis];
    for (size_t o = 0; rc == 0 && o < outer; o++)
        for (size_t k = 0; rc == 0 && k < iv->numel; k++) {
            int64_t at = iv->i[k] < 0 ? iv->i[k] + len : iv->i[k];
            if (at < 0 || at >= len)
                return fl_ox_fail(ox, FL_ERANGE, "index %lld out of %lld", (long long)iv->i[k],
                                  (long long)len);
            for (size_t j = 0; j < inner; j++)
                s_move(&ox->vals[v], (o * iv->numel + k) * inner + j, xv,
                       (o * (size_t)len + (size_t)at) * inner + j);
        }
    return rc;
}

static int s_slice(struct fl_ox *ox, const Onnx__NodeProto *n, int x)
{
    int64_t st[16], en[16], ax[16] = {0}, sp[16] = {1};
    int ns, ne, na, nsp, rc = s_list(ox, n, "starts", 1, 10, st, &ns);
    if (rc == 0)
        rc = s_list(ox, n, "ends", 2, 10, en, &ne);
    if (rc == 0)
        rc = s_list(ox, n, "axes", 3, 10, ax, &na);
    if (rc == 0)
        rc = s_list(ox, n, "steps", 4, 10, sp, &nsp);
    const struct fl_ox_val *xv = &ox->vals[x];
    if (rc || ns != 1 || ne != 1 || na > 1 || nsp > 1 || xv->ndim != 1 ||
        (na == 1 && ax[0] != 0 && ax[0] != -1) || sp[0] == 0 || sp[0] > INT32_MAX ||
        sp[0] < -INT32_MAX)
        return rc ? rc : fl_ox_fail(ox, FL_EINVAL, "only 1-D slices of constants fold");
    int64_t len = xv->dims[0], s = sp[0], b = st[0], e = en[0];
    b = b < 0 ? b + len : b, e = e < 0 ? e + len : e;
    if (s > 0)
        b = b < 0 ? 0 : b > len ? len : b, e = e < 0 ? 0 : e > len ? len : e;
    else
        b = b < 0 ? -1 : b > len - 1 ? len - 1 : b, e = e < -1 ? -1 : e > len - 1 ? len - 1 : e;
    int64_t cnt = s > 0 ? (e > b ? (e - b + s - 1) / s : 0) : (b > e ? (b - e - s - 1) / -s : 0);
    int v;
    if ((rc = s_result(ox, n, xv->kind, 1, &cnt, &v)))
        return rc;
    for (int64_t k = 0; k < cnt; k++)
        s_move(&ox->vals[v], (size_t)k, &ox->vals[x], (size_t)(b + k * s));
    return 0;
}

static int s_concat(struct fl_ox *ox, const Onnx__NodeProto *n)
{
    int x0 = fl_ox_in(ox, n, 0);
    const struct fl_ox_val *a = &ox->vals[x0];
    int64_t axis = fl_ox_attr_i(n, "axis", 0), dims[FL_OX_MAX_DIMS];
    axis = axis < 0 ? axis + a->ndim : axis;
    if (axis < 0 || axis >= a->ndim)
        return fl_ox_fail(ox, FL_EINVAL, "axis %lld", (long long)axis);
    memcpy(dims, a->dims, sizeof dims);
    dims[axis] = 0;
    size_t outer = 1;
    for (int d = 0; d < axis; d++)
        outer *= (size_t)a->dims[d];
    for (size_t k = 0; k < n->n_input; k++) {
        if (fl_ox_in(ox, n, k) < 0)
            return fl_ox_fail(ox, FL_EFORMAT, "input %zu is missing", k);
        const struct fl_ox_val *b = &ox->vals[fl_ox_in(ox, n, k)];
        bool ok = b->ndim == a->ndim && b->kind == a->kind;
        for (int d = 0; ok && d < a->ndim; d++)
            ok = d == axis || b->dims[d] == a->dims[d];
        if (!ok)
            return fl_ox_fail(ox, FL_EMISMATCH,
                              "constants '%.200s' and '%.200s' do not "
                              "concatenate",
                              a->name, b->name);
        dims[axis] += b->dims[axis];
    }
    int v, rc = s_result(ox, n, a->kind, a->ndim, dims, &v);
    size_t at = 0;
    for (size_t o = 0; rc == 0 && o < outer; o++)
        for (size_t k = 0; k < n->n_input; k++) {
            const struct fl_ox_val *b = &ox->vals[fl_ox_in(ox, n, k)];
            size_t chunk = outer ? b->numel / outer : 0;
            for (size_t j = 0; j < chunk; j++)
                s_move(&ox->vals[v], at++, b, o * chunk + j);
        }
    return rc;
}

/* Elementwise Add/Sub/Mul/Div on constants, ONNX broadcasting. */
static int s_arith(struct fl_ox *ox, const Onnx__NodeProto *n, int x, int y)
{
    const struct fl_ox_val *a = &ox->vals[x], *b = &ox->vals[y];
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    int64_t dims[FL_OX_MAX_DIMS], da[FL_OX_MAX_DIMS], db[FL_OX_MAX_DIMS];
    for (int d = 0; d < nd; d++) {
        da[d] = d >= nd - a->ndim ? a->dims[d - (nd - a->ndim)] : 1;
        db[d] = d >= nd - b->ndim ? b->dims[d - (nd - b->ndim)] : 1;
        dims[d] = da[d] == 1 ? db[d] : da[d];
        if (da[d] != db[d] && da[d] != 1 && db[d] != 1)
            return fl_ox_fail(ox, FL_EMISMATCH,
                              "constants '%.200s' and '%.200s' do not "
                              "broadcast",
                              a->name, b->name);
    }
    bool isf = a->kind == FL_OX_FLOAT || b->kind == FL_OX_FLOAT;
    int v, rc = s_result(ox, n, isf ? FL_OX_FLOAT : FL_OX_INT, nd, dims, &v);
    a = &ox->vals[x], b = &ox->vals[y];
    char op = n->op_type[0];
    for (size_t j = 0; rc == 0 && j < ox->vals[v].numel; j++) {
        size_t ia = 0, ib = 0, rest = j, sa = 1, sb = 1;
        for (int d = nd - 1; d >= 0; d--) {
            size_t c = rest % (size_t)dims[d];
            rest /= (size_t)dims[d];
            ia += (da[d] == 1 ? 0 : c) * sa, ib += (db[d] == 1 ? 0 : c) * sb;
            sa *= (size_t)da[d], sb *= (size_t)db[d];
        }
        if (!isf) {
            int64_t p = a->i[ia], q = b->i[ib], r;
            if (p == FL_OX_BATCH || q == FL_OX_BATCH || (op == 'D' && (q == 0 || q == -1)))
                return fl_ox_fail(ox, FL_EINVAL,
                                  "arithmetic on the batch size (or a division "
                                  "by zero) in a shape computation is not supported");
            uint64_t up = (uint64_t)p, uq = (uint64_t)q; /* wrapping, never undefined */
            r = op == 'A'   ? (int64_t)(up + uq)
                : op == 'S' ? (int64_t)(up - uq)
                : op == 'M' ? (int64_t)(up * uq)
                            : p / q;
            ox->vals[v].i[j] = r;
        } else {
            double p = s_get(a, ia), q = s_get(b, ib);
            ox->vals[v].f[j] = (float)(op == 'A'   ? p + q
                                       : op == 'S' ? p - q
                                       : op == 'M' ? p * q
                                                   : p / q);
        }
    }
    return rc;
}

static int s_const_of_shape(struct fl_ox *ox, const Onnx__NodeProto *n)
{
    int64_t dims[2 * FL_OX_MAX_DIMS];
    int nd = 0, v, rc = s_ints_in(ox, n, 0, dims, &nd);
    if (rc)
        return rc;
    const Onnx__AttributeProto *a = fl_ox_attr(n, "value");
    int fill = -1;
    char tmp[32];
    snprintf(tmp, sizeof tmp, "\x01fill%d", ox->nvals); /* no ONNX name starts with \x01 */
    if (a && a->t && (rc = fl_ox_tensor(ox, a->t, tmp, &fill)))
        return rc;
    enum fl_ox_kind kind = fill >= 0 ? ox->vals[fill].kind : FL_OX_FLOAT;
    if (fill >= 0 && ox->vals[fill].numel != 1)
        return fl_ox_fail(ox, FL_EINVAL, "value must hold one element");
    if ((rc = s_result(ox, n, kind, nd, dims, &v)))
        return rc;
    for (size_t j = 0; fill >= 0 && j < ox->vals[v].numel; j++)
        s_move(&ox->vals[v], j, &ox->vals[fill], 0);
    return 0;
}

static int s_range(struct fl_ox *ox, const Onnx__NodeProto *n)
{
    double p[3];
    for (size_t k = 0; k < 3; k++) {
        int v = fl_ox_in(ox, n, k);
        if (v < 0 || ox->vals[v].numel != 1)
            return fl_ox_fail(ox, FL_EINVAL, "input %zu must be a scalar", k);
        p[k] = s_get(&ox->vals[v], 0);
    }
    double cnt = p[2] != 0 ? (p[1] - p[0]) / p[2] : -1;
    if (!(cnt >= 0 && cnt <= FL_ONNX_MAX_NUMEL))
        return fl_ox_fail(ox, FL_EINVAL, "range %g to %g by %g", p[0], p[1], p[2]);
    int64_t len = (int64_t)cnt + ((int64_t)cnt < cnt);
    int x = fl_ox_in(ox, n, 0), v, rc = s_result(ox, n, ox->vals[x].kind, 1, &len, &v);
    for (int64_t j = 0; rc == 0 && j < len; j++)
        s_set(&ox->vals[v], (size_t)j, p[0] + (double)j * p[2], s_f2i(p[0] + (double)j * p[2]));
    return rc;
}

static int s_cast(struct fl_ox *ox, const Onnx__NodeProto *n, int x)
{
    int64_t to = fl_ox_attr_i(n, "to", 1);
    bool isf = to == 1 || to == 10 || to == 11 || to == 16;
    const struct fl_ox_val *xv = &ox->vals[x];
    return s_reshaped(ox, n, x, isf ? FL_OX_FLOAT : FL_OX_INT, xv->ndim, xv->dims);
}

int fl_ox_fold(struct fl_ox *ox, const Onnx__NodeProto *n, bool *done)
{
    const char *t = n->op_type;
    *done = true;
    if (strcmp(t, "Constant") == 0)
        return s_constant(ox, n);
    int x = fl_ox_in(ox, n, 0);
    if (strcmp(t, "Shape") == 0 && x >= 0)
        return s_shape(ox, n, x);
    static const char *const foldable[] = {
        "Identity",        "Dropout", "Cast",   "Unsqueeze", "Squeeze", "Reshape", "Flatten",
        "Gather",          "Slice",   "Concat", "Add",       "Sub",     "Mul",     "Div",
        "ConstantOfShape", "Range"};
    bool known = false, all = n->n_input > 0;
    for (size_t i = 0; i < sizeof foldable / sizeof *foldable; i++)
        known |= strcmp(t, foldable[i]) == 0;
    for (size_t k = 0; k < n->n_input; k++)
        all &= !*n->input[k] || fl_ox_is_const(ox, fl_ox_in(ox, n, (int)k));
    if (!known || !all || x < 0) {
        *done = false;
        return 0;
    }
    const struct fl_ox_val *xv = &ox->vals[x];
    if (strcmp(t, "Identity") == 0 || strcmp(t, "Dropout") == 0)
        return s_reshaped(ox, n, x, xv->kind, xv->ndim, xv->dims);
    if (strcmp(t, "Cast") == 0)
        return s_cast(ox, n, x);
    if (strcmp(t, "Unsqueeze") == 0 || strcmp(t, "Squeeze") == 0)
        return s_squeeze(ox, n, x, t[0] == 'U');
    if (strcmp(t, "Reshape") == 0)
        return s_const_reshape(ox, n, x);
    if (strcmp(t, "Flatten") == 0) {
        int64_t ax = fl_ox_attr_i(n, "axis", 1), d2[2] = {1, 1};
        ax = ax < 0 ? ax + xv->ndim : ax;
        for (int d = 0; d < xv->ndim; d++)
            d2[d >= ax] *= xv->dims[d];
        return s_reshaped(ox, n, x, xv->kind, 2, d2);
    }
    if (strcmp(t, "Gather") == 0 && fl_ox_in(ox, n, 1) >= 0)
        return s_gather(ox, n, x, fl_ox_in(ox, n, 1));
    if (strcmp(t, "Slice") == 0)
        return s_slice(ox, n, x);
    if (strcmp(t, "Concat") == 0)
        return s_concat(ox, n);
    if (strcmp(t, "ConstantOfShape") == 0)
        return s_const_of_shape(ox, n);
    if (strcmp(t, "Range") == 0 && n->n_input == 3)
        return s_range(ox, n);
    if (t[0] != 'G' && t[0] != 'R' && fl_ox_in(ox, n, 1) >= 0)
        return s_arith(ox, n, x, fl_ox_in(ox, n, 1));
    return fl_ox_fail(ox, FL_EFORMAT, "missing inputs");
}
