/* fl_strategy: the three stages (bound, rule, server optimiser) against values worked out by
 * hand, the streaming mean's order independence and memory, refusals (unknown names, bad
 * options, non-finite updates, Krum without enough updates) and the optimiser's state file. */
#include <criterion/criterion.h>

#include "fl_error.h"
#include "fl_rng.h"
#include "fl_strategy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A strategy with the defaults of `name`. */
static fl_strategy_t *s_new(const char *name)
{
    struct fl_strategy_config c;
    if (fl_strategy_config_default(&c, name) != 0)
        return NULL;
    return fl_strategy_new(&c);
}

/* A strategy from a default configuration changed by the caller. */
static fl_strategy_t *s_new_cfg(const struct fl_strategy_config *c)
{
    fl_strategy_t *s = fl_strategy_new(c);
    cr_assert_not_null(s, "%s", fl_error_msg());
    return s;
}

/* One round on a one-tensor adapter of len values: begin from global g (updated in place),
 * add n updates (u: n rows of len) with weights w and ids, finish. Returns finish's code. */
static int s_round(fl_strategy_t *s, float *g, size_t len, const float *u, size_t n,
                   const double *w, const char *const *ids)
{
    struct fl_tensor gt, ut;
    fl_tensor_init2(&gt, "w", (int64_t)len, 0);
    fl_tensor_init2(&ut, "w", (int64_t)len, 0);
    memcpy(gt.data, g, len * sizeof *g);
    cr_assert_eq(fl_strategy_begin(s, &gt, 1), 0, "%s", fl_error_msg());
    for (size_t k = 0; k < n; k++) {
        char id[24];
        snprintf(id, sizeof id, "b%02zu", k);
        memcpy(ut.data, u + k * len, len * sizeof *u);
        cr_assert_eq(fl_strategy_add(s, &ut, 1, w ? w[k] : 1.0, ids ? ids[k] : id), 0, "%s",
                     fl_error_msg());
    }
    int rc = fl_strategy_finish(s, &gt, 1);
    memcpy(g, gt.data, len * sizeof *g);
    fl_tensor_free(&gt);
    fl_tensor_free(&ut);
    return rc;
}

/* ---- configuration ---- */

Test(fl_strategy, names_choose_the_rule_and_the_optimiser)
{
    struct fl_strategy_config c;
    struct {
        const char *name;
        enum fl_rule rule;
        enum fl_server_opt opt;
        double eta, mu;
    } want[] = {
        {"fedavg", FL_RULE_MEAN, FL_SERVER_OPT_NONE, 1, 0},
        {"fedavgm", FL_RULE_MEAN, FL_SERVER_OPT_AVGM, 1, 0},
        {"fedadagrad", FL_RULE_MEAN, FL_SERVER_OPT_ADAGRAD, 0.1, 0},
        {"fedadam", FL_RULE_MEAN, FL_SERVER_OPT_ADAM, 0.01, 0},
        {"fedyogi", FL_RULE_MEAN, FL_SERVER_OPT_YOGI, 0.01, 0},
        {"fedprox", FL_RULE_MEAN, FL_SERVER_OPT_NONE, 1, 0.01},
        {"median", FL_RULE_MEDIAN, FL_SERVER_OPT_NONE, 1, 0},
        {"trimmed-mean", FL_RULE_TRIMMED_MEAN, FL_SERVER_OPT_NONE, 1, 0},
        {"krum", FL_RULE_KRUM, FL_SERVER_OPT_NONE, 1, 0},
        {"multi-krum", FL_RULE_MULTI_KRUM, FL_SERVER_OPT_NONE, 1, 0},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        cr_assert_eq(fl_strategy_config_default(&c, want[i].name), 0);
        cr_assert_str_eq(c.name, want[i].name);
        cr_assert_eq(c.rule, want[i].rule, "%s", want[i].name);
        cr_assert_eq(c.opt, want[i].opt, "%s", want[i].name);
        cr_assert_eq(c.server_lr, want[i].eta, "%s", want[i].name);
        cr_assert_eq(c.prox_mu, want[i].mu, "%s", want[i].name);
        cr_assert_eq(c.bound, FL_BOUND_NONE);
        cr_assert_eq(c.beta1, 0.9);
        cr_assert_eq(c.beta2, 0.99);
        cr_assert_eq(c.tau, 1e-3);
        cr_assert_eq(c.trim_beta, 0.1);
        cr_assert_eq(c.krum_f, 1);
        cr_assert_eq(c.krum_m, 0);
        cr_assert_eq(fl_strategy_config_check(&c), 0, "%s: %s", want[i].name, fl_error_msg());
        cr_assert_eq(fl_strategy_config_holds_all(&c), want[i].rule != FL_RULE_MEAN);
    }
    char buf[256];
    cr_assert_eq(fl_strategy_config_default(&c, "fedadam"), 0);
    c.rule = FL_RULE_MEDIAN;
    c.bound = FL_BOUND_MEDIAN;
    c.norm_bound = 3;
    fl_strategy_config_str(&c, buf, sizeof buf);
    cr_assert_str_eq(buf, "fedadam rule=median bound=median:3 opt=adam eta=0.01 beta1=0.9 "
                          "beta2=0.99 tau=0.001");
    cr_assert(fl_strategy_config_holds_all(&c), "a median bound holds every update");
    cr_assert_eq(fl_strategy_config_default(&c, "multi-krum"), 0);
    fl_strategy_config_str(&c, buf, sizeof buf);
    cr_assert_str_eq(buf, "multi-krum rule=multi-krum krum-f=1 krum-m=0 bound=none opt=none "
                          "eta=1");
    /* a short buffer is cut, never overrun */
    char tiny[8];
    fl_strategy_config_str(&c, tiny, sizeof tiny);
    cr_assert_str_eq(tiny, "multi-k");
}

Test(fl_strategy, unknown_name_is_refused)
{
    struct fl_strategy_config c;
    cr_assert_eq(fl_strategy_config_default(&c, "fedmagic"), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "fedmagic"), "%s", fl_error_msg());
    cr_assert(strstr(fl_error_msg(), "trimmed-mean"), "lists the known names: %s", fl_error_msg());
    cr_assert_null(s_new("fedmagic"));
}

/* Each out-of-range option is refused with its name as users write it; fl_strategy_new
 * checks too. */
