/* fl_client_config: fedtl-client's options, one table for the command line and the INI file. */
#include "fl_client_config.h"
#ifdef FEDTL_TESTING
#include "fl_attack.h"
#endif
#include "fl_augment.h"
#include "fl_error.h"
#include "fl_http.h"

#include <stddef.h>
#include <string.h>

#define C(f)        FL_OPTION_FIELD(struct fl_client_config, f)
#define TEXT        .type = FL_OPTION_STRING, .store = FL_OPTION_OWNED
#define PATH        .type = FL_OPTION_PATH, .store = FL_OPTION_OWNED
#define INT(lo, hi) .type = FL_OPTION_INT, .range.i = {lo, hi}

#ifdef FEDTL_TESTING
static const struct fl_option_choice s_attacks[] = {{"none", FL_ATTACK_NONE},
                                                    {"scale", FL_ATTACK_SCALE},
                                                    {"signflip", FL_ATTACK_SIGNFLIP},
                                                    {"noise", FL_ATTACK_NOISE},
                                                    {"nan", FL_ATTACK_NAN},
                                                    {"labelflip", FL_ATTACK_LABELFLIP},
                                                    {NULL, 0}};
#endif

static int s_missing(const char *value)
{
    enum fl_missing m;
    return fl_missing_parse(value, &m);
}

static const struct fl_option s_options[] = {
    {"coordinator", TEXT, C(coordinator), .flags = FL_OPTION_REQUIRED, .metavar = "ENDPOINT",
     .group = "Federation", .help = "the coordinator, e.g. tcp://hq.example:7777"},
    {"coordinator_key", PATH, C(coordinator_key), .flags = FL_OPTION_REQUIRED, .metavar = "FILE",
     .help = "the coordinator's .pub (pinned)"},
    {"key", PATH, C(key), .flags = FL_OPTION_REQUIRED, .metavar = "FILE",
     .help = "this branch's .key"},
    {"insecure", .type = FL_OPTION_BOOL, C(insecure), .def = "false",
     .help = "plaintext, no CurveZMQ (the coordinator must be --insecure too)"},
    {"heartbeat_ms", INT(0, 600000), C(heartbeat_ms), .def = "0", .metavar = "MS",
     .help = "heartbeat interval (0: the coordinator's)"},
    {"connect_timeout", INT(0, 86400 * 365), C(connect_timeout_s), .def = "30",
     .metavar = "SECONDS",
     .help = "give up when the coordinator does not answer this long (0: wait forever)"},
    {"http", TEXT, C(http), .validate = fl_http_check_address, .metavar = "[HOST:]PORT",
     .help = "serve /metrics (Prometheus) here, e.g. 127.0.0.1:9465 (unset: off; a bare PORT "
             "listens on the loopback)"},
    {"data", PATH, C(data), .flags = FL_OPTION_REQUIRED, .metavar = "FILE", .group = "Local data",
     .help = "local data: CSV (label, features...), or IDX images"},
    {"labels", PATH, C(labels), .metavar = "FILE", .help = "the IDX images' labels"},
    {"label_column", TEXT, C(label_column), .metavar = "NAME",
     .help = "a CSV with a header: the label column (default: the first)"},
    {"columns", TEXT, C(columns), .metavar = "A,B,...",
     .help = "a CSV with a header: the feature columns, in this order (default: the rest)"},
    {"missing", TEXT, C(missing), .validate = s_missing, .metavar = "error|mean|drop",
     .help = "a CSV with a header: a missing value (empty, NA, NaN, null, ?) is an error "
             "(default), takes its column's mean, or drops its row"},
    {"holdout", .type = FL_OPTION_DOUBLE, .range.d = {0, 0.5}, C(holdout), .def = "0.2",
     .metavar = "F",
     .help = "share of the local records held out for evaluation (at most half: the "
             "coordinator refuses more held-out than training records)"},
    {"augment", TEXT, C(augment), .validate = fl_augment_validate, .metavar = "crop,flip",
     .help = "training augmentation of image records: random crop with 4 px zero padding, "
             "horizontal flip, seeded by each round's seed (unset: none; never at evaluation)"},
    {"cache_budget", .type = FL_OPTION_SIZE, .range.u = {1, (unsigned long long)1 << 50},
     C(cache_budget), .def = "1G", .metavar = "SIZE",
     .help = "decoded image records held in memory (512M, 1G, ...); a larger set is decoded "
             "again from its files each epoch"},
    {"threads", INT(0, 4096), C(threads), .def = "0", .help = "training threads (0: every core)"},
    {"cache_dir", PATH, C(cache_dir), .metavar = "DIR", .group = "Files",
     .help = "base model cache (unset: ./fedtl-cache)"},
    {"out", PATH, C(out), .metavar = "FILE", .help = "final adapter (unset: CACHE_DIR/final.fta)"},
    {"keep_updates", PATH, C(keep_updates), .metavar = "DIR",
     .help = "also keep each round's own adapter as DIR/round-N.fta"},
#ifdef FEDTL_TESTING
    /* A malicious branch (client/fl_attack.h), in builds configured with -DFEDTL_TESTING=ON only:
     * a default build has neither the options nor the code. */
    {"test_attack", .type = FL_OPTION_CHOICE, .choices = s_attacks, C(test_attack), .def = "none",
     .where = FL_OPTION_FLAG_ONLY, .metavar = "KIND",
     .group = "Testing (FEDTL_TESTING builds only)",
     .help = "send malicious updates: scale, signflip, noise, nan or labelflip (none: honest)"},
    {"test_attack_factor", .type = FL_OPTION_DOUBLE, .range.d = {0, 1e9}, C(test_attack_factor),
     .def = "0", .where = FL_OPTION_FLAG_ONLY, .metavar = "F",
     .help = "the attack's F (0: its default, scale 100, signflip 1, noise 1)"},
#endif
};

