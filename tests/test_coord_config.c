/* fl_coord_config: settings from flags and INI files, with clear errors for bad values. */
#include <criterion/criterion.h>

#include "fl_coord_config.h"
#include "fl_strategy.h"
#include "fl_method.h"
#include "fl_error.h"
#include "fl_table.h"
#include "fl_testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Test(fl_coord_config, whole_numbers_are_whole_and_bounded)
{
    struct fl_coord_config c;
    fl_coord_config_default(&c);
    cr_assert_eq(fl_coord_config_set(&c, "rounds", "12"), 0);
    cr_assert_eq(c.rounds, 12);
    const char *bad[] = {"2.5", "1e3", "-1", "0", "abc", "", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(fl_coord_config_set(&c, "rounds", bad[i]), FL_EINVAL, "'%s'", bad[i]);
        cr_assert(strstr(fl_error_msg(), "rounds"), "%s", fl_error_msg());
    }
    cr_assert_eq(c.rounds, 12, "a refused value changes nothing");
    cr_assert_eq(fl_coord_config_set(&c, "seed", "18446744073709551615"), 0);
    cr_assert_eq(c.seed, UINT64_MAX);
    cr_assert_eq(fl_coord_config_set(&c, "deadline", "2.5"), 0);
    cr_assert_float_eq(c.deadline_s, 2.5, 1e-9);
    cr_assert_eq(fl_coord_config_set(&c, "min-clients", "3"), 0, "dashes and underscores alike");
    cr_assert_eq(c.min_clients, 3);
    cr_assert_eq(fl_coord_config_set(&c, "insecure", "maybe"), FL_EINVAL);
    cr_assert_eq(fl_coord_config_set(&c, "no_such_setting", "1"), FL_ENOTFOUND);
}

Test(fl_coord_config, a_federation_name_is_any_utf8_text_and_only_that)
{
    struct fl_coord_config c;
    fl_coord_config_default(&c);
    static const char good[] = "fed \"q\" \\ back\nslash — Zürich 東京";
    cr_assert_eq(fl_coord_config_set(&c, "federation", good), 0, "%s", fl_error_msg());
    cr_assert_str_eq(c.federation, good);
    /* a stray continuation byte, an overlong '/', a surrogate, a truncated character */
    const char *bad[] = {"fed\x80", "fed\xc0\xaf", "fed\xed\xa0\x80", "fed\xe6\x9d"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(fl_coord_config_set(&c, "federation", bad[i]), FL_EINVAL, "case %zu", i);
        cr_assert(strstr(fl_error_msg(), "federation") && strstr(fl_error_msg(), "UTF-8"), "%s",
                  fl_error_msg());
    }
    cr_assert_str_eq(c.federation, good, "a refused value changes nothing");
}

