/* fl_dp: the RDP accountant against published figures (TensorFlow Privacy's tests and its
 * MNIST tutorial's table) and against numerical integration, both RDP -> (epsilon, delta)
 * conversions, the calibration of the noise multiplier, the CSPRNG Gaussian's moments, the
 * clip, a branch's share of distributed noise, and DP-FedAvg in fl_strategy: refusals,
 * uniform weights over a fixed denominator, and noise of deviation z C on the sum. */
#include <criterion/criterion.h>

#include "fl_dp.h"
#include "fl_error.h"
#include "fl_strategy.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_init(void)
{
    cr_assert_geq(sodium_init(), 0);
}

TestSuite(fl_dp, .init = s_init);

/* The orders of TensorFlow Privacy's MNIST tutorial (mnist_dpsgd_tutorial.py, compute_epsilon)
 * and of compute_dp_sgd_privacy_lib: 1.1, 1.2, ..., 10.9, then 12 to 63. fedtl's first 151. */
static size_t s_tf_orders(double *o)
{
    size_t n = 0;
    for (int x = 1; x < 100; x++)
        o[n++] = 1 + x / 10.0;
    for (int a = 12; a < 64; a++)
        o[n++] = a;
    return n;
}

/* Epsilon after `steps` steps at (q, z) over the orders o[0..n), with a conversion. */
static double s_eps(const double *o, size_t n, double q, double z, double steps, double delta,
                    enum fl_dp_conversion conv)
{
    double rdp[FL_DP_NORDERS];
    for (size_t k = 0; k < n; k++)
        rdp[k] = steps * fl_dp_rdp(q, z, o[k]);
    return fl_dp_epsilon(o, rdp, n, delta, conv, NULL);
}

/* TensorFlow Privacy, tensorflow_privacy/privacy/analysis/rdp_accountant_test.py:
 * test_compute_rdp_sequence: compute_rdp(q=0.01, noise_multiplier=2.5, steps=50, orders
 * [1.5, 2.5, 5, 50, 100]) = [0.00065, 0.001085, 0.00218075, 0.023846, 167.416307] (to 1e-5);
 * test_compute_rdp_scalar: compute_rdp(0.1, 2, 10, 5) = 0.07737 (5 places); test_compute_rdp_
 * no_data and _no_sampling: q = 0 gives 0, q = 1 gives alpha / (2 z^2) = 0.1 at (z 10,
 * alpha 20). RDP values: no conversion involved. */
Test(fl_dp, rdp_matches_tensorflow_privacy)
{
    const double orders[] = {1.5, 2.5, 5, 50, 100};
    const double want[] = {0.00065, 0.001085, 0.00218075, 0.023846, 167.416307};
    for (size_t k = 0; k < 5; k++) {
        double got = 50 * fl_dp_rdp(0.01, 2.5, orders[k]);
        cr_assert_lt(fabs(got - want[k]), 1e-5, "order %g: %.8f, published %.8f", orders[k], got,
                     want[k]);
    }
    cr_assert_lt(fabs(10 * fl_dp_rdp(0.1, 2, 5) - 0.07737), 5e-6);
    cr_assert_eq(fl_dp_rdp(0, 10, 20), 0);
    cr_assert_eq(fl_dp_rdp(1, 10, 20), 0.1);
    cr_assert(isinf(fl_dp_rdp(0.5, 0, 2)), "no noise: no privacy");
    cr_assert(isnan(fl_dp_rdp(1.5, 1, 2)) && isnan(fl_dp_rdp(0.5, 1, 1)) &&
              isnan(fl_dp_rdp(0.5, -1, 2)));
}

/* A_alpha = E_{x~N(0,z^2)}[((1-q) + q exp((2x-1)/(2z^2)))^alpha] integrated with mpmath 1.3 at
 * 50 digits (quad over [-inf, 0, 1, inf], maxdegree 10); RDP = log(A) / (alpha - 1). Fractional
 * and integer orders, small and large q and z: both of fl_dp_rdp's paths, to 1e-5 relative. */
