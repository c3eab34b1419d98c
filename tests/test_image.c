/* Tests for fl_image (decoding, PIL-exact preparation, hostile files) and fl_imagefolder
 * (class folders, manifests, bad entries with and without skip_bad). */
#include "fl_data.h"
#include "fl_error.h"
#include "fl_fs.h"
#include "fl_image.h"
#include "fl_imagefolder.h"
#include "fl_testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *s_dir;

static void s_setup(void)
{
    s_dir = fl_test_tmpdir("image");
}

static void s_teardown(void)
{
    fl_test_rmtree(s_dir);
    free(s_dir);
}

/* s_dir/name, in a static buffer (one at a time). */
static const char *s_at(const char *name)
{
    static char buf[2][1024];
    static int k;
    k ^= 1;
    snprintf(buf[k], sizeof buf[k], "%s/%s", s_dir, name);
    return buf[k];
}

static void s_mkdir(const char *name)
{
    cr_assert_eq(fl_fs_mkdirs(s_at(name), 0755), 0);
}

/* A w x h image of c channels with a deterministic pattern. */
static struct fl_image s_pattern(int w, int h, int c, unsigned seed)
{
    struct fl_image img = {.w = w, .h = h, .c = c, .p = malloc((size_t)w * h * c)};
    cr_assert_not_null(img.p);
    for (size_t i = 0; i < (size_t)w * h * c; i++) {
        seed = seed * 1103515245u + 12345u;
        img.p[i] = (uint8_t)(seed >> 16);
    }
    return img;
}

static void s_write(const char *name, int w, int h, int c, unsigned seed)
{
    struct fl_image img = s_pattern(w, h, c, seed);
    cr_assert_eq(fl_image_write(s_at(name), &img, 95), 0, "%s", fl_error_msg());
    fl_image_free(&img);
}

