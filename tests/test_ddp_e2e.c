/* Distributed DP with the real programs: fedtl-coordinator --secure-aggregation --dp-noise (or
 * --dp-epsilon) and fedtl-client processes over CurveZMQ on loopback. Each branch adds its
 * share of the noise before masking; the global adapter's step differs from the mean of the
 * branches' clipped changes (kept with --keep-updates) by noise of exactly the variance the
 * shares add up to, (z C)^2 n / m over n^2, also across a restart of the coordinator; the
 * ledger and `fedtl status` report the epsilon central DP-FedAvg reports for the same settings
 * (the accountant of test_dp.c), at sampling rate 1 whatever the selection, and count a sum
 * from the moment the coordinator could unmask it, across a crash before the round commits; a
 * target epsilon chooses the same noise as in central mode; noise the encoding cannot hold is
 * refused at start. */
#include <criterion/criterion.h>

#include <cJSON.h>

#include "fl_dp.h"
#include "fl_modelfile.h"
#include "fl_testutil.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_MAXB 5
#define S_CLIP 0.5

/* Keys, 3,000 rows of four Gaussian classes in 20 dimensions (the stream that drew the centres
 * goes on), an mlp base on classes 0-2 and nb shards of classes 1-3 (fl_test_fed_setup). */
static void s_setup(struct fl_test_fed *f, int nb)
{
    const struct fl_test_fed_opts o = {.blobs_seed = FL_TEST_BLOBS_CENTRES_STREAM};
    char *why = NULL;
    int rc = fl_test_fed_setup_opts(f, "ddp", nb, &o, FEDTL_BIN_DIR, &why);
    cr_assert_eq(rc, 0, "%s", why ? why : "");
    free(why);
}

/* The coordinator with `rounds`, environment `env` and extra options on STATE, and the
 * branches, until the coordinator exits: its exit status; its log is coord-TAG.log. The
 * branches of a coordinator that did not exit 0 are stopped at once. */
static int s_run_env(struct fl_test_fed *f, const char *tag, int rounds, const char *env,
                     const char *extra)
{
    char cmd[4096], log[1024];
    int port = fl_test_free_port();
    snprintf(cmd, sizeof cmd,
             "cd %s && %s exec %s/fedtl-coordinator --key hq.key --allow allow --base base.ftm "
             "--state-dir state --endpoint tcp://127.0.0.1:%d --classes 1-3 --method lora "
             "--epochs 2 --heartbeat-ms 200 --threads 1 --rounds %d --min-clients 3 "
             "--min-start %d --deadline 30 --exit-when-done --secure-aggregation %s",
             f->dir, env, FEDTL_BIN_DIR, port, rounds, f->nb, extra);
    snprintf(log, sizeof log, "%s/coord-%s.log", f->dir, tag);
    pid_t coord = fl_test_spawn(cmd, log), branch[S_MAXB];
    cr_assert_gt(coord, 0);
    for (int i = 0; i < f->nb; i++) {
        snprintf(cmd, sizeof cmd,
                 "cd %s && exec %s/fedtl-client --coordinator tcp://127.0.0.1:%d "
                 "--coordinator-key hq.pub --key b%d.key --data shards/client-%02d.csv "
                 "--cache-dir cache%d --out final%d.fta --keep-updates kept%d --threads 1 "
                 "--connect-timeout 20",
                 f->dir, FEDTL_BIN_DIR, port, i, i, i, i, i);
        snprintf(log, sizeof log, "%s/b%d-%s.log", f->dir, i, tag);
        branch[i] = fl_test_spawn(cmd, log);
    }
    int rc = fl_test_wait(coord, 240);
    for (int i = 0; i < f->nb; i++)
        if (branch[i] > 0 && fl_test_wait(branch[i], rc == 0 ? 20 : 0) < 0 && rc == 0)
            cr_log_warn("branch %d did not exit", i);
    return rc;
}

static int s_run(struct fl_test_fed *f, const char *tag, int rounds, const char *extra)
{
    return s_run_env(f, tag, rounds, "", extra);
}

static char *s_file(struct fl_test_fed *f, const char *name)
{
    static char path[2048];
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    return path;
}

static double s_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsNumber(v), "no number %s", key);
    return v->valuedouble;
}

/* The epsilon after r rounds at sampling rate 1 and noise z, delta 1e-5: what the accountant
 * gives, and what central DP-FedAvg reports (test_dp_e2e.c). */
