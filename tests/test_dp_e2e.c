/* DP-FedAvg as users run it: whole federations through scripts/simulate.sh (a real coordinator
 * and branch processes, real keys, sockets and files). A privacy budget stops the federation
 * before a round would overspend it, also across a SIGKILL and restart of the coordinator
 * (the spent budget is resumed, not reset); every round's (epsilon, delta) is in rounds.jsonl,
 * `fedtl status` and /metrics, and equals the accountant's (fl_dp, checked against published
 * figures in test_dp.c); a target epsilon alone chooses the noise for the planned rounds; the
 * coordinator's options refuse what breaks the analysis, naming both settings (and accept
 * secure aggregation, where the branches add the noise: test_ddp_e2e.c); the account file
 * resumes to the bit and a file that lies is refused by name. */
#include <criterion/criterion.h>

#include "fl_coord.h"
#include "fl_dp.h"
#include "fl_error.h"
#include "fl_metrics.h"
#include "fl_privacy.h"
#include "fl_strategy.h"
#include "fl_testutil.h"

#include <cJSON.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BRANCHES 3

static char *s_dir;

/* A small base: cnn-small on 2,000 images of classes 0-4, one epoch. */
static void s_setup(void)
{
    char *why = NULL;
    s_dir = fl_test_fashion_base("dp", 2000, 1, FEDTL_BIN_DIR, &why);
    cr_assert_not_null(s_dir, "%s", why ? why : "");
    free(why);
}

static void s_teardown(void)
{
    if (!getenv("FEDTL_KEEP_TMP"))
        fl_test_rmtree(s_dir);
    free(s_dir);
}

TestSuite(dp_e2e, .init = s_setup, .fini = s_teardown, .timeout = 400);

/* simulate.sh into RUN: 3 branches, every one selected every round (sampling rate 1). */
static int s_simulate(const char *run, int rounds, const char *extra, char **out)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "FEDTL_BIN=%s %s/scripts/simulate.sh --run %s/%s --base %s/base.ftm --branches %d "
             "--rounds %d --samples 450 --alpha 1.0 --epochs 1 --deadline 30 --min-clients %d "
             "--port %d --quiet %s",
             FEDTL_BIN_DIR, FEDTL_SRC_DIR, s_dir, run, s_dir, BRANCHES, rounds, BRANCHES,
             fl_test_free_port(), extra);
    return fl_test_run(cmd, out);
}

static char *s_file(const char *run, const char *name)
{
    static char path[2048];
    snprintf(path, sizeof path, "%s/%s/%s", s_dir, run, name);
    return path;
}

static double s_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsNumber(v), "no number %s", key);
    return v->valuedouble;
}

/* fedtl-coordinator on RUN's state with the options given (simulate.sh's keys and allow-list),
 * in the foreground with --exit-when-done: its exit status, its output in *out. */
static int s_restart(const char *run, const char *opts, char **out)
{
    char cmd[8192];
    snprintf(
        cmd, sizeof cmd,
        "cd %s/%s && %s/fedtl-coordinator --federation simulation --key keys/hq.key "
        "--allow allow --base %s/base.ftm --state-dir state --endpoint tcp://127.0.0.1:%d "
        "--rounds 10 --classes 5-9 --epochs 1 --min-clients 3 --min-start 3 --exit-when-done %s",
        s_dir, run, FEDTL_BIN_DIR, s_dir, fl_test_free_port(), opts);
    return fl_test_run(cmd, out);
}

/* The epsilon after r rounds at sampling rate 1 and noise z, delta 1e-5: the accountant's. */
static double s_eps_after(int r, double z)
{
    struct fl_dp_account a;
    memset(&a, 0, sizeof a);
    for (int i = 0; i < r; i++)
        cr_assert_eq(fl_dp_account_spend(&a, 1.0, z), 0);
    return fl_dp_account_epsilon(&a, 1e-5);
}

