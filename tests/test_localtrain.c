/* fl_localtrain: a branch's training step on its own, with no sockets. A small mlp base
 * (8 features, 3 classes) written to a scratch directory, local records of 3 separable
 * classes, and global adapters built in memory as a coordinator would send them. */
#include "fl_codec.h"
#include "fl_data.h"
#include "fl_error.h"
#include "fl_fs.h"
#include "fl_image.h"
#include "fl_localtrain.h"
#include "fl_model.h"
#include "fl_modelfile.h"
#include "fl_modelio.h"
#include "fl_testutil.h"
#include "fl_train.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECORDS  300 /* 100 per class */
#define FEATURES 8

static char *s_dir;                   /* scratch directory */
static char s_data[600], s_base[600]; /* local CSV, base file */
static struct fl_base_file s_bf;      /* the base, open */

/* Class y has its feature y raised: separable, but not at a glance for a fresh head. */
static void s_write_data(const char *path, int features)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < RECORDS; i++) {
        int y = i % 3;
        fprintf(f, "%d", y);
        for (int j = 0; j < features; j++)
            fprintf(f, ",%.3f", (j == y ? 1.5 : 0.0) + 0.2 * ((i * 7 + j * 3) % 10) - 0.9);
        fprintf(f, "\n");
    }
    fclose(f);
}

/* An mlp base with in_dim inputs, weights from seed. */
static void s_write_base(const char *path, int in_dim, uint64_t seed)
{
    struct fl_arch arch;
    cr_assert_eq(fl_arch_builtin("mlp", in_dim, 3, &arch), 0);
    fl_model_t *m = fl_model_new(&arch, seed, NULL);
    cr_assert_not_null(m);
    struct fl_base_meta meta = {.nclasses = 3, .class_ids = {0, 1, 2}, .created_unix = 1};
    snprintf(meta.data_desc, sizeof meta.data_desc, "test blobs");
    cr_assert_eq(fl_model_write_base(m, &meta, path, NULL), 0, "%s", fl_error_msg());
    fl_model_destroy(&m);
}

static void s_setup(void)
{
    s_dir = fl_test_tmpdir("localtrain");
    cr_assert_not_null(s_dir);
    snprintf(s_data, sizeof s_data, "%s/data.csv", s_dir);
    snprintf(s_base, sizeof s_base, "%s/base.ftm", s_dir);
    s_write_data(s_data, FEATURES);
    s_write_base(s_base, FEATURES, 1);
    cr_assert_eq(fl_base_read(s_base, &s_bf), 0, "%s", fl_error_msg());
}

static void s_teardown(void)
{
    fl_base_close(&s_bf);
    fl_test_rmtree(s_dir);
    free(s_dir);
}

TestSuite(fl_localtrain, .init = s_setup, .fini = s_teardown, .timeout = 60);

/* A global adapter for bf over classes {0, 2}: a head, or LoRA on fc1 when lora. */
static void s_global_adapter(const struct fl_base_file *bf, bool lora, uint8_t **buf, size_t *len)
{
    struct fl_adapter_meta am = {.kind = FL_ADAPTER_HEAD, .num_classes = 2, .seed = 5};
    am.class_ids[0] = 0;
    am.class_ids[1] = 2;
    if (lora) {
        am.kind = FL_ADAPTER_LORA;
        am.rank = 4;
        am.alpha = 8.0f;
        am.ntargets = 1;
        snprintf(am.targets[0], sizeof am.targets[0], "fc1");
    }
    fl_model_t *m = fl_model_from_base(bf, "base", &am, NULL);
    cr_assert_not_null(m, "%s", fl_error_msg());
    cr_assert_eq(fl_model_pack_adapter(m, 0, buf, len), 0);
    fl_model_destroy(&m);
}

static struct fl_localtrain_config s_config(void)
{
    return (struct fl_localtrain_config){.data = s_data, .holdout = 0.25, .split_seed = 42};
}

static struct fl_localtrain_task s_task(const uint8_t *adapter, size_t len)
{
    return (struct fl_localtrain_task){.round = 7,
                                       .adapter = adapter,
                                       .adapter_len = len,
                                       .epochs = 5,
                                       .batch = 16,
                                       .lr = 0.01f,
                                       .seed = 3};
}

static fl_localtrain_t *s_new(const struct fl_localtrain_config *cfg)
{
    fl_localtrain_t *lt = fl_localtrain_new(cfg);
    cr_assert_not_null(lt, "%s", fl_error_msg());
    return lt;
}

/* Mean loss of the adapter bytes over the records of classes {0, 2}. */
static double s_loss(const uint8_t *adapter, size_t len)
{
    struct fl_adapter_file a;
    cr_assert_eq(fl_adapter_unpack(adapter, len, "adapter", &a), 0, "%s", fl_error_msg());
    fl_model_t *m = fl_model_from_base(&s_bf, "base", &a.meta, NULL);
    cr_assert_not_null(m);
    cr_assert_eq(fl_model_set_adapter(m, &a, "adapter"), 0, "%s", fl_error_msg());
    struct fl_dataset ds;
    cr_assert_eq(fl_dataset_load(&ds, s_data, NULL), 0);
    cr_assert_eq(fl_dataset_select_classes(&ds, a.meta.class_ids, a.meta.num_classes), 0);
    struct fl_eval ev;
    cr_assert_eq(fl_evaluate(m, &ds, &ev), 0);
    fl_dataset_free(&ds);
    fl_model_destroy(&m);
    fl_adapter_close(&a);
    return ev.loss;
}

