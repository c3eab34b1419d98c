/* The malicious branch of test builds (client/fl_attack.h, cmake -DFEDTL_TESTING=ON, as
 * scripts/test.sh builds): each attack's update against an honest branch's trained from the
 * same seeds, then whole federations (scripts/simulate.sh: real processes, keys, sockets) where
 * one branch of four attacks and the coordinator rejects what it must and serves the others.
 * Whatever the build, fedtl-client's --help says whether the switch exists: a default build's
 * client has none (tests/shipped_options.c checks the shipped option table in every build). */
#include <criterion/criterion.h>

#include "fl_codec.h"
#include "fl_data.h"
#include "fl_error.h"
#include "fl_localtrain.h"
#include "fl_model.h"
#include "fl_modelfile.h"
#include "fl_modelio.h"
#include "fl_testutil.h"
#include "fl_train.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FMNIST "/usr/share/datasets/fashion-mnist"

/* fedtl-client's --help; its exit status must be 0. */
static char *s_client_help(void)
{
    char *out = NULL;
    cr_assert_eq(fl_test_run(FEDTL_BIN_DIR "/fedtl-client --help", &out), 0, "%s", out);
    return out;
}

#ifndef FEDTL_TESTING

Test(attack, a_default_build_has_no_test_attack_switch)
{
    char *help = s_client_help();
    cr_assert(strstr(help, "--holdout"), "%s", help);
    cr_assert_null(strstr(help, "attack"), "%s", help);
    free(help);
    char *out = NULL;
    int rc = fl_test_run(FEDTL_BIN_DIR "/fedtl-client --coordinator tcp://127.0.0.1:1 "
                                       "--coordinator-key x --key x --data x --test-attack scale",
                         &out);
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "--test-attack"), "%s", out);
    free(out);
}

#else /* FEDTL_TESTING */

Test(attack, a_test_build_client_documents_the_switch_and_refuses_a_bad_kind)
{
    char *help = s_client_help();
    cr_assert(strstr(help, "--test-attack KIND"), "%s", help);
    cr_assert(strstr(help, "FEDTL_TESTING builds only"), "%s", help);
    free(help);
    char *out = NULL;
    int rc = fl_test_run(FEDTL_BIN_DIR "/fedtl-client --coordinator tcp://127.0.0.1:1 "
                                       "--coordinator-key x --key x --data x --test-attack evil",
                         &out);
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "--test-attack") && strstr(out, "evil"), "%s", out);
    free(out);
}

/* ---- each attack against the honest update of the same seeds (no processes) ---- */

#define RECORDS  300 /* 100 per class */
#define FEATURES 8

static char *s_dir;                   /* scratch directory */
static char s_data[600], s_base[600]; /* local CSV, base file */
static struct fl_base_file s_bf;      /* the base, open */

/* Class y has its feature y raised: separable. */
static void s_setup_unit(void)
{
    s_dir = fl_test_tmpdir("attack");
    cr_assert_not_null(s_dir);
    snprintf(s_data, sizeof s_data, "%s/data.csv", s_dir);
    snprintf(s_base, sizeof s_base, "%s/base.ftm", s_dir);
    FILE *f = fopen(s_data, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < RECORDS; i++) {
        int y = i % 3;
        fprintf(f, "%d", y);
        for (int j = 0; j < FEATURES; j++)
            fprintf(f, ",%.3f", (j == y ? 1.5 : 0.0) + 0.2 * ((i * 7 + j * 3) % 10) - 0.9);
        fprintf(f, "\n");
    }
    fclose(f);
    struct fl_arch arch;
    cr_assert_eq(fl_arch_builtin("mlp", FEATURES, 3, &arch), 0);
    fl_model_t *m = fl_model_new(&arch, 1, NULL);
    cr_assert_not_null(m);
    struct fl_base_meta meta = {.nclasses = 3, .class_ids = {0, 1, 2}, .created_unix = 1};
    cr_assert_eq(fl_model_write_base(m, &meta, s_base, NULL), 0, "%s", fl_error_msg());
    fl_model_destroy(&m);
    cr_assert_eq(fl_base_read(s_base, &s_bf), 0, "%s", fl_error_msg());
}

static void s_teardown_unit(void)
{
    fl_base_close(&s_bf);
    fl_test_rmtree(s_dir);
    free(s_dir);
}

TestSuite(fl_attack, .init = s_setup_unit, .fini = s_teardown_unit, .timeout = 60);