static void s_write_bytes(const char *name, const void *buf, size_t len)
{
    FILE *f = fopen(s_at(name), "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(buf, 1, len, f), len);
    fclose(f);
}

static unsigned char *s_read_bytes(const char *name, size_t *len)
{
    FILE *f = fopen(s_at(name), "rb");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    unsigned char *buf = malloc(*len);
    cr_assert_eq(fread(buf, 1, *len, f), *len);
    fclose(f);
    return buf;
}

TestSuite(fl_image, .init = s_setup, .fini = s_teardown);

/* ---- decoding ---- */

Test(fl_image, png_round_trip_is_exact_for_grey_and_rgb)
{
    for (int c = 1; c <= 3; c += 2) {
        struct fl_image want = s_pattern(37, 21, c, 7), got;
        cr_assert_eq(fl_image_write(s_at("a.png"), &want, 0), 0);
        cr_assert_eq(fl_image_read(s_at("a.png"), &got), 0, "%s", fl_error_msg());
        cr_assert_eq(got.w, 37);
        cr_assert_eq(got.h, 21);
        cr_assert_eq(got.c, c);
        cr_assert_arr_eq(got.p, want.p, (size_t)37 * 21 * c);
        fl_image_free(&got);
        fl_image_free(&want);
    }
}

Test(fl_image, jpeg_decodes_close_to_what_was_encoded)
{
    struct fl_image want = {.w = 16, .h = 16, .c = 3, .p = malloc(16 * 16 * 3)}, got;
    for (int i = 0; i < 16 * 16; i++) /* smooth: JPEG keeps it within a few levels */
        want.p[3 * i] = (uint8_t)(i % 16 * 8), want.p[3 * i + 1] = (uint8_t)(i / 16 * 8),
                   want.p[3 * i + 2] = 100;
    cr_assert_eq(fl_image_write(s_at("a.jpg"), &want, 100), 0);
    cr_assert_eq(fl_image_read(s_at("a.jpg"), &got), 0, "%s", fl_error_msg());
    cr_assert_eq(got.c, 3);
    int worst = 0;
    for (int i = 0; i < 16 * 16 * 3; i++)
        worst = abs(got.p[i] - want.p[i]) > worst ? abs(got.p[i] - want.p[i]) : worst;
    cr_assert_leq(worst, 6, "JPEG q100 is off by %d levels", worst);
    fl_image_free(&got);
    fl_image_free(&want);
}

Test(fl_image, truncated_and_corrupt_files_fail_naming_the_file)
{
    s_write("full.png", 64, 64, 3, 1);
    s_write("full.jpg", 64, 64, 3, 1);
    const char *names[] = {"full.png", "full.jpg"};
    for (int k = 0; k < 2; k++) {
        size_t len;
        unsigned char *buf = s_read_bytes(names[k], &len);
        struct fl_image img;
        /* truncated */
        cr_assert_eq(fl_image_decode(buf, len / 2, "half", &img), FL_EFORMAT, "%s", names[k]);
        cr_assert_not_null(strstr(fl_error_msg(), "half"), "%s", fl_error_msg());
        cr_assert_null(img.p);
        /* a run of bytes in the middle overwritten */
        memset(buf + len / 3, 0x5a, 64);
        int rc = fl_image_decode(buf, len, "mangled", &img);
        cr_assert_eq(rc, FL_EFORMAT, "%s: %d %s", names[k], rc, fl_error_msg());
        cr_assert_not_null(strstr(fl_error_msg(), "mangled"));
        free(buf);
    }
}

Test(fl_image, a_file_that_is_not_an_image_is_refused)
{
    struct fl_image img;
    const char text[] = "label,x\n1,2\n";
    cr_assert_eq(fl_image_decode((const uint8_t *)text, sizeof text - 1, "notes.png", &img),
                 FL_EFORMAT);
    cr_assert_not_null(strstr(fl_error_msg(), "notes.png: not an image"), "%s", fl_error_msg());
    cr_assert_eq(fl_image_decode((const uint8_t *)text, 0, "empty.png", &img), FL_EFORMAT);
}

Test(fl_image, a_png_claiming_100000_squared_pixels_is_refused_from_its_header)
{
    /* Signature, IHDR (13 bytes: width, height, depth 8, grey), a bogus CRC, nothing else: the
     * size alone must stop it, before libpng or an allocation. */
    uint8_t png[33] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n',
                       0,    0,   0,   13,  'I',  'H',  'D',  'R'};
    const uint32_t side = 100000;
    for (int i = 0; i < 2; i++)
        for (int b = 0; b < 4; b++)
            png[16 + 4 * i + b] = (uint8_t)(side >> (24 - 8 * b));
    png[24] = 8;
    struct fl_image img;
    cr_assert_eq(fl_image_decode(png, sizeof png, "bomb.png", &img), FL_ERANGE);
    cr_assert_not_null(strstr(fl_error_msg(), "bomb.png"));
    cr_assert_not_null(strstr(fl_error_msg(), "100000 x 100000"), "%s", fl_error_msg());
}

Test(fl_image, a_jpeg_claiming_65000_squared_pixels_is_refused_from_its_header)
{
    s_write("small.jpg", 8, 8, 1, 3);
    size_t len;
    unsigned char *buf = s_read_bytes("small.jpg", &len);
    size_t i = 2;
    while (i + 9 < len && !(buf[i] == 0xff && buf[i + 1] == 0xc0))
        i++;
    cr_assert_lt(i + 9, len, "no SOF0 marker");
    buf[i + 5] = buf[i + 7] = 0xfd, buf[i + 6] = buf[i + 8] = 0xe8; /* 65000 x 65000 */
    struct fl_image img;
    cr_assert_eq(fl_image_decode(buf, len, "bomb.jpg", &img), FL_ERANGE, "%s", fl_error_msg());
    free(buf);
}

/* ---- preparation: known answers (PIL's; tests/test_image_parity.c checks against PIL) ---- */