/* The aggregated lines of RUN's ledger check out against the accountant at noise z: round i
 * reports the epsilon after i rounds (6 decimals), delta 1e-5, rate 1 and z. Their count. */
static int s_check_ledger(const char *run, double z, double *last_eps)
{
    cJSON *lines = fl_test_jsonl(s_file(run, "state/rounds.jsonl"));
    cr_assert_not_null(lines);
    int n = 0;
    const cJSON *line;
    cJSON_ArrayForEach(line, lines)
    {
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(line, "aggregated")))
            continue;
        int r = (int)s_num(line, "round");
        double eps = s_num(line, "dp_epsilon");
        cr_assert_eq(r, ++n, "one aggregated line per round, in order");
        cr_assert_lt(fabs(eps - s_eps_after(r, z)), 1.5e-6, "round %d: epsilon %.6f, want %.6f", r,
                     eps, s_eps_after(r, z));
        cr_assert_eq(s_num(line, "dp_delta"), 1e-5);
        cr_assert_eq(s_num(line, "dp_sampling_rate"), 1.0);
        cr_assert_eq(s_num(line, "dp_noise_multiplier"), z);
        *last_eps = eps;
    }
    cJSON_Delete(lines);
    return n;
}

/* Noise multiplier 1 and a budget of 10 at sampling rate 1: rounds 1-3 spend 4.73, 7.08 and
 * 9.01, a fourth would reach 10.73, so the federation stops after round 3 of 10, though the
 * coordinator was killed after round 1 and restarted (a budget reset by the restart would have
 * allowed three more rounds: four in all). */