/* A global LoRA adapter on fc1 over classes {0, 2}, with a trained-looking head: not zero. */
static void s_global(uint8_t **buf, size_t *len)
{
    struct fl_adapter_meta am = {.kind = FL_ADAPTER_LORA,
                                 .num_classes = 2,
                                 .seed = 5,
                                 .rank = 4,
                                 .alpha = 8.0f,
                                 .ntargets = 1};
    am.class_ids[0] = 0;
    am.class_ids[1] = 2;
    snprintf(am.targets[0], sizeof am.targets[0], "fc1");
    fl_model_t *m = fl_model_from_base(&s_bf, "base", &am, NULL);
    cr_assert_not_null(m, "%s", fl_error_msg());
    cr_assert_eq(fl_model_pack_adapter(m, 0, buf, len), 0);
    fl_model_destroy(&m);
}

/* One round of a branch mounting attack a (NULL: honest); the adapter it sends, decoded. */
static void s_round(const struct fl_attack *a, const uint8_t *global, size_t glen,
                    struct fl_adapter_file *out)
{
    struct fl_localtrain_config cfg = {
        .data = s_data, .holdout = 0.25, .split_seed = 42, .attack = a};
    fl_localtrain_t *lt = fl_localtrain_new(&cfg);
    cr_assert_not_null(lt, "%s", fl_error_msg());
    struct fl_localtrain_task t = {.round = 3,
                                   .adapter = global,
                                   .adapter_len = glen,
                                   .epochs = 5,
                                   .batch = 16,
                                   .lr = 0.01f,
                                   .seed = 3};
    uint8_t *body = NULL;
    size_t len = 0;
    cr_assert_eq(fl_localtrain_run(lt, &s_bf, "base", &t, &body, &len, NULL), 0, "%s",
                 fl_error_msg());
    Fedtl__UpdateBody *b = NULL;
    cr_assert_eq(fl_wire_decode_body(body, len, &b), 0, "%s", fl_error_msg());
    cr_assert_eq(fl_adapter_unpack(b->adapter.data, b->adapter.len, "update", out), 0, "%s",
                 fl_error_msg());
    fl_wire_free_body(&b);
    free(body);
    fl_localtrain_destroy(&lt);
}

/* Accuracy of adapter f on the true labels of classes {0, 2}. */
static double s_accuracy(const struct fl_adapter_file *f)
{
    fl_model_t *m = fl_model_from_base(&s_bf, "base", &f->meta, NULL);
    cr_assert_not_null(m);
    cr_assert_eq(fl_model_set_adapter(m, f, "adapter"), 0, "%s", fl_error_msg());
    struct fl_dataset ds;
    cr_assert_eq(fl_dataset_load(&ds, s_data, NULL), 0);
    cr_assert_eq(fl_dataset_select_classes(&ds, f->meta.class_ids, f->meta.num_classes), 0);
    struct fl_eval ev;
    cr_assert_eq(fl_evaluate(m, &ds, &ev), 0);
    fl_dataset_free(&ds);
    fl_model_destroy(&m);
    return ev.accuracy;
}

/* Honest, attacked and global adapters of one round, for the checks below. */
struct s_three {
    uint8_t *gbuf;
    size_t glen;
    struct fl_adapter_file g, honest, bad;
};

static void s_three(struct s_three *x, enum fl_attack_kind kind, double factor)
{
    memset(x, 0, sizeof *x);
    s_global(&x->gbuf, &x->glen);
    cr_assert_eq(fl_adapter_unpack(x->gbuf, x->glen, "global", &x->g), 0);
    struct fl_attack a = {.kind = kind, .factor = factor};
    s_round(NULL, x->gbuf, x->glen, &x->honest);
    s_round(&a, x->gbuf, x->glen, &x->bad);
    cr_assert_eq(x->bad.ntensors, x->honest.ntensors);
}

static void s_three_free(struct s_three *x)
{
    fl_adapter_close(&x->g);
    fl_adapter_close(&x->honest);
    fl_adapter_close(&x->bad);
    free(x->gbuf);
}

/* Every sent value against expect(global, honest), within a float's rounding. */
static void s_check_affine(struct s_three *x, double sign_f)
{
    size_t checked = 0, moved = 0;
    for (size_t i = 0; i < x->bad.ntensors; i++) {
        const struct fl_tensor *b = &x->bad.tensors[i];
        const struct fl_tensor *h = fl_adapter_tensor(&x->honest, b->name);
        const struct fl_tensor *g = fl_adapter_tensor(&x->g, b->name);
        cr_assert(h && g, "%s", b->name);
        for (size_t k = 0; k < fl_tensor_numel(b); k++, checked++) {
            double want = g->data[k] + sign_f * ((double)h->data[k] - g->data[k]);
            cr_assert_float_eq(b->data[k], want, 1e-4 * (1 + fabs(want)), "%s[%zu]: %g, not %g",
                               b->name, k, (double)b->data[k], want);
            moved += h->data[k] != g->data[k];
        }
    }
    cr_assert_gt(checked, 100);
    cr_assert_gt(moved, checked / 4, "training moved %zu of %zu values", moved, checked);
}

