/* fl_tensor: the float32 tensor every fedtl module passes around.
 * Dense and row-major: the last axis varies fastest, shape[0] is the outermost.
 * Conventions used everywhere:
 *   activations   [batch, height, width, channels]  (NHWC; dense layers: [batch, features])
 *   dense weight  [out, in]                         (y = x W^T + b)
 *   conv2d weight [out, kh, kw, in]                 (one row = one im2col patch)
 *   (a graph model's tensors keep ONNX's layouts, NCHW: see fl_graph.h)
 *   LoRA A        [rank, in_flat], LoRA B [out, rank], delta W = (alpha/rank) B A */
#ifndef FL_TENSOR_H
#define FL_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FL_TENSOR_MAX_DIMS 4
#define FL_NAME_MAX        64

struct fl_tensor {
    char name[FL_NAME_MAX];            /* e.g. "conv1.weight", "fc1.lora_B" */
    int ndim;                          /* number of axes used in shape */
    int64_t shape[FL_TENSOR_MAX_DIMS]; /* axis sizes, outermost first */
    float *data;                       /* numel floats, 64-byte aligned when owned */
    bool owned;                        /* data is ours to free (else borrowed, e.g. mmap) */
};

/* The tensor called name among t[0..n), or NULL. */
const struct fl_tensor *fl_tensor_find(const struct fl_tensor *t, size_t n, const char *name);

/* Allocate a zeroed tensor. Returns 0 or FL_ENOMEM / FL_EINVAL. */
int fl_tensor_init(struct fl_tensor *t, const char *name, int ndim, const int64_t *shape);
/* Convenience for 1-2 axis tensors (cols <= 0 means a vector of `rows`). */
int fl_tensor_init2(struct fl_tensor *t, const char *name, int64_t rows, int64_t cols);
/* Deep copy of src into dst (dst is overwritten, owned). */
int fl_tensor_copy(struct fl_tensor *dst, const struct fl_tensor *src);
/* Free owned data and reset; safe on a zeroed or already-freed tensor. */
void fl_tensor_free(struct fl_tensor *t);
/* Number of elements (product of the shape). */
size_t fl_tensor_numel(const struct fl_tensor *t);
/* True when both tensors have the same ndim and shape. */
bool fl_tensor_same_shape(const struct fl_tensor *a, const struct fl_tensor *b);
/* Write "d0xd1x..." into buf. */
void fl_tensor_shape_str(const struct fl_tensor *t, char *buf, size_t len);

/* 64-byte aligned zeroed allocation of n floats (NULL on overflow or failure); free with free(). */
float *fl_falloc(size_t n);

#endif
