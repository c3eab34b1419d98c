/* fl_attack: a malicious branch, for tests and benchmarks only. Compiled into fedtl-client
 * only by a build configured with -DFEDTL_TESTING=ON (which defines FEDTL_TESTING); a default
 * build has neither this module nor the --test-attack options, so a shipped client cannot be
 * turned into an attacker by a flag. The attacks measure what the coordinator's admission
 * checks and aggregation strategies do against a branch that misbehaves:
 *
 *   scale      sends global + F (trained - global): a boosted update (F default 100)
 *   signflip   sends global - F (trained - global): the update turned against training
 *              (F default 1)
 *   noise      sends the trained adapter plus Gaussian noise of standard deviation F on every
 *              value (F default 1), seeded from the round's task
 *   nan        sends the trained adapter with a NaN as the first value of its first tensor
 *   labelflip  trains honestly on poisoned data: every local record of the federation's
 *              class c (of C) is relabelled C-1-c, held-out records included (F unused)
 *
 * The branch's reported metrics are those of its honest evaluation (its held-out records,
 * before the attack touches the adapter), as a careful attacker's would be. */
#ifndef FL_ATTACK_H
#define FL_ATTACK_H

#include "fl_dataset.h"
#include "fl_model.h"

#include <stddef.h>
#include <stdint.h>

/* Which attack; FL_ATTACK_NONE is an honest branch. */
enum fl_attack_kind {
    FL_ATTACK_NONE = 0,
    FL_ATTACK_SCALE,
    FL_ATTACK_SIGNFLIP,
    FL_ATTACK_NOISE,
    FL_ATTACK_NAN,
    FL_ATTACK_LABELFLIP,
};

/* An attack as configured (--test-attack, --test-attack-factor). */
struct fl_attack {
    enum fl_attack_kind kind; /* what the branch does */
    double factor;            /* F, >= 0; 0: the kind's default (scale 100, others 1) */
};

/* The attack's name as the option reads it ("scale"), "none" for FL_ATTACK_NONE. */
const char *fl_attack_name(enum fl_attack_kind kind);
/* F as the attack uses it: factor, or the kind's default when factor is 0. */
double fl_attack_factor(const struct fl_attack *a);

/* labelflip: relabel ds's records (labels in [0, num_classes)) c -> num_classes-1-c. Nothing
 * for another kind or a NULL attack. */
void fl_attack_labels(const struct fl_attack *a, struct fl_dataset *ds);

/* scale, signflip, noise, nan: rewrite the trained adapter of model (FL_SET_ADAPTER) in place
 * from the global adapter it was trained from (adapter file bytes, decoded here; every
 * adapter tensor is matched by name) and seed (noise). Logs a test_attack warning naming the
 * round. 0, or the decoder's code / FL_EMISMATCH when the global does not fit the model.
 * Nothing for another kind or a NULL attack. */
int fl_attack_update(const struct fl_attack *a, fl_model_t *model, const uint8_t *global,
                     size_t global_len, uint32_t round, uint64_t seed);

#endif