Test(fl_attack, scale_sends_the_global_plus_f_times_the_honest_delta)
{
    struct s_three x;
    s_three(&x, FL_ATTACK_SCALE, 0); /* 0: the default, 100 */
    s_check_affine(&x, 100.0);
    s_three_free(&x);
    s_three(&x, FL_ATTACK_SCALE, 7.5);
    s_check_affine(&x, 7.5);
    s_three_free(&x);
}

Test(fl_attack, signflip_sends_the_honest_delta_turned_around)
{
    struct s_three x;
    s_three(&x, FL_ATTACK_SIGNFLIP, 0); /* default 1 */
    s_check_affine(&x, -1.0);
    cr_assert_lt(s_accuracy(&x.bad), s_accuracy(&x.honest));
    s_three_free(&x);
    s_three(&x, FL_ATTACK_SIGNFLIP, 4);
    s_check_affine(&x, -4.0);
    s_three_free(&x);
}

Test(fl_attack, noise_adds_gaussian_noise_of_standard_deviation_f)
{
    struct s_three x;
    s_three(&x, FL_ATTACK_NOISE, 0.5);
    double sum = 0, sq = 0;
    size_t n = 0;
    for (size_t i = 0; i < x.bad.ntensors; i++) {
        const struct fl_tensor *b = &x.bad.tensors[i];
        const struct fl_tensor *h = fl_adapter_tensor(&x.honest, b->name);
        for (size_t k = 0; k < fl_tensor_numel(b); k++, n++) {
            double d = (double)b->data[k] - h->data[k];
            sum += d;
            sq += d * d;
        }
    }
    double mean = sum / (double)n, sd = sqrt(sq / (double)n - mean * mean);
    cr_assert_gt(n, 100);
    cr_assert_lt(fabs(mean), 4 * 0.5 / sqrt((double)n), "mean %g over %zu values", mean, n);
    cr_assert(sd > 0.4 && sd < 0.6, "sd %g over %zu values", sd, n);
    /* Seeded: the same round again sends the same noise. */
    struct fl_adapter_file again;
    struct fl_attack a = {.kind = FL_ATTACK_NOISE, .factor = 0.5};
    s_round(&a, x.gbuf, x.glen, &again);
    for (size_t i = 0; i < x.bad.ntensors; i++)
        cr_assert_eq(memcmp(again.tensors[i].data, x.bad.tensors[i].data,
                            4 * fl_tensor_numel(&x.bad.tensors[i])),
                     0);
    fl_adapter_close(&again);
    s_three_free(&x);
}

Test(fl_attack, nan_spoils_the_first_value_of_the_first_tensor_only)
{
    struct s_three x;
    s_three(&x, FL_ATTACK_NAN, 0);
    cr_assert(isnan(x.bad.tensors[0].data[0]));
    for (size_t i = 0; i < x.bad.ntensors; i++) {
        const struct fl_tensor *b = &x.bad.tensors[i];
        const struct fl_tensor *h = fl_adapter_tensor(&x.honest, b->name);
        for (size_t k = (i == 0); k < fl_tensor_numel(b); k++)
            cr_assert_eq(b->data[k], h->data[k], "%s[%zu]", b->name, k);
    }
    s_three_free(&x);
}

Test(fl_attack, labelflip_trains_honestly_on_mislabelled_records)
{
    struct s_three x;
    s_three(&x, FL_ATTACK_LABELFLIP, 0);
    double honest = s_accuracy(&x.honest), bad = s_accuracy(&x.bad);
    cr_assert_gt(honest, 0.9, "honest %f", honest);
    cr_assert_lt(bad, 0.2, "trained on swapped labels: %f on the true ones", bad);
    s_three_free(&x);
}

/* ---- whole federations: one malicious branch of four ---- */

static char *s_sim; /* scratch directory with base.ftm */

static void s_setup_sim(void)
{
    s_sim = fl_test_tmpdir("attack-sim");
    cr_assert_not_null(s_sim);
    char cmd[4096], *out = NULL;
    snprintf(cmd, sizeof cmd,
             "%s/fedtl pretrain --data " FMNIST "/train-images-idx3-ubyte.gz --labels " FMNIST
             "/train-labels-idx1-ubyte.gz --classes 0-4 --samples 3000 --arch cnn-small "
             "--epochs 1 --quiet --out %s/base.ftm",
             FEDTL_BIN_DIR, s_sim);
    cr_assert_eq(fl_test_run(cmd, &out), 0, "%s", out);
    free(out);
}

static void s_teardown_sim(void)
{
    if (!getenv("FEDTL_KEEP_TMP"))
        fl_test_rmtree(s_sim);
    free(s_sim);
}

