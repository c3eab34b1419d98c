/* fl_admit: the admission checks of one update's contents, after it was verified, opened and
 * matched against the global adapter, and before the strategy sees it: metrics a training run
 * can produce, a bounded weight, and a bounded distance from the global adapter (PROTOCOL.md,
 * "Admission"). They bound what one enrolled branch can do to the aggregate whichever strategy
 * runs; they cannot tell a bad but plausible update from a good one (SECURITY.md). No I/O:
 * failures return an FL_E code with a message for the receipt, the ledger and the log. */
#ifndef FL_ADMIT_H
#define FL_ADMIT_H

#include "fl_pool.h"
#include "fl_tensor.h"

#include <stddef.h>
#include <stdint.h>

/* The bounds, from the coordinator's configuration. */
struct fl_admit_limits {
    uint64_t max_samples;     /* most weight an update carries: larger claims are cut to it */
    double max_samples_ratio; /* and at most this times the round's median declared count
                                 (0: no such cap) */
    double max_update_norm;   /* an update farther than this (L2) from the global adapter is
                                 rejected (0: no bound) */
};

/* What a branch reports with its update. */
struct fl_admit_metrics {
    uint64_t samples;      /* records it trained on (its claimed weight) */
    float train_loss;      /* mean training loss */
    float eval_loss;       /* loss on its held-out records */
    float eval_accuracy;   /* accuracy on them */
    uint64_t eval_samples; /* how many they were */
};

/* Metrics a training run can produce: losses finite and >= 0, accuracy in [0, 1], at least
 * one training record, no more held-out records than training records. 0, or FL_ERANGE with a
 * message naming the metric and its value. */
int fl_admit_check_metrics(const struct fl_admit_metrics *m);

/* The weight of an update that claims `claimed` records: the claim cut to max_samples, to
 * what the branch declared in its Hello (`declared`; 0: nothing declared) and to
 * max_samples_ratio x round_median (round_median 0: unknown). At least 1 for a claim >= 1. */
uint64_t fl_admit_weight(const struct fl_admit_limits *l, uint64_t claimed, uint64_t declared,
                         uint64_t round_median);

/* The lower median of n counts (sorts them in place); 0 when n is 0. */
uint64_t fl_admit_median(uint64_t *counts, size_t n);

/* One pass over an update: every value finite, and its L2 distance from the global tensors
 * (n of them, matched by position; the caller checked the shapes), accumulated in double on
 * pool's threads (pool may be NULL). 0 with *distance set, FL_ERANGE naming the tensor that
 * holds NaN or Inf, or FL_ENOMEM. */
int fl_admit_distance(const struct fl_tensor *global, const struct fl_tensor *update, size_t n,
                      fl_pool_t *pool, double *distance);

/* The distance within max_update_norm: 0, or FL_ERANGE saying both. */
int fl_admit_check_distance(const struct fl_admit_limits *l, double distance);

#endif
