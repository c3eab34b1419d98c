/* fl_round: the coordinator's round rules with no I/O (docs/PROTOCOL.md, "Start", "Selection",
 * "Deadline"): the registry of branches that said Hello, when a round starts, whom it selects,
 * when it ends and whether it aggregates or is retried, which updates may be opened, which
 * silent branches are forgotten, when the federation is done. Events come in as calls that
 * carry the time (ms on any monotonic clock); actions go out through the callbacks of
 * struct fl_round_ops. Single-threaded: call it from one thread only. */
#ifndef FL_ROUND_H
#define FL_ROUND_H

#include "fl_keys.h"
#include "fl_sizes.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The rules, from the coordinator's configuration. */
struct fl_round_rules {
    int rounds;            /* rounds to run */
    int clients_per_round; /* branches per round (0: use fraction) */
    double fraction;       /* fraction of the selectable branches per round */
    int min_clients;       /* accepted updates needed to aggregate (and branches to select) */
    int min_start;         /* branches holding the base needed to start a round */
    double start_grace_s;  /* then wait up to this long for every enrolled branch */
    double deadline_s;     /* a round ends this long after it started at the latest */
    int round_retries;     /* retries of a round that fell short before giving up */
    uint64_t seed;         /* the federation's seed: selection is drawn from it and the round */
    int heartbeat_ms;      /* branches' heartbeat interval: silence is measured in these */
};

enum fl_round_phase {
    FL_ROUND_WAITING, /* between rounds: waiting for enough branches */
    FL_ROUND_RUNNING, /* a round is open: tasks are out, updates come in */
    FL_ROUND_DONE     /* every round is done: the final adapter goes to every branch */
};

/* A registered branch. Owned by the core: callers read it, and a pointer to one is valid only
 * until the next call into the core. */
struct fl_round_branch {
    uint8_t key[FL_SIGN_PK_BYTES]; /* Ed25519 key = routing id */
    char name[FL_NODE_NAME_MAX];   /* from the allow-list */
    char id[FL_KEY_ID_LEN];        /* short key id for logs */
    uint64_t samples;              /* records it reported in its Hello */
    bool has_base;                 /* its Hello named our base */
    int64_t last_seen;             /* when it was last heard from (ms) */
    uint32_t selected_round;       /* round it was last given a task for (0: none) */
    uint32_t answered_round;       /* round it last answered (0: none) */
    bool final_sent;               /* it was sent the final adapter */
};

/* A round, as the callbacks see it. */
struct fl_round_info {
    uint32_t round;     /* its number, from 1 (a retry keeps the number) */
    int retry;          /* how many attempts at this round fell short before this one */
    int selected;       /* branches selected (less any revoked since) */
    int eligible;       /* selectable branches it was chosen from */
    int accepted;       /* updates accepted */
    int64_t started_ms; /* when it started */
};

/* Why an update is rejected; fl_round_reject_text() words it. */
enum fl_reject {
    FL_REJECT_NONE = 0,     /* admitted */
    FL_REJECT_STALE,        /* for a round that is over (or none is open) */
    FL_REJECT_UNREGISTERED, /* an enrolled branch that was forgotten: it must say Hello */
    FL_REJECT_UNKNOWN_KEY,  /* not enrolled, revoked, or the update names another key */
    FL_REJECT_FUTURE,       /* for a round not yet started */
    FL_REJECT_NOT_SELECTED, /* the branch has no task in this round */
    FL_REJECT_DUPLICATE,    /* the branch already answered this round */
    FL_REJECT_WRONG_BASE,   /* made for another base */
    FL_REJECT_SIGNATURE,    /* the signature does not verify */
    FL_REJECT_DECRYPT,      /* the update key or a segment does not open */
    FL_REJECT_MALFORMED,    /* the body does not decode */
    FL_REJECT_METRICS,      /* its metrics no training run produces (fl_admit) */
    FL_REJECT_BAD_ADAPTER,  /* the adapter file does not parse */
    FL_REJECT_MISMATCH,     /* the adapter does not fit the global one */
    FL_REJECT_TOO_FAR,      /* too far from the global adapter (max_update_norm) */
    FL_REJECT_AGGREGATION,  /* the strategy refused it */
    FL_REJECT_TOO_MANY      /* more updates than branches selected */
};

/* A rejected update, as the rejected callback sees it. */
struct fl_round_rejection {
    const uint8_t *peer; /* the sender's routing id, for the receipt */
    size_t peer_len;     /* its length */
    const char *id;      /* its key id ("unknown" when the routing id is not a key) */
    uint32_t round;      /* the round the update claims */
    uint32_t current;    /* the round open or next */
    enum fl_reject why;  /* the reason */
    const char *text;    /* the reason in words, with any detail */
};

/* What the core asks for. The branch pointers are valid during the call only. Callbacks must
 * not call back into the core. */
