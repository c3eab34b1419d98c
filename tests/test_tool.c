/* End-to-end tests of the fedtl tool: the real binary, run as a process on real files in a
 * scratch directory. The data is a synthetic, seeded set of Gaussian blobs (4 classes, 20
 * features on very different scales) small enough that every command takes well under a second. */
#include <criterion/criterion.h>

#include <cJSON.h>

#include "fl_image.h"
#include "fl_testutil.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_FEATURES 20
#define S_CLASSES  4
#define S_NTRAIN   600 /* 150 per class */
#define S_NTEST    300 /* 75 per class */

/* Criterion's init/fini fixtures can only reach the scratch directory through file scope;
 * each test runs in its own process, so nothing is shared between tests. */
static char *s_dir;

static void s_setup(void)
{
    s_dir = fl_test_tmpdir("tool");
    cr_assert_not_null(s_dir);
}

static void s_teardown(void)
{
    fl_test_rmtree(s_dir);
    free(s_dir);
    s_dir = NULL;
}

TestSuite(fedtl_tool, .init = s_setup, .fini = s_teardown, .timeout = 120);

/* ---- synthetic data ------------------------------------------------------------------- */

static uint64_t s_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double s_gauss(uint64_t *state)
{
    double u = ((double)(s_next(state) >> 11) + 0.5) / 9007199254740992.0;
    double v = (double)(s_next(state) >> 11) / 9007199254740992.0;
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* Write n records to name (in the scratch directory): record i has label i % 4, features
 * drawn around that class's centre (the same centres for every file) with seeded noise, then
 * shifted and scaled per feature so that input normalisation matters. */
static void s_write_blobs(const char *name, size_t n, uint64_t seed, bool header)
{
    double centre[S_CLASSES][S_FEATURES];
    uint64_t cs = 42;
    for (int c = 0; c < S_CLASSES; c++)
        for (int j = 0; j < S_FEATURES; j++)
            centre[c][j] = 0.8 * s_gauss(&cs);
    char *path = fl_test_path(s_dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot create %s", path);
    if (header) {
        fprintf(f, "label");
        for (int j = 0; j < S_FEATURES; j++)
            fprintf(f, ",f%d", j);
        fprintf(f, "\n");
    }
    for (size_t i = 0; i < n; i++) {
        int c = (int)(i % S_CLASSES);
        fprintf(f, "%d", c);
        for (int j = 0; j < S_FEATURES; j++) {
            double x = centre[c][j] + s_gauss(&seed);
            fprintf(f, ",%.5f", 10.0 + 5.0 * j + (1 + j % 5) * x);
        }
        fprintf(f, "\n");
    }
    cr_assert_eq(fclose(f), 0);
    free(path);
}

/* The standard train.csv (no header) and test.csv (with a header line). */
static void s_write_data(void)
{
    s_write_blobs("train.csv", S_NTRAIN, 1, false);
    s_write_blobs("test.csv", S_NTEST, 2, true);
}

/* ---- running the tool ----------------------------------------------------------------- */

/* Run `fedtl ARGS` (printf-style) inside the scratch directory, so that file names in messages
 * are the short relative ones. stdout+stderr go to *out (caller frees) unless out is NULL.
 * Every run must be free of sanitizer reports, error paths included. Returns the exit status. */
static int s_fedtl(char **out, const char *fmt, ...)
{
    char args[2048], cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    cr_assert(len >= 0 && (size_t)len < sizeof args);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s/fedtl' %s", s_dir, FEDTL_BIN_DIR, args);
    char *text = NULL;
    int rc = fl_test_run(cmd, &text);
    cr_assert_not_null(text, "no output captured from: %s", cmd);
    cr_expect_null(strstr(text, "Sanitizer"), "sanitizer report from `fedtl %s`:\n%s", args, text);
    if (out)
        *out = text;
    else
        free(text);
    return rc;
}

/* Run a command that must succeed; its output is returned (caller frees). */
static char *s_fedtl_ok(const char *fmt, ...)
{
    char args[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    char *out = NULL;
    int rc = s_fedtl(&out, "%s", args);
    cr_assert_eq(rc, 0, "`fedtl %s` exited %d:\n%s", args, rc, out);
    return out;
}

/* Pretrain an MLP base on train.csv; returns its 64-hex content hash as printed (caller frees). */
static char *s_pretrain(const char *out_name, const char *classes, int seed)
{
    char *out = s_fedtl_ok("pretrain --data train.csv --classes %s --arch mlp --epochs 4 "
                           "--seed %d --quiet --out %s",
                           classes, seed, out_name);
    char want[256];
    snprintf(want, sizeof want, "wrote %s (base ", out_name);
    const char *p = strstr(out, want);
    cr_assert_not_null(p, "no 'wrote' line in:\n%s", out);
    p += strlen(want);
    char *hash = strndup(p, 64);
    cr_assert_eq(strlen(hash), 64);
    free(out);
    return hash;
}

/* The number "key" of the JSON object json; NAN when json is not an object or has none. */
static double s_json_num(const char *json, const char *key)
{
    cJSON *o = cJSON_Parse(json);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    double n = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    cJSON_Delete(o);
    return n;
}

/* The string "key" of the JSON object json, malloc'd; NULL when absent. */
static char *s_json_str(const char *json, const char *key)
{
    cJSON *o = cJSON_Parse(json);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    char *str = cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
    cJSON_Delete(o);
    return str;
}

/* Per-class accuracy of original class label c from eval --json; NAN when absent. */
static double s_class_acc(const char *json, int c)
{
    cJSON *o = cJSON_Parse(json);
    double acc = NAN;
    const cJSON *k;
    cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(o, "per_class"))
    {
        const cJSON *cls = cJSON_GetObjectItemCaseSensitive(k, "class");
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(k, "accuracy");
        if (cJSON_IsNumber(cls) && cls->valuedouble == c && cJSON_IsNumber(a))
            acc = a->valuedouble;
    }
    cJSON_Delete(o);
    return acc;
}

static bool s_is_hex64(const char *s)
{
    if (!s || strlen(s) != 64)
        return false;
    for (const char *p = s; *p; p++)
        if (!isxdigit((unsigned char)*p) || isupper((unsigned char)*p))
            return false;
    return true;
}

/* Whole contents of a scratch file, malloc'd and NUL-terminated; *len its size. */
static char *s_slurp(const char *name, size_t *len)
{
    char *path = fl_test_path(s_dir, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    free(path);
    if (len)
        *len = (size_t)n;
    return buf;
}

static void s_spit(const char *name, const void *buf, size_t len)
{
    char *path = fl_test_path(s_dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s", path);
    cr_assert_eq(fwrite(buf, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
    free(path);
}

static size_t s_count_lines(const char *text)
{
    size_t n = 0;
    for (const char *p = text; *p; p++)
        n += *p == '\n';
    return n;
}

/* ---- pretrain, eval, inspect ---------------------------------------------------------- */

Test(fedtl_tool, pretrain_mlp_then_eval_beats_chance)
{
    s_write_data();
    char *hash = s_pretrain("base.ftm", "0-2", 1);
    char *json = s_fedtl_ok("eval --base base.ftm --data test.csv --json");
    /* Without --classes, eval keeps the base's classes 0-2: 3 of every 4 test records. */
    cr_expect_eq(s_json_num(json, "n"), S_NTEST * 3 / 4, "%s", json);
    double acc = s_json_num(json, "accuracy");
    cr_expect(acc > 0.9, "accuracy %g (chance is 1/3): %s", acc, json);
    for (int c = 0; c < 3; c++)
        cr_expect(s_class_acc(json, c) > 0.8, "class %d: %s", c, json);
    cr_expect(isnan(s_class_acc(json, 3)), "class 3 is not in the base: %s", json);
    free(json);

    char *text = s_fedtl_ok("eval --base base.ftm --data test.csv");
    cr_expect_not_null(strstr(text, "records  225\n"), "%s", text);
    cr_expect_not_null(strstr(text, "accuracy "), "%s", text);
    free(text);
    free(hash);
}

Test(fedtl_tool, eval_reads_gzipped_csv_like_plain)
{
    s_write_data();
    free(s_pretrain("base.ftm", "0-2", 1));
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "gzip -c '%s/test.csv' > '%s/test.csv.gz'", s_dir, s_dir);
    cr_assert_eq(fl_test_run(cmd, NULL), 0);
    char *plain = s_fedtl_ok("eval --base base.ftm --data test.csv --json");
    char *gz = s_fedtl_ok("eval --base base.ftm --data test.csv.gz --json");
    cr_expect_str_eq(gz, plain);
    free(plain);
    free(gz);
}

Test(fedtl_tool, inspect_base_shows_type_and_hash)
{
    s_write_data();
    char *hash = s_pretrain("base.ftm", "0-2", 1);
    char *json = s_fedtl_ok("inspect base.ftm --json");
    char *type = s_json_str(json, "type"), *h = s_json_str(json, "hash"),
         *arch = s_json_str(json, "arch");
    cr_expect_str_eq(type, "base", "%s", json);
    cr_expect_str_eq(arch, "mlp", "%s", json);
    cr_expect(s_is_hex64(h), "hash '%s'", h);
    cr_expect_str_eq(h, hash, "inspect and pretrain disagree on the hash");
    cr_expect_eq(s_json_num(json, "classes"), 3);
    cr_expect_eq(s_json_num(json, "parameters"), s_json_num(json, "trainable"));
    free(type);
    free(h);
    free(arch);
    free(json);

    char *text = s_fedtl_ok("inspect base.ftm");
    cr_expect_not_null(strstr(text, hash), "%s", text);
    cr_expect_not_null(strstr(text, "mlp"), "%s", text);
    free(text);
    free(hash);
}

/* ---- finetune ------------------------------------------------------------------------- */

/* Fine-tune with method (and extra options) on classes 1-3 (class 3 unseen by the base); checks
 * accuracy and what inspect reports; returns the adapter's trainable fraction of the model. */
static double s_finetune_check(const char *method, const char *extra, const char *base_hash)
{
    char *out = s_fedtl_ok("finetune --base base.ftm --data train.csv --classes 1-3 --method %s "
                           "--epochs 5 %s --quiet --out %s.fta",
                           method, extra, method);
    free(out);
    char *json = s_fedtl_ok("eval --base base.ftm --adapter %s.fta --data test.csv --json", method);
    double acc = s_json_num(json, "accuracy");
    cr_expect(acc > 0.8, "%s: accuracy %g: %s", method, acc, json);
    cr_expect(s_class_acc(json, 3) > 0.7, "%s learnt the new class 3 badly: %s", method, json);
    cr_expect(isnan(s_class_acc(json, 0)), "%s: class 0 is not in the adapter: %s", method, json);
    cr_expect_eq(s_json_num(json, "n"), S_NTEST * 3 / 4, "%s", json);
    free(json);

    json = s_fedtl_ok("inspect %s.fta --base base.ftm --json", method);
    char *type = s_json_str(json, "type"), *m = s_json_str(json, "method"),
         *bh = s_json_str(json, "base_hash"), *h = s_json_str(json, "hash");
    cr_expect_str_eq(type, "adapter", "%s", json);
    cr_expect_str_eq(m, method, "%s", json);
    cr_expect_str_eq(bh, base_hash, "%s", json);
    cr_expect(s_is_hex64(h) && strcmp(h, base_hash) != 0, "%s", json);
    double frac = s_json_num(json, "trainable_fraction");
    cr_expect(frac > 0 && frac < 1, "%s: trainable_fraction %g", method, frac);
    cr_expect_eq(s_json_num(json, "classes"), 3, "%s", json);
    free(type);
    free(m);
    free(bh);
    free(h);
    free(json);
    return frac;
}

Test(fedtl_tool, finetune_every_method_learns_a_new_class)
{
    s_write_data();
    char *hash = s_pretrain("base.ftm", "0-2", 1);
    double head = s_finetune_check("head", "", hash);
    double lora = s_finetune_check("lora", "--rank 8", hash);
    double ffa = s_finetune_check("ffa-lora", "--rank 8", hash);
    double bitfit = s_finetune_check("bitfit", "", hash);
    /* head trains the head only; the others train the head and more; at the same rank,
     * FFA-LoRA trains fewer parameters than LoRA since it freezes A. */
    cr_expect(head < bitfit && head < ffa, "head %g, bitfit %g, ffa-lora %g", head, bitfit, ffa);
    cr_expect(ffa < lora, "ffa-lora %g, lora %g", ffa, lora);
    free(hash);
}

Test(fedtl_tool, inspect_adapter_without_base_names_the_base_hash)
{
    s_write_data();
    char *hash = s_pretrain("base.ftm", "0-2", 1);
    free(s_fedtl_ok("finetune --base base.ftm --data train.csv --classes 1-3 --method lora "
                    "--rank 4 --epochs 1 --quiet --out a.fta"));
    char *json = s_fedtl_ok("inspect a.fta --json");
    char *bh = s_json_str(json, "base_hash");
    cr_expect_str_eq(bh, hash);
    cr_expect_eq(s_json_num(json, "rank"), 4, "%s", json);
    cr_expect_eq(s_json_num(json, "alpha"), 8, "alpha defaults to 2 * rank: %s", json);
    cr_expect(isnan(s_json_num(json, "trainable_fraction")), "needs --base: %s", json);
    free(bh);
    free(json);
    free(hash);
}

Test(fedtl_tool, finetune_same_seed_one_thread_is_reproducible)
{
    s_write_data();
    free(s_pretrain("base.ftm", "0-2", 1));
    for (int run = 0; run < 2; run++)
        free(s_fedtl_ok("finetune --base base.ftm --data train.csv --classes 1-3 --method lora "
                        "--epochs 2 --seed 7 --threads 1 --quiet --out run%d.fta",
                        run));
    char *e0 = s_fedtl_ok("eval --base base.ftm --adapter run0.fta --data test.csv --json");
    char *e1 = s_fedtl_ok("eval --base base.ftm --adapter run1.fta --data test.csv --json");
    cr_expect_str_eq(e0, e1);
    free(s_fedtl_ok("predict --base base.ftm --adapter run0.fta --data test.csv > p0.txt"));
    free(s_fedtl_ok("predict --base base.ftm --adapter run1.fta --data test.csv > p1.txt"));
    char *p0 = s_slurp("p0.txt", NULL), *p1 = s_slurp("p1.txt", NULL);
    cr_expect_str_eq(p0, p1);
    free(p0);
    free(p1);
    free(e0);
    free(e1);
}

/* ---- predict -------------------------------------------------------------------------- */

Test(fedtl_tool, predict_prints_one_original_label_per_record)
{
    s_write_data();
    /* Classes 3 and 1, in that order: the model's outputs 0 and 1 stand for labels 3 and 1. */
    free(s_pretrain("base.ftm", "3,1", 1));
    free(s_fedtl_ok("predict --base base.ftm --data test.csv > pred.txt"));
    char *pred = s_slurp("pred.txt", NULL);
    cr_assert_eq(s_count_lines(pred), S_NTEST, "one line per record, every class included");
    size_t hits = 0, relevant = 0, i = 0;
    for (char *save = NULL, *line = strtok_r(pred, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save), i++) {
        cr_assert(strcmp(line, "1") == 0 || strcmp(line, "3") == 0, "record %zu: '%s'", i, line);
        int truth = (int)(i % S_CLASSES);
        if (truth == 1 || truth == 3) {
            relevant++;
            hits += atoi(line) == truth;
        }
    }
    cr_expect(hits > 0.9 * relevant, "%zu of %zu records of classes 1 and 3 right", hits, relevant);
    free(pred);

    /* With an adapter the labels are the adapter's. */
    free(s_fedtl_ok("finetune --base base.ftm --data train.csv --classes 0,2 --method head "
                    "--quiet --out a.fta"));
    free(s_fedtl_ok("predict --base base.ftm --adapter a.fta --data test.csv > pred.txt"));
    pred = s_slurp("pred.txt", NULL);
    cr_assert_eq(s_count_lines(pred), S_NTEST);
    for (char *save = NULL, *line = strtok_r(pred, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save))
        cr_assert(strcmp(line, "0") == 0 || strcmp(line, "2") == 0, "'%s'", line);
    free(pred);
}

Test(fedtl_tool, class_names_are_recorded_in_the_base_and_checked)
{
    s_write_data();
    /* outputs 0 and 1 stand for original labels 3 and 1: their names go to labels 3 and 1 */
    free(s_fedtl_ok("pretrain --data train.csv --classes 3,1 --class-names 'cat,big dog' "
                    "--arch mlp --epochs 1 --quiet --out base.ftm"));
    char *out = s_fedtl_ok("inspect base.ftm");
    cr_assert_not_null(strstr(out, "labels      0= 1=big dog 2= 3=cat\n"), "%s", out);
    free(out);
    static const char *const bad[][2] = {
        {"cat", "--class-names names 1 classes, the base has 2"},
        {"cat,,dog", "name 2 is empty"},
        {"cat,cat", "'cat' is named twice"},
        {"cat,dog ", "name 2 ('dog ') starts or ends with a space"},
        {"cat,$(printf 'd\\to')", "holds a control character"},
        {"cat,$(printf 'x%.0s' $(seq 64))", "name 2 is 64 bytes, at most 63 allowed"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_neq(s_fedtl(&out,
                              "pretrain --data train.csv --classes 3,1 --class-names \"%s\" "
                              "--arch mlp --epochs 1 --quiet --out bad.ftm",
                              bad[i][0]),
                      0, "'%s' accepted", bad[i][0]);
        cr_assert_not_null(strstr(out, bad[i][1]), "'%s': %s", bad[i][0], out);
        free(out);
    }
    char *bad_base = fl_test_path(s_dir, "bad.ftm");
    cr_assert_neq(access(bad_base, F_OK), 0, "no base written after a refusal");
    free(bad_base);
}

Test(fedtl_tool, predict_prints_the_class_names_given_at_pretrain_for_images)
{
    /* two class folders of 6 x 6 grey PNGs: "a" bright on the left, "b" on the right */
    for (int c = 0; c < 2; c++)
        for (int k = 0; k < 12; k++) {
            char path[1024];
            snprintf(path, sizeof path, "%s/img", s_dir);
            mkdir(path, 0755);
            snprintf(path, sizeof path, "%s/img/%c", s_dir, 'a' + c);
            mkdir(path, 0755);
            struct fl_image img = {.w = 6, .h = 6, .c = 1, .p = calloc(36, 1)};
            for (int y = 0; y < 6; y++)
                for (int x = 0; x < 3; x++)
                    img.p[y * 6 + x + 3 * c] = (uint8_t)(200 + k);
            snprintf(path, sizeof path, "%s/img/%c/%02d.png", s_dir, 'a' + c, k);
            cr_assert_eq(fl_image_write(path, &img, 0), 0);
            free(img.p);
        }
    free(s_fedtl_ok("pretrain --data img --class-names left,right --arch mlp --epochs 30 "
                    "--quiet --out base.ftm"));
    char *out = s_fedtl_ok("predict --base base.ftm img/a/00.png img/b/00.png");
    cr_assert_not_null(strstr(out, "img/a/00.png\tleft\t"), "%s", out);
    cr_assert_not_null(strstr(out, "img/b/00.png\tright\t"), "%s", out);
    free(out);
}

/* ---- partition ------------------------------------------------------------------------ */

/* Records in DIR/client-NN.csv for each of n clients, into sizes; checks no extra shard. */
static void s_shard_sizes(const char *dir, int n, size_t *sizes)
{
    char name[256];
    for (int c = 0; c < n; c++) {
        snprintf(name, sizeof name, "%s/client-%02d.csv", dir, c);
        char *text = s_slurp(name, NULL);
        sizes[c] = s_count_lines(text);
        free(text);
    }
    snprintf(name, sizeof name, "%s/%s/client-%02d.csv", s_dir, dir, n);
    FILE *f = fopen(name, "r");
    cr_expect_null(f, "%s should not exist", name);
    if (f)
        fclose(f);
}

Test(fedtl_tool, partition_dirichlet_covers_every_record)
{
    s_write_data();
    char *out = s_fedtl_ok("partition --data train.csv --clients 4 --dirichlet 0.3 "
                           "--min-size 10 --seed 3 --out-dir shards");
    cr_expect_not_null(strstr(out, "4 clients, Dirichlet label skew, 600 records, 4 classes"), "%s",
                       out);
    size_t sizes[4], total = 0;
    s_shard_sizes("shards", 4, sizes);
    for (int c = 0; c < 4; c++) {
        cr_expect_geq(sizes[c], 10, "client %d has %zu records", c, sizes[c]);
        total += sizes[c];
        /* The histogram row: client, records, then one count per class summing to records. */
        char pat[32];
        snprintf(pat, sizeof pat, "\n%-7d %-8zu", c, sizes[c]);
        const char *row = strstr(out, pat);
        cr_assert_not_null(row, "no histogram row '%s' in:\n%s", pat + 1, out);
        char *p = (char *)row + strlen(pat);
        size_t sum = 0;
        for (int k = 0; k < S_CLASSES; k++)
            sum += strtoul(p, &p, 10);
        cr_expect_eq(sum, sizes[c], "client %d histogram: %s", c, row + 1);
    }
    cr_expect_eq(total, S_NTRAIN);
    /* The shards are fedtl CSV files again. */
    free(s_fedtl_ok("partition --data shards/client-00.csv --clients 1 --iid --min-size 1 "
                    "--out-dir again"));
    free(out);
}

Test(fedtl_tool, partition_same_seed_same_files)
{
    s_write_data();
    const char *args = "--data train.csv --clients 4 --dirichlet 0.3 --min-size 10";
    free(s_fedtl_ok("partition %s --seed 5 --out-dir a", args));
    free(s_fedtl_ok("partition %s --seed 5 --out-dir b", args));
    free(s_fedtl_ok("partition %s --seed 6 --out-dir c", args));
    bool all_same_as_c = true;
    for (int k = 0; k < 4; k++) {
        char na[64], nb[64], nc[64];
        snprintf(na, sizeof na, "a/client-%02d.csv", k);
        snprintf(nb, sizeof nb, "b/client-%02d.csv", k);
        snprintf(nc, sizeof nc, "c/client-%02d.csv", k);
        size_t la, lb, lc;
        char *fa = s_slurp(na, &la), *fb = s_slurp(nb, &lb), *fc = s_slurp(nc, &lc);
        cr_expect(la == lb && memcmp(fa, fb, la) == 0, "%s and %s differ", na, nb);
        all_same_as_c &= la == lc && memcmp(fa, fc, la) == 0;
        free(fa);
        free(fb);
        free(fc);
    }
    cr_expect(!all_same_as_c, "another seed should give another partition");
}

Test(fedtl_tool, partition_iid_gives_near_equal_sizes)
{
    s_write_blobs("odd.csv", 603, 9, false);
    char *out = s_fedtl_ok("partition --data odd.csv --clients 4 --iid --out-dir iid");
    cr_expect_not_null(strstr(out, "IID"), "%s", out);
    size_t sizes[4], total = 0, lo = SIZE_MAX, hi = 0;
    s_shard_sizes("iid", 4, sizes);
    for (int c = 0; c < 4; c++) {
        total += sizes[c];
        lo = sizes[c] < lo ? sizes[c] : lo;
        hi = sizes[c] > hi ? sizes[c] : hi;
    }
    cr_expect_eq(total, 603);
    cr_expect_leq(hi - lo, 1, "sizes %zu %zu %zu %zu", sizes[0], sizes[1], sizes[2], sizes[3]);
    free(out);
}

Test(fedtl_tool, partition_impossible_min_size_fails)
{
    s_write_data();
    char *out = NULL;
    int rc = s_fedtl(&out, "partition --data train.csv --clients 4 --min-size 200 --out-dir x");
    cr_expect_neq(rc, 0, "%s", out);
    cr_expect_not_null(strstr(out, "partition"), "%s", out);
    free(out);
}

/* ---- bad input ------------------------------------------------------------------------ */

/* Run a command expected to fail; checks the exit status is want (0: any non-zero) and that the
 * output mentions every one of the NULL-terminated strings. */
static void s_expect_failure(int want, const char *args, ...)
{
    char *out = NULL;
    int rc = s_fedtl(&out, "%s", args);
    if (want)
        cr_expect_eq(rc, want, "`fedtl %s` exited %d:\n%s", args, rc, out);
    else
        cr_expect(rc > 0, "`fedtl %s` exited %d:\n%s", args, rc, out);
    va_list ap;
    va_start(ap, args);
    for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *))
        cr_expect_not_null(strstr(out, s), "`fedtl %s`: no '%s' in:\n%s", args, s, out);
    va_end(ap);
    free(out);
}

Test(fedtl_tool, csv_with_a_non_numeric_field_names_file_and_line)
{
    s_write_data();
    char *train = s_slurp("train.csv", NULL);
    /* Keep 5 records, then a bad sixth line. */
    char *p = train;
    for (int i = 0; i < 5; i++)
        p = strchr(p, '\n') + 1;
    *p = '\0';
    char bad[8192];
    snprintf(bad, sizeof bad, "%s1,0.5,abc", train);
    for (int j = 2; j < S_FEATURES; j++)
        snprintf(bad + strlen(bad), sizeof bad - strlen(bad), ",%d", j);
    strcat(bad, "\n");
    s_spit("bad.csv", bad, strlen(bad));
    free(train);
    s_expect_failure(0, "pretrain --data bad.csv --arch mlp --out b.ftm", "bad.csv", "line 6",
                     "abc", NULL);
    s_expect_failure(0, "partition --data bad.csv --clients 2 --out-dir x", "bad.csv", "line 6",
                     NULL);
}

Test(fedtl_tool, csv_with_a_label_only_row_names_file_and_line)
{
    s_write_data();
    free(s_pretrain("base.ftm", "0-2", 1));
    char *train = s_slurp("train.csv", NULL);
    char *p = train;
    for (int i = 0; i < 3; i++)
        p = strchr(p, '\n') + 1;
    strcpy(p, "2\n");
    s_spit("short.csv", train, strlen(train));
    free(train);
    s_expect_failure(0, "eval --base base.ftm --data short.csv", "short.csv", "line 4",
                     "no features", NULL);
}

Test(fedtl_tool, csv_with_wrong_feature_count_for_the_base_fails)
{
    s_write_data();
    free(s_pretrain("base.ftm", "0-2", 1));
    s_spit("narrow.csv", "0,1,2,3\n1,4,5,6\n", 16);
    char *out = NULL;
    int rc = s_fedtl(&out, "eval --base base.ftm --data narrow.csv");
    cr_expect_neq(rc, 0, "%s", out);
    free(out);
}

Test(fedtl_tool, truncated_base_is_reported_as_truncated)
{
    s_write_data();
    free(s_pretrain("base.ftm", "0-2", 1));
    size_t len;
    char *buf = s_slurp("base.ftm", &len);
    s_spit("half.ftm", buf, len / 2);
    s_spit("stub.ftm", buf, 30);
    free(buf);
    s_expect_failure(0, "eval --base half.ftm --data test.csv", "half.ftm", "truncated", NULL);
    s_expect_failure(0, "eval --base stub.ftm --data test.csv", "stub.ftm", "truncated", NULL);
    s_expect_failure(0, "inspect half.ftm", "half.ftm", "truncated", NULL);
    s_expect_failure(0, "finetune --base half.ftm --data train.csv --method head --out a.fta",
                     "half.ftm", "truncated", NULL);
}

Test(fedtl_tool, flipped_byte_in_base_is_a_hash_mismatch)
{
    s_write_data();
    free(s_pretrain("base.ftm", "0-2", 1));
    size_t len;
    char *buf = s_slurp("base.ftm", &len);
    /* A weight in the middle, the last byte, and a byte of the stored hash itself. */
    size_t offsets[] = {len / 2, len - 1, 30};
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
        buf[offsets[i]] ^= 0x10;
        s_spit("flip.ftm", buf, len);
        buf[offsets[i]] ^= 0x10;
        s_expect_failure(0, "eval --base flip.ftm --data test.csv", "flip.ftm", "hash mismatch",
                         NULL);
    }
    free(buf);
    /* The untouched original still loads. */
    free(s_fedtl_ok("eval --base base.ftm --data test.csv --json"));
}

Test(fedtl_tool, adapter_with_another_base_names_both_files)
{
    s_write_data();
    char *h1 = s_pretrain("base.ftm", "0-2", 1);
    char *h2 = s_pretrain("other.ftm", "0-2", 2);
    cr_expect_str_neq(h1, h2, "another seed should give another base");
    free(s_fedtl_ok("finetune --base base.ftm --data train.csv --classes 1-3 --method head "
                    "--epochs 1 --quiet --out a.fta"));
    s_expect_failure(0, "eval --base other.ftm --adapter a.fta --data test.csv", "a.fta",
                     "other.ftm", NULL);
    s_expect_failure(0, "predict --base other.ftm --adapter a.fta --data test.csv", "a.fta",
                     "other.ftm", NULL);
    s_expect_failure(0, "inspect a.fta --base other.ftm", "a.fta", "other.ftm", NULL);
    /* An adapter is not a base, and a base is not an adapter. */
    s_expect_failure(0, "eval --base a.fta --data test.csv", "a.fta", "adapter", NULL);
    s_expect_failure(0, "eval --base base.ftm --adapter other.ftm --data test.csv", "other.ftm",
                     "base model", NULL);
    free(h1);
    free(h2);
}

Test(fedtl_tool, unknown_method_and_arch_are_refused)
{
    s_write_data();
    free(s_pretrain("base.ftm", "0-2", 1));
    s_expect_failure(0, "finetune --base base.ftm --data train.csv --method dora --out a.fta",
                     "dora", "lora", NULL);
    s_expect_failure(0, "pretrain --data train.csv --arch resnet --out b.ftm", "resnet", "mlp",
                     NULL);
    s_expect_failure(2, "pretrain --data train.csv --arch mlp --optimizer lion --out b.ftm", "lion",
                     NULL);
    s_expect_failure(2, "pretrain --data train.csv --arch mlp --epochs many --out b.ftm",
                     "--epochs", NULL);
}

Test(fedtl_tool, missing_or_misplaced_options_exit_2_with_usage)
{
    s_expect_failure(2, "pretrain --data train.csv --arch mlp", "required", "usage: fedtl pretrain",
                     NULL);
    s_expect_failure(2, "finetune --base b.ftm --data train.csv --out a.fta", "required",
                     "usage: fedtl finetune", NULL);
    s_expect_failure(2, "eval --data test.csv", "required", "usage: fedtl eval", NULL);
    s_expect_failure(2, "predict --base b.ftm", "required", "usage: fedtl predict", NULL);
    s_expect_failure(2, "inspect", "usage: fedtl inspect", NULL);
    s_expect_failure(2, "partition --data train.csv --out-dir x", "--clients",
                     "usage: fedtl partition", NULL);
    s_expect_failure(2, "pretrain --data train.csv --arch mlp --out b.ftm --dirichlet 0.3",
                     "does not apply", NULL);
    s_expect_failure(2, "eval --base b.ftm --data test.csv --frobnicate", "usage: fedtl eval",
                     NULL);
}

Test(fedtl_tool, a_flag_applies_where_its_subcommand_lists_it)
{
    s_expect_failure(2, "eval --base b.ftm --data test.csv --epochs 3",
                     "fedtl eval: --epochs does not apply here", "usage: fedtl eval", NULL);
    s_expect_failure(2, "pretrain --data train.csv --arch mlp --out b.ftm --base b.ftm",
                     "--base does not apply here (it is an option of fedtl finetune)", NULL);
    s_expect_failure(2, "pretrain --data train.csv --arch mlp --out b.ftm --epochs 2.5",
                     "--epochs: '2.5' is not a whole number", NULL);
    s_expect_failure(2, "pretrain --data train.csv --arch mlp --out b.ftm --quiet=maybe",
                     "--quiet: 'maybe' is not a boolean", NULL);
    s_expect_failure(2, "keygen --out", "--out needs a value", "usage: fedtl keygen", NULL);
    s_expect_failure(2, "status", "--state-dir", "usage: fedtl status", NULL);
    s_expect_failure(2, "inspect a.fta b.fta", "unexpected argument 'b.fta'", NULL);
    char *out = s_fedtl_ok("finetune --help");
    const char *flags[] = {"--base FILE",   "--data D",        "--method lora|ffa-lora|head|bitfit",
                           "--rank R",      "--alpha A",       "--targets",
                           "--epochs N",    "--lr LR",         "--optimizer adam|sgd",
                           "--cache-mb MB", "(default: 1024)", "--threads N",
                           "--quiet"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        cr_expect_not_null(strstr(out, flags[i]), "finetune --help: no '%s' in:\n%s", flags[i],
                           out);
    free(out);
}

Test(fedtl_tool, missing_files_are_named)
{
    s_expect_failure(0, "pretrain --data nope.csv --arch mlp --out b.ftm", "nope.csv", NULL);
    s_expect_failure(0, "eval --base nope.ftm --data nope.csv", "nope.ftm", NULL);
    s_expect_failure(0, "inspect nope.ftm", "nope.ftm", NULL);
}

Test(fedtl_tool, help_exits_0_and_unknown_command_exits_2)
{
    const char *cmds[] = {"pretrain", "finetune",  "eval",   "predict",
                          "inspect",  "partition", "keygen", "status"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char *out = NULL;
        int rc = s_fedtl(&out, "%s --help", cmds[i]);
        char want[64];
        snprintf(want, sizeof want, "usage: fedtl %s", cmds[i]);
        cr_expect_eq(rc, 0, "%s --help exited %d", cmds[i], rc);
        cr_expect_not_null(strstr(out, want), "%s", out);
        free(out);
    }
    char *out = s_fedtl_ok("--help");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        cr_expect_not_null(strstr(out, cmds[i]), "fedtl --help lists %s:\n%s", cmds[i], out);
    free(out);
    s_expect_failure(2, "frobnicate", "unknown command 'frobnicate'", "usage: fedtl", NULL);
    s_expect_failure(2, "", "usage: fedtl", NULL);
}
