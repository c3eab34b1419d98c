/* Strategies as users run them, end to end through scripts/simulate.sh: real coordinator and
 * branch processes, real keys, sockets and files. A FedAdam federation whose coordinator is
 * killed (SIGKILL) and restarted keeps its optimiser's steps and moments, and a decaying server
 * learning rate its round count; a median federation
 * with a median-relative bound records what it clipped; FedProx's mu reaches every branch;
 * personal heads and a personalised final adapter are reported and saved by every branch. */
#include <criterion/criterion.h>

#include "fl_error.h"
#include "fl_strategy.h"
#include "fl_testutil.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BRANCHES 3

static char *s_dir;

/* A small base for each test: cnn-small on 2,000 images of classes 0-4, one epoch. */
static void s_setup(void)
{
    char *why = NULL;
    s_dir = fl_test_fashion_base("strat", 2000, 1, FEDTL_BIN_DIR, &why);
    cr_assert_not_null(s_dir, "%s", why ? why : "");
    free(why);
}

static void s_teardown(void)
{
    if (!getenv("FEDTL_KEEP_TMP"))
        fl_test_rmtree(s_dir);
    free(s_dir);
}

TestSuite(strategy_e2e, .init = s_setup, .fini = s_teardown, .timeout = 300);

/* Run simulate.sh into RUN (3 branches, `rounds` rounds) with extra options; its exit status,
 * its output in *out. */
static int s_simulate(const char *run, int rounds, const char *extra, char **out)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "FEDTL_BIN=%s %s/scripts/simulate.sh --run %s/%s --base %s/base.ftm --branches %d "
             "--rounds %d --samples 450 --alpha 1.0 --epochs 2 --deadline 20 --min-clients %d "
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

/* The number the JSON object o has under key. */
static double s_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsNumber(v), "no number %s", key);
    return v->valuedouble;
}

/* A strategy state file, loaded into a fresh strategy of configuration `name`. */
static fl_strategy_t *s_load_state(const char *name, const char *path, uint32_t *round)
{
    struct fl_strategy_config cfg;
    cr_assert_eq(fl_strategy_config_default(&cfg, name), 0);
    fl_strategy_t *s = fl_strategy_new(&cfg);
    cr_assert_not_null(s, "%s", fl_error_msg());
    cr_assert_eq(fl_strategy_load_file(s, path, round), 0, "%s: %s", path, fl_error_msg());
    return s;
}

/* fedtl-coordinator started again on RUN's state (keys, allow-list and base as simulate.sh
 * made them) with the strategy options given; its exit status, its output in *out. */
static int s_restart(const char *run, const char *strategy, char **out)
{
    char cmd[8192], dir[2048];
    snprintf(dir, sizeof dir, "%s/%s", s_dir, run);
    snprintf(cmd, sizeof cmd,
             "cd %s && %s/fedtl-coordinator --federation simulation --key keys/hq.key "
             "--allow allow --base %s/base.ftm --state-dir state --endpoint tcp://127.0.0.1:%d "
             "--rounds 3 --classes 5-9 --exit-when-done %s",
             dir, FEDTL_BIN_DIR, s_dir, fl_test_free_port(), strategy);
    return fl_test_run(cmd, out);
}

/* FedAdam through a SIGKILL of the coordinator after round 2 of 3: the restart resumes the
 * optimiser state saved with round 2 (the log says so), and round 3 continues from exactly
 * those moments: m3 = b1 m2 + (1 - b1) d and v3 = b2 v2 + (1 - b2) d^2 hold for the one delta
 * d that m3 gives. A fresh optimiser (zero first moment, v = tau^2) would break them. */
