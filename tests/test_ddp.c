/* Distributed DP under secure aggregation, without processes: the share count a round's noise
 * is split into, the checks of a task's DP settings (and a branch refusing hostile ones before
 * it enters anything into a sum), the variance of one branch's noise share and of the sum of m
 * shares through the fixed-point encoding, a client that refuses a setup too weak for the
 * noise, and the strategy adding the branches' noisy sum without noise or clip of its own. */
#include <criterion/criterion.h>

#include "fl_branch_secagg.h"
#include "fl_dp.h"
#include "fl_error.h"
#include "fl_secagg.h"
#include "fl_secagg_client.h"
#include "fl_strategy.h"

#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static void s_init(void)
{
    cr_assert_geq(sodium_init(), 0);
}

TestSuite(fl_ddp, .init = s_init);

Test(fl_ddp, shares_are_the_threshold_raised_to_min_clients)
{
    cr_expect_eq(fl_secagg_dp_shares(2, 3, 0.1), 0, "no secure aggregation of 2");
    cr_expect_eq(fl_secagg_dp_shares(3, 3, 0.1), 2, "degree 2: the threshold 2 is the most");
    cr_expect_eq(fl_secagg_dp_shares(5, 3, 0.1), 3, "degree 4, threshold 3");
    cr_expect_eq(fl_secagg_dp_shares(10, 3, 0.1), 5, "degree 9, threshold 5 above min_clients");
    cr_expect_eq(fl_secagg_dp_shares(10, 8, 0.1), 8, "min_clients above the threshold");
    cr_expect_eq(fl_secagg_dp_shares(10, 10, 0.1), 9, "no threshold above the degree");
    cr_expect_eq(fl_secagg_dp_shares(100, 3, 0), 15, "sparse graph: degree 28, threshold 15");
    cr_expect_eq(fl_secagg_dp_shares(100, 50, 0), 28);
    /* dropout 0.1: degree 34 (tests/test_secagg.c, degree_from_dropout), threshold 18 */
    cr_expect_eq(fl_secagg_dp_shares(100, 3, 0.1), 18);
    cr_expect_eq(fl_secagg_dp_shares(100, 50, 0.1), 34);
}

Test(fl_ddp, hostile_settings_are_refused)
{
    double sigma = -1;
    cr_assert_eq(fl_secagg_dp_check(2, 0.5, 4, &sigma), 0);
    cr_expect_eq(sigma, 0.5, "z C / sqrt(m) = 2 x 0.5 / 2");
    const double bad_z[] = {NAN, INFINITY, -INFINITY, 0, -1, 1e6 * 1.000001};
    for (size_t i = 0; i < sizeof bad_z / sizeof bad_z[0]; i++) {
        cr_expect_eq(fl_secagg_dp_check(bad_z[i], 0.5, 4, &sigma), FL_EFORMAT, "z %g", bad_z[i]);
        cr_expect(strstr(fl_error_msg(), "noise multiplier"), "%s", fl_error_msg());
    }
    const double bad_clip[] = {NAN, INFINITY, 0, -0.5};
    for (size_t i = 0; i < sizeof bad_clip / sizeof bad_clip[0]; i++) {
        cr_expect_eq(fl_secagg_dp_check(1, bad_clip[i], 4, &sigma), FL_EFORMAT, "C %g",
                     bad_clip[i]);
        cr_expect(strstr(fl_error_msg(), "norm bound"), "%s", fl_error_msg());
    }
    const uint32_t bad_m[] = {0, 1, FL_SECAGG_MAX_BRANCHES + 1, UINT32_MAX};
    for (size_t i = 0; i < sizeof bad_m / sizeof bad_m[0]; i++) {
        cr_expect_eq(fl_secagg_dp_check(1, 0.5, bad_m[i], &sigma), FL_EFORMAT, "m %u", bad_m[i]);
        cr_expect(strstr(fl_error_msg(), "noise shares"), "%s", fl_error_msg());
    }
    /* noise the encoding's range would cut: 12 deviations of 1e6 x 1 / sqrt(2) > 2^20 */
    cr_expect_eq(fl_secagg_dp_check(1e6, 1, 2, &sigma), FL_ERANGE);
    cr_expect(strstr(fl_error_msg(), "does not fit the encoding's range"), "%s", fl_error_msg());
    cr_expect_eq(fl_secagg_dp_check(2000, 100, 2, &sigma), FL_ERANGE);
    cr_expect_eq(sigma, 0.5, "left as it was");
}

