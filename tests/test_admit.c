/* fl_admit: the checks of an update's contents that bound what one branch can do. */
#include <criterion/criterion.h>

#include "fl_admit.h"
#include "fl_error.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

static const struct fl_admit_metrics s_good = {.samples = 100,
                                               .train_loss = 0.3f,
                                               .eval_loss = 0.4f,
                                               .eval_accuracy = 0.9f,
                                               .eval_samples = 25};

Test(fl_admit, metrics_a_training_run_can_produce_pass)
{
    cr_assert_eq(fl_admit_check_metrics(&s_good), 0);
    struct fl_admit_metrics m = s_good;
    m.train_loss = m.eval_loss = m.eval_accuracy = 0; /* no held-out split */
    m.eval_samples = 0;
    cr_assert_eq(fl_admit_check_metrics(&m), 0);
    m.eval_accuracy = 1;
    m.eval_samples = m.samples;
    cr_assert_eq(fl_admit_check_metrics(&m), 0);
}

Test(fl_admit, implausible_metrics_are_named_with_their_value)
{
    struct {
        struct fl_admit_metrics m;
        const char *says;
    } cases[] = {
        {s_good, "eval_accuracy 7 is outside [0, 1]"},
        {s_good, "eval_accuracy -0.5 is outside [0, 1]"},
        {s_good, "train_loss -1e+30 is not a loss"},
        {s_good, "train_loss inf is not a loss"},
        {s_good, "eval_loss -1 is not a loss"},
        {s_good, "nan is not a loss"},
        {s_good, "eval_samples 101 exceeds the 100 training records"},
        {s_good, "no training records"},
    };
    cases[0].m.eval_accuracy = 7;
    cases[1].m.eval_accuracy = -0.5f;
    cases[2].m.train_loss = -1e30f;
    cases[3].m.train_loss = INFINITY;
    cases[4].m.eval_loss = -1;
    cases[5].m.eval_loss = NAN;
    cases[6].m.eval_samples = 101;
    cases[7].m.samples = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_eq(fl_admit_check_metrics(&cases[i].m), FL_ERANGE, "case %zu", i);
        cr_assert(strstr(fl_error_msg(), cases[i].says), "'%s' lacks '%s'", fl_error_msg(),
                  cases[i].says);
    }
    struct fl_admit_metrics m = s_good;
    m.eval_accuracy = NAN;
    cr_assert_eq(fl_admit_check_metrics(&m), FL_ERANGE);
}

Test(fl_admit, a_weight_is_the_claim_cut_to_every_bound)
{
    struct fl_admit_limits l = {.max_samples = 1000000, .max_samples_ratio = 10};
    /* An honest claim within every bound is its own weight. */
    cr_assert_eq(fl_admit_weight(&l, 800, 1000, 100), 800);
    /* Beyond what the Hello declared, the round's median, max_samples. */
    cr_assert_eq(fl_admit_weight(&l, 1ull << 40, 100, 100), 100);
    cr_assert_eq(fl_admit_weight(&l, UINT64_MAX, UINT64_MAX, 100), 1000);
    cr_assert_eq(fl_admit_weight(&l, UINT64_MAX, 0, 0), 1000000);
    /* Bounds switched off, or unknown. */
    l.max_samples_ratio = 0;
    cr_assert_eq(fl_admit_weight(&l, UINT64_MAX, UINT64_MAX, 100), 1000000);
    /* A tiny median still leaves a weight of at least 1. */
    l.max_samples_ratio = 0.01;
    cr_assert_eq(fl_admit_weight(&l, 50, 0, 3), 1);
}

Test(fl_admit, the_median_is_the_lower_middle_count)
{
    uint64_t none[1] = {0};
    cr_assert_eq(fl_admit_median(none, 0), 0);
    uint64_t two[] = {UINT64_MAX, 100};
    cr_assert_eq(fl_admit_median(two, 2), 100, "one liar of two does not move it");
    uint64_t five[] = {7, 1, UINT64_MAX, 5, 3};
    cr_assert_eq(fl_admit_median(five, 5), 5);
}

/* A one-tensor adapter holding `v` in every element. */
static void s_fill(struct fl_tensor *t, const char *name, size_t n, float v)
{
    cr_assert_eq(fl_tensor_init2(t, name, n, 0), 0);
    for (size_t i = 0; i < n; i++)
        t->data[i] = v;
}

Test(fl_admit, the_distance_is_the_l2_norm_of_the_step_in_one_pass)
{
    struct fl_tensor g[2], u[2];
    s_fill(&g[0], "a", 100, 1.0f);
    s_fill(&g[1], "b", 300000, 0.0f); /* large enough to be split over the pool */
    s_fill(&u[0], "a", 100, 4.0f);
    s_fill(&u[1], "b", 300000, 0.0f);
    u[1].data[12345] = 4.0f;
    fl_pool_t *pool = fl_pool_new(3);
    double d = -1;
    cr_assert_eq(fl_admit_distance(g, u, 2, NULL, &d), 0);
    cr_assert_float_eq(d, sqrt(100 * 9.0 + 16.0), 1e-9);
    cr_assert_eq(fl_admit_distance(g, u, 2, pool, &d), 0);
    cr_assert_float_eq(d, sqrt(100 * 9.0 + 16.0), 1e-9, "the same on the pool's threads");
    /* Huge but finite: the distance is huge, in double, and beyond any bound. */
    for (size_t i = 0; i < 300000; i++)
        u[1].data[i] = FLT_MAX;
    cr_assert_eq(fl_admit_distance(g, u, 2, pool, &d), 0);
    cr_assert(isfinite(d) && d > 1e38, "%g", d);
    struct fl_admit_limits l = {.max_update_norm = 100};
    cr_assert_eq(fl_admit_check_distance(&l, d), FL_ERANGE);
    cr_assert(strstr(fl_error_msg(), "exceeds max_update_norm 100"), "%s", fl_error_msg());
    cr_assert_eq(fl_admit_check_distance(&l, 99.5), 0);
    l.max_update_norm = 0; /* no bound */
    cr_assert_eq(fl_admit_check_distance(&l, d), 0);
    /* NaN or Inf anywhere is named. */
    u[1].data[299999] = INFINITY;
    cr_assert_eq(fl_admit_distance(g, u, 2, pool, &d), FL_ERANGE);
    cr_assert(strstr(fl_error_msg(), "tensor b holds NaN or Inf"), "%s", fl_error_msg());
    u[1].data[299999] = 0;
    u[0].data[0] = NAN;
    cr_assert_eq(fl_admit_distance(g, u, 2, NULL, &d), FL_ERANGE);
    cr_assert(strstr(fl_error_msg(), "tensor a holds NaN or Inf"), "%s", fl_error_msg());
    fl_pool_destroy(&pool);
    for (int i = 0; i < 2; i++) {
        fl_tensor_free(&g[i]);
        fl_tensor_free(&u[i]);
    }
}
