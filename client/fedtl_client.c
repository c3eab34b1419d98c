/* fedtl-client: a branch of a fedtl federation. Options come from the command line and/or an
 * INI file (section [client], keys named like the long options); the command line wins
 * (client/fl_client_config holds the table). */
#include "fl_augment.h"
#include "fl_branch.h"
#include "fl_client_config.h"
#include "fl_error.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Set by the signal handler, read by the branch loop. */
static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

/* The config file, then the flags over it; the required options. 0, 1 (--help), 2. */
static int s_parse(int argc, char **argv, struct fl_client_config *o, bool *check_config)
{
    const struct fl_options_spec *spec = &fl_client_config_spec;
    struct fl_options_args args;
    if (fl_options_parse(spec, o, argc, argv, &args) != 0 ||
        (!args.help && fl_client_config_check(o) != 0)) {
        fprintf(stderr, "fedtl-client: %s\n", fl_error_msg());
        fl_options_usage(spec, stderr);
        return 2;
    }
    if (args.help) {
        fl_options_help(spec, o, stdout);
        return 1;
    }
    *check_config = args.check_config;
    return 0;
}

/* --check-config: the configuration as the INI file would hold it, then the branch's summary
 * as comments (the whole output reads back as a configuration file). */
static int s_print_check(const struct fl_client_config *o, const fl_branch_t *b)
{
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (!mem)
        return FL_ENOMEM;
    fl_branch_print(b, mem);
    if (fclose(mem) != 0) {
        free(text);
        return FL_ENOMEM;
    }
    fl_options_print(&fl_client_config_spec, o, stdout);
    for (char *line = text, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        printf("; %.*s\n", nl ? (int)(nl - line) : (int)strlen(line), line);
    }
    free(text);
    return 0;
}

int main(int argc, char **argv)
{
    struct fl_client_config o;
    fl_client_config_default(&o);
    bool check_config = false;
    int rc = s_parse(argc, argv, &o, &check_config);
    if (rc) {
        fl_client_config_free(&o);
        return rc == 1 ? 0 : 2;
    }
    fl_pool_t *pool = fl_pool_new(o.threads); /* the process's one pool */
    if (!pool) {
        fprintf(stderr, "fedtl-client: cannot start %d compute threads\n", o.threads);
        fl_client_config_free(&o);
        return 1;
    }
    struct fl_branch_config cfg = {
        .coordinator = o.coordinator,
        .coordinator_key = o.coordinator_key,
        .key = o.key,
        .data = o.data,
        .labels = o.labels,
        .table = fl_client_config_table(&o),
        .holdout = o.holdout,
        .cache_budget = o.cache_budget,
        .cache_dir = o.cache_dir,
        .out = o.out,
        .keep_updates = o.keep_updates,
        .http = o.http,
        .insecure = o.insecure,
        .heartbeat_ms = o.heartbeat_ms,
        .connect_timeout_s = o.connect_timeout_s,
        .progress = true,
        .pool = pool,
    };
    if (o.augment && fl_augment_parse(o.augment, &cfg.augment) != 0) { /* checked: never */
        fprintf(stderr, "fedtl-client: --augment %s\n", fl_error_msg());
        fl_pool_destroy(&pool);
        fl_client_config_free(&o);
        return 2;
    }
#ifdef FEDTL_TESTING
    struct fl_attack attack = {.kind = o.test_attack, .factor = o.test_attack_factor};
    cfg.attack = &attack;
#endif
    fl_branch_t *b = fl_branch_new(&cfg);
    if (!b) {
        fprintf(stderr, "fedtl-client: %s\n", fl_error_msg());
        fl_pool_destroy(&pool);
        fl_client_config_free(&o);
        return 1;
    }
    if (check_config) {
        rc = s_print_check(&o, b);
        fl_branch_destroy(&b);
        fl_pool_destroy(&pool);
        fl_client_config_free(&o);
        return rc ? 1 : 0;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal; /* no SA_RESTART: zmq_poll returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    rc = fl_branch_run(b, &s_stop);
    if (rc) {
        char msg[512];
        fl_log(FL_LOG_ERROR, "exit", "error=%s msg=%s", fl_strerror(rc),
               fl_log_str(fl_error_msg(), msg, sizeof msg));
        fprintf(stderr, "fedtl-client: %s\n", fl_error_msg());
    }
    fl_branch_destroy(&b);
    fl_pool_destroy(&pool);
    fl_client_config_free(&o);
    return rc ? 1 : 0;
}