Test(fl_image, rgb_to_grey_uses_pils_weights)
{
    uint8_t px[] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 10, 20, 30};
    struct fl_image img = {.w = 5, .h = 1, .c = 3, .p = malloc(sizeof px)};
    memcpy(img.p, px, sizeof px);
    cr_assert_eq(fl_image_convert(&img, 1), 0);
    /* PIL: Image.new("RGB", ...).convert("L") gives 76, 150, 29, 255, 18 */
    uint8_t want[] = {76, 150, 29, 255, 18};
    cr_assert_arr_eq(img.p, want, sizeof want);
    cr_assert_eq(fl_image_convert(&img, 3), 0);
    cr_assert_eq(img.p[3], 150);
    cr_assert_eq(img.p[4], 150);
    cr_assert_eq(img.p[5], 150);
    fl_image_free(&img);
}

Test(fl_image, bilinear_downscale_widens_the_filter_as_pil_does)
{
    /* 4 -> 2: support 2, weights 3/7 3/7 1/7 and 1/7 3/7 3/7 */
    struct fl_image img = {.w = 4, .h = 1, .c = 1, .p = malloc(4)};
    uint8_t in[] = {0, 70, 140, 210};
    memcpy(img.p, in, 4);
    cr_assert_eq(fl_image_resize(&img, 2, 1), 0);
    cr_assert_eq(img.p[0], 50);
    cr_assert_eq(img.p[1], 160);
    fl_image_free(&img);
}

Test(fl_image, resize_shorter_keeps_the_aspect_as_torchvision)
{
    struct fl_image img = s_pattern(30, 20, 3, 5);
    cr_assert_eq(fl_image_resize_shorter(&img, 10), 0);
    cr_assert_eq(img.w, 15);
    cr_assert_eq(img.h, 10);
    cr_assert_eq(fl_image_resize_shorter(&img, 10), 0); /* already: unchanged */
    cr_assert_eq(img.w, 15);
    fl_image_free(&img);
    img = s_pattern(20, 33, 1, 5);
    cr_assert_eq(fl_image_resize_shorter(&img, 7), 0);
    cr_assert_eq(img.w, 7);
    cr_assert_eq(img.h, 11); /* int(7 * 33 / 20) = 11 */
    fl_image_free(&img);
}

Test(fl_image, centre_crop_rounds_half_to_even_like_python)
{
    struct fl_image img = {.w = 5, .h = 5, .c = 1, .p = malloc(25)};
    for (int i = 0; i < 25; i++)
        img.p[i] = (uint8_t)i;
    cr_assert_eq(fl_image_crop_center(&img, 2, 2), 0); /* round(1.5) = 2 */
    uint8_t want[] = {12, 13, 17, 18};
    cr_assert_arr_eq(img.p, want, 4);
    cr_assert_eq(fl_image_crop_center(&img, 3, 3), FL_EMISMATCH);
    fl_image_free(&img);
}

Test(fl_image, prepare_writes_chw_scaled_by_pixel_max)
{
    struct fl_image img = {.w = 2, .h = 1, .c = 3, .p = malloc(6)};
    uint8_t px[] = {255, 0, 51, 0, 255, 102};
    memcpy(img.p, px, 6);
    struct fl_image_target t = {.channels = 3, .height = 1, .width = 2, .pixel_max = 1};
    float out[6];
    cr_assert_eq(fl_image_prepare(&img, &t, "x", out, 6), 0, "%s", fl_error_msg());
    float want[] = {1.0f, 0.0f, 0.0f, 1.0f, 0.2f, 0.4f}; /* R plane, G plane, B plane */
    for (int i = 0; i < 6; i++)
        cr_assert_float_eq(out[i], want[i], 1e-7f, "feature %d", i);
    fl_image_free(&img);
    img = (struct fl_image){.w = 1, .h = 1, .c = 1, .p = malloc(1)};
    img.p[0] = 200;
    t = (struct fl_image_target){0}; /* raw bytes, as IDX holds them */
    cr_assert_eq(fl_image_prepare(&img, &t, "x", out, 1), 0);
    cr_assert_eq(out[0], 200.0f);
    cr_assert_eq(fl_image_prepare(&img, &t, "x.png", out, 4), FL_EMISMATCH);
    cr_assert_not_null(strstr(fl_error_msg(), "x.png"));
    fl_image_free(&img);
}

