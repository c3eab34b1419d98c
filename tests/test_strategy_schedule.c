/* fl_strategy: the server learning rate's schedule (server_lr_decay, server_lr_decay_after):
 * the steps it takes worked out by hand for the plain step and FedAvgM, its range, its place
 * in the configuration string, and its round count surviving the state file. */
#include <criterion/criterion.h>

#include "fl_error.h"
#include "fl_strategy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static fl_strategy_t *s_new_after(const char *name, double eta, double decay, uint32_t after)
{
    struct fl_strategy_config c;
    cr_assert_eq(fl_strategy_config_default(&c, name), 0);
    c.server_lr = eta;
    c.server_lr_decay = decay;
    c.server_lr_decay_after = after;
    cr_assert_eq(fl_strategy_config_check(&c), 0, "%s", fl_error_msg());
    fl_strategy_t *s = fl_strategy_new(&c);
    cr_assert_not_null(s, "%s", fl_error_msg());
    return s;
}

static fl_strategy_t *s_new(const char *name, double eta, double decay)
{
    return s_new_after(name, eta, decay, 0);
}

/* One round over a two-value adapter whose one update is the global plus d. */
static void s_round(fl_strategy_t *s, float *g, const float *d)
{
    struct fl_tensor gt, ut;
    fl_tensor_init2(&gt, "w", 2, 0);
    fl_tensor_init2(&ut, "w", 2, 0);
    for (int j = 0; j < 2; j++) {
        gt.data[j] = g[j];
        ut.data[j] = g[j] + d[j];
    }
    cr_assert_eq(fl_strategy_begin(s, &gt, 1), 0, "%s", fl_error_msg());
    cr_assert_eq(fl_strategy_add(s, &ut, 1, 1.0, "b00"), 0, "%s", fl_error_msg());
    cr_assert_eq(fl_strategy_finish(s, &gt, 1), 0, "%s", fl_error_msg());
    memcpy(g, gt.data, sizeof(float) * 2);
    fl_tensor_free(&gt);
    fl_tensor_free(&ut);
}

/* fedavg, eta 1, decay 0.5, the same change d = (1, -0.5) every round:
 *   round 1: eta 1     x = (0, 0) + (1, -0.5)          = (1, -0.5)
 *   round 2: eta 0.5   x = (1, -0.5) + (0.5, -0.25)    = (1.5, -0.75)
 *   round 3: eta 0.25  x = (1.5, -0.75) + (0.25, -0.125) = (1.75, -0.875)
 * fedavgm, eta 0.5, momentum 0.9, decay 0.8, d = (1, -0.5):
 *   round 1: m = (1, -0.5)       eta 0.5   x = (0.5, -0.25)
 *   round 2: m = (1.9, -0.95)    eta 0.4   x = (0.5 + 0.76, -0.25 - 0.38) = (1.26, -0.63)
 *   round 3: m = (2.71, -1.355)  eta 0.32  x = (1.26 + 0.8672, -0.63 - 0.4336)
 *                                            = (2.1272, -1.0636) */