/* The adapter bytes inside an update body; *b keeps them (fl_wire_free_body it). */
static void s_body_adapter(const uint8_t *body, size_t len, Fedtl__UpdateBody **b)
{
    cr_assert_eq(fl_wire_decode_body(body, len, b), 0, "%s", fl_error_msg());
}

Test(fl_localtrain, training_lowers_the_loss_and_changes_the_adapter)
{
    uint8_t *global = NULL;
    size_t glen = 0;
    s_global_adapter(&s_bf, true, &global, &glen);
    struct fl_localtrain_config cfg = s_config();
    fl_localtrain_t *lt = s_new(&cfg);
    struct fl_localtrain_task t = s_task(global, glen);
    uint8_t *body = NULL;
    size_t len = 0;
    struct fl_localtrain_metrics m;
    cr_assert_eq(fl_localtrain_run(lt, &s_bf, "base", &t, &body, &len, &m), 0, "%s",
                 fl_error_msg());
    Fedtl__UpdateBody *b = NULL;
    s_body_adapter(body, len, &b);
    double before = s_loss(global, glen), after = s_loss(b->adapter.data, b->adapter.len);
    cr_assert_lt(after, 0.5 * before, "loss %f before, %f after", before, after);
    cr_assert_gt(m.eval_accuracy, 0.9, "separable data: accuracy %f", m.eval_accuracy);
    cr_assert(isfinite(m.train_loss) && m.train_loss > 0.0);
    /* Classes 0 and 2 of 3: 200 records, a quarter held out. */
    cr_assert_eq(m.samples + m.eval_samples, 200);
    cr_assert_gt(m.eval_samples, 30);
    cr_assert_lt(m.eval_samples, 70);
    struct fl_adapter_file g, u;
    cr_assert_eq(fl_adapter_unpack(global, glen, "global", &g), 0);
    cr_assert_eq(fl_adapter_unpack(b->adapter.data, b->adapter.len, "update", &u), 0);
    cr_assert_eq(u.ntensors, g.ntensors);
    for (size_t i = 0; i < u.ntensors; i++) {
        const struct fl_tensor *tg = fl_adapter_tensor(&g, u.tensors[i].name);
        cr_assert_not_null(tg);
        cr_assert_neq(memcmp(tg->data, u.tensors[i].data, 4 * fl_tensor_numel(tg)), 0,
                      "%s was trained", u.tensors[i].name);
    }
    fl_adapter_close(&g);
    fl_adapter_close(&u);
    fl_wire_free_body(&b);
    free(body);
    free(global);
    fl_localtrain_destroy(&lt);
    fl_localtrain_destroy(&lt);
}

Test(fl_localtrain, the_body_holds_the_adapter_of_the_tasks_round_and_its_metrics)
{
    uint8_t *global = NULL;
    size_t glen = 0;
    s_global_adapter(&s_bf, false, &global, &glen);
    struct fl_localtrain_config cfg = s_config();
    fl_localtrain_t *lt = s_new(&cfg);
    struct fl_localtrain_task t = s_task(global, glen);
    t.round = 12;
    uint8_t *body = NULL;
    size_t len = 0;
    struct fl_localtrain_metrics m;
    cr_assert_eq(fl_localtrain_run(lt, &s_bf, "base", &t, &body, &len, &m), 0, "%s",
                 fl_error_msg());
    Fedtl__UpdateBody *b = NULL;
    s_body_adapter(body, len, &b);
    cr_assert_eq(b->samples, m.samples);
    cr_assert_eq(b->eval_samples, m.eval_samples);
    cr_assert_float_eq(b->train_loss, (float)m.train_loss, 1e-6);
    cr_assert_float_eq(b->eval_loss, (float)m.eval_loss, 1e-6);
    cr_assert_float_eq(b->eval_accuracy, (float)m.eval_accuracy, 1e-6);
    struct fl_adapter_file a;
    cr_assert_eq(fl_adapter_unpack(b->adapter.data, b->adapter.len, "update", &a), 0);
    cr_assert_eq(a.meta.round, 12);
    cr_assert_eq(a.meta.kind, FL_ADAPTER_HEAD);
    cr_assert_eq(a.meta.num_classes, 2);
    cr_assert_eq(a.meta.class_ids[1], 2);
    cr_assert_eq(fl_adapter_check_base(&a, "update", s_bf.hash, "base"), 0);
    /* The samples are the training split of the selected classes. */
    struct fl_localtrain_info info;
    fl_localtrain_info(lt, &info);
    cr_assert_eq(info.samples, m.samples);
    cr_assert_eq(info.records, 200);
    fl_adapter_close(&a);
    fl_wire_free_body(&b);
    free(body);
    free(global);
    fl_localtrain_destroy(&lt);
}

