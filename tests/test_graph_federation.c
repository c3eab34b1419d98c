/* A graph base end to end with the real programs: a small residual network written as a base
 * file (tests/fl_graphbase.h), `fedtl inspect`, `fedtl finetune` / `eval` / `predict` with
 * LoRA on named nodes, and a federation of fedtl-coordinator and two fedtl-client processes
 * over CurveZMQ on that base, whose global adapter loads onto it. */
#include "fl_graphbase.h"

#include <criterion/criterion.h>

#include <cJSON.h>

#include "fl_modelio.h"
#include "fl_testutil.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NB    2
#define S_DIM (3 * 16 * 16)

static char *s_dir;
static pid_t s_pids[NB + 1];

static void s_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void s_sh(const char *fmt, ...)
{
    char body[4096], cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "cd %s && B=%s && %s", s_dir, FEDTL_BIN_DIR, body);
    char *out = NULL;
    int rc = fl_test_run(cmd, &out);
    cr_assert_eq(rc, 0, "%s\n%s", body, out ? out : "");
    free(out);
}

/* Output of a command that must succeed (malloc'd). */
static char *s_out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *s_out(const char *fmt, ...)
{
    char body[4096], cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "cd %s && B=%s && %s", s_dir, FEDTL_BIN_DIR, body);
    char *out = NULL;
    cr_assert_eq(fl_test_run(cmd, &out), 0, "%s\n%s", body, out ? out : "");
    return out;
}

/* Four classes of 3x16x16 images: a class's own channel levels and pattern, plus noise. */
static void s_write_images(const char *name, int n, uint64_t seed)
{
    struct fl_rng r;
    static float centre[4][S_DIM];
    fl_rng_seed(&r, 77);
    for (int k = 0; k < 4; k++) {
        double chan[3] = {fl_rng_normal(&r), fl_rng_normal(&r), fl_rng_normal(&r)};
        for (int j = 0; j < S_DIM; j++)
            centre[k][j] = (float)(1.5 * chan[j / 256] + 0.5 * fl_rng_normal(&r));
    }
    fl_rng_seed(&r, seed);
    char *path = fl_test_path(s_dir, name);
    FILE *fp = fopen(path, "w");
    cr_assert_not_null(fp);
    for (int i = 0; i < n; i++) {
        int k = (int)fl_rng_below(&r, 4);
        fprintf(fp, "%d", k);
        for (int j = 0; j < S_DIM; j++)
            fprintf(fp, ",%.3f", centre[k][j] + fl_rng_normal(&r));
        fprintf(fp, "\n");
    }
    fclose(fp);
    free(path);
}

static void s_setup(void)
{
    s_dir = fl_test_tmpdir("gfed");
    memset(s_pids, 0, sizeof s_pids);
    char *base = fl_test_path(s_dir, "base.ftm");
    gb_write(base, 3, 21, 1, NULL);
    free(base);
    s_write_images("train.csv", 600, 1);
    s_write_images("test.csv", 200, 2);
}

static void s_teardown(void)
{
    for (int i = 0; i <= NB; i++)
        if (s_pids[i] > 0) {
            kill(s_pids[i], SIGKILL);
            fl_test_wait(s_pids[i], 5);
        }
    if (!getenv("FEDTL_KEEP_TMP"))
        fl_test_rmtree(s_dir);
    free(s_dir);
}

static double s_accuracy(const char *adapter)
{
    char *out = s_out("$B/fedtl eval --base base.ftm --adapter %s --data test.csv --json", adapter);
    cJSON *ev = cJSON_Parse(out);
    const cJSON *acc = cJSON_GetObjectItemCaseSensitive(ev, "accuracy");
    cr_assert(cJSON_IsNumber(acc), "%s", out);
    double v = acc->valuedouble;
    cJSON_Delete(ev);
    free(out);
    return v;
}

Test(graph_federation, the_tool_fine_tunes_a_graph_base_on_named_nodes, .init = s_setup,
     .fini = s_teardown, .timeout = 240)
{
    char *out = s_out("$B/fedtl inspect base.ftm");
    cr_assert(strstr(out, "no (depthwise)"), "%s", out);
    cr_assert(strstr(out, "default targets of lora: pw,conv3"), "%s", out);
    free(out);
    out = s_out("$B/fedtl finetune --base base.ftm --data train.csv --classes 0-3 --method lora "
                "--targets pw,conv3 --epochs 4 --lr 0.01 --seed 2 --threads 2 --out lora.fta");
    cr_assert(strstr(out, "wrote lora.fta"), "%s", out);
    free(out);
    s_sh("$B/fedtl finetune --base base.ftm --data train.csv --classes 0-3 --method bitfit "
         "--epochs 4 --quiet --out bitfit.fta");
    double lora = s_accuracy("lora.fta"), bitfit = s_accuracy("bitfit.fta");
    cr_log_info("graph base: lora %.3f, bitfit %.3f", lora, bitfit);
    cr_assert_gt(lora, 0.6, "lora %.3f on four well-separated classes", lora);
    cr_assert_gt(bitfit, 0.6, "bitfit %.3f", bitfit);
    out = s_out("$B/fedtl predict --base base.ftm --adapter lora.fta --data test.csv | wc -l");
    cr_assert_eq(atoi(out), 200, "%s", out);
    free(out);
    out = s_out("$B/fedtl inspect lora.fta --base base.ftm --json");
    cr_assert(strstr(out, "\"targets\":[\"pw\",\"conv3\"]"), "%s", out);
    free(out);
    char cmd[4096], *err = NULL;
    snprintf(cmd, sizeof cmd,
             "cd %s && %s/fedtl finetune --base base.ftm --data train.csv --classes 0-3 "
             "--method lora --targets dw --out x.fta",
             s_dir, FEDTL_BIN_DIR);
    cr_assert_neq(fl_test_run(cmd, &err), 0);
    cr_assert(strstr(err, "depthwise takes BitFit only"), "%s", err);
    free(err);
}