Test(strategy_e2e, fedadam_keeps_its_moments_through_a_coordinator_sigkill)
{
    char *out = NULL;
    int rc = s_simulate("adam", 3, "--strategy fedadam --restart-coordinator 2", &out);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "SIGKILL to the coordinator after round 2"), "%s", out);
    free(out);
    char *log = fl_test_slurp(s_file("adam", "logs/coordinator.log"));
    cr_assert_not_null(log);
    cr_assert(strstr(log, "resumed_round=2") && strstr(log, "strategy_steps=2"),
              "the restart loaded round 2's optimiser state: %s", log);
    free(log);
    /* round 3 committed: its state and the previous one are kept, older ones pruned */
    cr_assert_eq(access(s_file("adam", "state/strategy-1.state"), F_OK), -1);
    uint32_t r2 = 0, r3 = 0;
    char p2[2048];
    snprintf(p2, sizeof p2, "%s", s_file("adam", "state/strategy-2.state"));
    fl_strategy_t *s2 = s_load_state("fedadam", p2, &r2);
    fl_strategy_t *s3 = s_load_state("fedadam", s_file("adam", "state/strategy-3.state"), &r3);
    cr_assert_eq(r2, 2);
    cr_assert_eq(r3, 3);
    struct fl_strategy_state a, b;
    fl_strategy_get_state(s2, &a);
    fl_strategy_get_state(s3, &b);
    cr_assert_eq(a.steps, 2);
    cr_assert_eq(b.steps, 3, "one step after the restart, counted on from the saved two");
    cr_assert(a.m && a.v && b.m && b.v);
    cr_assert_eq(a.n, b.n);
    const struct fl_strategy_config *cfg = fl_strategy_config(s3);
    double b1 = cfg->beta1, b2 = cfg->beta2, worst = 0, mass = 0;
    for (size_t i = 0; i < a.n; i++) {
        for (size_t j = 0; j < fl_tensor_numel(&a.m[i]); j++) {
            double d = (b.m[i].data[j] - b1 * a.m[i].data[j]) / (1 - b1);
            double want = b2 * a.v[i].data[j] + (1 - b2) * d * d;
            double err = fabs(b.v[i].data[j] - want) / (fabs(want) + 1e-12);
            worst = err > worst ? err : worst;
            mass += fabs(a.m[i].data[j]);
        }
    }
    cr_assert_gt(mass, 0, "round 2's first moment is not zero");
    cr_assert_lt(worst, 1e-3, "v3 follows from m2, v2 and m3 (worst relative error %g)", worst);
    fl_strategy_destroy(&s2);
    fl_strategy_destroy(&s3);
    /* state.json names the whole configuration */
    cJSON *st = fl_test_json(s_file("adam", "state/state.json"));
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(st, "strategy_config");
    cr_assert(cJSON_IsString(sc) && strstr(sc->valuestring, "fedadam"), "state.json");
    cJSON_Delete(st);
    /* Started again on that state: with another strategy configuration, or without the
     * optimiser state of the round global.fta holds, the coordinator refuses by name. */
    cr_assert_eq(s_restart("adam", "--strategy fedadam --tau 0.002", &out), 1, "%s", out);
    cr_assert(strstr(out, "state.json") && strstr(out, "tau=0.001") && strstr(out, "tau=0.002"),
              "%s", out);
    free(out);
    cr_assert_eq(s_restart("adam", "--strategy fedyogi", &out), 1, "%s", out);
    cr_assert(strstr(out, "fedadam") && strstr(out, "fedyogi"), "%s", out);
    free(out);
    cr_assert_eq(unlink(s_file("adam", "state/strategy-3.state")), 0);
    cr_assert_eq(s_restart("adam", "--strategy fedadam", &out), 1, "%s", out);
    cr_assert(strstr(out, "strategy-3.state") && strstr(out, "missing"), "%s", out);
    free(out);
}

/* A server learning rate halved every round after the first, through a SIGKILL of the
 * coordinator after round 2 of 3: the restart takes the round count from round 2's state file,
 * so round 3 steps with 0.5 (a count started again would step with 1). The ledger says which
 * step each round took, and the log which the restart resumed. */
