/* Whole federations on loopback with the real programs: fedtl (keys, pretraining, partition,
 * evaluation), fedtl-coordinator and three fedtl-client processes over CurveZMQ. */
#include <criterion/criterion.h>

#include <cJSON.h>

#include "fl_modelfile.h"
#include "fl_testutil.h"

#include <math.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NB 3

struct s_fed {
    struct fl_test_fed t; /* the federation: scratch directory, port, processes */
    char coord_cmd[4096]; /* how the coordinator was started (for restarts) */
};

static void s_sh(struct s_fed *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_sh(struct s_fed *f, const char *fmt, ...)
{
    char body[4096], cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "cd %s && B=%s && %s", f->t.dir, FEDTL_BIN_DIR, body);
    char *out = NULL;
    int rc = fl_test_run(cmd, &out);
    cr_assert_eq(rc, 0, "%s\n%s", body, out ? out : "");
    free(out);
}

#define FMNIST "/usr/share/datasets/fashion-mnist"

/* Keys, data, a pretrained base (classes 0-2), three shards of classes 1-3. With fashion, the
 * base is cnn-small pretrained on Fashion-MNIST classes 0-4 and the shards hold classes 5-9. */
static void s_setup_data(struct s_fed *f, bool fashion)
{
    memset(f, 0, sizeof *f);
    /* train.csv, test.csv: four Gaussian classes in 20 dimensions, class 3 where the base has
     * seen nothing */
    struct fl_test_fed_opts o = {
        .test_rows = 1200,
        .more_keys = "stranger",
        .shards = "--data train.csv --classes 1-3 --samples 900",
    };
    if (fashion) {
        o.pretrain = "--data " FMNIST "/train-images-idx3-ubyte.gz --labels " FMNIST
                     "/train-labels-idx1-ubyte.gz --classes 0-4 --samples 6000 --arch cnn-small "
                     "--epochs 2 --seed 3 --quiet";
        o.shards = "--data " FMNIST "/train-images-idx3-ubyte.gz --labels " FMNIST
                   "/train-labels-idx1-ubyte.gz --classes 5-9 --samples 900";
    }
    char *why = NULL;
    int rc = fl_test_fed_setup_opts(&f->t, "fed", NB, &o, FEDTL_BIN_DIR, &why);
    cr_assert_eq(rc, 0, "%s", why ? why : "");
    free(why);
}

static void s_setup(struct s_fed *f)
{
    s_setup_data(f, false);
}

static void s_spawn_coord(struct s_fed *f);

static void s_start_coord(struct s_fed *f, const char *extra)
{
    snprintf(f->coord_cmd, sizeof f->coord_cmd,
             "cd %s && exec %s/fedtl-coordinator --key hq.key --allow allow --base base.ftm "
             "--state-dir state --endpoint tcp://127.0.0.1:%d --classes 1-3 --method lora "
             "--epochs 3 --heartbeat-ms 200 --eval-data test.csv --threads 1 %s",
             f->t.dir, FEDTL_BIN_DIR, f->t.port, extra);
    s_spawn_coord(f);
}

static void s_start_coord_fashion(struct s_fed *f, const char *extra)
{
    snprintf(f->coord_cmd, sizeof f->coord_cmd,
             "cd %s && exec %s/fedtl-coordinator --key hq.key --allow allow --base base.ftm "
             "--state-dir state --endpoint tcp://127.0.0.1:%d --classes 5-9 --method lora "
             "--epochs 3 --heartbeat-ms 200 --eval-data " FMNIST "/t10k-images-idx3-ubyte.gz "
             "--eval-labels " FMNIST "/t10k-labels-idx1-ubyte.gz %s",
             f->t.dir, FEDTL_BIN_DIR, f->t.port, extra);
    s_spawn_coord(f);
}

static void s_spawn_coord(struct s_fed *f)
{
    char log[1024];
    snprintf(log, sizeof log, "%s/coord.log", f->t.dir);
    f->t.coord = fl_test_spawn(f->coord_cmd, log);
}

