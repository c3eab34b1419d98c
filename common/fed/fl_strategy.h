/* fl_strategy: how the coordinator turns a round's accepted updates into the next global
 * adapter. A strategy is three stages, always in this order:
 *
 *   1. bounding: each update's delta (update - global) is clipped to an L2 bound, fixed or a
 *      multiple of the round's median delta norm;
 *   2. the rule: sample-weighted mean (FedAvg), coordinate-wise median, trimmed mean, Krum or
 *      multi-Krum, giving the round's aggregate delta;
 *   3. the server optimiser on that delta (Reddi et al., "Adaptive Federated Optimization",
 *      ICLR 2021): none (global += delta), FedAvgM, FedAdagrad, FedAdam, FedYogi.
 *
 * The mean with no bound or a fixed bound streams: memory is O(model) whatever the number of
 * branches. The other rules and the median bound hold every update of the round:
 * O(branches x model) (fl_strategy_held_bytes says how much). Held updates are aggregated in
 * the order of their ids, never of their arrival, and the streaming mean adds in double-double
 * (fl_strategy_rules.c), so that a round's result does not depend on timing. Tensors are matched by
 * position: the caller has checked names and shapes against the global adapter. FedProx is
 * client-side: the strategy only carries its mu. With dp_noise (DP-FedAvg, docs/PRIVACY.md) the
 * streaming mean counts every update alike (the fixed bound is the clip), adds Gaussian noise
 * (fl_dp) to the sum and divides it by the round's expected count. */
#ifndef FL_STRATEGY_H
#define FL_STRATEGY_H

#include "fl_pool.h"
#include "fl_tensor.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum fl_rule {
    FL_RULE_MEAN,         /* sample-weighted mean (FedAvg) */
    FL_RULE_MEDIAN,       /* coordinate-wise median, unweighted */
    FL_RULE_TRIMMED_MEAN, /* coordinate-wise mean after dropping floor(beta n) at each end */
    FL_RULE_KRUM,         /* the one update closest to its n - f - 2 nearest neighbours */
    FL_RULE_MULTI_KRUM,   /* the sample-weighted mean of the m best Krum scores */
};

/* Per coordinate, with delta the rule's aggregate (fl_strategy_opt.c has the whole table):
 * the adaptive three share m = beta1 m + (1 - beta1) delta and
 * global += eta m / (sqrt(v) + tau), with m starting at 0 and v at tau^2 (Reddi et al.,
 * Algorithm 2, no bias correction); they differ in v. */
enum fl_server_opt {
    /* eta is the configured server_lr times server_lr_decay^max(0, t - server_lr_decay_after)
     * after t finished rounds. */
    FL_SERVER_OPT_NONE,    /* global += eta * delta (eta 1: plain FedAvg) */
    FL_SERVER_OPT_AVGM,    /* FedAvgM: m = beta1 m + delta; global += eta m */
    FL_SERVER_OPT_ADAGRAD, /* v += delta^2 */
    FL_SERVER_OPT_ADAM,    /* v = beta2 v + (1 - beta2) delta^2 */
    FL_SERVER_OPT_YOGI,    /* v = v - (1 - beta2) delta^2 sign(v - delta^2) */
};

enum fl_bound {
    FL_BOUND_NONE,
    FL_BOUND_FIXED,  /* clip each delta to norm_bound */
    FL_BOUND_MEDIAN, /* clip each delta to norm_bound x the round's median delta norm */
};

/* A strategy's settings. fl_strategy_config_default fills the defaults documented in
 * docs/STRATEGIES.md for a strategy name; fl_strategy_config_check validates. */
struct fl_strategy_config {
    char name[32];                  /* as configured: fedavg, fedavgm, fedadagrad, fedadam, fedyogi,
                                       fedprox, median, trimmed-mean, krum, multi-krum */
    enum fl_rule rule;              /* stage 2 */
    enum fl_server_opt opt;         /* stage 3 */
    enum fl_bound bound;            /* stage 1 */
    double norm_bound;              /* FIXED: the bound; MEDIAN: the multiple, > 0 */
    double trim_beta;               /* trimmed mean: share cut at each end, [0, 0.5) */
    uint32_t krum_f;                /* Krum, multi-Krum: Byzantine updates tolerated */
    uint32_t krum_m;                /* multi-Krum: updates kept (0, or above n - f: n - f) */
    double server_lr;               /* eta */
    double server_lr_decay;         /* the schedule: after t finished rounds the step uses
                                       eta x server_lr_decay^max(0, t - server_lr_decay_after), in
                                       (0, 1] (1: constant eta) */
    uint32_t server_lr_decay_after; /* rounds at the full eta before the decay starts */
    double beta1;                   /* momentum (FedAvgM's beta; the adaptive methods' beta1) */
    double beta2;                   /* second-moment decay (FedAdam, FedYogi) */
    double tau;          /* adaptivity (FedAdagrad, FedAdam, FedYogi); v starts at tau^2 */
    double prox_mu;      /* FedProx's mu, sent with the task (0: off) */
    double dp_noise;     /* DP-FedAvg's noise multiplier z (0: off): needs the mean and a
                            fixed bound C; updates count alike (weights ignored), Gaussian
                            noise of deviation z C joins their sum, which is divided by the
                            round's expected count (fl_strategy_set_expected) */
    bool dp_distributed; /* with dp_noise: the branches clipped their changes and added the
                            noise (distributed DP under secure aggregation); what is added is
                            their secure sum, neither clipped nor noised again here */
};

/* The defaults for a strategy name: its rule, optimiser and the paper's parameters.
 * FL_EINVAL naming the known names for an unknown one. */