Test(fl_coord_config, file_errors_name_the_file_and_line)
{
    char *dir = fl_test_tmpdir("cfg");
    char *path = fl_test_path(dir, "coord.ini");
    FILE *f = fopen(path, "w");
    fprintf(f, "; HQ\n[coordinator]\nbase = base.ftm\nallow = allow\nkey = hq.key\n"
               "rounds = 7\nfraction = 1.5\n");
    fclose(f);
    struct fl_coord_config c;
    fl_coord_config_default(&c);
    cr_assert_eq(fl_coord_config_load(&c, path), FL_EFORMAT);
    cr_assert(strstr(fl_error_msg(), path) && strstr(fl_error_msg(), "line 7") &&
                  strstr(fl_error_msg(), "fraction"),
              "%s", fl_error_msg());
    f = fopen(path, "w");
    fprintf(f, "[coordinator]\nbase = base.ftm\nallow = allow\nkey = hq.key\nrounds = 7\n"
               "min_clients = 4\nmin_start = 2\n");
    fclose(f);
    fl_coord_config_default(&c);
    cr_assert_eq(fl_coord_config_load(&c, path), 0, "%s", fl_error_msg());
    cr_assert_eq(c.rounds, 7);
    cr_assert_eq(fl_coord_config_check(&c), FL_EINVAL, "min_clients above min_start");
    cr_assert(strstr(fl_error_msg(), "min_clients"));
    c.min_clients = 1;
    cr_assert_eq(fl_coord_config_check(&c), 0, "%s", fl_error_msg());
    /* The method is a choice: a wrong one is refused when set, naming the value and the
     * choices. fl_coord_config_check still refuses one written into the struct directly. */
    cr_assert_eq(fl_coord_config_set(&c, "method", "lorax"), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "lorax") && strstr(fl_error_msg(), "ffa-lora"), "%s",
              fl_error_msg());
    snprintf(c.method, sizeof c.method, "lorax");
    cr_assert_eq(fl_coord_config_check(&c), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "lorax"), "%s", fl_error_msg());
    cr_assert_eq(fl_coord_config_set(&c, "method", "LoRA"), 0, "choices ignore case");
    cr_assert_str_eq(c.method, "lora");
    cr_assert_eq(fl_coord_config_set(&c, "classes", "5-x"), 0);
    cr_assert_eq(fl_coord_config_check(&c), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "classes"), "%s", fl_error_msg());
    f = fopen(path, "w");
    fprintf(f, "[elsewhere]\nrounds = 3\n");
    fclose(f);
    cr_assert_eq(fl_coord_config_load(&c, path), FL_EFORMAT);
    cr_assert(strstr(fl_error_msg(), "unknown section"), "%s", fl_error_msg());
    cr_assert_eq(fl_coord_config_load(&c, "/nonexistent/coord.ini"), FL_EIO);
    fl_test_rmtree(dir);
    free(dir);
    free(path);
}

static void s_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

Test(fl_coord_config, booleans_read_one_way_and_an_empty_one_is_an_error)
{
    struct fl_coord_config c;
    fl_coord_config_default(&c);
    const char *yes[] = {"true", "TRUE", "Yes", "on", "1"}, *no[] = {"false", "No", "OFF", "0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        cr_assert_eq(fl_coord_config_set(&c, "insecure", yes[i]), 0, "%s", yes[i]);
        cr_assert(c.insecure, "%s", yes[i]);
        cr_assert_eq(fl_coord_config_set(&c, "insecure", no[i % 4]), 0, "%s", no[i % 4]);
        cr_assert(!c.insecure, "%s", no[i % 4]);
    }
    cr_assert_eq(fl_coord_config_set(&c, "exit_when_done", ""), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "--exit-when-done") && strstr(fl_error_msg(), "''"), "%s",
              fl_error_msg());
    char *dir = fl_test_tmpdir("cfgb");
    char *path = fl_test_path(dir, "coord.ini");
    s_write(path, "[coordinator]\nbase = b.ftm\ninsecure =\n");
    cr_assert_eq(fl_coord_config_load(&c, path), FL_EFORMAT);
    cr_assert(strstr(fl_error_msg(), "line 3") && strstr(fl_error_msg(), "insecure"), "%s",
              fl_error_msg());
    fl_test_rmtree(dir);
    free(dir);
    free(path);
}

Test(fl_coord_config, a_shared_file_skips_the_client_section)
{
    char *dir = fl_test_tmpdir("cfgs");
    char *path = fl_test_path(dir, "fedtl.ini");
    s_write(path, "[coordinator]\nrounds = 4\n[client]\ndata = d.csv\n[federation]\n"
                  "min-start = 2\n");
    struct fl_coord_config c;
    fl_coord_config_default(&c);
    cr_assert_eq(fl_coord_config_load(&c, path), 0, "%s", fl_error_msg());
    cr_assert_eq(c.rounds, 4);
    cr_assert_eq(c.min_start, 2);
    s_write(path, "rounds = 4\n[coordinator]\n");
    cr_assert_eq(fl_coord_config_load(&c, path), FL_EFORMAT);
    cr_assert(strstr(fl_error_msg(), "line 1") && strstr(fl_error_msg(), "outside any section"),
              "%s", fl_error_msg());
    s_write(path, "[coordinator]\nround = 4\n");
    cr_assert_eq(fl_coord_config_load(&c, path), FL_EFORMAT);
    cr_assert(strstr(fl_error_msg(), "line 2") && strstr(fl_error_msg(), "unknown option 'round'"),
              "%s", fl_error_msg());
    fl_test_rmtree(dir);
    free(dir);
    free(path);
}