static const char *const s_sections[] = {"client", NULL};
static const char *const s_foreign[] = {"coordinator", "federation", NULL};

const struct fl_options_spec fl_client_config_spec = {
    .program = "fedtl-client",
    .about = "Join a fedtl federation as a branch: register with the coordinator (CURVE, with its\n"
             "key pinned from --coordinator-key), fetch and verify the base model into the cache,\n"
             "train each round's adapter on the local data and send it sealed and signed; save\n"
             "the final adapter to --out. Every option is a flag and a key of the INI file's\n"
             "[client] section (coordinator_key or coordinator-key alike); flags override it.\n",
    .epilogue =
        "--check-config loads the keys and the data, prints the configuration and a summary\n"
        "and exits without connecting. Booleans read true/false, yes/no, on/off or 1/0.\n"
        "Exit status: 0 final adapter saved or stopped by a signal, 1 error, 2 bad usage.\n",
    .options = s_options,
    .noptions = sizeof s_options / sizeof s_options[0],
    .sections = s_sections,
    .foreign = s_foreign,
    .check_config = true,
};

void fl_client_config_default(struct fl_client_config *c)
{
    memset(c, 0, sizeof *c);
    fl_options_reset(&fl_client_config_spec, c);
}

int fl_client_config_set(struct fl_client_config *c, const char *name, const char *value,
                         const char *origin)
{
    return fl_options_set(&fl_client_config_spec, c, name, value, origin);
}

int fl_client_config_load(struct fl_client_config *c, const char *path)
{
    return fl_options_load(&fl_client_config_spec, c, path);
}

int fl_client_config_check(struct fl_client_config *c)
{
    int rc = fl_options_check_required(&fl_client_config_spec, c);
    if (rc)
        return rc;
    if (!c->cache_dir && !(c->cache_dir = strdup("./fedtl-cache")))
        return fl_fail(FL_ENOMEM, "out of memory");
    c->table = (struct fl_table_opts){.label_column = c->label_column, .columns = c->columns};
    if (c->missing && (rc = fl_missing_parse(c->missing, &c->table.missing)) != 0)
        return rc;
    return 0;
}

const struct fl_table_opts *fl_client_config_table(const struct fl_client_config *c)
{
    return c->label_column || c->columns || c->missing ? &c->table : NULL;
}

void fl_client_config_free(struct fl_client_config *c)
{
    fl_options_free(&fl_client_config_spec, c);
}