#define S_BAD(field, value, text)                                                                  \
    do {                                                                                           \
        c = ok;                                                                                    \
        c.field = value;                                                                           \
        cr_assert_eq(fl_strategy_config_check(&c), FL_EINVAL, #field);                             \
        cr_assert_str_eq(fl_error_msg(), text);                                                    \
        cr_assert_null(fl_strategy_new(&c));                                                       \
    } while (0)

Test(fl_strategy, bad_options_are_refused_by_name)
{
    struct fl_strategy_config ok, c;
    cr_assert_eq(fl_strategy_config_default(&ok, "trimmed-mean"), 0);
    S_BAD(trim_beta, 0.6, "strategy: trim-beta 0.6 is outside [0, 0.5)");
    S_BAD(trim_beta, 0.5, "strategy: trim-beta 0.5 is outside [0, 0.5)");
    S_BAD(trim_beta, NAN, "strategy: trim-beta nan is outside [0, 0.5)");
    S_BAD(server_lr, 0, "strategy: server-lr 0 is outside (0, 1e6]");
    S_BAD(server_lr, INFINITY, "strategy: server-lr inf is outside (0, 1e6]");
    S_BAD(beta1, 1, "strategy: beta1 1 is outside [0, 1)");
    S_BAD(beta2, -0.1, "strategy: beta2 -0.1 is outside [0, 1)");
    S_BAD(tau, 0, "strategy: tau 0 is outside (0, 1000]");
    S_BAD(prox_mu, -1, "strategy: prox-mu -1 is outside [0, 1e6]");
    S_BAD(krum_m, 3, "strategy: krum-m 3 applies to rule multi-krum only, not trimmed-mean");
    S_BAD(krum_f, 200000, "strategy: krum-f 200000 is above 100000");
    S_BAD(bound, FL_BOUND_FIXED,
          "strategy: bound fixed needs norm-bound > 0 (the largest L2 norm of a delta), got 0");
    S_BAD(rule, (enum fl_rule)9, "strategy: rule 9 is not a rule");
    S_BAD(name[0], '\0', "strategy: the name is empty or longer than 31 bytes");
    c = ok;
    c.bound = FL_BOUND_MEDIAN;
    c.norm_bound = -2;
    cr_assert_eq(fl_strategy_config_check(&c), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "bound median needs norm-bound > 0"), "%s", fl_error_msg());
    c.norm_bound = 2;
    cr_assert_eq(fl_strategy_config_check(&c), 0);
    cr_assert_null(fl_strategy_new(NULL));
}

/* ---- the mean ---- */

Test(fl_strategy, fedavg_is_the_sample_weighted_mean)
{
    fl_strategy_t *s = s_new("fedavg");
    cr_assert_not_null(s);
    struct fl_tensor g[2], u[2];
    fl_tensor_init2(&g[0], "a", 2, 2);
    fl_tensor_init2(&g[1], "b", 3, 0);
    fl_tensor_init2(&u[0], "a", 2, 2);
    fl_tensor_init2(&u[1], "b", 3, 0);
    cr_assert_eq(fl_strategy_begin(s, g, 2), 0);
    /* Three updates: values k, 2k, 3k with weights 10, 30, 60. */
    double w[3] = {10, 30, 60};
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < 4; i++)
            u[0].data[i] = (float)((k + 1) * (i + 1));
        for (int i = 0; i < 3; i++)
            u[1].data[i] = (float)(-(k + 1) * i);
        char id[24];
        snprintf(id, sizeof id, "b%d", k);
        cr_assert_eq(fl_strategy_add(s, u, 2, w[k], id), 0);
    }
    cr_assert_eq(fl_strategy_count(s), 3);
    cr_assert_eq(fl_strategy_finish(s, g, 2), 0);
    double mean_k = (1 * 10 + 2 * 30 + 3 * 60) / 100.0; /* 2.5 */
    for (int i = 0; i < 4; i++)
        cr_assert_float_eq(g[0].data[i], mean_k * (i + 1), 1e-6);
    for (int i = 0; i < 3; i++)
        cr_assert_float_eq(g[1].data[i], -mean_k * i, 1e-6);
    size_t nv;
    const struct fl_verdict *v = fl_strategy_verdicts(s, &nv);
    cr_assert_eq(nv, 3);
    for (size_t i = 0; i < nv; i++) {
        cr_assert_eq(v[i].kind, FL_VERDICT_KEPT);
        cr_assert_eq(v[i].scale, 1.0);
    }
    /* A wrong-size update, a zero weight, a repeated id are refused and change nothing. */
    struct fl_tensor bad;
    fl_tensor_init2(&bad, "a", 5, 0);
    cr_assert_eq(fl_strategy_begin(s, g, 2), 0);
    fl_strategy_verdicts(s, &nv);
    cr_assert_eq(nv, 0, "begin forgets the last round's verdicts");
    struct fl_tensor mixed[2] = {bad, u[1]};
    cr_assert_eq(fl_strategy_add(s, mixed, 2, 1.0, "x"), FL_EMISMATCH);
    cr_assert_eq(fl_strategy_add(s, u, 1, 1.0, "x"), FL_EMISMATCH);
    cr_assert_eq(fl_strategy_add(s, u, 2, 0.0, "y"), FL_EINVAL);
    cr_assert_eq(fl_strategy_add(s, u, 2, NAN, "y"), FL_EINVAL);
    cr_assert_eq(fl_strategy_add(s, u, 2, 1.0, ""), FL_EINVAL);
    cr_assert_eq(fl_strategy_count(s), 0);
    cr_assert_eq(fl_strategy_finish(s, g, 2), FL_EINVAL, "nothing to average");
    cr_assert_eq(fl_strategy_add(s, u, 2, 1.0, "z"), 0);
    cr_assert_eq(fl_strategy_add(s, u, 2, 1.0, "z"), FL_EINVAL, "a second update from z");
    cr_assert(strstr(fl_error_msg(), "update from z"), "%s", fl_error_msg());
    cr_assert_eq(fl_strategy_count(s), 1);
    fl_tensor_free(&bad);
    for (int i = 0; i < 2; i++) {
        fl_tensor_free(&g[i]);
        fl_tensor_free(&u[i]);
    }
    fl_strategy_destroy(&s);
    cr_assert_null(s);
    fl_strategy_destroy(&s);
}

/* Spread over threads, every rule gives the same bits as on one: work is split by coordinate
 * or by fixed blocks. Tensors large enough to be split (over 2 x 65,536 elements). */
