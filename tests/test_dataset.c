/* Records that stream (fl_dataset's source, the data layer's image folders over a budget): the
 * same records as a load held in memory, through class selection, splits and samples, the same
 * training run, and a file that went bad between epochs named when it is read. */
#include <criterion/criterion.h>

#include "fl_data.h"
#include "fl_error.h"
#include "fl_graphadapt.h"
#include "fl_graphdef.h"
#include "fl_image.h"
#include "fl_model.h"
#include "fl_rng.h"
#include "fl_tensor.h"
#include "fl_testutil.h"
#include "fl_train.h"
#include "fl_zoo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char *s_dir;

static void s_setup(void)
{
    s_dir = fl_test_tmpdir("dataset");
    cr_assert_not_null(s_dir);
}

static void s_teardown(void)
{
    fl_test_rmtree(s_dir);
    free(s_dir);
    s_dir = NULL;
}

TestSuite(fl_dataset, .init = s_setup, .fini = s_teardown, .timeout = 120);

#define S_PER_CLASS 16
#define S_CLASSES   3

/* s_dir/imgs/<c>/<i>.png: grey 28 x 28 noise with a bright bar at a column set by the class. */
static char *s_write_folder(void)
{
    char *root = fl_test_path(s_dir, "imgs");
    cr_assert_eq(mkdir(root, 0700), 0);
    struct fl_rng r;
    fl_rng_seed(&r, 11);
    for (int c = 0; c < S_CLASSES; c++) {
        char dir[4096], path[4200];
        snprintf(dir, sizeof dir, "%s/%d", root, c);
        cr_assert_eq(mkdir(dir, 0700), 0);
        for (int i = 0; i < S_PER_CLASS; i++) {
            uint8_t px[28 * 28];
            for (int k = 0; k < 28 * 28; k++)
                px[k] = (uint8_t)fl_rng_below(&r, 80);
            for (int y = 0; y < 28; y++)
                px[y * 28 + 4 + 9 * c] = 250;
            struct fl_image img = {.w = 28, .h = 28, .c = 1, .p = px};
            snprintf(path, sizeof path, "%s/%02d.png", dir, i);
            cr_assert_eq(fl_image_write(path, &img, 0), 0, "%s", fl_error_msg());
        }
    }
    return root;
}

/* Load root with a budget (0: no limit). */
static void s_load(const char *root, size_t budget, struct fl_dataset *ds)
{
    struct fl_data_opts o = {.budget = budget};
    cr_assert_eq(fl_dataset_load_ex(ds, root, NULL, &o, NULL), 0, "%s", fl_error_msg());
}

/* Every record of a and b (one streamed or not) is the same, bit for bit, label included. */
static void s_expect_same_records(const struct fl_dataset *a, const struct fl_dataset *b)
{
    cr_assert_eq(a->n, b->n);
    cr_assert_eq(a->dim, b->dim);
    cr_expect_eq(a->num_classes, b->num_classes);
    float *xa = fl_falloc(a->n * a->dim), *xb = fl_falloc(b->n * b->dim);
    cr_assert_eq(fl_dataset_read(a, 0, a->n, xa), 0, "%s", fl_error_msg());
    cr_assert_eq(fl_dataset_read(b, 0, b->n, xb), 0, "%s", fl_error_msg());
    cr_expect(memcmp(xa, xb, sizeof(float) * a->n * a->dim) == 0, "the records differ");
    cr_expect(memcmp(a->y, b->y, sizeof(int32_t) * a->n) == 0, "the labels differ");
    free(xa);
    free(xb);
}

Test(fl_dataset, a_folder_over_the_budget_streams_the_same_records)
{
    char *root = s_write_folder();
    struct fl_dataset mem, str;
    s_load(root, 0, &mem);
    /* 48 records of 784 floats take 150528 bytes: a budget one record short streams them. */
    s_load(root, 47 * 784 * sizeof(float), &str);
    struct fl_dataset fits;
    s_load(root, 48 * 784 * sizeof(float), &fits);
    cr_expect(!fl_dataset_streamed(&mem) && mem.x);
    cr_expect(!fl_dataset_streamed(&fits) && fits.x, "a set that fits the budget is held");
    cr_expect(fl_dataset_streamed(&str) && !str.x, "a set over the budget streams");
    cr_expect_eq(str.rows, 28);
    s_expect_same_records(&mem, &str);
    /* Gathering in a shuffled order reads the same records in that order. */
    size_t idx[5] = {40, 3, 17, 3, 0};
    float a[5 * 784], b[5 * 784];
    cr_assert_eq(fl_dataset_gather(&mem, idx, 5, a), 0);
    cr_assert_eq(fl_dataset_gather(&str, idx, 5, b), 0, "%s", fl_error_msg());
    cr_expect(memcmp(a, b, sizeof a) == 0);
    fl_dataset_free(&mem);
    fl_dataset_free(&str);
    fl_dataset_free(&fits);
    free(root);
}

