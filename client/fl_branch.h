/* fl_branch: one branch of a federation, the protocol's client side (docs/PROTOCOL.md).
 * Registers with the coordinator, fetches and verifies the base, heartbeats, trains each
 * round's adapter on local data, sends it sealed and signed, and saves the final adapter. */
#ifndef FL_BRANCH_H
#define FL_BRANCH_H

#include "fl_pool.h"
#include "fl_table.h"
#ifdef FEDTL_TESTING
#include "fl_attack.h"
#endif

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

/* What a branch needs to run; the strings and the pool must outlive the branch. */
struct fl_branch_config {
    const char *coordinator;     /* endpoint, e.g. tcp://127.0.0.1:7777 */
    const char *coordinator_key; /* the coordinator's .pub file */
    const char *key;             /* this branch's .key file */
    const char *data;            /* local data: CSV, or IDX images */
    const char *labels;          /* IDX labels (NULL for CSV) */
    double holdout;              /* share of local records held out for evaluation, [0, 1) */
    unsigned augment;            /* training augmentation, FL_AUGMENT_* bits (0: none) */
    size_t cache_budget;         /* decoded image records held in memory, bytes (0: no limit) */
    const char *cache_dir;       /* where bases are cached */
    const char *out;             /* where the final adapter goes (NULL: cache_dir/final.fta) */
    const char *keep_updates;    /* when set, each round's own adapter is kept here too
                                    (DIR/round-N.fta): the branch's record of what it sent */
    bool insecure;               /* plaintext, no CURVE (the coordinator must agree) */
    int heartbeat_ms;            /* 0: the coordinator's (from Welcome) */
    int connect_timeout_s;       /* give up when unregistered this long; 0 waits forever */
    bool progress;               /* progress lines on stderr (when it is a terminal) */
    const char *http;            /* serve /metrics here (fl_client_http; NULL: off) */
    fl_pool_t *pool;             /* training threads, borrowed (NULL: the branch's thread);
                                    the branch's one thread is its only caller */
    /* the data as a CSV with a header, by column name (fl_table.h); NULL: a plain CSV */
    const struct fl_table_opts *table;
#ifdef FEDTL_TESTING
    const struct fl_attack *attack; /* test builds only: the attack mounted (NULL: none) */
#endif
};

typedef struct fl_branch fl_branch_t;

/* Load the identity, the coordinator's key and the local data. Connects nothing.
 * NULL on error (fl_error_msg says what). */
fl_branch_t *fl_branch_new(const struct fl_branch_config *cfg);
/* Wipes the identity. */
void fl_branch_destroy(fl_branch_t **self_p);
/* A human summary of the configuration (for --check-config). */
void fl_branch_print(const fl_branch_t *self, FILE *out);
/* Take part in the federation until the final adapter is saved (0), *stop becomes non-zero
 * (sends Bye, 0) or a fatal error (negative FL_E code, fl_error_msg says why: refused key,
 * failed handshake, no answer within the connect timeout, a base that does not verify).
 * stop may be NULL; it is only read. */
int fl_branch_run(fl_branch_t *self, volatile sig_atomic_t *stop);

#endif
