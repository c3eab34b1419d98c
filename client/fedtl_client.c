/* fedtl-client: a branch of a fedtl federation. Options come from the command line and/or an
 * INI file (section [client], keys named like the long options); the command line wins. */
#include "fl_branch.h"
#include "fl_client_config.h"
#include "fl_error.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char s_usage[] =
    "usage: fedtl-client --coordinator ENDPOINT --coordinator-key coord.pub --key branch.key\n"
    "                    --data D [--labels L] [--holdout F] [--cache-dir DIR] [--out FILE]\n"
    "                    [--keep-updates DIR]\n"
    "                    [--insecure] [--threads N] [--heartbeat-ms MS] [--connect-timeout S]\n"
    "                    [--config FILE] [--check-config] [--help]\n"
    "Join a fedtl federation as a branch: register with the coordinator (e.g.\n"
    "tcp://127.0.0.1:7777, CURVE with its key pinned from coord.pub), fetch and verify the base\n"
    "model into the cache, train each round's adapter on the local data D (CSV, or IDX images\n"
    "with labels L) and send it sealed and signed; save the final adapter to --out.\n"
    "  --holdout F          share of local records held out for evaluation (default 0.2)\n"
    "  --cache-dir DIR      base model cache (default ./fedtl-cache)\n"
    "  --out FILE           final adapter (default CACHE/final.fta)\n"
    "  --keep-updates DIR   also keep each round's own adapter as DIR/round-N.fta\n"
    "  --insecure           plaintext, no CURVE (the coordinator must be --insecure too)\n"
    "  --threads N          training threads (default: every core)\n"
    "  --heartbeat-ms MS    heartbeat interval (default: the coordinator's)\n"
    "  --connect-timeout S  give up when the coordinator does not answer for S seconds\n"
    "                       (default 30; 0 waits forever)\n"
    "  --config FILE        read options from FILE, section [client], keys like the long\n"
    "                       options (coordinator-key or coordinator_key); flags override it\n"
    "  --check-config       load keys and data, print a summary and exit without connecting\n"
    "Exit status: 0 final adapter saved or stopped by a signal, 1 error, 2 bad usage.\n";

/* Set by the signal handler, read by the branch loop. */
static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

enum { O_HELP = 'h', O_CONFIG = 256, O_CHECK, O_OPT };

static const struct option s_long[] = {
    {"coordinator", required_argument, 0, O_OPT},
    {"coordinator-key", required_argument, 0, O_OPT},
    {"key", required_argument, 0, O_OPT},
    {"data", required_argument, 0, O_OPT},
    {"labels", required_argument, 0, O_OPT},
    {"holdout", required_argument, 0, O_OPT},
    {"cache-dir", required_argument, 0, O_OPT},
    {"out", required_argument, 0, O_OPT},
    {"keep-updates", required_argument, 0, O_OPT},
    {"insecure", no_argument, 0, O_OPT},
    {"threads", required_argument, 0, O_OPT},
    {"heartbeat-ms", required_argument, 0, O_OPT},
    {"connect-timeout", required_argument, 0, O_OPT},
    {"config", required_argument, 0, O_CONFIG},
    {"check-config", no_argument, 0, O_CHECK},
    {"help", no_argument, 0, O_HELP},
    {0, 0, 0, 0},
};

/* The config file first (wherever --config is), then the flags over it. 0, 1 (--help), 2. */
static int s_parse(int argc, char **argv, struct fl_client_config *o, bool *check_config)
{
    for (int i = 1; i < argc; i++) {
        const char *path = NULL;
        if (!strcmp(argv[i], "--config") && i + 1 < argc)
            path = argv[i + 1];
        else if (!strncmp(argv[i], "--config=", 9))
            path = argv[i] + 9;
        if (path && fl_client_config_load(o, path) != 0) {
            fprintf(stderr, "fedtl-client: %s\n", fl_error_msg());
            return 2;
        }
    }
    int c, idx = 0;
    opterr = 1;
    while ((c = getopt_long(argc, argv, "h", s_long, &idx)) != -1) {
        switch (c) {
        case O_OPT:
            if (fl_client_config_set(o, s_long[idx].name, optarg ? optarg : "", "command line")) {
                fprintf(stderr, "fedtl-client: %s\n", fl_error_msg());
                return 2;
            }
            break;
        case O_CONFIG:
            break;
        case O_CHECK:
            *check_config = true;
            break;
        case O_HELP:
            fputs(s_usage, stdout);
            return 1;
        default:
            fputs(s_usage, stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "fedtl-client: unexpected argument '%s'\n%s", argv[optind], s_usage);
        return 2;
    }
    if (fl_client_config_check(o) != 0) {
        fprintf(stderr, "fedtl-client: %s\n%s", fl_error_msg(), s_usage);
        return 2;
    }
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
        .holdout = o.holdout,
        .cache_dir = o.cache_dir,
        .out = o.out,
        .keep_updates = o.keep_updates,
        .insecure = o.insecure,
        .heartbeat_ms = o.heartbeat_ms,
        .connect_timeout_s = o.connect_timeout_s,
        .progress = true,
        .pool = pool,
    };
    fl_branch_t *b = fl_branch_new(&cfg);
    if (!b) {
        fprintf(stderr, "fedtl-client: %s\n", fl_error_msg());
        fl_pool_destroy(&pool);
        fl_client_config_free(&o);
        return 1;
    }
    if (check_config) {
        fl_branch_print(b, stdout);
        fl_branch_destroy(&b);
        fl_pool_destroy(&pool);
        fl_client_config_free(&o);
        return 0;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal; /* no SA_RESTART: zmq_poll returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    rc = fl_branch_run(b, &s_stop);
    if (rc) {
        fl_log(FL_LOG_ERROR, "exit", "error=%s msg=\"%s\"", fl_strerror(rc), fl_error_msg());
        fprintf(stderr, "fedtl-client: %s\n", fl_error_msg());
    }
    fl_branch_destroy(&b);
    fl_pool_destroy(&pool);
    fl_client_config_free(&o);
    return rc ? 1 : 0;
}
