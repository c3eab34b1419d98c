/* fl_graph: a network as a directed acyclic graph of operations on named values (ONNX's model
 * of a CNN: residual connections and squeeze-and-excitation blocks read one value from several
 * nodes). Built through this API (one input, parameters, nodes, the output), then planned once
 * (validation, shape inference, every buffer allocated), then run forward and backward on
 * batches of up to max_batch samples with no allocation.
 *
 * Layout. Activations are NCHW, row-major: [batch, channels, height, width] (a value of fewer
 * axes, e.g. after Flatten, is [batch, features]). NCHW because it is what ONNX files hold, so
 * weights and Flatten/Reshape/Concat keep ONNX's meaning with no permutation on import; a
 * convolution is one GEMM W [out/g, in/g*kh*kw] x col [in/g*kh*kw, n*oh*ow] per chunk of
 * samples with the weight as stored (a 1x1 convolution needs no im2col: each activation is
 * already an [in, h*w] block); per-channel work (BatchNorm, SE scaling, depthwise convolution,
 * which runs as direct loops) reads contiguous planes. Parameters are row-major in ONNX's shapes:
 *   Conv weight  [out, in/group, kh, kw], bias [out]
 *   Gemm         Y [n, out] = alpha * X [n, in] op(W) + beta * C; W [out, in] when trans_b
 *                (ONNX's usual form), else [in, out]; C [out] (or scalar)
 *   MatMul       Y [n, out] = X [n, in] W [in, out]
 *   BatchNorm    scale, bias, mean, var: [channels] each
 *
 * Gradients. Parameters are frozen unless added trainable; only trainable ones get gradient
 * buffers, and only values downstream of one (or of the input, when asked) get a gradient.
 * Values are all kept after a forward pass (the backward pass reads them). LoRA's merged weight
 * is internal: it is not listed among the parameters.
 *
 * Fusion. A Relu or Clip that alone reads a Conv's output is applied by the conv's kernel as it
 * writes that output (no pass of its own): the conv's output value then holds the activated
 * values, the same as the activation's output.
 *
 * Threads: each node splits the batch over the pool given to fl_graph_new (borrowed, must
 * outlive the graph; NULL = the caller's thread); a batch smaller than the pool (a batch of
 * one) is split within each large conv instead, by output positions or channels, which gives
 * the same values as one thread. A graph is not thread-safe. */
#ifndef FL_GRAPH_H
#define FL_GRAPH_H

#include "fl_pool.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FL_GRAPH_MAX_DIMS   4  /* axes of a parameter, or of a value with its batch axis */
#define FL_GRAPH_MAX_INPUTS 8  /* inputs of one node (Concat) */
#define FL_GRAPH_NAME_MAX   64 /* names of values and nodes, NUL included */

typedef struct fl_graph fl_graph_t;

enum fl_op {
    FL_OP_CONV = 1,      /* X, W [, B]: stride, pads, dilations, group */
    FL_OP_GEMM,          /* X, W [, C]: alpha, beta, trans_b */
    FL_OP_MATMUL,        /* X, W */
    FL_OP_RELU,          /* X */
    FL_OP_CLIP,          /* X: min, max (Relu6 is Clip 0..6) */
    FL_OP_SIGMOID,       /* X */
    FL_OP_HARDSIGMOID,   /* X: max(0, min(1, alpha x + beta)) */
    FL_OP_HARDSWISH,     /* X: x * hardsigmoid(x) with alpha 1/6, beta 1/2 */
    FL_OP_ADD,           /* A, B broadcast (ONNX rules) */
    FL_OP_SUB,           /* A, B */
    FL_OP_MUL,           /* A, B */
    FL_OP_DIV,           /* A, B */
    FL_OP_MAXPOOL,       /* X: kernel, stride, pads */
    FL_OP_AVGPOOL,       /* X: kernel, stride, pads, count_include_pad */
    FL_OP_GLOBALAVGPOOL, /* X [c,h,w] -> [c,1,1] */
    FL_OP_FLATTEN,       /* X -> [batch, rest] (axis 1 only) */
    FL_OP_RESHAPE,       /* X: shape (ONNX's, batch first; 0 copies an axis, -1 infers one) */
    FL_OP_CONCAT,        /* X1..Xk along axis (batch is axis 0) */
    FL_OP_IDENTITY,      /* X */
    FL_OP_DROPOUT,       /* X: identity (inference form, also when training) */
    FL_OP_BATCHNORM,     /* X, scale, bias, mean, var: frozen statistics, epsilon */
    FL_OP_COUNT_         /* number of ops + 1 */
};

