/* fl_graphadapt: what an adapter can do to a graph network (fl_graphdef): find its head (the
 * Gemm or MatMul that computes the logits, which every method replaces), describe the nodes
 * LoRA and BitFit can target (weight shape, parameters, depthwise or not), and choose each
 * method's default targets. fl_model builds graph adapters with it; `fedtl inspect` lists it.
 *
 * Default targets (no tensors needed, so that a method resolves from the architecture alone):
 *   lora, ffa-lora  the last two Conv / Gemm / MatMul nodes before the head with group 1 (a
 *                   grouped or depthwise convolution is never a default LoRA target)
 *   bitfit          every Conv / Gemm / MatMul node from the last spatial downsampling (a
 *                   Conv, MaxPool or AveragePool with a stride above 1) on, head excluded; the
 *                   last such node when nothing follows the last downsampling
 *   head            none
 * Adapter tensors of a node are named "<node>.lora_A", "<node>.lora_B", "<node>.bias", the node
 * name cut to its first FL_GRAPHADAPT_NODE_CHARS bytes (as fl_graph_add_lora names them). */
#ifndef FL_GRAPHADAPT_H
#define FL_GRAPHADAPT_H

#include "fl_arch.h"
#include "fl_graphdef.h"
#include "fl_tensor.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FL_GRAPHADAPT_NODE_CHARS   50 /* bytes of a node name kept in its tensors' names */
#define FL_GRAPHADAPT_DEFAULT_LORA 2  /* Conv / Gemm nodes LoRA adapts by default */

/* A node an adapter may target, as the base's tensors shape it. */
struct fl_gadapt_node {
    int node;                           /* index in the description */
    const char *weight;                 /* name of its weight tensor (the description's) */
    const char *bias;                   /* name of its bias tensor, NULL when it has none */
    int wndim;                          /* axes of the weight */
    int64_t wshape[FL_TENSOR_MAX_DIMS]; /* the weight's shape, as stored */
    int64_t rows, cols;                 /* the weight read as a matrix [outputs, inputs] */
    size_t params;                      /* values of the weight and the bias */
    bool depthwise; /* a convolution with one input channel per group, group > 1 */
    bool lora;      /* LoRA applies (not depthwise) */
};

/* Index of the head node: the Gemm or MatMul whose output reaches the graph's output through
 * Identity, Dropout and Flatten nodes only; -1 when there is none. */
int fl_graphadapt_head(const struct fl_graphdef *d);
/* Is node i a Conv, Gemm or MatMul (an op LoRA and BitFit know)? */
bool fl_graphadapt_is_linear(const struct fl_graphdef *d, int i);
/* Describe node i (a Conv, Gemm or MatMul) from the n tensors: 0, or FL_EINVAL with a message
 * naming the node when it is another op or its weight is missing or misshapen. */
int fl_graphadapt_node(const struct fl_graphdef *d, const struct fl_tensor *t, size_t n, int i,
                       struct fl_gadapt_node *out);
/* The default targets of method kind (see above) into targets; returns how many (<= max). */
int fl_graphadapt_default_targets(const struct fl_graphdef *d, enum fl_adapter_kind kind,
                                  char (*targets)[FL_TARGET_NAME_MAX], int max);
/* The seed of node's LoRA A under an adapter seeded with seed: FFA-LoRA's frozen A is a
 * function of (adapter seed, node name) only. */
uint64_t fl_graphadapt_node_seed(uint64_t seed, const char *node);
/* The adapter's tensors as a merge or an export needs them: ad[0..nad) (borrowed) plus, for
 * FFA-LoRA, each target's frozen "<node>.lora_A", rebuilt from the seed as training built it
 * (owned). *out has *nout entries; free each with fl_tensor_free, then the array. */
int fl_graphadapt_complete(const struct fl_graphdef *d, const struct fl_tensor *base, size_t nbase,
                           const struct fl_adapter_meta *meta, const struct fl_tensor *ad,
                           size_t nad, struct fl_tensor **out, size_t *nout);
/* "<node>.<what>" into out, the node's name cut to FL_GRAPHADAPT_NODE_CHARS bytes. */
void fl_graphadapt_tensor_name(char out[FL_NAME_MAX], const char *node, const char *what);

/* The fl_arch of a graph description: name, input geometry ({C, H, W}, {C, H} or {features}),
 * num_classes and graph = d (borrowed). 0, or FL_EINVAL with a message. */
int fl_arch_from_graph(const struct fl_graphdef *d, const char *name, int num_classes,
                       struct fl_arch *out);

#endif
