/* fl_ops_window: the geometry of the windowed ops (Conv, MaxPool, AveragePool): the window
 * of a node as the kernels read it (fl_wgeom_of) and the shape inference they share, with its
 * bounds on kernel, stride, dilation and padding. */
#include "fl_ops_window.h"

#include "fl_error.h"

#include <string.h>

void fl_wgeom_of(const fl_graph_t *g, const struct fl_gnode *nd, struct fl_wgeom *q)
{
    const struct fl_gvalue *x = &g->values[nd->in[0]], *y = &g->values[nd->out];
    memset(q, 0, sizeof *q);
    q->groups = nd->op == FL_OP_CONV ? nd->a.group : 1;
    q->c = (int)x->dims[0] / q->groups;
    q->h = (int)x->dims[1], q->w = (int)x->dims[2];
    if (nd->op == FL_OP_CONV) {
        const struct fl_gvalue *wt = &g->values[nd->in[1]];
        q->kh = (int)wt->dims[2], q->kw = (int)wt->dims[3];
        q->mg = (int)wt->dims[0] / q->groups;
    } else {
        q->kh = nd->a.kernel[0], q->kw = nd->a.kernel[1];
    }
    q->sh = nd->a.stride[0], q->sw = nd->a.stride[1];
    q->pt = nd->a.pads[0], q->pl = nd->a.pads[1];
    q->dh = nd->op == FL_OP_CONV ? nd->a.dilation[0] : 1;
    q->dw = nd->op == FL_OP_CONV ? nd->a.dilation[1] : 1;
    q->oh = y->ndim == 3 ? (int)y->dims[1] : 0;
    q->ow = y->ndim == 3 ? (int)y->dims[2] : 0;
    q->depthwise = nd->op == FL_OP_CONV && q->c == 1 && q->groups > 1;
    q->direct = q->kh == 1 && q->kw == 1 && q->sh == 1 && q->sw == 1 && q->pt == 0 && q->pl == 0 &&
                nd->a.pads[2] == 0 && nd->a.pads[3] == 0;
}

/* Output size along one axis, or 0 when the window does not fit (64-bit: the kernel comes
 * from a weight's shape, which a file sets). */
static int s_out_size(int64_t in, int64_t pad0, int64_t pad1, int64_t k, int64_t stride,
                      int64_t dil)
{
    int64_t span = dil * (k - 1) + 1, len = in + pad0 + pad1;
    return len < span ? 0 : (int)((len - span) / stride + 1);
}

#define S_GEOM_MAX 4096 /* kernel, stride, dilation and padding along an axis */

int fl_window_infer(fl_graph_t *g, struct fl_gnode *nd, int c_out, int kh, int kw)
{
    struct fl_gvalue *x = &g->values[nd->in[0]], *y = &g->values[nd->out];
    char xs[64];
    const struct fl_op_attrs *a = &nd->a;
    if (x->ndim != 3)
        return fl_fail(FL_EMISMATCH, "graph: node '%s' (%s) needs a CxHxW input, '%s' is %s",
                       nd->name, fl_op_name(nd->op), x->name, fl_gv_shape_str(x, xs, sizeof xs));
    bool conv = nd->op == FL_OP_CONV;
    int dh = conv ? a->dilation[0] : 1, dw = conv ? a->dilation[1] : 1;
    if (a->stride[0] < 1 || a->stride[1] < 1 || dh < 1 || dw < 1 || kh < 1 || kw < 1 ||
        a->stride[0] > S_GEOM_MAX || a->stride[1] > S_GEOM_MAX || dh > S_GEOM_MAX ||
        dw > S_GEOM_MAX || kh > S_GEOM_MAX || kw > S_GEOM_MAX)
        return fl_fail(FL_EINVAL,
                       "graph: node '%s' has kernel %dx%d, stride %dx%d, dilation %dx%d "
                       "(each 1 to %d)",
                       nd->name, kh, kw, a->stride[0], a->stride[1], dh, dw, S_GEOM_MAX);
    for (int i = 0; i < 4; i++)
        if (a->pads[i] < 0 || a->pads[i] > S_GEOM_MAX || (!conv && a->pads[i] >= (i % 2 ? kw : kh)))
            return fl_fail(FL_EINVAL, "graph: node '%s' has padding %d on side %d", nd->name,
                           a->pads[i], i);
    int oh = s_out_size((int)x->dims[1], a->pads[0], a->pads[2], kh, a->stride[0], dh);
    int ow = s_out_size((int)x->dims[2], a->pads[1], a->pads[3], kw, a->stride[1], dw);
    if (oh < 1 || ow < 1)
        return fl_fail(FL_EMISMATCH, "graph: node '%s': a %dx%d window does not fit input %s",
                       nd->name, kh, kw, fl_gv_shape_str(x, xs, sizeof xs));
    int64_t dims[3] = {c_out, oh, ow};
    y->ndim = 3;
    memcpy(y->dims, dims, sizeof dims);
    y->numel = (size_t)c_out * (size_t)oh * (size_t)ow;
    return 0;
}

int fl_pool_infer(fl_graph_t *g, struct fl_gnode *nd)
{
    return fl_window_infer(g, nd, (int)g->values[nd->in[0]].dims[0], nd->a.kernel[0],
                           nd->a.kernel[1]);
}
