/* docker-compose.yml for real, on a Docker engine: scripts/compose.sh makes one available where
 * it can (installs docker.io, starts dockerd, debootstraps debian:bookworm when no registry has
 * it), builds the images and runs the federation to its end, SIGKILLing the coordinator once
 * round 5 is in its ledger. The test then asks the engine itself for every container's exit
 * code and restarts, reads the ledger, state.json and adapters that `compose.sh results` copied
 * out, and evaluates the global adapter again with the host's own fedtl.
 *
 * Skipped, saying why, only where no engine can be had (compose.sh exits 3: not root, no
 * apt-get, or dockerd will not start). The images are tagged for this run alone and removed
 * with its containers and volumes at the end; the base image and the build cache stay. Under
 * AddressSanitizer (scripts/test.sh --sanitize) it is skipped: the images are the same. */
#include <criterion/criterion.h>

#include "fl_testutil.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define COMPOSE_SH FEDTL_SRC_DIR "/scripts/compose.sh"
#define FMNIST     "/usr/share/datasets/fashion-mnist"
#define ROUNDS     20 /* the coordinator's --rounds in docker-compose.yml */
#define KILL_AFTER 5
/* Dirichlet 1 over three branches (docker-compose.yml): simulate.sh with the same settings
 * ended at 0.955-0.963 (seeds 1-3), and the compose runs alike, never below 0.94 after round 3;
 * the earlier Dirichlet 0.3 ended between 0.82 and 0.90. */
#define MIN_ACCURACY 0.93

static char *s_dir;
static char s_project[64], s_env[160];

static void s_setup(void)
{
    s_dir = fl_test_tmpdir("compose-run");
    cr_assert_not_null(s_dir);
    snprintf(s_project, sizeof s_project, "fedtltest%ld", (long)getpid());
    snprintf(s_env, sizeof s_env, "FEDTL_TAG=test%ld FEDTL_COMPOSE_LOGS='%s/logs'", (long)getpid(),
             s_dir);
}

static void s_teardown(void)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "%s '%s' -p %s down -v >/dev/null 2>&1; "
             "docker rmi fedtl:test%ld fedtl-data:test%ld >/dev/null 2>&1",
             s_env, COMPOSE_SH, s_project, (long)getpid(), (long)getpid());
    if (access("/var/run/docker.sock", F_OK) == 0)
        fl_test_run(cmd, NULL);
    fl_test_rmtree(s_dir);
    free(s_dir);
    s_dir = NULL;
}

TestSuite(compose_run, .init = s_setup, .fini = s_teardown, .timeout = 880);

/* Run compose.sh with this run's project and tag; its output in *out. */
static int s_compose(const char *args, char **out)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s '%s' -p %s %s", s_env, COMPOSE_SH, s_project, args);
    return fl_test_run(cmd, out);
}

/* The accuracy `fedtl eval --json` prints, or -1. */
static double s_eval_accuracy(const char *base, const char *adapter)
{
    char cmd[2048], *out = NULL;
    snprintf(cmd, sizeof cmd,
             "'%s/fedtl' eval --base '%s' --adapter '%s' --data " FMNIST
             "/t10k-images-idx3-ubyte.gz --labels " FMNIST "/t10k-labels-idx1-ubyte.gz --json",
             FEDTL_BIN_DIR, base, adapter);
    int rc = fl_test_run(cmd, &out);
    cr_assert_eq(rc, 0, "fedtl eval failed:\n%s", out ? out : "");
    const char *p = out ? strstr(out, "\"accuracy\":") : NULL;
    double acc = p ? strtod(p + 11, NULL) : -1;
    free(out);
    return acc;
}

/* An integer member of a JSON object, failing the test when it is not there. */
static int s_int(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(obj, key);
    cr_assert(cJSON_IsNumber(v), "no number \"%s\"", key);
    return v->valueint;
}

static bool s_same_file(const char *a, const char *b)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
    return fl_test_run(cmd, NULL) == 0;
}

