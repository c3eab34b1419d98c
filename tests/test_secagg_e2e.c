/* Secure aggregation with the real programs: fedtl-coordinator --secure-aggregation and
 * fedtl-client processes over CurveZMQ on loopback. The global adapter equals plain FedAvg of
 * the adapters the branches trained (each keeps its own with --keep-updates) within the
 * fixed-point error, with every branch and with a third of them dying (SIGKILL, a test-build
 * switch) after sending their masked input; the ledger records the secure round and who left; fewer
 * survivors than the threshold abort the round before anything is revealed; the coordinator refuses
 * a strategy that needs individual updates. */
#include <criterion/criterion.h>

#include <cJSON.h>

#include "fl_modelfile.h"
#include "fl_testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_MAXB FL_TEST_FED_MAX

/* Keys, data, an mlp base (classes 0-2) and nb shards of classes 1-3 (fl_test_fed_setup). */
static void s_setup(struct fl_test_fed *f, int nb)
{
    char *why = NULL;
    int rc = fl_test_fed_setup(f, "secagg", nb, FEDTL_BIN_DIR, &why);
    cr_assert_eq(rc, 0, "%s", why ? why : "");
    free(why);
}

/* The coordinator (rounds, extra options) and the branches; branch i gets env_i before its
 * command (NULL: none). Waits for the coordinator to exit: 0 once the final adapter is out
 * (ok), non-zero when the federation failed (!ok). */
static void s_run_to(struct fl_test_fed *f, int rounds, const char *extra, const char *const *env,
                     bool ok)
{
    char cmd[4096], log[1024];
    snprintf(cmd, sizeof cmd,
             "cd %s && exec %s/fedtl-coordinator --key hq.key --allow allow --base base.ftm "
             "--state-dir state --endpoint tcp://127.0.0.1:%d --classes 1-3 --method lora "
             "--epochs 2 --heartbeat-ms 200 --threads 1 --rounds %d --min-clients 3 "
             "--min-start %d --deadline 30 --exit-when-done %s",
             f->dir, FEDTL_BIN_DIR, f->port, rounds, f->nb, extra);
    snprintf(log, sizeof log, "%s/coord.log", f->dir);
    f->coord = fl_test_spawn(cmd, log);
    for (int i = 0; i < f->nb; i++) {
        snprintf(cmd, sizeof cmd,
                 "cd %s && %s exec %s/fedtl-client --coordinator tcp://127.0.0.1:%d "
                 "--coordinator-key hq.pub --key b%d.key --data shards/client-%02d.csv "
                 "--cache-dir cache%d --out final%d.fta --keep-updates kept%d --threads 1 "
                 "--connect-timeout 20",
                 f->dir, env && env[i] ? env[i] : "", FEDTL_BIN_DIR, f->port, i, i, i, i, i);
        snprintf(log, sizeof log, "%s/b%d.log", f->dir, i);
        f->branch[i] = fl_test_spawn(cmd, log);
    }
    int rc = fl_test_wait(f->coord, 240);
    f->coord = 0;
    char *clog = NULL;
    snprintf(log, sizeof log, "%s/coord.log", f->dir);
    clog = fl_test_slurp(log);
    cr_assert(ok ? rc == 0 : rc > 0 && rc < 128, "coordinator exit %d:\n%s", rc, clog ? clog : "");
    free(clog);
}

static void s_run(struct fl_test_fed *f, int rounds, const char *extra, const char *const *env)
{
    s_run_to(f, rounds, extra, env, true);
}

/* The samples branch i weighed in with in round r, from its log ("secagg_input round=R ...
 * samples=N"), or 0 when it logged none. */
static uint64_t s_samples(struct fl_test_fed *f, int i, int r)
{
    char path[1024], needle[64];
    snprintf(path, sizeof path, "%s/b%d.log", f->dir, i);
    snprintf(needle, sizeof needle, "event=secagg_input round=%d ", r);
    char *log = fl_test_slurp(path);
    cr_assert_not_null(log);
    const char *p = strstr(log, needle), *s = p ? strstr(p, "samples=") : NULL;
    uint64_t n = s ? strtoull(s + 8, NULL, 10) : 0;
    free(log);
    return n;
}