Test(fl_coord_config, the_printed_configuration_loads_back_the_same)
{
    struct fl_coord_config c, d;
    fl_coord_config_default(&c);
    const char *set[][2] = {{"base", "b.ftm"},
                            {"allow", "allow"},
                            {"key", "hq.key"},
                            {"fraction", "0.35"},
                            {"lr", "0.0015"},
                            {"alpha", "3.7"},
                            {"deadline", "90.25"},
                            {"method", "ffa-lora"},
                            {"targets", "conv2,fc1"},
                            {"seed", "18446744073709551615"},
                            {"chunk_size", "1048576"},
                            {"exit_when_done", "yes"},
                            {"eval_data", "t10k.idx.gz"},
                            {"strategy", "fedadam"},
                            {"rule", "trimmed-mean"},
                            {"tau", "0.0125"},
                            {"personalize_epochs", "4"}};
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++)
        cr_assert_eq(fl_coord_config_set(&c, set[i][0], set[i][1]), 0, "%s", fl_error_msg());
    char *dir = fl_test_tmpdir("cfgp");
    char *path = fl_test_path(dir, "effective.ini");
    FILE *f = fopen(path, "w");
    fl_coord_config_print(&c, f);
    fclose(f);
    fl_coord_config_default(&d);
    cr_assert_eq(fl_coord_config_load(&d, path), 0, "%s", fl_error_msg());
    /* It prints the strategy resolved: what was set, and the defaults of what was not. */
    cr_assert_eq(fl_coord_config_resolve(&c), 0, "%s", fl_error_msg());
    cr_assert_eq(memcmp(&c, &d, sizeof c), 0, "what --check-config prints reads back the same");
    char *text = fl_test_slurp(path);
    cr_assert(strstr(text, "[coordinator]\n") && strstr(text, "\nstate_dir = fedtl-state\n") &&
                  strstr(text, "\nlr = 0.0015\n") && strstr(text, "\ncontrol = \n") &&
                  strstr(text, "\nstrategy = fedadam\n") &&
                  strstr(text, "\nrule = trimmed-mean\n") && strstr(text, "\ntau = 0.0125\n") &&
                  strstr(text, "\nserver_momentum = \n") && strstr(text, "\nkrum_f = \n"),
              "%s", text);
    cr_assert(!strstr(text, "\nbeta2 = \n") && !strstr(text, "\ntrim_beta = \n"),
              "the defaults of what applies are shown: %s", text);
    free(text);
    fl_test_rmtree(dir);
    free(dir);
    free(path);
}

Test(fl_coord_config, the_table_is_well_formed_and_its_methods_are_the_engines)
{
    cr_assert_eq(fl_options_check_spec(&fl_coord_config_spec), 0, "%s", fl_error_msg());
    const struct fl_option *m = fl_options_find(&fl_coord_config_spec, "method", 6);
    cr_assert_not_null(m);
    int n = 0;
    for (const struct fl_option_choice *ch = m->choices; ch->name; ch++, n++) {
        enum fl_adapter_kind kind;
        cr_assert_eq(fl_adapter_kind_parse(ch->name, &kind), 0, "%s", ch->name);
        cr_assert_eq((int)kind, ch->value, "%s", ch->name);
    }
    cr_assert_eq(n, FL_ADAPTER_BITFIT, "every method is offered");
    const struct fl_option *r = fl_options_find(&fl_coord_config_spec, "rank", 4);
    cr_assert_eq(r->range.i.hi, FL_METHOD_RANK_MAX);
}

