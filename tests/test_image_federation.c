/* Image folders end to end, with real processes: a federation (scripts/simulate.sh --images)
 * whose branches read their shards as folders of PNG class folders and whose coordinator
 * evaluates on a folder of PNGs; then fedtl eval and predict on those files. The images are
 * the very pixels of a CSV: reading either must give the same accuracy. */
#include <criterion/criterion.h>

#include "fl_error.h"
#include "fl_fs.h"
#include "fl_image.h"
#include "fl_testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FMNIST "/usr/share/datasets/fashion-mnist"

static char *s_dir;

static void s_run_ok(const char *cmd)
{
    char *out = NULL;
    cr_assert_eq(fl_test_run(cmd, &out), 0, "%s\n%s", cmd, out ? out : "");
    free(out);
}

static double s_accuracy(const char *adapter, const char *data)
{
    char cmd[4096], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s/fedtl eval --base %s/base.ftm --adapter %s --data %s --json",
             FEDTL_BIN_DIR, s_dir, adapter, data);
    cr_assert_eq(fl_test_run(cmd, &out), 0, "%s", out);
    char *p = strstr(out, "\"accuracy\":");
    double acc = p ? atof(p + 11) : -1;
    free(out);
    return acc;
}

Test(image_federation, branches_read_png_folders_and_match_csv, .timeout = 600)
{
    s_dir = fl_test_tmpdir("imgfed");
    char cmd[8192], run[1024], test_csv[2048], test_png[2048], adapter[2048];
    /* the base, from IDX (raw bytes, as PNG pixels are read) */
    snprintf(cmd, sizeof cmd,
             "%s/fedtl pretrain --data " FMNIST "/train-images-idx3-ubyte.gz --labels " FMNIST
             "/train-labels-idx1-ubyte.gz --classes 0-4 --samples 4000 --arch cnn-small "
             "--epochs 2 --quiet --out %s/base.ftm",
             FEDTL_BIN_DIR, s_dir);
    s_run_ok(cmd);
    /* a test set of classes 5-9 as CSV, and the same records as PNG class folders */
    snprintf(cmd, sizeof cmd,
             "%s/fedtl partition --data " FMNIST "/t10k-images-idx3-ubyte.gz --labels " FMNIST
             "/t10k-labels-idx1-ubyte.gz --classes 5-9 --samples 600 --clients 1 --iid "
             "--out-dir %s/test >/dev/null && %s/fedtl export-images --data "
             "%s/test/client-00.csv --out %s/test-png --quiet",
             FEDTL_BIN_DIR, s_dir, FEDTL_BIN_DIR, s_dir, s_dir);
    s_run_ok(cmd);
    snprintf(test_csv, sizeof test_csv, "%s/test/client-00.csv", s_dir);
    snprintf(test_png, sizeof test_png, "%s/test-png", s_dir);
    snprintf(run, sizeof run, "%s/run", s_dir);
    snprintf(cmd, sizeof cmd,
             "FEDTL_BIN=%s %s/scripts/simulate.sh --images --run %s --base %s/base.ftm "
             "--branches 3 --rounds 3 --samples 600 --alpha 1.0 --epochs 3 --method head "
             "--deadline 20 --port %d --test %s --quiet",
             FEDTL_BIN_DIR, FEDTL_SRC_DIR, run, s_dir, fl_test_free_port(), test_png);
    s_run_ok(cmd);
    /* the branches were given folders of PNGs, not the CSVs */
    for (int k = 0; k < 3; k++) {
        char shard[2048];
        snprintf(shard, sizeof shard, "%s/shards/client-%02d/5", run, k);
        cr_assert_eq(access(shard, R_OK), 0, "%s missing", shard);
        snprintf(shard, sizeof shard, "%s/logs/branch-%02d.log", run, k);
        char *log = fl_test_slurp(shard);
        cr_assert_not_null(log);
        cr_assert_null(strstr(log, ".csv"), "%s", log);
        free(log);
    }
    char ledger[2048];
    snprintf(ledger, sizeof ledger, "%s/state/rounds.jsonl", run);
    cr_assert_eq(fl_test_count(ledger, "\"aggregated\":true"), 3);
    cr_assert_eq(fl_test_count(ledger, "\"server_eval_accuracy\":"), 3,
                 "the coordinator evaluates on the PNG folder every round");
    /* the trained adapter: the same accuracy whether the test records come as PNG or CSV */
    snprintf(adapter, sizeof adapter, "%s/state/global.fta", run);
    double png = s_accuracy(adapter, test_png), csv = s_accuracy(adapter, test_csv);
    cr_log_info("federated head over PNG folders: %.4f (PNG test set), %.4f (CSV)", png, csv);
    cr_assert_eq(png, csv, "PNG %.4f, CSV %.4f", png, csv);
    cr_assert_gt(png, 0.5, "a head on 5 classes learns better than chance: %.4f", png);
    /* predict: one line per file, the class folder's number as its name */
    snprintf(cmd, sizeof cmd,
             "%s/fedtl predict --base %s/base.ftm --adapter %s --data %s/test-png --json "
             ">%s/pred.json",
             FEDTL_BIN_DIR, s_dir, adapter, s_dir, s_dir);
    s_run_ok(cmd);
    snprintf(cmd, sizeof cmd, "%s/pred.json", s_dir);
    cr_assert_eq(fl_test_count(cmd, "\"probability\":"), 600);
    fl_test_rmtree(s_dir);
    free(s_dir);
}