Test(dp_e2e, a_budget_stops_the_federation_and_survives_a_restart)
{
    cr_assert_leq(s_eps_after(3, 1.0), 10);
    cr_assert_gt(s_eps_after(4, 1.0), 10);
    char *out = NULL;
    s_simulate("budget", 10,
               "--strategy-opt dp_clip=0.5 --strategy-opt dp_noise=1 --strategy-opt "
               "dp_epsilon=10 --restart-coordinator 1",
               &out);
    cr_assert(strstr(out, "SIGKILL to the coordinator after round 1"), "%s", out);
    free(out);
    double eps3 = 0;
    cr_assert_eq(s_check_ledger("budget", 1.0, &eps3), 3);
    char *log = fl_test_slurp(s_file("budget", "logs/coordinator.log"));
    cr_assert_not_null(log);
    char resumed[64];
    snprintf(resumed, sizeof resumed, "spent_epsilon=%.6f", s_eps_after(1, 1.0));
    cr_assert(strstr(log, resumed), "the restart resumed round 1's spending: %s", log);
    cr_assert(strstr(log, "event=privacy_budget_spent round=4") &&
                  strstr(log, "event=federation_done rounds=3"),
              "%s", log);
    free(log);
    /* the account on disk: round 3's, three releases, z 1; round 1's pruned */
    cJSON *st = fl_test_json(s_file("budget", "state/privacy-3.state"));
    cr_assert_not_null(st);
    cr_assert_eq(s_num(st, "released"), 3);
    cr_assert_eq(s_num(st, "noise_multiplier"), 1);
    cJSON_Delete(st);
    cr_assert_eq(access(s_file("budget", "state/privacy-1.state"), F_OK), -1);
    /* fedtl status of the stopped federation: the last round's (epsilon, delta) */
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s/fedtl status --state-dir %s", FEDTL_BIN_DIR,
             s_file("budget", "state"));
    cr_assert_eq(fl_test_run(cmd, &out), 0, "%s", out);
    cJSON *o = cJSON_Parse(out);
    const cJSON *last = cJSON_GetObjectItemCaseSensitive(o, "last_round");
    cr_assert(cJSON_IsObject(last), "%s", out);
    cr_assert_eq(s_num(last, "dp_epsilon"), eps3);
    cr_assert_eq(s_num(last, "dp_delta"), 1e-5);
    cJSON_Delete(o);
    free(out);
    /* Started again on it, the coordinator is done at once (the budget is spent), and its
     * live status and /metrics say how much was spent. */
    int port = fl_test_free_port(), http = fl_test_free_port();
    snprintf(
        cmd, sizeof cmd,
        "cd %s/budget && exec %s/fedtl-coordinator --federation simulation --key "
        "keys/hq.key --allow allow --base %s/base.ftm --state-dir state --endpoint "
        "tcp://127.0.0.1:%d --rounds 10 --classes 5-9 --epochs 1 --min-clients 3 --min-start 3 "
        "--http 127.0.0.1:%d --dp-clip 0.5 --dp-noise 1 --dp-epsilon 10",
        s_dir, FEDTL_BIN_DIR, s_dir, port, http);
    pid_t pid = fl_test_spawn(cmd, s_file("budget", "logs/again.log"));
    cr_assert_gt(pid, 0);
    bool answered = false;
    for (int i = 0; i < 60 && !answered; i++) {
        usleep(200000);
        snprintf(cmd, sizeof cmd, "%s/fedtl status --timeout 0.5 --state-dir %s", FEDTL_BIN_DIR,
                 s_file("budget", "state"));
        if (fl_test_run(cmd, &out) == 0 && strstr(out, "\"phase\":\"done\"") &&
            !strstr(out, "\"running\":false")) {
            o = cJSON_Parse(out);
            last = cJSON_GetObjectItemCaseSensitive(o, "last");
            cr_assert(cJSON_IsObject(last), "%s", out);
            cr_assert_eq(s_num(last, "dp_epsilon"), eps3);
            cr_assert_eq(s_num(o, "round"), 3);
            cJSON_Delete(o);
            answered = true;
        }
        free(out);
        out = NULL;
    }
    cr_assert(answered, "the restarted coordinator answered its status, done");
    snprintf(cmd, sizeof cmd, "curl -s http://127.0.0.1:%d/metrics", http);
    cr_assert_eq(fl_test_run(cmd, &out), 0);
    cr_assert(strstr(out, "\nfedtl_dp_delta ") && strstr(out, "\nfedtl_dp_epsilon "), "%s", out);
    cr_assert_eq(strtod(strstr(out, "\nfedtl_dp_delta ") + 16, NULL), 1e-5);
    double got = strtod(strstr(out, "\nfedtl_dp_epsilon ") + 18, NULL);
    cr_assert_lt(fabs(got - eps3), 1e-6, "%s", out);
    free(out);
    kill(pid, SIGTERM);
    cr_assert_eq(fl_test_wait(pid, 20), 0);
    /* another noise multiplier, or the account missing: refused by name */
    cr_assert_eq(s_restart("budget", "--dp-clip 0.5 --dp-noise 2 --dp-epsilon 10", &out), 1);
    cr_assert(strstr(out, "privacy-3.state") && strstr(out, "noise multiplier"), "%s", out);
    free(out);
    cr_assert_eq(unlink(s_file("budget", "state/privacy-3.state")), 0);
    cr_assert_eq(s_restart("budget", "--dp-clip 0.5 --dp-noise 1 --dp-epsilon 10", &out), 1);
    cr_assert(strstr(out, "privacy-3.state") && strstr(out, "unknown"), "%s", out);
    free(out);
    /* a noise that cannot pay for one round of a fresh federation is refused at once */
    cr_assert_eq(unlink(s_file("budget", "state/global.fta")), 0);
    cr_assert_eq(s_restart("budget", "--dp-clip 0.5 --dp-noise 0.2 --dp-epsilon 1", &out), 1);
    cr_assert(strstr(out, "--dp-noise 0.2") && strstr(out, "--dp-epsilon 1"), "%s", out);
    free(out);
}

