/* fl_secagg: what the two sides of secure aggregation (fl_secagg_server, fl_secagg_client)
 * share: a round's parameters, their hash that every key advertisement signs, the signed
 * bodies of the messages, and the phases (docs/PROTOCOL.md, "Secure aggregation"). */
#ifndef FL_SECAGG_H
#define FL_SECAGG_H

#include "fedtl_wire.pb-c.h"
#include "fl_strategy.h"
#include "fl_secagg_crypto.h"
#include "fl_secagg_fixed.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A round's secure aggregation as the coordinator sets it up (SecAggSetup). */
struct fl_secagg_params {
    uint32_t n;                               /* selected branches */
    uint8_t (*branches)[FL_SIGN_PK_BYTES];    /* their identity keys, index order (n) */
    uint8_t graph_seed[FL_SECAGG_SEED_BYTES]; /* the neighbour graph's seed */
    uint32_t degree;                          /* neighbours per branch */
    uint32_t threshold;                       /* Shamir threshold among neighbours */
    struct fl_secagg_fixed fixed;             /* the fixed-point encoding */
    uint64_t length;                          /* values per input (weight word excluded) */
};

/* The phases, in order; each ends when every branch still in has answered or at a timeout. */
enum fl_secagg_phase {
    FL_SECAGG_PHASE_KEYS,        /* ephemeral keys come in */
    FL_SECAGG_PHASE_SHARES,      /* sealed shares come in */
    FL_SECAGG_PHASE_MASKED,      /* masked inputs come in */
    FL_SECAGG_PHASE_CONSISTENCY, /* signatures over the survivor set come in */
    FL_SECAGG_PHASE_REVEAL,      /* shares for unmasking come in */
    FL_SECAGG_PHASE_DONE,        /* the sum is known */
    FL_SECAGG_PHASE_ABORTED      /* too few remained, or a check failed: nothing revealed */
};

/* The phase's name for logs ("keys", ..., "aborted"). */
const char *fl_secagg_phase_name(enum fl_secagg_phase phase);

/* Check p: 3 <= n <= FL_SECAGG_MAX_BRANCHES, distinct keys, a degree the graph can have, a
 * threshold in [2, degree], the fixed point's overflow bound for
 * at least n branches, a length within one masked input. 0 or FL_EINVAL / FL_ERANGE with a
 * message. */
int fl_secagg_params_check(const struct fl_secagg_params *p);
/* BLAKE2b-256 of everything in p: the branches sign it with their keys, so that neighbours
 * given different setups by the coordinator refuse each other's keys. */
void fl_secagg_params_hash(const struct fl_secagg_params *p, uint8_t out[32]);
/* p as a SecAggSetup for round (pointers into p: p must outlive m's use). */
void fl_secagg_params_put(const struct fl_secagg_params *p, uint32_t round, Fedtl__SecAggSetup *m,
                          ProtobufCBinaryData *keys_storage);
/* A decoded SecAggSetup into p (p->branches malloc'd: fl_secagg_params_free), checked. */
int fl_secagg_params_get(const Fedtl__SecAggSetup *m, struct fl_secagg_params *p);
void fl_secagg_params_free(struct fl_secagg_params *p);

/* Index of key in p's roster, or -1. */
int fl_secagg_index(const struct fl_secagg_params *p, const uint8_t key[FL_SIGN_PK_BYTES]);
/* Position of j in row (sorted, k entries), or -1. */
int fl_secagg_pos(const uint32_t *row, uint32_t k, uint32_t j);

/* The signed bodies (malloc'd into *body, *len; FL_ENOMEM): the shares' (peer || ciphertext)*,
 * the survivor list's keys concatenated, the reveal's (owner || survived || share)*, the masked
 * words little-endian (which fl_secagg_sign_words / fl_secagg_verify_words hash in place). */
int fl_secagg_body_shares(Fedtl__SecAggShare *const *s, size_t n, uint8_t **body, size_t *len);
int fl_secagg_body_keys(const ProtobufCBinaryData *keys, size_t n, uint8_t **body, size_t *len);
int fl_secagg_body_reveal(Fedtl__SecAggRevealShare *const *s, size_t n, uint8_t **body,
                          size_t *len);
int fl_secagg_body_words(const uint64_t *w, size_t n, uint8_t **body, size_t *len);

/* Can strategy c run under secure aggregation, where the coordinator sees only the sum? The
 * sample-weighted mean can, with any server optimiser (they act on the aggregate), and so can a
 * fixed norm bound (each branch clips its own delta before masking: fl_secagg_clip). Rules that
 * must see individual updates (median, trimmed mean, Krum, multi-Krum) and the median norm
 * bound cannot: FL_EINVAL saying so. */
int fl_secagg_strategy_check(const struct fl_strategy_config *c);
/* Scale delta (n values) so that its L2 norm is at most bound (bound <= 0: no bound); returns
 * the factor applied (1 when within it). */
double fl_secagg_clip(float *delta, size_t n, double bound);

/* ---- distributed DP (docs/PRIVACY.md, "Central and distributed DP") ---- */

/* A noise share must fit the encoding: clip + FL_SECAGG_DP_TAIL deviations within
 * FL_SECAGG_FIXED_DP's range (a value is cut there with probability below 1e-32). */
#define FL_SECAGG_DP_TAIL 12.0

/* m, the fewest inputs a distributed-DP sum of `selected` branches may be unmasked with, and
 * the setup's threshold: the secure aggregation's own threshold, raised to min_clients (a
 * round with fewer inputs falls short anyway) as far as the neighbour count
 * (fl_secagg_degree(selected, dropout), the coordinator's secagg_dropout) allows. Each
 * branch's noise share is z C / sqrt(m). 0 when selected < 3. */
uint32_t fl_secagg_dp_shares(uint32_t selected, uint32_t min_clients, double dropout);
/* Check the DP settings of a RoundTask (noise multiplier z, clip C = its norm bound, share
 * count m) and give a branch's share deviation *sigma = z C / sqrt(m). FL_EFORMAT naming the
 * field for z not finite or outside (0, 1e6], C not finite or <= 0, m outside [2,
 * FL_SECAGG_MAX_BRANCHES]; FL_ERANGE when C + FL_SECAGG_DP_TAIL sigma exceeds the DP
 * encoding's range. */
int fl_secagg_dp_check(double z, double clip, uint32_t shares, double *sigma);

#endif