static double s_eps_after(int r, double z)
{
    struct fl_dp_account a;
    memset(&a, 0, sizeof a);
    for (int i = 0; i < r; i++)
        cr_assert_eq(fl_dp_account_spend(&a, 1.0, z), 0);
    return fl_dp_account_epsilon(&a, 1e-5);
}

/* Every aggregated ledger line reports the central accountant's epsilon after its round at
 * noise z, and a secure round of n inputs with threshold m, every weight 1. Their count. */
static int s_check_ledger(struct fl_test_fed *f, double z, int n, int m)
{
    cJSON *lines = fl_test_jsonl(s_file(f, "state/rounds.jsonl"));
    cr_assert_not_null(lines);
    int count = 0;
    const cJSON *line;
    cJSON_ArrayForEach(line, lines)
    {
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(line, "aggregated")))
            continue;
        int r = (int)s_num(line, "round");
        cr_assert_eq(r, ++count, "one aggregated line per round, in order");
        double eps = s_num(line, "dp_epsilon");
        cr_expect_lt(fabs(eps - s_eps_after(r, z)), 1.5e-6, "round %d: epsilon %.6f, want %.6f", r,
                     eps, s_eps_after(r, z));
        cr_expect_eq(s_num(line, "dp_delta"), 1e-5);
        cr_expect_eq(s_num(line, "dp_sampling_rate"), 1.0);
        cr_expect_eq(s_num(line, "dp_noise_multiplier"), z);
        const cJSON *sa = cJSON_GetObjectItemCaseSensitive(line, "secure_aggregation");
        cr_assert(cJSON_IsObject(sa), "round %d has a secure aggregation record", r);
        cr_expect_eq(s_num(sa, "inputs"), n);
        cr_expect_eq(s_num(sa, "threshold"), m, "the setup's threshold is the share count");
        cr_expect_eq(s_num(sa, "total_weight"), n, "every weight is 1");
    }
    cJSON_Delete(lines);
    return count;
}

/* The noise in the step from global adapter g0 to g1: n (g1 - g0) minus the sum of the
 * branches' changes in round r clipped to S_CLIP (their kept adapters), into a malloc'd
 * *noise of *d values. */
static void s_noise(struct fl_test_fed *f, const char *g0_path, int r, double **noise, size_t *d)
{
    struct fl_adapter_file g0, g1, a[S_MAXB];
    cr_assert_eq(fl_adapter_read(s_file(f, g0_path), &g0), 0);
    cr_assert_eq(fl_adapter_read(s_file(f, "state/global.fta"), &g1), 0);
    cr_assert_eq(g0.ntensors, g1.ntensors);
    size_t total = 0;
    for (size_t t = 0; t < g0.ntensors; t++)
        total += fl_tensor_numel(&g0.tensors[t]);
    double *x = calloc(total, sizeof *x);
    float *delta = malloc(total * sizeof *delta);
    cr_assert(x && delta);
    char name[64];
    for (int i = 0; i < f->nb; i++) {
        snprintf(name, sizeof name, "kept%d/round-%d.fta", i, r);
        cr_assert_eq(fl_adapter_read(s_file(f, name), &a[i]), 0, "%s", name);
        size_t off = 0;
        for (size_t t = 0; t < g0.ntensors; t++)
            for (size_t v = 0; v < fl_tensor_numel(&g0.tensors[t]); v++)
                delta[off++] = a[i].tensors[t].data[v] - g0.tensors[t].data[v];
        fl_dp_clip(delta, total, (float)S_CLIP); /* as the branch clipped it */
        for (size_t v = 0; v < total; v++)
            x[v] -= delta[v];
        fl_adapter_close(&a[i]);
    }
    size_t off = 0;
    for (size_t t = 0; t < g0.ntensors; t++)
        for (size_t v = 0; v < fl_tensor_numel(&g0.tensors[t]); v++, off++)
            x[off] += f->nb * ((double)g1.tensors[t].data[v] - g0.tensors[t].data[v]);
    fl_adapter_close(&g0);
    fl_adapter_close(&g1);
    free(delta);
    *noise = x;
    *d = total;
}

/* Five branches, min_clients 3: degree 4, threshold 3 = m; noise multiplier 1, clip 0.5. Each
 * branch adds N(0, (z C)^2 / 3); the sum of the 5 carries (z C)^2 5/3 = 0.4167 per value, and
 * the global step is that sum over the 5 selected. Round 1, a restart, round 2: the step of
 * round 2 is measured against the branches' kept adapters. Wrong accounting of the shares
 * would be far off: m = n gives 0.25, central noise on top 0.67, no shares 0. */
