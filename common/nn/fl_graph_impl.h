/* fl_graph_impl: the inside of an fl_graph, shared by the files that implement it:
 * fl_graph.c (building, validation, planning), fl_graph_run.c (passes, loss, accessors) and
 * the op kernels fl_ops_conv.c, fl_ops_elem.c, fl_ops_shape.c. Nothing else includes it. */
#ifndef FL_GRAPH_IMPL_H
#define FL_GRAPH_IMPL_H

#include "fl_graph.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FL_GRAPH_MAX_WORKERS 16 /* workers a batch is split over */

enum fl_gvalue_kind {
    FL_GV_INPUT, /* the graph's input (batched) */
    FL_GV_PARAM, /* a parameter (not batched) */
    FL_GV_ACT    /* a node's output (batched) */
};

/* A named value: per-sample shape for batched values, the whole shape for parameters. */
struct fl_gvalue {
    char name[FL_GRAPH_NAME_MAX];    /* unique among values */
    enum fl_gvalue_kind kind;        /* what it is */
    int ndim;                        /* axes used in dims (0 until inferred) */
    int64_t dims[FL_GRAPH_MAX_DIMS]; /* per-sample (batched) or whole (param) shape */
    size_t numel;                    /* elements per sample (batched) or in all (param) */
    float *data;                     /* [max_batch, numel] or [numel] */
    float *grad;                     /* same size; NULL when no gradient flows here */
    bool trainable;                  /* parameter updated by training */
    bool needs_grad;                 /* a gradient is computed for it */
    bool derived;                    /* parameter computed from others (LoRA's merged weight) */
    int producer;                    /* node index writing it, -1 for input and params */
    int alias;                       /* value whose data this one shares (a fused activation's
                                      * output is its conv's), -1 for none */
    bool in_arena;                   /* its data is in the graph's arena (fl_graph_mem.c) */
    bool shared;                     /* ...where later values reuse it: gone after the pass */
};

/* A node: op, its input and output value indices, attributes and planned geometry. */
struct fl_gnode {
    char name[FL_GRAPH_NAME_MAX];                          /* unique among nodes */
    enum fl_op op;                                         /* what it computes */
    int nin;                                               /* inputs used */
    char in_names[FL_GRAPH_MAX_INPUTS][FL_GRAPH_NAME_MAX]; /* as given, resolved by plan */
    int in[FL_GRAPH_MAX_INPUTS];                           /* value indices */
    int out;                                               /* output value index */
    struct fl_op_attrs a;                                  /* attributes */
    int64_t bstride[2][5];  /* binary ops: operand strides (batch first) */
    int64_t bdims[5];       /* binary ops: output dims (batch first) */
    int32_t *argmax;        /* maxpool: winner per output element */
    size_t scratch;         /* floats of per-worker scratch it needs */
    enum fl_op act;         /* conv: Relu or Clip applied to its output by its own kernel (the
                             * activation node that read it is fused), 0 for none */
    float act_min, act_max; /* the fused Clip's bounds */
    int res;                /* conv: the value its kernel adds to its output before the
                             * activation (the other operand of an Add fused into it), -1 for
                             * none */
    bool fused;             /* an activation or Add its producer applied: forward does nothing,
                             * its output shares the producer's data */
    bool classes_fit;       /* conv: its padding makes tap classes pay (fl_ops_conv_class.c) */
    float *wc;              /* conv with a frozen weight and dropped taps: the kept columns */
    unsigned long wc_gen;   /* param_gen + 1 when wc was made (0: never) */
};

/* LoRA on a node's weight W [rows, cols...] read as a matrix [rows, cols]: the node reads the
 * derived parameter weff = W + scale B A, A [rank, cols], B [rows, rank]. */
struct fl_glora {
    int w, weff, a, b;    /* value indices */
    int rows, cols, rank; /* matrix shapes */
    float scale;          /* alpha / rank */
    bool factored;        /* W frozen, node a plain Conv or a Gemm with W transposed: the
                           * kernel computes W x + s B (A x)
                           * and A's and B's gradients itself; weff is neither merged nor
                           * differentiated (set by fl_lora_settle) */
};

