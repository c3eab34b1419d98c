/* Pretraining a graph from scratch: fl_model_new_graph on a zoo architecture trains every
 * parameter and lowers the loss, its base set is a graph base; `fedtl pretrain --arch resnet18`
 * on Fashion-MNIST records writes a base that inspect, eval and finetune accept, whose adapted
 * model exported to ONNX (fedtl export) and imported again (fedtl import) predicts the same;
 * `--arch cnn-small` writes a graph base with the chain's layer names and default targets,
 * while a chain base already on disk still fine-tunes; and the refusals of pretrain, import
 * and export name what is wrong. */
#include <criterion/criterion.h>

#include "fl_data.h"
#include "fl_error.h"
#include "fl_graphadapt.h"
#include "fl_model.h"
#include "fl_modelio.h"
#include "fl_testutil.h"
#include "fl_train.h"
#include "fl_zoo.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FMNIST "/usr/share/datasets/fashion-mnist"

static char *s_dir;

static void s_setup(void)
{
    s_dir = fl_test_tmpdir("gpretrain");
    cr_assert_not_null(s_dir);
}

static void s_teardown(void)
{
    if (!getenv("FEDTL_KEEP_TMP"))
        fl_test_rmtree(s_dir);
    free(s_dir);
}

TestSuite(fl_graph_pretrain, .init = s_setup, .fini = s_teardown);

/* n records of 1 x hw x hw: class c lights up one quadrant (c of 4), with noise. */
static void s_quadrants(struct fl_dataset *ds, size_t n, int hw, int classes)
{
    ds->n = n;
    ds->dim = (size_t)hw * (size_t)hw;
    ds->num_classes = classes;
    ds->x = fl_falloc(n * ds->dim);
    ds->y = calloc(n, sizeof *ds->y);
    cr_assert(ds->x && ds->y);
    uint64_t s = 7;
    for (size_t i = 0; i < n; i++) {
        int c = (int)(i % (size_t)classes);
        ds->y[i] = c;
        for (int r = 0; r < hw; r++)
            for (int k = 0; k < hw; k++) {
                s = s * 6364136223846793005ULL + 1442695040888963407ULL;
                int q = (r >= hw / 2) * 2 + (k >= hw / 2);
                float noise = (float)((s >> 40) % 1000) / 1000.0f;
                ds->x[i * ds->dim + (size_t)r * hw + k] = (q == c ? 200.0f : 20.0f) + 30 * noise;
            }
    }
}

static void s_record(const struct fl_epoch_stats *st, void *arg)
{
    ((double *)arg)[st->epoch - 1] = st->loss;
}

