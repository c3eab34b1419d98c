/* fl_dp: the RDP accountant of the sampled Gaussian mechanism, its (epsilon, delta), the
 * calibration of the noise multiplier, and CSPRNG Gaussian noise (fl_dp.h).
 *
 * For one step with sampling rate q and noise multiplier z, Mironov, Talwar and Zhang (2019)
 * give the RDP at order alpha as log(A_alpha) / (alpha - 1), where
 *
 *   A_alpha = E_{x ~ N(0, z^2)} [((1 - q) + q exp((2x - 1) / (2 z^2)))^alpha]
 *
 * For an integer alpha the binomial expansion is exact:
 *   A_alpha = sum_{i=0..alpha} C(alpha, i) q^i (1 - q)^(alpha - i) exp((i^2 - i) / (2 z^2)).
 * For a fractional alpha the integral is split at z0 = z^2 log(1/q - 1) + 1/2 and each half
 * expanded in a binomial series whose terms carry an erfc (their Section 3.3); the series is
 * summed until its terms fall below e^-30. Everything is in log space. */
#include "fl_dp.h"
#include "fl_error.h"

#include <math.h>
#include <sodium.h>
#include <stdbool.h>
#include <string.h>

static const double s_orders[FL_DP_NORDERS] = {
    1.1,  1.2,  1.3,  1.4, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0,  2.1,  2.2,  2.3,  2.4,  2.5,  2.6,
    2.7,  2.8,  2.9,  3.0, 3.1, 3.2, 3.3, 3.4, 3.5, 3.6,  3.7,  3.8,  3.9,  4.0,  4.1,  4.2,
    4.3,  4.4,  4.5,  4.6, 4.7, 4.8, 4.9, 5.0, 5.1, 5.2,  5.3,  5.4,  5.5,  5.6,  5.7,  5.8,
    5.9,  6.0,  6.1,  6.2, 6.3, 6.4, 6.5, 6.6, 6.7, 6.8,  6.9,  7.0,  7.1,  7.2,  7.3,  7.4,
    7.5,  7.6,  7.7,  7.8, 7.9, 8.0, 8.1, 8.2, 8.3, 8.4,  8.5,  8.6,  8.7,  8.8,  8.9,  9.0,
    9.1,  9.2,  9.3,  9.4, 9.5, 9.6, 9.7, 9.8, 9.9, 10.0, 10.1, 10.2, 10.3, 10.4, 10.5, 10.6,
    10.7, 10.8, 10.9, 12,  13,  14,  15,  16,  17,  18,   19,   20,   21,   22,   23,   24,
    25,   26,   27,   28,  29,  30,  31,  32,  33,  34,   35,   36,   37,   38,   39,   40,
    41,   42,   43,   44,  45,  46,  47,  48,  49,  50,   51,   52,   53,   54,   55,   56,
    57,   58,   59,   60,  61,  62,  63,  64,  128, 256,  512};

const double *fl_dp_orders(void)
{
    return s_orders;
}

/* ---- RDP of the sampled Gaussian mechanism ---- */

/* log(e^a + e^b) */
static double s_log_add(double a, double b)
{
    if (a == -INFINITY)
        return b;
    if (b == -INFINITY)
        return a;
    double hi = a > b ? a : b, lo = a > b ? b : a;
    return hi + log1p(exp(lo - hi));
}

/* log(e^a - e^b) for a >= b (-INFINITY when they are equal). */
static double s_log_sub(double a, double b)
{
    if (b == -INFINITY)
        return a;
    if (b >= a)
        return -INFINITY;
    return a + log1p(-exp(b - a));
}

/* log(erfc(x)), with the asymptotic expansion where erfc underflows. */
static double s_log_erfc(double x)
{
    if (x < 25)
        return log(erfc(x));
    double r = 1 / (x * x);
    return -x * x - log(x) - 0.5 * log(M_PI) +
           log1p(r * (-0.5 + r * (0.75 + r * (-1.875 + r * 6.5625))));
}

static double s_log_a_int(double q, double z, int alpha)
{
    double la = -INFINITY, lq = log(q), l1q = log1p(-q), lg = lgamma(alpha + 1.0);
    for (int i = 0; i <= alpha; i++) {
        double coef = lg - lgamma(i + 1.0) - lgamma(alpha - i + 1.0);
        la = s_log_add(la, coef + i * lq + (alpha - i) * l1q + (double)i * (i - 1) / (2 * z * z));
    }
    return la;
}

