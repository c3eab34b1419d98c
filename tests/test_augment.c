/* Training augmentation (fl_augment): the crop and the flip move exact pixels on hand-made
 * images, draws are a function of (seed, epoch, record) only, and training applies them while
 * evaluation never does. */
#include <criterion/criterion.h>

#include "fl_augment.h"
#include "fl_error.h"
#include "fl_graphadapt.h"
#include "fl_graphdef.h"
#include "fl_model.h"
#include "fl_rng.h"
#include "fl_tensor.h"
#include "fl_train.h"
#include "fl_zoo.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const struct fl_augment_shape s_grey34 = {.c = 1, .h = 3, .w = 4};

/* The grey 3 x 4 image 1..12, row by row. */
static void s_ramp(float *x)
{
    for (int i = 0; i < 12; i++)
        x[i] = (float)(i + 1);
}

static void s_expect_image(const float *got, const float *want, int n, const char *what)
{
    for (int i = 0; i < n; i++)
        cr_expect_eq(got[i], want[i], "%s: value %d is %g, want %g", what, i, got[i], want[i]);
}

Test(fl_augment, flip_mirrors_every_row)
{
    float x[12], tmp[12];
    s_ramp(x);
    fl_augment_apply(&s_grey34, &(struct fl_augment_draw){.flip = true}, x, tmp);
    const float want[12] = {4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9};
    s_expect_image(x, want, 12, "flip");
}

Test(fl_augment, crop_shifts_the_window_and_pads_with_zeros)
{
    float x[12], tmp[12];
    /* The window one row down and one column left: row 0 shows row 1, column 0 is padding. */
    s_ramp(x);
    fl_augment_apply(&s_grey34, &(struct fl_augment_draw){.top = 1, .left = -1}, x, tmp);
    const float down_left[12] = {0, 5, 6, 7, 0, 9, 10, 11, 0, 0, 0, 0};
    s_expect_image(x, down_left, 12, "top 1, left -1");
    /* Two rows up and two columns right. */
    s_ramp(x);
    fl_augment_apply(&s_grey34, &(struct fl_augment_draw){.top = -2, .left = 2}, x, tmp);
    const float up_right[12] = {0, 0, 0, 0, 0, 0, 0, 0, 3, 4, 0, 0};
    s_expect_image(x, up_right, 12, "top -2, left 2");
}

Test(fl_augment, flip_comes_after_the_crop)
{
    float x[12], tmp[12];
    s_ramp(x);
    /* Crop one column right (columns 1..3 and padding), then mirror that. */
    fl_augment_apply(&s_grey34, &(struct fl_augment_draw){.left = 1, .flip = true}, x, tmp);
    const float want[12] = {0, 4, 3, 2, 0, 8, 7, 6, 0, 12, 11, 10};
    s_expect_image(x, want, 12, "left 1, flipped");
}

Test(fl_augment, channels_move_together_in_planes_and_interleaved)
{
    /* 2 channels of 1 x 3: channel k holds 10 k + x. */
    float chw[6] = {0, 1, 2, 10, 11, 12}, hwc[6] = {0, 10, 1, 11, 2, 12}, tmp[6];
    struct fl_augment_draw d = {.left = 1, .flip = true};
    fl_augment_apply(&(struct fl_augment_shape){.c = 2, .h = 1, .w = 3}, &d, chw, tmp);
    fl_augment_apply(&(struct fl_augment_shape){.c = 2, .h = 1, .w = 3, .hwc = true}, &d, hwc, tmp);
    const float want_chw[6] = {0, 2, 1, 0, 12, 11}, want_hwc[6] = {0, 0, 2, 12, 1, 11};
    s_expect_image(chw, want_chw, 6, "planes");
    s_expect_image(hwc, want_hwc, 6, "interleaved");
}