Test(ddp_e2e, the_step_carries_the_shares_noise_and_the_ledger_the_central_epsilon, .timeout = 600)
{
    struct fl_test_fed f;
    s_setup(&f, 5);
    const double z = 1.0;
    const char *opts = "--dp-clip 0.5 --dp-noise 1";
    cr_assert_eq(s_run(&f, "1", 1, opts), 0);
    char cp[4096];
    snprintf(cp, sizeof cp, "cp %s/state/global.fta %s/global-1.fta", f.dir, f.dir);
    cr_assert_eq(fl_test_run(cp, NULL), 0, "%s", cp);
    cr_assert_eq(s_run(&f, "2", 2, opts), 0, "resumed for round 2");
    cr_expect_eq(s_check_ledger(&f, z, 5, 3), 2);
    double *noise;
    size_t d;
    s_noise(&f, "global-1.fta", 2, &noise, &d);
    double s = 0, ss = 0;
    for (size_t v = 0; v < d; v++) {
        s += noise[v];
        ss += noise[v] * noise[v];
    }
    free(noise);
    double var = ss / (double)d, want = z * z * S_CLIP * S_CLIP * 5 / 3.0;
    double tol = 5 * sqrt(2.0 / (double)d); /* five deviations of the variance estimate */
    cr_log_info("round 2: noise variance %.4f per value over %zu values, expected %.4f "
                "(tolerance %.1f%%); mean %.3g",
                var, d, want, tol * 100, s / (double)d);
    cr_assert_gt(d, 1000, "enough values to tell the noise levels apart");
    cr_expect_lt(fabs(var / want - 1), tol, "variance %.4f, want %.4f", var, want);
    cr_expect_lt(fabs(s / (double)d), 5 * sqrt(want / (double)d), "mean %.3g", s / (double)d);
    /* what each branch added, and the coordinator's account of the mechanism */
    char path[1024];
    snprintf(path, sizeof path, "%s/b0-2.log", f.dir);
    cr_expect_eq(fl_test_count(path, "event=secagg_input round=2 "), 1);
    cr_expect_eq(fl_test_count(path, "samples=1 "), 1, "weight 1");
    cr_expect_eq(fl_test_count(path, "dp_noise_sigma=0.288675"), 1, "1 x 0.5 / sqrt(3)");
    cr_expect_eq(fl_test_count(s_file(&f, "coord-1.log"), "noise=distributed"), 1);
    /* fedtl status of the stopped federation: round 2's (epsilon, delta) */
    char cmd[4608], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s/fedtl status --state-dir %s", FEDTL_BIN_DIR, s_file(&f, "state"));
    cr_assert_eq(fl_test_run(cmd, &out), 0, "%s", out);
    cJSON *o = cJSON_Parse(out);
    const cJSON *last = cJSON_GetObjectItemCaseSensitive(o, "last_round");
    cr_assert(cJSON_IsObject(last), "%s", out);
    cr_expect_lt(fabs(s_num(last, "dp_epsilon") - s_eps_after(2, z)), 1.5e-6);
    cJSON_Delete(o);
    free(out);
    fl_test_fed_teardown(&f);
}

/* A budget alone chooses the noise as in central mode (the planned rounds at rate 1), and the
 * rounds spend what the central accountant says; noise the encoding cannot hold is refused. */
Test(ddp_e2e, a_target_epsilon_chooses_the_central_noise, .timeout = 600)
{
    struct fl_test_fed f;
    s_setup(&f, 3);
    double z = 0;
    cr_assert_eq(fl_dp_calibrate(8, 1e-5, 1, 2, &z), 0);
    cr_assert_eq(s_run(&f, "eps", 2, "--dp-clip 0.5 --dp-epsilon 8"), 0);
    char want[96];
    snprintf(want, sizeof want, "noise=distributed noise_multiplier=%.6g ", z);
    cr_expect_eq(fl_test_count(s_file(&f, "coord-eps.log"), want), 1, "%s", want);
    cr_expect_eq(s_check_ledger(&f, z, 3, 2), 2);
    cr_expect_leq(s_eps_after(2, z), 8);
    char cmd[4096], *out = NULL;
    snprintf(cmd, sizeof cmd,
             "cd %s && %s/fedtl-coordinator --key hq.key --allow allow --base base.ftm "
             "--state-dir state-wide --endpoint tcp://127.0.0.1:%d --classes 1-3 --rounds 1 "
             "--min-clients 3 --min-start 3 --secure-aggregation --dp-clip 1 --dp-noise 900000 "
             "--exit-when-done",
             f.dir, FEDTL_BIN_DIR, fl_test_free_port());
    cr_expect_neq(fl_test_run(cmd, &out), 0);
    cr_expect(out && strstr(out, "does not fit the encoding's range"), "%s", out ? out : "");
    free(out);
    fl_test_fed_teardown(&f);
}

