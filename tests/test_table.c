/* Tests for fl_table: CSV tables read by column name, missing values refused, filled with
 * the column's mean or dropped, and every error naming the file, line and column. */
#include "fl_data.h"
#include "fl_error.h"
#include "fl_fs.h"
#include "fl_table.h"
#include "fl_testutil.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static char *s_dir, *s_path;

static void s_setup(void)
{
    s_dir = fl_test_tmpdir("table");
    s_path = fl_test_path(s_dir, "t.csv");
}

static void s_teardown(void)
{
    fl_test_rmtree(s_dir);
    free(s_path);
    free(s_dir);
}

TestSuite(fl_table, .init = s_setup, .fini = s_teardown);

static int s_load(const char *text, const char *label, const char *cols, enum fl_missing m,
                  struct fl_dataset *ds, size_t *dropped)
{
    cr_assert_eq(fl_fs_write_file(s_path, text, strlen(text), 0644), 0);
    struct fl_table_opts o = {.label_column = label, .columns = cols, .missing = m};
    return fl_table_load(ds, s_path, &o, dropped);
}

static const char s_people[] = "id, age ,height,\"y\"\r\n1,30,170,0\n2,,180,1\n3,40,NA,1\n\n"
                               "4,50,160,2\n";

Test(fl_table, columns_are_chosen_by_name_in_the_order_given)
{
    struct fl_dataset ds;
    cr_assert_eq(s_load("a,b,y,c\n1,2,3,4\n5,6,7,8\n", "y", "c,a", FL_MISSING_ERROR, &ds, NULL), 0,
                 "%s", fl_error_msg());
    cr_assert_eq(ds.n, 2);
    cr_assert_eq(ds.dim, 2);
    float want[] = {4, 1, 8, 5};
    cr_assert_arr_eq(ds.x, want, sizeof want);
    cr_assert_eq(ds.y[1], 7);
    cr_assert_eq(ds.num_classes, 8);
    fl_dataset_free(&ds);
    /* defaults: the first column is the label, the rest are features */
    cr_assert_eq(s_load("y,a,b\n1,2,3\n", NULL, NULL, FL_MISSING_ERROR, &ds, NULL), 0);
    cr_assert_eq(ds.dim, 2);
    cr_assert_eq(ds.y[0], 1);
    fl_dataset_free(&ds);
}

Test(fl_table, a_missing_value_is_an_error_naming_line_and_column)
{
    struct fl_dataset ds;
    cr_assert_eq(s_load(s_people, "y", "age,height", FL_MISSING_ERROR, &ds, NULL), FL_EFORMAT);
    cr_assert_not_null(strstr(fl_error_msg(), "t.csv: line 3, column 2 ('age'): missing value"),
                       "%s", fl_error_msg());
    cr_assert_null(ds.x);
}

Test(fl_table, missing_mean_fills_the_columns_mean)
{
    struct fl_dataset ds;
    cr_assert_eq(s_load(s_people, "y", "age,height", FL_MISSING_MEAN, &ds, NULL), 0, "%s",
                 fl_error_msg());
    cr_assert_eq(ds.n, 4);
    float want[] = {30, 170, 40, 180, 40, 170, 50, 160};
    cr_assert_arr_eq(ds.x, want, sizeof want);
    fl_dataset_free(&ds);
}

Test(fl_table, missing_drop_leaves_the_rows_out_and_counts_them)
{
    struct fl_dataset ds;
    size_t dropped = 0;
    cr_assert_eq(s_load(s_people, "y", "age,height", FL_MISSING_DROP, &ds, &dropped), 0);
    cr_assert_eq(dropped, 2);
    cr_assert_eq(ds.n, 2);
    cr_assert_eq(ds.y[1], 2);
    fl_dataset_free(&ds);
}

Test(fl_table, text_wrong_labels_and_wrong_columns_are_errors_whatever_the_rule)
{
    struct fl_dataset ds;
    cr_assert_eq(s_load("y,a\n1,x\n", NULL, NULL, FL_MISSING_MEAN, &ds, NULL), FL_EFORMAT);
    cr_assert_not_null(strstr(fl_error_msg(), "line 2, column 2 ('a'): 'x' is not a number"), "%s",
                       fl_error_msg());
    cr_assert_eq(s_load("y,a\n1.5,2\n", NULL, NULL, FL_MISSING_DROP, &ds, NULL), FL_EFORMAT);
    cr_assert_not_null(strstr(fl_error_msg(), "label '1.5' is not an integer"), "%s",
                       fl_error_msg());
    cr_assert_eq(s_load("y,a\n1,inf\n", NULL, NULL, FL_MISSING_MEAN, &ds, NULL), FL_EFORMAT);
    cr_assert_eq(s_load("y,a\n1,2,3\n", NULL, NULL, FL_MISSING_ERROR, &ds, NULL), FL_EFORMAT);
    cr_assert_not_null(strstr(fl_error_msg(), "line 2: 3 fields, the header has 2"), "%s",
                       fl_error_msg());
    cr_assert_eq(s_load("y,a\n1,2\n", "z", NULL, FL_MISSING_ERROR, &ds, NULL), FL_EINVAL);
    cr_assert_not_null(strstr(fl_error_msg(), "no column 'z'"), "%s", fl_error_msg());
    cr_assert_eq(s_load("y,a\n1,2\n", NULL, "a,q", FL_MISSING_ERROR, &ds, NULL), FL_EINVAL);
    cr_assert_not_null(strstr(fl_error_msg(), "'q', which the header lacks"), "%s", fl_error_msg());
    cr_assert_eq(s_load("y,a\n1,2\n", NULL, "y", FL_MISSING_ERROR, &ds, NULL), FL_EINVAL);
    cr_assert_eq(s_load("y,a\n,2\n", NULL, NULL, FL_MISSING_MEAN, &ds, NULL), FL_EFORMAT);
    cr_assert_not_null(strstr(fl_error_msg(), "missing label"), "%s", fl_error_msg());
}

Test(fl_table, the_data_layer_reads_a_table_through_its_options)
{
    struct fl_table_opts t = {.label_column = "y", .missing = FL_MISSING_DROP};
    struct fl_data_opts o = {.table = &t};
    struct fl_data_info info;
    struct fl_dataset ds;
    cr_assert_eq(fl_fs_write_file(s_path, s_people, strlen(s_people), 0644), 0);
    cr_assert_eq(fl_dataset_load_ex(&ds, s_path, NULL, &o, &info), 0, "%s", fl_error_msg());
    cr_assert_eq(info.dropped, 2);
    cr_assert_eq(ds.dim, 3); /* id, age, height */
    fl_dataset_free(&ds);
    enum fl_missing m;
    cr_assert_eq(fl_missing_parse("mean", &m), 0);
    cr_assert_eq(m, FL_MISSING_MEAN);
    cr_assert_eq(fl_missing_parse("zero", &m), FL_EINVAL);
}