static pid_t s_start_branch(struct s_fed *f, int i, const char *key, const char *coord_pub,
                            const char *extra)
{
    char cmd[4096], log[1024];
    snprintf(cmd, sizeof cmd,
             "cd %s && exec %s/fedtl-client --coordinator tcp://127.0.0.1:%d --coordinator-key %s "
             "--key %s.key --data shards/client-%02d.csv --cache-dir cache%d --out final%d.fta "
             "--keep-updates kept%d --threads 1 --connect-timeout 20 %s",
             f->t.dir, FEDTL_BIN_DIR, f->t.port, coord_pub, key, i, i, i, i, extra);
    snprintf(log, sizeof log, "%s/%s.log", f->t.dir, key);
    return fl_test_spawn(cmd, log);
}

static void s_teardown(struct s_fed *f)
{
    fl_test_fed_teardown(&f->t);
}

static char *s_file(struct s_fed *f, const char *name)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", f->t.dir, name);
    return path;
}

/* Wait until a file contains needle (e.g. a log line). */
static bool s_wait_for(struct s_fed *f, const char *name, const char *needle, double timeout_s)
{
    for (int i = 0; i < (int)(timeout_s * 20); i++) {
        if (fl_test_count(s_file(f, name), needle) > 0)
            return true;
        usleep(50000);
    }
    return false;
}

static double s_eval(struct s_fed *f, const char *adapter)
{
    char cmd[4096], *out = NULL;
    snprintf(cmd, sizeof cmd,
             "cd %s && %s/fedtl eval --base base.ftm --adapter %s --data " FMNIST
             "/t10k-images-idx3-ubyte.gz --labels " FMNIST "/t10k-labels-idx1-ubyte.gz "
             "--json",
             f->t.dir, FEDTL_BIN_DIR, adapter);
    cr_assert_eq(fl_test_run(cmd, &out), 0, "%s", out ? out : "");
    cJSON *ev = cJSON_Parse(out);
    const cJSON *acc = cJSON_GetObjectItemCaseSensitive(ev, "accuracy");
    cr_assert(cJSON_IsNumber(acc), "fedtl eval --json: %s", out);
    double v = acc->valuedouble;
    cJSON_Delete(ev);
    free(out);
    return v;
}

/* Wait until the ledger has a line for round `round` aggregated. */
static bool s_wait_aggregated(struct s_fed *f, int round, double timeout_s)
{
    for (int i = 0; i < (int)(timeout_s * 20); i++) {
        cJSON *lines = fl_test_jsonl(s_file(f, "state/rounds.jsonl"));
        int n = fl_test_ledger_lines(lines, round, 1, NULL);
        cJSON_Delete(lines);
        if (n > 0)
            return true;
        usleep(50000);
    }
    return false;
}

/* The ledger, one parsed JSON value per line. */
static cJSON *s_ledger(struct s_fed *f)
{
    cJSON *lines = fl_test_jsonl(s_file(f, "state/rounds.jsonl"));
    cr_assert_not_null(lines, "rounds.jsonl is missing or holds a line that is not JSON");
    return lines;
}

/* A ledger line's participant named branch, or NULL. */
static const cJSON *s_participant(const cJSON *line, const char *branch)
{
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(line, "participants"))
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(p, "branch");
        if (cJSON_IsString(name) && strcmp(name->valuestring, branch) == 0)
            return p;
    }
    return NULL;
}

/* The samples the ledger recorded for a branch in its last aggregated line. */
static double s_ledger_samples(struct s_fed *f, const char *branch)
{
    cJSON *ledger = s_ledger(f);
    const cJSON *last;
    cr_assert_gt(fl_test_ledger_lines(ledger, -1, 1, &last), 0);
    const cJSON *p = s_participant(last, branch);
    double samples = p ? cJSON_GetObjectItemCaseSensitive(p, "samples")->valuedouble : -1;
    cJSON_Delete(ledger);
    return samples;
}