Test(fl_strategy_schedule, the_step_decays_by_the_factor_every_round)
{
    static const float d[2] = {1.0f, -0.5f};
    struct {
        const char *name;
        double eta, decay;
        double x[3][2]; /* the global after rounds 1, 2, 3 */
        double next[4]; /* fl_strategy_server_lr before rounds 1..4 */
    } cases[] = {
        {"fedavg", 1, 0.5, {{1, -0.5}, {1.5, -0.75}, {1.75, -0.875}}, {1, 0.5, 0.25, 0.125}},
        {"fedavgm",
         0.5,
         0.8,
         {{0.5, -0.25}, {1.26, -0.63}, {2.1272, -1.0636}},
         {0.5, 0.4, 0.32, 0.256}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fl_strategy_t *s = s_new(cases[i].name, cases[i].eta, cases[i].decay);
        float g[2] = {0, 0};
        for (int t = 0; t < 3; t++) {
            cr_assert_float_eq(fl_strategy_server_lr(s), cases[i].next[t], 1e-12, "%s round %d",
                               cases[i].name, t + 1);
            s_round(s, g, d);
            for (int j = 0; j < 2; j++)
                cr_assert_float_eq(g[j], cases[i].x[t][j], 1e-6, "%s round %d coordinate %d: %.9g",
                                   cases[i].name, t + 1, j, (double)g[j]);
        }
        cr_assert_float_eq(fl_strategy_server_lr(s), cases[i].next[3], 1e-12, "%s", cases[i].name);
        fl_strategy_destroy(&s);
    }
    /* decay 1 is the constant step: three rounds of fedavg move by 3 d */
    fl_strategy_t *s = s_new("fedavg", 1, 1);
    float g[2] = {0, 0};
    for (int t = 0; t < 3; t++)
        s_round(s, g, d);
    cr_assert_eq(g[0], 3.0f);
    cr_assert_eq(g[1], -1.5f);
    cr_assert_eq(fl_strategy_server_lr(s), 1.0);
    fl_strategy_destroy(&s);
}

/* fedavg, eta 1, decay 0.5 after 2 rounds, d = (1, -0.5) every round: rounds 1-3 take the
 * full step (t = 0, 1, 2 <= 2), round 4 eta 0.5^(3 - 2) = 0.5, round 5 0.25:
 *   x = (1, -0.5), (2, -1), (3, -1.5), (3.5, -1.75), (3.75, -1.875) */
Test(fl_strategy_schedule, the_decay_waits_the_rounds_it_is_told)
{
    static const float d[2] = {1.0f, -0.5f};
    static const double x[5] = {1, 2, 3, 3.5, 3.75}, eta[6] = {1, 1, 1, 0.5, 0.25, 0.125};
    fl_strategy_t *s = s_new_after("fedavg", 1, 0.5, 2);
    float g[2] = {0, 0};
    for (int t = 0; t < 5; t++) {
        cr_assert_eq(fl_strategy_server_lr(s), eta[t], "before round %d", t + 1);
        s_round(s, g, d);
        cr_assert_float_eq(g[0], x[t], 1e-7, "round %d: %.9g", t + 1, (double)g[0]);
        cr_assert_float_eq(g[1], -0.5 * x[t], 1e-7, "round %d: %.9g", t + 1, (double)g[1]);
    }
    cr_assert_eq(fl_strategy_server_lr(s), eta[5]);
    fl_strategy_destroy(&s);
}

Test(fl_strategy_schedule, the_factor_is_checked_and_named_in_the_configuration)
{
    struct fl_strategy_config c;
    cr_assert_eq(fl_strategy_config_default(&c, "fedprox"), 0);
    cr_assert_eq(c.server_lr_decay, 1.0, "constant by default");
    char str[256];
    fl_strategy_config_str(&c, str, sizeof str);
    cr_assert_null(strstr(str, "decay"), "%s", str);
    const double bad[] = {0, -0.5, 1.0000001, 2, NAN, INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c.server_lr_decay = bad[i];
        cr_assert_eq(fl_strategy_config_check(&c), FL_EINVAL, "%g accepted", bad[i]);
        cr_assert(strstr(fl_error_msg(), "server-lr-decay"), "%s", fl_error_msg());
    }
    /* the rounds before it: only with a decay, and bounded */
    c.server_lr_decay = 1;
    c.server_lr_decay_after = 5;
    cr_assert_eq(fl_strategy_config_check(&c), FL_EINVAL, "a wait for no decay");
    cr_assert(strstr(fl_error_msg(), "server-lr-decay-after 5"), "%s", fl_error_msg());
    c.server_lr_decay = 0.9;
    c.server_lr_decay_after = 1000001;
    cr_assert_eq(fl_strategy_config_check(&c), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "server-lr-decay-after"), "%s", fl_error_msg());
    c.server_lr_decay_after = 0;
    cr_assert_eq(fl_strategy_config_check(&c), 0, "%s", fl_error_msg());
    fl_strategy_config_str(&c, str, sizeof str);
    cr_assert(strstr(str, " eta=1 eta-decay=0.9"), "%s", str);
    cr_assert_null(strstr(str, "after"), "%s", str);
    c.server_lr_decay_after = 15;
    cr_assert_eq(fl_strategy_config_check(&c), 0, "%s", fl_error_msg());
    fl_strategy_config_str(&c, str, sizeof str);
    cr_assert(strstr(str, " eta=1 eta-decay=0.9 eta-decay-after=15"), "%s", str);
}

