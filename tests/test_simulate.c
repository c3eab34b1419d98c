/* scripts/simulate.sh end to end: real processes, real keys, real sockets, on loopback and,
 * as root, across network namespaces; and a run with a killed branch and a killed, restarted
 * coordinator. Each checks the ledger and that the final adapter beats a local head. */
#include <criterion/criterion.h>

#include "fl_testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FMNIST "/usr/share/datasets/fashion-mnist"

static char *s_dir;

/* One base for every test of this file: cnn-small on 6,000 images of classes 0-4. */
static void s_setup(void)
{
    char *why = NULL;
    s_dir = fl_test_fashion_base("sim", 6000, 2, FEDTL_BIN_DIR, &why);
    cr_assert_not_null(s_dir, "%s", why ? why : "");
    free(why);
}

static void s_teardown(void)
{
    if (!getenv("FEDTL_KEEP_TMP"))
        fl_test_rmtree(s_dir);
    free(s_dir);
}

/* Run simulate.sh into RUN with extra options; returns its exit status, output in *out. */
static int s_simulate(const char *run, const char *extra, char **out)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "FEDTL_BIN=%s %s/scripts/simulate.sh --run %s/%s --base %s/base.ftm --branches 3 "
             "--rounds 3 --samples 600 --alpha 1.0 --epochs 3 --deadline 10 --port %d --quiet %s",
             FEDTL_BIN_DIR, FEDTL_SRC_DIR, s_dir, run, s_dir, fl_test_free_port(), extra);
    return fl_test_run(cmd, out);
}

static char *s_file(const char *run, const char *name)
{
    static char path[2048];
    snprintf(path, sizeof path, "%s/%s/%s", s_dir, run, name);
    return path;
}

static double s_acc(const char *run, const char *adapter)
{
    char cmd[4096], *out = NULL;
    snprintf(cmd, sizeof cmd,
             "%s/fedtl eval --base %s/base.ftm --adapter %s --data " FMNIST
             "/t10k-images-idx3-ubyte.gz --labels " FMNIST "/t10k-labels-idx1-ubyte.gz --json",
             FEDTL_BIN_DIR, s_dir, s_file(run, adapter));
    cr_assert_eq(fl_test_run(cmd, &out), 0, "%s", out);
    char *p = strstr(out, "\"accuracy\":");
    double acc = p ? atof(p + 11) : -1;
    free(out);
    return acc;
}

/* The ledger has `rounds` aggregated rounds; the final adapter beats a head fitted on branch 0's
 * data alone, with as many epochs as the federation ran. */
static void s_check_run(const char *run, int rounds, int participants_last)
{
    cr_assert_eq(fl_test_count(s_file(run, "state/rounds.jsonl"), "\"aggregated\":true"), rounds);
    char *ledger = fl_test_slurp(s_file(run, "state/rounds.jsonl"));
    char *last = strstr(ledger, "\"round\":3,");
    cr_assert_not_null(last, "%s", ledger);
    int n = 0;
    for (char *p = last; (p = strstr(p, "\"samples\":")) && p < last + strlen(last); p += 10)
        n++;
    /* per-participant "samples" plus the round's total */
    cr_assert_eq(n - 1, participants_last, "%s", last);
    free(ledger);
    char cmd[8192], *out = NULL, shard[2048];
    snprintf(shard, sizeof shard, "%s", s_file(run, "shards/client-00.csv"));
    snprintf(cmd, sizeof cmd,
             "%s/fedtl finetune --base %s/base.ftm --data %s --classes 5-9 --method head "
             "--epochs 9 --quiet --out %s",
             FEDTL_BIN_DIR, s_dir, shard, s_file(run, "head.fta"));
    cr_assert_eq(fl_test_run(cmd, &out), 0, "%s", out);
    free(out);
    double fed = s_acc(run, "state/global.fta"), head = s_acc(run, "head.fta");
    cr_log_info("%s: federated %.4f, branch-0 head %.4f", run, fed, head);
    cr_assert_gt(fed, head, "federated %.4f is not above the local head's %.4f", fed, head);
}

Test(simulate, three_branches_on_loopback, .init = s_setup, .fini = s_teardown, .timeout = 300)
{
    char *out = NULL;
    cr_assert_eq(s_simulate("loop", "", &out), 0, "%s", out);
    free(out);
    s_check_run("loop", 3, 3);
    for (int k = 0; k < 3; k++) {
        char name[64];
        snprintf(name, sizeof name, "branch-%02d/final.fta", k);
        cr_assert_eq(access(s_file("loop", name), R_OK), 0, "%s missing", name);
    }
    /* The federation is over and its coordinator gone: fedtl status reads its state. */
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s/fedtl status --state-dir %s", FEDTL_BIN_DIR,
             s_file("loop", "state"));
    cr_assert_eq(fl_test_run(cmd, &out), 0, "%s", out);
    cr_assert(strstr(out, "\"running\":false") && strstr(out, "\"phase\":\"done\"") &&
                  strstr(out, "\"round\":3,\"rounds\":3") &&
                  strstr(out, "\"last_round\":{\"round\":3,"),
              "%s", out);
    free(out);
}

Test(simulate, three_branches_in_network_namespaces, .init = s_setup, .fini = s_teardown,
     .timeout = 300)
{
    if (geteuid() != 0)
        cr_skip_test("--netns needs root");
    char *out = NULL;
    int rc = fl_test_run("ip netns add fedtl-probe-$$ && ip netns delete fedtl-probe-$$", &out);
    free(out);
    if (rc != 0)
        cr_skip_test("network namespaces are not available here");
    cr_assert_eq(s_simulate("netns", "--netns", &out), 0, "%s", out);
    char *ns = strstr(out, "network namespaces ");
    cr_assert_not_null(ns, "%s", out);
    char prefix[64] = "";
    sscanf(ns + strlen("network namespaces "), "%63[^*]", prefix);
    free(out);
    cr_assert_gt(strlen(prefix), 5);
    s_check_run("netns", 3, 3);
    /* This run's namespaces are gone afterwards (other runs may have their own). */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ip netns list | grep -c '^%s' || true", prefix);
    cr_assert_eq(fl_test_run(cmd, &out), 0);
    cr_assert_eq(atoi(out), 0, "namespaces %s* left behind: %s", prefix, out);
    free(out);
}

Test(simulate, killed_branch_and_restarted_coordinator_still_complete, .init = s_setup,
     .fini = s_teardown, .timeout = 300)
{
    char *out = NULL;
    int rc =
        s_simulate("faults", "--min-clients 2 --kill-branch 2:2 --restart-coordinator 2", &out);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "killing branch 2 in round 2"), "%s", out);
    cr_assert(strstr(out, "SIGKILL to the coordinator after round 2"), "%s", out);
    free(out);
    s_check_run("faults", 3, 2);
    cr_assert_eq(fl_test_count(s_file("faults", "logs/coordinator.log"), "resumed_round=2"), 1);
}