/* Attributes of a node; start from fl_op_attrs_default() and set what the op uses. */
struct fl_op_attrs {
    int kernel[2];                    /* pool window [kh, kw]; conv takes it from W */
    int stride[2];                    /* [sh, sw] */
    int pads[4];                      /* [top, left, bottom, right] (ONNX's begin..., end...) */
    int dilation[2];                  /* conv [dh, dw] */
    int group;                        /* conv groups (= channels: depthwise) */
    bool count_include_pad;           /* avgpool: padding counts in the mean */
    float alpha, beta;                /* gemm scales; hardsigmoid slope and offset */
    bool trans_b;                     /* gemm: W is [out, in] */
    float min, max;                   /* clip bounds */
    float epsilon;                    /* batchnorm */
    int axis;                         /* concat, flatten */
    int nshape;                       /* reshape: entries of shape */
    int64_t shape[FL_GRAPH_MAX_DIMS]; /* reshape target, batch first */
};

/* ONNX's defaults: stride 1, no padding, dilation 1, group 1, alpha 1, beta 1 (hardsigmoid
 * callers set 0.2 / 0.5), trans_b false, clip unbounded, epsilon 1e-5, axis 1. */
struct fl_op_attrs fl_op_attrs_default(void);
/* ONNX name of an op ("Conv", "BatchNormalization", ...), "?" for none. */
const char *fl_op_name(enum fl_op op);

/* An empty graph running on pool (borrowed, may be NULL). NULL when out of memory. */
fl_graph_t *fl_graph_new(fl_pool_t *pool);
void fl_graph_destroy(fl_graph_t **self_p);
/* Let the convolutions use the engine's own AVX-512 or AVX2 kernels where the CPU has them
 * (the default), or keep them on the portable path (OpenBLAS) when allow is false: for
 * comparisons and tests. Both compute the same values up to float rounding. */
void fl_graph_use_simd(fl_graph_t *g, bool allow);
/* Let an inference pass run its first nodes (as long as the weights they read fit the
 * second-level cache) sample by sample, each worker taking its samples through all of them
 * before the rest run node by node (the default), or every node over the whole batch when allow
 * is false. Only with the engine's own kernels (fl_graph_use_simd), whose values do not depend
 * on the samples computed together: both give the same bits. */
void fl_graph_use_depth_first(fl_graph_t *g, bool allow);

/* The graph's input: ndim per-sample axes (1 to 3, e.g. {C, H, W}). One input per graph. */
int fl_graph_add_input(fl_graph_t *g, const char *name, int ndim, const int64_t *dims);
/* A parameter of ndim axes (1 to 4) whose values are copied from data (NULL: zeros). Only a
 * trainable parameter gets a gradient. */
int fl_graph_add_param(fl_graph_t *g, const char *name, int ndim, const int64_t *dims,
                       const float *data, bool trainable);
/* A node `name` computing op on the named inputs into a new value `output`; attrs may be
 * NULL (defaults). Inputs may be defined later: fl_graph_plan resolves and orders them. */
int fl_graph_add_node(fl_graph_t *g, const char *name, enum fl_op op, const char *const *inputs,
                      int ninputs, const char *output, const struct fl_op_attrs *attrs);
/* Make a parameter trainable or frozen (BitFit: the biases alone; a new head), before planning. */
int fl_graph_set_trainable(fl_graph_t *g, const char *name, bool trainable);
/* The value the forward pass produces (logits for training). */
int fl_graph_set_output(fl_graph_t *g, const char *name);
/* Fold the BatchNormalization node bn_node into the Conv that produces its input (whose output
 * nothing else reads, and whose weight and bias no other node reads): the conv's weight and
 * bias are rescaled (a zero bias is added when it has none) and bn_node becomes an Identity.
 * Before fl_graph_plan. */
int fl_graph_fold_batchnorm(fl_graph_t *g, const char *bn_node);

/* LoRA on the weight W of Conv, Gemm or MatMul node `node`, read as a matrix [rows, cols]
 * (rows its first axis, cols the product of the others: [out, in/group*kh*kw] for a Conv,
 * [out, in] for a Gemm with trans_b): the node computes with W + (alpha/rank) B A, where
 * parameters "<node>.lora_A" [rank, cols] (normal, std 1/sqrt(cols), from seed; trainable
 * when train_a, else frozen as in FFA-LoRA) and "<node>.lora_B" [rows, rank] (zeros,
 * trainable) are added. W stays as it is (frozen unless added trainable). Before planning. */
int fl_graph_add_lora(fl_graph_t *g, const char *node, int rank, float alpha, uint64_t seed,
                      bool train_a);
/* LoRA's A as fl_graph_add_lora initialises it from seed: rank x cols values, normal with
 * standard deviation 1/sqrt(cols) (FFA-LoRA's frozen A is rebuilt from this, never stored). */
