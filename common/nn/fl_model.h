/* fl_model: a network built from an fl_arch, either fresh (every weight trainable, for
 * pretraining) or as a frozen base with an adapter on top (LoRA, FFA-LoRA, BitFit, new head).
 * The model owns its adapter and its workspace; a frozen base's weights are borrowed from the
 * tensors it was built from, which must outlive the model. It knows nothing of files: the
 * model layer (model/fl_modelio.h) builds one from a base file.
 *
 * Threads: a model splits each batch over the pool it is built with, which it borrows (the
 * pool must outlive it; NULL runs everything on the calling thread). A model is not
 * thread-safe: one thread calls it at a time. As a pool serves one caller at a time
 * (fl_pool.h), models sharing a pool must be driven from one thread, one call at a time. */
#ifndef FL_MODEL_H
#define FL_MODEL_H

#include "fl_arch.h"
#include "fl_pool.h"
#include "fl_sizes.h"
#include "fl_tensor.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fl_model fl_model_t;

/* Which of the model's named tensors to list. */
enum fl_tensor_set {
    FL_SET_BASE,     /* what a base file holds: layer weights, biases, norm.mean, norm.std */
    FL_SET_ADAPTER,  /* what an adapter file holds (FFA-LoRA's frozen A is rebuilt, not kept) */
    FL_SET_TRAINABLE /* what the optimiser updates */
};

/* A fresh chain model, weights initialised from seed, all trainable, running on pool (borrowed,
 * may be NULL). NULL on error (message set), as for a graph architecture: fl_model_new_graph. */
fl_model_t *fl_model_new(const struct fl_arch *arch, uint64_t seed, fl_pool_t *pool);
/* A fresh graph model of architecture arch (arch->graph set; arch is copied, the graph is
 * borrowed and must outlive the model) for pretraining: every tensor among t[0..n) that a node
 * reads is a base parameter, trainable, starting from an owned copy (t may be freed after the
 * call; fl_zoo_build's freshly initialised tensors, say); norm.* in t are ignored and the
 * normalisation starts as identity (fl_model_set_norm). Runs on pool (borrowed, may be NULL).
 * NULL on error (message set): not a graph, no head computing arch->num_classes logits. */
fl_model_t *fl_model_new_graph(const struct fl_arch *arch, const struct fl_tensor *t, size_t n,
                               fl_pool_t *pool);
/* A frozen base of architecture arch whose weights are the n tensors handed in (borrowed: they
 * must outlive the model), identified by base_hash, with, when adapter is not NULL, a new
 * adapter initialised from adapter->seed (its base_hash is filled in), running on pool
 * (borrowed, may be NULL). origin names the base in messages. NULL on error. A graph
 * architecture (arch->graph, borrowed too) is built with fl_graph_from_def; its adapter's
 * tensors and targets are named as fl_graphadapt.h says. */
fl_model_t *fl_model_new_frozen(const struct fl_arch *arch, const struct fl_tensor *tensors,
                                size_t n, const uint8_t base_hash[FL_HASH_BYTES],
                                const char *origin, const struct fl_adapter_meta *adapter,
                                fl_pool_t *pool);
/* Load adapter values (meta and n tensors) into a model built for the same adapter
 * configuration; checks the base hash, method, rank, targets and every tensor's name and
 * shape. Nothing changes on error. */
int fl_model_load_adapter(fl_model_t *m, const struct fl_adapter_meta *meta,
                          const struct fl_tensor *tensors, size_t n, const char *origin);
void fl_model_destroy(fl_model_t **self_p);

/* Input normalisation: x' = (x - mean) / std, per feature (len = input dim) or global (1). */
int fl_model_set_norm(fl_model_t *m, const float *mean, const float *std, size_t len);

const struct fl_arch *fl_model_arch(const fl_model_t *m);
/* Adapter configuration, or NULL for a model without one. */
const struct fl_adapter_meta *fl_model_adapter_meta(const fl_model_t *m);
size_t fl_model_input_dim(const fl_model_t *m);
int fl_model_num_classes(const fl_model_t *m);

size_t fl_model_ntensors(const fl_model_t *m, enum fl_tensor_set set);
/* The i-th tensor of a set (live: writing it changes the model). */
struct fl_tensor *fl_model_tensor(fl_model_t *m, enum fl_tensor_set set, size_t i);
/* The whole set as a malloc'd array of *n tensors that borrow the model's data (the caller
 * frees the array, never the data), ready for a file writer; NULL when out of memory. */
struct fl_tensor *fl_model_tensors(fl_model_t *m, enum fl_tensor_set set, size_t *n);
/* Gradient buffer of the i-th trainable tensor (same numel), valid after a train step. */
float *fl_model_grad(fl_model_t *m, size_t i);
/* Parameters used by the forward pass, all or trainable only (FFA-LoRA's A is not trainable). */
size_t fl_model_param_count(const fl_model_t *m, bool trainable_only);

/* Index of the first layer that carries a trainable parameter: layers before it are frozen,
 * so their output (the input of this layer) can be cached per sample. A graph model has three
 * "layers": 0 the input, 1 the frontier of its frozen prefix (the values the nodes that depend
 * on a trainable parameter read of the others, packed; fl_graph_cut_new), 2 the logits; it
 * returns 1 when such a cut exists, else 0. */
int fl_model_frozen_prefix(const fl_model_t *m);
/* Per-sample size of the input of layer l (l == nlayers: the logits). */
size_t fl_model_act_dim(const fl_model_t *m, int l);
/* Run layers [0, upto) on n raw records x [n, input dim] into out [n, act_dim(upto)]. */
int fl_model_forward_prefix(fl_model_t *m, const float *x, int n, int upto, float *out);
/* Logits [n, classes] for n raw records (any n; batched internally). */
int fl_model_forward(fl_model_t *m, const float *x, size_t n, float *logits);
/* One training step on a mini-batch: `in` holds the inputs of layer `start` (raw records when
 * start == 0, else cached activations), y the labels. Fills the gradients of every trainable
 * tensor; returns 0 and the mean loss and the hit count. */
int fl_model_train_step(fl_model_t *m, int start, const float *in, const int32_t *y, int n,
                        double *loss, int *correct);

#endif