Test(fl_coord_config, the_bounds_on_an_update_have_defaults_and_read_from_the_file)
{
    struct fl_coord_config c;
    fl_coord_config_default(&c);
    cr_assert_eq(c.max_samples, 1000000);
    cr_assert_float_eq(c.max_samples_ratio, 10, 1e-12);
    cr_assert_float_eq(c.max_update_norm, 100, 1e-12, "bounded by default");
    const char *bad[] = {"-1", "nan", "inf", "1e31", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(fl_coord_config_set(&c, "max-update-norm", bad[i]), FL_EINVAL, "'%s'", bad[i]);
    cr_assert_eq(fl_coord_config_set(&c, "max_samples", "0"), FL_EINVAL, "a weight of at least 1");
    char *dir = fl_test_tmpdir("cfg");
    char *path = fl_test_path(dir, "coord.ini");
    FILE *f = fopen(path, "w");
    fprintf(f, "[coordinator]\nmax_samples = 60000\nmax-samples-ratio = 0\n"
               "max_update_norm = 0\n");
    fclose(f);
    cr_assert_eq(fl_coord_config_load(&c, path), 0, "%s", fl_error_msg());
    cr_assert_eq(c.max_samples, 60000);
    cr_assert_float_eq(c.max_samples_ratio, 0, 1e-12, "0: no median cap");
    cr_assert_float_eq(c.max_update_norm, 0, 1e-12, "0: no bound");
    fl_test_rmtree(dir);
    free(path);
    free(dir);
}

/* The strategy a configuration resolves to (a checked one). */
static struct fl_strategy_config s_resolved(const struct fl_coord_config *c)
{
    struct fl_strategy_config sc;
    cr_assert_eq(fl_coord_config_strategy(c, &sc), 0, "%s", fl_error_msg());
    return sc;
}

Test(fl_coord_config, a_strategy_takes_its_defaults_and_the_settings_given)
{
    struct fl_coord_config c;
    fl_coord_config_default(&c);
    struct fl_strategy_config sc = s_resolved(&c), want;
    cr_assert_str_eq(sc.name, "fedavg", "the default strategy");
    cr_assert_eq(sc.rule, FL_RULE_MEAN);
    cr_assert_eq(sc.opt, FL_SERVER_OPT_NONE);
    cr_assert_eq(fl_coord_config_set(&c, "strategy", "fedadam"), 0, "%s", fl_error_msg());
    sc = s_resolved(&c);
    cr_assert_eq(fl_strategy_config_default(&want, "fedadam"), 0);
    cr_assert_eq(sc.opt, FL_SERVER_OPT_ADAM);
    cr_assert_float_eq(sc.tau, want.tau, 1e-15, "unset: the strategy's default");
    cr_assert_float_eq(sc.beta2, want.beta2, 1e-15);
    /* set ones override; a rule under the optimiser brings that rule's own defaults */
    cr_assert_eq(fl_coord_config_set(&c, "tau", "0.02"), 0);
    cr_assert_eq(fl_coord_config_set(&c, "server-lr", "0.5"), 0);
    cr_assert_eq(fl_coord_config_set(&c, "rule", "multi-krum"), 0);
    cr_assert_eq(fl_coord_config_set(&c, "krum_m", "3"), 0);
    cr_assert_eq(fl_coord_config_set(&c, "min_clients", "5"), 0);
    cr_assert_eq(fl_coord_config_set(&c, "min_start", "5"), 0);
    sc = s_resolved(&c);
    cr_assert_eq(fl_strategy_config_default(&want, "multi-krum"), 0);
    cr_assert_float_eq(sc.tau, 0.02, 1e-15);
    cr_assert_float_eq(sc.server_lr, 0.5, 1e-15);
    cr_assert_eq(sc.rule, FL_RULE_MULTI_KRUM);
    cr_assert_eq(sc.krum_f, want.krum_f, "multi-krum's f");
    cr_assert_eq(sc.krum_m, 3);
    cr_assert_eq(fl_coord_config_set(&c, "base", "b.ftm"), 0);
    cr_assert_eq(fl_coord_config_set(&c, "allow", "allow"), 0);
    cr_assert_eq(fl_coord_config_set(&c, "key", "hq.key"), 0);
    cr_assert_eq(fl_coord_config_check(&c), 0, "%s", fl_error_msg());
    /* both bounds: the fixed one, or K times the median */
    cr_assert_eq(fl_coord_config_set(&c, "norm_bound_median", "3"), 0);
    sc = s_resolved(&c);
    cr_assert_eq(sc.bound, FL_BOUND_MEDIAN);
    cr_assert_float_eq(sc.norm_bound, 3.0, 1e-15);
    cr_assert_eq(fl_coord_config_set(&c, "norm_bound", "2.5"), 0);
    cr_assert_eq(fl_coord_config_strategy(&c, &sc), FL_EINVAL, "both bounds");
    cr_assert(strstr(fl_error_msg(), "--norm-bound ") &&
                  strstr(fl_error_msg(), "--norm-bound-median"),
              "%s", fl_error_msg());
    cr_assert_eq(fl_coord_config_set(&c, "norm_bound_median", ""), 0, "empty: unset again");
    sc = s_resolved(&c);
    cr_assert_eq(sc.bound, FL_BOUND_FIXED);
    cr_assert_float_eq(sc.norm_bound, 2.5, 1e-15);
}

Test(fl_coord_config, a_setting_that_does_not_apply_to_the_strategy_is_an_error_naming_both)
{
    const char *cases[][4] = {
        /* strategy, option, value, what the message names */
        {"fedavg", "tau", "0.01", "--tau"},
        {"fedavg", "server_momentum", "0.9", "--server-momentum"},
        {"fedavgm", "beta2", "0.99", "--beta2"},
        {"fedadagrad", "beta2", "0.99", "--beta2"},
        {"fedadam", "server_momentum", "0.9", "--server-momentum"},
        {"median", "trim_beta", "0.1", "--trim-beta"},
        {"krum", "krum_m", "2", "--krum-m"},
        {"fedyogi", "krum_f", "1", "--krum-f"},
        {"median", "rule", "mean", "--rule"},
        {"fedavg", "rule", "median", "--rule"},
        {"fedprox", "server_lr_decay_after", "3", "--server-lr-decay-after"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct fl_coord_config c;
        fl_coord_config_default(&c);
        cr_assert_eq(fl_coord_config_set(&c, "strategy", cases[i][0]), 0);
        cr_assert_eq(fl_coord_config_set(&c, cases[i][1], cases[i][2]), 0, "%s", fl_error_msg());
        struct fl_strategy_config sc;
        cr_assert_eq(fl_coord_config_strategy(&c, &sc), FL_EINVAL, "%s with %s", cases[i][0],
                     cases[i][1]);
        cr_assert(strstr(fl_error_msg(), cases[i][3]) && strstr(fl_error_msg(), cases[i][0]),
                  "%s with %s: %s", cases[i][0], cases[i][1], fl_error_msg());
        cr_assert_eq(fl_coord_config_check(&c), FL_EINVAL, "check says so too");
    }
}

Test(fl_coord_config, strategy_values_are_checked_where_they_are_read_and_by_the_strategy)
{
    struct fl_strategy_config sc;
    struct fl_coord_config c;
    fl_coord_config_default(&c);
    const char *bad[] = {"abc", "nan", "inf", "1e999", "0.1x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(fl_coord_config_set(&c, "tau", bad[i]), FL_EINVAL, "'%s'", bad[i]);
        cr_assert(strstr(fl_error_msg(), "tau"), "%s", fl_error_msg());
    }
    cr_assert_eq(fl_coord_config_set(&c, "krum_f", "1.5"), FL_EINVAL);
    cr_assert_eq(fl_coord_config_set(&c, "krum_f", "-1"), FL_EINVAL);
    cr_assert_eq(fl_coord_config_set(&c, "strategy", "fedmagic"), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "fedmagic") && strstr(fl_error_msg(), "fedyogi"), "%s",
              fl_error_msg());
    cr_assert_eq(fl_coord_config_set(&c, "rule", "mode"), FL_EINVAL);
    snprintf(c.rule, sizeof c.rule, "mode"); /* written into the struct: still refused */
    cr_assert_eq(fl_coord_config_strategy(&c, &sc), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "mode"), "%s", fl_error_msg());
    c.rule[0] = '\0';
    /* in range for the text, out of range for the strategy: its check names the field */
    cr_assert_eq(fl_coord_config_set(&c, "strategy", "trimmed-mean"), 0);
    cr_assert_eq(fl_coord_config_set(&c, "trim_beta", "0.7"), 0);
    cr_assert_eq(fl_coord_config_strategy(&c, &sc), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "trim"), "%s", fl_error_msg());
    cr_assert_eq(fl_coord_config_set(&c, "trim_beta", ""), 0);
    cr_assert_eq(fl_coord_config_set(&c, "server_lr_decay", "1.5"), 0);
    cr_assert_eq(fl_coord_config_strategy(&c, &sc), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "server-lr-decay"), "%s", fl_error_msg());
    cr_assert_eq(fl_coord_config_set(&c, "server_lr_decay", ""), 0);
    /* Krum needs n > 2f + 2 every round: min_clients must promise it */
    fl_coord_config_default(&c);
    cr_assert_eq(fl_coord_config_set(&c, "base", "b.ftm"), 0);
    cr_assert_eq(fl_coord_config_set(&c, "allow", "allow"), 0);
    cr_assert_eq(fl_coord_config_set(&c, "key", "hq.key"), 0);
    cr_assert_eq(fl_coord_config_set(&c, "strategy", "krum"), 0);
    cr_assert_eq(fl_coord_config_set(&c, "krum_f", "1"), 0);
    cr_assert_eq(fl_coord_config_check(&c), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "min_clients") && strstr(fl_error_msg(), "krum"), "%s",
              fl_error_msg());
    cr_assert_eq(fl_coord_config_set(&c, "min_clients", "5"), 0);
    cr_assert_eq(fl_coord_config_set(&c, "min_start", "5"), 0);
    cr_assert_eq(fl_coord_config_check(&c), 0, "%s", fl_error_msg());
    /* personalisation epochs */
    cr_assert_eq(fl_coord_config_set(&c, "personalize_epochs", "1001"), FL_EINVAL);
    cr_assert_eq(fl_coord_config_set(&c, "personalize_epochs", "1000"), 0);
}