/* Two class folders of n images each, w x h with c channels. */
static void s_folder(const char *dir, int n, int w, int h, int c)
{
    const char *classes[] = {"ant", "zebra"};
    char path[4200];
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, classes[k]);
        cr_assert_eq(fl_fs_mkdirs(path, 0755), 0);
        for (int i = 0; i < n; i++) {
            struct fl_image img = {.w = w, .h = h, .c = c, .p = malloc((size_t)w * h * c)};
            for (int j = 0; j < w * h * c; j++) /* ants dark, zebras striped */
                img.p[j] = (uint8_t)(k ? (j / c % 2) * 255 : (j * 7 + i) % 60);
            snprintf(path, sizeof path, "%s/%s/%02d.png", dir, classes[k], i);
            cr_assert_eq(fl_image_write(path, &img, 0), 0, "%s", fl_error_msg());
            free(img.p);
        }
    }
}

Test(image_tools, import_records_the_preparation_and_predict_prints_class_names, .timeout = 300)
{
    s_dir = fl_test_tmpdir("imgtool");
    char cmd[8192], *out = NULL, dir[2048];
    /* an imported model of input 3x9x9: its files are resized to 12, then centre-cropped */
    snprintf(cmd, sizeof cmd,
             "%s/fedtl import %s/fuzz/corpus/onnx/ops.onnx --resize 12 --crop 9 --out %s/ops.ftm "
             ">/dev/null && %s/fedtl inspect %s/ops.ftm --json",
             FEDTL_BIN_DIR, FEDTL_SRC_DIR, s_dir, FEDTL_BIN_DIR, s_dir);
    cr_assert_eq(fl_test_run(cmd, &out), 0, "%s", out);
    cr_assert_not_null(strstr(out, "\"images\":{\"resize\":12,\"crop\":9,\"pixel_max\":1}"), "%s",
                       out);
    free(out);
    snprintf(cmd, sizeof cmd,
             "%s/fedtl import %s/fuzz/corpus/onnx/ops.onnx --crop 8 --out %s/bad.ftm",
             FEDTL_BIN_DIR, FEDTL_SRC_DIR, s_dir);
    cr_assert_eq(fl_test_run(cmd, &out), 1, "%s", out);
    cr_assert_not_null(strstr(out, "--crop 8: the model's input is 9 x 9"), "%s", out);
    free(out);
    snprintf(dir, sizeof dir, "%s/rgb", s_dir);
    s_folder(dir, 3, 20, 15, 3);
    snprintf(cmd, sizeof cmd, "%s/fedtl predict --base %s/ops.ftm --data %s", FEDTL_BIN_DIR, s_dir,
             dir);
    cr_assert_eq(fl_test_run(cmd, &out), 0, "%s", out);
    int lines = 0;
    for (char *p = out; (p = strstr(p, ".png\t")); p++)
        lines++;
    cr_assert_eq(lines, 6, "%s", out);
    free(out);
    /* a base pretrained on named class folders records the names; predict prints them */
    snprintf(dir, sizeof dir, "%s/grey", s_dir);
    s_folder(dir, 12, 8, 8, 1);
    snprintf(cmd, sizeof cmd,
             "%s/fedtl pretrain --data %s --arch mlp --epochs 30 --lr 0.01 --quiet --out "
             "%s/named.ftm >/dev/null && %s/fedtl predict --base %s/named.ftm %s/ant/00.png "
             "%s/zebra/05.png --json",
             FEDTL_BIN_DIR, dir, s_dir, FEDTL_BIN_DIR, s_dir, dir, dir);
    cr_assert_eq(fl_test_run(cmd, &out), 0, "%s", out);
    cr_assert_not_null(strstr(out, "00.png\",\"label\":0,\"class\":\"ant\""), "%s", out);
    cr_assert_not_null(strstr(out, "05.png\",\"label\":1,\"class\":\"zebra\""), "%s", out);
    free(out);
    fl_test_rmtree(s_dir);
    free(s_dir);
}
