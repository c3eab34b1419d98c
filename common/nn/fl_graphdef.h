/* fl_graphdef: the plain description of a graph network, as fl_arch is for a chain: its one
 * input, its nodes (op, attributes, the names they read and the value they write) and its
 * output. It holds no tensors: a node input that is neither the graph's input nor another
 * node's output names a parameter, found by name among the tensors the graph is built with
 * (a base file's tensor table, an importer's initializers). This is what the ONNX importer
 * produces, what a base file records, what the exporter writes back, and what fl_model
 * builds a graph from; fl_graph (fl_graph.h) is the engine that runs it. */
#ifndef FL_GRAPHDEF_H
#define FL_GRAPHDEF_H

#include "fl_graph.h"
#include "fl_pool.h"
#include "fl_tensor.h"

#include <stddef.h>
#include <stdint.h>

#define FL_GRAPHDEF_MAX_NODES 4096 /* nodes of one graph */

/* One node: what fl_graph_add_node takes. */
struct fl_gdef_node {
    char name[FL_GRAPH_NAME_MAX];                    /* unique among nodes (ONNX's node name) */
    enum fl_op op;                                   /* what it computes */
    int nin;                                         /* inputs used */
    char in[FL_GRAPH_MAX_INPUTS][FL_GRAPH_NAME_MAX]; /* value names read, in op order */
    char out[FL_GRAPH_NAME_MAX];                     /* value name written */
    struct fl_op_attrs a;                            /* attributes */
};

struct fl_graphdef {
    char input[FL_GRAPH_NAME_MAX];  /* the input value */
    int in_ndim;                    /* per-sample input axes, 1 to 3 */
    int64_t in_dims[3];             /* per-sample input shape, e.g. {3, 32, 32} */
    char output[FL_GRAPH_NAME_MAX]; /* the logits value, [batch, classes] */
    int nnodes, cap;                /* nodes used / allocated */
    struct fl_gdef_node *nodes;     /* in execution order (each after its inputs' producers) */
};

/* Zero d; free what it holds (safe on a zeroed or freed def). */
void fl_graphdef_init(struct fl_graphdef *d);
void fl_graphdef_free(struct fl_graphdef *d);
/* Deep copy of src into dst (dst is overwritten). */
int fl_graphdef_copy(struct fl_graphdef *dst, const struct fl_graphdef *src);
/* Append a node (inputs and output copied; attrs NULL: defaults). Names must fit
 * FL_GRAPH_NAME_MAX. Returns 0 or an FL_E* code with a message. */
int fl_graphdef_add(struct fl_graphdef *d, const char *name, enum fl_op op,
                    const char *const *inputs, int nin, const char *output,
                    const struct fl_op_attrs *attrs);
/* Index of the node called name, of the node writing value `value`, or -1. */
int fl_graphdef_find(const struct fl_graphdef *d, const char *name);
int fl_graphdef_producer(const struct fl_graphdef *d, const char *value);
/* Is value (a name) a parameter, i.e. neither the input nor any node's output? */
bool fl_graphdef_is_param(const struct fl_graphdef *d, const char *value);

/* An unplanned graph running on pool (borrowed, may be NULL) from the description and its
 * parameters: every node input that is a parameter must be among params[0..n) (copied in,
 * frozen); tensors no node reads are left out. The caller may then add LoRA, make
 * parameters trainable and plan. NULL on error, with a message naming the node or tensor. */
fl_graph_t *fl_graph_from_def(const struct fl_graphdef *d, const struct fl_tensor *params, size_t n,
                              fl_pool_t *pool);

#endif
