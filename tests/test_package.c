/* fedtl's Debian package, as an administrator meets it: packaging/test-install.sh builds
 * fedtl_VERSION_amd64.deb (scripts/package.sh, CPack), makes a Docker engine and the
 * debian:bookworm image available (scripts/compose.sh engine) and, in a fresh container,
 * installs it with `apt-get install ./fedtl_*.deb`, checks the user fedtl, /var/lib/fedtl's
 * owner and modes, the man pages, the conffiles and `systemd-analyze verify` on the units, then
 * runs a federation of the packaged coordinator and two packaged branches from the example
 * configurations and the units' ExecStart lines (packaging/container-check.sh).
 *
 * This test then reads the package's control fields itself, and the ledger, state and logs the
 * container copied out. Skipped, saying why, where no engine can be had (exit 3) and under the
 * sanitizers (the package is a release build either way). */
#include <criterion/criterion.h>

#include "fl_testutil.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TEST_INSTALL FEDTL_SRC_DIR "/packaging/test-install.sh"
#define PACKAGE_SH   FEDTL_SRC_DIR "/scripts/package.sh"
#define ROUNDS       3

static char *s_dir;

static void s_setup(void)
{
    s_dir = fl_test_tmpdir("package");
    cr_assert_not_null(s_dir);
}

static void s_teardown(void)
{
    fl_test_rmtree(s_dir);
    free(s_dir);
    s_dir = NULL;
}

TestSuite(package, .init = s_setup, .fini = s_teardown, .timeout = 880);

/* `dpkg-deb -f DEB FIELD`, malloc'd, trailing newline cut; fails the test when absent. */
static char *s_field(const char *deb, const char *field)
{
    char cmd[1024], *out = NULL;
    snprintf(cmd, sizeof cmd, "dpkg-deb -f '%s' %s", deb, field);
    cr_assert_eq(fl_test_run(cmd, &out), 0, "dpkg-deb -f %s:\n%s", field, out ? out : "");
    cr_assert_not_null(out);
    out[strcspn(out, "\n")] = '\0';
    return out;
}

static void s_has_member(const char *deb, const char *path)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "dpkg-deb -c '%s' | grep -q ' \\.%s$'", deb, path);
    cr_assert_eq(fl_test_run(cmd, NULL), 0, "%s is not in the package", path);
}

