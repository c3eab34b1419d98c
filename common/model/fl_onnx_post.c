/* fl_onnx_post: rewrites on the translated nodes. A frozen BatchNormalization whose input is
 * a Conv's output read by nothing else is folded into that conv (weights and bias rescaled in
 * the importer's own copies); a MatMul whose output only an Add of a constant bias reads
 * becomes one Gemm; nodes the output does not depend on are dropped. */
#include "fl_onnx_impl.h"

#include "fl_error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The live node writing value v, or NULL. */
static struct fl_ox_node *s_producer(struct fl_ox *ox, int v)
{
    for (int i = 0; i < ox->nnodes; i++)
        if (!ox->nodes[i].dead && ox->nodes[i].out == v)
            return &ox->nodes[i];
    return NULL;
}

/* The one live node reading value v, or NULL. */
static struct fl_ox_node *s_reader(struct fl_ox *ox, int v)
{
    for (int i = 0; i < ox->nnodes; i++)
        for (int k = 0; !ox->nodes[i].dead && k < ox->nodes[i].nin; k++)
            if (ox->nodes[i].in[k] == v)
                return &ox->nodes[i];
    return NULL;
}

static int s_fold_bn(struct fl_ox *ox, int bi)
{
    struct fl_ox_node *bn = &ox->nodes[bi];
    int x = bn->in[0];
    struct fl_ox_node *cv = s_producer(ox, x);
    if (!cv || cv->op != FL_OP_CONV || ox->vals[x].readers != 1 || x == ox->output ||
        ox->vals[cv->in[1]].readers != 1 || (cv->nin == 3 && ox->vals[cv->in[2]].readers != 1))
        return 0; /* kept as a BatchNormalization node */
    int ci = (int)(cv - ox->nodes);
    if (cv->nin == 2) {
        char base[FL_GRAPH_NAME_MAX * 4 + 8];
        snprintf(base, sizeof base, "%.250s.bias", cv->name);
        int64_t o = ox->vals[cv->in[1]].dims[0];
        int b, rc = fl_ox_new_const(ox, base, FL_OX_FLOAT, 1, &o, &b);
        if (rc)
            return rc;
        cv = &ox->nodes[ci];
        cv->in[2] = b;
        cv->nin = 3;
        ox->vals[b].readers = 1;
    }
    bn = &ox->nodes[bi];
    struct fl_ox_val *w = &ox->vals[cv->in[1]], *b = &ox->vals[cv->in[2]];
    const float *sc = ox->vals[bn->in[1]].f, *bb = ox->vals[bn->in[2]].f;
    const float *mean = ox->vals[bn->in[3]].f, *var = ox->vals[bn->in[4]].f;
    size_t out = (size_t)w->dims[0], per = w->numel / out;
    for (size_t c = 0; c < out; c++) {
        double s = sc[c] / sqrt((double)var[c] + bn->a.epsilon);
        for (size_t j = 0; j < per; j++)
            w->f[c * per + j] = (float)(w->f[c * per + j] * s);
        b->f[c] = (float)((b->f[c] - mean[c]) * s + bb[c]);
    }
    cv->out = bn->out;
    bn->dead = true;
    return 0;
}

static void s_fold_matmul_add(struct fl_ox *ox, struct fl_ox_node *mm)
{
    int y = mm->out;
    struct fl_ox_node *add = ox->vals[y].readers == 1 && y != ox->output ? s_reader(ox, y) : NULL;
    if (!add || add->op != FL_OP_ADD)
        return;
    int c = add->in[add->in[0] == y ? 1 : 0];
    const struct fl_ox_val *cv = &ox->vals[c];
    size_t m = (size_t)ox->vals[y].dims[1];
    if (c == y || cv->kind != FL_OX_FLOAT || (cv->numel != m && cv->numel != 1) || cv->ndim > 2 ||
        (cv->ndim == 2 && cv->dims[0] != 1))
        return;
    mm->op = FL_OP_GEMM;
    mm->in[2] = c;
    mm->nin = 3;
    mm->a.alpha = mm->a.beta = 1.0f;
    mm->a.trans_b = false;
    mm->out = add->out;
    add->dead = true;
}

/* Drop the nodes the output does not depend on (nodes are in execution order). */
static int s_prune(struct fl_ox *ox)
{
    bool *need = calloc((size_t)ox->nvals + 1, sizeof *need);
    if (!need)
        return fl_fail(FL_ENOMEM, "onnx: out of memory");
    need[ox->output] = true;
    for (int i = ox->nnodes - 1; i >= 0; i--) {
        struct fl_ox_node *nd = &ox->nodes[i];
        if (nd->dead || !need[nd->out]) {
            nd->dead = true;
            continue;
        }
        for (int k = 0; k < nd->nin; k++)
            need[nd->in[k]] = true;
    }
    free(need);
    return 0;
}

int fl_ox_post(struct fl_ox *ox)
{
    for (int i = 0; i < ox->nnodes; i++) {
        if (ox->nodes[i].dead)
            continue;
        if (ox->nodes[i].op == FL_OP_BATCHNORM) {
            int rc = s_fold_bn(ox, i);
            if (rc)
                return rc;
        } else if (ox->nodes[i].op == FL_OP_MATMUL)
            s_fold_matmul_add(ox, &ox->nodes[i]);
    }
    return s_prune(ox);
}