/* A task asking for distributed DP with one hostile field; the rest sane. */
static Fedtl__RoundTask s_task(double z, float clip, uint32_t shares)
{
    Fedtl__RoundTask t = FEDTL__ROUND_TASK__INIT;
    t.round = 4;
    t.secure_aggregation = true;
    t.norm_bound = clip;
    t.dp_noise_multiplier = z;
    t.dp_noise_shares = shares;
    return t;
}

Test(fl_ddp, a_branch_refuses_a_task_with_hostile_dp_fields)
{
    /* No identity, connection or body: the task's settings are refused before any is used. */
    fl_branch_secagg_t *b = fl_branch_secagg_new(NULL, NULL, NULL);
    cr_assert_not_null(b);
    const uint8_t run_id[FL_RUN_ID_BYTES] = {0};
    const uint8_t body[1] = {0};
    struct {
        Fedtl__RoundTask t;
        int rc;
        const char *says;
    } cases[] = {
        {s_task(NAN, 0.5f, 3), FL_EFORMAT, "noise multiplier nan"},
        {s_task(INFINITY, 0.5f, 3), FL_EFORMAT, "noise multiplier inf"},
        {s_task(-2, 0.5f, 3), FL_EFORMAT, "noise multiplier -2"},
        {s_task(0, 0.5f, 3), FL_EFORMAT, "noise multiplier 0"},
        {s_task(2e6, 0.5f, 3), FL_EFORMAT, "noise multiplier 2e+06"},
        {s_task(1, 0, 3), FL_EFORMAT, "norm bound 0"},
        {s_task(1, 0.5f, 1), FL_EFORMAT, "1 noise shares"},
        {s_task(1, 0.5f, 0), FL_EFORMAT, "0 noise shares"},
        {s_task(1, 0.5f, 5000), FL_EFORMAT, "5000 noise shares"},
        {s_task(9e5, 2, 2), FL_ERANGE, "does not fit"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = fl_branch_secagg_answer(b, "hospitals-eu", run_id, &cases[i].t, body, 0);
        cr_expect_eq(rc, cases[i].rc, "case %zu: %s", i, fl_strerror(rc));
        cr_expect(strstr(fl_error_msg(), "task of round 4") &&
                      strstr(fl_error_msg(), cases[i].says),
                  "case %zu: %s", i, fl_error_msg());
    }
    Fedtl__RoundTask nan_bound = s_task(1, NAN, 3);
    cr_expect_eq(fl_branch_secagg_answer(b, "hospitals-eu", run_id, &nan_bound, body, 0),
                 FL_EFORMAT);
    fl_branch_secagg_destroy(&b);
}

/* The sample variance of x (n values) around 0, and their mean in *mean. */
static double s_var0(const double *x, size_t n, double *mean)
{
    double s = 0, ss = 0;
    for (size_t i = 0; i < n; i++) {
        s += x[i];
        ss += x[i] * x[i];
    }
    *mean = s / (double)n;
    return ss / (double)n;
}

/* m branches each clip a change, add its share (as fl_branch_secagg does) and encode it with
 * FL_SECAGG_FIXED_DP; the words are summed in Z_2^64 as the unmasked sum is. Over 200,000
 * coordinates a share's variance is sigma^2 = (z C)^2 / m and the sum's noise (z C)^2, each to
 * within 2% (the estimate's own relative deviation is sqrt(2 / 200,000) = 0.3%). */
Test(fl_ddp, shares_have_variance_z_c_squared_over_m_and_m_of_them_sum_to_z_c_squared)
{
    enum { D = 200000, M = 5 };
    const double z = 1.5, clip = 0.5;
    double sigma = 0;
    cr_assert_eq(fl_secagg_dp_check(z, clip, M, &sigma), 0);
    cr_assert_float_eq(sigma, z * clip / sqrt(M), 1e-15);
    const struct fl_secagg_fixed fx = FL_SECAGG_FIXED_DP;
    cr_assert_eq(fl_secagg_fixed_check(&fx), 0);
    float *x = malloc(D * sizeof *x);
    uint64_t *w = malloc((D + 1) * sizeof *w), *sum = calloc(D + 1, sizeof *sum);
    double *clipped = calloc(D, sizeof *clipped), *noise = malloc(D * sizeof *noise);
    double *share0 = malloc(D * sizeof *share0);
    cr_assert(x && w && sum && clipped && noise && share0);
    for (int b = 0; b < M; b++) {
        for (size_t i = 0; i < D; i++)
            x[i] = (float)sin(0.001 * (double)i * (b + 1)); /* norm about 316: clipped */
        fl_dp_clip(x, D, clip);
        for (size_t i = 0; i < D; i++)
            clipped[i] += x[i];
        for (size_t i = 0; b == 0 && i < D; i++)
            share0[i] = -(double)x[i];
        float first = x[0];
        cr_assert_eq(fl_dp_add_share(x, D, z, clip, M, 0), 0);
        cr_expect_neq(x[0], first, "noise was added");
        for (size_t i = 0; b == 0 && i < D; i++)
            share0[i] += x[i];
        cr_assert_eq(fl_secagg_fixed_encode(&fx, x, D, 1, w), 0);
        for (size_t i = 0; i <= D; i++)
            sum[i] += w[i];
    }
    double *dec = malloc(D * sizeof *dec);
    cr_expect_eq(sum[D], M, "every weight is 1");
    sum[D] = 12345; /* the weight word is each branch's own: decoding does not read it */
    fl_secagg_fixed_decode_sum(&fx, sum, D, dec);
    for (size_t i = 0; i < D; i++)
        noise[i] = dec[i] - clipped[i];
    double mean, var = s_var0(noise, D, &mean), want = z * z * clip * clip;
    cr_log_info("sum of %d shares: variance %.5f, (z C)^2 %.5f, mean %.2g", M, var, want, mean);
    cr_expect_lt(fabs(var / want - 1), 0.02, "variance %g, want %g", var, want);
    cr_expect_lt(fabs(mean), 5 * z * clip / sqrt(D));
    /* one share: what branch 0 added to its clipped change */
    double v0 = s_var0(share0, D, &mean);
    cr_expect_lt(fabs(v0 / (sigma * sigma) - 1), 0.02, "share variance %g, want %g", v0,
                 sigma * sigma);
    free(x);
    free(w);
    free(sum);
    free(clipped);
    free(noise);
    free(share0);
    free(dec);
}

static int s_count_send(void *arg, Fedtl__Envelope *env)
{
    (void)env;
    (*(int *)arg)++;
    return 0;
}

/* A client of a 4-branch round that requires threshold 3 and FL_SECAGG_FIXED_DP, given a setup
 * with `threshold` and `fixed`: what recv says, and how many messages it sent. */
static int s_setup_with(uint32_t threshold, struct fl_secagg_fixed fixed, int *sent)
{
    struct fl_identity *id = sodium_malloc(sizeof *id);
    cr_assert_not_null(id);
    crypto_sign_keypair(id->sign_pk, id->sign_sk);
    cr_assert_eq(crypto_sign_ed25519_pk_to_curve25519(id->box_pk, id->sign_pk), 0);
    cr_assert_eq(crypto_sign_ed25519_sk_to_curve25519(id->box_sk, id->sign_sk), 0);
    struct fl_secagg_ctx ctx = {.federation = "hospitals-eu", .round = 2};
    struct fl_secagg_client_ops ops = {.send = s_count_send};
    *sent = 0;
    fl_secagg_client_t *cl = fl_secagg_client_new(id, &ctx, &ops, sent);
    cr_assert_not_null(cl);
    const struct fl_secagg_fixed dp = FL_SECAGG_FIXED_DP;
    fl_secagg_client_require(cl, 3, &dp);
    const float x[8] = {0.1f, -0.2f};
    cr_assert_eq(fl_secagg_client_input(cl, x, 8, 1), 0);
    uint8_t keys[4][FL_SIGN_PK_BYTES];
    memcpy(keys[0], id->sign_pk, FL_SIGN_PK_BYTES);
    for (int i = 1; i < 4; i++)
        randombytes_buf(keys[i], FL_SIGN_PK_BYTES);
    struct fl_secagg_params p = {
        .n = 4, .branches = keys, .degree = 3, .threshold = threshold, .fixed = fixed, .length = 8};
    randombytes_buf(p.graph_seed, sizeof p.graph_seed);
    Fedtl__SecAggSetup m = FEDTL__SEC_AGG_SETUP__INIT;
    ProtobufCBinaryData storage[4];
    fl_secagg_params_put(&p, 2, &m, storage);
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    env.body_case = FEDTL__ENVELOPE__BODY_SA_SETUP;
    env.sa_setup = &m;
    int rc = fl_secagg_client_recv(cl, &env);
    if (rc)
        cr_expect_eq(fl_secagg_client_phase(cl), FL_SECAGG_PHASE_ABORTED);
    fl_secagg_client_destroy(&cl);
    sodium_free(id);
    return rc;
}

Test(fl_ddp, a_client_refuses_a_setup_too_weak_for_the_noise_or_of_another_encoding)
{
    int sent = 0;
    cr_expect_eq(s_setup_with(3, FL_SECAGG_FIXED_DP, &sent), 0);
    cr_expect_eq(sent, 1, "its keys went out");
    cr_expect_eq(s_setup_with(2, FL_SECAGG_FIXED_DP, &sent), FL_EFORMAT, "threshold below m");
    cr_expect(strstr(fl_error_msg(), "threshold 2"), "%s", fl_error_msg());
    cr_expect_eq(sent, 0, "nothing went out");
    /* every field of the encoding is the DP one, or the setup is refused */
    struct fl_secagg_fixed other = FL_SECAGG_FIXED_DEFAULT;
    cr_expect_eq(s_setup_with(3, other, &sent), FL_EFORMAT, "weights up to 2^20, range 256");
    cr_expect(strstr(fl_error_msg(), "range 256"), "%s", fl_error_msg());
    cr_expect_eq(sent, 0);
    other = FL_SECAGG_FIXED_DP;
    other.clip = 64;
    cr_expect_eq(s_setup_with(3, other, &sent), FL_EFORMAT, "range 64 would cut the noise");
    cr_expect(strstr(fl_error_msg(), "range 64"), "%s", fl_error_msg());
    other = FL_SECAGG_FIXED_DP;
    other.frac_bits = 2;
    cr_expect_eq(s_setup_with(3, other, &sent), FL_EFORMAT, "a grid of 1/4 rounds noise away");
    cr_expect(strstr(fl_error_msg(), "2 fractional bits"), "%s", fl_error_msg());
    other = FL_SECAGG_FIXED_DP;
    other.max_weight = 16;
    other.clip = 65536; /* still within the ring */
    cr_expect_eq(s_setup_with(3, other, &sent), FL_EFORMAT, "weights above 1");
    other = FL_SECAGG_FIXED_DP;
    other.max_branches = 512;
    cr_expect_eq(s_setup_with(3, other, &sent), FL_EFORMAT, "another branch bound");
    cr_expect_eq(sent, 0, "nothing went out");
}

/* The strategy under distributed DP: the one update it is given is the branches' noisy sum; it
 * is neither clipped (its norm is far above C) nor noised again, and is divided by the
 * branches selected. */
Test(fl_ddp, the_strategy_divides_the_noisy_sum_by_the_branches_selected)
{
    struct fl_strategy_config c;
    cr_assert_eq(fl_strategy_config_default(&c, "fedavg"), 0);
    c.bound = FL_BOUND_FIXED;
    c.norm_bound = 0.5;
    c.dp_noise = 3;
    c.dp_distributed = true;
    cr_assert_eq(fl_strategy_config_check(&c), 0);
    char desc[256];
    fl_strategy_config_str(&c, desc, sizeof desc);
    cr_expect(strstr(desc, "dp-noise=3 dp-distributed"), "%s", desc);
    fl_strategy_t *s = fl_strategy_new(&c);
    cr_assert_not_null(s);
    float g[4] = {1, 2, 3, 4}, u[4] = {1 + 10, 2 - 20, 3 + 30, 4 - 40};
    struct fl_tensor gt = {.data = g, .ndim = 1, .shape = {4}};
    struct fl_tensor ut = {.data = u, .ndim = 1, .shape = {4}};
    cr_assert_eq(fl_strategy_begin(s, &gt, 1), 0);
    cr_assert_eq(fl_strategy_set_expected(s, 5), 0);
    cr_assert_eq(fl_strategy_add(s, &ut, 1, 4, "secure-aggregate"), 0);
    float out[4] = {1, 2, 3, 4};
    struct fl_tensor ot = {.data = out, .ndim = 1, .shape = {4}};
    cr_assert_eq(fl_strategy_finish(s, &ot, 1), 0);
    const float want[4] = {1 + 2, 2 - 4, 3 + 6, 4 - 8};
    for (int i = 0; i < 4; i++)
        cr_expect_float_eq(out[i], want[i], 1e-6, "value %d: %g, want %g", i, out[i], want[i]);
    fl_strategy_destroy(&s);
    c.dp_noise = 0;
    cr_expect_eq(fl_strategy_config_check(&c), FL_EINVAL, "distributed without noise");
}