int fl_strategy_config_default(struct fl_strategy_config *c, const char *name);
/* Every field in range and the combination meaningful; FL_EINVAL naming the field. */
int fl_strategy_config_check(const struct fl_strategy_config *c);
/* Whether the configuration needs every update in memory (not streaming). */
bool fl_strategy_config_holds_all(const struct fl_strategy_config *c);
/* One line describing it for logs, the ledger and the state file, e.g. "fedadam rule=median
 * bound=median:3 opt=adam eta=0.01 beta1=0.9 beta2=0.99 tau=0.001": the rule's and the
 * optimiser's parameters that matter, nothing else. */
void fl_strategy_config_str(const struct fl_strategy_config *c, char *buf, size_t len);

/* What stages 1 and 2 did to one update in the last finished round. */
enum fl_verdict_kind {
    FL_VERDICT_KEPT,    /* used as sent */
    FL_VERDICT_CLIPPED, /* used, scaled down to the bound */
    FL_VERDICT_DROPPED, /* not used by the rule (Krum not chosen, median's outliers are not
                           reported: every update takes part in a median or trimmed mean) */
};
struct fl_verdict {
    char id[72]; /* as given to fl_strategy_add */
    enum fl_verdict_kind kind;
    double norm;  /* L2 norm of its delta as sent */
    double scale; /* factor applied by the bound (1 when kept) */
    double score; /* Krum score, 0 for other rules */
    char why[96]; /* e.g. "norm 31.2 above bound 4.1 (3 x median 1.37)",
                     "krum score 812 not among the 8 lowest" */
};

typedef struct fl_strategy fl_strategy_t;

/* A strategy from a checked configuration (copied). NULL with the message set. */
fl_strategy_t *fl_strategy_new(const struct fl_strategy_config *cfg);
void fl_strategy_destroy(fl_strategy_t **self_p);
/* Threads for elementwise work (not owned; NULL: the caller's thread alone). Results do not
 * depend on it. */
void fl_strategy_set_pool(fl_strategy_t *s, fl_pool_t *pool);
const struct fl_strategy_config *fl_strategy_config(const fl_strategy_t *s);
const char *fl_strategy_name(const fl_strategy_t *s);

/* The server learning rate the next finish steps with: server_lr x
 * server_lr_decay^max(0, steps - server_lr_decay_after). */
double fl_strategy_server_lr(const fl_strategy_t *s);

/* Start a round from the current global tensors (n of them; borrowed until finish). */
int fl_strategy_begin(fl_strategy_t *s, const struct fl_tensor *global, size_t n);
/* Fold in (or hold: a float copy) one accepted update with its weight (> 0, the bounded
 * sample count) and an id unique in the round (the branch's key id, at most 71 bytes; orders
 * held updates and names verdicts). FL_EMISMATCH when the tensor count or sizes differ;
 * FL_EINVAL for a non-finite value ("update from ID: non-finite value in tensor NAME at
 * index I"), a weight not > 0, an id already added, or no round begun. A refused update is
 * not counted and leaves the round as it was. */
int fl_strategy_add(fl_strategy_t *s, const struct fl_tensor *update, size_t n, double weight,
                    const char *id);
/* DP-FedAvg: the fixed denominator of the open round's mean, the number of updates expected
 * (the branches selected), set after begin; the mean of n < expected updates is shrunk toward
 * 0 rather than revealing n. FL_EINVAL when no round is open or expected is 0. */
int fl_strategy_set_expected(fl_strategy_t *s, uint32_t expected);
/* Updates added since begin. */
size_t fl_strategy_count(const fl_strategy_t *s);
/* Bytes currently held for the round's updates (0 when streaming without a median bound). */
size_t fl_strategy_held_bytes(const fl_strategy_t *s);
/* Write the next global into `global` (same shapes as at begin) and advance the optimiser's
 * state; the held copies are let go. FL_EINVAL when the rule cannot run on the updates it has
 * (nothing added; Krum with n <= 2f + 2), FL_ERANGE when the step would make a value
 * non-finite: the global and the optimiser state are left as they were, and the round stays
 * open (more updates may be added and finish tried again). */
int fl_strategy_finish(fl_strategy_t *s, struct fl_tensor *global, size_t n);
/* The verdicts of the last finish, in id order (*n of them; valid until the next begin). */
const struct fl_verdict *fl_strategy_verdicts(const fl_strategy_t *s, size_t *n);

/* The server optimiser's state, for the checkpoint: the steps taken and, for each global
 * tensor, its first and second moments (m, v NULL when the optimiser keeps none; n 0 until
 * the first begin creates them). Borrowed, valid until the next begin, finish or set. */
struct fl_strategy_state {
    uint64_t steps;            /* finished rounds since the optimiser started */
    size_t n;                  /* tensors */
    const struct fl_tensor *m; /* n first moments (FedAvgM's velocity), or NULL */
    const struct fl_tensor *v; /* n second moments, or NULL */
};
void fl_strategy_get_state(const fl_strategy_t *s, struct fl_strategy_state *out);
/* Restore a saved state (copied) between rounds (FL_EINVAL during one); its tensor count,
 * names and sizes must match the global's given to the next begin, which checks them
 * (FL_EMISMATCH). FL_EINVAL for a non-finite moment or a negative second moment. */
int fl_strategy_set_state(fl_strategy_t *s, const struct fl_strategy_state *st);

/* Save the state to PATH atomically (a StrategyState protobuf, fedtl_model.proto: config
 * string, round, steps, moments) and load it back; load checks the file names the same
 * configuration (FL_EMISMATCH naming both) and returns the round it was saved for. */
int fl_strategy_save_file(const fl_strategy_t *s, const char *path, uint32_t round);
int fl_strategy_load_file(fl_strategy_t *s, const char *path, uint32_t *round);

#endif
