/* fl_strategy_impl: what the strategy's files share (fl_strategy.c: configuration and the
 * round's life cycle; fl_strategy_rules.c: bounding and the rules; fl_strategy_opt.c: the
 * server optimiser and its state; fl_strategy_state.c: the state file). Not for callers. */
#ifndef FL_STRATEGY_IMPL_H
#define FL_STRATEGY_IMPL_H

#include "fl_strategy.h"

/* One update of the round: what the verdict needs and, when held, its values. */
struct fl_strategy_entry {
    char id[72];   /* as given to fl_strategy_add */
    double weight; /* its weight (> 0) */
    double norm;   /* L2 norm of update - global over all tensors */
    double scale;  /* factor stage 1 applies to its delta (1: kept as sent) */
    double score;  /* Krum score, 0 for other rules */
    bool used;     /* taken by the rule (false: dropped by Krum) */
    float *u;      /* held: its values, flat (numel floats); NULL when streaming */
};

struct fl_strategy {
    struct fl_strategy_config cfg; /* as checked at fl_strategy_new */
    fl_pool_t *pool;               /* threads for elementwise work, or NULL */

    /* The round, between begin and finish. */
    bool open;                      /* begin succeeded and finish has not */
    const struct fl_tensor *global; /* the caller's global tensors (borrowed) */
    size_t n;                       /* how many */
    size_t *off;                    /* n + 1 offsets of each tensor in the flat layout */
    size_t numel;                   /* off[n]: values in the adapter */
    float *g;                       /* the global's values, flat */
    double *hi, *lo;                /* streaming: the weighted delta sum as hi + lo (numel each) */
    double whi, wlo;                /* streaming: the weight sum as hi + lo */
    struct fl_strategy_entry *e;    /* the round's updates in arrival order */
    size_t ne, ecap;                /* used and allocated */
    uint32_t expected;              /* DP-FedAvg: the mean's fixed denominator (0: unset) */

    /* The last finished round. */
    struct fl_verdict *verdicts; /* in id order */
    size_t nverdicts;            /* how many */

    /* The server optimiser (fl_strategy_opt.c). */
    struct fl_tensor *m, *v; /* per global tensor, or NULL when the optimiser keeps none */
    size_t nstate;           /* tensors in m and v (0: not yet created) */
    uint64_t steps;          /* rounds finished since the optimiser started */
};

/* Deterministic dot products: fixed blocks summed in order, whatever the pool. */
#define S_BLOCK 4096

/* sum_j (a[j] - b[j])^2 over [0, len), in double, the same bits for any pool. */
double fl_strategy_sqdist(fl_pool_t *pool, const float *a, const float *b, size_t len);

/* Stage 1 and 2 over the held updates (sorted by id): the aggregate delta into d (numel
 * doubles). FL_EINVAL when the rule cannot run (the message says why); nothing else changed
 * but the entries' scale, score and used. */
int fl_strategy_rules_held(fl_strategy_t *s, double *d);
/* Stage 1 for held updates: each entry's scale from the configured bound. */
int fl_strategy_rules_bound(fl_strategy_t *s);
/* Streaming: fold update (per tensor) into hi/lo with weight * scale. */
void fl_strategy_fold(fl_strategy_t *s, const struct fl_tensor *update, double c);

/* DP-FedAvg (cfg.dp_noise > 0): whether the configuration keeps the analysis (mean, fixed
 * bound), FL_EINVAL naming what breaks it; and the noisy mean of the streamed sum into d. */
int fl_strategy_dp_check(const struct fl_strategy_config *c);
int fl_strategy_dp_mean(fl_strategy_t *s, double *d);

/* Stage 3: create or check the optimiser's state for the round's global (FL_EMISMATCH). */
int fl_strategy_opt_prepare(fl_strategy_t *s);
/* Stage 3: apply the aggregate delta d to the global (flat g and the caller's tensors) and
 * advance the state. FL_ERANGE, changing nothing, if a value would not be finite. */
int fl_strategy_opt_step(fl_strategy_t *s, const double *d, struct fl_tensor *global);
/* Free the optimiser's state. */
void fl_strategy_opt_free(fl_strategy_t *s);
/* Whether the optimiser keeps a first / second moment. */
bool fl_strategy_opt_has_m(enum fl_server_opt opt);
bool fl_strategy_opt_has_v(enum fl_server_opt opt);

#endif
