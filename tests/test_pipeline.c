/* The record pipeline through the real fedtl and fedtl-client programs: --cache-budget (a set
 * over it streams from its files and trains to the same bytes), --augment (seeded, refused
 * where it cannot apply, never offered to evaluation), and their bad values refused by name. */
#include <criterion/criterion.h>

#include "fl_error.h"
#include "fl_image.h"
#include "fl_testutil.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char *s_dir;

static void s_setup(void)
{
    s_dir = fl_test_tmpdir("pipeline");
    cr_assert_not_null(s_dir);
}

static void s_teardown(void)
{
    fl_test_rmtree(s_dir);
    free(s_dir);
    s_dir = NULL;
}

TestSuite(fedtl_pipeline, .init = s_setup, .fini = s_teardown, .timeout = 300);

/* Run `PROGRAM ARGS` in the scratch directory; output to *out (caller frees) unless NULL. */
static int s_run(char **out, const char *program, const char *fmt, ...)
{
    char args[2048], cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    cr_assert(len >= 0 && (size_t)len < sizeof args);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s/%s' %s", s_dir, FEDTL_BIN_DIR, program, args);
    char *text = NULL;
    int rc = fl_test_run(cmd, &text);
    cr_assert_not_null(text);
    cr_expect_null(strstr(text, "Sanitizer"), "sanitizer report from `%s %s`:\n%s", program, args,
                   text);
    if (out)
        *out = text;
    else
        free(text);
    return rc;
}

#define S_OK(...)                                                                                  \
    do {                                                                                           \
        char *o_ = NULL;                                                                           \
        int rc_ = s_run(&o_, "fedtl", __VA_ARGS__);                                                \
        cr_assert_eq(rc_, 0, "exited %d:\n%s", rc_, o_);                                           \
        free(o_);                                                                                  \
    } while (0)

/* imgs/<c>/<i>.png for classes 0-3, 20 each: grey 28 x 28 noise with a bar whose column says
 * the class, and a cnn-small base pretrained on classes 0-1 of them. */
static void s_images_and_base(void)
{
    uint32_t state = 5;
    for (int c = 0; c < 4; c++)
        for (int i = 0; i < 20; i++) {
            uint8_t px[28 * 28];
            for (int k = 0; k < 28 * 28; k++)
                px[k] = (uint8_t)((state = state * 1664525u + 1013904223u) >> 25);
            for (int y = 2; y < 26; y++)
                px[y * 28 + 3 + 7 * c] = 250;
            char path[4096];
            snprintf(path, sizeof path, "%s/imgs", s_dir);
            mkdir(path, 0700);
            snprintf(path, sizeof path, "%s/imgs/%d", s_dir, c);
            mkdir(path, 0700);
            snprintf(path, sizeof path, "%s/imgs/%d/%02d.png", s_dir, c, i);
            struct fl_image img = {.w = 28, .h = 28, .c = 1, .p = px};
            cr_assert_eq(fl_image_write(path, &img, 0), 0, "%s", fl_error_msg());
        }
    S_OK("pretrain --data imgs --classes 0-1 --arch cnn-small --epochs 1 --quiet --threads 2 "
         "--out base.ftm");
}

