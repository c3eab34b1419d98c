/* fl_coord_secagg: the coordinator's secure aggregation (--secure-aggregation; docs/PROTOCOL.md,
 * "Secure aggregation"). For each round attempt it runs a fl_secagg_server among the branches
 * the attempt selected, feeds it their secure-aggregation messages, closes each phase at its
 * deadline, and hands the unmasked sum to the strategy as the round's one update: the
 * sample-weighted mean of the branches' changes added to the global adapter, with their total
 * weight. Every selected branch then counts as answered, and those in the sum as accepted, so
 * that the round core (fl_round) commits, or, after an abort, lets the attempt fall short and
 * be retried. Private to the coordinator's event loop. */
#ifndef FL_COORD_SECAGG_H
#define FL_COORD_SECAGG_H

#include "fedtl_wire.pb-c.h"
#include "fl_keys.h"

#include <cJSON.h>
#include <stdint.h>

struct fl_coord;
typedef struct fl_coord_secagg fl_coord_secagg_t;

/* The state of c's secure aggregation (c->cfg.secure_aggregation). NULL when out of memory. */
fl_coord_secagg_t *fl_coord_secagg_new(struct fl_coord *c);
void fl_coord_secagg_destroy(fl_coord_secagg_t **self_p);
/* After the round core's tick: start the secure aggregation of a round attempt that just
 * started (its Setup goes to every selected branch after its task), or end the current phase
 * when its time is up. */
void fl_coord_secagg_tick(fl_coord_secagg_t *self, int64_t now);
/* A secure-aggregation message from the branch with this key (its connection proved it). */
void fl_coord_secagg_recv(fl_coord_secagg_t *self, const uint8_t key[FL_SIGN_PK_BYTES],
                          const Fedtl__Envelope *env);
/* The record of the current attempt for its ledger line (how far it got, when the round ends
 * before it does), or NULL (owned by self). */
const cJSON *fl_coord_secagg_record(fl_coord_secagg_t *self);

#endif