Test(fedtl_federation, three_branches_three_rounds_average_and_beat_the_head, .timeout = 240)
{
    struct s_fed f;
    s_setup_data(&f, true);
    s_start_coord_fashion(&f, "--rounds 3 --min-start 3 --min-clients 3 --deadline 120 "
                              "--epochs 5 --lr 0.005 --exit-when-done");
    char key[16];
    for (int i = 0; i < NB; i++) {
        snprintf(key, sizeof key, "b%d", i);
        f.t.branch[i] = s_start_branch(&f, i, key, "hq.pub", "");
    }
    cr_assert_eq(fl_test_wait(f.t.coord, 180), 0, "coordinator failed");
    f.t.coord = 0;
    for (int i = 0; i < NB; i++) {
        cr_assert_eq(fl_test_wait(f.t.branch[i], 30), 0, "branch %d failed", i);
        f.t.branch[i] = 0;
    }
    cJSON *ledger = s_ledger(&f);
    cr_assert_eq(fl_test_ledger_lines(ledger, -1, 1, NULL), 3);
    cJSON_Delete(ledger);
    /* Every branch downloaded the base, verified it and holds the final adapter. */
    struct fl_adapter_file global, mine;
    cr_assert_eq(fl_adapter_read(s_file(&f, "state/global.fta"), &global), 0);
    cr_assert_eq(global.meta.round, 3);
    for (int i = 0; i < NB; i++) {
        char name[64];
        snprintf(name, sizeof name, "final%d.fta", i);
        cr_assert_eq(fl_adapter_read(s_file(&f, name), &mine), 0, "%s", name);
        cr_assert_eq(memcmp(mine.hash, global.hash, 32), 0, "branch %d's final differs", i);
        fl_adapter_close(&mine);
    }
    /* The global adapter is the sample-weighted mean of what the branches sent in round 3,
     * recomputed here from each branch's own copy and the ledger's sample counts. */
    double total = 0;
    struct fl_adapter_file sent[NB];
    double w[NB];
    for (int i = 0; i < NB; i++) {
        char name[64], branch[16];
        snprintf(name, sizeof name, "kept%d/round-3.fta", i);
        snprintf(branch, sizeof branch, "b%d", i);
        cr_assert_eq(fl_adapter_read(s_file(&f, name), &sent[i]), 0, "%s", name);
        w[i] = s_ledger_samples(&f, branch);
        cr_assert_gt(w[i], 0);
        total += w[i];
    }
    for (size_t t = 0; t < global.ntensors; t++) {
        for (size_t j = 0; j < fl_tensor_numel(&global.tensors[t]); j++) {
            double mean = 0;
            for (int i = 0; i < NB; i++)
                mean += w[i] * sent[i].tensors[t].data[j];
            mean /= total;
            cr_assert_float_eq(global.tensors[t].data[j], mean, 1e-5, "%s[%zu]",
                               global.tensors[t].name, j);
        }
    }
    for (int i = 0; i < NB; i++)
        fl_adapter_close(&sent[i]);
    fl_adapter_close(&global);
    /* Better than the base with a head fine-tuned on any one branch's data alone (what a
     * branch gets without the federation, with as many epochs as the federation ran). */
    double fed = s_eval(&f, "state/global.fta"), best_local = 0;
    for (int i = 0; i < NB; i++) {
        s_sh(&f,
             "$B/fedtl finetune --base base.ftm --data shards/client-%02d.csv --classes 5-9 "
             "--method head --epochs 15 --quiet --out head%d.fta >/dev/null",
             i, i);
        char name[32];
        snprintf(name, sizeof name, "head%d.fta", i);
        double acc = s_eval(&f, name);
        best_local = acc > best_local ? acc : best_local;
    }
    cr_log_info("federated %.4f, best local head-only %.4f", fed, best_local);
    cr_assert_gt(fed, best_local, "federated %.4f is not above local head-only %.4f", fed,
                 best_local);
    s_teardown(&f);
}

/* Wait until one line of a file holds both a and b. */
static bool s_wait_line(struct s_fed *f, const char *name, const char *a, const char *b,
                        double timeout_s)
{
    for (int i = 0; i < (int)(timeout_s * 20); i++) {
        char *text = fl_test_slurp(s_file(f, name));
        bool hit = false;
        for (char *line = text ? strtok(text, "\n") : NULL; line && !hit; line = strtok(NULL, "\n"))
            hit = strstr(line, a) && strstr(line, b);
        free(text);
        if (hit)
            return true;
        usleep(50000);
    }
    return false;
}