Test(compose_run, federation_runs_to_the_end_through_a_killed_coordinator)
{
#if defined(__SANITIZE_ADDRESS__)
    cr_skip_test("the compose federation runs images built without sanitizers, and only once: "
                 "in the plain build (scripts/test.sh)");
#endif
    /* The engine and the base image, or a clear reason to skip. */
    char *out = NULL;
    int rc = s_compose("engine", &out);
    if (rc == 3) {
        cr_log_warn("compose_run skipped: %s", out ? out : "");
        cr_skip_test("no Docker engine can be had here (scripts/compose.sh engine exits 3): %s",
                     out ? out : "");
    }
    cr_assert_eq(rc, 0, "scripts/compose.sh engine failed (%d):\n%s", rc, out ? out : "");
    free(out);

    /* Build and run to the end, the coordinator SIGKILLed after round 5. */
    char args[256];
    snprintf(args, sizeof args, "up --fresh --timeout 600 --kill-coordinator %d", KILL_AFTER);
    out = NULL;
    rc = s_compose(args, &out);
    cr_assert_eq(rc, 0, "scripts/compose.sh up failed (%d):\n%s", rc, out ? out : "");
    cr_assert(strstr(out, "SIGKILL to the coordinator"), "the coordinator was not killed:\n%s",
              out);
    free(out);

    /* Every container's exit code and restarts, from the engine. */
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "docker ps -aq --filter label=com.docker.compose.project=%s | xargs docker inspect "
             "-f '{{index .Config.Labels \"com.docker.compose.service\"}} {{.State.Status}} "
             "{{.State.ExitCode}} {{.RestartCount}}' | sort",
             s_project);
    out = NULL;
    cr_assert_eq(fl_test_run(cmd, &out), 0, "docker inspect failed:\n%s", out ? out : "");
    const char *want[] = {"branch-00", "branch-01", "branch-02", "coordinator", "prepare"};
    int seen = 0;
    char *save = NULL;
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char svc[64], state[32];
        int code, restarts;
        cr_assert_eq(sscanf(line, "%63s %31s %d %d", svc, state, &code, &restarts), 4, "%s", line);
        cr_assert_lt(seen, 5, "more containers than services: %s", line);
        cr_assert_str_eq(svc, want[seen], "containers out of order or missing at %s", line);
        cr_assert_str_eq(state, "exited", "%s", line);
        cr_assert_eq(code, 0, "%s exited with %d", svc, code);
        if (!strcmp(svc, "coordinator"))
            cr_assert_geq(restarts, 1, "the coordinator was not restarted: %s", line);
        else
            cr_assert_eq(restarts, 0, "%s was restarted: %s", svc, line);
        seen++;
    }
    cr_assert_eq(seen, 5, "%d containers, not 5", seen);
    free(out);

    /* The results, copied out of the volumes and containers. */
    char *res = fl_test_path(s_dir, "results");
    snprintf(args, sizeof args, "results '%s'", res);
    out = NULL;
    rc = s_compose(args, &out);
    cr_assert_eq(rc, 0, "scripts/compose.sh results failed (%d):\n%s", rc, out ? out : "");
    char line[64];
    snprintf(line, sizeof line, "rounds: %d, final server accuracy:", ROUNDS);
    cr_assert(strstr(out, line), "results does not report %d rounds:\n%s", ROUNDS, out);
    free(out);

    /* The ledger: rounds 1..20 in order, each aggregated once, across the restart. */
    char *p = fl_test_path(res, "rounds.jsonl");
    cJSON *ledger = fl_test_jsonl(p);
    cr_assert_not_null(ledger, "%s missing or not JSON lines", p);
    free(p);
    cr_assert_eq(cJSON_GetArraySize(ledger), ROUNDS, "the ledger has %d lines",
                 cJSON_GetArraySize(ledger));
    double last_acc = -1;
    for (int r = 1; r <= ROUNDS; r++) {
        const cJSON *l = cJSON_GetArrayItem(ledger, r - 1);
        cr_assert_eq(s_int(l, "round"), r, "line %d is not round %d", r, r);
        cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(l, "aggregated")), "round %d not aggregated", r);
        /* All three in the last round; at least one in every round (a round retried after the
         * restart may start before every branch is back). */
        int n = cJSON_GetArraySize(cJSON_GetObjectItem(l, "participants"));
        cr_assert(r == ROUNDS ? n == 3 : n >= 1, "round %d: %d participants", r, n);
        const cJSON *acc = cJSON_GetObjectItem(l, "server_eval_accuracy");
        cr_assert(cJSON_IsNumber(acc), "round %d has no server_eval_accuracy", r);
        last_acc = acc->valuedouble;
    }
    cJSON_Delete(ledger);
    cr_assert_geq(last_acc, MIN_ACCURACY, "final server accuracy %.4f below %.2f", last_acc,
                  MIN_ACCURACY);

    /* state.json: done at round 20. */
    p = fl_test_path(res, "state.json");
    cJSON *state = fl_test_json(p);
    cr_assert_not_null(state, "%s missing or not JSON", p);
    free(p);
    cr_assert_eq(s_int(state, "round"), ROUNDS);
    cJSON_Delete(state);

    /* The coordinator started twice, the second time resuming after the killed round. */
    p = fl_test_path(res, "logs/coordinator.log");
    cr_assert_eq(fl_test_count(p, "event=coordinator_start"), 2, "%s", p);
    char *log = fl_test_slurp(p);
    free(p);
    cr_assert_not_null(log);
    const char *resumed = strstr(log, "resumed_round=");
    cr_assert_not_null(resumed);
    resumed = strstr(resumed + 1, "resumed_round=");
    cr_assert_not_null(resumed, "the restarted coordinator did not say where it resumed");
    int rr = atoi(resumed + 14);
    cr_assert(rr >= KILL_AFTER && rr < ROUNDS, "resumed at round %d", rr);
    free(log);

    /* The adapters: every branch's final one is HQ's global one, and the host's own fedtl
     * finds the accuracy the coordinator recorded. */
    char *global = fl_test_path(res, "global.fta"), *base = fl_test_path(res, "base.ftm");
    for (int k = 0; k < 3; k++) {
        char name[64];
        snprintf(name, sizeof name, "branch-%02d.final.fta", k);
        char *f = fl_test_path(res, name);
        cr_assert(s_same_file(f, global), "%s differs from global.fta", name);
        free(f);
    }
    if (access(FMNIST "/t10k-images-idx3-ubyte.gz", R_OK) == 0) {
        double acc = s_eval_accuracy(base, global);
        cr_assert_float_eq(acc, last_acc, 1e-3, "fedtl eval: %.4f, the ledger: %.4f", acc,
                           last_acc);
    }
    free(global);
    free(base);
    free(res);
}