Test(fl_strategy, a_pool_gives_bitwise_the_single_thread_result)
{
    const int64_t rows = 600, cols = 500; /* 300,000 elements */
    const char *names[] = {"fedavg", "fedadam", "median", "trimmed-mean", "multi-krum"};
    fl_pool_t *pool = fl_pool_new(3);
    cr_assert_not_null(pool);
    for (size_t r = 0; r < sizeof names / sizeof names[0]; r++) {
        struct fl_tensor g[2], u;
        fl_tensor_init2(&u, "w", rows, cols);
        struct fl_rng rng;
        for (int run = 0; run < 2; run++) {
            struct fl_strategy_config c;
            cr_assert_eq(fl_strategy_config_default(&c, names[r]), 0);
            c.bound = FL_BOUND_FIXED; /* the norms too must not depend on the pool */
            c.norm_bound = 150;
            fl_strategy_t *s = s_new_cfg(&c);
            fl_strategy_set_pool(s, run ? pool : NULL);
            fl_tensor_init2(&g[run], "w", rows, cols);
            cr_assert_eq(fl_strategy_begin(s, &g[run], 1), 0);
            fl_rng_seed(&rng, 42);
            for (int k = 0; k < 5; k++) {
                for (size_t i = 0; i < fl_tensor_numel(&u); i++)
                    u.data[i] = (float)((fl_rng_uniform(&rng) - 0.5) * (1 + k % 2));
                char id[24];
                snprintf(id, sizeof id, "b%d", k);
                cr_assert_eq(fl_strategy_add(s, &u, 1, 1.0 + 7.0 * k, id), 0);
            }
            cr_assert_eq(fl_strategy_finish(s, &g[run], 1), 0, "%s", fl_error_msg());
            size_t nv;
            const struct fl_verdict *v = fl_strategy_verdicts(s, &nv);
            cr_assert_eq(v[1].kind, FL_VERDICT_CLIPPED, "%s: norm %g", names[r], v[1].norm);
            fl_strategy_destroy(&s);
        }
        cr_assert_eq(memcmp(g[0].data, g[1].data, rows * cols * sizeof(float)), 0, "%s", names[r]);
        cr_assert_neq(g[1].data[rows * cols - 1], 0.0f, "and it is not trivially zero");
        fl_tensor_free(&g[0]);
        fl_tensor_free(&g[1]);
        fl_tensor_free(&u);
    }
    fl_pool_destroy(&pool);
}

/* The streaming mean's result does not depend on the order the updates arrive in: the same
 * updates (magnitudes from 1e-6 to 1e3, weights from 1 to 1e5) in several orders give the
 * same bits. So does a held rule, which aggregates in id order. */
Test(fl_strategy, arrival_order_does_not_change_a_bit)
{
    enum { N = 24, LEN = 3000 };
    float *u = malloc(sizeof(float) * N * LEN), *g0 = malloc(sizeof(float) * LEN);
    float *out[4];
    double w[N];
    char ids[N][16];
    const char *id[N];
    struct fl_rng rng;
    fl_rng_seed(&rng, 7);
    for (size_t j = 0; j < LEN; j++)
        g0[j] = (float)(fl_rng_uniform(&rng) - 0.5);
    for (int k = 0; k < N; k++) {
        double mag = pow(10.0, -6 + 9.0 * k / (N - 1));
        for (size_t j = 0; j < LEN; j++)
            u[k * LEN + j] = (float)(g0[j] + mag * (fl_rng_uniform(&rng) - 0.5));
        w[k] = floor(1 + 1e5 * fl_rng_uniform(&rng));
        snprintf(ids[k], sizeof ids[k], "k%02d", k);
    }
    const char *names[] = {"fedavg", "fedavg-fixed", "median"};
    for (int r = 0; r < 3; r++) {
        struct fl_strategy_config c;
        cr_assert_eq(fl_strategy_config_default(&c, r == 2 ? "median" : "fedavg"), 0);
        if (r == 1) {
            c.bound = FL_BOUND_FIXED;
            c.norm_bound = 5;
        }
        for (int p = 0; p < 4; p++) {
            /* order p: 0 as made, 1 reversed, 2 and 3 shuffled */
            int perm[N];
            for (int k = 0; k < N; k++)
                perm[k] = p == 1 ? N - 1 - k : k;
            for (int k = N - 1; p >= 2 && k > 0; k--) {
                int j = (int)fl_rng_below(&rng, (uint64_t)k + 1), t = perm[k];
                perm[k] = perm[j];
                perm[j] = t;
            }
            float *pu = malloc(sizeof(float) * N * LEN);
            double pw[N];
            for (int k = 0; k < N; k++) {
                memcpy(pu + k * LEN, u + perm[k] * LEN, sizeof(float) * LEN);
                pw[k] = w[perm[k]];
                id[k] = ids[perm[k]];
            }
            out[p] = malloc(sizeof(float) * LEN);
            memcpy(out[p], g0, sizeof(float) * LEN);
            fl_strategy_t *s = s_new_cfg(&c);
            cr_assert_eq(s_round(s, out[p], LEN, pu, N, pw, id), 0);
            fl_strategy_destroy(&s);
            free(pu);
        }
        for (int p = 1; p < 4; p++)
            cr_assert_eq(memcmp(out[0], out[p], sizeof(float) * LEN), 0, "%s: order %d", names[r],
                         p);
        cr_assert_neq(memcmp(out[0], g0, sizeof(float) * LEN), 0);
        for (int p = 0; p < 4; p++)
            free(out[p]);
    }
    free(u);
    free(g0);
}

/* Streaming FedAvg holds no update, whatever their number; the median holds each one, once. */
Test(fl_strategy, memory_streams_for_the_mean_and_holds_for_the_median)
{
    enum { LEN = 10000 };
    struct fl_tensor g, u;
    fl_tensor_init2(&g, "w", LEN, 0);
    fl_tensor_init2(&u, "w", LEN, 0);
    const char *names[] = {"fedavg", "median"};
    for (int r = 0; r < 2; r++) {
        fl_strategy_t *s = s_new(names[r]);
        cr_assert_eq(fl_strategy_begin(s, &g, 1), 0);
        for (int k = 0; k < 50; k++) {
            for (size_t j = 0; j < LEN; j++)
                u.data[j] = (float)(k + j);
            char id[24];
            snprintf(id, sizeof id, "b%02d", k);
            cr_assert_eq(fl_strategy_add(s, &u, 1, 1.0, id), 0);
            size_t want = r == 0 ? 0 : (size_t)(k + 1) * LEN * sizeof(float);
            cr_assert_eq(fl_strategy_held_bytes(s), want, "%s after %d", names[r], k + 1);
        }
        cr_assert_eq(fl_strategy_finish(s, &g, 1), 0);
        cr_assert_eq(fl_strategy_held_bytes(s), 0, "finish lets the copies go");
        /* the mean and the median of k + j over k = 0..49 are both 24.5 + j */
        cr_assert_float_eq(g.data[7], 31.5f, 1e-4, "%s", names[r]);
        memset(g.data, 0, LEN * sizeof(float));
        fl_strategy_destroy(&s);
    }
    fl_tensor_free(&g);
    fl_tensor_free(&u);
}

/* A value that is not finite refuses the whole update, naming it, and leaves the round as if it
 * had not been sent. */
