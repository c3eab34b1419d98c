/* fl_secagg_fixed: the fixed-point encoding of secure aggregation's inputs (docs/SECURITY.md,
 * "Secure aggregation").
 *
 * A branch's input is its update multiplied by its weight (its sample count, clamped to
 * [1, max_weight]), each value clipped to [-clip, clip] first, scaled by 2^frac_bits and rounded
 * to the nearest integer, in the ring Z_2^64 (two's complement), followed by one word holding the
 * weight itself. The coordinator unmasks only the sum of these vectors; the sample-weighted
 * mean is the first n words divided by the last one and by 2^frac_bits. The parameters are
 * checked so that the sum of max_branches inputs cannot leave (-2^63, 2^63): then the sum is
 * exact and each mean value is within 2^-(frac_bits+1) of the weighted mean of the clipped
 * values (before the final conversion to float). */
#ifndef FL_SECAGG_FIXED_H
#define FL_SECAGG_FIXED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The encoding's parameters, the same at every branch of a round. */
struct fl_secagg_fixed {
    uint32_t frac_bits;    /* fractional bits: resolution 2^-frac_bits */
    double clip;           /* each value is clipped to [-clip, clip] */
    uint32_t max_weight;   /* a branch's weight is clamped to [1, max_weight] */
    uint32_t max_branches; /* most inputs one sum may hold */
};

/* fedtl's defaults: 24 fractional bits, clip 256, weight up to 2^20 samples, 1024 branches;
 * 2^10 * 2^20 * 2^8 * 2^24 = 2^62 < 2^63. */
#define FL_SECAGG_FIXED_DEFAULT                                                                    \
    ((struct fl_secagg_fixed){                                                                     \
        .frac_bits = 24, .clip = 256.0, .max_weight = 1u << 20, .max_branches = 1u << 10})

/* Under distributed DP (docs/PRIVACY.md) every weight is 1, which leaves room for a wide
 * value range: a branch's noise share must not reach the clip (it would be cut, and the sum
 * would carry less noise than counted). 2^10 * 1 * 2^20 * 2^24 = 2^54 < 2^63. */
#define FL_SECAGG_FIXED_DP                                                                         \
    ((struct fl_secagg_fixed){                                                                     \
        .frac_bits = 24, .clip = 1048576.0, .max_weight = 1, .max_branches = 1u << 10})

/* 0 when max_branches * max_weight * clip * 2^frac_bits (plus the rounding) stays below 2^63
 * and the total weight fits, else FL_ERANGE naming the bound; FL_EINVAL for a non-positive
 * clip, a zero count or more than 52 fractional bits. */
int fl_secagg_fixed_check(const struct fl_secagg_fixed *fx);

/* Are a and b the same encoding, field by field (the clip exactly)? */
bool fl_secagg_fixed_same(const struct fl_secagg_fixed *a, const struct fl_secagg_fixed *b);

/* The weight a branch with `samples` samples contributes: samples clamped to [1, max_weight]. */
uint32_t fl_secagg_fixed_weight(const struct fl_secagg_fixed *fx, uint64_t samples);

/* Encode n values x with weight (already clamped) into out[n + 1]. FL_ERANGE for a value that
 * is not finite (naming its index), FL_EINVAL for a weight outside [1, max_weight]. */
int fl_secagg_fixed_encode(const struct fl_secagg_fixed *fx, const float *x, size_t n,
                           uint32_t weight, uint64_t *out);

/* The sum of the inputs summed into sum[n + 1], unweighted: out[i] = sum[i] / 2^frac_bits
 * (distributed DP, where every weight is 1 and the sum, not the mean, is wanted). The weight
 * word sum[n] is not read: each branch writes its own, and the caller knows the input count. */
void fl_secagg_fixed_decode_sum(const struct fl_secagg_fixed *fx, const uint64_t *sum, size_t n,
                                double *out);

/* The weighted mean of the inputs summed into sum[n + 1]: mean[i] = sum[i] / (sum[n] *
 * 2^frac_bits), sum[i] read as two's complement; *total_weight gets sum[n]. FL_ERANGE when
 * the total weight is zero or larger than max_branches * max_weight (a sum that is not one). */
int fl_secagg_fixed_decode(const struct fl_secagg_fixed *fx, const uint64_t *sum, size_t n,
                           float *mean, uint64_t *total_weight);

#endif
