/* fl_model_impl: the inside of an fl_model, shared by the files that implement it:
 * fl_model.c (building, parameters, adapters) and fl_model_run.c (workspaces, forward and
 * backward passes) for a chain, fl_model_graph.c for a model on a graph (fl_graph). Nothing
 * else includes it. */
#ifndef FL_MODEL_IMPL_H
#define FL_MODEL_IMPL_H

#include "fl_layers.h"
#include "fl_model.h"
#include "fl_pool.h"
#include "fl_rng.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FL_MODEL_MAX_PARAMS  (4 * FL_ARCH_MAX_LAYERS + 4) /* named tensors of a chain model */
#define FL_MODEL_MAX_WORKERS 16                           /* workers a batch is split over */
#define FL_MODEL_GRAPH_BATCH 64                           /* most samples a graph runs at once */
#define FL_MODEL_GRAPH_BYTES (256u << 20)                 /* budget of a graph's values */

/* One named tensor of the model and the roles it plays. */
struct fl_model_param {
    struct fl_tensor t; /* name, shape, data (borrowed for a frozen base) */
    bool base;          /* belongs to the base (saved in a base file) */
    bool adapter;       /* belongs to the adapter (saved in an adapter file) */
    bool trainable;     /* updated by the optimiser */
    bool used;          /* read by the forward pass (counts as a model parameter) */
    float *grad;        /* gradient, trainable only */
};

/* One layer as run: its geometry and the parameters it reads. */
struct fl_model_layer {
    struct fl_layer_spec spec; /* what it computes */
    struct fl_conv_geom geom;  /* conv/pool geometry for one sample (n set per call) */
    size_t in_dim, out_dim;    /* per-sample activation sizes */
    int wrows, wcols;          /* weight as a matrix [out, in_flat] */
    int w, b, lora_a, lora_b;  /* parameter indices, -1 when absent */
    float *w_eff;              /* merged W + scale B A when LoRA */
};

/* One worker's buffers for its share of a batch (fl_model_run.c). */
struct fl_model_work;
/* The graph a graph model runs on, and its buffers (fl_model_graph.c). */
struct fl_model_graph;

struct fl_model {
    struct fl_arch arch;                              /* as run: the head replaced when adapted */
    bool has_adapter;                                 /* built with an adapter */
    struct fl_adapter_meta ameta;                     /* its configuration */
    uint8_t base_hash[FL_HASH_BYTES];                 /* hash of the base it was built on */
    int nparams, cap_params;                          /* entries used / allocated in params */
    struct fl_model_param *params;                    /* every named tensor */
    int norm_mean, norm_std;                          /* parameter indices of the normalisation */
    struct fl_model_layer layers[FL_ARCH_MAX_LAYERS]; /* one per arch layer */
    int first_trainable;                              /* see fl_model_frozen_prefix */
    fl_pool_t *pool;                                  /* borrowed compute threads, or NULL */
    struct fl_model_work *work[FL_MODEL_MAX_WORKERS]; /* per-thread workspaces, made on demand */
    struct fl_model_graph *graph;                     /* a graph model's engine, NULL: a chain */
};

/* Does the layer carry a weight and a bias (conv2d, dense)? */
static inline bool fl_model_layer_has_weights(const struct fl_model_layer *L)
{
    return L->spec.kind == FL_LAYER_CONV2D || L->spec.kind == FL_LAYER_DENSE;
}

/* Free every worker's buffers (they are made again on demand). */
void fl_model_work_free(fl_model_t *m);

/* A graph model (fl_model_graph.c), m->arch.graph set: build its graph from the n base
 * tensors (borrowed) with m's adapter, when it has one, drawn from rng; free it; and the
 * graph forms of fl_model.h's size queries and passes, with the same contracts. For a graph,
 * "layer" 0 is the input, 1 the frontier of the frozen prefix, 2 the logits. */
int fl_model_graph_build(fl_model_t *m, const struct fl_tensor *tensors, size_t n,
                         const char *origin, struct fl_rng *rng);
void fl_model_graph_free(fl_model_t *m);
size_t fl_model_graph_input_dim(const fl_model_t *m);
bool fl_model_graph_norm_fits(const fl_model_t *m, size_t len);
/* The model's parameters may be written through a tensor handed out (fl_graph_touch). */
void fl_model_graph_touch(fl_model_t *m);
size_t fl_model_graph_act_dim(const fl_model_t *m, int l);
int fl_model_graph_forward_prefix(fl_model_t *m, const float *x, int n, int upto, float *out);
int fl_model_graph_train_step(fl_model_t *m, int start, const float *in, const int32_t *y, int n,
                              double *loss, int *correct);

#endif