Test(fl_augment, draws_cover_the_padding_and_flip_half_the_time)
{
    struct fl_augment a = {.ops = FL_AUGMENT_CROP | FL_AUGMENT_FLIP};
    int tops[9] = {0}, lefts[9] = {0}, flips = 0, n = 4000;
    for (int r = 0; r < n; r++) {
        struct fl_augment_draw d;
        fl_augment_draw(&a, 7, 1, (uint64_t)r, &d);
        cr_assert(d.top >= -FL_AUGMENT_PAD && d.top <= FL_AUGMENT_PAD);
        cr_assert(d.left >= -FL_AUGMENT_PAD && d.left <= FL_AUGMENT_PAD);
        tops[d.top + 4]++, lefts[d.left + 4]++, flips += d.flip;
    }
    for (int k = 0; k < 9; k++) /* each offset about n / 9 = 444 times */
        cr_expect(tops[k] > 300 && lefts[k] > 300, "offset %d: top %d, left %d times", k - 4,
                  tops[k], lefts[k]);
    cr_expect(flips > n * 45 / 100 && flips < n * 55 / 100, "%d flips of %d", flips, n);
    /* Flip alone never crops; crop alone never flips. */
    struct fl_augment_draw d;
    fl_augment_draw(&(struct fl_augment){.ops = FL_AUGMENT_FLIP}, 7, 1, 3, &d);
    cr_expect(d.top == 0 && d.left == 0);
    for (int r = 0; r < 64; r++) {
        fl_augment_draw(&(struct fl_augment){.ops = FL_AUGMENT_CROP}, 7, 1, (uint64_t)r, &d);
        cr_expect(!d.flip);
    }
}

/* Augment 32 records of 3 x 8 x 8 for (seed, epoch) into x [32, 192]. */
static void s_augment_batch(uint64_t seed, uint64_t epoch, float *x)
{
    struct fl_augment a = {.ops = FL_AUGMENT_CROP | FL_AUGMENT_FLIP};
    struct fl_augment_shape s = {.c = 3, .h = 8, .w = 8};
    float tmp[192];
    for (int i = 0; i < 32 * 192; i++)
        x[i] = (float)(i % 251) + 1;
    for (int r = 0; r < 32; r++)
        fl_augment_record(&a, &s, seed, epoch, (uint64_t)r, x + r * 192, tmp);
}

Test(fl_augment, same_seed_same_records_other_seed_or_epoch_differs)
{
    static float a[32 * 192], b[32 * 192], c[32 * 192], d[32 * 192];
    s_augment_batch(1, 1, a);
    s_augment_batch(1, 1, b);
    s_augment_batch(2, 1, c);
    s_augment_batch(1, 2, d);
    cr_expect(memcmp(a, b, sizeof a) == 0, "the same seed and epoch augment alike");
    cr_expect(memcmp(a, c, sizeof a) != 0, "another seed augments otherwise");
    cr_expect(memcmp(a, d, sizeof a) != 0, "another epoch augments otherwise");
}

Test(fl_augment, parse_reads_the_list_and_refuses_junk)
{
    unsigned ops = 99;
    cr_expect_eq(fl_augment_parse("crop,flip", &ops), 0);
    cr_expect_eq(ops, FL_AUGMENT_CROP | FL_AUGMENT_FLIP);
    cr_expect_eq(fl_augment_parse(" flip , crop ", &ops), 0);
    cr_expect_eq(ops, FL_AUGMENT_CROP | FL_AUGMENT_FLIP);
    cr_expect_eq(fl_augment_parse("flip", &ops), 0);
    cr_expect_eq(ops, FL_AUGMENT_FLIP);
    cr_expect_eq(fl_augment_parse("none", &ops), 0);
    cr_expect_eq(ops, 0u);
    cr_expect_eq(fl_augment_parse("", &ops), 0);
    cr_expect_eq(ops, 0u);
    const char *bad[] = {"rotate", "crop,,flip", "crop,crop", "crop,", "none,flip", "Crop"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_eq(fl_augment_parse(bad[i], &ops), FL_EINVAL, "'%s' accepted", bad[i]);
        cr_expect_not_null(strstr(fl_error_msg(), bad[i]), "message: %s", fl_error_msg());
    }
}

/* A fresh cnn-small (1 x 28 x 28, 3 classes) and 96 records of noise with a bright bar whose
 * column says the class. */