static double s_log_a_frac(double q, double z, double alpha)
{
    double a0 = -INFINITY, a1 = -INFINITY, lq = log(q), l1q = log1p(-q);
    double z0 = z * z * log(1 / q - 1) + 0.5, s2 = sqrt(2.0) * z;
    double log_coef = 0; /* log |C(alpha, i)| */
    bool positive = true;
    for (int i = 0; i < 100000; i++) {
        double j = alpha - i;
        double t0 = log_coef + i * lq + j * l1q, t1 = log_coef + j * lq + i * l1q;
        double e0 = log(0.5) + s_log_erfc((i - z0) / s2);
        double e1 = log(0.5) + s_log_erfc((z0 - j) / s2);
        double s0 = t0 + (double)i * (i - 1) / (2 * z * z) + e0;
        double s1 = t1 + j * (j - 1) / (2 * z * z) + e1;
        if (positive) {
            a0 = s_log_add(a0, s0);
            a1 = s_log_add(a1, s1);
        } else {
            a0 = s_log_sub(a0, s0);
            a1 = s_log_sub(a1, s1);
        }
        if ((s0 > s1 ? s0 : s1) < -30)
            break;
        /* C(alpha, i + 1) = C(alpha, i) (alpha - i) / (i + 1) */
        log_coef += log(fabs(j)) - log(i + 1.0);
        if (j < 0)
            positive = !positive;
    }
    return s_log_add(a0, a1);
}

double fl_dp_rdp(double q, double z, double alpha)
{
    if (!(q >= 0 && q <= 1) || !(z >= 0) || !(alpha > 1) || isnan(z))
        return NAN;
    if (q == 0)
        return 0;
    if (z == 0 || isinf(alpha))
        return INFINITY;
    if (q == 1)
        return alpha / (2 * z * z);
    double la = alpha == floor(alpha) && alpha < 1e6 ? s_log_a_int(q, z, (int)alpha)
                                                     : s_log_a_frac(q, z, alpha);
    double r = la / (alpha - 1);
    return r > 0 ? r : 0;
}

/* ---- (epsilon, delta) ---- */

double fl_dp_epsilon(const double *orders, const double *rdp, size_t n, double delta,
                     enum fl_dp_conversion conv, double *best)
{
    double eps = INFINITY, at = NAN;
    if (!(delta > 0 && delta < 1))
        return NAN;
    for (size_t k = 0; k < n; k++) {
        double a = orders[k], e;
        if (!(a > 1) || !isfinite(rdp[k]))
            continue;
        if (conv == FL_DP_CONVERT_MIRONOV)
            e = rdp[k] - log(delta) / (a - 1);
        else
            e = rdp[k] + log1p(-1 / a) - (log(delta) + log(a)) / (a - 1);
        if (e < eps) {
            eps = e;
            at = a;
        }
    }
    if (best)
        *best = at;
    return eps < 0 ? 0 : eps;
}

int fl_dp_account_spend(struct fl_dp_account *a, double q, double z)
{
    if (!(q >= 0 && q <= 1) || !(z > 0 && isfinite(z)))
        return fl_fail(FL_EINVAL, "dp: sampling rate %g or noise multiplier %g out of range", q, z);
    for (size_t k = 0; k < FL_DP_NORDERS; k++)
        a->rdp[k] += fl_dp_rdp(q, z, s_orders[k]);
    a->rounds++;
    return 0;
}

double fl_dp_account_epsilon(const struct fl_dp_account *a, double delta)
{
    if (a->rounds == 0)
        return 0;
    return fl_dp_epsilon(s_orders, a->rdp, FL_DP_NORDERS, delta, FL_DP_CONVERT_BALLE, NULL);
}

double fl_dp_account_epsilon_after(const struct fl_dp_account *a, double q, double z, double delta)
{
    struct fl_dp_account b = *a;
    if (fl_dp_account_spend(&b, q, z) != 0)
        return NAN;
    return fl_dp_account_epsilon(&b, delta);
}

int fl_dp_account_check(const struct fl_dp_account *a)
{
    for (size_t k = 0; k < FL_DP_NORDERS; k++)
        if (!(isfinite(a->rdp[k]) && a->rdp[k] >= 0))
            return fl_fail(FL_EINVAL, "dp: the RDP at order %g is %g, not a finite value >= 0",
                           s_orders[k], a->rdp[k]);
    return 0;
}

/* Epsilon after `rounds` rounds at (q, z). */
static double s_eps(double q, double z, uint32_t rounds, double delta)
{
    double rdp[FL_DP_NORDERS];
    for (size_t k = 0; k < FL_DP_NORDERS; k++)
        rdp[k] = rounds * fl_dp_rdp(q, z, s_orders[k]);
    return fl_dp_epsilon(s_orders, rdp, FL_DP_NORDERS, delta, FL_DP_CONVERT_BALLE, NULL);
}

