/* fl_coord: the coordinator: its configuration, and the event loop that serves the federation
 * (the round rules are fl_round, updates in fl_intake, messages out fl_outbox, the base
 * fl_basedist, the global adapter fl_global, state and ledger fl_ledger, the status socket
 * fl_status, transport authentication fl_zap). One event-loop thread: every socket (ROUTER,
 * ZAP, control) is polled from fl_coord_run. Compute threads (opening an update's segments,
 * checking and averaging it, server evaluation) are the pool the coordinator is given; they
 * work only inside a call from the loop and are joined before it returns, so no state is
 * shared with them between events. The ingest, the strategy and the evaluation model all use
 * that one pool, from the loop thread and one at a time, which is what a pool asks
 * (fl_pool.h): it must serve no other thread while the coordinator runs. */
#ifndef FL_COORD_H
#define FL_COORD_H

#include "fl_modelfile.h"
#include "fl_pool.h"

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define FL_COORD_PATH_MAX    1024
#define FL_COORD_SETTING_MAX 32 /* a strategy setting's text */

/* Everything the configuration file ([coordinator] section) and the flags can set. */
struct fl_coord_config {
    char federation[64];                 /* federation name, bound into signatures */
    char endpoint[256];                  /* ROUTER endpoint, e.g. tcp://0.0.0.0:7777 */
    char control[FL_COORD_PATH_MAX];     /* status socket (default ipc://STATE/control.sock) */
    char http[64];                       /* /metrics and status page address (empty: off) */
    char key[FL_COORD_PATH_MAX];         /* coordinator's .key */
    char allow[FL_COORD_PATH_MAX];       /* allow-list: directory of .pub or one file */
    char base[FL_COORD_PATH_MAX];        /* the pretrained base (.ftm) */
    char state_dir[FL_COORD_PATH_MAX];   /* state, ledger, control socket */
    char eval_data[FL_COORD_PATH_MAX];   /* optional server-side evaluation data */
    char eval_labels[FL_COORD_PATH_MAX]; /* its IDX labels, when IDX */
    int rounds;                          /* rounds to run */
    int clients_per_round;               /* branches per round (0: use fraction) */
    double fraction;                     /* fraction of eligible branches per round */
    int min_clients;                     /* updates needed to aggregate */
    int min_start;                       /* eligible branches needed to start a round */
    double start_grace_s;                /* then wait up to this long for the other enrolled */
    double deadline_s;                   /* round deadline, seconds */
    int round_retries;                   /* retries of a round that fell short */
    int epochs, batch;                   /* local training */
    float lr;                            /* local learning rate (0: the method's default) */
    char method[16];                     /* adapter method */
    int rank;                            /* LoRA rank (0: the method's default) */
    float alpha;                         /* LoRA alpha (0: 2 * rank) */
    char targets[FL_TARGET_LIST_MAX];    /* adapted layers or nodes (empty: the default) */
    char classes[256];                   /* classes of the new head, e.g. 5-9 (empty: all) */
    uint64_t seed;                       /* adapter initialisation, selection, shuffling */
    int heartbeat_ms;                    /* branch heartbeat interval */
    uint32_t chunk_size;                 /* base download chunk */
    char strategy[32];                   /* aggregation strategy (fl_strategy's names) */
    /* The strategy's settings ([strategy] section): text, empty for the strategy's default
     * (fl_coord_config_strategy resolves them). */
    char rule[16];                        /* the rule under the optimiser: mean, median, ... */
    char server_lr[FL_COORD_SETTING_MAX]; /* eta */
    char server_lr_decay[FL_COORD_SETTING_MAX];       /* eta's factor per finished round */
    char server_lr_decay_after[FL_COORD_SETTING_MAX]; /* rounds before it applies */
    char server_momentum[FL_COORD_SETTING_MAX];       /* FedAvgM's beta */
    char beta1[FL_COORD_SETTING_MAX];             /* the adaptive optimisers' first-moment decay */
    char beta2[FL_COORD_SETTING_MAX];             /* and second-moment decay */
    char tau[FL_COORD_SETTING_MAX];               /* their adaptivity */
    char proximal_mu[FL_COORD_SETTING_MAX];       /* FedProx's mu, sent with every task */
    char trim_beta[FL_COORD_SETTING_MAX];         /* trimmed mean: share cut at each end */
    char krum_f[FL_COORD_SETTING_MAX];            /* Krum: Byzantine updates tolerated */
    char krum_m[FL_COORD_SETTING_MAX];            /* multi-Krum: updates kept */
    char norm_bound[FL_COORD_SETTING_MAX];        /* clip each update's delta to this L2 norm */
    char norm_bound_median[FL_COORD_SETTING_MAX]; /* or this times the round's median */
    bool personal_head;                           /* FedPer: each branch keeps its own head */
    int personalize_epochs;   /* fine-tuning epochs of the final adapter (0: none) */
    uint64_t max_samples;     /* most weight one update carries */
    double max_samples_ratio; /* and at most this times the round's median (0: off) */
    double max_update_norm;   /* farthest an update may be from the global (0: off) */
    bool insecure;            /* plaintext transport */
    bool exit_when_done;      /* exit after the final adapter is sent */
    int threads;              /* size of the pool main makes for the coordinator (0: every core) */
    double dp_noise;   /* DP-FedAvg: noise multiplier z (0: none, or chosen from dp_epsilon) */
    double dp_clip;    /* DP-FedAvg: L2 bound C of each update's change */
    double dp_epsilon; /* DP-FedAvg: privacy budget (0: none) */
    double dp_delta;   /* and its delta */
    bool secure_aggregation; /* SecAgg+: the coordinator learns only the sum of the updates */
    double secagg_dropout;   /* the fraction of selected branches its neighbour graph survives */
    /* the evaluation data as a CSV with a header (all empty: a plain CSV): the label column's
     * name, the feature columns' (comma-separated), what a missing value does */
    char eval_label_column[256];
    char eval_columns[FL_COORD_PATH_MAX];
    char eval_missing[8];
};