Test(fl_coord_config, a_strategy_section_names_the_strategy_and_its_settings)
{
    char *dir = fl_test_tmpdir("cfgs");
    char *path = fl_test_path(dir, "coord.ini");
    s_write(path, "[coordinator]\nrounds = 4\n\n[strategy]\nname = fedyogi\nbeta2 = 0.95\n"
                  "server_lr = 0.03\nserver_lr_decay = 0.9\nserver_lr_decay_after = 14\n"
                  "proximal_mu = 0.25\n");
    struct fl_coord_config c;
    fl_coord_config_default(&c);
    cr_assert_eq(fl_coord_config_load(&c, path), 0, "%s", fl_error_msg());
    cr_assert_str_eq(c.strategy, "fedyogi");
    struct fl_strategy_config sc = s_resolved(&c);
    cr_assert_eq(sc.opt, FL_SERVER_OPT_YOGI);
    cr_assert_float_eq(sc.beta2, 0.95, 1e-15);
    cr_assert_float_eq(sc.server_lr, 0.03, 1e-15);
    cr_assert_float_eq(sc.server_lr_decay, 0.9, 1e-15, "the schedule goes with any optimiser");
    cr_assert_eq(sc.server_lr_decay_after, 14);
    cr_assert_float_eq(sc.prox_mu, 0.25, 1e-15, "FedProx's mu goes with any strategy");
    /* "name" is the strategy's key in [strategy] only */
    s_write(path, "[coordinator]\nname = fedyogi\n");
    cr_assert_eq(fl_coord_config_load(&c, path), FL_EFORMAT);
    cr_assert(strstr(fl_error_msg(), "name") && strstr(fl_error_msg(), "line 2"), "%s",
              fl_error_msg());
    s_write(path, "[strategy]\nname = fedmagic\n");
    cr_assert_eq(fl_coord_config_load(&c, path), FL_EFORMAT);
    cr_assert(strstr(fl_error_msg(), "fedmagic"), "%s", fl_error_msg());
    s_write(path, "[strategy]\nname = fedavg\ntau = 0.1\n");
    fl_coord_config_default(&c);
    cr_assert_eq(fl_coord_config_load(&c, path), 0, "%s", fl_error_msg());
    cr_assert_eq(fl_coord_config_strategy(&c, &sc), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "--tau") && strstr(fl_error_msg(), "fedavg"), "%s",
              fl_error_msg());
    fl_test_rmtree(dir);
    free(path);
    free(dir);
}