Test(fl_localtrain, the_same_seed_gives_the_same_update)
{
    uint8_t *global = NULL;
    size_t glen = 0;
    s_global_adapter(&s_bf, true, &global, &glen);
    struct fl_localtrain_config cfg = s_config();
    fl_localtrain_t *one = s_new(&cfg), *two = s_new(&cfg);
    struct fl_localtrain_task t = s_task(global, glen);
    uint8_t *b1 = NULL, *b2 = NULL, *b3 = NULL;
    size_t l1 = 0, l2 = 0, l3 = 0;
    cr_assert_eq(fl_localtrain_run(one, &s_bf, "base", &t, &b1, &l1, NULL), 0);
    cr_assert_eq(fl_localtrain_run(two, &s_bf, "base", &t, &b2, &l2, NULL), 0);
    cr_assert_eq(l1, l2);
    cr_assert_eq(memcmp(b1, b2, l1), 0, "two branches with the same seed agree byte for byte");
    t.seed = 4;
    cr_assert_eq(fl_localtrain_run(one, &s_bf, "base", &t, &b3, &l3, NULL), 0);
    cr_assert(l3 != l1 || memcmp(b1, b3, l1) != 0, "another seed, another update");
    free(b1);
    free(b2);
    free(b3);
    free(global);
    fl_localtrain_destroy(&one);
    fl_localtrain_destroy(&two);
}

Test(fl_localtrain, refuses_an_adapter_made_for_another_base)
{
    char other_path[700];
    snprintf(other_path, sizeof other_path, "%s/other.ftm", s_dir);
    s_write_base(other_path, FEATURES, 2);
    struct fl_base_file other;
    cr_assert_eq(fl_base_read(other_path, &other), 0);
    uint8_t *global = NULL;
    size_t glen = 0;
    s_global_adapter(&other, false, &global, &glen);
    fl_base_close(&other);
    struct fl_localtrain_config cfg = s_config();
    fl_localtrain_t *lt = s_new(&cfg);
    struct fl_localtrain_task t = s_task(global, glen);
    uint8_t *body = (uint8_t *)"untouched";
    size_t len = 9;
    cr_assert_eq(fl_localtrain_run(lt, &s_bf, "the base", &t, &body, &len, NULL), FL_EMISMATCH);
    cr_assert(strstr(fl_error_msg(), "the base"), "names the base: %s", fl_error_msg());
    cr_assert_null(body);
    cr_assert_eq(len, 0);
    free(global);
    fl_localtrain_destroy(&lt);
}

/* Adapter bytes for the base with a hand-made header: meta over tensors ts[0..n). */
static void s_forged_adapter(const struct fl_adapter_meta *meta, const struct fl_tensor *ts,
                             size_t n, uint8_t **buf, size_t *len)
{
    cr_assert_eq(fl_adapter_pack(meta, ts, n, buf, len), 0, "%s", fl_error_msg());
}

/* The head tensors of a fresh 2-class head adapter on the base, and its meta. */
static fl_model_t *s_head_model(struct fl_adapter_meta *meta)
{
    struct fl_adapter_meta am = {.kind = FL_ADAPTER_HEAD, .num_classes = 2, .seed = 5};
    am.class_ids[1] = 2;
    fl_model_t *m = fl_model_from_base(&s_bf, "base", &am, NULL);
    cr_assert_not_null(m);
    *meta = *fl_model_adapter_meta(m);
    return m;
}

static void s_assert_refused(const uint8_t *adapter, size_t len, int want, const char *words)
{
    struct fl_localtrain_config cfg = s_config();
    fl_localtrain_t *lt = s_new(&cfg);
    struct fl_localtrain_task t = s_task(adapter, len);
    uint8_t *body = NULL;
    size_t blen = 0;
    int rc = fl_localtrain_run(lt, &s_bf, "base", &t, &body, &blen, NULL);
    cr_assert_eq(rc, want, "rc %s, want %s: %s", fl_strerror(rc), fl_strerror(want),
                 fl_error_msg());
    cr_assert(strstr(fl_error_msg(), words), "'%s' in: %s", words, fl_error_msg());
    cr_assert_null(body);
    fl_localtrain_destroy(&lt);
}

Test(fl_localtrain, refuses_an_adapter_whose_targets_the_base_does_not_have)
{
    struct fl_adapter_meta meta;
    fl_model_t *m = s_head_model(&meta);
    size_t n;
    struct fl_tensor *ts = fl_model_tensors(m, FL_SET_ADAPTER, &n);
    meta.kind = FL_ADAPTER_LORA;
    meta.rank = 2;
    meta.alpha = 4.0f;
    meta.ntargets = 1;
    snprintf(meta.targets[0], sizeof meta.targets[0], "conv9");
    uint8_t *buf = NULL;
    size_t len = 0;
    s_forged_adapter(&meta, ts, n, &buf, &len);
    s_assert_refused(buf, len, FL_EINVAL, "conv9");
    free(buf);
    free(ts);
    fl_model_destroy(&m);
}

Test(fl_localtrain, refuses_a_wrong_class_count)
{
    struct fl_adapter_meta meta;
    fl_model_t *m = s_head_model(&meta);
    size_t n;
    struct fl_tensor *ts = fl_model_tensors(m, FL_SET_ADAPTER, &n);
    uint8_t *buf = NULL;
    size_t len = 0;
    /* One class: no classifier. */
    struct fl_adapter_meta one = meta;
    one.num_classes = 1;
    s_forged_adapter(&one, ts, n, &buf, &len);
    s_assert_refused(buf, len, FL_EINVAL, "classes");
    free(buf);
    /* Three classes named, a head for two. */
    struct fl_adapter_meta three = meta;
    three.num_classes = 3;
    three.class_ids[2] = 1;
    s_forged_adapter(&three, ts, n, &buf, &len);
    s_assert_refused(buf, len, FL_EMISMATCH, "shape");
    free(buf);
    free(ts);
    fl_model_destroy(&m);
}