/* The largest difference between the global adapter and the sample-weighted mean of the
 * adapters the branches in `in` trained in round r; the largest such value in *scale. */
static double s_fedavg_gap(struct fl_test_fed *f, int r, const bool *in, double *scale)
{
    char path[1024];
    struct fl_adapter_file g, a[S_MAXB];
    snprintf(path, sizeof path, "%s/state/global.fta", f->dir);
    cr_assert_eq(fl_adapter_read(path, &g), 0, "%s", path);
    double w[S_MAXB] = {0}, wsum = 0, gap = 0;
    *scale = 0;
    for (int i = 0; i < f->nb; i++) {
        if (!in[i])
            continue;
        snprintf(path, sizeof path, "%s/kept%d/round-%d.fta", f->dir, i, r);
        cr_assert_eq(fl_adapter_read(path, &a[i]), 0, "%s", path);
        cr_assert_eq(a[i].ntensors, g.ntensors);
        w[i] = (double)s_samples(f, i, r);
        cr_assert_gt(w[i], 0, "branch %d logged its input", i);
        wsum += w[i];
    }
    for (size_t t = 0; t < g.ntensors; t++)
        for (size_t v = 0; v < fl_tensor_numel(&g.tensors[t]); v++) {
            double m = 0;
            for (int i = 0; i < f->nb; i++)
                if (in[i])
                    m += w[i] * a[i].tensors[t].data[v];
            m /= wsum;
            gap = fmax(gap, fabs(g.tensors[t].data[v] - m));
            *scale = fmax(*scale, fabs(m));
        }
    for (int i = 0; i < f->nb; i++)
        if (in[i])
            fl_adapter_close(&a[i]);
    fl_adapter_close(&g);
    return gap;
}

/* The last line of the ledger. */
static cJSON *s_last_round(struct fl_test_fed *f)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/state/rounds.jsonl", f->dir);
    cJSON *lines = fl_test_jsonl(path);
    cr_assert_not_null(lines);
    cJSON *last = cJSON_DetachItemFromArray(lines, cJSON_GetArraySize(lines) - 1);
    cJSON_Delete(lines);
    return last;
}

static const cJSON *s_get(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert_not_null(v, "no %s", key);
    return v;
}

Test(secagg_e2e, the_global_adapter_is_fedavg_of_the_branches_within_fixed_point_error,
     .timeout = 600)
{
    struct fl_test_fed f;
    s_setup(&f, 4);
    s_run(&f, 2, "--secure-aggregation", NULL);
    bool in[S_MAXB] = {true, true, true, true};
    double scale, gap = s_fedavg_gap(&f, 2, in, &scale);
    /* half a unit of 2^-24 per value, plus the float the global adapter is stored in */
    cr_log_info("secure aggregation vs FedAvg of the kept adapters: max |difference| %.3g "
                "(largest value %.3g)",
                gap, scale);
    cr_expect_leq(gap, 0x1p-25 + scale * 0x1p-22, "gap %.3g", gap);
    cJSON *last = s_last_round(&f);
    const cJSON *sa = s_get(last, "secure_aggregation");
    cr_expect(cJSON_IsTrue(s_get(last, "aggregated")));
    cr_expect_str_eq(s_get(sa, "phase")->valuestring, "done");
    cr_expect_eq(s_get(sa, "inputs")->valueint, 4);
    cr_expect_eq(cJSON_GetArraySize(s_get(sa, "dropped")), 0);
    cJSON_Delete(last);
    fl_test_fed_teardown(&f);
}