struct fl_round_ops {
    /* A branch registered, or its Hello changed whether it holds the base (for the log). */
    void (*registered)(void *arg, const struct fl_round_branch *b, size_t nbranches);
    /* Answer its Hello with a Welcome (before any task or final adapter). */
    void (*welcome)(void *arg, const struct fl_round_branch *b);
    /* Send it round `round`'s task, due in deadline_ms. */
    void (*task)(void *arg, const struct fl_round_branch *b, uint32_t round, int64_t deadline_ms);
    /* Send it the final adapter. */
    void (*final)(void *arg, const struct fl_round_branch *b);
    /* It has been silent too long and is forgotten after this call. */
    void (*lost)(void *arg, const struct fl_round_branch *b, int64_t silent_ms);
    /* Log the rejection, note it in the round's record, and send the receipt. */
    void (*rejected)(void *arg, const struct fl_round_rejection *r);
    /* A round starts (tasks follow): prepare the aggregate and the round's record. Non-zero
     * when that failed: the round does not start, and the next tick tries again. */
    int (*begin)(void *arg, const struct fl_round_info *info);
    /* The round ended with fewer than min_clients updates: log and record it (it is retried). */
    void (*fell_short)(void *arg, const struct fl_round_info *info);
    /* The round ended with enough updates: aggregate, commit the global adapter and record
     * the round. 0 when committed; an FL_E code stops the federation (nothing committed). */
    int (*commit)(void *arg, const struct fl_round_info *info);
    /* Every round is done (final adapters follow), with `ready` branches holding the base. */
    void (*done)(void *arg, uint32_t rounds, int ready);
};

typedef struct fl_round fl_round_t;

/* A core that has completed `completed` rounds (from the saved state), with `enrolled` keys on
 * the allow-list. ops and arg are kept (ops is copied; NULL callbacks are skipped, except
 * begin and commit, which are then taken to succeed). NULL when out of memory. */
fl_round_t *fl_round_new(const struct fl_round_rules *rules, uint32_t completed, size_t enrolled,
                         const struct fl_round_ops *ops, void *arg);
void fl_round_destroy(fl_round_t **self_p);

/* The allow-list now holds `enrolled` keys (start grace waits for all of them). */
void fl_round_set_enrolled(fl_round_t *self, size_t enrolled);

/* An enrolled branch said Hello (the caller checked the key): register or refresh it, welcome
 * it, and give it its task again if it holds one of the open round, or the final adapter when
 * the federation is done. FL_ENOMEM when it cannot be registered. */
int fl_round_hello(fl_round_t *self, const uint8_t key[FL_SIGN_PK_BYTES], const char *name,
                   uint64_t samples, bool has_base, int64_t now);
/* Any message from this routing id: a registered branch is alive. False when unknown. */
bool fl_round_heard(fl_round_t *self, const uint8_t *key, size_t key_len, int64_t now);
/* The branch said Bye: forgotten unless it holds a task of the open round. True if forgotten. */
bool fl_round_bye(fl_round_t *self, const uint8_t key[FL_SIGN_PK_BYTES]);
/* Its key left the allow-list: forgotten now; the open round stops waiting for its update. */
void fl_round_revoke(fl_round_t *self, const uint8_t key[FL_SIGN_PK_BYTES]);

/* An update arrived: may it be opened? Checks, in order, that the sender is a registered
 * branch sending its own key, that the round is the open one, that the branch was selected
 * and has not answered. FL_REJECT_NONE, or the reason (already reported through rejected). */
enum fl_reject fl_round_admit(fl_round_t *self, const uint8_t *peer, size_t peer_len, bool own_key,
                              bool enrolled, uint32_t round);
/* The admitted update from this branch opened: the branch has answered the open round (a
 * signed and intact update counts as its answer, usable or not). */
void fl_round_answered(fl_round_t *self, const uint8_t key[FL_SIGN_PK_BYTES]);
/* Count an answered update as accepted; FL_REJECT_TOO_MANY (reported) when the round already
 * has as many as it selected branches. */
enum fl_reject fl_round_accept(fl_round_t *self, const uint8_t *peer, size_t peer_len,
                               uint32_t round);
/* Reject an update for `why` (detail: more words, or NULL) through the rejected callback. */
void fl_round_reject(fl_round_t *self, const uint8_t *peer, size_t peer_len, uint32_t round,
                     enum fl_reject why, const char *detail);
/* The reason in words: "why" alone, or "why: detail" (the detail alone for a mismatch). */
void fl_round_reject_text(enum fl_reject why, const char *detail, char *out, size_t len);

/* Time passed: forget branches silent for 5 heartbeats (unless busy with the open round), then
 * one step of the phase: finish the federation, start a round, or end the open one. Call it
 * after every batch of events, and again (with the time then) while the phase changes.
 * 0, the error a commit returned, or FL_ERANGE when a round fell short round_retries times. */
int fl_round_tick(fl_round_t *self, int64_t now);

/* End the federation after the rounds completed so far (a privacy budget is spent): between
 * rounds, the next tick finishes it as if every round were done. Nothing while a round is
 * open. */
void fl_round_stop(fl_round_t *self);

enum fl_round_phase fl_round_phase(const fl_round_t *self);
/* "waiting", "round" or "done". */
const char *fl_round_phase_name(enum fl_round_phase phase);
/* Rounds completed (the open round, if any, is this + 1). */
uint32_t fl_round_completed(const fl_round_t *self);
/* The open round (or the last one opened), as the callbacks saw it. */
const struct fl_round_info *fl_round_info(const fl_round_t *self);
/* Registered branches, in no particular order; the pointer is valid until the next call. */
size_t fl_round_nbranches(const fl_round_t *self);
const struct fl_round_branch *fl_round_branch_at(const fl_round_t *self, size_t i);
/* The registered branch with this key, or NULL. */
const struct fl_round_branch *fl_round_find(const fl_round_t *self, const uint8_t *key,
                                            size_t key_len);
/* Does the branch hold a task of the open round it has not answered yet? */
bool fl_round_busy(const fl_round_t *self, const struct fl_round_branch *b);

#endif
