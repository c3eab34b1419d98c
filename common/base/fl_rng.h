/* fl_rng: a small, fast, seedable random generator (xoshiro256**), so that every run is
 * reproducible from its seed. Not for cryptography: keys and nonces come from libsodium. */
#ifndef FL_RNG_H
#define FL_RNG_H

#include <stdint.h>
#include <stddef.h>

struct fl_rng {
    uint64_t s[4]; /* generator state; save/restore it to resume a sequence */
};

/* Seed from a 64-bit value (splitmix64 expansion). */
void fl_rng_seed(struct fl_rng *r, uint64_t seed);
uint64_t fl_rng_u64(struct fl_rng *r);
/* Uniform in [0, 1). */
double fl_rng_uniform(struct fl_rng *r);
/* Uniform integer in [0, n) without modulo bias; n > 0. */
uint64_t fl_rng_below(struct fl_rng *r, uint64_t n);
/* Standard normal (Box-Muller). */
double fl_rng_normal(struct fl_rng *r);
/* Gamma(shape, 1) (Marsaglia-Tsang; shape > 0). */
double fl_rng_gamma(struct fl_rng *r, double shape);
/* Fisher-Yates shuffle of n indices. */
void fl_rng_shuffle(struct fl_rng *r, size_t *idx, size_t n);

#endif
