/* fl_onnx_export: a graph network (fl_graphdef and its parameters) written as an ONNX file that
 * ONNX Runtime, PyTorch's tools and onnx.checker read: IR version 8, the default domain at
 * opset 13 (14 when a HardSwish needs it), one input [batch, per-sample dims...] with "batch"
 * symbolic, one output [batch, ...], each parameter the nodes read as a float32 initializer
 * (raw_data, little-endian) and each node with its ONNX op_type and attributes. This file and
 * the importer are the only ones that touch onnx.proto's messages.
 *
 * Large models. A protobuf message cannot exceed 2 GB, so when the initializers hold more than
 * external_above bytes (1.5 GiB by default) they go to a side file "<model file name>.data"
 * beside the model, each at a 4096-byte aligned offset (ONNX's external data: location,
 * offset, length), and the .onnx file holds the graph alone; both files are written
 * atomically, the side file first. */
#ifndef FL_ONNX_EXPORT_H
#define FL_ONNX_EXPORT_H

#include "fl_graphdef.h"
#include "fl_tensor.h"

#include <stddef.h>

#define FL_ONNX_IR_VERSION      8
#define FL_ONNX_OPSET           13                   /* 14 when the graph has a HardSwish */
#define FL_ONNX_EXTERNAL_ABOVE  ((size_t)1536 << 20) /* initializer bytes kept inline */
#define FL_ONNX_EXTERNAL_SUFFIX ".data"              /* side file: model path + this */

struct fl_onnx_export_opts {
    const char *producer_name; /* ModelProto.producer_name; NULL: "fedtl" */
    size_t external_above;     /* initializer bytes above which they go to the side file;
                                  0: FL_ONNX_EXTERNAL_ABOVE */
};

/* Write def with params[0..n) (every parameter a node reads must be there; others are left
 * out) to path as ONNX, atomically (temporary file, fsync, rename), mode 0644. Attributes:
 * Conv strides, pads (begin..., end...), dilations, group, kernel_shape; Gemm alpha, beta,
 * transB; Clip's bounds as scalar initializers "<node>.min" / "<node>.max" (opset 13 inputs);
 * HardSigmoid alpha, beta; pools kernel_shape, strides, pads (AveragePool count_include_pad);
 * Flatten and Concat axis; Reshape's shape as an int64 initializer "<node>.shape";
 * BatchNormalization epsilon; Dropout as an inference Dropout. 0, or FL_EINVAL (a malformed
 * description), FL_ENOTFOUND (a parameter missing), FL_EIO (naming the path), FL_ENOMEM. */
int fl_onnx_export(const char *path, const struct fl_graphdef *def, const struct fl_tensor *params,
                   size_t n, const char *producer_name);
/* The same with options (o NULL: defaults). */
int fl_onnx_export_with(const char *path, const struct fl_graphdef *def,
                        const struct fl_tensor *params, size_t n,
                        const struct fl_onnx_export_opts *o);

#endif