struct fl_graph {
    fl_pool_t *pool;                      /* borrowed compute threads, or NULL */
    int nworkers;                         /* fl_pool_size(pool) */
    bool simd;                            /* convs use fl_convk (AVX-512 or AVX2) where they can */
    bool depth_first;                     /* fl_graph_use_depth_first */
    int nvalues, cap_values;              /* values used / allocated */
    struct fl_gvalue *values;             /* every named value */
    int nnodes, cap_nodes;                /* nodes used / allocated */
    struct fl_gnode *nodes;               /* in the order added */
    int *order;                           /* node indices in execution order (after plan) */
    int input, output;                    /* value indices, -1 until set */
    char output_name[FL_GRAPH_NAME_MAX];  /* as given to fl_graph_set_output */
    bool planned;                         /* fl_graph_plan succeeded */
    int max_batch;                        /* planned batch capacity */
    int batch;                            /* samples of the last forward pass */
    float *scratch[FL_GRAPH_MAX_WORKERS]; /* per-worker scratch (im2col) */
    float **wgrad[FL_GRAPH_MAX_WORKERS];  /* per-worker parameter gradients (worker 0: grad) */
    float *dlogits;                       /* [max_batch, classes] for train_step */
    int nloras;                           /* entries used in loras */
    struct fl_glora *loras;               /* LoRA adapters (fl_graph_lora.c) */
    unsigned long param_gen;              /* bumped when a parameter may have been written */
    unsigned long wc_gen;                 /* param_gen + 1 when the kept conv columns were made */
    float *arena;                         /* activations of a graph that trains nothing */
    int df_bound;                         /* the most nodes a pass may run depth-first */
};

/* Data of sample s of value v (a parameter's data whatever s). */
static inline float *fl_gv_data(const fl_graph_t *g, int v, size_t s)
{
    const struct fl_gvalue *x = &g->values[v];
    return x->kind == FL_GV_PARAM ? x->data : x->data + s * x->numel;
}

/* Where worker t accumulates the gradient of sample s of value v (NULL: none wanted). */
static inline float *fl_gv_grad(const fl_graph_t *g, int v, int t, size_t s)
{
    const struct fl_gvalue *x = &g->values[v];
    if (!x->needs_grad)
        return NULL;
    if (x->kind == FL_GV_PARAM)
        return g->wgrad[t][v];
    return x->grad + s * x->numel;
}

/* An op's shape inference (sets the output value's shape and nd->scratch; returns 0 or an
 * FL_E* code with a message naming the node and shapes), and its kernels over samples
 * [b0, b1) as worker t. Backward kernels accumulate into the input gradients. */
typedef int(fl_op_infer_fn)(fl_graph_t *g, struct fl_gnode *nd);
typedef void(fl_op_run_fn)(fl_graph_t *g, const struct fl_gnode *nd, int t, size_t b0, size_t b1);
/* Part `part` of nparts of an op's forward pass over the whole batch, as worker `part`: the
 * pool's workers share a batch smaller than the pool (a batch of one) by splitting each
 * sample's work. The result does not depend on nparts. */
typedef void(fl_op_part_fn)(fl_graph_t *g, const struct fl_gnode *nd, int part, int nparts);
/* Is node nd's forward pass worth splitting among the workers at the current batch? */
typedef bool(fl_op_splits_fn)(const fl_graph_t *g, const struct fl_gnode *nd);

struct fl_op_info {
    const char *name;        /* ONNX name */
    int min_in, max_in;      /* inputs accepted */
    fl_op_infer_fn *infer;   /* shapes */
    fl_op_run_fn *forward;   /* forward kernel */
    fl_op_run_fn *backward;  /* backward kernel */
    fl_op_part_fn *part;     /* forward split within samples (small batches), or NULL */
    fl_op_splits_fn *splits; /* when part is worth it (with part) */
};