Test(strategy_e2e, a_decaying_server_lr_keeps_its_round_count_through_a_coordinator_sigkill)
{
    char *out = NULL;
    int rc = s_simulate("decay", 3,
                        "--strategy-opt server_lr_decay=0.5 --strategy-opt server_lr_decay_after=1 "
                        "--restart-coordinator 2",
                        &out);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "SIGKILL to the coordinator after round 2"), "%s", out);
    free(out);
    char *log = fl_test_slurp(s_file("decay", "logs/coordinator.log"));
    cr_assert_not_null(log);
    cr_assert(strstr(log, "resumed_round=2") && strstr(log, "strategy_steps=2"), "%s", log);
    cr_assert(strstr(log, "eta-decay=0.5 eta-decay-after=1"), "the configuration is logged");
    free(log);
    static const double want[3] = {1, 1, 0.5};
    int seen = 0;
    cJSON *lines = fl_test_jsonl(s_file("decay", "state/rounds.jsonl"));
    cr_assert_not_null(lines);
    const cJSON *line;
    cJSON_ArrayForEach(line, lines)
    {
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(line, "aggregated")))
            continue;
        int r = (int)s_num(line, "round");
        cr_assert(r >= 1 && r <= 3, "round %d", r);
        cr_assert_float_eq(s_num(line, "server_lr"), want[r - 1], 1e-12, "round %d", r);
        seen |= 1 << (r - 1);
    }
    cJSON_Delete(lines);
    cr_assert_eq(seen, 7, "rounds 1, 2 and 3 are in the ledger");
    uint32_t round = 0;
    struct fl_strategy_config cfg;
    cr_assert_eq(fl_strategy_config_default(&cfg, "fedavg"), 0);
    cfg.server_lr_decay = 0.5;
    cfg.server_lr_decay_after = 1;
    fl_strategy_t *s = fl_strategy_new(&cfg);
    cr_assert_not_null(s);
    cr_assert_eq(fl_strategy_load_file(s, s_file("decay", "state/strategy-3.state"), &round), 0,
                 "%s", fl_error_msg());
    cr_assert_eq(round, 3);
    cr_assert_eq(fl_strategy_server_lr(s), 0.25, "the next round would step with 0.5^2");
    fl_strategy_destroy(&s);
}

/* Coordinate-wise median with a bound of 1 x the round's median change norm: the updates
 * above the median norm are clipped, and the ledger and the log say which, by how much and
 * why. */
Test(strategy_e2e, a_median_federation_records_its_verdicts)
{
    char *out = NULL;
    int rc = s_simulate("median", 2, "--strategy median --strategy-opt norm_bound_median=1", &out);
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    cJSON *lines = fl_test_jsonl(s_file("median", "state/rounds.jsonl"));
    cr_assert_not_null(lines);
    const cJSON *last = NULL;
    cr_assert_eq(fl_test_ledger_lines(lines, -1, 1, &last), 2);
    int clipped = 0;
    const cJSON *line;
    cJSON_ArrayForEach(line, lines)
    {
        const cJSON *v, *verdicts = cJSON_GetObjectItemCaseSensitive(line, "verdicts");
        cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(line, "strategy")->valuestring, "median");
        cJSON_ArrayForEach(v, verdicts)
        {
            const cJSON *kind = cJSON_GetObjectItemCaseSensitive(v, "kind");
            const cJSON *branch = cJSON_GetObjectItemCaseSensitive(v, "branch");
            const cJSON *why = cJSON_GetObjectItemCaseSensitive(v, "why");
            cr_assert(cJSON_IsString(kind) && cJSON_IsString(branch) && cJSON_IsString(why));
            cr_assert_str_eq(kind->valuestring, "clipped");
            cr_assert(strncmp(branch->valuestring, "branch-", 7) == 0, "%s", branch->valuestring);
            cr_assert_gt(strlen(why->valuestring), 0);
            cr_assert_lt(s_num(v, "scale"), 1.0);
            cr_assert_gt(s_num(v, "norm"), 0.0);
            clipped++;
        }
    }
    cJSON_Delete(lines);
    cr_assert_geq(clipped, 2, "at least one update above the median in each round");
    cr_assert_eq(fl_test_count(s_file("median", "logs/coordinator.log"), "event=update_clipped "),
                 clipped, "one log line per clipped update");
    cr_assert_eq(fl_test_count(s_file("median", "logs/coordinator.log"), " scale="), clipped);
}

