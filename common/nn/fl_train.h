/* fl_train: mini-batch training of a model's trainable tensors (SGD with momentum and weight
 * decay, or Adam), with the frozen-prefix cache, and evaluation / prediction over a data set.
 * A run is reproducible for a given seed and thread count. */
#ifndef FL_TRAIN_H
#define FL_TRAIN_H

#include "fl_arch.h"
#include "fl_augment.h"
#include "fl_dataset.h"
#include "fl_model.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum fl_optimizer { FL_OPT_ADAM = 1, FL_OPT_SGD = 2 };

struct fl_train_opts {
    int epochs;                  /* passes over the data */
    int batch;                   /* mini-batch size */
    enum fl_optimizer optimizer; /* update rule */
    float lr;                    /* learning rate */
    float momentum;              /* SGD momentum (Adam: beta1 is 0.9) */
    float weight_decay;          /* L2 penalty added to the gradient */
    uint64_t seed;               /* shuffling seed */
    size_t cache_bytes;          /* frozen-prefix cache budget; 0 turns the cache off */
    struct fl_augment augment;   /* training augmentation (zeroed: none). With it the records
                                    change every epoch, so the frozen prefix runs on every
                                    step and its cache is off: what stays cached across epochs
                                    is the decoded records (in memory, or none when they
                                    stream) */
    bool progress;               /* per-epoch lines (and a live bar on a terminal) on stderr */
    const char *label;           /* prefix of progress lines, e.g. "pretrain" */
    float prox_mu;               /* FedProx (Li et al. 2020): mu/2 ||w - anchor||^2 over the
                                    trainable tensors is added to the loss, mu (w - anchor) to
                                    the gradient; 0: off */
    const struct fl_tensor *prox_anchor; /* the anchor, one tensor per trainable tensor in
                                            their order (NULL: the trainable tensors as training
                                            starts, i.e. the global adapter a branch got) */
};

/* Defaults: 5 epochs, batch 64, Adam, lr 1e-3, momentum 0.9, no decay, seed 1, 1 GiB cache,
 * no proximal term. */
void fl_train_opts_default(struct fl_train_opts *o);

struct fl_epoch_stats {
    int epoch, epochs;    /* 1-based epoch and total */
    double loss;          /* mean training loss over the epoch */
    double accuracy;      /* training accuracy over the epoch */
    double seconds;       /* wall time of the epoch */
    double samples_per_s; /* records per second */
    size_t cached;        /* records served from the frozen-prefix cache */
};

typedef void(fl_epoch_fn)(const struct fl_epoch_stats *s, void *arg);

/* Train m on ds (labels must be < the model's classes; records in memory or streamed, read in
 * the seeded shuffled order a batch at a time, so both give the same run); fn, if set, sees
 * every epoch. FL_EINVAL when augmentation is asked of a model whose input is not an image.
 * last (may be NULL) receives the final epoch's statistics (its loss includes the proximal
 * term). FL_EMISMATCH when prox_anchor's tensors do not match the trainable ones. */
int fl_train(fl_model_t *m, const struct fl_dataset *ds, const struct fl_train_opts *o,
             fl_epoch_fn *fn, void *arg, struct fl_epoch_stats *last);

struct fl_eval {
    size_t n;                         /* records evaluated */
    double loss;                      /* mean cross-entropy */
    double accuracy;                  /* fraction predicted right */
    int classes;                      /* model classes */
    size_t class_n[FL_MAX_CLASSES];   /* records per true class */
    size_t class_hit[FL_MAX_CLASSES]; /* right predictions per true class */
};

int fl_evaluate(fl_model_t *m, const struct fl_dataset *ds, struct fl_eval *out);
/* Predicted class of each of the n records of x [n, input dim]. */
int fl_predict(fl_model_t *m, const float *x, size_t n, int32_t *pred);

/* Per-feature (or, with global, one) mean and standard deviation of ds (records in memory),
 * for the base's input normalisation; mean/std hold dim (or 1) values. */
void fl_data_stats(const struct fl_dataset *ds, bool global, float *mean, float *std);

#endif