/* What every forward pass does first: LoRA merged into its weights, frozen convs' cached
 * columns made again if a parameter may have changed. 0 or FL_ENOMEM. */
int fl_graph_prepare(fl_graph_t *g);

/* fl_graph_mem.c, at planning: when nothing in the graph carries a gradient, its activations
 * placed in one arena by their lifetimes (values that never meet share memory); sets
 * g->df_bound either way. 0 or FL_ENOMEM. */
int fl_graph_share_memory(fl_graph_t *g);
/* fl_graph_run.c: the most nodes (from the first) a forward pass may ever run depth-first,
 * whatever the batch and the graph's switches: 0 for none. */
int fl_graph_df_bound(const fl_graph_t *g);

/* Run node nd's forward pass on the graph's current batch, over the pool. */
void fl_graph_node_forward(fl_graph_t *g, const struct fl_gnode *nd);

/* A conv's fused activation (nd->act) on n values of its output, in place (inline: kernels
 * compiled for AVX-512 get it vectorised so). */
static inline __attribute__((always_inline)) void fl_act_apply(const struct fl_gnode *nd, float *y,
                                                               size_t n)
{
    float lo = nd->act_min, hi = nd->act_max;
    if (nd->act == FL_OP_RELU)
        for (size_t i = 0; i < n; i++)
            y[i] = y[i] > 0 ? y[i] : 0;
    else if (nd->act == FL_OP_CLIP)
        for (size_t i = 0; i < n; i++) {
            float v = y[i] < lo ? lo : y[i];
            y[i] = v > hi ? hi : v;
        }
}

/* Fuse into each Conv the activation, or residual Add (and activation), that alone reads its
 * output (fl_graph_fuse.c), at planning, after the gradients are marked. 0 or FL_ENOMEM. */
int fl_graph_fuse(fl_graph_t *g);

/* The table of ops, indexed by enum fl_op (NULL for an unknown op). */
const struct fl_op_info *fl_op_info(enum fl_op op);

/* "d0xd1x..." of a value's per-sample shape (or "?" before inference) into buf. */
const char *fl_gv_shape_str(const struct fl_gvalue *v, char *buf, size_t len);

/* LoRA (fl_graph_lora.c): mark the merged weights whose A or B is trainable as needing a
 * gradient; merge every weff before a forward pass; turn weff's gradient into A's and B's
 * (and W's when trainable) after a backward pass. */
void fl_lora_mark(fl_graph_t *g);
/* After gradients are marked: choose the factored LoRAs (fl_glora.factored). */
void fl_lora_settle(fl_graph_t *g);
/* The factored LoRA whose weff node nd reads as its weight, or NULL. */
const struct fl_glora *fl_lora_of(const fl_graph_t *g, const struct fl_gnode *nd);
void fl_lora_merge_all(fl_graph_t *g);
void fl_lora_backward_all(fl_graph_t *g);

/* Kernels (fl_ops_conv.c, fl_ops_elem.c, fl_ops_shape.c). */
fl_op_infer_fn fl_conv_infer, fl_pool_infer, fl_gap_infer, fl_unary_infer, fl_binary_infer,
    fl_bn_infer, fl_gemm_infer, fl_matmul_infer, fl_flatten_infer, fl_reshape_infer,
    fl_concat_infer;
fl_op_part_fn fl_conv_fwd_part;
fl_op_splits_fn fl_conv_splits;
fl_op_run_fn fl_conv_fwd, fl_conv_bwd, fl_maxpool_fwd, fl_maxpool_bwd, fl_avgpool_fwd,
    fl_avgpool_bwd, fl_gap_fwd, fl_gap_bwd, fl_unary_fwd, fl_unary_bwd, fl_binary_fwd,
    fl_binary_bwd, fl_bn_fwd, fl_bn_bwd, fl_gemm_fwd, fl_gemm_bwd, fl_copy_fwd, fl_copy_bwd,
    fl_concat_fwd, fl_concat_bwd;

#endif