/* simulate.sh with 4 branches, 3 rounds, branch-00 attacking; the ledger's lines. */
static cJSON *s_attacked_run(const char *run, const char *attack)
{
    char cmd[4096], *out = NULL;
    snprintf(cmd, sizeof cmd,
             "FEDTL_BIN=%s %s/scripts/simulate.sh --run %s/%s --base %s/base.ftm --branches 4 "
             "--min-clients 3 --rounds 3 --samples 800 --alpha 1.0 --epochs 2 --deadline 20 "
             "--port %d --quiet --malicious 1 %s",
             FEDTL_BIN_DIR, FEDTL_SRC_DIR, s_sim, run, s_sim, fl_test_free_port(), attack);
    int rc = fl_test_run(cmd, &out);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "branches 0 to 0 are malicious"), "%s", out);
    cr_assert(strstr(out, "3 of 3 rounds aggregated"), "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s/%s/logs/branch-00.log", s_sim, run);
    cr_assert_eq(fl_test_count(cmd, "event=test_attack round="), 3, "one attack per round");
    snprintf(cmd, sizeof cmd, "%s/%s/state/rounds.jsonl", s_sim, run);
    cJSON *lines = fl_test_jsonl(cmd);
    cr_assert_not_null(lines);
    cr_assert_eq(fl_test_ledger_lines(lines, -1, 1, NULL), 3);
    return lines;
}

/* Each round of the ledger: the three honest branches took part and branch-00 did not; its
 * update was rejected with a reason holding `why`. */
static void s_check_rejected(const cJSON *lines, const char *why)
{
    for (int r = 1; r <= 3; r++) {
        const cJSON *line = NULL;
        cr_assert_eq(fl_test_ledger_lines(lines, r, 1, &line), 1);
        const cJSON *parts = cJSON_GetObjectItem(line, "participants");
        cr_assert_eq(cJSON_GetArraySize(parts), 3, "round %d", r);
        const cJSON *p;
        cJSON_ArrayForEach(p, parts)
        {
            const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(p, "branch"));
            cr_assert(name && strcmp(name, "branch-00") != 0, "round %d", r);
        }
        const cJSON *rej = cJSON_GetObjectItem(line, "rejected");
        cr_assert_eq(cJSON_GetArraySize(rej), 1, "round %d", r);
        const char *reason =
            cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(rej, 0), "reason"));
        cr_assert(reason && strstr(reason, why), "round %d: %s", r, reason ? reason : "none");
        cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(line, "server_eval_accuracy")));
    }
}

/* The honest branches' final adapters are there, and the global one learnt. */
static void s_check_served(const char *run, const cJSON *lines)
{
    for (int k = 1; k < 4; k++) {
        char path[2048];
        snprintf(path, sizeof path, "%s/%s/branch-%02d/final.fta", s_sim, run, k);
        cr_assert_eq(access(path, R_OK), 0, "%s missing", path);
    }
    const cJSON *last = NULL;
    fl_test_ledger_lines(lines, 3, 1, &last);
    double acc = cJSON_GetNumberValue(cJSON_GetObjectItem(last, "server_eval_accuracy"));
    cr_assert_gt(acc, 0.5, "five classes, server accuracy %f after 3 rounds", acc);
}

TestSuite(attack, .init = s_setup_sim, .fini = s_teardown_sim, .timeout = 300);

Test(attack, a_nan_update_is_rejected_every_round_and_the_honest_branches_are_served)
{
    cJSON *lines = s_attacked_run("nan", "--attack nan");
    s_check_rejected(lines, "holds NaN or Inf");
    s_check_served("nan", lines);
    cJSON_Delete(lines);
}

Test(attack, a_scaled_update_beyond_max_update_norm_is_rejected_and_the_federation_completes)
{
    /* F = 1000: an honest delta of norm over 0.1 lands beyond the default bound of 100. */
    cJSON *lines = s_attacked_run("scale", "--attack scale --attack-factor 1000");
    s_check_rejected(lines, "exceeds max_update_norm 100");
    s_check_served("scale", lines);
    cJSON_Delete(lines);
}

Test(attack_usage, simulate_refuses_an_unknown_attack_or_a_missing_one)
{
    char *out = NULL;
    cr_assert_eq(fl_test_run("FEDTL_BIN=" FEDTL_BIN_DIR " " FEDTL_SRC_DIR
                             "/scripts/simulate.sh --malicious 1 --attack evil",
                             &out),
                 2, "%s", out);
    cr_assert(strstr(out, "--attack evil: not scale"), "%s", out);
    free(out);
    cr_assert_eq(fl_test_run("FEDTL_BIN=" FEDTL_BIN_DIR " " FEDTL_SRC_DIR
                             "/scripts/simulate.sh --branches 3 --malicious 4 --attack nan",
                             &out),
                 2, "%s", out);
    cr_assert(strstr(out, "--malicious 4: a count of branches, 0 to 3"), "%s", out);
    free(out);
}

#endif /* FEDTL_TESTING */
