/* fl_graph_merge: an adapter folded into a graph network's description and parameters, so that
 * the result runs (and exports to ONNX) as one plain network with no adapter left.
 *
 * Naming rules of an adapter on a graph, as fl_graphadapt.h gives them to training (N below is
 * the node's name cut to FL_GRAPHADAPT_NODE_CHARS bytes):
 *   LoRA on target node N (Conv, Gemm or MatMul): "N.lora_A" [rank, cols] and "N.lora_B"
 *     [rows, rank], with N's weight W read as a matrix [rows, cols] (rows its first axis, cols
 *     the product of the others, as fl_graph_add_lora does). Merged: W' = W + (alpha/rank) B A.
 *   BitFit on target node N: "N.bias" [out] (the node's output channels or features) replaces the
 * node's bias input (Conv's B, Gemm's C (which Gemm scales by beta, as ONNX does),
 * BatchNormalization's B), adding one if the node had none; a MatMul has no bias input, so an Add
 * node "N/bitfit" after it adds "N.bias". The new head: the head is fl_graphadapt_head's (the Gemm
 * or MatMul whose output reaches the graph's output through Identity, Dropout and Flatten only;
 * the importer makes a MatMul + Add of a bias one Gemm). It reads "head.weight" [classes, in] and
 * "head.bias" [classes] from the adapter instead of its base weights: in the merged graph it is a
 * Gemm (same name, input and output) computing X head.weight^T + head.bias (alpha 1, beta 1,
 * transB 1).
 * Every adapter tensor must be used by one of these rules. */
#ifndef FL_GRAPH_MERGE_H
#define FL_GRAPH_MERGE_H

#include "fl_arch.h"
#include "fl_graphdef.h"
#include "fl_tensor.h"

#include <stddef.h>

/* Merge the adapter (meta: kind, rank, alpha, targets; its tensors adapter[0..nadapter)) into
 * the network def with parameters base[0..nbase): *out_def gets the merged description (to be
 * freed with fl_graphdef_free) and *out a new array of *nout tensors, exactly the parameters
 * out_def's nodes read: merged weights are owned, the others borrow the data of base or
 * adapter (owned = false, so a large base is not copied), which must outlive them; free each
 * with fl_tensor_free, then the array. LoRA is
 * merged for FL_ADAPTER_LORA and FL_ADAPTER_FFA_LORA, biases for FL_ADAPTER_BITFIT, and the
 * head is replaced whenever the adapter holds "head.weight". Inputs are not changed. 0, or
 * FL_EMISMATCH (a tensor missing, of the wrong shape or unused, a name clash), FL_EINVAL (a
 * target that is no node or of the wrong op) or FL_ENOMEM, with a message. */
int fl_graph_merge_adapter(const struct fl_graphdef *def, const struct fl_tensor *base,
                           size_t nbase, const struct fl_adapter_meta *meta,
                           const struct fl_tensor *adapter, size_t nadapter,
                           struct fl_graphdef *out_def, struct fl_tensor **out, size_t *nout);

/* The graph with the base's input normalisation in front, for a runtime that is handed raw
 * records as fedtl is: when params hold "norm.mean" and "norm.std" other than 0 and 1, the
 * nodes "fedtl.norm.sub" (Sub) and "fedtl.norm.div" (Div) compute (x - mean) / std from the
 * input, and every node that read the input reads their result; the two tensors become
 * "fedtl.norm.mean" and "fedtl.norm.std", shaped to broadcast over the input ([C, 1, 1] for one
 * value per channel, the input's shape for one per feature, [1] for one value). *out lists
 * *nout tensors: those two (owned) and the others of params (borrowed: params must outlive
 * it); free each with fl_tensor_free, then the array, and out_def with fl_graphdef_free. */
int fl_graph_prepend_norm(const struct fl_graphdef *def, const struct fl_tensor *params, size_t n,
                          struct fl_graphdef *out_def, struct fl_tensor **out, size_t *nout);

#endif