/* The JSON object in file `name`. */
static cJSON *s_json(struct fl_test_fed *f, const char *name)
{
    char *text = fl_test_slurp(s_file(f, name));
    cr_assert_not_null(text, "%s", name);
    cJSON *o = cJSON_Parse(text);
    free(text);
    cr_assert(cJSON_IsObject(o), "%s", name);
    return o;
}

/* Five branches, four selected a round: the accountant credits no sampling (rate 1, not 0.8:
 * HQ draws the selection). The coordinator is killed (a test build's
 * FEDTL_TEST_DDP_DIE_RELEASE) once it holds the reveals that unmask round 1's sum, before the
 * round commits: the charge is in STATE/privacy-0.state already, a restart resumes it, and the
 * round it then commits reports the epsilon of two releases. */
Test(ddp_e2e, a_sum_unmaskable_before_a_crash_stays_charged_at_sampling_rate_one, .timeout = 600)
{
    struct fl_test_fed f;
    s_setup(&f, 5);
    const double z = 1.0;
    const char *opts = "--dp-clip 0.5 --dp-noise 1 --clients-per-round 4";
    int rc = s_run_env(&f, "die", 1, "FEDTL_TEST_DDP_DIE_RELEASE=1", opts);
    cr_assert_eq(rc, 128 + SIGKILL, "killed after the release, exit status %d", rc);
    const char *log = s_file(&f, "coord-die.log");
    cr_expect_eq(fl_test_count(log, "event=privacy_sampling planned_sampling_rate=1 "
                                    "selection_rate=0.8 "),
                 1);
    cr_expect_eq(fl_test_count(log, "planned_sampling_rate=1 spent_epsilon=0.000000"), 1);
    cr_assert_eq(fl_test_count(log, "event=privacy_release round=1 "), 1);
    cr_assert_eq(fl_test_count(log, "event=test_ddp_die round=1"), 1);
    cr_expect_eq(fl_test_count(log, "event=round_done"), 0, "killed before the commit");
    cJSON *o = s_json(&f, "state/privacy-0.state");
    cr_expect_eq(s_num(o, "round"), 0);
    cr_expect_eq(s_num(o, "released"), 1, "the release is counted");
    cr_expect_lt(fabs(s_num(o, "epsilon") - s_eps_after(1, z)), 1e-9);
    cJSON_Delete(o);

    cr_assert_eq(s_run(&f, "after", 1, opts), 0, "restarted, round 1 again");
    char want[128];
    snprintf(want, sizeof want, "planned_sampling_rate=1 spent_epsilon=%.6f ", s_eps_after(1, z));
    cr_expect_eq(fl_test_count(s_file(&f, "coord-after.log"), want), 1, "resumed: %s", want);
    cJSON *lines = fl_test_jsonl(s_file(&f, "state/rounds.jsonl"));
    cr_assert_not_null(lines);
    cr_assert_eq(cJSON_GetArraySize(lines), 1);
    const cJSON *line = cJSON_GetArrayItem(lines, 0);
    cr_expect(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(line, "aggregated")));
    cr_expect_eq(s_num(line, "selected"), 4);
    cr_expect_eq(s_num(line, "dp_sampling_rate"), 1.0);
    double eps = s_num(line, "dp_epsilon");
    cr_expect_lt(fabs(eps - s_eps_after(2, z)), 1.5e-6, "two releases: %.6f, want %.6f", eps,
                 s_eps_after(2, z));
    cJSON_Delete(lines);
    o = s_json(&f, "state/privacy-1.state");
    cr_expect_eq(s_num(o, "released"), 2, "the commit counted nothing more");
    cJSON_Delete(o);
    fl_test_fed_teardown(&f);
}