Test(fl_dp, rdp_matches_numerical_integration)
{
    static const double v[][4] = {
        {1e-7, 0.1, 1.01, 4.003412327842528e-06}, {1e-4, 1.0, 1.5, 1.2885373940727913e-08},
        {1e-3, 1.0, 2, 1.7182803522127806e-06},   {0.01, 10, 20, 1.0068263112013482e-05},
        {0.1, 100, 20.5, 1.0252214593910356e-05}, {1e-6, 1, 27, 3.372885977233409e-11},
        {0.1, 0.5, 3.5, 3.7769941897637707},      {0.3, 1.0, 7.5, 2.364924522758286},
        {0.01, 2.5, 1.5, 1.3001417943734774e-05}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        double got = fl_dp_rdp(v[i][0], v[i][1], v[i][2]);
        cr_assert_lt(fabs(got - v[i][3]) / v[i][3], 1e-5, "q %g z %g alpha %g: %.10g, want %.10g",
                     v[i][0], v[i][1], v[i][2], got, v[i][3]);
    }
}

/* Mironov's conversion (Proposition 3), the one TensorFlow Privacy used before 2020:
 * - its tutorials/README.md, "Select Parameters" (MNIST, 60,000 records, batch 256,
 *   delta 1e-5, steps = epochs x 60000 // 256): noise 1.12 for 60 epochs gives eps 2.92 and
 *   noise 1.2 for 10 epochs 1.20. (Its third row, noise 0.6 for 30 epochs, says 9.74; this
 *   accountant gives 9.753, so it is not used here: the figure was not reproduced.)
 * - compute_dp_sgd_privacy_test.py: n 60000, batch 150, noise 1.3, 15 epochs, delta 1e-5:
 *   eps 0.941870567; n 100000, batch 100, noise 1.0, 30 epochs, delta 1e-7: 1.70928734
 *   (steps = ceil(epochs n / batch)).
 * - rdp_accountant_test.py, test_check_composition: 40,000 steps at (q 1e-4, z 0.4) then 100
 *   at (0.1, 2), 21 orders, delta 1e-5: 8.509656 "with the old RDP -> approx DP conversion". */
Test(fl_dp, mironov_conversion_matches_published_epsilons)
{
    double o[160];
    size_t n = s_tf_orders(o);
    double q = 256.0 / 60000;
    double e60 = s_eps(o, n, q, 1.12, 60 * 60000 / 256, 1e-5, FL_DP_CONVERT_MIRONOV);
    double e10 = s_eps(o, n, q, 1.2, 10 * 60000 / 256, 1e-5, FL_DP_CONVERT_MIRONOV);
    cr_assert_eq(round(e60 * 100), 292, "%.4f", e60);
    cr_assert_eq(round(e10 * 100), 120, "%.4f", e10);
    double a = s_eps(o, n, 150.0 / 60000, 1.3, 6000, 1e-5, FL_DP_CONVERT_MIRONOV);
    double b = s_eps(o, n, 100.0 / 100000, 1.0, 30000, 1e-7, FL_DP_CONVERT_MIRONOV);
    cr_assert_lt(fabs(a - 0.941870567), 1e-8, "%.9f", a);
    cr_assert_lt(fabs(b - 1.70928734), 1e-7, "%.9f", b);
    const double oc[] = {1.25, 1.5, 1.75, 2.,  2.5, 3.,  4.,  5.,  6.,  7.,  8.,
                         10.,  12., 14.,  16., 20., 24., 28., 32., 64., 256.};
    double rdp[21];
    for (size_t k = 0; k < 21; k++)
        rdp[k] = 40000 * fl_dp_rdp(1e-4, 0.4, oc[k]) + 100 * fl_dp_rdp(0.1, 2, oc[k]);
    double c = fl_dp_epsilon(oc, rdp, 21, 1e-5, FL_DP_CONVERT_MIRONOV, NULL);
    cr_assert_lt(fabs(c - 8.509656), 5e-6, "%.7f", c);
}

/* Balle et al.'s conversion, which TensorFlow Privacy's get_privacy_spent uses since 2020 and
 * fedtl reports (rdp_accountant_test.py, test_get_privacy_spent_check_target_delta): a constant
 * RDP of 1.1 over orders 2..32 gives eps 1.32783806176 at order 32 for delta 1e-5; the Gaussian
 * mechanism without sampling at z = 4.530877117 over orders 1.000, 1.001, ..., 99.999 gives
 * exactly (1, 1e-6)-DP. It is never looser than Mironov's. */
