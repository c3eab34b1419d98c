/* fl_coord_config: the coordinator's configuration, one option table for its flags, its INI
 * file (inih), --help and --check-config. */
#include "fl_coord_config.h"
#include "fl_arch.h"
#include "fl_data.h"
#include "fl_error.h"
#include "fl_http.h"
#include "fl_method.h"
#include "fl_secagg.h"
#include "fl_strategy.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
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

/* A strategy setting: a finite number (its range is the strategy's to check). */
static int s_real(const char *value)
{
    char *end = NULL;
    double v = strtod(value, &end);
    return end != value && !*end && isfinite(v) ? 0 : fl_fail(FL_EINVAL, "not a finite number");
}

/* A strategy count: a whole number from 0 to 2^31 - 1. */
static int s_count(const char *value)
{
    char *end = NULL;
    long long v = strtoll(value, &end, 10);
    return end != value && !*end && value[0] != '-' && v <= 0x7fffffff
               ? 0
               : fl_fail(FL_EINVAL, "not a whole number from 0 to 2147483647");
}

/* What a missing value in a table does: error, mean or drop. */
static int s_missing(const char *value)
{
    enum fl_missing m;
    return fl_missing_parse(value, &m);
}

/* fl_strategy's names, and the rules one may run under an optimiser. */
static const struct fl_option_choice s_strategies[] = {
    {"fedavg", 0},  {"fedavgm", 1},    {"fedadagrad", 2}, {"fedadam", 3},
    {"fedyogi", 4}, {"fedprox", 5},    {"median", 6},     {"trimmed-mean", 7},
    {"krum", 8},    {"multi-krum", 9}, {NULL, 0}};
static const struct fl_option_choice s_rules[] = {{"mean", FL_RULE_MEAN},
                                                  {"median", FL_RULE_MEDIAN},
                                                  {"trimmed-mean", FL_RULE_TRIMMED_MEAN},
                                                  {"krum", FL_RULE_KRUM},
                                                  {"multi-krum", FL_RULE_MULTI_KRUM},
                                                  {NULL, 0}};

