/* fl_onnx_impl: the inside of the ONNX importer, shared by its files: fl_onnx.c (the file, its
 * input, the order of the nodes, the result), fl_onnx_tensor.c (tensors, external data),
 * fl_onnx_ops.c (ops the engine runs, with their shapes), fl_onnx_shape.c (Flatten, Reshape,
 * Squeeze, Concat), fl_onnx_fold.c (constants and shape computations folded at import) and
 * fl_onnx_post.c (BatchNorm folding, MatMul + Add). Nothing else includes it. */
#ifndef FL_ONNX_IMPL_H
#define FL_ONNX_IMPL_H

#include "fl_onnx.h"
#include "onnx.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FL_OX_MAX_DIMS 8                     /* axes of a value the importer tracks */
#define FL_OX_BATCH    (-(INT64_C(1) << 62)) /* a folded shape's batch entry (unknown size) */

/* A string -> int map (open addressing; keys borrowed). */
struct fl_ox_map {
    size_t cap, n;     /* slots, entries */
    const char **keys; /* NULL: empty slot */
    int *vals;         /* value per slot */
};

enum fl_ox_kind {
    FL_OX_ACT,   /* computed per sample by the engine (the input, node outputs) */
    FL_OX_FLOAT, /* a float constant (f) */
    FL_OX_INT    /* an integer constant (i): shapes, indices */
};

/* A named value of the ONNX graph. Activations have their full shape, batch first
 * (dims[0] = FL_OX_BATCH); constants their whole shape. */
struct fl_ox_val {
    char *name;                   /* as in the file (owned) */
    enum fl_ox_kind kind;         /* what it holds */
    int ndim;                     /* axes used in dims */
    int64_t dims[FL_OX_MAX_DIMS]; /* shape */
    size_t numel;                 /* elements (constants) */
    float *f;                     /* FL_OX_FLOAT data (64-byte aligned, owned) */
    int64_t *i;                   /* FL_OX_INT data (owned) */
    int alias;                    /* a dropped Softmax's output: the value it reads, else -1 */
    int readers;                  /* emitted nodes reading it */
};

/* A node for the engine, named and reading values by index. */
struct fl_ox_node {
    char *name;                  /* node name, full length (owned) */
    enum fl_op op;               /* what it computes */
    int nin;                     /* inputs used */
    int in[FL_GRAPH_MAX_INPUTS]; /* value indices */
    int out;                     /* value index */
    struct fl_op_attrs a;        /* attributes */
    bool dead;                   /* folded away */
};

struct fl_ox {
    const char *origin;                  /* the file, for messages */
    const char *dir;                     /* folder of external data, or NULL */
    const struct fl_onnx_opts *opts;     /* may be NULL */
    int opset;                           /* of the default domain */
    struct fl_ox_val *vals;              /* every value */
    int nvals, capv;                     /* used / allocated */
    struct fl_ox_map names;              /* value name -> index */
    struct fl_ox_node *nodes;            /* emitted nodes */
    int nnodes, capn;                    /* used / allocated */
    int input, output;                   /* value indices */
    int64_t file_batch;                  /* the input's batch axis in the file, -1: dynamic */
    const Onnx__NodeProto *cur;          /* node being translated, for messages */
    char curname[FL_GRAPH_NAME_MAX * 4]; /* its name (given or made) */
};

int fl_ox_map_put(struct fl_ox_map *m, const char *key, int val);
int fl_ox_map_get(const struct fl_ox_map *m, const char *key); /* -1 when absent */
void fl_ox_map_free(struct fl_ox_map *m);

/* Value called name (-1 when absent); a new value (error when the name is taken). */
int fl_ox_find(const struct fl_ox *ox, const char *name);
int fl_ox_new_val(struct fl_ox *ox, const char *name, enum fl_ox_kind kind, int *idx);
/* A fresh constant named after base (suffixed until unique) with n elements allocated. */
int fl_ox_new_const(struct fl_ox *ox, const char *base, enum fl_ox_kind kind, int ndim,
                    const int64_t *dims, int *idx);
/* Append an engine node (name copied) reading values in[0..nin) into out. */
int fl_ox_emit(struct fl_ox *ox, const char *name, enum fl_op op, const int *in, int nin, int out,
               const struct fl_op_attrs *a);
/* A constant from a TensorProto (initializer or Constant attribute) under name. */
int fl_ox_tensor(struct fl_ox *ox, const Onnx__TensorProto *t, const char *name, int *idx);
/* Set a message "onnx: <origin>: node '<cur>' (<op>): <what>" and return err. */
int fl_ox_fail(struct fl_ox *ox, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Attributes of the current node. */
const Onnx__AttributeProto *fl_ox_attr(const Onnx__NodeProto *n, const char *name);
int64_t fl_ox_attr_i(const Onnx__NodeProto *n, const char *name, int64_t def);
float fl_ox_attr_f(const Onnx__NodeProto *n, const char *name, float def);

/* Translate node n (fl_onnx_ops.c): fold it when its inputs are constants and the op is
 * foldable (fl_ox_fold), else emit the engine's node. */
int fl_ox_translate(struct fl_ox *ox, const Onnx__NodeProto *n);
/* Input k of the current node, which must be computed from the graph input (fl_onnx_ops.c). */
int fl_ox_act(struct fl_ox *ox, const Onnx__NodeProto *n, size_t k, int *v);
/* Emit op on values in[0..nin) into n's output, a new value of the given shape. */
int fl_ox_node(struct fl_ox *ox, const Onnx__NodeProto *n, enum fl_op op, const int *in, int nin,
               int ndim, const int64_t *dims, const struct fl_op_attrs *a);
/* Flatten, Reshape, Concat, Squeeze / Unsqueeze (un) of activations (fl_onnx_shape.c). */
int fl_ox_flatten(struct fl_ox *ox, const Onnx__NodeProto *n);
int fl_ox_reshape(struct fl_ox *ox, const Onnx__NodeProto *n);
int fl_ox_concat(struct fl_ox *ox, const Onnx__NodeProto *n);
int fl_ox_squeeze(struct fl_ox *ox, const Onnx__NodeProto *n, bool un);
/* Fold n into constants when possible (fl_onnx_fold.c): *done tells whether it did. */
int fl_ox_fold(struct fl_ox *ox, const Onnx__NodeProto *n, bool *done);
/* The value of input k of n (-1 when absent or empty). */
int fl_ox_in(const struct fl_ox *ox, const Onnx__NodeProto *n, size_t k);
/* Is the value a constant? */
bool fl_ox_is_const(const struct fl_ox *ox, int v);

/* After translation (fl_onnx_post.c): fold BatchNorm into convs, MatMul + Add into Gemm. */
int fl_ox_post(struct fl_ox *ox);
/* Name fitting FL_GRAPH_NAME_MAX: as it is when short, else prefix + '~' + hash. */
void fl_ox_short_name(const char *name, char out[FL_GRAPH_NAME_MAX]);

/* Supported op types, for the refusal message. */
extern const char fl_ox_supported[];

#endif
