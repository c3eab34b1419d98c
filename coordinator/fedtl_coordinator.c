/* fedtl-coordinator: the HQ daemon. Holds the pretrained base, enrols branches, runs the
 * rounds and keeps the global adapter. Foreground by default (systemd); --daemon detaches. */
#include "fl_coord.h"
#include "fl_data.h"
#include "fl_error.h"
#include "fl_keys.h"
#include "fl_modelfile.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char s_usage[] =
    "usage: fedtl-coordinator [--config FILE] [--SETTING VALUE ...] [--check-config]\n"
    "                         [--daemon] [--insecure] [--exit-when-done]\n"
    "Runs the federation. Every setting of the [coordinator] section of the INI file can be\n"
    "given as a flag (flags win), e.g.:\n"
    "  --federation NAME     --endpoint tcp://0.0.0.0:7777  --key coord.key  --allow DIR|FILE\n"
    "  --base base.ftm       --state-dir DIR   --rounds N   --clients-per-round N\n"
    "  --fraction F          --min-clients N   --min-start N --deadline SECONDS\n"
    "  --start-grace SECONDS (with min-start branches ready, wait this long for the rest)\n"
    "  --round-retries N     --epochs N  --batch N  --lr LR  --method lora|ffa-lora|head|bitfit\n"
    "  --rank R  --alpha A   --targets L,L  --classes C  --seed S  --heartbeat-ms MS\n"
    "  --eval-data D [--eval-labels L]  --strategy fedavg  --control ENDPOINT\n"
    "  --threads N           threads that open, check and average updates and run server\n"
    "                        evaluation (default: every core)\n"
    "--check-config checks the settings and opens every file they name (key, allow-list, base,\n"
    "evaluation data), prints the effective configuration and exits.\n"
    "Signals: SIGTERM/SIGINT stop cleanly (state is saved after every round); SIGHUP reloads\n"
    "the allow-list.\n";

static volatile sig_atomic_t s_stop, s_reload;

/* --check-config: open every file the configuration names, as start-up would. */
static int s_check_files(const struct fl_coord_config *cfg)
{
    struct fl_identity *id = fl_identity_load(cfg->key);
    if (!id)
        return FL_EINVAL;
    fl_identity_destroy(&id);
    fl_allowlist_t *allow = fl_allowlist_load(cfg->allow);
    if (!allow)
        return FL_EINVAL;
    fl_allowlist_destroy(&allow);
    struct fl_base_file base;
    int rc = fl_base_read(cfg->base, &base);
    if (rc)
        return rc;
    fl_base_close(&base);
    if (cfg->eval_data[0]) {
        struct fl_dataset ds;
        rc = fl_dataset_load(&ds, cfg->eval_data, cfg->eval_labels[0] ? cfg->eval_labels : NULL);
        if (rc)
            return rc;
        fl_dataset_free(&ds);
    }
    return 0;
}

static void s_on_signal(int sig)
{
    if (sig == SIGHUP)
        s_reload = 1;
    else
        s_stop = 1;
}

int main(int argc, char **argv)
{
    struct fl_coord_config cfg;
    fl_coord_config_default(&cfg);
    /* Every setting is a flag: build the option table from the argv itself. */
    const char *config = NULL;
    bool check = false, daemonize = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(s_usage, stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--config") && i + 1 < argc)
            config = argv[i + 1];
    }
    if (config && fl_coord_config_load(&cfg, config) != 0) {
        fprintf(stderr, "fedtl-coordinator: %s\n", fl_error_msg());
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "fedtl-coordinator: unexpected argument '%s'\n%s", a, s_usage);
            return 2;
        }
        a += 2;
        if (!strcmp(a, "check-config")) {
            check = true;
        } else if (!strcmp(a, "daemon")) {
            daemonize = true;
        } else if (!strcmp(a, "insecure") || !strcmp(a, "exit-when-done")) {
            fl_coord_config_set(&cfg, a, "true");
        } else if (i + 1 >= argc) {
            fprintf(stderr, "fedtl-coordinator: --%s needs a value\n", a);
            return 2;
        } else if (!strcmp(a, "config")) {
            i++;
        } else if (fl_coord_config_set(&cfg, a, argv[++i]) != 0) {
            fprintf(stderr, "fedtl-coordinator: --%s\n", fl_error_msg());
            return 2;
        }
    }
    if (fl_coord_config_check(&cfg) != 0) {
        fprintf(stderr, "fedtl-coordinator: %s\n", fl_error_msg());
        return 2;
    }
    if (check) {
        if (s_check_files(&cfg) != 0) {
            fprintf(stderr, "fedtl-coordinator: %s\n", fl_error_msg());
            return 1;
        }
        fl_coord_config_print(&cfg, stdout);
        return 0;
    }
    if (daemonize && daemon(1, 1) != 0) {
        perror("fedtl-coordinator: daemon");
        return 1;
    }
    struct sigaction sa = {0};
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    char reason[1100]; /* messages name files and settings: escaped for the log */
    fl_coord_t *c = fl_coord_new(&cfg);
    if (!c) {
        fl_log(FL_LOG_ERROR, "start_failed", "reason=%s",
               fl_log_str(fl_error_msg(), reason, sizeof reason));
        return 1;
    }
    int rc = fl_coord_run(c, &s_stop, &s_reload);
    if (rc)
        fl_log(FL_LOG_ERROR, "federation_failed", "reason=%s",
               fl_log_str(fl_error_msg(), reason, sizeof reason));
    fl_coord_destroy(&c);
    return rc ? 1 : 0;
}
