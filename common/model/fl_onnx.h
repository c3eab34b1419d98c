/* fl_onnx: the ONNX importer. Reads a model as torch.onnx.export, Paddle2ONNX and tf2onnx write
 * it (opsets 9 to 17; weights as initializers or Constant nodes, in raw_data or the typed
 * fields, float32, float16 or float64, inline or in a side file) and turns it into the plain
 * graph description the engine builds from (fl_graphdef.h) plus the float32 parameters it
 * reads. Shape computations in front of a Reshape are folded to constants, frozen
 * BatchNormalization is folded into the conv before it (so LoRA on that conv adapts the fused
 * weight, as on a file exported with constant folding), a final Softmax is dropped (the loss
 * applies its own), auto_pad is resolved into explicit pads, a MatMul + Add becomes a Gemm and
 * nodes the output does not need are left out. Anything the engine cannot run is refused with
 * the node's name, its op type and the model's opset.
 *
 * Names: nodes keep their ONNX names when they fit FL_GRAPH_NAME_MAX (users pick LoRA targets
 * by them), unnamed nodes are called "<OpType>_<index>", and names longer than 50 bytes (nodes
 * and values) become their first 33 bytes, '~' and 16 hex digits of a hash of the whole name
 * (50 bytes: an adapter's tensors of a node are "<its first 50 bytes>.lora_A", so two longer
 * names sharing those bytes would clash). */
#ifndef FL_ONNX_H
#define FL_ONNX_H

#include "fl_graphdef.h"
#include "fl_tensor.h"

#include <stddef.h>
#include <stdint.h>

#define FL_ONNX_MAX_FILE   ((size_t)2 << 30)  /* bytes of a model file (protobuf's limit) */
#define FL_ONNX_MAX_NUMEL  ((int64_t)1 << 31) /* elements of one tensor */
#define FL_ONNX_MAX_NODES  100000             /* nodes of an ONNX graph */
#define FL_ONNX_MAX_FOLDED ((int64_t)1 << 24) /* elements of a constant computed at import */
#define FL_ONNX_MAX_AXIS   ((int64_t)1 << 20) /* one axis of the input */
#define FL_ONNX_OPSET_MIN  9                  /* opsets of the default domain read */
#define FL_ONNX_OPSET_MAX  17

struct fl_onnx_opts {
    int in_ndim;        /* per-sample input axes given (0: take the shape from the file) */
    int64_t in_dims[3]; /* per-sample input shape, e.g. {3, 48, 192}: fixes dynamic axes */
};

/* Import the ONNX model at path: *def gets the graph (nodes in execution order) and *params
 * the *nparams float32 tensors its nodes read (owned; free with fl_onnx_free_params). External
 * data is read from the model's folder, never from outside it. opts may be NULL. Returns 0
 * or an FL_E* code with a message naming the file and what is wrong (on error def and params
 * are left empty). Building the graph with fl_graph_from_def(def, *params, *nparams, pool)
 * and planning it gives the model's logits. */
int fl_onnx_import(const char *path, const struct fl_onnx_opts *opts, struct fl_graphdef *def,
                   struct fl_tensor **params, size_t *nparams);
/* The same from the len bytes at buf; origin names the model in messages; dir is the folder
 * external data is read from (NULL: a model with external data is refused). */
int fl_onnx_import_mem(const uint8_t *buf, size_t len, const char *origin, const char *dir,
                       const struct fl_onnx_opts *opts, struct fl_graphdef *def,
                       struct fl_tensor **params, size_t *nparams);
/* Free the n tensors of an import and the array; sets *params = NULL (NULL is fine). */
void fl_onnx_free_params(struct fl_tensor **params, size_t n);

#endif