/* The features fl_image_resize_shorter, fl_image_crop_center and ToTensor give, one step at a
 * time on whole images. */
static void s_prepare_by_steps(const struct fl_image *src, const struct fl_image_target *t,
                               float *out)
{
    struct fl_image img = {.w = src->w, .h = src->h, .c = src->c};
    size_t n = (size_t)src->w * src->h * src->c;
    img.p = malloc(n);
    memcpy(img.p, src->p, n);
    cr_assert_eq(fl_image_convert(&img, t->channels), 0);
    cr_assert_eq(fl_image_resize_shorter(&img, t->resize), 0);
    cr_assert_eq(fl_image_crop_center(&img, t->width, t->height), 0);
    size_t plane = (size_t)t->width * t->height;
    for (int ch = 0; ch < img.c; ch++)
        for (size_t i = 0; i < plane; i++) {
            float v = img.p[i * img.c + ch];
            out[t->hwc ? i * img.c + ch : ch * plane + i] = v / 255.0f * t->pixel_max;
        }
    fl_image_free(&img);
}

Test(fl_image, prepare_resamples_only_the_crop_to_the_whole_resizes_values)
{
    /* w, h, c of the file; resize, crop; channels asked; HWC */
    static const int cases[][8] = {
        {256, 192, 3, 128, 112, 3, 0}, {97, 61, 3, 24, 24, 3, 1}, {61, 97, 3, 40, 33, 1, 0},
        {50, 70, 1, 64, 56, 3, 0},     {33, 29, 3, 17, 16, 1, 1}, {120, 90, 1, 13, 13, 1, 0},
        {40, 40, 3, 40, 31, 3, 0},     {9, 300, 3, 8, 8, 3, 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        const int *cs = cases[k];
        struct fl_image img = s_pattern(cs[0], cs[1], cs[2], (unsigned)k + 11);
        struct fl_image_target t = {.channels = cs[5],
                                    .height = cs[4],
                                    .width = cs[4],
                                    .resize = cs[3],
                                    .pixel_max = 1,
                                    .hwc = cs[6]};
        size_t dim = (size_t)cs[5] * cs[4] * cs[4];
        float *got = malloc(dim * sizeof *got), *want = malloc(dim * sizeof *want);
        cr_assert_eq(fl_image_prepare(&img, &t, "x", got, dim), 0, "%s", fl_error_msg());
        cr_assert_eq(img.w, cs[0], "img is left as it was");
        s_prepare_by_steps(&img, &t, want);
        for (size_t i = 0; i < dim; i++)
            cr_assert_eq(got[i], want[i], "case %zu feature %zu: %g, by steps %g", k, i,
                         (double)got[i], (double)want[i]);
        free(got);
        free(want);
        fl_image_free(&img);
    }
}

Test(fl_image, one_threads_buffers_read_file_after_file_as_fresh_reads_do)
{
    /* JPEG and PNG, colour and grey, of different sizes, a corrupt JPEG between them: the
     * reused decoder and buffers give each file what a fresh read gives */
    s_write("a.jpg", 64, 48, 3, 1);
    s_write("b.png", 30, 40, 1, 2);
    cr_assert_eq(fl_fs_write_file(s_at("c.jpg"), "\xff\xd8\xff\xe0garbage", 11, 0644), 0);
    s_write("d.jpg", 200, 150, 3, 3);
    s_write("e.jpg", 20, 25, 1, 4);
    s_write("f.png", 64, 48, 3, 5);
    static const char *const names[] = {"a.jpg", "b.png", "c.jpg", "d.jpg",
                                        "e.jpg", "f.png", "a.jpg"};
    struct fl_image_target t = {
        .channels = 3, .height = 16, .width = 16, .resize = 20, .pixel_max = 1};
    float got[3 * 16 * 16], want[3 * 16 * 16];
    fl_image_work_t *w = fl_image_work_new();
    cr_assert_not_null(w);
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        struct fl_image mine, fresh;
        int rc = fl_image_work_read(w, s_at(names[k]), &mine);
        cr_assert_eq(rc, fl_image_read(s_at(names[k]), &fresh), "%s", names[k]);
        if (rc) {
            cr_assert_eq(rc, FL_EFORMAT);
            cr_assert_not_null(strstr(fl_error_msg(), "c.jpg"), "%s", fl_error_msg());
            continue;
        }
        cr_assert(mine.w == fresh.w && mine.h == fresh.h && mine.c == fresh.c);
        cr_assert_arr_eq(mine.p, fresh.p, (size_t)mine.w * mine.h * mine.c, "%s", names[k]);
        cr_assert_eq(fl_image_work_prepare(w, &mine, &t, names[k], got, sizeof got / 4), 0);
        cr_assert_eq(fl_image_prepare(&fresh, &t, names[k], want, sizeof want / 4), 0);
        cr_assert_arr_eq(got, want, sizeof got, "%s", names[k]);
        fl_image_free(&fresh);
    }
    fl_image_work_destroy(&w);
    fl_image_work_destroy(&w);
    cr_assert_null(w);
}

