/* fl_ops_window: the geometry of a windowed op (Conv, MaxPool, AveragePool) on one sample,
 * shared by fl_ops_conv.c, fl_ops_depthwise.c and fl_ops_pool.c, and the depthwise kernels
 * the Conv op hands its depthwise nodes to. Internal to the graph engine. */
#ifndef FL_OPS_WINDOW_H
#define FL_OPS_WINDOW_H

#include "fl_graph_impl.h"

#include <stdbool.h>

/* Geometry of a windowed op on one sample. */
struct fl_wgeom {
    int c, h, w;    /* input channels (per group for conv), height, width */
    int kh, kw;     /* window */
    int sh, sw;     /* stride */
    int pt, pl;     /* padding before (top, left) */
    int dh, dw;     /* dilation */
    int oh, ow;     /* output height, width */
    int groups, mg; /* conv groups, output channels per group */
    bool direct;    /* 1x1, stride 1, no padding: the input is the col matrix */
    bool depthwise; /* one input channel per group: direct loops beat a 1-row GEMM */
};

/* The geometry of node nd (its output shape must be inferred). */
void fl_wgeom_of(const fl_graph_t *g, const struct fl_gnode *nd, struct fl_wgeom *q);
/* Infer a windowed node's CxHxW output (c_out channels, a kh x kw window) from its input and
 * attributes, each checked (fl_ops_window.c); FL_EMISMATCH / FL_EINVAL naming the node. */
int fl_window_infer(fl_graph_t *g, struct fl_gnode *nd, int c_out, int kh, int kw);

/* Depthwise Conv (q->depthwise): per-worker scratch floats it needs, and its forward and
 * backward over samples [b0, b1) as worker t (fl_op_run_fn's contract). */
size_t fl_depthwise_scratch(const struct fl_wgeom *q);
void fl_depthwise_fwd(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q, int t,
                      size_t b0, size_t b1);
/* Whether a depthwise Conv's forward pass is worth sharing among workers at the current batch,
 * and part `part` of nparts of it over the whole batch (fl_op_part_fn's contract). */
bool fl_depthwise_splits(const fl_graph_t *g, const struct fl_wgeom *q);
void fl_depthwise_fwd_part(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q,
                           int part, int nparts);
void fl_depthwise_bwd(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q, int t,
                      size_t b0, size_t b1);

#endif
