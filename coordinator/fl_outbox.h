/* fl_outbox: the messages the coordinator sends to branches (docs/PROTOCOL.md, "Exchanges"),
 * each one Envelope sent on the ROUTER without blocking: a branch whose queue is full loses
 * the message (logged), and the coordinator never waits for one branch. Bytes sent are counted
 * in the open round's ledger record. */
#ifndef FL_OUTBOX_H
#define FL_OUTBOX_H

#include "fl_codec.h"
#include "fl_coord.h"
#include "fl_global.h"
#include "fl_keys.h"
#include "fl_ledger.h"
#include "fl_session.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the messages carry and where they go: borrowed, outliving the outbox. */
struct fl_outbox_env {
    void *router;                      /* the ROUTER socket */
    const fl_session_t *sessions;      /* which connection serves which key */
    fl_ledger_t *ledger;               /* counts the bytes sent */
    const struct fl_coord_config *cfg; /* federation, chunk size, heartbeat, training settings */
    const struct fl_base_file *base;   /* the base offered in every Welcome */
    const uint8_t *base_sig;           /* the coordinator's signature over its hash */
    const uint8_t *run_id;             /* this run's id (FL_RUN_ID_BYTES) */
    fl_global_t *global;               /* the adapter tasks and the final model carry */
    float prox_mu;                     /* FedProx's mu every task carries (0: off) */
    float secagg_norm_bound;           /* secure aggregation: the branches' own clip (0: off) */
    double dp_noise;                   /* secure aggregation: distributed DP's noise multiplier
                                          (0: off) */
};

typedef struct fl_outbox fl_outbox_t;

/* Send env (a secure-aggregation message) to the branch with this key. */
int fl_outbox_envelope(fl_outbox_t *self, const uint8_t key[FL_SIGN_PK_BYTES],
                       Fedtl__Envelope *env);

/* NULL when out of memory. */
fl_outbox_t *fl_outbox_new(const struct fl_outbox_env *env);
void fl_outbox_destroy(fl_outbox_t **self_p);

/* Each sends one message to the connection that proved this key; 0, or an FL_E code when it could
 * not be queued (logged). */
/* Welcome{federation, base offer, rounds completed, heartbeat, run id}. */
int fl_outbox_welcome(fl_outbox_t *self, const uint8_t key[FL_SIGN_PK_BYTES], uint32_t completed);
/* RoundTask{round, global adapter, training settings, deadline in ms, proximal mu, personal
 * head, secure aggregation, norm bound, and under distributed DP the noise multiplier and the
 * round's dp_shares (fl_secagg_dp_shares)}. */
int fl_outbox_task(fl_outbox_t *self, const uint8_t key[FL_SIGN_PK_BYTES], uint32_t round,
                   int64_t deadline_ms, uint32_t dp_shares);
/* FinalModel{rounds completed, global adapter, personalisation (when personalize_epochs),
 * personal head}. */
int fl_outbox_final(fl_outbox_t *self, const uint8_t key[FL_SIGN_PK_BYTES], uint32_t completed);
/* UpdateReceipt{round, accepted, reason}. */
int fl_outbox_receipt(fl_outbox_t *self, const uint8_t key[FL_SIGN_PK_BYTES], uint32_t round,
                      bool accepted, const char *reason);
/* Heartbeat{rounds completed}. */
int fl_outbox_heartbeat(fl_outbox_t *self, const uint8_t key[FL_SIGN_PK_BYTES], uint32_t completed);
/* BaseChunk{base hash, offset, data}. */
int fl_outbox_chunk(fl_outbox_t *self, const uint8_t key[FL_SIGN_PK_BYTES], uint64_t offset,
                    const uint8_t *data, size_t len);
/* Bye{code, reason} to any routing id (also one that is not a key), uncounted and unlogged. */
void fl_outbox_bye(fl_outbox_t *self, const uint8_t *peer, size_t peer_len, Fedtl__ByeCode code,
                   const char *reason);
/* Bye{code, reason} to the connection that proved key, if any (uncounted and unlogged). */
void fl_outbox_bye_branch(fl_outbox_t *self, const uint8_t key[FL_SIGN_PK_BYTES],
                          Fedtl__ByeCode code, const char *reason);
/* Challenge{nonce, federation} to a connection, uncounted and unlogged. */
void fl_outbox_challenge(fl_outbox_t *self, const uint8_t *peer, size_t peer_len,
                         const uint8_t nonce[FL_HELLO_NONCE_BYTES]);

#endif