Test(fl_dp, balle_conversion_matches_published_epsilons)
{
    double o[31], r[31], best = 0;
    for (int k = 0; k < 31; k++) {
        o[k] = k + 2;
        r[k] = 1.1;
    }
    double e = fl_dp_epsilon(o, r, 31, 1e-5, FL_DP_CONVERT_BALLE, &best);
    cr_assert_lt(fabs(e - 1.32783806176), 1e-10, "%.11f", e);
    cr_assert_eq(best, 32);
    size_t n = 99000;
    double *of = malloc(n * sizeof *of), *rf = malloc(n * sizeof *rf);
    cr_assert(of && rf);
    for (size_t k = 0; k < n; k++) {
        of[k] = 0.001 * (double)(k + 1000);
        rf[k] = fl_dp_rdp(1, 4.530877117, of[k]);
    }
    double g = fl_dp_epsilon(of, rf, n, 1e-6, FL_DP_CONVERT_BALLE, NULL);
    cr_assert_lt(fabs(g - 1.0), 1e-6, "%.8f", g);
    cr_assert_lt(g, fl_dp_epsilon(of, rf, n, 1e-6, FL_DP_CONVERT_MIRONOV, NULL));
    free(of);
    free(rf);
    cr_assert(isnan(fl_dp_epsilon(o, r, 31, 0, FL_DP_CONVERT_BALLE, NULL)));
    cr_assert(isnan(fl_dp_epsilon(o, r, 31, 1, FL_DP_CONVERT_BALLE, NULL)));
}

/* The account adds RDP round by round, epsilon grows with every round, a look ahead changes
 * nothing, rounds at other rates compose, and a corrupt restored account is refused. */
Test(fl_dp, the_account_composes_rounds)
{
    struct fl_dp_account a;
    memset(&a, 0, sizeof a);
    cr_assert_eq(fl_dp_account_epsilon(&a, 1e-5), 0);
    double last = 0;
    for (int r = 0; r < 10; r++) {
        double ahead = fl_dp_account_epsilon_after(&a, 0.1, 1.0, 1e-5);
        cr_assert_eq(a.rounds, (uint32_t)r, "a look ahead spends nothing");
        cr_assert_eq(fl_dp_account_spend(&a, 0.1, 1.0), 0);
        double e = fl_dp_account_epsilon(&a, 1e-5);
        cr_assert_eq(e, ahead);
        cr_assert_gt(e, last);
        last = e;
    }
    /* ten rounds at one rate: fl_dp_epsilon over ten times one round's RDP */
    double rdp[FL_DP_NORDERS];
    for (size_t k = 0; k < FL_DP_NORDERS; k++)
        rdp[k] = 10 * fl_dp_rdp(0.1, 1.0, fl_dp_orders()[k]);
    double want =
        fl_dp_epsilon(fl_dp_orders(), rdp, FL_DP_NORDERS, 1e-5, FL_DP_CONVERT_BALLE, NULL);
    cr_assert_lt(fabs(last - want), 1e-9 * want);
    cr_assert_eq(fl_dp_account_spend(&a, 1.5, 1.0), FL_EINVAL);
    cr_assert_eq(fl_dp_account_spend(&a, 0.5, 0), FL_EINVAL);
    cr_assert_eq(a.rounds, 10, "a refused round is not counted");
    /* a round at q = 1 costs more than one at q = 0.1 */
    cr_assert_gt(fl_dp_account_epsilon_after(&a, 1.0, 1.0, 1e-5),
                 fl_dp_account_epsilon_after(&a, 0.1, 1.0, 1e-5));
    cr_assert_eq(fl_dp_account_check(&a), 0);
    a.rdp[7] = NAN;
    cr_assert_eq(fl_dp_account_check(&a), FL_EINVAL);
    a.rdp[7] = -1;
    cr_assert_eq(fl_dp_account_check(&a), FL_EINVAL);
}

/* The calibrated z is the smallest (to the 4th decimal) that keeps the planned rounds within
 * the target: 0.0002 less overspends. A target out of reach is FL_ERANGE. */
