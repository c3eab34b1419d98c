/* fl_secagg_server: the coordinator's side of secure aggregation (SecAgg+) for one round, with
 * no I/O: it is started, fed the branches' decoded messages and told when a phase's time is up;
 * it asks for messages to be sent through a callback. In the end it holds the sum of the masked
 * inputs of the branches that survived, unmasked, and never any single branch's input
 * (docs/SECURITY.md, "Secure aggregation"). Single-threaded. */
#ifndef FL_SECAGG_SERVER_H
#define FL_SECAGG_SERVER_H

#include "fl_secagg.h"

/* What the server asks for. */
struct fl_secagg_server_ops {
    /* Send env to branch (its index in the roster). env and what it points to are the
     * server's and valid during the call only (encode it there). */
    void (*send)(void *arg, uint32_t branch, Fedtl__Envelope *env);
    /* Threads that expand the masks the server removes (borrowed; NULL: the caller's thread
     * alone). The sum is the same whatever the pool. */
    fl_pool_t *pool;
};

typedef struct fl_secagg_server fl_secagg_server_t;

/* A secure aggregation of ctx's round among p's branches (copied; p is checked: NULL with a
 * message when it does not pass fl_secagg_params_check). */
fl_secagg_server_t *fl_secagg_server_new(const struct fl_secagg_ctx *ctx,
                                         const struct fl_secagg_params *p,
                                         const struct fl_secagg_server_ops *ops, void *arg);
void fl_secagg_server_destroy(fl_secagg_server_t **self_p);

/* Send every branch the SecAggSetup. */
int fl_secagg_server_start(fl_secagg_server_t *self);
/* Take a message that the transport authenticated as from roster index branch. A phase ends
 * (and the next one's frames go out) when every branch still in has answered. 0 when taken;
 * FL_EINVAL for a message the phase does not expect (late, duplicate, from a branch no longer
 * in), FL_ECRYPTO for a bad signature, FL_EFORMAT for contents that break the protocol; the
 * message is then ignored, and the error says why (the caller logs it with the peer). */
int fl_secagg_server_recv(fl_secagg_server_t *self, uint32_t branch, const Fedtl__Envelope *env);
/* The fewest masked inputs the sum may be unmasked with (0: the threshold, as by default):
 * fewer end the round at the masked phase with SECAGG_ABORT_TOO_FEW, before anything is
 * revealed. Before the masked phase ends. */
void fl_secagg_server_min_inputs(fl_secagg_server_t *self, uint32_t k);
/* The phase's time is up: end it with the branches that answered (the others dropped). */
int fl_secagg_server_timeout(fl_secagg_server_t *self);
enum fl_secagg_phase fl_secagg_server_phase(const fl_secagg_server_t *self);
/* Why the aggregation aborted (a SecAggAbortCode), 0 if it did not. */
int fl_secagg_server_abort_code(const fl_secagg_server_t *self);
/* After FL_SECAGG_PHASE_DONE: the sum of the survivors' inputs (length + 1 words, the last the
 * total weight), owned by the server. NULL before. */
const uint64_t *fl_secagg_server_sum(const fl_secagg_server_t *self);
/* Did branch's masked input reach the sum? (false before the masked phase ended) */
bool fl_secagg_server_survived(const fl_secagg_server_t *self, uint32_t branch);
/* How many phases branch answered, in order (0: not even its keys; 5: it revealed). */
int fl_secagg_server_progress(const fl_secagg_server_t *self, uint32_t branch);
/* How many branches answered a phase (keys, shares, masked, consistency, reveal). */
uint32_t fl_secagg_server_answered(const fl_secagg_server_t *self, enum fl_secagg_phase phase);

#endif
