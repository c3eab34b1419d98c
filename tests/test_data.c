/* Tests for fl_data: IDX/CSV loading and its error messages, class selection, split, take,
 * CSV round trip and the IID / Dirichlet federated partition. */
#include <criterion/criterion.h>

#include "fl_data.h"
#include "fl_csv.h"
#include "fl_error.h"
#include "fl_idx.h"
#include "fl_partition.h"
#include "fl_testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static char *s_dir;

static void s_setup(void)
{
    s_dir = fl_test_tmpdir("data");
    cr_assert_not_null(s_dir);
}

static void s_teardown(void)
{
    fl_test_rmtree(s_dir);
    free(s_dir);
    s_dir = NULL;
}

/* Path of name inside the test's scratch directory; static storage, valid until next call
 * with the same slot. */
static const char *s_path(int slot, const char *name)
{
    static char buf[4][512];
    char *p = fl_test_path(s_dir, name);
    snprintf(buf[slot], sizeof buf[slot], "%s", p);
    free(p);
    return buf[slot];
}

static void s_write_bytes(const char *path, bool gz, const void *buf, size_t len)
{
    if (gz) {
        gzFile f = gzopen(path, "wb");
        cr_assert_not_null(f);
        cr_assert_eq(gzwrite(f, buf, (unsigned)len), (int)len);
        cr_assert_eq(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        cr_assert_not_null(f);
        cr_assert_eq(fwrite(buf, 1, len, f), len);
        cr_assert_eq(fclose(f), 0);
    }
}

static void s_write_text(const char *path, const char *text)
{
    s_write_bytes(path, false, text, strlen(text));
}

/* Write an IDX file: header for (type, dims), then len bytes of (already big-endian) data. */
static void s_write_idx(const char *path, bool gz, uint8_t type, int ndims, const uint32_t *dims,
                        const void *data, size_t len)
{
    size_t hlen = 4 + 4 * (size_t)ndims;
    uint8_t *buf = malloc(hlen + len + 1);
    cr_assert_not_null(buf);
    buf[0] = buf[1] = 0;
    buf[2] = type;
    buf[3] = (uint8_t)ndims;
    for (int i = 0; i < ndims; i++) {
        buf[4 + 4 * i] = (uint8_t)(dims[i] >> 24);
        buf[5 + 4 * i] = (uint8_t)(dims[i] >> 16);
        buf[6 + 4 * i] = (uint8_t)(dims[i] >> 8);
        buf[7 + 4 * i] = (uint8_t)dims[i];
    }
    if (len)
        memcpy(buf + hlen, data, len);
    s_write_bytes(path, gz, buf, hlen + len);
    free(buf);
}

/* A 3-image 2x2 ubyte set with labels 0, 2, 1. */
static void s_write_small_pair(const char *images, const char *labels, bool gz)
{
    static const uint8_t px[12] = {0, 1, 2, 255, 10, 20, 30, 40, 7, 7, 7, 7};
    static const uint8_t lb[3] = {0, 2, 1};
    s_write_idx(images, gz, 0x08, 3, (uint32_t[]){3, 2, 2}, px, sizeof px);
    s_write_idx(labels, gz, 0x08, 1, (uint32_t[]){3}, lb, sizeof lb);
}

static void s_assert_msg_has(const char *needle)
{
    cr_assert(strstr(fl_error_msg(), needle), "message '%s' lacks '%s'", fl_error_msg(), needle);
}

/* A dataset of n records in k classes, record i has label (i % k) unless labels given;
 * feature j of record i is i * 10 + j. */
static void s_make(struct fl_dataset *ds, size_t n, size_t dim, int32_t k, const int32_t *labels)
{
    memset(ds, 0, sizeof *ds);
    ds->n = n;
    ds->dim = dim;
    ds->x = calloc(n * dim + 1, sizeof(float));
    ds->y = calloc(n + 1, sizeof(int32_t));
    cr_assert(ds->x && ds->y);
    for (size_t i = 0; i < n; i++) {
        ds->y[i] = labels ? labels[i] : (int32_t)(i % (size_t)k);
        for (size_t j = 0; j < dim; j++)
            ds->x[i * dim + j] = (float)(i * 10 + j);
    }
    ds->num_classes = k;
}

/* ---- IDX ---- */

Test(fl_data, idx_raw_pair_loads_pixels_labels_and_geometry, .init = s_setup, .fini = s_teardown)
{
    const char *im = s_path(0, "img.idx"), *lb = s_path(1, "lab.idx");
    s_write_small_pair(im, lb, false);
    struct fl_dataset ds;
    cr_assert_eq(fl_dataset_load_idx(&ds, im, lb), 0, "%s", fl_error_msg());
    cr_assert_eq(ds.n, 3);
    cr_assert_eq(ds.dim, 4);
    cr_assert_eq(ds.rows, 2);
    cr_assert_eq(ds.cols, 2);
    cr_assert_eq(ds.num_classes, 3);
    cr_assert_eq(((uintptr_t)ds.x) % 64, 0);
    cr_assert_float_eq(ds.x[3], 255.0f, 0);
    cr_assert_float_eq(ds.x[5], 20.0f, 0);
    cr_assert_eq(ds.y[0], 0);
    cr_assert_eq(ds.y[1], 2);
    cr_assert_eq(ds.y[2], 1);
    fl_dataset_free(&ds);
    fl_dataset_free(&ds); /* safe twice */
    cr_assert_null(ds.x);
}

Test(fl_data, idx_gzip_pair_loads_through_fl_dataset_load, .init = s_setup, .fini = s_teardown)
{
    const char *im = s_path(0, "img.idx.gz"), *lb = s_path(1, "lab.idx.gz");
    s_write_small_pair(im, lb, true);
    struct fl_dataset ds;
    cr_assert_eq(fl_dataset_load(&ds, im, lb), 0, "%s", fl_error_msg());
    cr_assert_eq(ds.n, 3);
    cr_assert_eq(ds.dim, 4);
    cr_assert_float_eq(ds.x[4], 10.0f, 0);
    cr_assert_eq(ds.y[1], 2);
    fl_dataset_free(&ds);
}

Test(fl_data, idx_float_images_and_i16_labels_decode_big_endian, .init = s_setup,
     .fini = s_teardown)
{
    /* 2 records of 3 float32 features (2-d, so no image geometry); labels as int16. */
    float vals[6] = {-1.5f, 0.25f, 3e7f, 1.0f, -0.0f, 123.456f};
    uint8_t be[24];
    for (int i = 0; i < 6; i++) {
        uint32_t u;
        memcpy(&u, &vals[i], 4);
        be[4 * i] = (uint8_t)(u >> 24);
        be[4 * i + 1] = (uint8_t)(u >> 16);
        be[4 * i + 2] = (uint8_t)(u >> 8);
        be[4 * i + 3] = (uint8_t)u;
    }
    const uint8_t lab[4] = {0x01, 0x00, 0x00, 0x07}; /* 256, 7 */
    const char *im = s_path(0, "f.idx"), *lb = s_path(1, "l.idx");
    s_write_idx(im, false, 0x0D, 2, (uint32_t[]){2, 3}, be, sizeof be);
    s_write_idx(lb, false, 0x0B, 1, (uint32_t[]){2}, lab, sizeof lab);
    struct fl_dataset ds;
    cr_assert_eq(fl_dataset_load_idx(&ds, im, lb), 0, "%s", fl_error_msg());
    cr_assert_eq(ds.dim, 3);
    cr_assert_eq(ds.rows, 0);
    cr_assert_eq(ds.cols, 0);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(memcmp(&ds.x[i], &vals[i], 4), 0, "value %d", i);
    cr_assert_eq(ds.y[0], 256);
    cr_assert_eq(ds.y[1], 7);
    cr_assert_eq(ds.num_classes, 257);
    fl_dataset_free(&ds);
}

Test(fl_data, idx_count_mismatch_names_both_files, .init = s_setup, .fini = s_teardown)
{
    const char *im = s_path(0, "img.idx"), *lb = s_path(1, "lab.idx");
    s_write_small_pair(im, lb, false);
    s_write_idx(lb, false, 0x08, 1, (uint32_t[]){2}, (uint8_t[]){0, 1}, 2);
    struct fl_dataset ds;
    cr_assert_eq(fl_dataset_load_idx(&ds, im, lb), FL_EMISMATCH);
    s_assert_msg_has(im);
    s_assert_msg_has(lb);
    s_assert_msg_has("has 3 records");
    s_assert_msg_has("has 2");
    cr_assert_null(ds.x);
}

Test(fl_data, idx_truncated_data_names_file_and_record, .init = s_setup, .fini = s_teardown)
{
    const char *im = s_path(0, "img.idx.gz"), *lb = s_path(1, "lab.idx");
    s_write_small_pair(im, lb, false);
    uint8_t px[10] = {0}; /* 2.5 of 3 records of 4 pixels */
    s_write_idx(im, true, 0x08, 3, (uint32_t[]){3, 2, 2}, px, sizeof px);
    struct fl_dataset ds;
    cr_assert_eq(fl_dataset_load_idx(&ds, im, lb), FL_ETRUNC);
    s_assert_msg_has(im);
    s_assert_msg_has("truncated at record 2");
}

Test(fl_data, idx_truncated_header_and_labels, .init = s_setup, .fini = s_teardown)
{
    const char *im = s_path(0, "img.idx"), *lb = s_path(1, "lab.idx");
    s_write_small_pair(im, lb, false);
    s_write_bytes(lb, false, (uint8_t[]){0, 0, 8, 1, 0, 0}, 6);
    struct fl_dataset ds;
    cr_assert_eq(fl_dataset_load_idx(&ds, im, lb), FL_ETRUNC);
    s_assert_msg_has(lb);
    s_assert_msg_has("header");
    s_write_idx(lb, false, 0x08, 1, (uint32_t[]){3}, (uint8_t[]){1}, 1);
    cr_assert_eq(fl_dataset_load_idx(&ds, im, lb), FL_ETRUNC);
    s_assert_msg_has(lb);
    s_assert_msg_has("truncated at record 1");
}

Test(fl_data, idx_header_claiming_more_than_the_file_holds_is_refused_before_allocating,
     .init = s_setup, .fini = s_teardown)
{
    /* 2^30 records of one byte each in a 12-byte file (found by fuzz_idx): no gigabyte
     * allocation, a clear error instead; the same in gzip. */
    const char *im = s_path(0, "img.idx"), *lb = s_path(1, "lab.idx");
    for (int gz = 0; gz < 2; gz++) {
        s_write_idx(im, gz, 0x08, 2, (uint32_t[]){1u << 30, 1}, (uint8_t[]){7}, 1);
        s_write_idx(lb, gz, 0x08, 1, (uint32_t[]){1u << 30}, (uint8_t[]){1}, 1);
        struct fl_dataset ds;
        cr_assert_eq(fl_dataset_load_idx(&ds, im, lb), FL_ETRUNC);
        s_assert_msg_has(im);
        s_assert_msg_has("more than");
    }
}

Test(fl_data, idx_bad_magic_and_unsupported_type, .init = s_setup, .fini = s_teardown)
{
    const char *im = s_path(0, "img.idx"), *lb = s_path(1, "lab.idx");
    s_write_small_pair(im, lb, false);
    s_write_text(im, "P5 28 28 255\n");
    struct fl_dataset ds;
    cr_assert_eq(fl_dataset_load_idx(&ds, im, lb), FL_EFORMAT);
    s_assert_msg_has(im);
    s_assert_msg_has("bad magic");
    s_write_idx(im, false, 0x0A, 1, (uint32_t[]){3}, (uint8_t[]){1, 2, 3}, 3);
    cr_assert_eq(fl_dataset_load_idx(&ds, im, lb), FL_EFORMAT);
    s_assert_msg_has(im);
    s_assert_msg_has("0x0a");
    /* Float labels are refused. */
    s_write_small_pair(im, lb, false);
    s_write_idx(lb, false, 0x0D, 1, (uint32_t[]){3}, (uint8_t[12]){0}, 12);
    cr_assert_eq(fl_dataset_load_idx(&ds, im, lb), FL_EFORMAT);
    s_assert_msg_has(lb);
}

Test(fl_data, idx_trailing_bytes_are_an_error, .init = s_setup, .fini = s_teardown)
{
    const char *im = s_path(0, "img.idx"), *lb = s_path(1, "lab.idx");
    s_write_small_pair(im, lb, false);
    s_write_idx(lb, false, 0x08, 1, (uint32_t[]){3}, (uint8_t[]){0, 1, 2, 9}, 4);
    struct fl_dataset ds;
    cr_assert_eq(fl_dataset_load_idx(&ds, im, lb), FL_EFORMAT);
    s_assert_msg_has(lb);
    s_assert_msg_has("trailing");
}

Test(fl_data, idx_negative_label_names_record, .init = s_setup, .fini = s_teardown)
{
    const char *im = s_path(0, "img.idx"), *lb = s_path(1, "lab.idx");
    s_write_small_pair(im, lb, false);
    s_write_idx(lb, false, 0x09, 1, (uint32_t[]){3}, (uint8_t[]){0, 0xFF, 1}, 3);
    struct fl_dataset ds;
    cr_assert_eq(fl_dataset_load_idx(&ds, im, lb), FL_ERANGE);
    s_assert_msg_has(lb);
    s_assert_msg_has("record 1");
    s_assert_msg_has("negative");
    /* A huge int32 label is out of range too. */
    s_write_idx(lb, false, 0x0C, 1, (uint32_t[]){3},
                (uint8_t[]){0, 0, 0, 1, 0, 0, 0, 2, 0, 0x10, 0, 0}, 12);
    cr_assert_eq(fl_dataset_load_idx(&ds, im, lb), FL_ERANGE);
    s_assert_msg_has("record 2");
}

Test(fl_data, idx_absurd_dimensions_are_refused_before_allocating, .init = s_setup,
     .fini = s_teardown)
{
    const char *im = s_path(0, "img.idx"), *lb = s_path(1, "lab.idx");
    s_write_small_pair(im, lb, false);
    s_write_idx(im, false, 0x08, 4, (uint32_t[]){3, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}, NULL,
                0);
    struct fl_dataset ds;
    cr_assert_eq(fl_dataset_load_idx(&ds, im, lb), FL_ERANGE);
    s_assert_msg_has(im);
    s_write_idx(im, false, 0x08, 3, (uint32_t[]){0xFFFFFFFFu, 2048, 2048}, NULL, 0);
    cr_assert_eq(fl_dataset_load_idx(&ds, im, lb), FL_ERANGE);
    s_assert_msg_has(im);
}

Test(fl_data, idx_without_labels_asks_for_labels, .init = s_setup, .fini = s_teardown)
{
    const char *im = s_path(0, "img.idx.gz"), *lb = s_path(1, "lab.idx.gz");
    s_write_small_pair(im, lb, true);
    struct fl_dataset ds;
    cr_assert_eq(fl_dataset_load(&ds, im, NULL), FL_EINVAL);
    s_assert_msg_has(im);
    s_assert_msg_has("--labels");
}

Test(fl_data, missing_file_is_an_io_error)
{
    struct fl_dataset ds;
    cr_assert_eq(fl_dataset_load(&ds, "/nonexistent/fedtl/x.csv", NULL), FL_EIO);
    s_assert_msg_has("/nonexistent/fedtl/x.csv");
}

/* ---- CSV ---- */

Test(fl_data, csv_header_crlf_spaces_and_blank_lines, .init = s_setup, .fini = s_teardown)
{
    const char *p = s_path(0, "d.csv");
    s_write_text(p, "\n"
                    "label,a,b,c\r\n"
                    "3, 0, 255 ,1.5\r\n"
                    "\r\n"
                    "  \n"
                    "0,-2.25,1e-3, 7\n"
                    "1,4,5,6");
    struct fl_dataset ds;
    cr_assert_eq(fl_dataset_load(&ds, p, NULL), 0, "%s", fl_error_msg());
    cr_assert_eq(ds.n, 3);
    cr_assert_eq(ds.dim, 3);
    cr_assert_eq(ds.rows, 0);
    cr_assert_eq(ds.num_classes, 4);
    cr_assert_eq(ds.y[0], 3);
    cr_assert_eq(ds.y[1], 0);
    cr_assert_eq(ds.y[2], 1);
    cr_assert_float_eq(ds.x[1], 255.0f, 0);
    cr_assert_float_eq(ds.x[2], 1.5f, 0);
    cr_assert_float_eq(ds.x[3], -2.25f, 0);
    cr_assert_float_eq(ds.x[4], 1e-3f, 0);
    cr_assert_float_eq(ds.x[8], 6.0f, 0);
    cr_assert_eq(((uintptr_t)ds.x) % 64, 0);
    fl_dataset_free(&ds);
}

Test(fl_data, csv_gzip_without_header, .init = s_setup, .fini = s_teardown)
{
    const char *p = s_path(0, "d.csv.gz");
    const char *text = "1,2,3\n0,4,5\n";
    s_write_bytes(p, true, text, strlen(text));
    struct fl_dataset ds;
    cr_assert_eq(fl_dataset_load(&ds, p, NULL), 0, "%s", fl_error_msg());
    cr_assert_eq(ds.n, 2);
    cr_assert_eq(ds.dim, 2);
    cr_assert_eq(ds.y[0], 1);
    cr_assert_float_eq(ds.x[3], 5.0f, 0);
    fl_dataset_free(&ds);
}

Test(fl_data, csv_bad_labels_name_file_and_line, .init = s_setup, .fini = s_teardown)
{
    const char *p = s_path(0, "d.csv");
    struct fl_dataset ds;
    s_write_text(p, "1,2,3\n1.5,4,5\n");
    cr_assert_eq(fl_dataset_load_csv(&ds, p), FL_EFORMAT);
    s_assert_msg_has(p);
    s_assert_msg_has("line 2");
    s_assert_msg_has("'1.5'");
    /* A non-integer first field is a header only on the first non-blank line. */
    s_write_text(p, "1,2,3\n0,1,1\nabc,4,5\n");
    cr_assert_eq(fl_dataset_load_csv(&ds, p), FL_EFORMAT);
    s_assert_msg_has("line 3");
    s_assert_msg_has("'abc'");
    s_write_text(p, "1,2,3\n\n-4,4,5\n");
    cr_assert_eq(fl_dataset_load_csv(&ds, p), FL_ERANGE);
    s_assert_msg_has(p);
    s_assert_msg_has("line 3");
    s_assert_msg_has("negative");
    s_write_text(p, "70000,2,3\n");
    cr_assert_eq(fl_dataset_load_csv(&ds, p), FL_ERANGE);
    s_assert_msg_has("line 1");
    s_assert_msg_has("out of range");
    s_write_text(p, "1,2,3\n2\n");
    cr_assert_eq(fl_dataset_load_csv(&ds, p), FL_EFORMAT);
    s_assert_msg_has("line 2");
    cr_assert_null(ds.x);
}

Test(fl_data, csv_non_numeric_feature_names_line_and_column, .init = s_setup, .fini = s_teardown)
{
    const char *p = s_path(0, "d.csv");
    struct fl_dataset ds;
    s_write_text(p, "1,2,3,4\n0,1,abc,3\n");
    cr_assert_eq(fl_dataset_load_csv(&ds, p), FL_EFORMAT);
    s_assert_msg_has(p);
    s_assert_msg_has("line 2, column 3: 'abc' is not a number");
    s_write_text(p, "1,2,3,4\n0,1,2.5x,3\n");
    cr_assert_eq(fl_dataset_load_csv(&ds, p), FL_EFORMAT);
    s_assert_msg_has("line 2, column 3");
    s_write_text(p, "1,2,3,4\n0,1,,3\n");
    cr_assert_eq(fl_dataset_load_csv(&ds, p), FL_EFORMAT);
    s_assert_msg_has("line 2, column 3");
    s_write_text(p, "1,2,3,4\n0,1,2,3,\n");
    cr_assert_eq(fl_dataset_load_csv(&ds, p), FL_EMISMATCH);
    s_assert_msg_has("line 2");
}

Test(fl_data, csv_nan_and_inf_are_errors, .init = s_setup, .fini = s_teardown)
{
    const char *p = s_path(0, "d.csv");
    struct fl_dataset ds;
    s_write_text(p, "1,2,NaN\n");
    cr_assert_eq(fl_dataset_load_csv(&ds, p), FL_EFORMAT);
    s_assert_msg_has("line 1, column 3: 'NaN' is not a finite number");
    s_write_text(p, "1,2,3\n1,-inf,3\n");
    cr_assert_eq(fl_dataset_load_csv(&ds, p), FL_EFORMAT);
    s_assert_msg_has("line 2, column 2");
    s_write_text(p, "1,2,3\n1,1e999,3\n");
    cr_assert_eq(fl_dataset_load_csv(&ds, p), FL_EFORMAT);
    s_assert_msg_has("line 2, column 2");
}

Test(fl_data, csv_wrong_feature_count_names_line_and_counts, .init = s_setup, .fini = s_teardown)
{
    const char *p = s_path(0, "d.csv");
    struct fl_dataset ds;
    s_write_text(p, "h,a,b,c\n1,2,3,4\n0,1,2,3\n\n0,1,2\n");
    cr_assert_eq(fl_dataset_load_csv(&ds, p), FL_EMISMATCH);
    s_assert_msg_has(p);
    s_assert_msg_has("line 5: 2 features, expected 3");
    s_write_text(p, "1,2,3,4\n0,1,2,3,4,5\n");
    cr_assert_eq(fl_dataset_load_csv(&ds, p), FL_EMISMATCH);
    s_assert_msg_has("line 2: 5 features, expected 3");
}

Test(fl_data, csv_without_records_is_an_error, .init = s_setup, .fini = s_teardown)
{
    const char *p = s_path(0, "d.csv");
    struct fl_dataset ds;
    s_write_text(p, "");
    cr_assert_eq(fl_dataset_load(&ds, p, NULL), FL_EFORMAT);
    s_assert_msg_has(p);
    s_assert_msg_has("no records");
    s_write_text(p, "\n \r\n");
    cr_assert_eq(fl_dataset_load(&ds, p, NULL), FL_EFORMAT);
    s_assert_msg_has("no records");
    s_write_text(p, "label,x1,x2\n");
    cr_assert_eq(fl_dataset_load(&ds, p, NULL), FL_EFORMAT);
    s_assert_msg_has("no records");
}

Test(fl_data, write_csv_round_trips_integers_and_floats, .init = s_setup, .fini = s_teardown)
{
    struct fl_dataset ds, back;
    s_make(&ds, 3, 4, 3, NULL);
    ds.x[1] = 0.1f;
    ds.x[2] = -1.0f / 3.0f;
    ds.x[5] = 1e-30f;
    ds.x[6] = 3.4e38f;
    ds.x[7] = -7.0f;
    const char *p = s_path(0, "out.csv");
    cr_assert_eq(fl_dataset_write_csv(&ds, p), 0, "%s", fl_error_msg());
    cr_assert_eq(fl_dataset_load(&back, p, NULL), 0, "%s", fl_error_msg());
    cr_assert_eq(back.n, ds.n);
    cr_assert_eq(back.dim, ds.dim);
    cr_assert_eq(memcmp(back.x, ds.x, ds.n * ds.dim * sizeof(float)), 0);
    cr_assert_eq(memcmp(back.y, ds.y, ds.n * sizeof(int32_t)), 0);
    /* Integral values are written without a decimal point. */
    FILE *f = fopen(p, "r");
    char line[256];
    cr_assert(fgets(line, sizeof line, f));
    fclose(f);
    cr_assert_str_eq(line, "0,0,0.100000001,-0.333333343,3\n");
    fl_dataset_free(&ds);
    fl_dataset_free(&back);
}

/* ---- classes ---- */

Test(fl_data, classes_parse_ranges_and_lists)
{
    int32_t c[16];
    int n;
    cr_assert_eq(fl_classes_parse("5-9", c, 16, &n), 0);
    cr_assert_eq(n, 5);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(c[i], 5 + i);
    cr_assert_eq(fl_classes_parse("0,3,7", c, 16, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert(c[0] == 0 && c[1] == 3 && c[2] == 7);
    cr_assert_eq(fl_classes_parse("2-4, 9", c, 16, &n), 0);
    cr_assert_eq(n, 4);
    cr_assert(c[0] == 2 && c[1] == 3 && c[2] == 4 && c[3] == 9);
    cr_assert_eq(fl_classes_parse("7,5", c, 16, &n), 0);
    cr_assert(n == 2 && c[0] == 7 && c[1] == 5);
}

Test(fl_data, class_names_parse_in_order_and_refuse_what_a_base_cannot_hold)
{
    char names[4][FL_LABEL_NAME_MAX];
    int n = -1;
    cr_assert_eq(fl_class_names_parse("T-shirt/top,caf\xc3\xa9,big dog", names, 4, &n), 0, "%s",
                 fl_error_msg());
    cr_assert_eq(n, 3);
    cr_assert_str_eq(names[0], "T-shirt/top");
    cr_assert_str_eq(names[1], "caf\xc3\xa9");
    cr_assert_str_eq(names[2], "big dog");
    char long_name[FL_LABEL_NAME_MAX + 8];
    memset(long_name, 'x', FL_LABEL_NAME_MAX - 1);
    long_name[FL_LABEL_NAME_MAX - 1] = '\0';
    cr_assert_eq(fl_class_names_parse(long_name, names, 4, &n), 0, "63 bytes fit");
    strcat(long_name, "x");
    static const struct {
        const char *spec; /* the list */
        int rc;           /* what it gives */
        const char *msg;  /* part of the message */
    } bad[] = {
        {"", FL_EINVAL, "empty list"},        {"a,", FL_EINVAL, "name 2 is empty"},
        {",a", FL_EINVAL, "name 1 is empty"}, {"a,b,a", FL_EINVAL, "'a' is named twice"},
        {"a,b\tc", FL_EINVAL, "control"},     {"a,\xff", FL_EINVAL, "not UTF-8"},
        {" a", FL_EINVAL, "space"},           {"a,b,c,d,e", FL_ERANGE, "more than 4"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_eq(fl_class_names_parse(bad[i].spec, names, 4, &n), bad[i].rc, "'%s'",
                     bad[i].spec);
        cr_assert_not_null(strstr(fl_error_msg(), bad[i].msg), "'%s': %s", bad[i].spec,
                           fl_error_msg());
        cr_assert_eq(n, 0);
    }
    cr_assert_eq(fl_class_names_parse(long_name, names, 4, &n), FL_ERANGE);
    cr_assert_not_null(strstr(fl_error_msg(), "at most 63"), "%s", fl_error_msg());
}

Test(fl_data, classes_parse_rejects_junk)
{
    int32_t c[4];
    int n;
    const char *bad[] = {"", "abc", "1,,2", "1,", "-1", "3-1", "1,1", "2-4,3", "1;2", "1-", "5x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(fl_classes_parse(bad[i], c, 4, &n), FL_EINVAL, "'%s'", bad[i]);
        cr_assert_eq(n, 0);
    }
    cr_assert_eq(fl_classes_parse("0-9", c, 4, &n), FL_ERANGE);
}

Test(fl_data, select_classes_renumbers_in_given_order_and_drops_others)
{
    struct fl_dataset ds;
    s_make(&ds, 20, 2, 10, NULL); /* labels 0..9, 0..9 */
    cr_assert_eq(fl_dataset_select_classes(&ds, (int32_t[]){7, 5}, 2), 0, "%s", fl_error_msg());
    cr_assert_eq(ds.n, 4);
    cr_assert_eq(ds.num_classes, 2);
    /* Records 5, 7, 15, 17 in original order: 5 -> 1, 7 -> 0. */
    const int32_t want_y[4] = {1, 0, 1, 0};
    const float want_x0[4] = {50, 70, 150, 170};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(ds.y[i], want_y[i]);
        cr_assert_float_eq(ds.x[i * 2], want_x0[i], 0);
        cr_assert_float_eq(ds.x[i * 2 + 1], want_x0[i] + 1, 0);
    }
    /* A class with no records is fine when others have some (a shard may lack a class)... */
    cr_assert_eq(fl_dataset_select_classes(&ds, (int32_t[]){-1}, 1), FL_ERANGE);
    cr_assert_eq(fl_dataset_select_classes(&ds, (int32_t[]){5}, 1), FL_ENOTFOUND);
    cr_assert_eq(ds.n, 4); /* unchanged on error */
    cr_assert_eq(fl_dataset_select_classes(&ds, (int32_t[]){1, 1}, 2), FL_EINVAL);
    /* ...and keeps its number: labels 0, 1 stay 0, 1 with a third, empty class 9. */
    cr_assert_eq(fl_dataset_select_classes(&ds, (int32_t[]){0, 1, 9}, 3), 0);
    cr_assert_eq(ds.num_classes, 3);
    cr_assert_eq(ds.n, 4);
    fl_dataset_free(&ds);
}

/* ---- subset, split, take ---- */

Test(fl_data, subset_copies_chosen_records_and_checks_indices)
{
    struct fl_dataset ds, sub;
    s_make(&ds, 5, 3, 2, NULL);
    cr_assert_eq(fl_dataset_subset(&sub, &ds, (size_t[]){4, 0}, 2), 0);
    cr_assert_eq(sub.n, 2);
    cr_assert_eq(sub.y[0], 0);
    cr_assert_float_eq(sub.x[0], 40, 0);
    cr_assert_float_eq(sub.x[5], 2, 0);
    fl_dataset_free(&sub);
    cr_assert_eq(fl_dataset_subset(&sub, &ds, (size_t[]){5}, 1), FL_ERANGE);
    fl_dataset_free(&ds);
}

Test(fl_data, by_class_groups_records_in_ascending_order)
{
    struct fl_dataset ds;
    s_make(&ds, 7, 1, 3, (const int32_t[]){2, 0, 2, 1, 0, 2, 0});
    size_t *order, *start;
    cr_assert_eq(fl_dataset_by_class(&ds, &order, &start), 0);
    const size_t want_start[4] = {0, 3, 4, 7}, want_order[7] = {1, 4, 6, 3, 0, 2, 5};
    cr_assert_arr_eq(start, want_start, sizeof want_start);
    cr_assert_arr_eq(order, want_order, sizeof want_order);
    free(order);
    free(start);
    ds.y[3] = 3; /* outside 0..num_classes-1 */
    cr_assert_eq(fl_dataset_by_class(&ds, &order, &start), FL_EINVAL);
    cr_assert_null(order);
    cr_assert_null(start);
    fl_dataset_free(&ds);
}

Test(fl_data, idx_sniff_knows_idx_from_csv)
{
    cr_assert(fl_idx_sniff((const uint8_t[]){0, 0, 0x08, 3}, 4));
    cr_assert(fl_idx_sniff((const uint8_t[]){0, 0, 0x0D}, 3));
    cr_assert_not(fl_idx_sniff((const uint8_t[]){0, 0, 0x0A}, 3)); /* no such type */
    cr_assert_not(fl_idx_sniff((const uint8_t[]){'1', ',', '2'}, 3));
    cr_assert_not(fl_idx_sniff((const uint8_t[]){0, 0}, 2));
}

Test(fl_data, split_is_stratified_disjoint_and_seeded)
{
    struct fl_dataset ds, tr, te, tr2, te2;
    s_make(&ds, 300, 2, 3, NULL);
    cr_assert_eq(fl_dataset_split(&ds, 0.2, 42, &tr, &te), 0);
    cr_assert_eq(tr.n + te.n, 300);
    size_t h[3];
    fl_dataset_histogram(&te, h);
    for (int c = 0; c < 3; c++)
        cr_assert_eq(h[c], 20, "class %d", c);
    /* Each original record (identified by x[0] = 10 i) lands in exactly one side. */
    int seen[300] = {0};
    for (size_t i = 0; i < tr.n; i++)
        seen[(int)tr.x[i * 2] / 10]++;
    for (size_t i = 0; i < te.n; i++)
        seen[(int)te.x[i * 2] / 10]++;
    for (int i = 0; i < 300; i++)
        cr_assert_eq(seen[i], 1);
    cr_assert_eq(fl_dataset_split(&ds, 0.2, 42, &tr2, &te2), 0);
    cr_assert_eq(memcmp(te.x, te2.x, te.n * 2 * sizeof(float)), 0);
    fl_dataset_free(&tr2);
    fl_dataset_free(&te2);
    cr_assert_eq(fl_dataset_split(&ds, 0.2, 43, &tr2, &te2), 0);
    cr_assert_neq(memcmp(te.x, te2.x, te.n * 2 * sizeof(float)), 0);
    fl_dataset_free(&tr2);
    fl_dataset_free(&te2);
    cr_assert_eq(fl_dataset_split(&ds, 1.0, 1, &tr2, &te2), FL_EINVAL);
    cr_assert_eq(fl_dataset_split(&ds, 0.0, 1, &tr2, &te2), 0);
    cr_assert_eq(tr2.n, 300);
    cr_assert_eq(te2.n, 0);
    fl_dataset_free(&tr2);
    fl_dataset_free(&te2);
    fl_dataset_free(&tr);
    fl_dataset_free(&te);
    fl_dataset_free(&ds);
}

Test(fl_data, take_is_class_stratified_and_seeded)
{
    /* 600 of class 0, 300 of class 1, 100 of class 2. */
    int32_t labels[1000];
    for (int i = 0; i < 1000; i++)
        labels[i] = i < 600 ? 0 : i < 900 ? 1 : 2;
    struct fl_dataset ds, a, b;
    s_make(&ds, 1000, 1, 3, labels);
    cr_assert_eq(fl_dataset_take(&a, &ds, 100, 7), 0);
    size_t h[3];
    fl_dataset_histogram(&a, h);
    cr_assert(h[0] == 60 && h[1] == 30 && h[2] == 10, "%zu %zu %zu", h[0], h[1], h[2]);
    cr_assert_eq(fl_dataset_take(&b, &ds, 100, 7), 0);
    cr_assert_eq(memcmp(a.x, b.x, 100 * sizeof(float)), 0);
    fl_dataset_free(&b);
    /* Largest remainder: 11 -> 6.6, 3.3, 1.1 -> 7, 3, 1. */
    cr_assert_eq(fl_dataset_take(&b, &ds, 11, 7), 0);
    fl_dataset_histogram(&b, h);
    cr_assert(h[0] == 7 && h[1] == 3 && h[2] == 1, "%zu %zu %zu", h[0], h[1], h[2]);
    fl_dataset_free(&b);
    cr_assert_eq(fl_dataset_take(&b, &ds, 5000, 7), 0);
    cr_assert_eq(b.n, 1000);
    cr_assert_eq(memcmp(b.x, ds.x, 1000 * sizeof(float)), 0);
    fl_dataset_free(&b);
    fl_dataset_free(&a);
    fl_dataset_free(&ds);
}

/* ---- partition ---- */

/* Every record in exactly one shard, each shard ascending. */
static void s_assert_cover(size_t **idx, const size_t *n, int k, size_t total)
{
    int *seen = calloc(total, sizeof *seen);
    size_t sum = 0;
    for (int c = 0; c < k; c++) {
        sum += n[c];
        for (size_t i = 0; i < n[c]; i++) {
            cr_assert_lt(idx[c][i], total);
            seen[idx[c][i]]++;
            if (i)
                cr_assert_lt(idx[c][i - 1], idx[c][i]);
        }
    }
    cr_assert_eq(sum, total);
    for (size_t i = 0; i < total; i++)
        cr_assert_eq(seen[i], 1, "record %zu", i);
    free(seen);
}

Test(fl_data, partition_iid_near_equal_disjoint_cover)
{
    struct fl_dataset ds;
    s_make(&ds, 103, 1, 10, NULL);
    size_t *idx[7], n[7];
    cr_assert_eq(fl_partition(&ds, 7, 0, 1, 14, idx, n), 0, "%s", fl_error_msg());
    for (int c = 0; c < 7; c++)
        cr_assert(n[c] == 14 || n[c] == 15, "shard %d has %zu", c, n[c]);
    s_assert_cover(idx, n, 7, 103);
    fl_partition_free(idx, 7);
    fl_partition_free(idx, 7);
    cr_assert_eq(fl_partition(&ds, 7, 0, 1, 15, idx, n), FL_ERANGE);
    s_assert_msg_has("min_size");
    fl_dataset_free(&ds);
}

Test(fl_data, partition_dirichlet_reproducible_with_min_size)
{
    struct fl_dataset ds;
    s_make(&ds, 2000, 1, 10, NULL);
    size_t *a[8], na[8], *b[8], nb[8];
    cr_assert_eq(fl_partition(&ds, 8, 0.5, 11, 50, a, na), 0, "%s", fl_error_msg());
    s_assert_cover(a, na, 8, 2000);
    for (int c = 0; c < 8; c++)
        cr_assert_geq(na[c], 50);
    cr_assert_eq(fl_partition(&ds, 8, 0.5, 11, 50, b, nb), 0);
    for (int c = 0; c < 8; c++) {
        cr_assert_eq(na[c], nb[c]);
        cr_assert_eq(memcmp(a[c], b[c], na[c] * sizeof(size_t)), 0);
    }
    fl_partition_free(b, 8);
    cr_assert_eq(fl_partition(&ds, 8, 0.5, 12, 50, b, nb), 0);
    bool differ = false;
    for (int c = 0; c < 8; c++)
        differ = differ || na[c] != nb[c] || memcmp(a[c], b[c], na[c] * sizeof(size_t));
    cr_assert(differ);
    fl_partition_free(a, 8);
    fl_partition_free(b, 8);
    fl_dataset_free(&ds);
}

Test(fl_data, partition_dirichlet_min_size_unreachable_fails)
{
    struct fl_dataset ds;
    s_make(&ds, 200, 1, 2, NULL);
    size_t *idx[10], n[10];
    /* 20 each on average; asking for exactly 20 with a tiny alpha cannot be met. */
    cr_assert_eq(fl_partition(&ds, 10, 0.01, 3, 20, idx, n), FL_ERANGE);
    s_assert_msg_has("min_size 20 is too large");
    for (int c = 0; c < 10; c++)
        cr_assert_null(idx[c]);
    cr_assert_eq(fl_partition(&ds, 10, 0.5, 3, 21, idx, n), FL_ERANGE);
    cr_assert_eq(fl_partition(&ds, 0, 0.5, 3, 0, idx, n), FL_EINVAL);
    fl_dataset_free(&ds);
}

/* Mean over shards of the fraction of the shard taken by its largest class. */
static double s_skew(const struct fl_dataset *ds, double alpha, uint64_t seed)
{
    enum { K = 10 };
    size_t *idx[K], n[K];
    cr_assert_eq(fl_partition(ds, K, alpha, seed, 1, idx, n), 0, "%s", fl_error_msg());
    s_assert_cover(idx, n, K, ds->n);
    double sum = 0;
    for (int c = 0; c < K; c++) {
        size_t h[10] = {0}, mx = 0;
        for (size_t i = 0; i < n[c]; i++)
            h[ds->y[idx[c][i]]]++;
        for (int j = 0; j < 10; j++)
            mx = h[j] > mx ? h[j] : mx;
        sum += (double)mx / (double)n[c];
    }
    fl_partition_free(idx, K);
    return sum / K;
}

Test(fl_data, partition_small_alpha_is_more_skewed)
{
    struct fl_dataset ds;
    s_make(&ds, 5000, 1, 10, NULL);
    double lo = 0, hi = 0;
    for (uint64_t s = 1; s <= 5; s++) {
        lo += s_skew(&ds, 0.1, s) / 5;
        hi += s_skew(&ds, 100.0, s) / 5;
    }
    cr_assert_gt(lo, 0.5, "alpha 0.1 skew %g", lo);
    cr_assert_lt(hi, 0.25, "alpha 100 skew %g", hi);
    fl_dataset_free(&ds);
}

/* ---- real data ---- */

Test(fl_data, real_fashion_mnist_t10k)
{
    const char *dir = "/usr/share/datasets/fashion-mnist";
    if (access("/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz", R_OK) != 0)
        cr_skip_test("Fashion-MNIST not installed in %s", dir);
    struct fl_dataset ds;
    cr_assert_eq(fl_dataset_load(&ds, "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz",
                                 "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"),
                 0, "%s", fl_error_msg());
    cr_assert_eq(ds.n, 10000);
    cr_assert_eq(ds.dim, 784);
    cr_assert_eq(ds.rows, 28);
    cr_assert_eq(ds.cols, 28);
    cr_assert_eq(ds.num_classes, 10);
    size_t h[10];
    fl_dataset_histogram(&ds, h);
    for (int c = 0; c < 10; c++)
        cr_assert_eq(h[c], 1000, "class %d", c);
    float mx = 0;
    for (size_t i = 0; i < ds.n * ds.dim; i++)
        mx = ds.x[i] > mx ? ds.x[i] : mx;
    cr_assert_float_eq(mx, 255.0f, 0);
    fl_dataset_free(&ds);
}

Test(fl_data, csv_of_features_only_for_prediction, .init = s_setup, .fini = s_teardown)
{
    const char *p = s_path(0, "feat.csv");
    s_write_text(p, "f1,f2,f3\n1,2,3\n4.5,5,6\n");
    struct fl_dataset ds;
    cr_assert_eq(fl_dataset_load_csv_features(&ds, p), 0, "%s", fl_error_msg());
    cr_assert_eq(ds.n, 2);
    cr_assert_eq(ds.dim, 3, "every column is a feature");
    cr_assert_float_eq(ds.x[3], 4.5f, 0);
    cr_assert_eq(ds.y[1], 0);
    fl_dataset_free(&ds);
    s_write_text(p, "1,2,3\n4,x,6\n");
    cr_assert_eq(fl_dataset_load_csv_features(&ds, p), FL_EFORMAT);
    s_assert_msg_has("line 2");
}