Test(fl_dp, calibration_finds_the_smallest_noise_for_the_target)
{
    const struct {
        double eps, q;
        uint32_t rounds;
    } c[] = {{1, 0.1, 100}, {4, 1, 20}, {8, 0.3, 50}, {0.5, 0.01, 1000}};
    const double *o = fl_dp_orders();
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        double z = 0;
        cr_assert_eq(fl_dp_calibrate(c[i].eps, 1e-5, c[i].q, c[i].rounds, &z), 0, "%s",
                     fl_error_msg());
        double at = s_eps(o, FL_DP_NORDERS, c[i].q, z, c[i].rounds, 1e-5, FL_DP_CONVERT_BALLE);
        double below =
            s_eps(o, FL_DP_NORDERS, c[i].q, z - 2e-4, c[i].rounds, 1e-5, FL_DP_CONVERT_BALLE);
        cr_assert_leq(at, c[i].eps, "z %g: eps %g", z, at);
        cr_assert_gt(below, c[i].eps, "z %g - 2e-4: eps %g", z, below);
        cr_assert_eq(z, round(z * 1e4) / 1e4);
    }
    double z = 0;
    cr_assert_eq(fl_dp_calibrate(1e-6, 1e-12, 1, 1000000, &z), FL_ERANGE);
    cr_assert_eq(fl_dp_calibrate(0, 1e-5, 0.1, 10, &z), FL_EINVAL);
    cr_assert_eq(fl_dp_calibrate(1, 0, 0.1, 10, &z), FL_EINVAL);
    cr_assert_eq(fl_dp_calibrate(1, 1e-5, 0, 10, &z), FL_EINVAL);
    cr_assert_eq(fl_dp_calibrate(1, 1e-5, 0.1, 0, &z), FL_EINVAL);
}

/* 400,000 draws: mean 0, variance 1 and the share within one deviation (0.6827) to six
 * standard errors; two calls never give the same values (a CSPRNG, not a seeded stream). */
Test(fl_dp, gaussian_noise_has_the_moments_of_a_standard_normal)
{
    size_t n = 400000;
    double *x = malloc(n * sizeof *x), *y = malloc(16 * sizeof *y);
    cr_assert(x && y);
    fl_dp_gauss(x, n);
    double s = 0, s2 = 0, within = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert(isfinite(x[i]));
        s += x[i];
        s2 += x[i] * x[i];
        within += fabs(x[i]) < 1;
    }
    double mean = s / n, var = s2 / n - mean * mean;
    cr_assert_lt(fabs(mean), 6 / sqrt((double)n), "mean %g", mean);
    cr_assert_lt(fabs(var - 1), 6 * sqrt(2.0 / n), "variance %g", var);
    cr_assert_lt(fabs(within / n - 0.682689), 6 * sqrt(0.2166 / n), "within 1: %g", within / n);
    memcpy(y, x, 16 * sizeof *y);
    fl_dp_gauss(x, 16);
    cr_assert_neq(memcmp(x, y, 16 * sizeof *y), 0);
    /* add_noise: sigma 0 changes nothing, sigma 3 gives deviation 3 */
    for (size_t i = 0; i < n; i++)
        x[i] = 1.5;
    fl_dp_add_noise(x, n, 0);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(x[i], 1.5);
    fl_dp_add_noise(x, n, 3);
    s = s2 = 0;
    for (size_t i = 0; i < n; i++) {
        s += x[i] - 1.5;
        s2 += (x[i] - 1.5) * (x[i] - 1.5);
    }
    cr_assert_lt(fabs(sqrt(s2 / n) - 3), 0.02, "deviation %g", sqrt(s2 / n));
    free(x);
    free(y);
}

Test(fl_dp, clip_scales_a_long_change_to_the_bound)
{
    float d[4] = {3, 0, 4, 0}; /* norm 5 */
    double scale = fl_dp_clip(d, 4, 1.0);
    cr_assert_float_eq(scale, 0.2, 1e-12);
    cr_assert_float_eq(sqrtf(d[0] * d[0] + d[2] * d[2]), 1.0f, 1e-6);
    cr_assert_float_eq(d[0] / d[2], 0.75f, 1e-6, "the direction is kept");
    float e[2] = {0.3f, 0.4f};
    cr_assert_eq(fl_dp_clip(e, 2, 1.0), 1);
    cr_assert(e[0] == 0.3f && e[1] == 0.4f);
}