/* A target epsilon of 5 over 3 planned rounds at sampling rate 1: the coordinator chooses
 * fl_dp_calibrate's noise multiplier, runs the 3 rounds and ends within the budget, close to
 * it (the noise is the smallest that fits, to 1e-4). */
Test(dp_e2e, a_target_epsilon_chooses_the_noise_for_the_planned_rounds)
{
    double z = 0;
    cr_assert_eq(fl_dp_calibrate(5, 1e-5, 1.0, 3, &z), 0);
    char *out = NULL;
    int rc =
        s_simulate("target", 3, "--strategy-opt dp_clip=0.5 --strategy-opt dp_epsilon=5", &out);
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    char *log = fl_test_slurp(s_file("target", "logs/coordinator.log"));
    char want[96];
    snprintf(want, sizeof want, "noise_multiplier=%.6g", z);
    cr_assert(log && strstr(log, want) && strstr(log, "chosen=1"), "want %s: %s", want, log);
    free(log);
    double eps = 0;
    cr_assert_eq(s_check_ledger("target", z, &eps), 3);
    cr_assert_leq(eps, 5);
    cr_assert_gt(eps, 4.99);
}

/* ---- the coordinator's options (no processes) ---- */

static int s_check(const char *const *kv)
{
    struct fl_coord_config c;
    fl_coord_config_default(&c);
    fl_coord_config_set(&c, "base", "b.ftm");
    fl_coord_config_set(&c, "allow", "allow");
    fl_coord_config_set(&c, "key", "hq.key");
    for (; kv[0]; kv += 2)
        cr_assert_eq(fl_coord_config_set(&c, kv[0], kv[1]), 0, "%s: %s", kv[0], fl_error_msg());
    return fl_coord_config_check(&c);
}

Test(dp_e2e, options_refuse_what_breaks_the_analysis)
{
    const char *median[] = {"strategy", "median", "dp_noise", "1", "dp_clip", "1", NULL};
    cr_assert_eq(s_check(median), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "--dp-noise") && strstr(fl_error_msg(), "median"), "%s",
              fl_error_msg());
    const char *rel[] = {"norm_bound_median", "3", "dp_epsilon", "1", "dp_clip", "1", NULL};
    cr_assert_eq(s_check(rel), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "--dp-epsilon") &&
                  strstr(fl_error_msg(), "--norm-bound-median"),
              "%s", fl_error_msg());
    const char *noclip[] = {"dp_noise", "1", NULL};
    cr_assert_eq(s_check(noclip), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "--dp-clip"), "%s", fl_error_msg());
    const char *clip_only[] = {"dp_clip", "1", NULL};
    cr_assert_eq(s_check(clip_only), FL_EINVAL);
    const char *two[] = {"norm_bound", "2", "dp_noise", "1", "dp_clip", "1", NULL};
    cr_assert_eq(s_check(two), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "--norm-bound") && strstr(fl_error_msg(), "--dp-clip"));
    const char *krum[] = {"rule",      "krum",    "strategy", "fedadam",     "dp_noise",
                          "1",         "dp_clip", "1",        "min_clients", "5",
                          "min_start", "5",       NULL};
    cr_assert_eq(s_check(krum), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "krum"), "%s", fl_error_msg());
    /* with secure aggregation the branches add the noise (distributed DP, test_ddp_e2e.c);
     * the mean is still the only rule */
    const char *secagg[] = {"secure_aggregation", "true", "min_clients", "3", "min_start", "3",
                            "dp_epsilon",         "4",    "dp_clip",     "1", NULL};
    cr_assert_eq(s_check(secagg), 0, "%s", fl_error_msg());
    const char *secagg_median[] = {"secure_aggregation",
                                   "true",
                                   "min_clients",
                                   "3",
                                   "min_start",
                                   "3",
                                   "dp_noise",
                                   "1",
                                   "dp_clip",
                                   "1",
                                   "strategy",
                                   "median",
                                   NULL};
    cr_assert_eq(s_check(secagg_median), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "median"), "%s", fl_error_msg());
    /* a server optimiser on the noisy mean is post-processing: accepted, with the clip as the
     * strategy's fixed bound */
    const char *adam[] = {"strategy", "fedadam", "dp_noise", "1.5", "dp_clip", "0.25", NULL};
    cr_assert_eq(s_check(adam), 0, "%s", fl_error_msg());
    struct fl_coord_config c;
    fl_coord_config_default(&c);
    for (const char *const *kv = adam; kv[0]; kv += 2)
        fl_coord_config_set(&c, kv[0], kv[1]);
    struct fl_strategy_config sc;
    cr_assert_eq(fl_coord_config_strategy(&c, &sc), 0);
    cr_assert_eq(sc.bound, FL_BOUND_FIXED);
    cr_assert_eq(sc.norm_bound, 0.25);
    cr_assert_eq(sc.dp_noise, 1.5);
}