Test(fl_graph_pretrain, fresh_zoo_graph_trains_every_parameter_and_learns)
{
    struct fl_graphdef def;
    struct fl_tensor *p = NULL;
    size_t n = 0;
    struct fl_arch arch;
    cr_assert_eq(fl_zoo_build("resnet18", 1, 16, 16, 3, 5, &def, &p, &n), 0, "%s", fl_error_msg());
    cr_assert_eq(fl_arch_from_graph(&def, "resnet18", 3, &arch), 0, "%s", fl_error_msg());
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += fl_tensor_numel(&p[i]);
    fl_model_t *m = fl_model_new_graph(&arch, p, n, NULL);
    cr_assert_not_null(m, "%s", fl_error_msg());
    float first = p[0].data[0];
    fl_zoo_free_params(p, n); /* the model owns its copies */
    cr_assert_eq(fl_model_param_count(m, true), total, "every parameter is trainable");
    cr_assert_eq(fl_model_param_count(m, false), total);
    cr_assert_eq(fl_model_ntensors(m, FL_SET_BASE), n + 2, "parameters, norm.mean, norm.std");
    cr_assert_eq(fl_model_ntensors(m, FL_SET_TRAINABLE), n);
    cr_assert_null(fl_model_adapter_meta(m));
    cr_assert_eq(fl_model_tensor(m, FL_SET_BASE, 0)->data[0], first);
    cr_assert_eq(fl_model_frozen_prefix(m), 0, "nothing frozen, nothing to cache");
    float mean = 60.0f, sd = 60.0f;
    cr_assert_eq(fl_model_set_norm(m, &mean, &sd, 1), 0, "%s", fl_error_msg());

    struct fl_dataset ds = {0};
    s_quadrants(&ds, 48, 16, 3);
    struct fl_train_opts o;
    fl_train_opts_default(&o);
    o.epochs = 4;
    o.batch = 16;
    double loss[4] = {0};
    cr_assert_eq(fl_train(m, &ds, &o, s_record, loss, NULL), 0, "%s", fl_error_msg());
    cr_assert_lt(loss[3], loss[0], "loss %g -> %g", loss[0], loss[3]);
    struct fl_eval ev;
    cr_assert_eq(fl_evaluate(m, &ds, &ev), 0);
    cr_assert_gt(ev.accuracy, 0.6, "accuracy %g on the training records", ev.accuracy);
    cr_assert_neq(fl_model_tensor(m, FL_SET_BASE, 0)->data[0], first, "conv1 was trained");
    fl_dataset_free(&ds);
    fl_model_destroy(&m);
    fl_model_destroy(&m);
    fl_graphdef_free(&def);
}

Test(fl_graph_pretrain, refusals_name_the_problem)
{
    struct fl_graphdef def;
    struct fl_tensor *p = NULL;
    size_t n = 0;
    struct fl_arch arch, chain;
    cr_assert_eq(fl_zoo_build("resnet18", 1, 16, 16, 3, 5, &def, &p, &n), 0);
    cr_assert_eq(fl_arch_from_graph(&def, "resnet18", 3, &arch), 0);
    cr_assert_null(fl_model_new(&arch, 1, NULL));
    cr_assert_not_null(strstr(fl_error_msg(), "fl_model_new_graph"), "%s", fl_error_msg());
    cr_assert_eq(fl_arch_builtin("mlp", 10, 3, &chain), 0);
    cr_assert_null(fl_model_new_graph(&chain, p, n, NULL));
    cr_assert_not_null(strstr(fl_error_msg(), "not a graph"), "%s", fl_error_msg());
    /* Without the classifier's weight there is no head. */
    size_t fc = (size_t)(fl_tensor_find(p, n, "fc.weight") - p);
    struct fl_tensor keep = p[fc];
    p[fc] = p[0];
    cr_assert_null(fl_model_new_graph(&arch, p, n, NULL));
    cr_assert_not_null(strstr(fl_error_msg(), "fc.weight"), "%s", fl_error_msg());
    p[fc] = keep;
    /* A head that does not compute the architecture's classes. */
    arch.num_classes = 4;
    cr_assert_null(fl_model_new_graph(&arch, p, n, NULL));
    cr_assert_not_null(strstr(fl_error_msg(), "4 classes"), "%s", fl_error_msg());
    fl_zoo_free_params(p, n);
    fl_graphdef_free(&def);
}

/* ---- the tool ---------------------------------------------------------------------------- */