Test(fedtl_federation, a_branch_killed_mid_round_and_a_coordinator_killed_after_round_2,
     .timeout = 300)
{
    struct s_fed f;
    s_setup_data(&f, true);
    s_start_coord_fashion(&f, "--rounds 3 --min-start 2 --min-clients 1 --deadline 8 "
                              "--exit-when-done");
    /* Branch 2 holds far more data (all 30,000 training images of classes 5-9), so it is
     * still training when it is killed in round 1. */
    f.t.branch[2] = s_start_branch(&f, 2, "b2", "hq.pub",
                                   "--data " FMNIST "/train-images-idx3-ubyte.gz --labels " FMNIST
                                   "/train-labels-idx1-ubyte.gz");
    cr_assert(s_wait_line(&f, "coord.log", "branch=b2", "has_base=1", 60), "b2 never ready");
    f.t.branch[0] = s_start_branch(&f, 0, "b0", "hq.pub", "");
    cr_assert(s_wait_for(&f, "b2.log", "event=task round=1", 60), "no task for b2");
    kill(f.t.branch[2], SIGKILL);
    fl_test_wait(f.t.branch[2], 5);
    f.t.branch[2] = 0;
    f.t.branch[1] = s_start_branch(&f, 1, "b1", "hq.pub", "");
    cr_assert(s_wait_aggregated(&f, 2, 120), "round 2 never done");
    /* The coordinator dies without warning after round 2 and comes back; the branches are
     * not restarted. */
    kill(f.t.coord, SIGKILL);
    fl_test_wait(f.t.coord, 5);
    struct fl_adapter_file r2;
    cr_assert_eq(fl_adapter_read(s_file(&f, "state/global.fta"), &r2), 0);
    cr_assert_eq(r2.meta.round, 2);
    fl_adapter_close(&r2);
    char log[1024];
    snprintf(log, sizeof log, "%s/coord2.log", f.t.dir);
    f.t.coord = fl_test_spawn(f.coord_cmd, log);
    cr_assert_eq(fl_test_wait(f.t.coord, 120), 0, "restarted coordinator failed");
    f.t.coord = 0;
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(fl_test_wait(f.t.branch[i], 30), 0, "branch %d failed", i);
        f.t.branch[i] = 0;
    }
    /* It resumed at round 3 from round 2's adapter, and ran no round twice. */
    cr_assert_eq(fl_test_count(s_file(&f, "coord2.log"), "resumed_round=2"), 1);
    cr_assert_eq(fl_test_count(s_file(&f, "coord2.log"), "event=round_start round=3"), 1);
    cr_assert_eq(fl_test_count(s_file(&f, "coord2.log"), "event=round_start round=1"), 0);
    cr_assert_eq(fl_test_count(s_file(&f, "coord2.log"), "event=round_start round=2"), 0);
    cJSON *ledger = s_ledger(&f);
    cr_assert_eq(fl_test_ledger_lines(ledger, -1, 1, NULL), 3);
    /* Round 1 completed at its deadline with b0 alone: b2 was selected but never answered. */
    const cJSON *r1;
    cr_assert_eq(fl_test_ledger_lines(ledger, 1, 1, &r1), 1);
    cr_assert_eq(cJSON_GetObjectItemCaseSensitive(r1, "selected")->valuedouble, 2);
    cr_assert_null(s_participant(r1, "b2"));
    cr_assert_not_null(s_participant(r1, "b0"));
    double duration = cJSON_GetObjectItemCaseSensitive(r1, "duration_s")->valuedouble;
    cr_assert_geq(duration, 7.5, "round 1 should have run to its 8 s deadline");
    cJSON_Delete(ledger);
    struct fl_adapter_file final;
    cr_assert_eq(fl_adapter_read(s_file(&f, "final0.fta"), &final), 0);
    cr_assert_eq(final.meta.round, 3);
    fl_adapter_close(&final);
    s_teardown(&f);
}

