/* fl_metrics: what the coordinator counts for its operators, fed by a few hooks in the event
 * loop and the round actions (updates accepted and rejected, round attempts, traffic, base
 * downloads, how long rounds and intake took), and its /metrics page in the Prometheus text
 * format (fl_prom). It keeps the last rounds and every branch it has seen for the status page
 * (fl_statuspage). Single-threaded: the loop's, like the rest of the coordinator. Every hook
 * accepts a NULL fl_metrics_t (no --http: nothing is counted). */
#ifndef FL_METRICS_H
#define FL_METRICS_H

#include "fl_ledger.h"
#include "fl_round.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FL_METRICS_ROUNDS_KEPT  200  /* round attempts the status page shows */
#define FL_METRICS_BRANCHES_MAX 4096 /* branches tracked (enrolled keys only; more: not listed) */

/* One round attempt, as it ended. */
struct fl_metrics_round {
    uint32_t round;         /* its number */
    int retry;              /* attempts at it that fell short before */
    bool aggregated;        /* committed (false: fell short) */
    int selected;           /* branches selected */
    int accepted;           /* updates accepted */
    int rejected;           /* updates rejected while it was open */
    bool has_fed;           /* some accepted update reported held-out metrics */
    double fed_accuracy;    /* their accuracy, weighted by held-out records */
    double fed_loss;        /* their loss, likewise */
    bool has_server;        /* the server evaluated the new global adapter */
    double server_accuracy; /* its accuracy on the server's data */
    double server_loss;     /* its loss there */
    double duration_s;      /* from the attempt's start to its end */
};

/* A branch the coordinator has seen (registered, or sent an update). */
struct fl_metrics_branch {
    uint8_t key[FL_SIGN_PK_BYTES]; /* its Ed25519 key (never shown: the id is) */
    char name[FL_NODE_NAME_MAX];   /* its name on the allow-list (peer-chosen text: escape it) */
    char id[FL_KEY_ID_LEN];        /* the key's fingerprint */
    bool connected;                /* registered now */
    int64_t last_seen;             /* when last heard from (ms, fl_now_ms) */
    uint32_t rounds_joined;        /* rounds whose update was accepted */
    uint32_t rejected;             /* updates rejected */
};

/* What the loop knows now, for a page: read at the request, never kept. */
struct fl_metrics_live {
    const char *federation;           /* the federation's name */
    enum fl_round_phase phase;        /* waiting, round or done */
    uint32_t completed;               /* rounds completed (from the saved state on) */
    int rounds;                       /* rounds to run */
    size_t enrolled;                  /* keys on the allow-list */
    size_t connected;                 /* branches registered */
    uint64_t bytes_in;                /* traffic of the open attempt so far (the ledger's) */
    uint64_t bytes_out;               /* likewise out */
    int64_t now;                      /* fl_now_ms() */
    const struct fl_round_info *open; /* the open round (NULL between rounds) */
};

typedef struct fl_metrics fl_metrics_t;

/* NULL when out of memory. */
fl_metrics_t *fl_metrics_new(void);
void fl_metrics_destroy(fl_metrics_t **self_p);

/* ---- hooks ---- */

/* A round attempt begins: the ledger's traffic since the last one goes into the totals
 * (call it before fl_ledger_begin resets it). */
void fl_metrics_begin(fl_metrics_t *self, const fl_ledger_t *ledger);
/* An update went through the intake, accepted or not, started at fl_now_s() t0. */
void fl_metrics_intake(fl_metrics_t *self, double t0);
/* The update from key was accepted. */
void fl_metrics_accepted(fl_metrics_t *self, const uint8_t key[FL_SIGN_PK_BYTES],
                         const struct fl_ledger_update *u);
/* An update was rejected. */
void fl_metrics_rejected(fl_metrics_t *self, const struct fl_round_rejection *r);
/* A round attempt ended: committed (aggregated), or fell short. */
void fl_metrics_round_end(fl_metrics_t *self, const struct fl_round_info *info, bool aggregated,
                          bool has_server, double server_accuracy, double server_loss);
/* DP-FedAvg's spending after a round: epsilon at delta. */
void fl_metrics_privacy(fl_metrics_t *self, double epsilon, double delta);
/* A branch asked for the base from offset (0: a download starts). */
void fl_metrics_base_request(fl_metrics_t *self, uint64_t offset);
/* A chunk of the base of len bytes went out. */
void fl_metrics_base_chunk(fl_metrics_t *self, size_t len);
/* Bring the branch table up to date with the registered branches (before a page). */
void fl_metrics_sync(fl_metrics_t *self, const fl_round_t *round);

/* ---- reading ---- */

/* The /metrics page (malloc'd, its length in *len), or NULL when out of memory. */
char *fl_metrics_prometheus(const fl_metrics_t *self, const struct fl_metrics_live *live,
                            size_t *len);
/* The round attempts kept, oldest first (i < fl_metrics_nrounds). */
size_t fl_metrics_nrounds(const fl_metrics_t *self);
const struct fl_metrics_round *fl_metrics_round_at(const fl_metrics_t *self, size_t i);
/* Updates rejected since the open round attempt began. */
int fl_metrics_open_rejected(const fl_metrics_t *self);
/* The branches seen, in the order first seen. */
size_t fl_metrics_nbranches(const fl_metrics_t *self);
const struct fl_metrics_branch *fl_metrics_branch_at(const fl_metrics_t *self, size_t i);
/* Short label of a rejection reason, for the reason="" label ("other" beyond the known). */
const char *fl_metrics_reject_label(int why);

#endif