/* Distributed DP: each of 10 expected branches, tolerating 2 dropouts, adds deviation
 * z C / sqrt(8); the sum of 8 shares carries z C (to 2%), of all 10 z C sqrt(10/8). */
Test(fl_dp, noise_shares_sum_to_the_full_noise)
{
    double z = 1.3, clip = 0.7, sigma = 0;
    cr_assert_eq(fl_dp_share_sigma(z, clip, 10, 2, &sigma), 0);
    cr_assert_float_eq(sigma, z * clip / sqrt(8.0), 1e-12);
    size_t n = 40000;
    float *share = malloc(n * sizeof *share);
    double *sum8 = calloc(n, sizeof *sum8), *sum10 = calloc(n, sizeof *sum10);
    cr_assert(share && sum8 && sum10);
    for (int b = 0; b < 10; b++) {
        memset(share, 0, n * sizeof *share);
        cr_assert_eq(fl_dp_add_share(share, n, z, clip, 10, 2), 0);
        for (size_t i = 0; i < n; i++) {
            sum10[i] += share[i];
            if (b < 8)
                sum8[i] += share[i];
        }
    }
    double s8 = 0, s10 = 0;
    for (size_t i = 0; i < n; i++) {
        s8 += sum8[i] * sum8[i];
        s10 += sum10[i] * sum10[i];
    }
    cr_assert_lt(fabs(sqrt(s8 / n) / (z * clip) - 1), 0.02, "%g", sqrt(s8 / n));
    cr_assert_lt(fabs(sqrt(s10 / n) / (z * clip * sqrt(10 / 8.0)) - 1), 0.02);
    /* what the aggregator may account: z with 8 survivors, more with 10, less with 7 */
    cr_assert_float_eq(fl_dp_share_noise(z, 8, 10, 2), z, 1e-12);
    cr_assert_float_eq(fl_dp_share_noise(z, 10, 10, 2), z * sqrt(10 / 8.0), 1e-12);
    cr_assert_lt(fl_dp_share_noise(z, 7, 10, 2), z);
    cr_assert_eq(fl_dp_share_noise(z, 7, 10, 10), 0);
    float keep = share[0];
    cr_assert_eq(fl_dp_add_share(share, n, z, clip, 10, 10), FL_EINVAL);
    cr_assert_eq(fl_dp_add_share(share, n, 0, clip, 10, 0), FL_EINVAL);
    cr_assert_eq(fl_dp_add_share(share, n, z, 0, 10, 0), FL_EINVAL);
    cr_assert_eq(share[0], keep);
    free(share);
    free(sum8);
    free(sum10);
}

/* ---- DP-FedAvg in fl_strategy ---- */

static struct fl_strategy_config s_dp_cfg(const char *name, double z, double clip)
{
    struct fl_strategy_config c;
    cr_assert_eq(fl_strategy_config_default(&c, name), 0);
    c.bound = FL_BOUND_FIXED;
    c.norm_bound = clip;
    c.dp_noise = z;
    return c;
}

Test(fl_dp, strategy_refuses_what_breaks_the_analysis)
{
    struct fl_strategy_config c = s_dp_cfg("median", 1, 1);
    cr_assert_eq(fl_strategy_config_check(&c), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "dp-noise") && strstr(fl_error_msg(), "median"), "%s",
              fl_error_msg());
    c = s_dp_cfg("fedavg", 1, 3);
    c.bound = FL_BOUND_MEDIAN;
    cr_assert_eq(fl_strategy_config_check(&c), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "median norm"), "%s", fl_error_msg());
    c = s_dp_cfg("fedavg", 1, 0);
    c.bound = FL_BOUND_NONE;
    cr_assert_eq(fl_strategy_config_check(&c), FL_EINVAL);
    c = s_dp_cfg("fedavg", -1, 1);
    cr_assert_eq(fl_strategy_config_check(&c), FL_EINVAL);
    c = s_dp_cfg("fedadam", 1.25, 0.5);
    cr_assert_eq(fl_strategy_config_check(&c), 0, "a server optimiser is post-processing");
    char desc[256];
    fl_strategy_config_str(&c, desc, sizeof desc);
    cr_assert(strstr(desc, "bound=fixed:0.5") && strstr(desc, "dp-noise=1.25"), "%s", desc);
}