Test(fedtl_federation, refused_keys_fail_fast_with_a_clear_message, .timeout = 120)
{
    struct s_fed f;
    s_setup(&f);
    s_start_coord(&f, "--rounds 1 --min-start 3");
    /* A branch that is not enrolled. */
    pid_t p = s_start_branch(&f, 0, "stranger", "hq.pub", "");
    cr_assert_eq(fl_test_wait(p, 30), 1);
    cr_assert_gt(fl_test_count(s_file(&f, "stranger.log"), "not enrolled"), 0);
    /* An enrolled branch pinned to the wrong coordinator key. */
    p = s_start_branch(&f, 0, "b0", "b1.pub", "--connect-timeout 5");
    cr_assert_eq(fl_test_wait(p, 30), 1);
    cr_assert_gt(fl_test_count(s_file(&f, "b0.log"), "coordinator-key"), 0);
    /* Revocation: b1 registers, its key leaves the allow-list, SIGHUP: it is told and refused. */
    f.t.branch[1] = s_start_branch(&f, 1, "b1", "hq.pub", "");
    cr_assert(s_wait_for(&f, "coord.log", "branch=b1", 30), "b1 never registered");
    s_sh(&f, "rm allow/b1.pub");
    kill(f.t.coord, SIGHUP);
    cr_assert_eq(fl_test_wait(f.t.branch[1], 30), 1);
    f.t.branch[1] = 0;
    cr_assert_gt(fl_test_count(s_file(&f, "coord.log"), "event=branch_revoked"), 0);
    cr_assert_gt(fl_test_count(s_file(&f, "b1.log"), "revoked"), 0);
    p = s_start_branch(&f, 1, "b1", "hq.pub", "");
    cr_assert_eq(fl_test_wait(p, 30), 1, "a revoked key got in again");
    /* The coordinator is still serving. */
    char cmd[2048], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s/fedtl status --state-dir %s/state", FEDTL_BIN_DIR, f.t.dir);
    cr_assert_eq(fl_test_run(cmd, &out), 0);
    free(out);
    kill(f.t.coord, SIGTERM);
    cr_assert_eq(fl_test_wait(f.t.coord, 10), 0, "SIGTERM should exit 0");
    f.t.coord = 0;
    s_teardown(&f);
}

/* A shard rewritten as a table with a header: an id column, the 20 features in reverse order
 * (f19 ... f0), the label last as "kind", then the first row again with f7 missing ("NA"). */
static void s_write_named(struct s_fed *f, const char *in, const char *out)
{
    s_sh(f,
         "awk -F, 'BEGIN { printf \"id\"; for (j = 19; j >= 0; j--) printf \",f%%d\", j; "
         "print \",kind\" } NR == 1 { first = $0 } "
         "{ printf \"r%%d\", NR; for (j = 21; j >= 2; j--) printf \",%%s\", $j; print \",\" $1 } "
         "END { n = split(first, a, \",\"); printf \"x\"; "
         "for (j = 21; j >= 2; j--) printf \",%%s\", j == 9 ? \"NA\" : a[j]; print \",\" a[1] }' "
         "%s > %s",
         in, out);
}

