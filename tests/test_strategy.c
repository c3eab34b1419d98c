/* fl_strategy: FedAvg is the sample-weighted mean, streaming, and refuses mismatches. */
#include <criterion/criterion.h>

#include "fl_rng.h"
#include "fl_strategy.h"

#include <string.h>

Test(fl_strategy, fedavg_is_the_sample_weighted_mean)
{
    fl_strategy_t *s = fl_strategy_new("fedavg");
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
        cr_assert_eq(fl_strategy_add(s, u, 2, w[k]), 0);
    }
    cr_assert_eq(fl_strategy_count(s), 3);
    cr_assert_eq(fl_strategy_finish(s, g, 2), 0);
    double mean_k = (1 * 10 + 2 * 30 + 3 * 60) / 100.0; /* 2.5 */
    for (int i = 0; i < 4; i++)
        cr_assert_float_eq(g[0].data[i], mean_k * (i + 1), 1e-6);
    for (int i = 0; i < 3; i++)
        cr_assert_float_eq(g[1].data[i], -mean_k * i, 1e-6);
    /* A wrong-size update is refused and changes nothing. */
    struct fl_tensor bad;
    fl_tensor_init2(&bad, "a", 5, 0);
    cr_assert_eq(fl_strategy_begin(s, g, 2), 0);
    struct fl_tensor mixed[2] = {bad, u[1]};
    cr_assert_neq(fl_strategy_add(s, mixed, 2, 1.0), 0);
    cr_assert_neq(fl_strategy_add(s, u, 2, 0.0), 0);
    cr_assert_eq(fl_strategy_count(s), 0);
    cr_assert_neq(fl_strategy_finish(s, g, 2), 0, "nothing to average");
    fl_tensor_free(&bad);
    for (int i = 0; i < 2; i++) {
        fl_tensor_free(&g[i]);
        fl_tensor_free(&u[i]);
    }
    fl_strategy_destroy(&s);
    cr_assert_null(s);
}

Test(fl_strategy, unknown_name_is_refused)
{
    cr_assert_null(fl_strategy_new("fedmagic"));
}

/* Spread over threads, FedAvg gives the same bits as on one: each element is still summed in
 * update order. Tensors large enough to be split (over 2 x 65,536 elements). */
Test(fl_strategy, fedavg_on_a_pool_is_bitwise_the_single_thread_result)
{
    const int64_t rows = 600, cols = 500; /* 300,000 elements */
    fl_pool_t *pool = fl_pool_new(3);
    cr_assert_not_null(pool);
    struct fl_tensor g[2][1], u;
    fl_tensor_init2(&u, "w", rows, cols);
    struct fl_rng rng;
    for (int run = 0; run < 2; run++) {
        fl_strategy_t *s = fl_strategy_new("fedavg");
        cr_assert_not_null(s);
        fl_strategy_set_pool(s, run ? pool : NULL);
        fl_tensor_init2(&g[run][0], "w", rows, cols);
        cr_assert_eq(fl_strategy_begin(s, g[run], 1), 0);
        fl_rng_seed(&rng, 42);
        for (int k = 0; k < 5; k++) {
            for (size_t i = 0; i < fl_tensor_numel(&u); i++)
                u.data[i] = (float)(fl_rng_uniform(&rng) - 0.5);
            cr_assert_eq(fl_strategy_add(s, &u, 1, 1.0 + 7.0 * k), 0);
        }
        cr_assert_eq(fl_strategy_finish(s, g[run], 1), 0);
        fl_strategy_destroy(&s);
    }
    cr_assert_eq(memcmp(g[0][0].data, g[1][0].data, rows * cols * sizeof(float)), 0);
    /* and it is not trivially zero */
    cr_assert_neq(g[1][0].data[rows * cols - 1], 0.0f);
    fl_tensor_free(&g[0][0]);
    fl_tensor_free(&g[1][0]);
    fl_tensor_free(&u);
    fl_pool_destroy(&pool);
}
