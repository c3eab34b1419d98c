/* fedtl-client's option table as a default (shipped) build compiles it, even in a test build:
 * CMakeLists.txt compiles client/fl_client_config.c into this test without FEDTL_TESTING, so
 * the malicious-branch switch of test builds (client/fl_attack.h) must leave no trace here:
 * not in --help, not in --check-config, not as an option the command line or a file sets. */
#include <criterion/criterion.h>

#include "fl_client_config.h"
#include "fl_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef FEDTL_TESTING
#error "test_shipped_options must be compiled as a default build is"
#endif

Test(shipped_options, the_client_has_no_test_attack_switch)
{
    struct fl_client_config c;
    fl_client_config_default(&c);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_not_null(f);
    fl_options_help(&fl_client_config_spec, &c, f);
    fl_options_print(&fl_client_config_spec, &c, f);
    fclose(f);
    cr_assert(strstr(text, "--holdout"), "%s", text); /* the help is there */
    cr_assert_null(strstr(text, "attack"), "%s", text);
    cr_assert_null(strstr(text, "Testing"), "%s", text);
    free(text);
    cr_assert_eq(fl_client_config_set(&c, "test_attack", "scale", "command line"), FL_ENOTFOUND);
    cr_assert_eq(fl_client_config_set(&c, "test-attack-factor", "100", "command line"),
                 FL_ENOTFOUND);
    cr_assert_eq(fl_options_check_spec(&fl_client_config_spec), 0, "%s", fl_error_msg());
    fl_client_config_free(&c);
}