/* Run `fedtl ARGS` in the scratch directory; output (stdout and stderr) in *out. */
static int s_fedtl(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int s_fedtl(char **out, const char *fmt, ...)
{
    char args[2048], cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s/fedtl' %s 2>&1", s_dir, FEDTL_BIN_DIR, args);
    char *text = NULL;
    int rc = fl_test_run(cmd, &text);
    cr_assert_not_null(text, "no output from %s", cmd);
    *out = text;
    return rc;
}

/* Records [from, from + n) of ds whose label is below 5, as a CSV (label first). */
static void s_write_csv(const struct fl_dataset *ds, size_t *from, size_t n, const char *name)
{
    char *path = fl_test_path(s_dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (size_t i = *from, k = 0; k < n && i < ds->n; i++, (*from)++) {
        if (ds->y[i] >= 5)
            continue;
        fprintf(f, "%d", ds->y[i]);
        for (size_t j = 0; j < ds->dim; j++)
            fprintf(f, ",%g", ds->x[i * ds->dim + j]);
        fprintf(f, "\n");
        k++;
    }
    cr_assert_eq(fclose(f), 0);
    free(path);
}

static double s_epoch_loss(const char *text, int epoch)
{
    char pat[64];
    snprintf(pat, sizeof pat, "epoch %d/", epoch);
    const char *p = strstr(text, pat);
    cr_assert_not_null(p, "no %s in\n%s", pat, text);
    p = strstr(p, "loss=");
    cr_assert_not_null(p);
    return atof(p + 5);
}

Test(fl_graph_pretrain, fedtl_pretrains_resnet18_that_inspect_eval_finetune_accept, .timeout = 600)
{
    if (access(FMNIST "/t10k-images-idx3-ubyte.gz", R_OK) != 0)
        cr_skip_test("no Fashion-MNIST in " FMNIST);
    struct fl_dataset ds;
    cr_assert_eq(fl_dataset_load(&ds, FMNIST "/t10k-images-idx3-ubyte.gz",
                                 FMNIST "/t10k-labels-idx1-ubyte.gz"),
                 0, "%s", fl_error_msg());
    size_t at = 0;
    s_write_csv(&ds, &at, 300, "train.csv");
    s_write_csv(&ds, &at, 100, "test.csv");
    fl_dataset_free(&ds);
    char *out = NULL;
    int rc = s_fedtl(&out, "pretrain --data train.csv --classes 0-4 --arch resnet18 --epochs 2 "
                           "--batch 32 --out r18.ftm");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_not_null(strstr(out, "pretrain resnet18 on 300 records, 5 classes, 11168005 "
                                   "parameters"),
                       "%s", out);
    cr_assert_lt(s_epoch_loss(out, 2), s_epoch_loss(out, 1), "%s", out);
    free(out);
    cr_assert_eq(s_fedtl(&out, "inspect r18.ftm"), 0, "%s", out);
    cr_assert_not_null(strstr(out, "resnet18 (input 1x28x28, 5 classes)"), "%s", out);
    cr_assert_not_null(strstr(out, "layer4.1.conv2"), "%s", out);
    free(out);
    cr_assert_eq(s_fedtl(&out, "eval --base r18.ftm --data test.csv --json"), 0, "%s", out);
    cr_assert_not_null(strstr(out, "\"n\":100"), "%s", out);
    free(out);
    rc = s_fedtl(&out, "finetune --base r18.ftm --data train.csv --classes 0-4 --method lora "
                       "--targets layer4.1.conv1,layer4.1.conv2 --epochs 1 --out a.fta");
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    rc = s_fedtl(&out, "eval --base r18.ftm --adapter a.fta --data test.csv --json");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_not_null(strstr(out, "\"n\":100"), "%s", out);
    free(out);

    /* Out and in again, with no peer: the merged model exported to ONNX and imported as a base
     * of its own predicts what the base with its adapter predicts, record by record (the
     * normalisation travels inside the ONNX file, so the import adds none). */
    rc = s_fedtl(&out, "export --base r18.ftm --adapter a.fta --out merged.onnx");
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    rc = s_fedtl(&out, "import merged.onnx --out merged.ftm --classes 0-4 "
                       "--class-names 'T-shirt/top,Trouser,Pullover,Dress,Coat'");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_not_null(strstr(out, "5 classes"), "%s", out);
    free(out);
    cr_assert_eq(s_fedtl(&out, "inspect merged.ftm"), 0, "%s", out);
    cr_assert_not_null(strstr(out, "labels      0=T-shirt/top 1=Trouser 2=Pullover 3=Dress 4=Coat"),
                       "%s", out);
    free(out);
    char *want = NULL, *got = NULL;
    cr_assert_eq(s_fedtl(&want, "predict --base r18.ftm --adapter a.fta --data test.csv"), 0, "%s",
                 want);
    cr_assert_eq(s_fedtl(&got, "predict --base merged.ftm --data test.csv"), 0, "%s", got);
    cr_assert_str_eq(got, want);
    free(want);
    free(got);
    /* Bad input to both commands: each error names what is wrong. */
    cr_assert_neq(s_fedtl(&out, "import merged.onnx --out x.ftm --classes 0-2"), 0);
    cr_assert_not_null(strstr(out, "--classes names 3 classes, the model has 5 outputs"), "%s",
                       out);
    free(out);
    cr_assert_neq(s_fedtl(&out, "import merged.onnx --out x.ftm --class-names a,b,c,d"), 0);
    cr_assert_not_null(strstr(out, "--class-names names 4 classes, the base has 5"), "%s", out);
    free(out);
    cr_assert_neq(s_fedtl(&out, "import merged.onnx --out x.ftm --mean 1,2 --std 3"), 0);
    cr_assert_not_null(strstr(out, "the input has 1 channels"), "%s", out);
    free(out);
    cr_assert_neq(s_fedtl(&out, "import test.csv --out x.ftm"), 0);
    cr_assert_not_null(strstr(out, "not an ONNX model"), "%s", out);
    free(out);
    cr_assert_neq(s_fedtl(&out, "export --base r18.ftm --out x.onnx --peft p"), 0);
    cr_assert_not_null(strstr(out, "--peft needs --adapter"), "%s", out);
    free(out);
    char *path = fl_test_path(s_dir, "x.ftm");
    cr_assert_neq(access(path, F_OK), 0, "a failed import left %s", path);
    free(path);
}

Test(fl_graph_pretrain, fedtl_pretrain_refuses_what_is_not_an_image)
{
    char *path = fl_test_path(s_dir, "flat.csv");
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < 20; i++)
        fprintf(f, "%d,%d,1,2,3,4,5,6,7,8,9\n", i % 2, i);
    cr_assert_eq(fclose(f), 0);
    free(path);
    char *out = NULL;
    cr_assert_neq(s_fedtl(&out, "pretrain --data flat.csv --arch resnet18 --out x.ftm"), 0);
    cr_assert_not_null(strstr(out, "10 values is not a square"), "%s", out);
    cr_assert_not_null(strstr(out, "--input-shape"), "%s", out);
    free(out);
    cr_assert_neq(s_fedtl(&out, "pretrain --data flat.csv --arch mobilenet_v2 --input-shape "
                                "3x2x2 --out x.ftm"),
                  0);
    cr_assert_not_null(strstr(out, "--input-shape 3x2x2 has 12 values, a record has 10"), "%s",
                       out);
    free(out);
    cr_assert_neq(s_fedtl(&out, "pretrain --data flat.csv --arch mobilenet_v2 --input-shape 10 "
                                "--out x.ftm"),
                  0);
    cr_assert_not_null(strstr(out, "is not CxHxW"), "%s", out);
    free(out);
    cr_assert_neq(s_fedtl(&out, "pretrain --data flat.csv --arch resnet50 --out x.ftm"), 0);
    for (const char *const *a =
             (const char *const[]){"cnn-small", "mlp", "resnet18", "mobilenet_v2", NULL};
         *a; a++)
        cr_assert_not_null(strstr(out, *a), "%s not named in\n%s", *a, out);
    free(out);
    cr_assert_eq(s_fedtl(&out, "pretrain --help"), 0);
    cr_assert_not_null(strstr(out, "mobilenet_v2"), "%s", out);
    cr_assert_not_null(strstr(out, "--input-shape"), "%s", out);
    free(out);
    path = fl_test_path(s_dir, "x.ftm");
    cr_assert_eq(access(path, F_OK), -1, "no base is written");
    free(path);
}

/* A chain cnn-small base as fedtl wrote them before pretraining made graphs. */
static void s_write_chain_base(const char *name)
{
    struct fl_arch arch;
    cr_assert_eq(fl_arch_builtin("cnn-small", 784, 5, &arch), 0);
    fl_model_t *m = fl_model_new(&arch, 3, NULL);
    cr_assert_not_null(m, "%s", fl_error_msg());
    struct fl_base_meta meta = {.nclasses = 5, .class_ids = {0, 1, 2, 3, 4}};
    char *path = fl_test_path(s_dir, name);
    uint8_t hash[FL_HASH_BYTES];
    cr_assert_eq(fl_model_write_base(m, &meta, path, hash), 0, "%s", fl_error_msg());
    free(path);
    fl_model_destroy(&m);
}

Test(fl_graph_pretrain, fedtl_pretrains_cnn_small_as_a_graph_and_chain_bases_still_run,
     .timeout = 600)
{
    if (access(FMNIST "/t10k-images-idx3-ubyte.gz", R_OK) != 0)
        cr_skip_test("no Fashion-MNIST in " FMNIST);
    struct fl_dataset ds;
    cr_assert_eq(fl_dataset_load(&ds, FMNIST "/t10k-images-idx3-ubyte.gz",
                                 FMNIST "/t10k-labels-idx1-ubyte.gz"),
                 0, "%s", fl_error_msg());
    size_t at = 0;
    s_write_csv(&ds, &at, 300, "train.csv");
    fl_dataset_free(&ds);
    char *out = NULL;
    int rc = s_fedtl(&out, "pretrain --data train.csv --classes 0-4 --arch cnn-small --epochs 2 "
                           "--out cnn.ftm");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_not_null(strstr(out, "5 classes, 206277 parameters"), "%s", out);
    free(out);
    cr_assert_eq(s_fedtl(&out, "inspect cnn.ftm"), 0, "%s", out);
    cr_assert_not_null(strstr(out, "cnn-small (input 1x28x28, 5 classes)"), "%s", out);
    cr_assert_not_null(strstr(out, "graph       10 nodes"), "%s", out);
    cr_assert_not_null(strstr(out, "default targets of lora: fc1\n"), "%s", out);
    cr_assert_not_null(strstr(out, "default targets of bitfit: conv1,conv2,fc1"), "%s", out);
    free(out);
    s_write_chain_base("chain.ftm");
    const char *bases[2] = {"cnn.ftm", "chain.ftm"};
    for (int b = 0; b < 2; b++) {
        rc = s_fedtl(&out,
                     "finetune --base %s --data train.csv --classes 0-4 --method lora "
                     "--targets conv2,fc1 --epochs 1 --out a.fta",
                     bases[b]);
        cr_assert_eq(rc, 0, "%s: %s", bases[b], out);
        free(out);
        rc = s_fedtl(&out, "eval --base %s --adapter a.fta --data train.csv --json", bases[b]);
        cr_assert_eq(rc, 0, "%s: %s", bases[b], out);
        cr_assert_not_null(strstr(out, "\"n\":300"), "%s", out);
        free(out);
        /* A graph exports to ONNX; a chain base, kept for what is on disk, does not. */
        rc = s_fedtl(&out, "export --base %s --adapter a.fta --out m.onnx", bases[b]);
        cr_assert_eq(rc != 0, b == 1, "%s: %s", bases[b], out);
        cr_assert(b == 0 || strstr(out, "cnn-small chain base"), "%s", out);
        free(out);
    }
    /* A grey image of another size is refused by name. */
    cr_assert_neq(s_fedtl(&out, "pretrain --data train.csv --arch cnn-small --input-shape 4x14x14 "
                                "--out x.ftm"),
                  0);
    cr_assert_not_null(strstr(out, "cnn-small takes 1x28x28 images, not 4x14x14"), "%s", out);
    free(out);
}