Test(fl_strategy, a_non_finite_update_is_refused)
{
    fl_strategy_t *s = s_new("fedavg");
    struct fl_tensor g[2], u[2];
    fl_tensor_init2(&g[0], "a", 4, 0);
    fl_tensor_init2(&g[1], "b", 6, 0);
    fl_tensor_init2(&u[0], "a", 4, 0);
    fl_tensor_init2(&u[1], "b", 6, 0);
    cr_assert_eq(fl_strategy_begin(s, g, 2), 0);
    for (int i = 0; i < 4; i++)
        u[0].data[i] = 2;
    for (int i = 0; i < 6; i++)
        u[1].data[i] = 4;
    cr_assert_eq(fl_strategy_add(s, u, 2, 1, "good"), 0);
    float bad[] = {NAN, INFINITY, -INFINITY};
    for (int b = 0; b < 3; b++) {
        u[1].data[3] = bad[b];
        cr_assert_eq(fl_strategy_add(s, u, 2, 5, "evil"), FL_EINVAL);
        cr_assert_str_eq(fl_error_msg(),
                         "update from evil: non-finite value in tensor b at index 3");
    }
    cr_assert_eq(fl_strategy_count(s), 1);
    cr_assert_eq(fl_strategy_finish(s, g, 2), 0);
    cr_assert_eq(g[0].data[0], 2.0f, "only the good update counts");
    cr_assert_eq(g[1].data[5], 4.0f);
    size_t nv;
    fl_strategy_verdicts(s, &nv);
    cr_assert_eq(nv, 1);
    for (int i = 0; i < 2; i++) {
        fl_tensor_free(&g[i]);
        fl_tensor_free(&u[i]);
    }
    fl_strategy_destroy(&s);
}

/* ---- median and trimmed mean ---- */

Test(fl_strategy, median_of_an_odd_and_an_even_count)
{
    fl_strategy_t *s = s_new("median");
    /* Three updates, two coordinates, around a global of (1, -1); weights do not matter. */
    float u[] = {1, 5, /**/ 3, -1, /**/ 2, 100, /**/ 10, 0};
    double w[] = {1, 1000, 1, 1};
    float g[] = {1, -1};
    cr_assert_eq(s_round(s, g, 2, u, 3, w, NULL), 0);
    /* sorted: (1, 2, 3) and (-1, 5, 100): medians 2 and 5 */
    cr_assert_eq(g[0], 2.0f);
    cr_assert_eq(g[1], 5.0f);
    /* Four: (1, 2, 3, 10) and (-1, 0, 5, 100): the means of the middle two, 2.5 and 2.5 */
    g[0] = 1;
    g[1] = -1;
    cr_assert_eq(s_round(s, g, 2, u, 4, w, NULL), 0);
    cr_assert_eq(g[0], 2.5f);
    cr_assert_eq(g[1], 2.5f);
    fl_strategy_destroy(&s);
}