/* /metrics carries no epsilon until DP has released a round, then the last one. */
Test(dp_e2e, metrics_carry_the_spent_budget)
{
    fl_metrics_t *m = fl_metrics_new();
    struct fl_metrics_live live = {.federation = "f", .rounds = 3};
    size_t len = 0;
    char *text = fl_metrics_prometheus(m, &live, &len);
    cr_assert(text && !strstr(text, "fedtl_dp_epsilon"));
    free(text);
    fl_metrics_privacy(m, 2.5, 1e-5);
    fl_metrics_privacy(m, 3.25, 1e-5);
    text = fl_metrics_prometheus(m, &live, &len);
    cr_assert(text && strstr(text, "\nfedtl_dp_epsilon 3.25\n") &&
                  strstr(text, "\nfedtl_dp_delta "),
              "%s", text);
    cr_assert_eq(strtod(strstr(text, "\nfedtl_dp_delta ") + 16, NULL), 1e-5);
    free(text);
    fl_metrics_destroy(&m);
}

/* ---- the accountant's state file (no processes) ---- */

/* Spent, saved and resumed: the same epsilon to the bit and the same z; a target alone gets
 * fl_dp_calibrate's z; a file that lies (another round, a negative or missing RDP, not JSON)
 * is refused naming it. */