Test(fedtl_federation, branches_and_the_coordinator_read_header_tables_by_column_name,
     .timeout = 240)
{
    struct s_fed f;
    s_setup(&f);
    char cols[256] = "", opts[1024];
    for (int j = 0; j < 20; j++)
        snprintf(cols + strlen(cols), sizeof cols - strlen(cols), "%sf%d", j ? "," : "", j);
    char in[64], out[64];
    for (int i = 0; i < NB; i++) {
        snprintf(in, sizeof in, "shards/client-%02d.csv", i);
        snprintf(out, sizeof out, "named%d.csv", i);
        s_write_named(&f, in, out);
    }
    s_write_named(&f, "test.csv", "test_named.csv");
    /* A branch reads its table by name: the records of its plain shard, the row with a missing
     * value dropped; without --missing drop that row is an error naming the file. */
    snprintf(opts, sizeof opts, "--label-column kind --columns %s", cols);
    char cmd[4096], *text = NULL;
    snprintf(cmd, sizeof cmd,
             "cd %s && %s/fedtl-client --check-config --coordinator tcp://127.0.0.1:1 "
             "--coordinator-key hq.pub --key b0.key --data named0.csv %s --missing drop",
             f.t.dir, FEDTL_BIN_DIR, opts);
    cr_assert_eq(fl_test_run(cmd, &text), 0, "%s", text);
    const char *summary = strstr(text, "named0.csv: ");
    cr_assert_not_null(summary, "%s", text);
    size_t records = 0, shard = 0;
    cr_assert_eq(sscanf(summary, "named0.csv: %zu records, 20 features", &records), 1, "%s", text);
    free(text);
    snprintf(cmd, sizeof cmd, "wc -l < %s/shards/client-00.csv", f.t.dir);
    cr_assert_eq(fl_test_run(cmd, &text), 0);
    cr_assert_eq(sscanf(text, "%zu", &shard), 1, "%s", text);
    cr_assert_eq(records, shard, "the table's records are the shard's");
    free(text);
    snprintf(cmd, sizeof cmd,
             "cd %s && %s/fedtl-client --check-config --coordinator tcp://127.0.0.1:1 "
             "--coordinator-key hq.pub --key b0.key --data named0.csv %s",
             f.t.dir, FEDTL_BIN_DIR, opts);
    cr_assert_neq(fl_test_run(cmd, &text), 0, "%s", text);
    cr_assert_not_null(strstr(text, "named0.csv"), "%s", text);
    cr_assert_not_null(strstr(text, "f7"), "%s", text);
    free(text);
    /* The federation on the tables, the coordinator evaluating on one too. */
    char extra[1024];
    snprintf(extra, sizeof extra,
             "--rounds 2 --min-start 3 --min-clients 3 --deadline 120 --exit-when-done "
             "--eval-data test_named.csv --eval-label-column kind --eval-columns %s "
             "--eval-missing drop",
             cols);
    s_start_coord(&f, extra);
    snprintf(opts + strlen(opts), sizeof opts - strlen(opts), " --missing drop");
    char key[16];
    for (int i = 0; i < NB; i++) {
        snprintf(key, sizeof key, "b%d", i);
        char branch_opts[1200];
        snprintf(branch_opts, sizeof branch_opts, "%s --data named%d.csv", opts, i);
        f.t.branch[i] = s_start_branch(&f, i, key, "hq.pub", branch_opts);
    }
    cr_assert_eq(fl_test_wait(f.t.coord, 180), 0, "coordinator failed");
    f.t.coord = 0;
    for (int i = 0; i < NB; i++) {
        cr_assert_eq(fl_test_wait(f.t.branch[i], 30), 0, "branch %d failed", i);
        f.t.branch[i] = 0;
    }
    /* The coordinator's evaluation read the same records as the plain test set: the accuracy
     * it recorded for the final round is fedtl eval's on test.csv. */
    cJSON *ledger = s_ledger(&f);
    const cJSON *last;
    cr_assert_eq(fl_test_ledger_lines(ledger, -1, 1, &last), 2);
    const cJSON *acc = cJSON_GetObjectItemCaseSensitive(last, "server_eval_accuracy");
    cr_assert(cJSON_IsNumber(acc), "no server evaluation in the ledger");
    double server = acc->valuedouble;
    cJSON_Delete(ledger);
    snprintf(cmd, sizeof cmd,
             "cd %s && %s/fedtl eval --base base.ftm --adapter state/global.fta --data test.csv "
             "--json",
             f.t.dir, FEDTL_BIN_DIR);
    cr_assert_eq(fl_test_run(cmd, &text), 0, "%s", text);
    cJSON *ev = cJSON_Parse(text);
    const cJSON *tacc = cJSON_GetObjectItemCaseSensitive(ev, "accuracy");
    cr_assert(cJSON_IsNumber(tacc), "%s", text);
    cr_log_info("server evaluation on the table %.5f, fedtl eval on the plain CSV %.5f", server,
                tacc->valuedouble);
    cr_assert_float_eq(server, tacc->valuedouble, 1e-4);
    cr_assert_gt(server, 0.5, "3 classes: well above chance");
    cJSON_Delete(ev);
    free(text);
    s_teardown(&f);
}