/* ---- folders and manifests ---- */

static int s_load(const char *name, bool skip_bad, struct fl_dataset *ds, struct fl_data_info *info)
{
    struct fl_data_opts o = {.skip_bad = skip_bad};
    return fl_dataset_load_ex(ds, s_at(name), NULL, &o, info);
}

Test(fl_image, class_folders_are_sorted_names_and_records_match_the_pixels)
{
    s_mkdir("set/zebra");
    s_mkdir("set/ant/deeper");
    s_write("set/zebra/1.png", 4, 3, 1, 11);
    s_write("set/ant/2.PNG", 4, 3, 1, 12);
    s_write("set/ant/deeper/3.png", 4, 3, 1, 13);
    s_write_bytes("set/README.txt", "hi\n", 3);
    s_write_bytes("set/ant/notes.txt", "hi\n", 3);
    struct fl_dataset ds;
    struct fl_data_info info;
    cr_assert_eq(s_load("set", false, &ds, &info), 0, "%s", fl_error_msg());
    cr_assert_eq(ds.n, 3);
    cr_assert_eq(ds.dim, 12);
    cr_assert_eq(ds.num_classes, 2);
    cr_assert_eq(info.nnames, 2);
    cr_assert_str_eq(info.names[0], "ant");
    cr_assert_str_eq(info.names[1], "zebra");
    cr_assert_eq(info.ignored, 2);
    /* ant's files first (sorted: 2.PNG, deeper/3.png), then zebra's */
    cr_assert_eq(ds.y[0], 0);
    cr_assert_eq(ds.y[1], 0);
    cr_assert_eq(ds.y[2], 1);
    cr_assert_not_null(strstr(info.files[1], "deeper/3.png"));
    struct fl_image want = s_pattern(4, 3, 1, 13);
    for (int i = 0; i < 12; i++)
        cr_assert_eq(ds.x[ds.dim + i], (float)want.p[i]);
    fl_image_free(&want);
    fl_dataset_free(&ds);
    fl_data_info_free(&info);
}

Test(fl_image, numbered_class_folders_keep_their_numbers)
{
    s_mkdir("num/5");
    s_mkdir("num/07");
    s_write("num/5/a.png", 2, 2, 1, 1);
    s_write("num/07/b.png", 2, 2, 1, 2);
    struct fl_dataset ds;
    cr_assert_eq(s_load("num", false, &ds, NULL), 0, "%s", fl_error_msg());
    cr_assert_eq(ds.num_classes, 8);
    cr_assert_eq(ds.y[0], 7); /* "07" sorts first */
    cr_assert_eq(ds.y[1], 5);
    fl_dataset_free(&ds);
}