void fl_graph_lora_init_a(float *a, int rank, int cols, uint64_t seed);

/* Validate (names resolve, no cycle, shapes fit), order the nodes, and allocate every buffer
 * for batches of up to max_batch. input_grad: also compute the gradient of the input. Errors
 * name the node and the shapes. The graph cannot be changed afterwards. */
int fl_graph_plan(fl_graph_t *g, int max_batch, bool input_grad);

/* Run the forward pass on n samples x [n, input shape]. */
int fl_graph_forward(fl_graph_t *g, const float *x, int n);
/* The output of the last forward pass, [n, output shape], and its per-sample size. */
const float *fl_graph_output(const fl_graph_t *g, size_t *per_sample);
/* The value called name after a forward pass (NULL when unknown) and its per-sample size. In a
 * graph that trains nothing (no trainable parameter, no input gradient), later values reuse the
 * memory of those no node reads any more: NULL for those too (the output and what the last
 * nodes read stay). */
const float *fl_graph_value(const fl_graph_t *g, const char *name, size_t *per_sample);
/* Per-sample shape of a value after planning; returns its ndim or -1 when unknown. */
int fl_graph_value_shape(const fl_graph_t *g, const char *name, int64_t dims[FL_GRAPH_MAX_DIMS]);
/* Backward pass from dout [n, output shape] (the gradient of the loss with respect to the
 * output of the last forward pass): fills the gradients of the trainable parameters (and the
 * input's when planned with input_grad). */
int fl_graph_backward(fl_graph_t *g, const float *dout);
/* Gradient of the input of the last backward pass, or NULL when not planned for it. */
const float *fl_graph_input_grad(const fl_graph_t *g);
/* Forward, mean softmax cross-entropy of the output logits [n, classes] against labels, and
 * backward: returns 0 with the loss (and the argmax hits when correct is not NULL). */
int fl_graph_train_step(fl_graph_t *g, const float *x, const int32_t *labels, int n, double *loss,
                        int *correct);

/* A parameter's values (live: writing changes the graph) and its number of elements; NULL
 * when there is no such parameter. The graph keeps copies made from frozen parameters between
 * forward passes (a conv's live columns): this call drops them, so write through the pointer
 * before the next forward pass, or call fl_graph_touch after writing. */
float *fl_graph_param(fl_graph_t *g, const char *name, size_t *numel);

/* Parameters may have been written (through a pointer kept from fl_graph_param): the copies
 * made from them are made again at the next forward pass. */
void fl_graph_touch(fl_graph_t *g);
/* A trainable parameter's gradient after a backward pass (same size); NULL when frozen. */
const float *fl_graph_grad(const fl_graph_t *g, const char *name);
/* Number of parameters and the name of the i-th, in the order they were added. */
int fl_graph_nparams(const fl_graph_t *g);
const char *fl_graph_param_name(const fl_graph_t *g, int i);

/* The frozen prefix of a planned graph (fl_graph_prefix.c): the nodes that depend on no
 * trainable parameter compute the same values for a sample at every step, so what the other
 * nodes read of them (the frontier: one value, or several when a skip connection crosses the
 * cut) can be computed once per sample, packed, kept, and fed back instead of the input. */
typedef struct fl_graph_cut fl_graph_cut_t;

/* The cut of planned graph g (borrowed: it must outlive the cut). Its size is 0 when nothing
 * can be cached: no trainable parameter, or a node that depends on one reads the graph's
 * input. NULL when out of memory (message set). */
fl_graph_cut_t *fl_graph_cut_new(fl_graph_t *g);
void fl_graph_cut_destroy(fl_graph_cut_t **self_p);
/* Floats per sample of a packed frontier (the frontier values, per sample, in the order of
 * their value index); 0 when there is no cut. */
size_t fl_graph_cut_dim(const fl_graph_cut_t *c);
/* Number of frontier values and the name of the i-th (NULL when out of range). */
int fl_graph_cut_nvalues(const fl_graph_cut_t *c);
const char *fl_graph_cut_value(const fl_graph_cut_t *c, int i);
/* Run the frozen nodes on n (1..max_batch) samples x [n, input shape] and pack the frontier
 * into out [n, dim]. */
int fl_graph_cut_forward_prefix(const fl_graph_cut_t *c, const float *x, int n, float *out);
/* Unpack n frontiers packed [n, dim] and run the other nodes: the output, and a following
 * fl_graph_backward, are those of fl_graph_forward on the samples they were packed from. */
int fl_graph_cut_forward_rest(const fl_graph_cut_t *c, const float *packed, int n);

#endif