Test(secagg_e2e, a_third_of_the_branches_die_after_their_masked_input, .timeout = 600)
{
    struct fl_test_fed f;
    s_setup(&f, 6);
    const char *env[S_MAXB] = {
        NULL, NULL, NULL, NULL, "FEDTL_TEST_SECAGG_DIE_ROUND=2", "FEDTL_TEST_SECAGG_DIE_ROUND=2"};
    s_run(&f, 2, "--secure-aggregation", env);
    /* their inputs reached the sum: their self-masks were rebuilt from their neighbours */
    bool in[S_MAXB] = {true, true, true, true, true, true};
    double scale, gap = s_fedavg_gap(&f, 2, in, &scale);
    cr_log_info("with 2 of 6 branches dead after their masked input: max |difference| %.3g "
                "(largest value %.3g)",
                gap, scale);
    cr_expect_leq(gap, 0x1p-25 + scale * 0x1p-22, "gap %.3g", gap);
    cJSON *last = s_last_round(&f);
    const cJSON *sa = s_get(last, "secure_aggregation"), *dropped = s_get(sa, "dropped");
    cr_expect_eq(s_get(sa, "inputs")->valueint, 6);
    cr_assert_eq(cJSON_GetArraySize(dropped), 2, "%s", cJSON_PrintUnformatted(sa));
    for (int i = 0; i < 2; i++) {
        const cJSON *d = cJSON_GetArrayItem(dropped, i);
        cr_expect_str_eq(s_get(d, "after")->valuestring, "masked_input");
        cr_expect(cJSON_IsTrue(s_get(d, "in_sum")));
        const char *b = s_get(d, "branch")->valuestring;
        cr_expect(strcmp(b, "b4") == 0 || strcmp(b, "b5") == 0, "%s", b);
    }
    cJSON_Delete(last);
    fl_test_fed_teardown(&f);
}

Test(secagg_e2e, too_few_survivors_abort_the_round_and_nothing_is_revealed, .timeout = 600)
{
    struct fl_test_fed f;
    s_setup(&f, 4); /* everyone's neighbour: threshold 2 */
    const char *die = "FEDTL_TEST_SECAGG_DIE_ROUND=1";
    const char *env[S_MAXB] = {NULL, die, die, die};
    s_run_to(&f, 1, "--secure-aggregation --round-retries 0", env, false);
    cJSON *last = s_last_round(&f);
    const cJSON *sa = s_get(last, "secure_aggregation");
    cr_expect(cJSON_IsFalse(s_get(last, "aggregated")));
    cr_expect_str_eq(s_get(sa, "phase")->valuestring, "aborted");
    cr_expect_eq(s_get(sa, "abort_code")->valueint, 1, "too few");
    const cJSON *dropped = s_get(sa, "dropped"), *d;
    cr_expect_eq(cJSON_GetArraySize(dropped), 4, "nobody revealed anything");
    cJSON_ArrayForEach(d, dropped)
    {
        cr_expect(cJSON_IsFalse(s_get(d, "in_sum")), "no sum");
    }
    cJSON_Delete(last);
    char path[1024];
    snprintf(path, sizeof path, "%s/coord.log", f.dir);
    cr_expect_eq(fl_test_count(path, "phase=aborted selected=4 inputs=0 revealed=0"), 1);
    snprintf(path, sizeof path, "%s/b0.log", f.dir);
    cr_expect_eq(fl_test_count(path, "event=secagg_end round=1 phase=aborted"), 1,
                 "the survivor was told");
    fl_test_fed_teardown(&f);
}

Test(secagg_e2e, strategies_that_need_every_update_are_refused, .timeout = 60)
{
    char cmd[2048], *out = NULL;
    snprintf(cmd, sizeof cmd,
             "%s/fedtl-coordinator --key x.key --allow x --base x.ftm --secure-aggregation "
             "--strategy median --check-config",
             FEDTL_BIN_DIR);
    cr_expect_neq(fl_test_run(cmd, &out), 0);
    cr_expect(out && strstr(out, "must see every branch's update"), "%s", out ? out : "");
    free(out);
}
