/* fl_client_config: fedtl-client's options from INI files and flags, with clear errors. */
#include <criterion/criterion.h>

#include "fl_client_config.h"
#include "fl_error.h"
#include "fl_testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Test(fl_client_config, values_are_checked_and_a_refused_one_changes_nothing)
{
    struct fl_client_config c;
    fl_client_config_default(&c);
    cr_assert_float_eq(c.holdout, 0.2, 1e-12);
    cr_assert_eq(c.connect_timeout_s, 30);
    cr_assert_eq(fl_client_config_set(&c, "holdout", "0.25", "command line"), 0);
    const char *bad_holdout[] = {"0.6", "1", "1.5", "-0.1", "abc", "", "nan", "0.2x"};
    for (size_t i = 0; i < sizeof bad_holdout / sizeof bad_holdout[0]; i++) {
        cr_assert_eq(fl_client_config_set(&c, "holdout", bad_holdout[i], "command line"), FL_EINVAL,
                     "'%s'", bad_holdout[i]);
        cr_assert(strstr(fl_error_msg(), "command line") && strstr(fl_error_msg(), "--holdout"),
                  "%s", fl_error_msg());
    }
    cr_assert_float_eq(c.holdout, 0.25, 1e-12);
    cr_assert_eq(fl_client_config_set(&c, "heartbeat_ms", "500", "f"), 0, "'_' is '-'");
    cr_assert_eq(c.heartbeat_ms, 500);
    cr_assert_eq(fl_client_config_set(&c, "threads", "2.5", "f"), FL_EINVAL);
    cr_assert_eq(fl_client_config_set(&c, "threads", "-1", "f"), FL_EINVAL);
    cr_assert_eq(fl_client_config_set(&c, "insecure", "maybe", "f"), FL_EINVAL);
    /* Booleans read one way: an empty value is no boolean (a bare --insecure on the command
     * line is true, as for every flag). */
    cr_assert_eq(fl_client_config_set(&c, "insecure", "", "f"), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "--insecure"), "%s", fl_error_msg());
    cr_assert_eq(fl_client_config_set(&c, "insecure", "Yes", "f"), 0);
    cr_assert(c.insecure);
    cr_assert_eq(fl_client_config_set(&c, "labels", "l.idx", "f"), 0);
    cr_assert_eq(fl_client_config_set(&c, "labels", "", "f"), 0, "empty unsets an optional one");
    cr_assert_null(c.labels);
    cr_assert_eq(fl_client_config_set(&c, "data", "", "f"), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "empty"), "%s", fl_error_msg());
    cr_assert_eq(fl_client_config_set(&c, "data", "a.csv", "f"), 0);
    cr_assert_eq(fl_client_config_set(&c, "data", "b.csv", "f"), 0, "the later value wins");
    cr_assert_str_eq(c.data, "b.csv");
    cr_assert_eq(fl_client_config_set(&c, "rounds", "3", "f"), FL_ENOTFOUND);
    char longname[300];
    memset(longname, 'k', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    cr_assert_eq(fl_client_config_set(&c, longname, "1", "f"), FL_ENOTFOUND);
    /* Required options, then the cache directory's default. */
    cr_assert_eq(fl_client_config_check(&c), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "required"), "%s", fl_error_msg());
    cr_assert_eq(fl_client_config_set(&c, "coordinator", "tcp://hq:7777", "f"), 0);
    cr_assert_eq(fl_client_config_set(&c, "coordinator-key", "hq.pub", "f"), 0);
    cr_assert_eq(fl_client_config_set(&c, "key", "b.key", "f"), 0);
    cr_assert_eq(fl_client_config_check(&c), 0, "%s", fl_error_msg());
    cr_assert_str_eq(c.cache_dir, "./fedtl-cache");
    fl_client_config_free(&c);
    cr_assert_null(c.data);
    fl_client_config_free(&c);
}

static void s_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