Test(fl_localtrain, refuses_classes_the_records_do_not_have)
{
    struct fl_adapter_meta meta;
    fl_model_t *m = s_head_model(&meta);
    size_t n;
    struct fl_tensor *ts = fl_model_tensors(m, FL_SET_ADAPTER, &n);
    meta.class_ids[0] = 5;
    meta.class_ids[1] = 6;
    uint8_t *buf = NULL;
    size_t len = 0;
    s_forged_adapter(&meta, ts, n, &buf, &len);
    s_assert_refused(buf, len, FL_ENOTFOUND, "no records");
    free(buf);
    free(ts);
    fl_model_destroy(&m);
}

Test(fl_localtrain, refuses_junk_for_an_adapter)
{
    static const uint8_t junk[] = "not an adapter at all, just some bytes";
    s_assert_refused(junk, sizeof junk, FL_EFORMAT, "coordinator round 7");
}

Test(fl_localtrain, refuses_training_parameters_out_of_bounds)
{
    uint8_t *global = NULL;
    size_t glen = 0;
    s_global_adapter(&s_bf, false, &global, &glen);
    struct fl_localtrain_config cfg = s_config();
    fl_localtrain_t *lt = s_new(&cfg);
    struct fl_localtrain_task bad[6];
    for (int i = 0; i < 6; i++)
        bad[i] = s_task(global, glen);
    bad[0].epochs = 0;
    bad[1].epochs = 10001;
    bad[2].batch = 0;
    bad[3].lr = 0.0f;
    bad[4].lr = NAN;
    bad[5].lr = 100.0f;
    for (int i = 0; i < 6; i++) {
        uint8_t *body = NULL;
        size_t len = 0;
        cr_assert_eq(fl_localtrain_run(lt, &s_bf, "base", &bad[i], &body, &len, NULL), FL_EINVAL,
                     "case %d", i);
        cr_assert(strstr(fl_error_msg(), "training parameters"), "%s", fl_error_msg());
        cr_assert_null(body);
    }
    struct fl_localtrain_info info;
    fl_localtrain_info(lt, &info);
    cr_assert_eq(info.records, RECORDS, "a refused task selects nothing");
    free(global);
    fl_localtrain_destroy(&lt);
}

Test(fl_localtrain, another_class_list_starts_again_from_the_file)
{
    uint8_t *two = NULL, *three = NULL;
    size_t two_len = 0, three_len = 0;
    s_global_adapter(&s_bf, false, &two, &two_len);
    struct fl_adapter_meta am = {.kind = FL_ADAPTER_HEAD, .num_classes = 3, .seed = 5};
    am.class_ids[0] = 2, am.class_ids[1] = 1, am.class_ids[2] = 0;
    fl_model_t *m = fl_model_from_base(&s_bf, "base", &am, NULL);
    cr_assert_not_null(m);
    cr_assert_eq(fl_model_pack_adapter(m, 0, &three, &three_len), 0);
    fl_model_destroy(&m);

    struct fl_localtrain_config cfg = s_config();
    fl_localtrain_t *lt = s_new(&cfg);
    struct fl_localtrain_info info;
    fl_localtrain_info(lt, &info);
    cr_assert_eq(info.records, RECORDS);
    cr_assert_eq(info.samples, RECORDS);
    cr_assert_eq(info.dim, FEATURES);
    cr_assert_eq(info.classes, 3);
    struct fl_localtrain_metrics m2, m3;
    uint8_t *body = NULL;
    size_t len = 0;
    struct fl_localtrain_task t = s_task(two, two_len);
    t.epochs = 1;
    cr_assert_eq(fl_localtrain_run(lt, &s_bf, "base", &t, &body, &len, &m2), 0);
    free(body);
    cr_assert_eq(m2.samples + m2.eval_samples, 200);
    t = s_task(three, three_len);
    t.epochs = 1;
    cr_assert_eq(fl_localtrain_run(lt, &s_bf, "base", &t, &body, &len, &m3), 0, "%s",
                 fl_error_msg());
    free(body);
    cr_assert_eq(m3.samples + m3.eval_samples, RECORDS, "every record is back");
    fl_localtrain_info(lt, &info);
    cr_assert_eq(info.records, RECORDS);
    cr_assert_eq(info.samples, m3.samples);
    free(two);
    free(three);
    fl_localtrain_destroy(&lt);
}