Test(fl_coord_config, evaluation_table_options_read_a_csv_with_a_header_only_when_set)
{
    struct fl_coord_config c;
    struct fl_table_opts t;
    fl_coord_config_default(&c);
    cr_assert_null(fl_coord_config_eval_table(&c, &t), "none set: the plain CSV reader");
    cr_assert_eq(fl_coord_config_set(&c, "eval_missing", "often"), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "eval_missing") || strstr(fl_error_msg(), "eval-missing"),
              "%s", fl_error_msg());
    cr_assert_eq(fl_coord_config_set(&c, "eval_missing", "drop"), 0);
    const struct fl_table_opts *p = fl_coord_config_eval_table(&c, &t);
    cr_assert_eq(p, &t);
    cr_assert_null(t.label_column);
    cr_assert_null(t.columns);
    cr_assert_eq(t.missing, FL_MISSING_DROP);
    cr_assert_eq(fl_coord_config_set(&c, "eval-label-column", "species"), 0);
    cr_assert_eq(fl_coord_config_set(&c, "eval_columns", "a,b"), 0);
    cr_assert_not_null(fl_coord_config_eval_table(&c, &t));
    cr_assert_str_eq(t.label_column, "species");
    cr_assert_str_eq(t.columns, "a,b");
}

Test(fl_coord_config, secagg_dropout_is_a_fraction_below_a_half_and_only_for_secure_aggregation)
{
    char *dir = fl_test_tmpdir("cfgd");
    char *path = fl_test_path(dir, "coord.ini");
    s_write(
        path,
        "[coordinator]\nbase = b.ftm\nallow = allow\nkey = hq.key\nmin_clients = 3\nmin_start = 3\n"
        "secagg_dropout = 0.3\n");
    struct fl_coord_config c;
    fl_coord_config_default(&c);
    cr_expect_eq(c.secagg_dropout, 0.1);
    cr_assert_eq(fl_coord_config_load(&c, path), 0, "%s", fl_error_msg());
    cr_expect_eq(c.secagg_dropout, 0.3);
    /* set without secure aggregation: refused, naming it */
    cr_assert_eq(fl_coord_config_check(&c), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "--secagg-dropout") &&
                  strstr(fl_error_msg(), "--secure-aggregation"),
              "%s", fl_error_msg());
    cr_assert_eq(fl_coord_config_set(&c, "secure_aggregation", "true"), 0);
    cr_assert_eq(fl_coord_config_check(&c), 0, "%s", fl_error_msg());
    /* [0, 0.5): at a half no graph can keep a strict majority of neighbours */
    cr_expect_eq(fl_coord_config_set(&c, "secagg_dropout", "0"), 0);
    cr_expect_eq(fl_coord_config_set(&c, "secagg_dropout", "0.499"), 0);
    cr_expect_eq(fl_coord_config_set(&c, "secagg_dropout", "0.5"), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "secagg"), "%s", fl_error_msg());
    cr_expect_eq(fl_coord_config_set(&c, "secagg_dropout", "-0.1"), FL_EINVAL);
    cr_expect_eq(c.secagg_dropout, 0.499, "a refused value leaves the setting");
    fl_test_rmtree(dir);
    free(path);
    free(dir);
}