/* One round on a 1-tensor adapter from global 0: the updates u (n rows of len), weights w. */
static int s_dp_round(fl_strategy_t *s, float *g, size_t len, const float *u, size_t n,
                      const double *w, uint32_t expected)
{
    struct fl_tensor gt, ut;
    fl_tensor_init2(&gt, "w", (int64_t)len, 0);
    fl_tensor_init2(&ut, "w", (int64_t)len, 0);
    memcpy(gt.data, g, len * sizeof *g);
    cr_assert_eq(fl_strategy_begin(s, &gt, 1), 0, "%s", fl_error_msg());
    if (expected)
        cr_assert_eq(fl_strategy_set_expected(s, expected), 0);
    for (size_t k = 0; k < n; k++) {
        char id[24];
        snprintf(id, sizeof id, "b%02zu", k);
        memcpy(ut.data, u + k * len, len * sizeof *u);
        cr_assert_eq(fl_strategy_add(s, &ut, 1, w[k], id), 0, "%s", fl_error_msg());
    }
    int rc = fl_strategy_finish(s, &gt, 1);
    memcpy(g, gt.data, len * sizeof *g);
    fl_tensor_free(&gt);
    fl_tensor_free(&ut);
    return rc;
}

/* Weights are ignored and the denominator is the expected count: updates (3, 4) (norm 5,
 * clipped to 1: (0.6, 0.8)) and (0, 0.5), weights 1 and 100, 4 expected: the mean is
 * (0.6, 1.3) / 4 = (0.15, 0.325), give or take noise of z C / 4 = 2.5e-7. Without
 * fl_strategy_set_expected the round does not finish. */
Test(fl_dp, strategy_mean_has_uniform_weights_and_a_fixed_denominator)
{
    struct fl_strategy_config c = s_dp_cfg("fedavg", 1e-6, 1.0);
    fl_strategy_t *s = fl_strategy_new(&c);
    cr_assert_not_null(s, "%s", fl_error_msg());
    float g[2] = {0, 0};
    const float u[4] = {3, 4, 0, 0.5f};
    const double w[2] = {1, 100};
    cr_assert_eq(s_dp_round(s, g, 2, u, 2, w, 4), 0, "%s", fl_error_msg());
    cr_assert_float_eq(g[0], 0.15f, 1e-5);
    cr_assert_float_eq(g[1], 0.325f, 1e-5);
    g[0] = g[1] = 0;
    cr_assert_eq(s_dp_round(s, g, 2, u, 2, w, 0), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "expected"), "%s", fl_error_msg());
    fl_strategy_destroy(&s);
}

/* Zero changes, z 2, C 0.5, 5 expected: each coordinate of the new global is noise of
 * deviation z C / 5 = 0.2 (to 3% over 50,000 coordinates), fresh every round. */
Test(fl_dp, strategy_adds_noise_of_z_c_to_the_sum)
{
    struct fl_strategy_config c = s_dp_cfg("fedavg", 2, 0.5);
    fl_strategy_t *s = fl_strategy_new(&c);
    cr_assert_not_null(s);
    size_t len = 50000;
    float *g = calloc(len, sizeof *g), *u = calloc(3 * len, sizeof *u), *g1 = NULL;
    const double w[3] = {1, 1, 1};
    cr_assert(g && u);
    cr_assert_eq(s_dp_round(s, g, len, u, 3, w, 5), 0, "%s", fl_error_msg());
    double s2 = 0;
    for (size_t i = 0; i < len; i++)
        s2 += (double)g[i] * g[i];
    cr_assert_lt(fabs(sqrt(s2 / len) / 0.2 - 1), 0.03, "deviation %g", sqrt(s2 / len));
    g1 = malloc(len * sizeof *g1);
    cr_assert_not_null(g1);
    memcpy(g1, g, len * sizeof *g);
    memset(g, 0, len * sizeof *g);
    memset(u, 0, 3 * len * sizeof *u);
    cr_assert_eq(s_dp_round(s, g, len, u, 3, w, 5), 0);
    cr_assert_neq(memcmp(g, g1, len * sizeof *g), 0, "fresh noise every round");
    free(g);
    free(g1);
    free(u);
    fl_strategy_destroy(&s);
}
