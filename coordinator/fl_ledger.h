/* fl_ledger: what the coordinator writes in its state directory besides the global adapter:
 * state.json (which round the saved state holds, and with which settings) and rounds.jsonl
 * (one JSON object per line and per round attempt: participants, rejections, metrics,
 * traffic), both through cJSON. It keeps the record of the open round as the round goes. */
#ifndef FL_LEDGER_H
#define FL_LEDGER_H

#include "fl_sizes.h"

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One accepted update, as the ledger records it. */
struct fl_ledger_update {
    char branch[FL_NODE_NAME_MAX]; /* the branch's name (from the allow-list) */
    char id[FL_KEY_ID_LEN];        /* its key id (what the strategy's verdicts name) */
    uint64_t samples;              /* the training records it claimed */
    uint64_t weight;               /* its weight in the aggregate: samples, bounded (fl_admit) */
    double distance;               /* L2 distance of its adapter from the global one */
    float train_loss;              /* its training loss */
    float eval_loss;               /* its loss on its held-out records */
    float eval_accuracy;           /* its accuracy on them */
    uint64_t eval_samples;         /* how many they were */
    bool personal;                 /* it trained a personal head: eval_* score the global
                                      adapter as it was sent, personal_* its own */
    float personal_accuracy;       /* its personalised adapter's accuracy on its held-out records */
    float personal_loss;           /* and loss there */
};

/* What the strategy did to an update that it did not keep as sent (fl_strategy's verdict). */
struct fl_ledger_verdict {
    char id[FL_KEY_ID_LEN]; /* the update's key id */
    const char *kind;       /* "clipped" or "dropped" */
    double norm;            /* L2 norm of its change as sent */
    double scale;           /* factor the bound applied (1: none) */
    double score;           /* Krum score (0: another rule) */
    const char *why;        /* the strategy's words */
};

/* How a round attempt ended, for its line. */
struct fl_ledger_round {
    uint32_t round;         /* its number */
    bool aggregated;        /* committed (false: fell short, to be retried) */
    int retry;              /* attempts at this round that fell short before */
    int selected;           /* branches selected */
    bool has_server_eval;   /* the server evaluated the new global adapter */
    double server_accuracy; /* its accuracy on the server's data */
    double server_loss;     /* its loss there */
    double duration_s;      /* from the start of the attempt to now */
    const char *strategy;   /* the strategy's name (NULL: not written) */
    double server_lr;       /* the server learning rate the aggregation stepped with (0: not
                               written) */
    bool has_dp;            /* DP-FedAvg is on: the four below are written */
    double dp_epsilon;      /* the epsilon spent once this attempt ended */
    double dp_delta;        /* at this delta */
    double dp_noise;        /* the noise multiplier */
    double dp_q;            /* this attempt's sampling rate (selected / eligible) */
    const cJSON *secagg;    /* secure aggregation's record, as "secure_aggregation" (or NULL) */
};

/* What state.json says. */
struct fl_ledger_state {
    uint32_t round;              /* rounds the saved global adapter holds */
    int rounds;                  /* rounds to run */
    const char *strategy;        /* aggregation strategy: its name */
    const char *strategy_config; /* and its full description (fl_strategy_config_str) */
    uint64_t seed;               /* the federation's seed */
    const uint8_t *base_hash;    /* the base (FL_HASH_BYTES) */
    const uint8_t *run_id;       /* this run of the federation (FL_RUN_ID_BYTES), or NULL */
};

typedef struct fl_ledger fl_ledger_t;

/* The ledger of the federation `federation` in state_dir (which exists). NULL when out of
 * memory or a path does not fit. */
fl_ledger_t *fl_ledger_new(const char *state_dir, const char *federation);
void fl_ledger_destroy(fl_ledger_t **self_p);

/* At start-up: remove the temporary files interrupted atomic writes left in the directory. */
void fl_ledger_sweep(fl_ledger_t *self);
/* At start-up: drop a partial last line of rounds.jsonl (a crash mid-write), and write a line
 * marked "recovered" for each round up to `completed` the ledger lacks (a crash between
 * saving the round and its line). */
void fl_ledger_mend(fl_ledger_t *self, uint32_t completed);

/* A round attempt begins: forget the last one's participants, rejections and traffic. */
void fl_ledger_begin(fl_ledger_t *self);
/* Record an accepted update. FL_ENOMEM when it cannot be. */
int fl_ledger_accept(fl_ledger_t *self, const struct fl_ledger_update *u);
/* Record a strategy's verdict on an accepted update of the open round (the first 64 are
 * listed with the branch's name, all are counted). */
void fl_ledger_verdict(fl_ledger_t *self, const struct fl_ledger_verdict *v);
/* The name of the branch whose accepted update of the open round has key id `id`, or "?". */
const char *fl_ledger_branch_of(const fl_ledger_t *self, const char *id);
/* Record a rejected update: the sender's key id and the reason (the first 64 are listed). */
void fl_ledger_reject(fl_ledger_t *self, const char *id, const char *reason);
/* Count traffic of the open round. */
void fl_ledger_traffic(fl_ledger_t *self, uint64_t bytes_in, uint64_t bytes_out);
/* The open round's rejections so far, and its traffic. */
int fl_ledger_rejected(const fl_ledger_t *self);
void fl_ledger_bytes(const fl_ledger_t *self, uint64_t *bytes_in, uint64_t *bytes_out);

/* Append the round attempt's line to rounds.jsonl in one write, then fsync (failures are
 * logged: the line is a record, the global adapter is the state). */
void fl_ledger_write(fl_ledger_t *self, const struct fl_ledger_round *r);
/* Write state.json atomically (a failure is logged, not returned: global.fta is the commit
 * point and state.json only describes it). */
void fl_ledger_save_state(fl_ledger_t *self, const struct fl_ledger_state *st);
/* The run id state.json holds: 0, or FL_ENOTFOUND when it holds none (or there is none). */
int fl_ledger_load_run_id(fl_ledger_t *self, uint8_t run_id[FL_RUN_ID_BYTES]);
/* The strategy description state.json holds (strategy_config) into buf: 0, or FL_ENOTFOUND
 * when it holds none (or there is none). */
int fl_ledger_load_strategy(fl_ledger_t *self, char *buf, size_t len);
/* Add a 64-bit count to a JSON object exactly (as digits: cJSON's doubles round above 2^53). */
void fl_json_add_u64(cJSON *obj, const char *key, uint64_t v);

/* The last line written by fl_ledger_write, or NULL; owned by the ledger, valid until the
 * next write. */
const cJSON *fl_ledger_last(const fl_ledger_t *self);

#endif