/* The bytes of a file in the scratch directory (malloc'd), its length in *len. */
static char *s_bytes(const char *name, size_t *len)
{
    char *path = fl_test_path(s_dir, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s is missing", path);
    char *buf = malloc(1 << 22);
    *len = fread(buf, 1, 1 << 22, f);
    fclose(f);
    free(path);
    return buf;
}

static void s_expect_same_file(const char *a, const char *b, bool same)
{
    size_t la, lb;
    char *x = s_bytes(a, &la), *y = s_bytes(b, &lb);
    bool eq = la == lb && memcmp(x, y, la) == 0;
    cr_expect_eq(eq, same, "%s and %s should %s", a, b, same ? "be identical" : "differ");
    free(x);
    free(y);
}

Test(fedtl_pipeline, a_tiny_cache_budget_streams_and_writes_the_same_adapter)
{
    s_images_and_base();
    const char *ft = "finetune --base base.ftm --data imgs --classes 1-2 --method lora "
                     "--epochs 3 --threads 2 --quiet";
    S_OK("%s --out held.fta", ft);
    S_OK("%s --cache-budget 1K --out streamed.fta", ft);
    S_OK("%s --cache-budget 1K --cache-mb 0 --out streamed-nocache.fta", ft);
    /* 100 KiB keeps the first 32 of the 80 records decoded (class 1 from its 00 to 11); the
     * rest streams. */
    S_OK("%s --cache-budget 100K --cache-mb 0 --out part-held.fta", ft);
    s_expect_same_file("held.fta", "part-held.fta", true);
    s_expect_same_file("held.fta", "streamed.fta", true);
    s_expect_same_file("held.fta", "streamed-nocache.fta", true);
    S_OK("%s --augment crop,flip --out aug-held.fta", ft);
    S_OK("%s --augment crop,flip --cache-budget 1 --out aug-streamed.fta", ft);
    S_OK("%s --augment crop,flip --cache-budget 100K --out aug-part-held.fta", ft);
    s_expect_same_file("aug-held.fta", "aug-part-held.fta", true);
    /* Evaluation reads streamed records to the same figures. */
    char *held = NULL, *streamed = NULL;
    cr_assert_eq(
        s_run(&held, "fedtl", "eval --base base.ftm --adapter held.fta --data imgs --json"), 0,
        "%s", held);
    cr_assert_eq(s_run(&streamed, "fedtl",
                       "eval --base base.ftm --adapter held.fta --data imgs --json "
                       "--cache-budget 1"),
                 0, "%s", streamed);
    cr_expect_str_eq(held, streamed);
    cr_expect_not_null(strstr(held, "\"n\":40"), "%s", held);
    free(held);
    free(streamed);
    S_OK("%s --augment crop,flip --seed 2 --out aug-seed2.fta", ft);
    s_expect_same_file("aug-held.fta", "aug-streamed.fta", true);
    s_expect_same_file("held.fta", "aug-held.fta", false);
    s_expect_same_file("aug-held.fta", "aug-seed2.fta", false);
}

Test(fedtl_pipeline, pretraining_with_augmentation_is_seeded)
{
    s_images_and_base();
    const char *pt = "pretrain --data imgs --arch cnn-small --epochs 1 --quiet --threads 2 "
                     "--augment flip,crop";
    S_OK("%s --out a.ftm", pt);
    S_OK("%s --cache-budget 4K --out b.ftm", pt);
    S_OK("%s --seed 9 --out c.ftm", pt);
    s_expect_same_file("a.ftm", "b.ftm", true);
    s_expect_same_file("a.ftm", "c.ftm", false);
}

Test(fedtl_pipeline, bad_cache_budgets_are_refused_naming_the_option)
{
    /* As the shell reads them: zero, negative, junk, a fraction, empty, overflowing, a blank. */
    const char *bad[] = {
        "0", "-1", "1X", "abc", "1.5G", "''", "99999999999999999999", "17000000000T", "'1 G'", "G"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *out = NULL;
        int rc = s_run(&out, "fedtl",
                       "finetune --base b.ftm --data d --method head --out o.fta "
                       "--cache-budget %s",
                       bad[i]);
        cr_expect_eq(rc, 2, "--cache-budget %s: exit %d", bad[i], rc);
        cr_expect_not_null(strstr(out, "--cache-budget"), "--cache-budget %s:\n%s", bad[i], out);
        free(out);
    }
    char *out = NULL;
    cr_expect_eq(s_run(&out, "fedtl-client", "--cache-budget 2Q --data d"), 2);
    cr_expect_not_null(strstr(out, "--cache-budget"), "%s", out);
    cr_expect_not_null(strstr(out, "512M, 1G"), "the message shows sizes: %s", out);
    free(out);
    /* What --help shows as the default reads back. */
    cr_expect_eq(s_run(&out, "fedtl", "finetune --help"), 0);
    cr_expect_not_null(strstr(out, "--cache-budget SIZE"), "%s", out);
    cr_expect_not_null(strstr(out, "1G"), "%s", out);
    free(out);
}

Test(fedtl_pipeline, augmentation_is_refused_where_it_cannot_apply)
{
    char *out = NULL;
    /* An unknown operation, at once. */
    cr_expect_eq(s_run(&out, "fedtl",
                       "finetune --augment rotate --base b --data d --method head "
                       "--out o"),
                 2);
    cr_expect_not_null(strstr(out, "rotate"), "%s", out);
    free(out);
    cr_expect_eq(s_run(&out, "fedtl-client", "--augment crop,crop --data d"), 2);
    cr_expect_not_null(strstr(out, "twice"), "%s", out);
    free(out);
    /* Evaluation and prediction never augment: they do not take the flag (eval takes the
     * budget). */
    cr_expect_eq(s_run(&out, "fedtl", "eval --augment crop --base b --data d"), 2);
    cr_expect_not_null(strstr(out, "--augment"), "%s", out);
    free(out);
    cr_expect_eq(s_run(&out, "fedtl", "predict --augment flip --base b --data d"), 2);
    free(out);
    /* A flat base (an MLP over a CSV's features) has no image to crop or flip. */
    char *csv = fl_test_path(s_dir, "t.csv");
    FILE *f = fopen(csv, "w");
    free(csv);
    cr_assert_not_null(f);
    for (int i = 0; i < 40; i++)
        fprintf(f, "%d,%d,%d,%d\n", i % 2, i % 7, (i * 3) % 5, i % 2 ? 4 : -4);
    fclose(f);
    S_OK("pretrain --data t.csv --arch mlp --epochs 1 --quiet --out mlp.ftm");
    int rc = s_run(&out, "fedtl",
                   "finetune --base mlp.ftm --data t.csv --method head --augment flip --quiet "
                   "--out o.fta");
    cr_expect_eq(rc, 1, "%s", out);
    cr_expect_not_null(strstr(out, "augmentation needs image records"), "%s", out);
    free(out);
}