Test(fl_localtrain, keeps_each_rounds_adapter_when_asked)
{
    uint8_t *global = NULL;
    size_t glen = 0;
    s_global_adapter(&s_bf, false, &global, &glen);
    struct fl_localtrain_config cfg = s_config();
    char keep[700];
    snprintf(keep, sizeof keep, "%s/kept", s_dir);
    cfg.keep_dir = keep;
    fl_localtrain_t *lt = s_new(&cfg);
    struct fl_localtrain_task t = s_task(global, glen);
    t.epochs = 1;
    uint8_t *body = NULL;
    size_t len = 0;
    cr_assert_eq(fl_localtrain_run(lt, &s_bf, "base", &t, &body, &len, NULL), 0);
    Fedtl__UpdateBody *b = NULL;
    s_body_adapter(body, len, &b);
    char path[800];
    snprintf(path, sizeof path, "%s/round-7.fta", keep);
    uint8_t *kept = NULL;
    size_t kept_len = 0;
    cr_assert_eq(fl_fs_read_file(path, 1u << 24, &kept, &kept_len), 0, "%s", fl_error_msg());
    cr_assert_eq(kept_len, b->adapter.len);
    cr_assert_eq(memcmp(kept, b->adapter.data, kept_len), 0, "what was sent, byte for byte");
    free(kept);
    fl_wire_free_body(&b);
    free(body);
    free(global);
    fl_localtrain_destroy(&lt);
}

Test(fl_localtrain, check_base_wants_as_many_inputs_as_features)
{
    struct fl_localtrain_config cfg = s_config();
    fl_localtrain_t *lt = s_new(&cfg);
    cr_assert_eq(fl_localtrain_check_base(lt, &s_bf), 0);
    char wide_path[700];
    snprintf(wide_path, sizeof wide_path, "%s/wide.ftm", s_dir);
    s_write_base(wide_path, FEATURES + 2, 1);
    struct fl_base_file wide;
    cr_assert_eq(fl_base_read(wide_path, &wide), 0);
    cr_assert_eq(fl_localtrain_check_base(lt, &wide), FL_EMISMATCH);
    cr_assert(strstr(fl_error_msg(), "8 features") && strstr(fl_error_msg(), "takes 10"), "%s",
              fl_error_msg());
    fl_base_close(&wide);
    fl_localtrain_destroy(&lt);
}

Test(fl_localtrain, new_refuses_a_bad_holdout_and_a_file_without_records)
{
    struct fl_localtrain_config cfg = s_config();
    cfg.holdout = 1.0;
    cr_assert_null(fl_localtrain_new(&cfg));
    cr_assert(strstr(fl_error_msg(), "holdout"), "%s", fl_error_msg());
    cfg.holdout = NAN;
    cr_assert_null(fl_localtrain_new(&cfg));
    char empty[700];
    snprintf(empty, sizeof empty, "%s/empty.csv", s_dir);
    cr_assert_eq(fl_fs_write_file(empty, (const uint8_t *)"", 0, 0644), 0);
    cfg = s_config();
    cfg.data = empty;
    cr_assert_null(fl_localtrain_new(&cfg));
    cfg.data = "/nonexistent/data.csv";
    cr_assert_null(fl_localtrain_new(&cfg));
    cr_assert(strstr(fl_error_msg(), "/nonexistent/data.csv"), "%s", fl_error_msg());
}

/* L2 distance between the tensors of two adapters (as bytes), matched by name. */
static double s_distance(const uint8_t *x, size_t xlen, const uint8_t *y, size_t ylen,
                         const char *prefix)
{
    struct fl_adapter_file a, b;
    cr_assert_eq(fl_adapter_unpack(x, xlen, "x", &a), 0, "%s", fl_error_msg());
    cr_assert_eq(fl_adapter_unpack(y, ylen, "y", &b), 0, "%s", fl_error_msg());
    double sq = 0;
    for (size_t i = 0; i < a.ntensors; i++) {
        if (prefix && strncmp(a.tensors[i].name, prefix, strlen(prefix)) != 0)
            continue;
        const struct fl_tensor *t = fl_adapter_tensor(&b, a.tensors[i].name);
        cr_assert_not_null(t);
        for (size_t j = 0; j < fl_tensor_numel(t); j++) {
            double d = (double)a.tensors[i].data[j] - t->data[j];
            sq += d * d;
        }
    }
    fl_adapter_close(&a);
    fl_adapter_close(&b);
    return sqrt(sq);
}

/* The trained adapter inside a body, copied out (caller frees). */
static uint8_t *s_update_of(const uint8_t *body, size_t len, size_t *alen)
{
    Fedtl__UpdateBody *b = NULL;
    s_body_adapter(body, len, &b);
    uint8_t *copy = malloc(b->adapter.len);
    cr_assert_not_null(copy);
    memcpy(copy, b->adapter.data, b->adapter.len);
    *alen = b->adapter.len;
    fl_wire_free_body(&b);
    return copy;
}

Test(fl_localtrain, the_proximal_term_keeps_the_update_closer_to_the_global_adapter)
{
    uint8_t *global = NULL;
    size_t glen = 0;
    s_global_adapter(&s_bf, true, &global, &glen);
    struct fl_localtrain_config cfg = s_config();
    double dist[2];
    for (int k = 0; k < 2; k++) {
        fl_localtrain_t *lt = s_new(&cfg);
        struct fl_localtrain_task t = s_task(global, glen);
        t.prox_mu = k ? 5.0f : 0.0f;
        uint8_t *body = NULL;
        size_t len = 0, ulen = 0;
        cr_assert_eq(fl_localtrain_run(lt, &s_bf, "base", &t, &body, &len, NULL), 0, "%s",
                     fl_error_msg());
        uint8_t *u = s_update_of(body, len, &ulen);
        dist[k] = s_distance(u, ulen, global, glen, NULL);
        free(u);
        free(body);
        fl_localtrain_destroy(&lt);
    }
    cr_log_info("distance from the global adapter: mu 0 %.5f, mu 5 %.5f", dist[0], dist[1]);
    cr_assert_gt(dist[0], 0.0);
    cr_assert_lt(dist[1], 0.9 * dist[0], "mu 5: %f, mu 0: %f", dist[1], dist[0]);
    free(global);
}

