/* fl_coord_config: the coordinator's configuration, one option table for its flags, its INI
 * file (inih), --help and --check-config. */
#include "fl_coord_config.h"
#include "fl_arch.h"
#include "fl_data.h"
#include "fl_error.h"
#include "fl_http.h"
#include "fl_method.h"

#include <stddef.h>
#include <string.h>

#define C(f)         FL_OPTION_FIELD(struct fl_coord_config, f)
#define TEXT         .type = FL_OPTION_STRING, .store = FL_OPTION_CHARS
#define PATH         .type = FL_OPTION_PATH, .store = FL_OPTION_CHARS
#define INT(lo, hi)  .type = FL_OPTION_INT, .range.i = {lo, hi}
#define REAL(lo, hi) .type = FL_OPTION_DOUBLE, .range.d = {lo, hi}

/* The federation name goes into JSON files, log lines and every branch's signatures: any text
 * (quotes, newlines and all: every writer escapes it), but UTF-8. */
static int s_utf8_text(const char *value)
{
    return fl_utf8_valid(value) ? 0 : fl_fail(FL_EINVAL, "not UTF-8 text");
}

static const struct fl_option s_options[] = {
    /* Federation */
    {"federation", TEXT, C(federation), .flags = FL_OPTION_ANY_TEXT, .validate = s_utf8_text,
     .def = "fedtl", .metavar = "NAME", .group = "Federation",
     .help = "federation name, bound into signatures (any UTF-8 text)"},
    {"endpoint", TEXT, C(endpoint), .def = "tcp://0.0.0.0:7777", .metavar = "ENDPOINT",
     .help = "where branches connect (ZeroMQ ROUTER endpoint)"},
    {"key", PATH, C(key), .flags = FL_OPTION_REQUIRED, .metavar = "FILE",
     .help = "the coordinator's .key (needed with --insecure too: updates are sealed to it)"},
    {"allow", PATH, C(allow), .flags = FL_OPTION_REQUIRED, .metavar = "DIR|FILE",
     .help = "allow-list: a directory of branches' .pub files, or one file"},
    {"base", PATH, C(base), .flags = FL_OPTION_REQUIRED, .metavar = "FILE",
     .help = "the pretrained base (.ftm)"},
    {"state_dir", PATH, C(state_dir), .def = "fedtl-state", .metavar = "DIR",
     .help = "state, ledger and control socket"},
    {"control", TEXT, C(control), .metavar = "ENDPOINT",
     .help = "status socket (empty: ipc://STATE_DIR/control.sock)"},
    {"http", TEXT, C(http), .validate = fl_http_check_address, .metavar = "[HOST:]PORT",
     .help = "serve /metrics (Prometheus) and a status page here, e.g. 127.0.0.1:9464 (empty: "
             "off; a bare PORT listens on the loopback)"},
    {"eval_data", PATH, C(eval_data), .metavar = "FILE",
     .help = "server-side evaluation data (CSV, or IDX images)"},
    {"eval_labels", PATH, C(eval_labels), .metavar = "FILE",
     .help = "the evaluation data's IDX labels"},
    /* Rounds */
    {"rounds", INT(1, 1000000), C(rounds), .def = "10", .group = "Rounds", .help = "rounds to run"},
    {"clients_per_round", INT(0, 1000000), C(clients_per_round), .def = "0",
     .help = "branches selected per round (0: --fraction of the eligible)"},
    {"fraction", REAL(0, 1), C(fraction), .def = "1", .metavar = "F",
     .help = "fraction of the eligible branches selected per round"},
    {"min_clients", INT(1, 1000000), C(min_clients), .def = "1",
     .help = "accepted updates needed to aggregate"},
    {"min_start", INT(1, 1000000), C(min_start), .def = "1",
     .help = "eligible branches needed to start a round"},
    {"start_grace", REAL(0, 1e6), C(start_grace_s), .def = "0", .metavar = "SECONDS",
     .help = "with min_start branches ready, wait this long for the other enrolled"},
    {"deadline", REAL(0.1, 1e6), C(deadline_s), .def = "120", .metavar = "SECONDS",
     .help = "round deadline"},
    {"round_retries", INT(0, 1000), C(round_retries), .def = "3",
     .help = "retries of a round that fell short of min_clients"},
    {"strategy", TEXT, C(strategy), .def = "fedavg", .metavar = "NAME",
     .help = "aggregation strategy"},
    {"seed", .type = FL_OPTION_UINT, .range.u = {0, UINT64_MAX}, C(seed), .def = "1",
     .help = "seed of the adapter's initialisation, the selection and the shuffling"},
    /* Admission of updates */
    {"max_samples", .type = FL_OPTION_UINT, .range.u = {1, UINT64_MAX}, C(max_samples),
     .def = "1000000", .group = "Admission of updates", .metavar = "N",
     .help = "most weight one update carries: a larger sample count is cut to this"},
    {"max_samples_ratio", REAL(0, 1e9), C(max_samples_ratio), .def = "10", .metavar = "R",
     .help = "and at most R times the median count the round's branches declared (0: off)"},
    {"max_update_norm", REAL(0, 1e30), C(max_update_norm), .def = "100", .metavar = "L2",
     .help = "reject an update farther than this from the global adapter (0: no bound)"},
    /* Local training */
    {"epochs", INT(1, FL_METHOD_EPOCHS_MAX), C(epochs), .def = "2",
     .group = "Local training (sent to the branches)", .help = "local epochs per round"},
    {"batch", INT(1, 1 << 16), C(batch), .def = "32", .help = "local batch size"},
    {"lr", REAL(0, FL_METHOD_LR_MAX), C(lr), .def = "0", .metavar = "LR",
     .help = "local learning rate (0: the method's)"},
    /* Adapter */
    {"method", .type = FL_OPTION_CHOICE, .store = FL_OPTION_CHARS, C(method),
     .choices = fl_method_choices, .def = "lora", .group = "Adapter", .help = "adapter method"},
    {"rank", INT(0, FL_METHOD_RANK_MAX), C(rank), .def = "0",
     .help = "LoRA rank (0: the method's: 4 for lora, 16 for ffa-lora)"},
    {"alpha", REAL(0, FL_METHOD_ALPHA_MAX), C(alpha), .def = "0", .metavar = "A",
     .help = "LoRA alpha (0: 2 * rank)"},
    {"targets", TEXT, C(targets), .metavar = "LAYER,...",
     .help = "adapted layers, or graph nodes (empty: the architecture's for the method)"},
    {"classes", TEXT, C(classes), .metavar = "C",
     .help = "classes of the new head, e.g. 5-9 or 0,3,7 (empty: the base's)"},
    /* Service */
    {"heartbeat_ms", INT(10, 600000), C(heartbeat_ms), .def = "1000", .metavar = "MS",
     .group = "Service", .help = "branch heartbeat interval"},
    {"chunk_size", .type = FL_OPTION_UINT, .range.u = {4096, 4 << 20}, C(chunk_size),
     .def = "262144", .metavar = "BYTES", .help = "base download chunk"},
    {"threads", INT(0, 1024), C(threads), .def = "0",
     .help = "threads that open, check and average updates and run server evaluation "
             "(0: every core)"},
    {"insecure", .type = FL_OPTION_BOOL, C(insecure), .def = "false",
     .help = "plaintext transport, no CurveZMQ (the branches must be --insecure too)"},
    {"exit_when_done", .type = FL_OPTION_BOOL, C(exit_when_done), .def = "false",
     .help = "exit once the final adapter is sent"},
};