#define SREAL(f)  TEXT, C(f), .validate = s_real, .metavar = "X"
#define SCOUNT(f) TEXT, C(f), .validate = s_count, .metavar = "N"

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
    {"eval_label_column", TEXT, C(eval_label_column), .metavar = "NAME",
     .help = "evaluation data in a CSV with a header: the label column (default: the first)"},
    {"eval_columns", TEXT, C(eval_columns), .metavar = "A,B,...",
     .help = "and the feature columns, in this order (default: the rest)"},
    {"eval_missing", TEXT, C(eval_missing), .validate = s_missing, .metavar = "error|mean|drop",
     .help = "and a missing value (empty, NA, NaN, null, ?): an error (default), its column's "
             "mean, or its row dropped"},
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
    /* Strategy ([strategy] section; empty: the strategy's default) */
    {"strategy", .type = FL_OPTION_CHOICE, .store = FL_OPTION_CHARS, C(strategy),
     .choices = s_strategies, .def = "fedavg", .metavar = "NAME",
     .group = "Aggregation strategy ([strategy] section; unset: the strategy's defaults)",
     .help = "fedavg fedavgm fedadagrad fedadam fedyogi fedprox median trimmed-mean krum "
             "multi-krum"},
    {"rule", .type = FL_OPTION_CHOICE, .store = FL_OPTION_CHARS, C(rule), .choices = s_rules,
     .metavar = "RULE",
     .help = "the rule under the server optimiser: mean median trimmed-mean krum multi-krum"},
    {"server_lr", SREAL(server_lr), .help = "server learning rate eta"},
    {"server_lr_decay", SREAL(server_lr_decay),
     .help = "eta's schedule: after t rounds the step is eta x X^max(0, t - A), X in (0, 1] "
             "(1: constant)"},
    {"server_lr_decay_after", SCOUNT(server_lr_decay_after),
     .help = "A: rounds at the full eta before server_lr_decay applies (0: from the first)"},
    {"server_momentum", SREAL(server_momentum), .help = "FedAvgM's momentum"},
    {"beta1", SREAL(beta1), .help = "FedAdagrad, FedAdam, FedYogi: first-moment decay"},
    {"beta2", SREAL(beta2), .help = "FedAdam, FedYogi: second-moment decay"},
    {"tau", SREAL(tau), .help = "FedAdagrad, FedAdam, FedYogi: adaptivity"},
    {"proximal_mu", SREAL(proximal_mu),
     .help = "FedProx: mu of the branches' proximal term, sent with every task"},
    {"trim_beta", SREAL(trim_beta), .help = "trimmed mean: share cut at each end, [0, 0.5)"},
    {"krum_f", SCOUNT(krum_f), .help = "Krum, multi-Krum: Byzantine updates tolerated"},
    {"krum_m", SCOUNT(krum_m), .help = "multi-Krum: updates averaged (0: n - f)"},
    {"norm_bound", SREAL(norm_bound), .help = "clip each update's change to this L2 norm"},
    {"norm_bound_median", TEXT, C(norm_bound_median), .validate = s_real, .metavar = "K",
     .help = "or to K times the round's median change norm"},
    /* Differential privacy */
    {"dp_noise", REAL(0, 1e6), C(dp_noise), .def = "0", .metavar = "Z",
     .group = "Differential privacy (DP-FedAvg, docs/PRIVACY.md)",
     .help = "noise multiplier: Gaussian noise of deviation Z x dp_clip on the sum of the round's "
             "updates (0: none, or chosen from dp_epsilon)"},
    {"dp_clip", REAL(0, 1e30), C(dp_clip), .def = "0", .metavar = "C",
     .help = "clip each update's change to this L2 norm (needed with dp_noise or dp_epsilon)"},
    {"dp_epsilon", REAL(0, 1e6), C(dp_epsilon), .def = "0", .metavar = "EPS",
     .help = "privacy budget: the federation stops before a round would spend more; without "
             "dp_noise the noise is chosen to last the planned rounds (0: no budget)"},
    {"dp_delta", REAL(0, 0.1), C(dp_delta), .def = "1e-5", .metavar = "DELTA",
     .help = "the delta of the (epsilon, delta) reported and budgeted, > 0"},
    /* Personalisation */
    {"personal_head", .type = FL_OPTION_BOOL, C(personal_head), .def = "false",
     .group = "Personalisation (sent to the branches)",
     .help = "FedPer: each branch trains and keeps its own head"},
    {"personalize_epochs", INT(0, 1000), C(personalize_epochs), .def = "0",
     .help = "branches fine-tune the final adapter this many epochs on their records"},
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
    /* Secure aggregation */
    {"secure_aggregation", .type = FL_OPTION_BOOL, C(secure_aggregation), .def = "false",
     .group = "Secure aggregation (docs/SECURITY.md)",
     .help = "SecAgg+: branches mask their updates so that the coordinator learns only their "
             "weighted sum (fedavg and the server optimisers, with a fixed norm bound at most)"},
    {"secagg_dropout", REAL(0, 0.5), .flags = FL_OPTION_HI_OPEN, C(secagg_dropout), .def = "0.1",
     .metavar = "F",
     .help = "the fraction of a round's branches secure aggregation should survive losing: "
             "each branch gets enough neighbours that n x P[fewer than a threshold of them "
             "stay] <= 2^-20 (more neighbours, more work per branch)"},
};

static const char *const s_sections[] = {"coordinator", "federation", "strategy", NULL};
static const struct fl_options_alias s_aliases[] = {{"strategy", "name", "strategy"},
                                                    {NULL, NULL, NULL}};
static const char *const s_foreign[] = {"client", NULL};
static const struct fl_options_action s_actions[] = {
    {"daemon", "detach from the terminal (the default is the foreground, for systemd)"},
};

