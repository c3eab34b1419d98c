/* fl_strategy: FedAvg is the sample-weighted mean, streaming, and refuses mismatches. */
#include <criterion/criterion.h>

#include "fl_strategy.h"

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