/* Defaults for every field. */
void fl_coord_config_default(struct fl_coord_config *c);
/* Set one field from its name (as in the file; '-' and '_' alike) and text value.
 * Returns 0, or FL_EINVAL / FL_ENOTFOUND with a message naming the key. */
int fl_coord_config_set(struct fl_coord_config *c, const char *key, const char *value);
/* Read a configuration file (inih); errors name the file and line. */
int fl_coord_config_load(struct fl_coord_config *c, const char *path);
/* Check the configuration is complete and consistent (message says what is missing). */
int fl_coord_config_check(const struct fl_coord_config *c);
struct fl_strategy_config;
/* The strategy the configuration describes: the strategy name's defaults
 * (fl_strategy_config_default), then the options set, then fl_strategy_config_check. FL_EINVAL
 * naming the option and the strategy when one does not apply to it, or what is wrong. */
int fl_coord_config_strategy(const struct fl_coord_config *c, struct fl_strategy_config *out);
/* Write the resolved strategy back into c's text fields (the options that apply to it set,
 * the others empty), as --check-config shows them. 0, or fl_coord_config_strategy's error. */
int fl_coord_config_resolve(struct fl_coord_config *c);
struct fl_table_opts;
/* How the evaluation data is read as a CSV with a header (eval_label_column, eval_columns,
 * eval_missing), in *t and returned; NULL when none is set (a plain CSV). */
const struct fl_table_opts *fl_coord_config_eval_table(const struct fl_coord_config *c,
                                                       struct fl_table_opts *t);
/* Print the effective configuration, one key = value per line (the strategy resolved). */
void fl_coord_config_print(const struct fl_coord_config *c, FILE *f);

typedef struct fl_coord fl_coord_t;

/* Load keys, allow-list, base, state (resuming after the last saved round), bind sockets.
 * pool (borrowed: it must outlive the coordinator; NULL: the loop thread alone) opens, checks
 * and averages updates and runs server evaluation. NULL on error, with the message set. */
fl_coord_t *fl_coord_new(const struct fl_coord_config *cfg, fl_pool_t *pool);
/* Serve until the federation is done (with exit_when_done) or *stop is set (SIGTERM).
 * *reload (SIGHUP) reloads the allow-list. Returns 0, or an FL_E code when rounds could not
 * complete within the retry bound. */
int fl_coord_run(fl_coord_t *c, volatile sig_atomic_t *stop, volatile sig_atomic_t *reload);
void fl_coord_destroy(fl_coord_t **self_p);

#endif