Test(fl_strategy, trimmed_mean_cuts_floor_beta_n_at_each_end)
{
    /* Six updates of one coordinate: -100, 1, 2, 4, 8, 50 (sent in another order). */
    float u[] = {8, -100, 4, 50, 1, 2};
    double w[] = {1, 2, 3, 4, 5, 6}; /* unweighted: these do not matter */
    struct {
        double beta; /* floor(beta x 6) cut at each end */
        double want; /* the mean of the rest */
    } cases[] = {
        {0.1, -35.0 / 6}, /* floor(0.6) = 0: all six, (-100+1+2+4+8+50) / 6 */
        {0.2, 15.0 / 4},  /* floor(1.2) = 1: 1, 2, 4, 8 */
        {0.4, 3.0},       /* floor(2.4) = 2: 2, 4 */
        {1.0 / 3, 3.0},   /* floor(2) = 2, exactly: 2, 4 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct fl_strategy_config c;
        cr_assert_eq(fl_strategy_config_default(&c, "trimmed-mean"), 0);
        c.trim_beta = cases[i].beta;
        fl_strategy_t *s = s_new_cfg(&c);
        float g = 0;
        cr_assert_eq(s_round(s, &g, 1, u, 6, w, NULL), 0);
        cr_assert_float_eq(g, cases[i].want, 1e-6, "beta %g: %g", cases[i].beta, (double)g);
        fl_strategy_destroy(&s);
    }
}

static int s_cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Beyond a handful the rules select rather than sort: against a plain sort (the reference),
 * on 16 to 41 updates with many ties, both parities, each trimmed at floor(0.2 n). */
Test(fl_strategy, median_and_trimmed_mean_match_a_sort_on_larger_rounds)
{
    enum { LEN = 64 };
    struct fl_rng rng;
    fl_rng_seed(&rng, 3);
    for (int n = 16; n <= 41; n++) {
        float *u = malloc(sizeof(float) * (size_t)n * LEN), col[64];
        for (int k = 0; k < n * LEN; k++)
            u[k] = (float)fl_rng_below(&rng, k % 3 ? 10 : 1000) - 5;
        for (int r = 0; r < 2; r++) {
            struct fl_strategy_config c;
            cr_assert_eq(fl_strategy_config_default(&c, r ? "trimmed-mean" : "median"), 0);
            c.trim_beta = 0.2;
            fl_strategy_t *s = s_new_cfg(&c);
            float g[LEN] = {0};
            cr_assert_eq(s_round(s, g, LEN, u, (size_t)n, NULL, NULL), 0);
            int cut = (int)floor(0.2 * n + 1e-9);
            for (int j = 0; j < LEN; j++) {
                for (int k = 0; k < n; k++)
                    col[k] = u[k * LEN + j];
                qsort(col, (size_t)n, sizeof *col, s_cmp_float);
                double want = 0;
                if (r == 0) {
                    want = n % 2 ? col[n / 2] : 0.5 * ((double)col[n / 2 - 1] + col[n / 2]);
                } else {
                    for (int k = cut; k < n - cut; k++)
                        want += col[k];
                    want /= n - 2 * cut;
                }
                cr_assert_float_eq(g[j], want, 1e-5, "%s n %d coordinate %d: %g, want %g", c.name,
                                   n, j, (double)g[j], want);
            }
            fl_strategy_destroy(&s);
        }
        free(u);
    }
}

/* ---- Krum ---- */

/* Five updates of two coordinates, f = 1, so each score sums the n - f - 2 = 2 smallest
 * squared distances to the others:
 *
 *          a(0,0) b(1,0) c(0,2) d(2,2) e(10,10)     two nearest   score
 *   a        -      1      4      8     200          1 + 4          5
 *   b        1      -      5      5     181          1 + 5          6
 *   c        4      5      -      4     164          4 + 4          8
 *   d        8      5      4      -     128          4 + 5          9
 *   e      200    181    164    128      -         128 + 164      292
 *
 * Krum picks a; multi-Krum with m = 0 keeps the n - f = 4 best (a, b, c, d), with m = 2 the
 * two best (a, b). The updates arrive out of id order. */
static const float s_krum_u[] = {10, 10, /**/ 0, 2, /**/ 0, 0, /**/ 2, 2, /**/ 1, 0};
static const char *const s_krum_ids[] = {"e", "c", "a", "d", "b"};
static const double s_krum_w[] = {1, 1, 1, 2, 3};

Test(fl_strategy, krum_picks_the_update_closest_to_its_neighbours)
{
    fl_strategy_t *s = s_new("krum");
    float g[] = {0.5f, -3};
    cr_assert_eq(s_round(s, g, 2, s_krum_u, 5, s_krum_w, s_krum_ids), 0, "%s", fl_error_msg());
    cr_assert_eq(g[0], 0.0f, "a, exactly");
    cr_assert_eq(g[1], 0.0f);
    size_t nv;
    const struct fl_verdict *v = fl_strategy_verdicts(s, &nv);
    cr_assert_eq(nv, 5);
    const char *ids = "abcde";
    double scores[] = {5, 6, 8, 9, 292};
    for (size_t i = 0; i < 5; i++) {
        cr_assert_eq(v[i].id[0], ids[i], "in id order");
        cr_assert_eq(v[i].score, scores[i], "%s: %g", v[i].id, v[i].score);
        cr_assert_eq(v[i].kind, i == 0 ? FL_VERDICT_KEPT : FL_VERDICT_DROPPED, "%s", v[i].id);
    }
    cr_assert_str_eq(v[4].why, "krum score 292, not the lowest");
    cr_assert_str_eq(v[0].why, "krum score 5, the lowest");
    fl_strategy_destroy(&s);
}

Test(fl_strategy, multi_krum_averages_the_m_best)
{
    struct fl_strategy_config c;
    cr_assert_eq(fl_strategy_config_default(&c, "multi-krum"), 0);
    fl_strategy_t *s = s_new_cfg(&c);
    float g[] = {0, 0};
    /* m = 0: a, b, c, d with weights 1, 3, 1, 2: x = (0+3+0+4) / 7, y = (0+0+2+4) / 7 */
    cr_assert_eq(s_round(s, g, 2, s_krum_u, 5, s_krum_w, s_krum_ids), 0);
    cr_assert_float_eq(g[0], 7.0 / 7, 1e-6);
    cr_assert_float_eq(g[1], 6.0 / 7, 1e-6);
    size_t nv;
    const struct fl_verdict *v = fl_strategy_verdicts(s, &nv);
    cr_assert_eq(v[4].kind, FL_VERDICT_DROPPED, "e");
    cr_assert_str_eq(v[4].why, "krum score 292 not among the 4 lowest");
    for (int i = 0; i < 4; i++)
        cr_assert_eq(v[i].kind, FL_VERDICT_KEPT);
    fl_strategy_destroy(&s);
    /* m = 2: a and b, weights 1 and 3: (0.75, 0) */
    c.krum_m = 2;
    s = s_new_cfg(&c);
    g[0] = g[1] = 0;
    cr_assert_eq(s_round(s, g, 2, s_krum_u, 5, s_krum_w, s_krum_ids), 0);
    cr_assert_float_eq(g[0], 0.75, 1e-6);
    cr_assert_float_eq(g[1], 0.0, 1e-6);
    v = fl_strategy_verdicts(s, &nv);
    int kept = 0;
    for (int i = 0; i < 5; i++)
        kept += v[i].kind == FL_VERDICT_KEPT;
    cr_assert_eq(kept, 2);
    cr_assert_eq(v[0].kind, FL_VERDICT_KEPT);
    cr_assert_eq(v[1].kind, FL_VERDICT_KEPT);
    fl_strategy_destroy(&s);
}

/* Krum needs n >= 2f + 3: with fewer, finish fails and nothing moves, neither the global nor
 * the optimiser; the round stays open, and one more update lets it finish. */
Test(fl_strategy, krum_with_too_few_updates_changes_nothing)
{
    struct fl_strategy_config c;
    cr_assert_eq(fl_strategy_config_default(&c, "krum"), 0);
    c.opt = FL_SERVER_OPT_ADAM;
    fl_strategy_t *s = s_new_cfg(&c);
    struct fl_tensor g, u;
    fl_tensor_init2(&g, "w", 2, 0);
    fl_tensor_init2(&u, "w", 2, 0);
    g.data[0] = 0.5f;
    g.data[1] = -3;
    cr_assert_eq(fl_strategy_begin(s, &g, 1), 0);
    for (int k = 0; k < 4; k++) {
        memcpy(u.data, s_krum_u + 2 * k, sizeof(float) * 2);
        cr_assert_eq(fl_strategy_add(s, &u, 1, 1, s_krum_ids[k]), 0);
    }
    cr_assert_eq(fl_strategy_finish(s, &g, 1), FL_EINVAL);
    cr_assert_str_eq(fl_error_msg(),
                     "strategy: krum with krum-f 1 needs at least 5 updates, the round has 4");
    cr_assert_eq(g.data[0], 0.5f);
    cr_assert_eq(g.data[1], -3.0f);
    struct fl_strategy_state st;
    fl_strategy_get_state(s, &st);
    cr_assert_eq(st.steps, 0);
    cr_assert_eq(st.m[0].data[0], 0.0f);
    cr_assert_eq(st.v[0].data[0], (float)(1e-3 * 1e-3));
    size_t nv;
    fl_strategy_verdicts(s, &nv);
    cr_assert_eq(nv, 0);
    memcpy(u.data, s_krum_u + 8, sizeof(float) * 2);
    cr_assert_eq(fl_strategy_add(s, &u, 1, 1, s_krum_ids[4]), 0);
    cr_assert_eq(fl_strategy_finish(s, &g, 1), 0);
    fl_strategy_get_state(s, &st);
    cr_assert_eq(st.steps, 1);
    cr_assert_lt(g.data[0], 0.5f, "Adam moved the global towards a = (0, 0)");
    cr_assert_gt(g.data[1], -3.0f);
    fl_tensor_free(&g);
    fl_tensor_free(&u);
    fl_strategy_destroy(&s);
}

/* ---- bounds ---- */

/* A fixed bound clips the delta over all tensors together: (3 | 4) has norm 5. */
Test(fl_strategy, fixed_bound_clips_the_whole_delta)
{
    struct fl_strategy_config c;
    cr_assert_eq(fl_strategy_config_default(&c, "fedavg"), 0);
    c.bound = FL_BOUND_FIXED;
    c.norm_bound = 2;
    fl_strategy_t *s = s_new_cfg(&c);
    struct fl_tensor g[2], u[2];
    fl_tensor_init2(&g[0], "a", 1, 0);
    fl_tensor_init2(&g[1], "b", 1, 0);
    fl_tensor_init2(&u[0], "a", 1, 0);
    fl_tensor_init2(&u[1], "b", 1, 0);
    g[0].data[0] = 1;
    g[1].data[0] = 1;
    cr_assert_eq(fl_strategy_begin(s, g, 2), 0);
    u[0].data[0] = 4; /* delta (3, 4): norm 5, clipped to 2: (1.2, 1.6), scale 0.4 */
    u[1].data[0] = 5;
    cr_assert_eq(fl_strategy_add(s, u, 2, 1, "big"), 0);
    u[0].data[0] = 1.6f; /* delta (0.6, 0.8): norm 1, kept */
    u[1].data[0] = 1.8f;
    cr_assert_eq(fl_strategy_add(s, u, 2, 1, "small"), 0);
    cr_assert_eq(fl_strategy_held_bytes(s), 0, "a fixed bound streams");
    cr_assert_eq(fl_strategy_finish(s, g, 2), 0);
    /* mean delta ((1.2 + 0.6) / 2, (1.6 + 0.8) / 2) = (0.9, 1.2) */
    cr_assert_float_eq(g[0].data[0], 1.9, 1e-6);
    cr_assert_float_eq(g[1].data[0], 2.2, 1e-6);
    size_t nv;
    const struct fl_verdict *v = fl_strategy_verdicts(s, &nv);
    cr_assert_eq(nv, 2);
    cr_assert_str_eq(v[0].id, "big");
    cr_assert_eq(v[0].kind, FL_VERDICT_CLIPPED);
    cr_assert_float_eq(v[0].norm, 5.0, 1e-12);
    cr_assert_float_eq(v[0].scale, 0.4, 1e-12);
    cr_assert_str_eq(v[0].why, "norm 5 above bound 2");
    cr_assert_str_eq(v[1].id, "small");
    cr_assert_eq(v[1].kind, FL_VERDICT_KEPT);
    cr_assert_eq(v[1].scale, 1.0);
    cr_assert_float_eq(v[1].norm, 1.0, 1e-6);
    for (int i = 0; i < 2; i++) {
        fl_tensor_free(&g[i]);
        fl_tensor_free(&u[i]);
    }
    fl_strategy_destroy(&s);
}

/* A median bound: norm_bound x the round's median delta norm. */
Test(fl_strategy, median_bound_clips_relative_to_the_round)
{
    struct fl_strategy_config c;
    cr_assert_eq(fl_strategy_config_default(&c, "fedavg"), 0);
    c.bound = FL_BOUND_MEDIAN;
    c.norm_bound = 2;
    fl_strategy_t *s = s_new_cfg(&c);
    /* norms 1, 2, 10 (odd): median 2, bound 4: only the 10 is clipped, to 4 (scale 0.4) */
    float u3[] = {1, 2, 10};
    float g = 0;
    cr_assert_eq(s_round(s, &g, 1, u3, 3, NULL, NULL), 0);
    cr_assert_float_eq(g, (1 + 2 + 4) / 3.0, 1e-6);
    size_t nv;
    const struct fl_verdict *v = fl_strategy_verdicts(s, &nv);
    cr_assert_eq(v[0].kind, FL_VERDICT_KEPT);
    cr_assert_eq(v[1].kind, FL_VERDICT_KEPT);
    cr_assert_eq(v[2].kind, FL_VERDICT_CLIPPED);
    cr_assert_float_eq(v[2].scale, 0.4, 1e-12);
    cr_assert_str_eq(v[2].why, "norm 10 above bound 4 (2 x median 2)");
    /* norms 1, 2, 3, 10, 20 around a global of 1 (deltas may be negative): median 3, bound 6 */
    float u5[] = {2, -1, 4, 11, -19};
    g = 1;
    cr_assert_eq(s_round(s, &g, 1, u5, 5, NULL, NULL), 0);
    cr_assert_float_eq(g, 1 + (1 - 2 + 3 + 6 - 6) / 5.0, 1e-6);
    v = fl_strategy_verdicts(s, &nv);
    cr_assert_eq(v[3].kind, FL_VERDICT_CLIPPED);
    cr_assert_float_eq(v[3].scale, 0.6, 1e-12);
    cr_assert_eq(v[4].kind, FL_VERDICT_CLIPPED);
    cr_assert_float_eq(v[4].scale, 0.3, 1e-12);
    /* an even count: norms 1, 3, 5, 100: median 4, bound 8 */
    float u4[] = {1, 3, 5, 100};
    g = 0;
    cr_assert_eq(s_round(s, &g, 1, u4, 4, NULL, NULL), 0);
    cr_assert_float_eq(g, (1 + 3 + 5 + 8) / 4.0, 1e-6);
    fl_strategy_destroy(&s);
}

/* bound -> rule -> optimiser, each stage on the previous one's output: a median bound (x2),
 * the trimmed mean (beta 0.2: one cut at each end) and FedAvgM (eta 0.5, beta 0.9). */
Test(fl_strategy, the_stages_run_in_order)
{
    struct fl_strategy_config c;
    cr_assert_eq(fl_strategy_config_default(&c, "trimmed-mean"), 0);
    c.trim_beta = 0.2;
    c.bound = FL_BOUND_MEDIAN;
    c.norm_bound = 2;
    c.opt = FL_SERVER_OPT_AVGM;
    c.server_lr = 0.5;
    fl_strategy_t *s = s_new_cfg(&c);
    /* Round 1 from 0: deltas 1, 2, 3, 100, 200; median norm 3, bound 6: 1, 2, 3, 6, 6;
     * trimmed: 2, 3, 6, mean 11/3 (without the bound it would be 2, 3, 100: 35);
     * FedAvgM: m = 11/3, x = 0 + 0.5 x 11/3 = 11/6. */
    float u[] = {3, 100, 1, 200, 2};
    float g = 0;
    cr_assert_eq(s_round(s, &g, 1, u, 5, NULL, NULL), 0);
    cr_assert_float_eq(g, 11.0 / 6, 1e-6);
    /* Round 2 from 11/6, every update at 11/6 + 1: delta 1 for all, nothing clipped;
     * m = 0.9 x 11/3 + 1 = 4.3, x = 11/6 + 2.15. */
    float x1 = g, u2[5];
    for (int k = 0; k < 5; k++)
        u2[k] = x1 + 1;
    cr_assert_eq(s_round(s, &g, 1, u2, 5, NULL, NULL), 0);
    double d = (double)(x1 + 1) - x1; /* 1, up to the float rounding of x1 + 1 */
    cr_assert_float_eq(g, x1 + 0.5 * (0.9 * (11.0 / 3) + d), 1e-5);
    fl_strategy_destroy(&s);
}

/* ---- server optimisers ---- */

/* Three rounds from x0 = (0.25, -0.5) with one update a round, u1 = (0.75, -0.25),
 * u2 = (0.5, -1), u3 = (0.5, -0.5), against the equations worked through step by step with
 * the state kept in float32 as the strategy keeps it. FedAvgM (eta 1, beta 0.9) by hand:
 *   d1 = (0.5, 0.25)    m1 = d1                          x1 = (0.75, -0.25)
 *   d2 = (-0.25, -0.75) m2 = 0.9 m1 + d2 = (0.2, -0.525)  x2 = (0.95, -0.775)
 *   d3 = (-0.45, 0.275) m3 = (-0.27, -0.1975)            x3 = (0.68, -0.9725)
 * FedAdam's first step by hand (eta 0.01, beta1 0.9, beta2 0.99, tau 1e-3), coordinate 0:
 *   m1 = 0.1 x 0.5 = 0.05, v1 = 0.99 x 1e-6 + 0.01 x 0.25 = 0.00250099,
 *   x1 = 0.25 + 0.01 x 0.05 / (sqrt(0.00250099) + 0.001) = 0.259802...
 * FedAdagrad: v1 = 1e-6 + 0.25, x1 = 0.25 + 0.1 x 0.05 / (0.500001 + 0.001) = 0.25998...
 * FedYogi's v1 = 1e-6 + 0.01 x 0.25 (v < d^2: v grows like Adam's); in round 3 coordinate 1,
 * d3 = -0.005 and v > d^2, so Yogi's v shrinks by 0.01 d^2 where Adam's decays by 0.99. */
Test(fl_strategy, server_optimisers_follow_their_equations)
{
    static const float u[3][2] = {{0.75f, -0.25f}, {0.5f, -1.0f}, {0.5f, -0.5f}};
    struct {
        const char *name;
        double x[3][2]; /* the global after rounds 1, 2, 3 */
    } cases[] = {
        {"fedavgm", {{0.75, -0.25}, {0.95, -0.775}, {0.68, -0.9725}}},
        {"fedadagrad",
         {{0.259980023, -0.490039915}, {0.2723988, -0.495048493}, {0.286530435, -0.499643058}}},
        {"fedadam",
         {{0.259802014, -0.49039194}, {0.272071481, -0.495323092}, {0.28610307, -0.49986437}}},
        {"fedyogi",
         {{0.259802014, -0.490391999}, {0.272022396, -0.495318443}, {0.285947382, -0.499833435}}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fl_strategy_t *s = s_new(cases[i].name);
        float g[2] = {0.25f, -0.5f};
        for (int t = 0; t < 3; t++) {
            cr_assert_eq(s_round(s, g, 2, u[t], 1, NULL, NULL), 0);
            for (int j = 0; j < 2; j++)
                cr_assert_float_eq(g[j], cases[i].x[t][j], 2e-7, "%s round %d coordinate %d: %.9g",
                                   cases[i].name, t + 1, j, (double)g[j]);
        }
        struct fl_strategy_state st;
        fl_strategy_get_state(s, &st);
        cr_assert_eq(st.steps, 3);
        cr_assert_eq(st.n, 1);
        cr_assert_not_null(st.m);
        cr_assert_eq(st.v == NULL, strcmp(cases[i].name, "fedavgm") == 0);
        cr_assert_float_eq(st.m[0].data[1], strcmp(cases[i].name, "fedavgm") ? 0 : -0.1975, 0.05,
                           "%s", cases[i].name);
        fl_strategy_destroy(&s);
    }
    /* none with eta 0.5 goes half-way */
    struct fl_strategy_config c;
    cr_assert_eq(fl_strategy_config_default(&c, "fedavg"), 0);
    c.server_lr = 0.5;
    fl_strategy_t *s = s_new_cfg(&c);
    float g[2] = {0.25f, -0.5f};
    cr_assert_eq(s_round(s, g, 2, u[0], 1, NULL, NULL), 0);
    cr_assert_eq(g[0], 0.5f);
    cr_assert_eq(g[1], -0.375f);
    struct fl_strategy_state st;
    fl_strategy_get_state(s, &st);
    cr_assert_null(st.m);
    cr_assert_null(st.v);
    fl_strategy_destroy(&s);
}

/* A step that would overflow a float refuses and changes nothing. */
Test(fl_strategy, a_step_that_overflows_changes_nothing)
{
    struct fl_strategy_config c;
    cr_assert_eq(fl_strategy_config_default(&c, "fedavg"), 0);
    c.server_lr = 1e6;
    fl_strategy_t *s = s_new_cfg(&c);
    float u[] = {1e37f, 1};
    float g[] = {0, 0};
    cr_assert_eq(s_round(s, g, 2, u, 1, NULL, NULL), FL_ERANGE);
    cr_assert_eq(g[0], 0.0f);
    cr_assert_eq(g[1], 0.0f);
    cr_assert(strstr(fl_error_msg(), "server-lr"), "%s", fl_error_msg());
    fl_strategy_destroy(&s);
}

/* ---- the state and its file ---- */

/* A temporary directory for one test's files. */
static char *s_tmpdir(char *buf, size_t len)
{
    snprintf(buf, len, "/tmp/fl_test_strategy_XXXXXX");
    cr_assert_not_null(mkdtemp(buf));
    return buf;
}

/* Rounds r of a deterministic sequence of 4 updates over a 2-tensor adapter. */
static void s_state_round(fl_strategy_t *s, struct fl_tensor *g, int r)
{
    struct fl_tensor u[2];
    fl_tensor_init2(&u[0], "fc.lora_A", 3, 5);
    fl_tensor_init2(&u[1], "fc.lora_B", 7, 0);
    struct fl_rng rng;
    fl_rng_seed(&rng, 100 + (uint64_t)r);
    cr_assert_eq(fl_strategy_begin(s, g, 2), 0, "%s", fl_error_msg());
    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < 2; i++)
            for (size_t j = 0; j < fl_tensor_numel(&u[i]); j++)
                u[i].data[j] = g[i].data[j] + (float)(fl_rng_uniform(&rng) - 0.4);
        char id[24];
        snprintf(id, sizeof id, "b%d", k);
        cr_assert_eq(fl_strategy_add(s, u, 2, 10.0 + k, id), 0);
    }
    cr_assert_eq(fl_strategy_finish(s, g, 2), 0, "%s", fl_error_msg());
    fl_tensor_free(&u[0]);
    fl_tensor_free(&u[1]);
}

static void s_state_global(struct fl_tensor *g)
{
    fl_tensor_init2(&g[0], "fc.lora_A", 3, 5);
    fl_tensor_init2(&g[1], "fc.lora_B", 7, 0);
}

/* A strategy restarted from its file carries on exactly as the one that never stopped. */
Test(fl_strategy, state_file_resumes_bit_for_bit)
{
    char dir[64], path[128];
    s_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/strategy.state", dir);
    const char *names[] = {"fedavgm", "fedadam", "fedyogi", "fedadagrad", "fedavg"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        struct fl_tensor ga[2], gb[2];
        s_state_global(ga);
        fl_strategy_t *a = s_new(names[i]);
        s_state_round(a, ga, 1);
        s_state_round(a, ga, 2);
        cr_assert_eq(fl_strategy_save_file(a, path, 2), 0, "%s", fl_error_msg());
        /* the restart: a fresh strategy, the global as committed after round 2 */
        s_state_global(gb);
        for (int t = 0; t < 2; t++)
            memcpy(gb[t].data, ga[t].data, fl_tensor_numel(&ga[t]) * sizeof(float));
        fl_strategy_t *b = s_new(names[i]);
        uint32_t round = 0;
        cr_assert_eq(fl_strategy_load_file(b, path, &round), 0, "%s", fl_error_msg());
        cr_assert_eq(round, 2);
        s_state_round(a, ga, 3);
        s_state_round(b, gb, 3);
        for (int t = 0; t < 2; t++)
            cr_assert_eq(memcmp(ga[t].data, gb[t].data, fl_tensor_numel(&ga[t]) * sizeof(float)), 0,
                         "%s tensor %d", names[i], t);
        struct fl_strategy_state sa, sb;
        fl_strategy_get_state(a, &sa);
        fl_strategy_get_state(b, &sb);
        cr_assert_eq(sa.steps, 3);
        cr_assert_eq(sb.steps, 3);
        cr_assert_eq(sa.n, sb.n);
        for (size_t t = 0; t < sa.n; t++) {
            size_t bytes = fl_tensor_numel(&sa.m[t]) * sizeof(float);
            cr_assert_eq(memcmp(sa.m[t].data, sb.m[t].data, bytes), 0);
            cr_assert(fl_tensor_same_shape(&sa.m[t], &sb.m[t]), "shapes from the global");
            if (sa.v)
                cr_assert_eq(memcmp(sa.v[t].data, sb.v[t].data, bytes), 0);
        }
        for (int t = 0; t < 2; t++) {
            fl_tensor_free(&ga[t]);
            fl_tensor_free(&gb[t]);
        }
        fl_strategy_destroy(&a);
        fl_strategy_destroy(&b);
    }
    unlink(path);
    rmdir(dir);
}

/* Another strategy's file, a truncated one, a garbled one, a missing one: each refused with a
 * message naming the file, and the strategy keeps the state it had. */
Test(fl_strategy, bad_state_files_are_refused_by_name)
{
    char dir[64], path[128], bad[160];
    s_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/strategy.state", dir);
    snprintf(bad, sizeof bad, "%s/bad.state", dir);
    struct fl_tensor g[2];
    s_state_global(g);
    fl_strategy_t *a = s_new("fedadam");
    s_state_round(a, g, 1);
    cr_assert_eq(fl_strategy_save_file(a, path, 1), 0, "%s", fl_error_msg());
    /* another configuration */
    fl_strategy_t *y = s_new("fedyogi");
    cr_assert_eq(fl_strategy_load_file(y, path, NULL), FL_EMISMATCH);
    cr_assert(strstr(fl_error_msg(), path), "%s", fl_error_msg());
    cr_assert(strstr(fl_error_msg(), "\"fedadam rule=mean bound=none opt=adam"), "%s",
              fl_error_msg());
    cr_assert(strstr(fl_error_msg(), "\"fedyogi rule=mean bound=none opt=yogi"), "%s",
              fl_error_msg());
    fl_strategy_destroy(&y);
    /* every truncation and a flip of every byte */
    unsigned char *buf;
    size_t len;
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    len = (size_t)ftell(f);
    rewind(f);
    buf = malloc(len);
    cr_assert_eq(fread(buf, 1, len, f), len);
    fclose(f);
    fl_strategy_t *b = s_new("fedadam");
    for (size_t cut = 0; cut < 2 * len; cut++) {
        f = fopen(bad, "wb");
        if (cut < len) {
            fwrite(buf, 1, cut, f);
        } else {
            buf[cut - len] ^= 0x5a;
            fwrite(buf, 1, len, f);
            buf[cut - len] ^= 0x5a;
        }
        fclose(f);
        int rc = fl_strategy_load_file(b, bad, NULL);
        cr_assert_neq(rc, 0, "%s %zu accepted", cut < len ? "cut at" : "flip at",
                      cut < len ? cut : cut - len);
        cr_assert(strstr(fl_error_msg(), bad), "names the file: %s", fl_error_msg());
    }
    struct fl_strategy_state st;
    fl_strategy_get_state(b, &st);
    cr_assert_eq(st.steps, 0, "nothing loaded");
    cr_assert_eq(st.n, 0);
    /* a file that is not there */
    cr_assert_eq(fl_strategy_load_file(b, "/nonexistent/strategy.state", NULL), FL_EIO);
    cr_assert(strstr(fl_error_msg(), "/nonexistent/strategy.state"), "%s", fl_error_msg());
    /* the right file loads, but not into a round over another adapter */
    cr_assert_eq(fl_strategy_load_file(b, path, NULL), 0, "%s", fl_error_msg());
    struct fl_tensor other;
    fl_tensor_init2(&other, "fc.lora_A", 4, 5);
    cr_assert_eq(fl_strategy_begin(b, &other, 1), FL_EMISMATCH);
    fl_tensor_free(&other);
    free(buf);
    fl_strategy_destroy(&a);
    fl_strategy_destroy(&b);
    fl_tensor_free(&g[0]);
    fl_tensor_free(&g[1]);
    unlink(path);
    unlink(bad);
    rmdir(dir);
}

/* set_state refuses moments that are not finite, or a negative second moment. */
Test(fl_strategy, set_state_checks_its_values)
{
    struct fl_tensor g, m, v;
    fl_tensor_init2(&g, "w", 3, 0);
    fl_tensor_init2(&m, "w", 3, 0);
    fl_tensor_init2(&v, "w", 3, 0);
    fl_strategy_t *s = s_new("fedadam");
    struct fl_strategy_state st = {.steps = 4, .n = 1, .m = &m, .v = &v};
    v.data[1] = -1;
    cr_assert_eq(fl_strategy_set_state(s, &st), FL_EINVAL);
    v.data[1] = 1;
    m.data[2] = NAN;
    cr_assert_eq(fl_strategy_set_state(s, &st), FL_EINVAL);
    m.data[2] = 0;
    st.v = NULL;
    cr_assert_eq(fl_strategy_set_state(s, &st), FL_EMISMATCH, "Adam needs v");
    st.v = &v;
    cr_assert_eq(fl_strategy_set_state(s, &st), 0);
    cr_assert_eq(fl_strategy_begin(s, &g, 1), 0);
    cr_assert_eq(fl_strategy_set_state(s, &st), FL_EINVAL, "not during a round");
    fl_strategy_get_state(s, &st);
    cr_assert_eq(st.steps, 4);
    cr_assert_eq(st.v[0].data[1], 1.0f);
    fl_tensor_free(&g);
    fl_tensor_free(&m);
    fl_tensor_free(&v);
    fl_strategy_destroy(&s);
}