Test(fl_localtrain, refuses_a_proximal_mu_out_of_bounds)
{
    uint8_t *global = NULL;
    size_t glen = 0;
    s_global_adapter(&s_bf, false, &global, &glen);
    struct fl_localtrain_config cfg = s_config();
    fl_localtrain_t *lt = s_new(&cfg);
    const float bad[] = {-0.5f, 1000.5f, NAN, INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct fl_localtrain_task t = s_task(global, glen);
        t.prox_mu = bad[i];
        uint8_t *body = NULL;
        size_t len = 0;
        cr_assert_eq(fl_localtrain_run(lt, &s_bf, "base", &t, &body, &len, NULL), FL_EINVAL,
                     "mu %g", (double)bad[i]);
        cr_assert_null(body);
        cr_assert(strstr(fl_error_msg(), "proximal mu"), "%s", fl_error_msg());
    }
    struct fl_localtrain_task t = s_task(global, glen);
    t.prox_mu = 1000.0f; /* the bound itself is accepted */
    uint8_t *body = NULL;
    size_t len = 0;
    cr_assert_eq(fl_localtrain_run(lt, &s_bf, "base", &t, &body, &len, NULL), 0, "%s",
                 fl_error_msg());
    free(body);
    free(global);
    fl_localtrain_destroy(&lt);
}

/* One SGD step (no momentum, no decay, one batch of every record) from the same weights with
 * and without the proximal term: the difference is exactly lr mu (w - anchor), and the loss
 * grows by mu/2 ||w - anchor||^2. */
Test(fl_localtrain, one_proximal_step_adds_mu_times_the_distance_to_the_gradient)
{
    struct fl_adapter_meta am = {.kind = FL_ADAPTER_HEAD, .num_classes = 3, .seed = 9};
    for (int i = 0; i < 3; i++)
        am.class_ids[i] = i;
    struct fl_dataset ds;
    cr_assert_eq(fl_dataset_load(&ds, s_data, NULL), 0);
    const float lr = 0.1f, mu = 0.7f;
    fl_model_t *m[2];
    struct fl_epoch_stats st[2];
    struct fl_tensor *anchor = NULL;
    size_t n = 0;
    for (int k = 0; k < 2; k++) {
        m[k] = fl_model_from_base(&s_bf, "base", &am, NULL);
        cr_assert_not_null(m[k], "%s", fl_error_msg());
        n = fl_model_ntensors(m[k], FL_SET_TRAINABLE);
        if (!anchor) { /* the weights as they start, moved by a known amount */
            anchor = calloc(n, sizeof *anchor);
            for (size_t i = 0; i < n; i++) {
                const struct fl_tensor *t = fl_model_tensor(m[k], FL_SET_TRAINABLE, i);
                cr_assert_eq(fl_tensor_init(&anchor[i], t->name, t->ndim, t->shape), 0);
                for (size_t j = 0; j < fl_tensor_numel(t); j++)
                    anchor[i].data[j] = t->data[j] + 0.05f * (float)((int)(j % 7) - 3);
            }
        }
        struct fl_train_opts o;
        fl_train_opts_default(&o);
        o.optimizer = FL_OPT_SGD;
        o.momentum = 0;
        o.epochs = 1;
        o.batch = (int)ds.n;
        o.lr = lr;
        o.prox_mu = k ? mu : 0.0f;
        o.prox_anchor = anchor;
        cr_assert_eq(fl_train(m[k], &ds, &o, NULL, NULL, &st[k]), 0, "%s", fl_error_msg());
    }
    double sq = 0;
    for (size_t i = 0; i < n; i++) {
        const struct fl_tensor *plain = fl_model_tensor(m[0], FL_SET_TRAINABLE, i);
        const struct fl_tensor *prox = fl_model_tensor(m[1], FL_SET_TRAINABLE, i);
        for (size_t j = 0; j < fl_tensor_numel(plain); j++) {
            /* both started at w0 = anchor - 0.05 (j % 7 - 3) */
            float w0 = anchor[i].data[j] - 0.05f * (float)((int)(j % 7) - 3);
            float want = plain->data[j] - lr * mu * (w0 - anchor[i].data[j]);
            cr_assert_float_eq(prox->data[j], want, 1e-5, "%s[%zu]: %g, expected %g", plain->name,
                               j, (double)prox->data[j], (double)want);
            sq += (double)(w0 - anchor[i].data[j]) * (w0 - anchor[i].data[j]);
        }
    }
    cr_assert_float_eq(st[1].loss - st[0].loss, 0.5 * mu * sq, 1e-4 * (1 + 0.5 * mu * sq));
    for (size_t i = 0; i < n; i++)
        fl_tensor_free(&anchor[i]);
    free(anchor);
    fl_model_destroy(&m[0]);
    fl_model_destroy(&m[1]);
    fl_dataset_free(&ds);
}