const struct fl_options_spec fl_coord_config_spec = {
    .program = "fedtl-coordinator",
    .about =
        "Runs the federation: holds the pretrained base, enrols branches, runs the rounds and\n"
        "keeps the global adapter. Every option is a flag and a key of the INI file's\n"
        "[coordinator] section (state_dir or state-dir alike); flags override the file.\n"
        "The strategy's settings may also go in a [strategy] section (name = the strategy).\n",
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
    .aliases = s_aliases,
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
    struct fl_strategy_config sc;
    int rc = fl_coord_config_strategy(c, &sc);
    if (rc)
        return rc;
    /* Krum scores each update by its n - f - 2 nearest: it needs n > 2f + 2 every round. */
    if ((sc.rule == FL_RULE_KRUM || sc.rule == FL_RULE_MULTI_KRUM) &&
        (uint64_t)c->min_clients < 2 * (uint64_t)sc.krum_f + 3)
        return fl_fail(FL_EINVAL,
                       "--strategy %s with krum_f %u needs min_clients of at least 2f + 3 = %u "
                       "(min_clients is %d)",
                       sc.name, sc.krum_f, 2 * sc.krum_f + 3, c->min_clients);
    if (c->secure_aggregation) {
        if ((rc = fl_secagg_strategy_check(&sc)) != 0)
            return rc;
        if (c->personal_head)
            return fl_fail(FL_EINVAL, "secure aggregation: personal_head is not supported (each "
                                      "branch's head would have to leave the sum)");
        if (c->min_clients < 3)
            return fl_fail(FL_EINVAL, "secure aggregation needs min_clients of at least 3 (the "
                                      "sum of two reveals each to the other)");
    } else if (c->secagg_dropout != 0.1) {
        return fl_fail(FL_EINVAL, "--secagg-dropout %g needs --secure-aggregation",
                       c->secagg_dropout);
    }
    return 0;
}

const struct fl_table_opts *fl_coord_config_eval_table(const struct fl_coord_config *c,
                                                       struct fl_table_opts *t)
{
    *t = (struct fl_table_opts){.label_column =
                                    c->eval_label_column[0] ? c->eval_label_column : NULL,
                                .columns = c->eval_columns[0] ? c->eval_columns : NULL};
    if (c->eval_missing[0] && fl_missing_parse(c->eval_missing, &t->missing) != 0)
        t->missing = FL_MISSING_ERROR; /* refused when it was set: not reached */
    return t->label_column || t->columns || c->eval_missing[0] ? t : NULL;
}

void fl_coord_config_print(const struct fl_coord_config *c, FILE *f)
{
    struct fl_coord_config shown = *c;
    if (fl_coord_config_resolve(&shown) != 0)
        shown = *c; /* as set: fl_coord_config_check says what is wrong */
    fl_options_print(&fl_coord_config_spec, &shown, f);
}

/* ---- the strategy ---- */

/* Which resolved strategies a setting applies to. */
static bool s_any(const struct fl_strategy_config *s)
{
    (void)s;
    return true;
}
static bool s_avgm(const struct fl_strategy_config *s)
{
    return s->opt == FL_SERVER_OPT_AVGM;
}
static bool s_adaptive(const struct fl_strategy_config *s)
{
    return s->opt == FL_SERVER_OPT_ADAGRAD || s->opt == FL_SERVER_OPT_ADAM ||
           s->opt == FL_SERVER_OPT_YOGI;
}
static bool s_second_moment(const struct fl_strategy_config *s)
{
    return s->opt == FL_SERVER_OPT_ADAM || s->opt == FL_SERVER_OPT_YOGI;
}
static bool s_decaying(const struct fl_strategy_config *s)
{
    return s->server_lr_decay != 1;
}
static bool s_trimmed(const struct fl_strategy_config *s)
{
    return s->rule == FL_RULE_TRIMMED_MEAN;
}
static bool s_krum(const struct fl_strategy_config *s)
{
    return s->rule == FL_RULE_KRUM || s->rule == FL_RULE_MULTI_KRUM;
}
static bool s_multi_krum(const struct fl_strategy_config *s)
{
    return s->rule == FL_RULE_MULTI_KRUM;
}
static bool s_fixed(const struct fl_strategy_config *s)
{
    return s->bound == FL_BOUND_FIXED;
}
static bool s_median_bound(const struct fl_strategy_config *s)
{
    return s->bound == FL_BOUND_MEDIAN;
}

/* A numeric strategy setting: its text field, the value it sets, where it applies. */
struct s_setting {
    const char *name;                                   /* the option */
    size_t text;                                        /* its field in fl_coord_config */
    size_t value;                                       /* its field in fl_strategy_config */
    bool count;                                         /* a uint32_t, else a double */
    bool (*applies)(const struct fl_strategy_config *); /* to the resolved strategy */
};