Test(fl_dataset, classes_splits_and_samples_of_streamed_records_match_memory)
{
    char *root = s_write_folder();
    struct fl_dataset mem, str;
    s_load(root, 0, &mem);
    s_load(root, 1, &str);
    const int32_t classes[2] = {2, 0};
    cr_assert_eq(fl_dataset_select_classes(&mem, classes, 2), 0);
    cr_assert_eq(fl_dataset_select_classes(&str, classes, 2), 0);
    s_expect_same_records(&mem, &str);
    struct fl_dataset mtr, mte, strn, ste, mtake, stake;
    cr_assert_eq(fl_dataset_split(&mem, 0.25, 9, &mtr, &mte), 0);
    cr_assert_eq(fl_dataset_split(&str, 0.25, 9, &strn, &ste), 0);
    fl_dataset_free(&str); /* the split's halves keep the source */
    cr_expect(fl_dataset_streamed(&strn) && fl_dataset_streamed(&ste));
    s_expect_same_records(&mtr, &strn);
    s_expect_same_records(&mte, &ste);
    cr_assert_eq(fl_dataset_take(&mtake, &mtr, 10, 4), 0);
    cr_assert_eq(fl_dataset_take(&stake, &strn, 10, 4), 0);
    s_expect_same_records(&mtake, &stake);
    fl_dataset_free(&mem);
    fl_dataset_free(&mtr);
    fl_dataset_free(&mte);
    fl_dataset_free(&strn);
    fl_dataset_free(&ste);
    fl_dataset_free(&mtake);
    fl_dataset_free(&stake);
    free(root);
}

/* Train a fresh cnn-small on ds (2 epochs, seed 3) and return its trainable values, malloc'd,
 * with their count in *n. */
static float *s_train(const struct fl_dataset *ds, unsigned augment, size_t *n)
{
    struct fl_graphdef def;
    struct fl_arch arch;
    struct fl_tensor *params = NULL;
    size_t np = 0;
    fl_graphdef_init(&def);
    cr_assert_eq(fl_zoo_build("cnn-small", 1, 28, 28, S_CLASSES, 5, &def, &params, &np), 0);
    cr_assert_eq(fl_arch_from_graph(&def, "cnn-small", S_CLASSES, &arch), 0);
    fl_pool_t *pool = fl_pool_new(2);
    fl_model_t *m = fl_model_new_graph(&arch, params, np, pool);
    cr_assert_not_null(m, "%s", fl_error_msg());
    fl_zoo_free_params(params, np);
    struct fl_train_opts o;
    fl_train_opts_default(&o);
    o.epochs = 2, o.batch = 8, o.seed = 3, o.augment.ops = augment;
    cr_assert_eq(fl_train(m, ds, &o, NULL, NULL, NULL), 0, "%s", fl_error_msg());
    size_t total = 0, k = fl_model_ntensors(m, FL_SET_TRAINABLE);
    for (size_t i = 0; i < k; i++)
        total += fl_tensor_numel(fl_model_tensor(m, FL_SET_TRAINABLE, i));
    float *w = malloc(total * sizeof *w), *p = w;
    for (size_t i = 0; i < k; i++) {
        const struct fl_tensor *t = fl_model_tensor(m, FL_SET_TRAINABLE, i);
        memcpy(p, t->data, fl_tensor_numel(t) * sizeof *p);
        p += fl_tensor_numel(t);
    }
    *n = total;
    fl_model_destroy(&m);
    fl_pool_destroy(&pool);
    fl_graphdef_free(&def);
    return w;
}

Test(fl_dataset, training_on_streamed_records_gives_the_same_weights)
{
    char *root = s_write_folder();
    struct fl_dataset mem, str;
    s_load(root, 0, &mem);
    s_load(root, 1, &str);
    for (unsigned aug = 0; aug <= (FL_AUGMENT_CROP | FL_AUGMENT_FLIP); aug += 3) {
        size_t na, nb;
        float *a = s_train(&mem, aug, &na), *b = s_train(&str, aug, &nb);
        cr_assert_eq(na, nb);
        cr_expect(memcmp(a, b, na * sizeof *a) == 0, "augment %u: the weights differ", aug);
        free(a);
        free(b);
    }
    /* Evaluation reads streamed records too, with the same figures. */
    struct fl_graphdef def;
    struct fl_arch arch;
    struct fl_tensor *params = NULL;
    size_t np = 0;
    fl_graphdef_init(&def);
    cr_assert_eq(fl_zoo_build("cnn-small", 1, 28, 28, S_CLASSES, 5, &def, &params, &np), 0);
    cr_assert_eq(fl_arch_from_graph(&def, "cnn-small", S_CLASSES, &arch), 0);
    fl_model_t *m = fl_model_new_graph(&arch, params, np, NULL);
    fl_zoo_free_params(params, np);
    struct fl_eval ea, eb;
    cr_assert_eq(fl_evaluate(m, &mem, &ea), 0);
    cr_assert_eq(fl_evaluate(m, &str, &eb), 0, "%s", fl_error_msg());
    cr_expect(ea.n == eb.n && ea.loss == eb.loss && ea.accuracy == eb.accuracy);
    fl_model_destroy(&m);
    fl_graphdef_free(&def);
    fl_dataset_free(&mem);
    fl_dataset_free(&str);
    free(root);
}