Test(fl_client_config, file_errors_name_the_file_the_line_and_the_key)
{
    char *dir = fl_test_tmpdir("ccfg");
    char *path = fl_test_path(dir, "client.ini");
    struct fl_client_config c;
    /* Other programs' sections are skipped; both spellings of a key are read. */
    s_write(path, "; branch 3\n[coordinator]\nrounds = 3\n[client]\ncoordinator = tcp://hq:1\n"
                  "coordinator_key = hq.pub\nkey = b.key\ndata = d.csv\nholdout = 0.1\n"
                  "connect-timeout = 0\n");
    fl_client_config_default(&c);
    cr_assert_eq(fl_client_config_load(&c, path), 0, "%s", fl_error_msg());
    cr_assert_str_eq(c.coordinator_key, "hq.pub");
    cr_assert_float_eq(c.holdout, 0.1, 1e-12);
    cr_assert_eq(c.connect_timeout_s, 0);
    cr_assert_eq(fl_client_config_check(&c), 0, "%s", fl_error_msg());
    fl_client_config_free(&c);

    s_write(path, "[client]\ncoordinator = tcp://hq:1\nholdout = 7\nkey = b.key\n");
    fl_client_config_default(&c);
    cr_assert_eq(fl_client_config_load(&c, path), FL_EFORMAT);
    cr_assert(strstr(fl_error_msg(), path) && strstr(fl_error_msg(), "line 3") &&
                  strstr(fl_error_msg(), "holdout") && strstr(fl_error_msg(), "'7'"),
              "%s", fl_error_msg());
    cr_assert_str_eq(c.key, "b.key", "later keys are still read");
    fl_client_config_free(&c);

    s_write(path, "[client]\ncoordinator = tcp://hq:1\nno such line\n");
    fl_client_config_default(&c);
    cr_assert_eq(fl_client_config_load(&c, path), FL_EFORMAT);
    cr_assert(strstr(fl_error_msg(), "line 3") && strstr(fl_error_msg(), "syntax"), "%s",
              fl_error_msg());
    fl_client_config_free(&c);

    s_write(path, "[client]\ninsecure\n");
    fl_client_config_default(&c);
    cr_assert_eq(fl_client_config_load(&c, path), FL_EFORMAT, "a key without a value");
    cr_assert(strstr(fl_error_msg(), "line 2"), "%s", fl_error_msg());
    fl_client_config_free(&c);

    s_write(path, "[client]\ninsecure =\n");
    fl_client_config_default(&c);
    cr_assert_eq(fl_client_config_load(&c, path), FL_EFORMAT);
    cr_assert(strstr(fl_error_msg(), "line 2") && strstr(fl_error_msg(), "insecure"), "%s",
              fl_error_msg());
    fl_client_config_free(&c);

    s_write(path, "[elsewhere]\nthreads = 1\n");
    fl_client_config_default(&c);
    cr_assert_eq(fl_client_config_load(&c, path), FL_EFORMAT);
    cr_assert(strstr(fl_error_msg(), "unknown section [elsewhere]"), "%s", fl_error_msg());
    fl_client_config_free(&c);

    s_write(path, "[client]\nbogus = 1\n");
    fl_client_config_default(&c);
    cr_assert_eq(fl_client_config_load(&c, path), FL_EFORMAT);
    cr_assert(strstr(fl_error_msg(), "unknown option 'bogus'"), "%s", fl_error_msg());
    fl_client_config_free(&c);

    char *missing = fl_test_path(dir, "nope.ini");
    cr_assert_eq(fl_client_config_load(&c, missing), FL_EIO);
    cr_assert(strstr(fl_error_msg(), missing), "%s", fl_error_msg());
    free(missing);
    fl_test_rmtree(dir);
    free(path);
    free(dir);
}

Test(fl_client_config, the_printed_configuration_loads_back_the_same)
{
    struct fl_client_config c, d;
    fl_client_config_default(&c);
    const char *set[][2] = {{"coordinator", "tcp://hq:7777"},
                            {"coordinator-key", "hq.pub"},
                            {"key", "b.key"},
                            {"data", "d.csv"},
                            {"holdout", "0.15"},
                            {"insecure", "on"},
                            {"connect-timeout", "0"},
                            {"keep_updates", "rounds"}};
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++)
        cr_assert_eq(fl_client_config_set(&c, set[i][0], set[i][1], "t"), 0, "%s", fl_error_msg());
    cr_assert_eq(fl_client_config_check(&c), 0, "%s", fl_error_msg());
    char *dir = fl_test_tmpdir("ccfgp");
    char *path = fl_test_path(dir, "effective.ini");
    FILE *f = fopen(path, "w");
    fl_options_print(&fl_client_config_spec, &c, f);
    fclose(f);
    fl_client_config_default(&d);
    cr_assert_eq(fl_client_config_load(&d, path), 0, "%s", fl_error_msg());
    cr_assert_str_eq(d.coordinator_key, "hq.pub");
    cr_assert_str_eq(d.cache_dir, "./fedtl-cache");
    cr_assert_str_eq(d.keep_updates, "rounds");
    cr_assert_null(d.labels);
    cr_assert_null(d.out);
    cr_assert(d.insecure);
    cr_assert_float_eq(d.holdout, 0.15, 0);
    cr_assert_eq(d.connect_timeout_s, 0);
    cr_assert_eq(d.threads, c.threads);
    cr_assert_eq(fl_options_check_spec(&fl_client_config_spec), 0, "%s", fl_error_msg());
    fl_client_config_free(&c);
    fl_client_config_free(&d);
    fl_test_rmtree(dir);
    free(dir);
    free(path);
}

Test(fl_client_config, table_options_read_a_csv_with_a_header_only_when_set)
{
    struct fl_client_config c;
    fl_client_config_default(&c);
    cr_assert_eq(fl_client_config_set(&c, "coordinator", "tcp://hq:7777", "f"), 0);
    cr_assert_eq(fl_client_config_set(&c, "coordinator_key", "hq.pub", "f"), 0);
    cr_assert_eq(fl_client_config_set(&c, "key", "b.key", "f"), 0);
    cr_assert_eq(fl_client_config_set(&c, "data", "t.csv", "f"), 0);
    cr_assert_eq(fl_client_config_check(&c), 0, "%s", fl_error_msg());
    cr_assert_null(fl_client_config_table(&c), "none set: the plain CSV reader");
    cr_assert_eq(fl_client_config_set(&c, "missing", "sometimes", "b.ini [client] missing"),
                 FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "b.ini [client] missing") &&
                  strstr(fl_error_msg(), "error, mean or drop"),
              "%s", fl_error_msg());
    cr_assert_eq(fl_client_config_set(&c, "label-column", "species", "f"), 0);
    cr_assert_eq(fl_client_config_set(&c, "columns", "petal_length,petal_width", "f"), 0);
    cr_assert_eq(fl_client_config_set(&c, "missing", "mean", "f"), 0);
    cr_assert_eq(fl_client_config_check(&c), 0, "%s", fl_error_msg());
    const struct fl_table_opts *t = fl_client_config_table(&c);
    cr_assert_not_null(t);
    cr_assert_str_eq(t->label_column, "species");
    cr_assert_str_eq(t->columns, "petal_length,petal_width");
    cr_assert_eq(t->missing, FL_MISSING_MEAN);
    fl_client_config_free(&c);
}