Test(fl_image, an_empty_class_folder_fails_or_is_skipped_and_counted)
{
    s_mkdir("e/full");
    s_mkdir("e/empty");
    s_write("e/full/a.png", 2, 2, 1, 1);
    struct fl_dataset ds;
    struct fl_data_info info;
    cr_assert_eq(s_load("e", false, &ds, NULL), FL_ENOTFOUND);
    cr_assert_not_null(strstr(fl_error_msg(), "e/empty: empty class folder"), "%s", fl_error_msg());
    cr_assert_eq(s_load("e", true, &ds, &info), 0, "%s", fl_error_msg());
    cr_assert_eq(info.skipped, 1);
    cr_assert_eq(ds.n, 1);
    cr_assert_eq(ds.num_classes, 2); /* the empty class keeps its index */
    cr_assert_eq(ds.y[0], 1);
    fl_dataset_free(&ds);
    fl_data_info_free(&info);
}

Test(fl_image, bad_files_fail_naming_them_or_are_skipped)
{
    s_mkdir("b/c");
    s_write("b/c/good.png", 3, 3, 1, 1);
    s_write_bytes("b/c/text.png", "not a png at all", 16);
    s_write("b/c/whole.jpg", 3, 3, 1, 2);
    size_t len;
    unsigned char *jpg = s_read_bytes("b/c/whole.jpg", &len);
    s_write_bytes("b/c/cut.jpg", jpg, len / 2);
    free(jpg);
    cr_assert_eq(unlink(s_at("b/c/whole.jpg")), 0);
    struct fl_dataset ds;
    struct fl_data_info info;
    int rc = s_load("b", false, &ds, NULL);
    cr_assert_eq(rc, FL_EFORMAT);
    cr_assert_not_null(strstr(fl_error_msg(), "b/c/cut.jpg"), "%s", fl_error_msg());
    cr_assert_eq(s_load("b", true, &ds, &info), 0, "%s", fl_error_msg());
    cr_assert_eq(info.skipped, 2);
    cr_assert_eq(ds.n, 1);
    cr_assert_not_null(strstr(info.files[0], "good.png"));
    fl_dataset_free(&ds);
    fl_data_info_free(&info);
}

Test(fl_image, symlink_loops_are_refused_naming_the_link)
{
    s_mkdir("l/a");
    s_write("l/a/x.png", 2, 2, 1, 1);
    cr_assert_eq(symlink("..", s_at("l/a/up")), 0);
    struct fl_dataset ds;
    struct fl_data_info info;
    cr_assert_eq(s_load("l", false, &ds, NULL), FL_EINVAL);
    cr_assert_not_null(strstr(fl_error_msg(), "l/a/up: a symlink loop"), "%s", fl_error_msg());
    cr_assert_eq(s_load("l", true, &ds, &info), 0, "%s", fl_error_msg());
    cr_assert_eq(info.skipped, 1);
    fl_dataset_free(&ds);
    fl_data_info_free(&info);
    cr_assert_eq(unlink(s_at("l/a/up")), 0);
    cr_assert_eq(symlink("self.png", s_at("l/a/self.png")), 0); /* a link to itself */
    cr_assert_eq(s_load("l", false, &ds, NULL), FL_EIO);
    cr_assert_not_null(strstr(fl_error_msg(), "self.png"), "%s", fl_error_msg());
    cr_assert_not_null(strstr(fl_error_msg(), "symlink loop"), "%s", fl_error_msg());
}