Test(fl_dataset, a_file_that_went_bad_is_named_when_streamed)
{
    char *root = s_write_folder();
    struct fl_dataset str;
    s_load(root, 1, &str);
    char path[4200];
    snprintf(path, sizeof path, "%s/1/05.png", root);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fputs("not a png any more", f);
    fclose(f);
    float *x = fl_falloc(str.n * str.dim);
    int rc = fl_dataset_read(&str, 0, str.n, x);
    cr_expect_eq(rc, FL_EFORMAT, "rc %d: %s", rc, fl_error_msg());
    cr_expect_not_null(strstr(fl_error_msg(), "1/05.png"), "message: %s", fl_error_msg());
    free(x);
    fl_dataset_free(&str);
    free(root);
}

Test(fl_dataset, skipping_bad_files_while_streaming_leaves_them_out_and_counts_them)
{
    char *root = s_write_folder();
    char path[4200];
    snprintf(path, sizeof path, "%s/2/03.png", root);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fputs("not a png", f);
    fclose(f);
    struct fl_dataset mem, str;
    struct fl_data_info mi, si;
    struct fl_data_opts o = {.skip_bad = true};
    cr_assert_eq(fl_dataset_load_ex(&mem, root, NULL, &o, &mi), 0, "%s", fl_error_msg());
    o.budget = 1;
    cr_assert_eq(fl_dataset_load_ex(&str, root, NULL, &o, &si), 0, "%s", fl_error_msg());
    cr_expect(fl_dataset_streamed(&str));
    cr_expect_eq(str.n, 47);
    cr_expect_eq(si.skipped, 1);
    cr_expect_eq(mi.skipped, 1);
    cr_assert_eq(si.nfiles, 47);
    cr_expect_null(strstr(si.files[35], "2/03.png"));
    s_expect_same_records(&mem, &str);
    /* Without skip_bad the load still streams: the bad file fails the read naming it. */
    struct fl_dataset bad;
    o.skip_bad = false;
    cr_assert_eq(fl_dataset_load_ex(&bad, root, NULL, &o, NULL), 0, "%s", fl_error_msg());
    float *x = fl_falloc(bad.n * bad.dim);
    cr_expect_eq(fl_dataset_read(&bad, 0, bad.n, x), FL_EFORMAT);
    cr_expect_not_null(strstr(fl_error_msg(), "2/03.png"), "%s", fl_error_msg());
    free(x);
    fl_dataset_free(&bad);
    fl_data_info_free(&mi);
    fl_data_info_free(&si);
    fl_dataset_free(&mem);
    fl_dataset_free(&str);
    free(root);
}

Test(fl_dataset, what_the_budget_holds_stays_decoded_the_rest_streams)
{
    char *root = s_write_folder();
    struct fl_dataset mem, str;
    s_load(root, 0, &mem);
    /* Room for 20 of the 48 records: the first 20 of the listing (class 0's 16, then class 1's
     * 00 to 03) are kept once read, the others decoded again each time. */
    s_load(root, 20 * 784 * sizeof(float), &str);
    cr_assert(fl_dataset_streamed(&str));
    s_expect_same_records(&mem, &str);
    /* Both a kept and a streamed record's file go bad: the kept one still reads, as it was. */
    char path[4200];
    const char *gone[2] = {"1/02.png", "1/09.png"}; /* records 18 (kept) and 25 */
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s", root, gone[k]);
        FILE *f = fopen(path, "wb");
        cr_assert_not_null(f);
        fputs("junk", f);
        fclose(f);
    }
    float a[784], b[784];
    size_t kept = 18, streamed = 25;
    cr_assert_eq(fl_dataset_gather(&str, &kept, 1, a), 0, "%s", fl_error_msg());
    cr_assert_eq(fl_dataset_gather(&mem, &kept, 1, b), 0);
    cr_expect(memcmp(a, b, sizeof a) == 0, "the kept record changed");
    cr_expect_eq(fl_dataset_gather(&str, &streamed, 1, a), FL_EFORMAT);
    cr_expect_not_null(strstr(fl_error_msg(), "1/09.png"), "%s", fl_error_msg());
    fl_dataset_free(&mem);
    fl_dataset_free(&str);
    free(root);
}