#define ST(f) offsetof(struct fl_coord_config, f)
#define SV(f) offsetof(struct fl_strategy_config, f)
static const struct s_setting s_settings[] = {
    {"server_lr", ST(server_lr), SV(server_lr), false, s_any},
    {"server_lr_decay", ST(server_lr_decay), SV(server_lr_decay), false, s_any},
    {"server_lr_decay_after", ST(server_lr_decay_after), SV(server_lr_decay_after), true,
     s_decaying},
    {"server_momentum", ST(server_momentum), SV(beta1), false, s_avgm},
    {"beta1", ST(beta1), SV(beta1), false, s_adaptive},
    {"beta2", ST(beta2), SV(beta2), false, s_second_moment},
    {"tau", ST(tau), SV(tau), false, s_adaptive},
    {"proximal_mu", ST(proximal_mu), SV(prox_mu), false, s_any},
    {"trim_beta", ST(trim_beta), SV(trim_beta), false, s_trimmed},
    {"krum_f", ST(krum_f), SV(krum_f), true, s_krum},
    {"krum_m", ST(krum_m), SV(krum_m), true, s_multi_krum},
    {"norm_bound", ST(norm_bound), SV(norm_bound), false, s_fixed},
    {"norm_bound_median", ST(norm_bound_median), SV(norm_bound), false, s_median_bound},
};

static const char *s_text(const struct fl_coord_config *c, size_t off)
{
    return (const char *)c + off;
}

static const char *s_rule_name(enum fl_rule r)
{
    for (const struct fl_option_choice *k = s_rules; k->name; k++)
        if (k->value == (int)r)
            return k->name;
    return "?";
}

/* "--strategy fedavg (rule mean, no server optimiser)": what a setting did not apply to. */
static void s_describe(const struct fl_strategy_config *s, char *buf, size_t len)
{
    static const char *const opt[] = {"no server optimiser", "FedAvgM", "FedAdagrad", "FedAdam",
                                      "FedYogi"};
    snprintf(buf, len, "--strategy %s (rule %s, %s)", s->name, s_rule_name(s->rule),
             (unsigned)s->opt < 5 ? opt[s->opt] : "?");
}

/* --rule over the strategy's own: a robust strategy is its rule; an optimiser takes any, with
 * that rule's own defaults (trim share, f, m). */
static int s_apply_rule(const struct fl_coord_config *c, struct fl_strategy_config *out)
{
    if (!c->rule[0])
        return 0;
    const struct fl_option_choice *k = s_rules;
    while (k->name && strcmp(k->name, c->rule) != 0)
        k++;
    if (!k->name)
        return fl_fail(FL_EINVAL,
                       "--rule %s: not one of mean, median, trimmed-mean, krum, "
                       "multi-krum",
                       c->rule);
    enum fl_rule rule = (enum fl_rule)k->value;
    if (rule == out->rule)
        return 0;
    if (out->rule != FL_RULE_MEAN || strcmp(out->name, "fedprox") == 0 ||
        strcmp(out->name, "fedavg") == 0)
        return fl_fail(FL_EINVAL,
                       "--rule %s does not apply to --strategy %s (its rule is %s; use "
                       "--strategy %s, or an optimiser such as fedadam with --rule %s)",
                       c->rule, out->name, s_rule_name(out->rule), c->rule, c->rule);
    struct fl_strategy_config d;
    if (fl_strategy_config_default(&d, c->rule) != 0)
        return FL_EINVAL;
    out->rule = rule;
    out->trim_beta = d.trim_beta;
    out->krum_f = d.krum_f;
    out->krum_m = d.krum_m;
    return 0;
}

/* DP-FedAvg's settings: a fixed bound (dp_clip, which norm_bound may only repeat) on the mean,
 * and noise or a budget; with secure aggregation the branches add the noise (dp_distributed).
 * out->dp_noise (and dp_distributed) stay 0 when the noise is to be chosen from the budget
 * (fl_privacy, at start-up). */
