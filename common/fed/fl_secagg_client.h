/* fl_secagg_client: a branch's side of secure aggregation (SecAgg+) for one round, with no I/O:
 * given its update and the coordinator's messages, it asks for its own messages to be sent
 * through a callback. It refuses (and from then on reveals nothing) a neighbour key that is not
 * signed for this setup, a share that does not open, too few neighbours, and a survivor set
 * that is not the one its neighbours signed (docs/SECURITY.md, "Secure aggregation").
 * Single-threaded. */
#ifndef FL_SECAGG_CLIENT_H
#define FL_SECAGG_CLIENT_H

#include "fl_keys.h"
#include "fl_secagg.h"

/* What the client asks for. */
struct fl_secagg_client_ops {
    /* Send env to the coordinator; env and what it points to are valid during the call only
     * (encode it there). 0, or an FL_E code: the client then aborts. */
    int (*send)(void *arg, Fedtl__Envelope *env);
    /* Threads that expand the masks of the masked input (borrowed; NULL: the caller's thread
     * alone). The masked input is the same whatever the pool. */
    fl_pool_t *pool;
};

typedef struct fl_secagg_client fl_secagg_client_t;

/* The branch `id` (borrowed: it must outlive the client) in ctx's round. NULL on error. */
fl_secagg_client_t *fl_secagg_client_new(const struct fl_identity *id,
                                         const struct fl_secagg_ctx *ctx,
                                         const struct fl_secagg_client_ops *ops, void *arg);
/* Wipes every secret. */
void fl_secagg_client_destroy(fl_secagg_client_t **self_p);

/* The branch's input: n values (its update) and its sample count (the weight, clamped by the
 * setup's encoding). Copied. Keys go out once both the input and the setup are there.
 * FL_EMISMATCH when n is not the setup's length; FL_ERANGE for a value that is not finite. */
int fl_secagg_client_input(fl_secagg_client_t *self, const float *x, size_t n, uint64_t samples);
/* Distributed DP: refuse (abort at) a setup whose threshold is below min_threshold (a sum of
 * fewer inputs would carry less noise than counted) or whose encoding is not exactly *fixed
 * (copied): another clip could cut the noise, another grid round it away, another weight scale
 * one input above the rest. Before the setup arrives. */
void fl_secagg_client_require(fl_secagg_client_t *self, uint32_t min_threshold,
                              const struct fl_secagg_fixed *fixed);
/* Take a decoded message from the coordinator. 0 when taken; FL_EINVAL for one of another
 * round or phase (ignored); FL_EFORMAT, FL_ECRYPTO or FL_ERANGE when it breaks the protocol or
 * leaves too few neighbours: the client then aborts (wipes its secrets, sends nothing more). */
int fl_secagg_client_recv(fl_secagg_client_t *self, const Fedtl__Envelope *env);
/* The phase the client takes part in next (FL_SECAGG_PHASE_DONE once it revealed its shares,
 * FL_SECAGG_PHASE_ABORTED after an abort). */
enum fl_secagg_phase fl_secagg_client_phase(const fl_secagg_client_t *self);
/* The round's setup as the coordinator sent it (checked), or NULL before it arrived. */
const struct fl_secagg_params *fl_secagg_client_params(const fl_secagg_client_t *self);

#endif
