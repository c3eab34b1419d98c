/* fedtl-coordinator: the HQ daemon. Holds the pretrained base, enrols branches, runs the
 * rounds and keeps the global adapter. Foreground by default (systemd); --daemon detaches. */
#include "fl_allowlist.h"
#include "fl_coord.h"
#include "fl_coord_config.h"
#include "fl_data.h"
#include "fl_error.h"
#include "fl_keys.h"
#include "fl_modelfile.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    if (cfg->eval_data[0]) { /* images read as the base prepares them, as fl_global does */
        struct fl_dataset ds;
        struct fl_image_target image;
        fl_image_target_for_base(&image, &base.arch, &base.meta);
        struct fl_table_opts table;
        struct fl_data_opts dopts = {.image = &image,
                                     .table = fl_coord_config_eval_table(cfg, &table)};
        rc = fl_dataset_load_ex(&ds, cfg->eval_data, cfg->eval_labels[0] ? cfg->eval_labels : NULL,
                                &dopts, NULL);
        fl_dataset_free(&ds);
    }
    fl_base_close(&base);
    return rc;
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
    const struct fl_options_spec *spec = &fl_coord_config_spec;
    struct fl_coord_config cfg;
    fl_coord_config_default(&cfg);
    struct fl_options_args args;
    if (fl_options_parse(spec, &cfg, argc, argv, &args) != 0) {
        fprintf(stderr, "fedtl-coordinator: %s\n", fl_error_msg());
        fl_options_usage(spec, stderr);
        return 2;
    }
    if (args.help) {
        fl_options_help(spec, &cfg, stdout);
        return 0;
    }
    bool check = args.check_config, daemonize = args.actions & FL_COORD_ACTION_DAEMON;
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
    /* The process's one pool, made after daemon() (threads do not survive a fork). */
    char reason[1100]; /* messages name files and settings: escaped for the log */
    fl_pool_t *pool = fl_pool_new(cfg.threads);
    fl_coord_t *c = pool ? fl_coord_new(&cfg, pool) : NULL;
    if (!c) {
        fl_log(FL_LOG_ERROR, "start_failed", "reason=%s",
               fl_log_str(pool ? fl_error_msg() : "cannot start the compute threads", reason,
                          sizeof reason));
        fl_pool_destroy(&pool);
        return 1;
    }
    int rc = fl_coord_run(c, &s_stop, &s_reload);
    if (rc)
        fl_log(FL_LOG_ERROR, "federation_failed", "reason=%s",
               fl_log_str(fl_error_msg(), reason, sizeof reason));
    fl_coord_destroy(&c);
    fl_pool_destroy(&pool);
    return rc ? 1 : 0;
}
