/* fl_intake: one sealed update from a branch, through admission (the round core's rules),
 * the base hash, the signature (verified before anything is decrypted), decryption on the
 * pool's threads, decoding, the checks against the global adapter and those of its contents
 * (fl_admit: metrics, distance, weight), into the aggregation strategy (docs/PROTOCOL.md,
 * "Updates" and "Admission"). Every rejection goes out through the round core
 * (fl_round_reject) with its reason; every copy of the plaintext is wiped before it is freed. */
#ifndef FL_INTAKE_H
#define FL_INTAKE_H

#include "fl_admit.h"
#include "fl_codec.h"
#include "fl_allowlist.h"
#include "fl_keys.h"
#include "fl_ledger.h"
#include "fl_modelfile.h"
#include "fl_pool.h"
#include "fl_round.h"
#include "fl_strategy.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What an update is checked against and where it goes: borrowed, outliving the intake. */
struct fl_intake_env {
    fl_round_t *round;                    /* admission, answers, rejections */
    const struct fl_identity *id;         /* the coordinator's keys: open the update key */
    const char *federation;               /* bound into every signature */
    const uint8_t *run_id;                /* and this run's id (FL_RUN_ID_BYTES) */
    const uint8_t *base_hash;             /* the base every update must name (FL_HASH_BYTES) */
    const struct fl_adapter_file *global; /* what every update must match */
    fl_strategy_t *strategy;              /* where accepted updates are folded in */
    const struct fl_admit_limits *limits; /* bounds on an update's weight and distance */
    fl_pool_t *pool;                      /* threads opening and checking updates (or NULL) */
    bool personal_head;                   /* tasks ask for personal heads: updates report
                                             personal_* figures, checked and recorded */
};

typedef struct fl_intake fl_intake_t;

/* NULL when out of memory. */
fl_intake_t *fl_intake_new(const struct fl_intake_env *env);
void fl_intake_destroy(fl_intake_t **self_p);

/* Take update u from peer (the routing id the transport authenticated; allow: the allow-list
 * now). FL_REJECT_NONE when it was folded into the aggregate, with *out describing it (the
 * caller records it and sends the receipt; out->weight < out->samples when its claim was
 * cut); else the reason, already reported. */
enum fl_reject fl_intake_take(fl_intake_t *self, const fl_allowlist_t *allow, const uint8_t *peer,
                              size_t peer_len, const Fedtl__SealedUpdate *u,
                              struct fl_ledger_update *out);

/* An update's adapter against the global one: the same base, configuration, tensor names and
 * shapes, and only finite values, with its L2 distance from the global adapter in *distance
 * (may be NULL) from the same pass (on pool's threads; pool may be NULL). 0, or FL_EMISMATCH /
 * FL_ERANGE with a message that says what differs. */
int fl_coord_check_adapter(const struct fl_adapter_file *global,
                           const uint8_t base_hash[FL_HASH_BYTES], const struct fl_adapter_file *u,
                           fl_pool_t *pool, double *distance);

#endif