/* FedProx: the coordinator's mu reaches every branch with every task. */
Test(strategy_e2e, fedprox_sends_its_mu_to_every_branch)
{
    char *out = NULL;
    int rc = s_simulate("prox", 2, "--strategy fedprox --strategy-opt proximal_mu=0.05", &out);
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    for (int k = 0; k < BRANCHES; k++) {
        char name[64];
        snprintf(name, sizeof name, "logs/branch-%02d.log", k);
        cr_assert_geq(fl_test_count(s_file("prox", name), "event=task "), 2, "%s", name);
        cr_assert_eq(fl_test_count(s_file("prox", name), "event=task "),
                     fl_test_count(s_file("prox", name), "proximal_mu=0.05 "), "%s", name);
    }
    cJSON *st = fl_test_json(s_file("prox", "state/state.json"));
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(st, "strategy_config");
    cr_assert(cJSON_IsString(sc) && strstr(sc->valuestring, "fedprox"), "state.json");
    cJSON_Delete(st);
}

/* FedPer and personalisation: every branch reports its personalised and its global held-out
 * accuracy each round and at the end, and saves both final adapters; the summary has them. */
Test(strategy_e2e, personal_heads_and_personalisation_report_both_accuracies)
{
    char *out = NULL;
    int rc = s_simulate("per", 2, "--personal-head --personalize-epochs 2", &out);
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    cJSON *lines = fl_test_jsonl(s_file("per", "state/rounds.jsonl"));
    const cJSON *last = NULL;
    cr_assert_eq(fl_test_ledger_lines(lines, -1, 1, &last), 2);
    const cJSON *p, *parts = cJSON_GetObjectItemCaseSensitive(last, "participants");
    int n = 0;
    cJSON_ArrayForEach(p, parts)
    {
        double acc = s_num(p, "personal_accuracy"), global = s_num(p, "eval_accuracy");
        cr_assert(acc >= 0 && acc <= 1 && global >= 0 && global <= 1);
        n++;
    }
    cr_assert_eq(n, BRANCHES);
    cJSON_Delete(lines);
    for (int k = 0; k < BRANCHES; k++) {
        char name[64], global[64];
        snprintf(name, sizeof name, "logs/branch-%02d.log", k);
        char *log = fl_test_slurp(s_file("per", name));
        cr_assert_not_null(log);
        char *fin = strstr(log, "event=final ");
        cr_assert(fin && strstr(fin, "personalized=1") && strstr(fin, "global_accuracy=") &&
                      strstr(fin, "personal_accuracy="),
                  "%s", log);
        /* each task, and the personalisation of the final adapter, started from a head */
        cr_assert_eq(fl_test_count(s_file("per", name), "event=personal_head "),
                     fl_test_count(s_file("per", name), "event=task ") + 1);
        cr_assert_geq(fl_test_count(s_file("per", name), "event=task "), 2);
        free(log);
        snprintf(name, sizeof name, "branch-%02d/final.fta", k);
        snprintf(global, sizeof global, "branch-%02d/final-global.fta", k);
        char *a = fl_test_slurp(s_file("per", name));
        char *g = fl_test_slurp(s_file("per", global));
        cr_assert(a && g, "both final adapters saved");
        free(a);
        free(g);
    }
    cJSON *sum = fl_test_json(s_file("per", "summary.json"));
    cr_assert_not_null(sum, "summary.json parses");
    const cJSON *per = cJSON_GetObjectItemCaseSensitive(sum, "personal");
    cr_assert_eq(s_num(per, "branches"), BRANCHES);
    cr_assert_geq(s_num(per, "personal_mean"), s_num(per, "personal_worst"));
    cr_assert_geq(s_num(per, "global_mean"), s_num(per, "global_worst"));
    double acc = s_num(sum, "final_server_accuracy");
    cr_assert(acc > 0 && acc <= 1, "%f", acc);
    cJSON_Delete(sum);
}

/* A setting that does not apply to the strategy stops the run before anything starts. */
Test(strategy_e2e, a_setting_for_another_strategy_is_refused_by_name)
{
    char *out = NULL;
    int rc = s_simulate("bad", 1, "--strategy fedavg --strategy-opt tau=0.01", &out);
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "--tau") && strstr(out, "fedavg"), "%s", out);
    free(out);
}