Test(fl_localtrain, a_personal_head_is_kept_and_trained_from_in_the_next_round)
{
    char head[700];
    snprintf(head, sizeof head, "%s/personal.fta", s_dir);
    struct fl_localtrain_config cfg = s_config();
    cfg.head_path = head;
    fl_localtrain_t *lt = s_new(&cfg);
    uint8_t *g1 = NULL, *body = NULL;
    size_t g1len = 0, len = 0;
    s_global_adapter(&s_bf, true, &g1, &g1len);
    struct fl_localtrain_task t = s_task(g1, g1len);
    t.personal_head = true;
    struct fl_localtrain_metrics m;
    cr_assert_eq(fl_localtrain_run(lt, &s_bf, "base", &t, &body, &len, &m), 0, "%s",
                 fl_error_msg());
    /* Both figures reported: the fresh global adapter as received, and the trained one. */
    cr_assert(m.personal);
    cr_assert_gt(m.personal_accuracy, 0.9, "%f", m.personal_accuracy);
    cr_assert_lt(m.eval_accuracy, m.personal_accuracy);
    Fedtl__UpdateBody *b = NULL;
    s_body_adapter(body, len, &b);
    cr_assert_float_eq(b->personal_accuracy, (float)m.personal_accuracy, 1e-6);
    cr_assert_float_eq(b->eval_accuracy, (float)m.eval_accuracy, 1e-6);
    fl_wire_free_body(&b);
    size_t k1len = 0;
    uint8_t *kept1 = s_update_of(body, len, &k1len);
    free(body);
    char *saved = fl_test_slurp(head);
    cr_assert_not_null(saved, "the trained adapter is kept at %s", head);
    free(saved);
    /* Round 2: another global adapter (another head); a tiny step keeps the own head. */
    uint8_t *g2 = NULL;
    size_t g2len = 0;
    struct fl_adapter_file a;
    cr_assert_eq(fl_adapter_unpack(g1, g1len, "g1", &a), 0);
    for (size_t i = 0; i < a.ntensors; i++)
        for (size_t j = 0; j < fl_tensor_numel(&a.tensors[i]); j++)
            a.tensors[i].data[j] += 0.3f * (float)((int)(j % 5) - 2);
    cr_assert_eq(fl_adapter_pack(&a.meta, a.tensors, a.ntensors, &g2, &g2len), 0);
    fl_adapter_close(&a);
    t = s_task(g2, g2len);
    t.personal_head = true;
    t.lr = 1e-6f;
    t.epochs = 1;
    cr_assert_eq(fl_localtrain_run(lt, &s_bf, "base", &t, &body, &len, &m), 0, "%s",
                 fl_error_msg());
    size_t u2len = 0;
    uint8_t *u2 = s_update_of(body, len, &u2len);
    double to_own = s_distance(u2, u2len, kept1, k1len, "head."),
           to_global = s_distance(u2, u2len, g2, g2len, "head.");
    cr_assert_lt(to_own, 0.01 * to_global, "head: %f from the kept one, %f from the global's",
                 to_own, to_global);
    /* The rest of the adapter is the global's. */
    cr_assert_lt(s_distance(u2, u2len, g2, g2len, "fc1."), 1e-3);
    free(u2);
    free(body);
    free(kept1);
    free(g1);
    free(g2);
    fl_localtrain_destroy(&lt);
}

Test(fl_localtrain, a_personal_head_needs_a_place_to_keep_it)
{
    uint8_t *global = NULL, *body = NULL;
    size_t glen = 0, len = 0;
    s_global_adapter(&s_bf, false, &global, &glen);
    struct fl_localtrain_config cfg = s_config();
    fl_localtrain_t *lt = s_new(&cfg);
    struct fl_localtrain_task t = s_task(global, glen);
    t.personal_head = true;
    cr_assert_eq(fl_localtrain_run(lt, &s_bf, "base", &t, &body, &len, NULL), FL_EINVAL);
    cr_assert_null(body);
    free(global);
    fl_localtrain_destroy(&lt);
}

Test(fl_localtrain, personalizing_the_final_adapter_fine_tunes_it_and_scores_both)
{
    uint8_t *global = NULL, *out = NULL;
    size_t glen = 0, len = 0;
    s_global_adapter(&s_bf, true, &global, &glen);
    struct fl_localtrain_config cfg = s_config();
    fl_localtrain_t *lt = s_new(&cfg);
    struct fl_localtrain_final f = {.adapter = global,
                                    .adapter_len = glen,
                                    .round = 9,
                                    .epochs = 5,
                                    .batch = 16,
                                    .lr = 0.01f,
                                    .seed = 2};
    struct fl_localtrain_metrics m;
    cr_assert_eq(fl_localtrain_personalize(lt, &s_bf, "base", &f, &out, &len, &m), 0, "%s",
                 fl_error_msg());
    cr_assert(m.personal);
    cr_assert_gt(m.personal_accuracy, 0.9, "%f", m.personal_accuracy);
    cr_assert_gt(m.personal_accuracy, m.eval_accuracy);
    struct fl_adapter_file a;
    cr_assert_eq(fl_adapter_unpack(out, len, "personalised", &a), 0);
    cr_assert_eq(a.meta.round, 9);
    fl_adapter_close(&a);
    cr_assert_gt(s_distance(out, len, global, glen, NULL), 0.0);
    free(out);
    f.epochs = 1001;
    cr_assert_eq(fl_localtrain_personalize(lt, &s_bf, "base", &f, &out, &len, &m), FL_EINVAL);
    cr_assert_null(out);
    free(global);
    fl_localtrain_destroy(&lt);
}