Test(fl_image, manifest_paths_are_relative_and_kept_inside_its_folder)
{
    s_mkdir("m/imgs");
    s_write("m/imgs/a.png", 2, 2, 1, 1);
    s_write("m/imgs/b.png", 2, 2, 1, 2);
    s_write("outside.png", 2, 2, 1, 3);
    const char *named = "path,label\nimgs/a.png,dog\r\nimgs/b.png,cat\n";
    s_write_bytes("m/named.csv", named, strlen(named));
    struct fl_dataset ds;
    struct fl_data_info info;
    cr_assert(fl_data_is_images(s_at("m/named.csv")));
    cr_assert_eq(s_load("m/named.csv", false, &ds, &info), 0, "%s", fl_error_msg());
    cr_assert_eq(ds.n, 2);
    cr_assert_str_eq(info.names[0], "cat");
    cr_assert_eq(ds.y[0], 1);
    cr_assert_eq(ds.y[1], 0);
    fl_dataset_free(&ds);
    fl_data_info_free(&info);
    const char *escape = "imgs/a.png,3\n../outside.png,1\n";
    s_write_bytes("m/escape.csv", escape, strlen(escape));
    cr_assert_eq(s_load("m/escape.csv", false, &ds, NULL), FL_EINVAL);
    cr_assert_not_null(strstr(fl_error_msg(), "line 2: '../outside.png' lies outside"), "%s",
                       fl_error_msg());
    cr_assert_eq(s_load("m/escape.csv", true, &ds, &info), 0, "%s", fl_error_msg());
    cr_assert_eq(info.skipped, 1);
    cr_assert_eq(ds.y[0], 3);
    cr_assert_eq(ds.num_classes, 4);
    fl_dataset_free(&ds);
    fl_data_info_free(&info);
    char abs[2048];
    snprintf(abs, sizeof abs, "imgs/a.png,0\n%s,0\n", s_at("outside.png"));
    s_write_bytes("m/abs.csv", abs, strlen(abs));
    cr_assert_eq(s_load("m/abs.csv", false, &ds, NULL), FL_EINVAL);
    cr_assert_not_null(strstr(fl_error_msg(), "absolute path"), "%s", fl_error_msg());
    cr_assert_eq(symlink(s_at("outside.png"), s_at("m/imgs/link.png")), 0);
    const char *link = "imgs/link.png,0\n";
    s_write_bytes("m/link.csv", link, strlen(link));
    cr_assert_eq(s_load("m/link.csv", false, &ds, NULL), FL_EINVAL, "a symlink out is refused");
}

Test(fl_image, images_of_a_base_are_resized_and_cropped_to_its_input)
{
    s_mkdir("r/a");
    s_write("r/a/wide.jpg", 40, 30, 3, 1);
    s_write("r/a/tall.png", 25, 50, 1, 2);
    struct fl_image_target t = {.channels = 1, .height = 16, .width = 16, .resize = 20};
    struct fl_data_opts o = {.image = &t};
    struct fl_dataset ds;
    cr_assert_eq(fl_dataset_load_ex(&ds, s_at("r"), NULL, &o, NULL), 0, "%s", fl_error_msg());
    cr_assert_eq(ds.dim, 256);
    cr_assert_eq(ds.rows, 16);
    fl_dataset_free(&ds);
    t.resize = 0; /* no resize: 25 x 50 is cropped, fine; but a smaller image is refused */
    t.height = t.width = 28;
    cr_assert_eq(fl_dataset_load_ex(&ds, s_at("r"), NULL, &o, NULL), FL_EMISMATCH);
    cr_assert_not_null(strstr(fl_error_msg(), "tall.png"), "%s", fl_error_msg());
}

Test(fl_image, decoding_on_a_pool_gives_the_records_of_one_thread)
{
    s_mkdir("p/0");
    s_mkdir("p/1");
    char name[64];
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "p/%d/%02d.%s", i % 2, i, i % 3 ? "png" : "jpg");
        s_write(name, 9, 9, 3, (unsigned)i);
    }
    fl_pool_t *one = fl_pool_new(1), *four = fl_pool_new(4);
    struct fl_data_opts o1 = {.pool = one}, o4 = {.pool = four};
    struct fl_dataset a, b;
    cr_assert_eq(fl_dataset_load_ex(&a, s_at("p"), NULL, &o1, NULL), 0);
    cr_assert_eq(fl_dataset_load_ex(&b, s_at("p"), NULL, &o4, NULL), 0);
    cr_assert_eq(a.n, 40);
    cr_assert_eq(memcmp(a.x, b.x, a.n * a.dim * sizeof(float)), 0);
    cr_assert_eq(memcmp(a.y, b.y, a.n * sizeof(int32_t)), 0);
    fl_dataset_free(&a);
    fl_dataset_free(&b);
    fl_pool_destroy(&one);
    fl_pool_destroy(&four);
}