Test(graph_federation, a_federation_runs_on_a_graph_base, .init = s_setup, .fini = s_teardown,
     .timeout = 300)
{
    s_sh("mkdir allow && for k in hq b0 b1; do $B/fedtl keygen --out $k --name $k >/dev/null "
         "|| exit 1; done && cp b0.pub b1.pub allow/");
    s_sh("$B/fedtl partition --data train.csv --classes 0-3 --clients %d --dirichlet 1.0 "
         "--min-size 60 --seed 5 --out-dir shards >/dev/null",
         NB);
    int port = fl_test_free_port();
    char cmd[4096], log[1024];
    snprintf(cmd, sizeof cmd,
             "cd %s && exec %s/fedtl-coordinator --key hq.key --allow allow --base base.ftm "
             "--state-dir state --endpoint tcp://127.0.0.1:%d --classes 0-3 --method lora "
             "--rounds 2 --min-start %d --min-clients %d --deadline 120 --epochs 2 --lr 0.01 "
             "--heartbeat-ms 200 --eval-data test.csv --threads 1 --exit-when-done",
             s_dir, FEDTL_BIN_DIR, port, NB, NB);
    snprintf(log, sizeof log, "%s/coord.log", s_dir);
    s_pids[0] = fl_test_spawn(cmd, log);
    for (int i = 0; i < NB; i++) {
        snprintf(cmd, sizeof cmd,
                 "cd %s && exec %s/fedtl-client --coordinator tcp://127.0.0.1:%d "
                 "--coordinator-key hq.pub --key b%d.key --data shards/client-%02d.csv "
                 "--cache-dir cache%d --out final%d.fta --threads 1 --connect-timeout 20",
                 s_dir, FEDTL_BIN_DIR, port, i, i, i, i);
        snprintf(log, sizeof log, "%s/b%d.log", s_dir, i);
        s_pids[1 + i] = fl_test_spawn(cmd, log);
    }
    int rc = fl_test_wait(s_pids[0], 240);
    char *clog = fl_test_path(s_dir, "coord.log");
    char *text = fl_test_slurp(clog);
    cr_assert_eq(rc, 0, "coordinator failed:\n%s", text ? text : "");
    free(text);
    free(clog);
    s_pids[0] = 0;
    for (int i = 0; i < NB; i++) {
        cr_assert_eq(fl_test_wait(s_pids[1 + i], 30), 0, "branch %d failed", i);
        s_pids[1 + i] = 0;
    }
    char *ledger = fl_test_path(s_dir, "state/rounds.jsonl");
    cJSON *lines = fl_test_jsonl(ledger);
    cr_assert_eq(fl_test_ledger_lines(lines, -1, 1, NULL), 2, "two rounds aggregated");
    cJSON_Delete(lines);
    free(ledger);
    /* The global adapter loads onto the graph base and every branch holds it. */
    char *gpath = fl_test_path(s_dir, "state/global.fta"), *bpath = fl_test_path(s_dir, "base.ftm");
    struct fl_adapter_file global, mine;
    struct fl_base_file bf;
    cr_assert_eq(fl_adapter_read(gpath, &global), 0, "%s", fl_error_msg());
    cr_assert_eq(global.meta.round, 2);
    cr_assert_eq(global.meta.ntargets, 2);
    cr_assert_str_eq(global.meta.targets[0], "pw");
    cr_assert_eq(fl_base_read(bpath, &bf), 0, "%s", fl_error_msg());
    fl_model_t *m = fl_model_from_base(&bf, bpath, &global.meta, NULL);
    cr_assert_not_null(m, "%s", fl_error_msg());
    cr_assert_eq(fl_model_set_adapter(m, &global, gpath), 0, "%s", fl_error_msg());
    for (int i = 0; i < NB; i++) {
        char name[64];
        snprintf(name, sizeof name, "final%d.fta", i);
        char *p = fl_test_path(s_dir, name);
        cr_assert_eq(fl_adapter_read(p, &mine), 0, "%s", name);
        cr_assert_eq(memcmp(mine.hash, global.hash, FL_HASH_BYTES), 0, "branch %d differs", i);
        fl_adapter_close(&mine);
        free(p);
    }
    double acc = s_accuracy("state/global.fta");
    cr_log_info("graph federation: global adapter accuracy %.3f", acc);
    cr_assert_gt(acc, 0.3, "the federated adapter learned something (%.3f)", acc);
    fl_model_destroy(&m);
    fl_base_close(&bf);
    fl_adapter_close(&global);
    free(gpath);
    free(bpath);
}