Test(package, installs_in_a_clean_container_and_runs_a_federation)
{
#if defined(__SANITIZE_ADDRESS__)
    cr_skip_test("the package is a release build without sanitizers: tested in the plain build "
                 "(scripts/test.sh)");
#endif
    /* The package, built the way scripts/package.sh builds it, in this build's own directory. */
    char *pkg = fl_test_path(s_dir, "pkg"), cmd[2048], *out = NULL;
    snprintf(cmd, sizeof cmd, "FEDTL_DEB_BUILD='%s/package-build' '%s' '%s' 2>'%s/package.log'",
             FEDTL_BIN_DIR, PACKAGE_SH, pkg, s_dir);
    int rc = fl_test_run(cmd, &out);
    if (rc != 0) {
        char *p = fl_test_path(s_dir, "package.log"), *log = fl_test_slurp(p);
        cr_assert_fail("scripts/package.sh failed (%d):\n%s", rc, log ? log : "");
    }
    cr_assert_not_null(out);
    out[strcspn(out, "\n")] = '\0';
    char *deb = out;
    cr_assert(strstr(deb, "/fedtl_") && strstr(deb, "_amd64.deb"), "package named %s", deb);
    cr_assert_eq(access(deb, R_OK), 0, "%s", deb);

    /* Its control fields and members, from the host. */
    char *f = s_field(deb, "Package");
    cr_assert_str_eq(f, "fedtl");
    free(f);
    f = s_field(deb, "Architecture");
    cr_assert_str_eq(f, "amd64");
    free(f);
    f = s_field(deb, "Depends");
    const char *libs[] = {"libzmq5",     "libprotobuf-c1", "libopenblas0", "libsodium23",
                          "zlib1g",      "libinih1",       "libcjson1",    "libmicrohttpd12",
                          "libpng16-16", "libjpeg62-turbo"};
    for (size_t k = 0; k < sizeof libs / sizeof libs[0]; k++)
        cr_assert(strstr(f, libs[k]), "Depends lacks %s: %s", libs[k], f);
    free(f);
    const char *members[] = {"/usr/bin/fedtl",
                             "/usr/bin/fedtl-coordinator",
                             "/usr/bin/fedtl-client",
                             "/usr/share/man/man1/fedtl-coordinator.1.gz",
                             "/usr/lib/systemd/system/fedtl-coordinator.service",
                             "/usr/lib/systemd/system/fedtl-client@.service",
                             "/etc/fedtl/coordinator.ini.example",
                             "/etc/fedtl/client.ini.example"};
    for (size_t k = 0; k < sizeof members / sizeof members[0]; k++)
        s_has_member(deb, members[k]);

    /* Installed and run in a clean debian:bookworm container, or a clear reason to skip. */
    char *res = fl_test_path(s_dir, "results");
    char *log = NULL;
    snprintf(cmd, sizeof cmd, "FEDTL_DEB='%s' ROUNDS=%d '%s' '%s'", deb, ROUNDS, TEST_INSTALL, res);
    rc = fl_test_run(cmd, &log);
    if (rc == 3) {
        cr_log_warn("package skipped: %s", log ? log : "");
        cr_skip_test("no Docker engine can be had here (scripts/compose.sh engine exits 3): %s",
                     log ? log : "");
    }
    cr_assert_eq(rc, 0, "packaging/test-install.sh failed (%d):\n%s", rc, log ? log : "");
    const char *checks[] = {"check: installed fedtl",
                            "check: programs in /usr/bin run, every library found",
                            "check: system user fedtl",
                            "/var/lib/fedtl fedtl:fedtl 0750, keys 0700",
                            "check: man pages in /usr/share/man/man1",
                            "check: man -w finds fedtl",
                            "check: systemd-analyze verify: the units are clean",
                            "check: example configurations in /etc/fedtl, conffiles",
                            "check: configurations adapted from the examples pass --check-config",
                            "check: federation done"};
    for (size_t k = 0; k < sizeof checks / sizeof checks[0]; k++)
        cr_assert(strstr(log, checks[k]), "no \"%s\" in:\n%s", checks[k], log);
    free(log);

    /* The ledger: rounds 1..ROUNDS, each aggregated from both branches, evaluated at HQ. */
    char *p = fl_test_path(res, "rounds.jsonl");
    cJSON *ledger = fl_test_jsonl(p);
    cr_assert_not_null(ledger, "%s missing or not JSON lines", p);
    free(p);
    cr_assert_eq(cJSON_GetArraySize(ledger), ROUNDS, "the ledger has %d lines",
                 cJSON_GetArraySize(ledger));
    for (int r = 1; r <= ROUNDS; r++) {
        const cJSON *l = cJSON_GetArrayItem(ledger, r - 1);
        const cJSON *round = cJSON_GetObjectItem(l, "round");
        cr_assert(cJSON_IsNumber(round) && round->valueint == r, "line %d is not round %d", r, r);
        cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(l, "aggregated")), "round %d not aggregated", r);
        int n = cJSON_GetArraySize(cJSON_GetObjectItem(l, "participants"));
        cr_assert_eq(n, 2, "round %d: %d participants, not both branches", r, n);
        const cJSON *acc = cJSON_GetObjectItem(l, "server_eval_accuracy");
        cr_assert(cJSON_IsNumber(acc) && acc->valuedouble > 0.2,
                  "round %d: server accuracy missing or at chance", r);
    }
    cJSON_Delete(ledger);
    p = fl_test_path(res, "state.json");
    cJSON *state = fl_test_json(p);
    cr_assert_not_null(state, "%s missing or not JSON", p);
    free(p);
    const cJSON *fed = cJSON_GetObjectItem(state, "federation");
    cr_assert(cJSON_IsString(fed) && !strcmp(fed->valuestring, "pkgtest"),
              "state.json's federation is not the one set in /etc/fedtl/coordinator.ini");
    cJSON_Delete(state);

    /* The coordinator ran from the installed configuration, started once. */
    p = fl_test_path(res, "coordinator.log");
    cr_assert_eq(fl_test_count(p, "event=coordinator_start"), 1, "%s", p);
    free(p);
    free(res);
    free(deb);
    free(pkg);
}