int fl_dp_calibrate(double target, double delta, double q, uint32_t rounds, double *z)
{
    if (!(target > 0 && isfinite(target)) || !(delta > 0 && delta < 1) || !(q > 0 && q <= 1) ||
        rounds == 0)
        return fl_fail(FL_EINVAL,
                       "dp: cannot calibrate for epsilon %g, delta %g, sampling rate %g over %u "
                       "rounds (epsilon > 0, delta in (0, 1), rate in (0, 1], rounds > 0)",
                       target, delta, q, rounds);
    double lo = 0, hi = 1;
    while (s_eps(q, hi, rounds, delta) > target) {
        lo = hi;
        hi *= 2;
        if (hi > 1e4)
            return fl_fail(FL_ERANGE,
                           "dp: epsilon %g at delta %g over %u rounds at sampling rate %g needs "
                           "a noise multiplier above 1e4",
                           target, delta, rounds, q);
    }
    while (hi - lo > 1e-5) {
        double mid = 0.5 * (lo + hi);
        if (s_eps(q, mid, rounds, delta) > target)
            lo = mid;
        else
            hi = mid;
    }
    *z = ceil(hi * 1e4) / 1e4; /* up: a shorter figure, never a larger epsilon */
    return 0;
}

/* ---- noise ---- */

/* A uniform double in (0, 1] from 53 random bits. */
static double s_unit(uint64_t r)
{
    return ((r >> 11) + 1) * 0x1.0p-53;
}

void fl_dp_gauss(double *out, size_t n)
{
    uint64_t r[128];
    size_t i = 0;
    while (i < n) {
        size_t pairs = (n - i + 1) / 2;
        if (pairs > sizeof r / sizeof r[0] / 2)
            pairs = sizeof r / sizeof r[0] / 2;
        randombytes_buf(r, 2 * pairs * sizeof r[0]);
        for (size_t k = 0; k < pairs; k++) {
            double rad = sqrt(-2 * log(s_unit(r[2 * k])));
            double th = 2 * M_PI * s_unit(r[2 * k + 1]);
            out[i++] = rad * cos(th);
            if (i < n)
                out[i++] = rad * sin(th);
        }
    }
    sodium_memzero(r, sizeof r);
}

void fl_dp_add_noise(double *x, size_t n, double sigma)
{
    double g[256];
    for (size_t i = 0; i < n; i += 256) {
        size_t k = n - i < 256 ? n - i : 256;
        fl_dp_gauss(g, k);
        for (size_t j = 0; j < k; j++)
            x[i + j] += sigma * g[j];
    }
    sodium_memzero(g, sizeof g);
}

double fl_dp_clip(float *delta, size_t n, double clip)
{
    double sq = 0;
    for (size_t i = 0; i < n; i++)
        sq += (double)delta[i] * delta[i];
    double norm = sqrt(sq);
    if (!(clip > 0) || norm <= clip)
        return 1;
    double scale = clip / norm;
    for (size_t i = 0; i < n; i++)
        delta[i] = (float)(delta[i] * scale);
    return scale;
}

int fl_dp_share_sigma(double z, double clip, uint32_t expected, uint32_t tolerated, double *sigma)
{
    if (!(z > 0 && isfinite(z)) || !(clip > 0 && isfinite(clip)) || tolerated >= expected)
        return fl_fail(FL_EINVAL,
                       "dp: a noise share needs z > 0, clip > 0 and fewer tolerated dropouts "
                       "than expected branches (z %g, clip %g, %u of %u)",
                       z, clip, tolerated, expected);
    *sigma = z * clip / sqrt((double)(expected - tolerated));
    return 0;
}

double fl_dp_share_noise(double z, uint32_t survivors, uint32_t expected, uint32_t tolerated)
{
    if (!(z > 0 && isfinite(z)) || tolerated >= expected)
        return 0;
    return z * sqrt((double)survivors / (double)(expected - tolerated));
}

int fl_dp_add_share(float *delta, size_t n, double z, double clip, uint32_t expected,
                    uint32_t tolerated)
{
    double sigma = 0, g[256];
    int rc = fl_dp_share_sigma(z, clip, expected, tolerated, &sigma);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i += 256) {
        size_t k = n - i < 256 ? n - i : 256;
        fl_dp_gauss(g, k);
        for (size_t j = 0; j < k; j++)
            delta[i + j] = (float)(delta[i + j] + sigma * g[j]);
    }
    sodium_memzero(g, sizeof g);
    return 0;
}