static int s_apply_dp(const struct fl_coord_config *c, struct fl_strategy_config *out)
{
    char what[128];
    if (c->dp_noise == 0 && c->dp_epsilon == 0) {
        if (c->dp_clip > 0)
            return fl_fail(FL_EINVAL, "--dp-clip %g needs --dp-noise or --dp-epsilon", c->dp_clip);
        return 0;
    }
    const char *flag = c->dp_noise > 0 ? "--dp-noise" : "--dp-epsilon";
    if (!(c->dp_clip > 0))
        return fl_fail(FL_EINVAL, "%s needs --dp-clip C, the L2 bound of each update's change",
                       flag);
    if (!(c->dp_delta > 0))
        return fl_fail(FL_EINVAL, "%s needs --dp-delta above 0", flag);
    if (out->rule != FL_RULE_MEAN) {
        s_describe(out, what, sizeof what);
        return fl_fail(FL_EINVAL,
                       "%s (DP-FedAvg) does not apply to %s: its analysis needs the mean of "
                       "clipped updates",
                       flag, what);
    }
    if (c->norm_bound_median[0])
        return fl_fail(FL_EINVAL,
                       "%s (DP-FedAvg) and --norm-bound-median %s: a bound relative to the "
                       "round's median moves with the other branches' updates; DP needs the "
                       "fixed --dp-clip alone",
                       flag, c->norm_bound_median);
    if (c->norm_bound[0] && strtod(c->norm_bound, NULL) != c->dp_clip)
        return fl_fail(FL_EINVAL,
                       "--dp-clip %g and --norm-bound %s both bound each update: give "
                       "--dp-clip alone",
                       c->dp_clip, c->norm_bound);
    out->bound = FL_BOUND_FIXED;
    out->norm_bound = c->dp_clip;
    out->dp_noise = c->dp_noise;
    out->dp_distributed = c->secure_aggregation && c->dp_noise > 0; /* the branches add it */
    return 0;
}

int fl_coord_config_strategy(const struct fl_coord_config *c, struct fl_strategy_config *out)
{
    int rc = fl_strategy_config_default(out, c->strategy[0] ? c->strategy : "fedavg");
    if (rc)
        return fl_fail(rc, "strategy: %s", fl_error_msg());
    if ((rc = s_apply_rule(c, out)) != 0)
        return rc;
    if (c->norm_bound[0] && c->norm_bound_median[0])
        return fl_fail(FL_EINVAL, "--norm-bound %s and --norm-bound-median %s: give one bound",
                       c->norm_bound, c->norm_bound_median);
    if ((rc = s_apply_dp(c, out)) != 0)
        return rc;
    if (c->norm_bound[0] || out->dp_noise > 0 || c->dp_epsilon > 0)
        out->bound = FL_BOUND_FIXED;
    else if (c->norm_bound_median[0])
        out->bound = FL_BOUND_MEDIAN;
    if (c->server_momentum[0] && c->beta1[0])
        return fl_fail(FL_EINVAL, "--server-momentum and --beta1 set the same thing: give one");
    char what[128], flag[64];
    for (size_t i = 0; i < sizeof s_settings / sizeof s_settings[0]; i++) {
        const struct s_setting *st = &s_settings[i];
        const char *text = s_text(c, st->text);
        if (!text[0])
            continue;
        fl_options_flag(st->name, flag, sizeof flag);
        if (!st->applies(out)) {
            s_describe(out, what, sizeof what);
            return fl_fail(FL_EINVAL, "%s does not apply to %s", flag, what);
        }
        if ((st->count ? s_count(text) : s_real(text)) != 0)
            return fl_fail(FL_EINVAL, "%s %s: %s", flag, text, fl_error_msg());
        if (st->count)
            *(uint32_t *)((char *)out + st->value) = (uint32_t)strtoul(text, NULL, 10);
        else
            *(double *)((char *)out + st->value) = strtod(text, NULL);
    }
    if ((rc = fl_strategy_config_check(out)) != 0)
        return fl_fail(rc, "strategy %s: %s", out->name, fl_error_msg());
    return 0;
}

/* The shortest text that reads back as v. */
static void s_shortest(double v, char *buf, size_t len)
{
    for (int digits = 6; digits <= 17; digits++) {
        snprintf(buf, len, "%.*g", digits, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

int fl_coord_config_resolve(struct fl_coord_config *c)
{
    struct fl_strategy_config s;
    int rc = fl_coord_config_strategy(c, &s);
    if (rc)
        return rc;
    snprintf(c->strategy, sizeof c->strategy, "%s", s.name);
    snprintf(c->rule, sizeof c->rule, "%s", s_rule_name(s.rule));
    for (size_t i = 0; i < sizeof s_settings / sizeof s_settings[0]; i++) {
        const struct s_setting *st = &s_settings[i];
        char *text = (char *)c + st->text;
        const void *v = (const char *)&s + st->value;
        text[0] = '\0';
        if (!st->applies(&s))
            continue;
        if (st->count)
            snprintf(text, FL_COORD_SETTING_MAX, "%u", *(const uint32_t *)v);
        else
            s_shortest(*(const double *)v, text, FL_COORD_SETTING_MAX);
    }
    return 0;
}
