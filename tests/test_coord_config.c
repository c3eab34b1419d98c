/* fl_coord_config: settings from flags and INI files, with clear errors for bad values. */
#include <criterion/criterion.h>

#include "fl_coord.h"
#include "fl_error.h"
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
    cr_assert_eq(fl_coord_config_set(&c, "method", "lorax"), 0);
    cr_assert_eq(fl_coord_config_check(&c), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "lorax"), "%s", fl_error_msg());
    cr_assert_eq(fl_coord_config_set(&c, "method", "lora"), 0);
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