/* ---- image records: streamed and augmented ---- */

/* dir/<c>/<i>.png for classes 0-2: grey 28 x 28 noise with a bar at a column set by the class;
 * and a chain cnn-small base for them at base. */
static void s_write_images(const char *dir, const char *base)
{
    cr_assert_eq(fl_fs_mkdirs(dir, 0700), 0);
    uint32_t state = 9;
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 12; i++) {
            uint8_t px[28 * 28];
            for (int k = 0; k < 28 * 28; k++)
                px[k] = (uint8_t)((state = state * 1664525u + 1013904223u) >> 26);
            for (int y = 0; y < 28; y++)
                px[y * 28 + 4 + 9 * c] = 240;
            char path[1024];
            snprintf(path, sizeof path, "%s/%d", dir, c);
            cr_assert_eq(fl_fs_mkdirs(path, 0700), 0);
            snprintf(path, sizeof path, "%s/%d/%02d.png", dir, c, i);
            struct fl_image img = {.w = 28, .h = 28, .c = 1, .p = px};
            cr_assert_eq(fl_image_write(path, &img, 0), 0, "%s", fl_error_msg());
        }
    struct fl_arch arch;
    cr_assert_eq(fl_arch_builtin("cnn-small", 28 * 28, 3, &arch), 0, "%s", fl_error_msg());
    fl_model_t *m = fl_model_new(&arch, 2, NULL);
    cr_assert_not_null(m, "%s", fl_error_msg());
    struct fl_base_meta meta = {.nclasses = 3, .class_ids = {0, 1, 2}, .created_unix = 1};
    cr_assert_eq(fl_model_write_base(m, &meta, base, NULL), 0, "%s", fl_error_msg());
    fl_model_destroy(&m);
}

/* The update body a branch with cfg sends for the task t on the image base bf. */
static void s_image_update(struct fl_localtrain_config cfg, const struct fl_base_file *bf,
                           const struct fl_localtrain_task *t, uint8_t **body, size_t *len)
{
    fl_localtrain_t *lt = s_new(&cfg);
    cr_assert_eq(fl_localtrain_check_base(lt, bf), 0, "%s", fl_error_msg());
    cr_assert_eq(fl_localtrain_run(lt, bf, "base", t, body, len, NULL), 0, "%s", fl_error_msg());
    fl_localtrain_destroy(&lt);
}

Test(fl_localtrain, streamed_images_give_the_update_held_ones_give)
{
    char dir[700], base[700];
    snprintf(dir, sizeof dir, "%s/imgs", s_dir);
    snprintf(base, sizeof base, "%s/cnn.ftm", s_dir);
    s_write_images(dir, base);
    struct fl_base_file bf;
    cr_assert_eq(fl_base_read(base, &bf), 0, "%s", fl_error_msg());
    uint8_t *global = NULL;
    size_t glen = 0;
    s_global_adapter(&bf, true, &global, &glen);
    struct fl_localtrain_task t = s_task(global, glen);
    t.epochs = 2;
    struct fl_localtrain_config cfg = {.data = dir, .holdout = 0.25, .split_seed = 42};
    uint8_t *held = NULL, *streamed = NULL, *aug_held = NULL, *aug_streamed = NULL;
    size_t l1 = 0, l2 = 0, l3 = 0, l4 = 0;
    s_image_update(cfg, &bf, &t, &held, &l1);
    cfg.cache_budget = 1; /* every record decoded again when read */
    s_image_update(cfg, &bf, &t, &streamed, &l2);
    cr_assert_eq(l1, l2);
    cr_expect_eq(memcmp(held, streamed, l1), 0, "streaming changed the update");
    cfg.augment.ops = FL_AUGMENT_CROP | FL_AUGMENT_FLIP;
    s_image_update(cfg, &bf, &t, &aug_streamed, &l3);
    cfg.cache_budget = 0;
    s_image_update(cfg, &bf, &t, &aug_held, &l4);
    cr_assert_eq(l3, l4);
    cr_expect_eq(memcmp(aug_held, aug_streamed, l3), 0, "streaming changed the augmented update");
    cr_expect(l3 != l1 || memcmp(held, aug_held, l1) != 0, "augmentation changed nothing");
    free(held);
    free(streamed);
    free(aug_held);
    free(aug_streamed);
    free(global);
    fl_base_close(&bf);
}

Test(fl_localtrain, augmentation_over_a_flat_base_is_refused)
{
    struct fl_localtrain_config cfg = s_config();
    cfg.augment.ops = FL_AUGMENT_FLIP;
    fl_localtrain_t *lt = s_new(&cfg);
    cr_expect_eq(fl_localtrain_check_base(lt, &s_bf), FL_EINVAL);
    cr_expect_not_null(strstr(fl_error_msg(), "augmentation needs image records"), "%s",
                       fl_error_msg());
    fl_localtrain_destroy(&lt);
}
