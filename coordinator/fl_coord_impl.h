/* fl_coord_impl: the coordinator's state, shared by the event loop (fl_coord.c) and the
 * actions the round core asks for (fl_coord_rounds.c). Private to those two files. */
#ifndef FL_COORD_IMPL_H
#define FL_COORD_IMPL_H

#include "fl_coord.h"
#include "fl_basedist.h"
#include "fl_codec.h"
#include "fl_error.h"
#include "fl_fs.h"
#include "fl_global.h"
#include "fl_http.h"
#include "fl_intake.h"
#include "fl_allowlist.h"
#include "fl_keys.h"
#include "fl_ledger.h"
#include "fl_metrics.h"
#include "fl_linalg.h"
#include "fl_net.h"
#include "fl_outbox.h"
#include "fl_privacy.h"
#include "fl_round.h"
#include "fl_seal.h"
#include "fl_session.h"
#include "fl_status.h"
#include "fl_strategy.h"
#include "fl_time.h"
#include "fl_zap.h"
#include "fl_coord_http.h"
#include "fl_coord_secagg.h"
#ifdef FEDTL_TESTING
#include "fl_coord_record.h"
#endif

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

struct fl_coord {
    struct fl_coord_config cfg;      /* as given */
    struct fl_identity *id;          /* coordinator identity */
    fl_allowlist_t *allow;           /* enrolled branches */
    struct fl_base_file base;        /* the base, mapped */
    uint8_t base_sig[FL_SIG_BYTES];  /* our signature over its hash */
    fl_global_t *global;             /* the global adapter */
    fl_strategy_t *strategy;         /* aggregation */
    struct fl_strategy_config scfg;  /* its configuration, resolved */
    char strategy_desc[256];         /* its description (fl_strategy_config_str) */
    struct fl_admit_limits limits;   /* bounds on an update's weight and distance */
    fl_pool_t *pool;                 /* compute threads (borrowed), or NULL */
    fl_round_t *round;               /* the round rules and the registry of branches */
    fl_intake_t *intake;             /* updates in */
    fl_ledger_t *ledger;             /* state.json, rounds.jsonl */
    fl_basedist_t *basedist;         /* the base out */
    fl_status_t *status;             /* the status socket */
    fl_outbox_t *outbox;             /* messages to branches */
    fl_zap_t *zap;                   /* admits enrolled keys (NULL: --insecure) */
    fl_session_t *sessions;          /* which connection proved which key */
    uint8_t run_id[FL_RUN_ID_BYTES]; /* this run of the federation (state.json) */
    void *ctx, *router;              /* sockets */
    int64_t done_at;                 /* when the final adapter went out (ms) */
    fl_metrics_t *metrics;           /* counters for --http (NULL: off) */
    fl_http_t *http;                 /* the --http server (fl_coord_http), or NULL */
    fl_privacy_t *privacy;           /* DP-FedAvg's accountant, or NULL when DP is off */
    double dp_q;                     /* the open round's sampling rate (1 under secagg) */
    bool dp_spent;                   /* the budget cannot pay for another round: stop */
    bool dp_released;                /* the open attempt's sum was counted when unmaskable */
    fl_coord_secagg_t *secagg;       /* --secure-aggregation's state, or NULL */
#ifdef FEDTL_TESTING
    fl_coord_record_t *record; /* test builds: FEDTL_TEST_RECORD_DIR's record, or NULL */
#endif
};

/* What the round core asks the coordinator to do (fl_coord_rounds.c); its argument is the
 * struct fl_coord. */
extern const struct fl_round_ops fl_coord_round_ops;

/* STATE/strategy-ROUND.state: the strategy's state after round `round` (fl_coord_rounds.c). */
void fl_coord_strategy_path(const struct fl_coord *c, uint32_t round, char *buf, size_t len);
/* At start-up: the strategy state of the round the global adapter holds (fl_coord_rounds.c).
 * FL_EINVAL naming the file when it is missing and the optimiser keeps state, or when the
 * configuration differs from the one the state was saved with. */
int fl_coord_strategy_resume(struct fl_coord *c, uint32_t completed);
/* At start-up, before the strategy is made: with DP on, the accountant of the round the
 * global adapter holds, and the noise multiplier it chose into scfg (fl_coord_rounds.c). */
int fl_coord_privacy_open(struct fl_coord *c);
/* Distributed DP: the coordinator holds what unmasks the sum of the open attempt at `round`:
 * count it once (at the attempt's sampling rate) and save the account before anything else
 * (fl_privacy_release). 0, or the save's error (logged; the charge stays counted). */
int fl_coord_privacy_release(struct fl_coord *c, uint32_t round);

#endif
