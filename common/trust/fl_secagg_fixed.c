/* fl_secagg_fixed: fixed-point encoding in Z_2^64 with clipping and an overflow bound. */
#include "fl_secagg_fixed.h"
#include "fl_error.h"

#include <math.h>

int fl_secagg_fixed_check(const struct fl_secagg_fixed *fx)
{
    if (!(fx->clip > 0) || !isfinite(fx->clip) || fx->max_weight == 0 || fx->max_branches == 0 ||
        fx->frac_bits > 52)
        return fl_fail(FL_EINVAL,
                       "secure aggregation: clip must be positive, weights and branches non-zero, "
                       "at most 52 fractional bits");
    /* each word is at most max_weight * clip * 2^frac + 1/2 in magnitude */
    double word = (double)fx->max_weight * fx->clip * ldexp(1.0, (int)fx->frac_bits) + 0.5;
    double total = word * (double)fx->max_branches;
    if (!(total < ldexp(1.0, 63)))
        return fl_fail(FL_ERANGE,
                       "secure aggregation: %u branches x weight %u x clip %g x 2^%u = 2^%.1f "
                       "would overflow the 64-bit ring (must stay below 2^63)",
                       fx->max_branches, fx->max_weight, fx->clip, fx->frac_bits, log2(total));
    return 0;
}

bool fl_secagg_fixed_same(const struct fl_secagg_fixed *a, const struct fl_secagg_fixed *b)
{
    return a->frac_bits == b->frac_bits && a->clip == b->clip && a->max_weight == b->max_weight &&
           a->max_branches == b->max_branches;
}

uint32_t fl_secagg_fixed_weight(const struct fl_secagg_fixed *fx, uint64_t samples)
{
    if (samples < 1)
        return 1;
    return samples > fx->max_weight ? fx->max_weight : (uint32_t)samples;
}

int fl_secagg_fixed_encode(const struct fl_secagg_fixed *fx, const float *x, size_t n,
                           uint32_t weight, uint64_t *out)
{
    if (weight < 1 || weight > fx->max_weight)
        return fl_fail(FL_EINVAL, "secure aggregation: weight %u outside [1, %u]", weight,
                       fx->max_weight);
    double scale = ldexp((double)weight, (int)fx->frac_bits);
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        if (!isfinite(v))
            return fl_fail(FL_ERANGE, "secure aggregation: value %zu is not finite", i);
        v = v > fx->clip ? fx->clip : v < -fx->clip ? -fx->clip : v;
        out[i] = (uint64_t)llround(v * scale); /* two's complement in Z_2^64 */
    }
    out[n] = weight;
    return 0;
}

/* sum[n] is a total weight some inputs can have. */
static int s_total(const struct fl_secagg_fixed *fx, const uint64_t *sum, size_t n)
{
    uint64_t w = sum[n];
    if (w == 0 || w > (uint64_t)fx->max_branches * fx->max_weight)
        return fl_fail(FL_ERANGE, "secure aggregation: total weight %llu is not a sum of inputs",
                       (unsigned long long)w);
    return 0;
}

void fl_secagg_fixed_decode_sum(const struct fl_secagg_fixed *fx, const uint64_t *sum, size_t n,
                                double *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = ldexp((double)(int64_t)sum[i], -(int)fx->frac_bits);
}

int fl_secagg_fixed_decode(const struct fl_secagg_fixed *fx, const uint64_t *sum, size_t n,
                           float *mean, uint64_t *total_weight)
{
    uint64_t w = sum[n];
    int rc = s_total(fx, sum, n);
    if (rc)
        return rc;
    double div = ldexp((double)w, (int)fx->frac_bits);
    for (size_t i = 0; i < n; i++)
        mean[i] = (float)((double)(int64_t)sum[i] / div);
    *total_weight = w;
    return 0;
}
