/* fl_graph_fuse: what a graph's convs do for the nodes after them, decided when the graph is
 * planned (fl_graph_fuse, below). */
#include "fl_graph_impl.h"

#include "fl_convk.h"
#include "fl_error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The node that alone reads value v (none: -1, and when the graph's output is v). */
static int s_sole_reader(const fl_graph_t *g, int v)
{
    int reader = -1, reads = 0;
    for (int r = 0; r < g->nnodes; r++)
        for (int i = 0; i < g->nodes[r].nin; i++)
            if (g->nodes[r].in[i] == v)
                reads++, reader = r;
    return reads == 1 && v != g->output ? reader : -1;
}

/* Fuse activation node act (a Relu, or a Clip with lo < hi) into conv cv, the data of act's
 * output being value v's (the conv's). False when act is neither. */
static bool s_fuse_act(fl_graph_t *g, struct fl_gnode *cv, struct fl_gnode *act, int v)
{
    bool relu = act->op == FL_OP_RELU;
    if (!relu && !(act->op == FL_OP_CLIP && act->a.min < act->a.max))
        return false;
    cv->act = act->op;
    cv->act_min = relu ? 0.0f : act->a.min;
    cv->act_max = relu ? INFINITY : act->a.max;
    act->fused = true;
    g->values[act->out].alias = v;
    return true;
}

/* Can Add node add, the sole reader of conv cv's output, be fused into cv (whose position in
 * the order is at[cv]): the other operand a batched value of the same shape, computed before
 * the conv; a conv of one group without LoRA (whose kernels all take a residual: not the
 * AVX-512 ones, nor depthwise, nor LoRA's raw product). */
static bool s_res_fits(const fl_graph_t *g, const struct fl_gnode *cv, const struct fl_gnode *add,
                       const int *at)
{
    if (add->op != FL_OP_ADD || add->nin != 2)
        return false;
    int v = cv->out, r = add->in[0] == v ? add->in[1] : add->in[0];
    const struct fl_gvalue *x = &g->values[r], *y = &g->values[v];
    if (r == v || x->kind == FL_GV_PARAM || x->ndim != y->ndim ||
        memcmp(x->dims, y->dims, (size_t)y->ndim * sizeof y->dims[0]) != 0)
        return false;
    if (x->kind == FL_GV_ACT && at[x->producer] > at[cv - g->nodes])
        return false;
    return cv->a.group <= 1 && !fl_lora_of(g, cv) && !fl_convk_wide();
}

/* Fuse into each Conv what alone reads its output, so that the conv's kernel does it as it
 * writes the output (no pass of its own over memory), the fused node's output sharing the
 * conv's data:
 * - a Relu or Clip: the kernel clamps. Its backward pass still runs: Relu's reads its output,
 *   Clip's its input (the clamped values), and the clamped values say where the gradient
 *   passes as the raw ones did (lo < y < hi exactly when lo < x < hi);
 * - a residual Add (s_res_fits), and then a Relu or Clip that alone reads the sum: the kernel
 *   adds the other operand after the bias, then clamps: the same sums in the same order as the
 *   conv and the Add apart. The Add's backward pass reads no data; the conv's never reads its
 *   output. (mobilenet_v2's and resnet18's blocks end so.) */
int fl_graph_fuse(fl_graph_t *g)
{
    int *at = malloc((size_t)g->nnodes * sizeof *at);
    if (!at)
        return FL_ENOMEM;
    for (int k = 0; k < g->nnodes; k++)
        at[g->order[k]] = k;
    for (int n = 0; n < g->nnodes; n++) {
        struct fl_gnode *cv = &g->nodes[n];
        int v = cv->out, reader = s_sole_reader(g, v);
        if (cv->op != FL_OP_CONV || reader < 0)
            continue;
        struct fl_gnode *nx = &g->nodes[reader];
        if (s_fuse_act(g, cv, nx, v) || nx->fused || !s_res_fits(g, cv, nx, at))
            continue;
        cv->res = nx->in[0] == v ? nx->in[1] : nx->in[0];
        nx->fused = true;
        g->values[nx->out].alias = v;
        int after = s_sole_reader(g, nx->out);
        if (after >= 0)
            s_fuse_act(g, cv, &g->nodes[after], v);
    }
    free(at);
    return 0;
}