struct s_setup {
    struct fl_graphdef def; /* the graph, borrowed by the model */
    struct fl_arch arch;    /* its architecture */
    fl_model_t *m;          /* the model */
    struct fl_dataset ds;   /* the records */
};

static void s_make(struct s_setup *s)
{
    struct fl_tensor *params = NULL;
    size_t n = 0;
    fl_graphdef_init(&s->def);
    cr_assert_eq(fl_zoo_build("cnn-small", 1, 28, 28, 3, 5, &s->def, &params, &n), 0, "%s",
                 fl_error_msg());
    cr_assert_eq(fl_arch_from_graph(&s->def, "cnn-small", 3, &s->arch), 0, "%s", fl_error_msg());
    s->m = fl_model_new_graph(&s->arch, params, n, NULL);
    cr_assert_not_null(s->m, "%s", fl_error_msg());
    fl_zoo_free_params(params, n);
    s->ds = (struct fl_dataset){.n = 96, .dim = 784, .num_classes = 3};
    s->ds.x = fl_falloc(96 * 784);
    s->ds.y = malloc(96 * sizeof(int32_t));
    struct fl_rng r;
    fl_rng_seed(&r, 3);
    for (size_t i = 0; i < 96; i++) {
        s->ds.y[i] = (int32_t)(i % 3);
        for (size_t j = 0; j < 784; j++)
            s->ds.x[i * 784 + j] = (float)fl_rng_uniform(&r) * 50;
        for (size_t row = 0; row < 28; row++)
            s->ds.x[i * 784 + row * 28 + 4 + 9 * (size_t)s->ds.y[i]] = 255;
    }
}

static void s_free(struct s_setup *s)
{
    fl_model_destroy(&s->m);
    fl_dataset_free(&s->ds);
    fl_graphdef_free(&s->def);
}

Test(fl_augment, training_augments_and_evaluation_does_not)
{
    struct s_setup s;
    s_make(&s);
    struct fl_eval before, after;
    cr_assert_eq(fl_evaluate(s.m, &s.ds, &before), 0);
    /* A learning rate of 0: the weights stay, so only the inputs can move the loss. */
    struct fl_train_opts o;
    fl_train_opts_default(&o);
    o.optimizer = FL_OPT_SGD, o.lr = 0, o.epochs = 1, o.batch = 32;
    struct fl_epoch_stats plain, augmented;
    cr_assert_eq(fl_train(s.m, &s.ds, &o, NULL, NULL, &plain), 0, "%s", fl_error_msg());
    o.augment.ops = FL_AUGMENT_CROP | FL_AUGMENT_FLIP;
    cr_assert_eq(fl_train(s.m, &s.ds, &o, NULL, NULL, &augmented), 0, "%s", fl_error_msg());
    cr_assert_eq(fl_evaluate(s.m, &s.ds, &after), 0);
    cr_expect(fabs(plain.loss - before.loss) < 1e-4, "plain training loss %g, eval %g", plain.loss,
              before.loss);
    cr_expect(fabs(augmented.loss - before.loss) > 1e-3,
              "augmented training loss %g equals the evaluation's %g", augmented.loss, before.loss);
    cr_expect_eq(after.loss, before.loss, "evaluation moved: %g then %g", before.loss, after.loss);
    cr_expect_eq(after.accuracy, before.accuracy);
    s_free(&s);
}

Test(fl_augment, flat_records_are_refused)
{
    struct fl_arch mlp = {.name = "mlp", .in_c = 20, .in_h = 1, .in_w = 1};
    struct fl_augment_shape shape;
    cr_expect_eq(fl_augment_shape_of(&mlp, &shape), FL_EINVAL);
    cr_expect_not_null(strstr(fl_error_msg(), "augmentation needs image records"), "%s",
                       fl_error_msg());
    struct fl_arch img = {.name = "g", .in_c = 3, .in_h = 32, .in_w = 32, .graph = NULL};
    cr_expect_eq(fl_augment_shape_of(&img, &shape), 0);
    cr_expect(shape.c == 3 && shape.h == 32 && shape.w == 32 && !shape.hwc);
}
