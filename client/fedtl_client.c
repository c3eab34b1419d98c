/* fedtl-client: a branch of a fedtl federation. Options come from the command line and/or an
 * INI file (section [client], keys named like the long options); the command line wins. */
#include "fl_branch.h"
#include "fl_error.h"
#include "fl_linalg.h"

#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* Everything the options set; strings are owned (strdup'd). */
struct s_opts {
    char *coordinator, *coordinator_key, *key, *data, *labels, *cache_dir, *out, *keep_updates;
    double holdout;        /* --holdout */
    bool insecure;         /* --insecure */
    int threads;           /* --threads, 0 = every core */
    int heartbeat_ms;      /* --heartbeat-ms, 0 = from Welcome */
    int connect_timeout_s; /* --connect-timeout */
    bool check_config;     /* --check-config */
};

/* Set by the signal handler, read by the branch loop. */
static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static int s_set_str(char **field, const char *value)
{
    free(*field);
    *field = strdup(value);
    return *field ? 0 : -1;
}

static int s_parse_int(const char *v, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return -1;
    *out = (int)x;
    return 0;
}

static int s_parse_bool(const char *v, bool *out)
{
    if (!strcasecmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") ||
        !strcasecmp(v, "on") || !*v)
        *out = true;
    else if (!strcasecmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") ||
             !strcasecmp(v, "off"))
        *out = false;
    else
        return -1;
    return 0;
}

/* Apply option `name` (long option name; '_' taken as '-') = value. Returns 0, or -1 after
 * printing what is wrong (origin names the file:line or "command line"). */
static int s_apply(struct s_opts *o, const char *name_in, const char *value, const char *origin)
{
    char name[64];
    snprintf(name, sizeof name, "%s", name_in);
    for (char *p = name; *p; p++)
        if (*p == '_')
            *p = '-';
    static const struct {
        const char *name;
        size_t off;
    } strs[] = {
        {"coordinator", offsetof(struct s_opts, coordinator)},
        {"coordinator-key", offsetof(struct s_opts, coordinator_key)},
        {"key", offsetof(struct s_opts, key)},
        {"data", offsetof(struct s_opts, data)},
        {"labels", offsetof(struct s_opts, labels)},
        {"cache-dir", offsetof(struct s_opts, cache_dir)},
        {"out", offsetof(struct s_opts, out)},
        {"keep-updates", offsetof(struct s_opts, keep_updates)},
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        if (strcmp(name, strs[i].name) != 0)
            continue;
        if (!*value) {
            fprintf(stderr, "fedtl-client: %s: --%s is empty\n", origin, name);
            return -1;
        }
        return s_set_str((char **)((char *)o + strs[i].off), value);
    }
    int bad = 0;
    if (!strcmp(name, "holdout")) {
        char *end;
        errno = 0;
        o->holdout = strtod(value, &end);
        bad = errno || end == value || *end || !(o->holdout >= 0.0 && o->holdout < 1.0);
    } else if (!strcmp(name, "insecure")) {
        bad = s_parse_bool(value, &o->insecure);
    } else if (!strcmp(name, "threads")) {
        bad = s_parse_int(value, 0, 4096, &o->threads);
    } else if (!strcmp(name, "heartbeat-ms")) {
        bad = s_parse_int(value, 0, 600000, &o->heartbeat_ms);
    } else if (!strcmp(name, "connect-timeout")) {
        bad = s_parse_int(value, 0, 86400 * 365, &o->connect_timeout_s);
    } else {
        fprintf(stderr, "fedtl-client: %s: unknown option '%s'\n", origin, name_in);
        return -1;
    }
    if (bad)
        fprintf(stderr, "fedtl-client: %s: bad value '%s' for --%s\n", origin, value, name);
    return bad ? -1 : 0;
}

struct s_ini_ctx {
    struct s_opts *o; /* options being filled */
    const char *path; /* the file, for messages */
    int failed;       /* an entry was wrong */
};

static int s_ini_entry(void *user, const char *section, const char *name, const char *value)
{
    struct s_ini_ctx *c = user;
    if (strcmp(section, "client") != 0)
        return 1; /* other programs' sections */
    char origin[600];
    snprintf(origin, sizeof origin, "%s [client] %s", c->path, name);
    if (s_apply(c->o, name, value ? value : "", origin) != 0)
        c->failed = 1;
    return 1;
}

static int s_load_ini(struct s_opts *o, const char *path)
{
    struct s_ini_ctx c = {o, path, 0};
    int rc = ini_parse(path, s_ini_entry, &c);
    if (rc < 0) {
        fprintf(stderr, "fedtl-client: %s: cannot read the config file\n", path);
        return -1;
    }
    if (rc > 0) {
        fprintf(stderr, "fedtl-client: %s:%d: syntax error\n", path, rc);
        return -1;
    }
    return c.failed ? -1 : 0;
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
static int s_parse(int argc, char **argv, struct s_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *path = NULL;
        if (!strcmp(argv[i], "--config") && i + 1 < argc)
            path = argv[i + 1];
        else if (!strncmp(argv[i], "--config=", 9))
            path = argv[i] + 9;
        if (path && s_load_ini(o, path) != 0)
            return 2;
    }
    int c, idx = 0;
    opterr = 1;
    while ((c = getopt_long(argc, argv, "h", s_long, &idx)) != -1) {
        switch (c) {
        case O_OPT:
            if (s_apply(o, s_long[idx].name, optarg ? optarg : "", "command line") != 0)
                return 2;
            break;
        case O_CONFIG:
            break;
        case O_CHECK:
            o->check_config = true;
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
    if (!o->coordinator || !o->coordinator_key || !o->key || !o->data) {
        fprintf(stderr,
                "fedtl-client: --coordinator, --coordinator-key, --key and --data are "
                "required\n%s",
                s_usage);
        return 2;
    }
    if (!o->cache_dir && s_set_str(&o->cache_dir, "./fedtl-cache") != 0)
        return 2;
    return 0;
}

static void s_opts_free(struct s_opts *o)
{
    free(o->coordinator);
    free(o->coordinator_key);
    free(o->key);
    free(o->data);
    free(o->labels);
    free(o->cache_dir);
    free(o->out);
    free(o->keep_updates);
}

int main(int argc, char **argv)
{
    struct s_opts o = {.holdout = 0.2, .connect_timeout_s = 30};
    int rc = s_parse(argc, argv, &o);
    if (rc) {
        s_opts_free(&o);
        return rc == 1 ? 0 : 2;
    }
    fl_set_threads(o.threads);
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
    };
    fl_branch_t *b = fl_branch_new(&cfg);
    if (!b) {
        fprintf(stderr, "fedtl-client: %s\n", fl_error_msg());
        s_opts_free(&o);
        return 1;
    }
    if (o.check_config) {
        fl_branch_print(b, stdout);
        fl_branch_destroy(&b);
        s_opts_free(&o);
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
    s_opts_free(&o);
    return rc ? 1 : 0;
}
