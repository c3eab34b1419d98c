/* fl_branch_secagg: a branch's side of secure aggregation (docs/PROTOCOL.md, "Secure
 * aggregation"): when a task asks for it, the trained adapter's change from the global adapter
 * (clipped to the task's norm bound) becomes the input of a fl_secagg_client for the round,
 * which answers the coordinator's secure-aggregation messages through the uplink. */
#ifndef FL_BRANCH_SECAGG_H
#define FL_BRANCH_SECAGG_H

#include "fedtl_wire.pb-c.h"
#include "fl_keys.h"
#include "fl_pool.h"
#include "fl_uplink.h"

typedef struct fl_branch_secagg fl_branch_secagg_t;

/* The branch id (borrowed) speaking through up (borrowed), expanding masks on pool's threads
 * (borrowed; NULL: the caller's). NULL when out of memory. */
fl_branch_secagg_t *fl_branch_secagg_new(const struct fl_identity *id, fl_uplink_t *up,
                                         fl_pool_t *pool);
void fl_branch_secagg_destroy(fl_branch_secagg_t **self_p);
/* Task t was trained into body (an UpdateBody): its adapter's change from t's adapter, clipped
 * to t's norm bound, weighted by its samples, is the input of a fresh secure aggregation of
 * t's round in federation's run (the previous one, if any, ends). */
int fl_branch_secagg_answer(fl_branch_secagg_t *self, const char *federation,
                            const uint8_t run_id[FL_RUN_ID_BYTES], const Fedtl__RoundTask *t,
                            const uint8_t *body, size_t body_len);
/* A secure-aggregation message from the coordinator; failures are logged (the round goes on
 * without this branch). Always 0. */
int fl_branch_secagg_recv(fl_branch_secagg_t *self, const Fedtl__Envelope *env);

#endif