/* Two rounds, saved; a fresh strategy loads the file and takes the third round's step (eta x
 * decay^2) exactly as the one that never stopped. A file saved under another factor, or none,
 * is refused naming both configurations. */
Test(fl_strategy_schedule, the_round_count_resumes_from_the_state_file)
{
    char dir[64] = "/tmp/fl_test_schedule_XXXXXX", path[128];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/strategy.state", dir);
    static const float d[3][2] = {{0.25f, -0.75f}, {0.5f, 0.125f}, {-1.0f, 0.5f}};
    const char *names[] = {"fedavg", "fedavgm", "fedavg"};
    const uint32_t after[] = {0, 0, 1}; /* the third: round 3 steps with 0.5 x 0.5^(2 - 1) */
    for (size_t i = 0; i < 3; i++) {
        fl_strategy_t *a = s_new_after(names[i], 0.5, 0.5, after[i]);
        float ga[2] = {0.5f, -0.25f}, gb[2];
        s_round(a, ga, d[0]);
        s_round(a, ga, d[1]);
        cr_assert_eq(fl_strategy_save_file(a, path, 2), 0, "%s", fl_error_msg());
        memcpy(gb, ga, sizeof gb);
        fl_strategy_t *b = s_new_after(names[i], 0.5, 0.5, after[i]);
        cr_assert_eq(fl_strategy_server_lr(b), 0.5);
        uint32_t round = 0;
        cr_assert_eq(fl_strategy_load_file(b, path, &round), 0, "%s", fl_error_msg());
        cr_assert_eq(round, 2);
        cr_assert_eq(fl_strategy_server_lr(b), after[i] ? 0.25 : 0.125, "%s: 0.5 x 0.5^(2 - %u)",
                     names[i], after[i]);
        s_round(a, ga, d[2]);
        s_round(b, gb, d[2]);
        cr_assert_eq(memcmp(ga, gb, sizeof ga), 0, "%s: %.9g %.9g vs %.9g %.9g", names[i],
                     (double)ga[0], (double)ga[1], (double)gb[0], (double)gb[1]);
        fl_strategy_destroy(&a);
        fl_strategy_destroy(&b);
    }
    /* fedavg's third step by hand: x2 = (0.5, -0.25) + 0.5 d1 + 0.25 d2
     * = (0.75, -0.59375); x3 = x2 + 0.125 d3 = (0.625, -0.53125) */
    fl_strategy_t *c = s_new("fedavg", 0.5, 0.5);
    cr_assert_eq(fl_strategy_load_file(c, path, NULL), FL_EMISMATCH,
                 "the file of the one that waits a round");
    fl_strategy_destroy(&c);
    fl_strategy_t *a = s_new("fedavg", 0.5, 0.5);
    float g[2] = {0.5f, -0.25f};
    for (int t = 0; t < 3; t++)
        s_round(a, g, d[t]);
    cr_assert_float_eq(g[0], 0.625, 1e-7, "%.9g", (double)g[0]);
    cr_assert_float_eq(g[1], -0.53125, 1e-7, "%.9g", (double)g[1]);
    cr_assert_eq(fl_strategy_save_file(a, path, 3), 0, "%s", fl_error_msg());
    const double other[] = {0.6, 1};
    for (size_t i = 0; i < 2; i++) {
        fl_strategy_t *b = s_new("fedavg", 0.5, other[i]);
        cr_assert_eq(fl_strategy_load_file(b, path, NULL), FL_EMISMATCH, "decay %g", other[i]);
        cr_assert(strstr(fl_error_msg(), "eta-decay=0.5"), "%s", fl_error_msg());
        cr_assert_eq(fl_strategy_server_lr(b), 0.5, "nothing loaded");
        fl_strategy_destroy(&b);
    }
    fl_strategy_destroy(&a);
    unlink(path);
    rmdir(dir);
}