static const char *const s_sections[] = {"coordinator", "federation", NULL};
static const char *const s_foreign[] = {"client", NULL};
static const struct fl_options_action s_actions[] = {
    {"daemon", "detach from the terminal (the default is the foreground, for systemd)"},
};

const struct fl_options_spec fl_coord_config_spec = {
    .program = "fedtl-coordinator",
    .about =
        "Runs the federation: holds the pretrained base, enrols branches, runs the rounds and\n"
        "keeps the global adapter. Every option is a flag and a key of the INI file's\n"
        "[coordinator] section (state_dir or state-dir alike); flags override the file.\n",
    .epilogue = "--check-config also opens every file the settings name (key, allow-list, base,\n"
                "evaluation data). Booleans read true/false, yes/no, on/off or 1/0.\n"
                "Signals: SIGTERM/SIGINT stop cleanly (state is saved after every round); SIGHUP\n"
                "reloads the allow-list.\n",
    .options = s_options,
    .noptions = sizeof s_options / sizeof s_options[0],
    .sections = s_sections,
    .foreign = s_foreign,
    .check_config = true,
    .actions = s_actions,
    .nactions = sizeof s_actions / sizeof s_actions[0],
};

void fl_coord_config_default(struct fl_coord_config *c)
{
    memset(c, 0, sizeof *c);
    fl_options_reset(&fl_coord_config_spec, c);
}

int fl_coord_config_set(struct fl_coord_config *c, const char *key, const char *value)
{
    return fl_options_set(&fl_coord_config_spec, c, key, value, NULL);
}

int fl_coord_config_load(struct fl_coord_config *c, const char *path)
{
    return fl_options_load(&fl_coord_config_spec, c, path);
}

int fl_coord_config_check(const struct fl_coord_config *c)
{
    if (!c->base[0])
        return fl_fail(FL_EINVAL, "no base model: set base = FILE.ftm (or --base)");
    if (!c->allow[0])
        return fl_fail(FL_EINVAL, "no allow-list: set allow = DIR or FILE (or --allow)");
    if (!c->key[0] && !c->insecure)
        return fl_fail(FL_EINVAL, "no coordinator key: set key = FILE.key (or --key)");
    if (!c->key[0])
        return fl_fail(FL_EINVAL, "no coordinator key: updates are sealed to it even with "
                                  "--insecure; set key = FILE.key");
    if (c->min_clients > c->min_start)
        return fl_fail(FL_EINVAL, "min_clients (%d) cannot exceed min_start (%d)", c->min_clients,
                       c->min_start);
    if (c->clients_per_round > 0 && c->clients_per_round < c->min_clients)
        return fl_fail(FL_EINVAL, "clients_per_round (%d) is below min_clients (%d)",
                       c->clients_per_round, c->min_clients);
    enum fl_adapter_kind kind;
    if (fl_adapter_kind_parse(c->method, &kind) != 0)
        return fl_fail(FL_EINVAL, "method: %s", fl_error_msg());
    if (c->classes[0]) {
        int32_t ids[FL_MAX_CLASSES];
        int n = 0;
        if (fl_classes_parse(c->classes, ids, FL_MAX_CLASSES, &n) != 0)
            return fl_fail(FL_EINVAL, "classes: %s", fl_error_msg());
    }
    if (!c->federation[0] || strlen(c->federation) > 63)
        return fl_fail(FL_EINVAL, "federation name must be 1 to 63 characters");
    return 0;
}

void fl_coord_config_print(const struct fl_coord_config *c, FILE *f)
{
    fl_options_print(&fl_coord_config_spec, c, f);
}
