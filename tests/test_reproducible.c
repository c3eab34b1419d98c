/* Reproducible runs: two fresh federations with the same seed and the same participants (the
 * same branch keys) produce the same base and the same global adapter, bit for bit, and the
 * same ledger figures, whatever order their updates arrived in. Real processes through
 * scripts/simulate.sh, each run pretraining its own base. A third run with another seed gives
 * another adapter: the comparison is not blind. */
#include <criterion/criterion.h>

#include "fl_testutil.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *s_dir;

static void s_setup(void)
{
    s_dir = fl_test_tmpdir("repro");
    cr_assert_not_null(s_dir);
}

static void s_teardown(void)
{
    if (!getenv("FEDTL_KEEP_TMP"))
        fl_test_rmtree(s_dir);
    free(s_dir);
}

static const char *s_path(const char *run, const char *name)
{
    static char path[4][2048];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, sizeof path[0], "%s/%s/%s", s_dir, run, name);
    return p;
}

/* A fresh run into RUN with this seed; with keys_from set, RUN starts with that run's keys
 * (the same participants), else simulate.sh makes new ones. */
static void s_run(const char *run, int seed, const char *keys_from)
{
    char cmd[4096], *out = NULL;
    if (keys_from) {
        snprintf(cmd, sizeof cmd, "mkdir -p %s/%s && cp -r %s/%s/keys %s/%s/", s_dir, run, s_dir,
                 keys_from, s_dir, run);
        cr_assert_eq(fl_test_run(cmd, &out), 0, "%s", out);
        free(out);
    }
    snprintf(cmd, sizeof cmd,
             "FEDTL_BIN=%s %s/scripts/simulate.sh --run %s/%s --branches 3 --rounds 3 "
             "--samples 900 --alpha 0.5 --pretrain-epochs 1 --deadline 30 --seed %d --port %d "
             "--quiet",
             FEDTL_BIN_DIR, FEDTL_SRC_DIR, s_dir, run, seed, fl_test_free_port());
    cr_assert_eq(fl_test_run(cmd, &out), 0, "%s", out);
    free(out);
}

/* Whether two files hold the same bytes (both must exist). */
static bool s_same(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    cr_assert(fa && fb, "cannot open %s or %s", a, b);
    bool same = true;
    int ca, cb;
    do {
        ca = getc(fa);
        cb = getc(fb);
        if (ca != cb)
            same = false;
    } while (same && ca != EOF);
    fclose(fa);
    fclose(fb);
    return same;
}

/* The ledger's server accuracies, round by round, as one string. */
static void s_server_accuracies(const char *run, char *buf, size_t len)
{
    char *ledger = fl_test_slurp(s_path(run, "state/rounds.jsonl"));
    cr_assert_not_null(ledger);
    size_t used = 0;
    buf[0] = 0;
    for (char *p = ledger; (p = strstr(p, "\"server_eval_accuracy\":")); p++) {
        int n = snprintf(buf + used, len - used, "%.6f ", atof(p + 23));
        cr_assert(n > 0 && (size_t)n < len - used);
        used += (size_t)n;
    }
    free(ledger);
    cr_assert_gt(used, 0, "no server accuracy in %s's ledger", run);
}

Test(reproducible, same_seed_same_participants_same_bits, .init = s_setup, .fini = s_teardown,
     .timeout = 600)
{
    s_run("a", 5, NULL);
    s_run("b", 5, "a");
    cr_assert(s_same(s_path("a", "base.ftm"), s_path("b", "base.ftm")),
              "the same pretraining gave two different bases");
    cr_assert(s_same(s_path("a", "state/global.fta"), s_path("b", "state/global.fta")),
              "the same federation gave two different global adapters");
    for (int k = 0; k < 3; k++) {
        char name[64];
        snprintf(name, sizeof name, "branch-%02d/final.fta", k);
        cr_assert(s_same(s_path("a", name), s_path("b", name)), "%s differs between the runs",
                  name);
    }
    char acc_a[512], acc_b[512];
    s_server_accuracies("a", acc_a, sizeof acc_a);
    s_server_accuracies("b", acc_b, sizeof acc_b);
    cr_assert_str_eq(acc_a, acc_b);
    cr_log_info("server accuracy per round, both runs: %s", acc_a);

    /* Another seed, the same participants: another adapter. */
    s_run("c", 6, "a");
    cr_assert_not(s_same(s_path("a", "state/global.fta"), s_path("c", "state/global.fta")),
                  "a different seed gave the same global adapter");
}