Test(dp_e2e, the_account_file_resumes_exactly_and_refuses_a_bad_one)
{
    char *dir = fl_test_tmpdir("dpstate");
    struct fl_privacy_settings ps = {
        .noise = 1.5, .clip = 0.5, .epsilon = 0, .delta = 1e-5, .rounds = 20, .q = 0.3};
    fl_privacy_t *p = fl_privacy_new(&ps, dir, 0);
    cr_assert_not_null(p, "%s", fl_error_msg());
    cr_assert_eq(fl_privacy_spend(p, 0.3), 0);
    cr_assert_eq(fl_privacy_spend(p, 0.5), 0);
    cr_assert_eq(fl_privacy_save(p, 2), 0, "%s", fl_error_msg());
    double eps = fl_privacy_epsilon(p);
    cr_assert_gt(eps, 0);
    fl_privacy_destroy(&p);
    ps.noise = 0; /* resumed: z comes from the file */
    ps.epsilon = 100;
    fl_privacy_t *q = fl_privacy_new(&ps, dir, 2);
    cr_assert_not_null(q, "%s", fl_error_msg());
    cr_assert_eq(fl_privacy_epsilon(q), eps);
    cr_assert_eq(fl_privacy_noise(q), 1.5);
    fl_privacy_destroy(&q);
    /* fresh, with a target alone */
    double z = 0;
    ps.epsilon = 3;
    cr_assert_eq(fl_dp_calibrate(3, 1e-5, 0.3, 20, &z), 0);
    fl_privacy_t *c = fl_privacy_new(&ps, dir, 0);
    cr_assert_not_null(c);
    cr_assert_eq(fl_privacy_noise(c), z);
    double after = 0;
    cr_assert(fl_privacy_affords(c, 0.3, &after));
    cr_assert_leq(after, 3, "one round of the planned 20 fits the budget");
    for (int r = 0; r < 20; r++)
        cr_assert_eq(fl_privacy_spend(c, 0.3), 0);
    cr_assert_leq(fl_privacy_epsilon(c), 3, "the planned rounds fit");
    cr_assert(!fl_privacy_affords(c, 0.3, &after) && after > 3, "a 21st does not");
    fl_privacy_destroy(&c);
    /* lies */
    char *path = fl_test_path(dir, "privacy-2.state");
    char *text = fl_test_slurp(path);
    cr_assert_not_null(text);
    const char *bad[] = {"{\"round\":3}", "not json", NULL, NULL};
    char *neg = calloc(strlen(text) + 2, 1), *at = NULL; /* room for one byte more */
    cr_assert_not_null(neg);
    memcpy(neg, text, strlen(text));
    at = strstr(neg, "\"rdp\":[");
    cr_assert_not_null(at);
    memmove(at + 8, at + 7, strlen(at + 7) + 1);
    at[7] = '-'; /* the first order's RDP negative */
    bad[2] = neg;
    for (int i = 0; bad[i]; i++) {
        FILE *f = fopen(path, "w");
        cr_assert_not_null(f);
        fputs(bad[i], f);
        fclose(f);
        ps.noise = 1.5;
        cr_assert_null(fl_privacy_new(&ps, dir, 2), "case %d accepted", i);
        cr_assert(strstr(fl_error_msg(), "privacy-2.state"), "%s", fl_error_msg());
    }
    free(neg);
    free(text);
    free(path);
    fl_test_rmtree(dir);
    free(dir);
}

/* Distributed DP charges a sum when it becomes unmaskable, into the file of the rounds
 * committed: before round 1 commits, privacy-0.state, read back at start (more releases than
 * rounds: retries), and dropped once round 2 commits. */
Test(dp_e2e, releases_before_a_commit_are_kept_and_resumed)
{
    char *dir = fl_test_tmpdir("dprelease");
    struct fl_privacy_settings ps = {
        .noise = 1, .clip = 0.5, .epsilon = 0, .delta = 1e-5, .rounds = 5, .q = 1};
    fl_privacy_t *p = fl_privacy_new(&ps, dir, 0);
    cr_assert_not_null(p, "%s", fl_error_msg());
    for (int i = 0; i < 3; i++) /* three attempts at round 1 */
        cr_assert_eq(fl_privacy_release(p, 1, 0), 0, "%s", fl_error_msg());
    double eps = fl_privacy_epsilon(p);
    fl_privacy_destroy(&p);
    char *path = fl_test_path(dir, "privacy-0.state");
    char *text = fl_test_slurp(path);
    cr_assert_not_null(text, "the charge is on disk at once");
    cr_expect(strstr(text, "\"round\":0,\"released\":3"), "%s", text);
    free(text);
    ps.noise = 0; /* z from the file, not calibrated afresh */
    ps.epsilon = 100;
    fl_privacy_t *q = fl_privacy_new(&ps, dir, 0);
    cr_assert_not_null(q, "%s", fl_error_msg());
    cr_expect_eq(fl_privacy_epsilon(q), eps, "a restart before round 1 commits resumes it");
    cr_expect_eq(fl_privacy_noise(q), 1);
    cr_assert_eq(fl_privacy_save(q, 1), 0);
    cr_assert_eq(fl_privacy_save(q, 2), 0);
    fl_privacy_prune(q, 2);
    cr_expect_neq(access(path, F_OK), 0, "dropped once round 2 is committed");
    fl_privacy_destroy(&q);
    free(path);
    fl_test_rmtree(dir);
    free(dir);
}
