/* fedtl pretrain / finetune. */
#include "fedtl.h"
#include "fl_error.h"
#include "fl_graphadapt.h"
#include "fl_model.h"
#include "fl_modelfile.h"
#include "fl_modelio.h"
#include "fl_time.h"
#include "fl_zoo.h"

#include <math.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct fl_option_choice s_archs[] = {
    {"cnn-small", 0}, {"mlp", 1}, {"resnet18", 2}, {"mobilenet_v2", 3}, {NULL, 0}};

static const struct fl_option s_pretrain_options[] = {
    TOOL_OPT_DATA,
    TOOL_OPT_LABELS,
    TOOL_OPT_TABLE,
    TOOL_OPT_SKIP_BAD,
    TOOL_OPT_CLASSES,
    TOOL_OPT_CLASS_NAMES,
    TOOL_OPT_SAMPLES,
    {"arch", .type = FL_OPTION_CHOICE, TOOL_ARG, .flags = FL_OPTION_REQUIRED, TOOL_FIELD(arch),
     .choices = s_archs,
     .help = "architecture, built as a graph: cnn-small (28x28x1 images), mlp (any features), "
             "or torchvision's topology, BatchNorm folded: resnet18, mobilenet_v2 (images)"},
    TOOL_TEXT("input-shape", input_shape, 0, "CxHxW",
              "a record's image shape for resnet18 / mobilenet_v2 (default: 1xSxS when a "
              "record has S*S values, as Fashion-MNIST's 1x28x28)"),
    TOOL_PATH("out", out, FL_OPTION_REQUIRED, "FILE", "the base to write (.ftm)"),
    TOOL_OPT_EPOCHS(1, "passes over the data"),
    TOOL_OPT_BATCH,
    TOOL_OPT_LR("learning rate"),
    TOOL_OPT_OPTIMIZER,
    TOOL_OPT_MOMENTUM,
    TOOL_OPT_WEIGHT_DECAY,
    TOOL_OPT_SEED,
    TOOL_OPT_AUGMENT,
    TOOL_OPT_CACHE_BUDGET,
    TOOL_OPT_THREADS,
    TOOL_OPT_QUIET,
};

const struct fl_options_spec tool_pretrain_spec = TOOL_SPEC(
    "pretrain",
    "Train a graph base model from scratch (cnn-small, mlp, resnet18, mobilenet_v2), every\n"
    "parameter trained. --classes keeps some classes, renumbered 0..k-1\n"
    "in the order given. Input normalisation statistics (one per channel for a graph) are\n"
    "computed here and stored in the base.\n",
    s_pretrain_options);

static const struct fl_option s_finetune_options[] = {
    TOOL_OPT_BASE(FL_OPTION_REQUIRED),
    TOOL_OPT_DATA,
    TOOL_OPT_LABELS,
    TOOL_OPT_TABLE,
    TOOL_OPT_SKIP_BAD,
    TOOL_OPT_CLASSES,
    TOOL_OPT_SAMPLES,
    {"method", .type = FL_OPTION_CHOICE, TOOL_ARG, .flags = FL_OPTION_REQUIRED, TOOL_FIELD(method),
     .choices = fl_method_choices, .help = "adapter method"},
    TOOL_INT("rank", rank, 0, FL_METHOD_RANK_MAX, "R",
             "LoRA rank (0: the method's: 4 for lora, 16 for ffa-lora)"),
    TOOL_REAL("alpha", alpha, 0, FL_METHOD_ALPHA_MAX, "A", "LoRA alpha (0: 2 * rank)"),
    TOOL_TEXT("targets", targets, 0, "LAYER,...",
              "layers (or a graph base's nodes: fedtl inspect lists them) carrying LoRA or "
              "BitFit (cnn-small: lora fc1; ffa-lora conv2,fc1; bitfit conv1,conv2,fc1)"),
    TOOL_PATH("out", out, FL_OPTION_REQUIRED, "FILE", "the adapter to write (.fta)"),
    {"epochs", .type = FL_OPTION_INT, .where = FL_OPTION_FLAG_ONLY, TOOL_FIELD(train.epochs),
     .range.i = {0, FL_METHOD_EPOCHS_MAX}, .def = "0", .metavar = "N",
     .help = "passes over the data (0: 10)"},
    TOOL_OPT_BATCH,
    {"lr", .type = FL_OPTION_DOUBLE, .where = FL_OPTION_FLAG_ONLY, TOOL_FIELD(train.lr),
     .range.d = {0, FL_METHOD_LR_MAX}, .def = "0", .metavar = "LR",
     .help = "learning rate (0: the method's: 0.002 for lora, 0.01 for the others)"},
    TOOL_OPT_OPTIMIZER,
    TOOL_OPT_MOMENTUM,
    TOOL_OPT_WEIGHT_DECAY,
    TOOL_OPT_SEED,
    TOOL_UINT("cache_mb", cache_mb, 1 << 20, "MB",
              "cache of the frozen layers' output per record (0: off; unused with --augment)"),
    TOOL_OPT_AUGMENT,
    TOOL_OPT_CACHE_BUDGET,
    TOOL_OPT_THREADS,
    TOOL_OPT_QUIET,
};

const struct fl_options_spec tool_finetune_spec = TOOL_SPEC(
    "finetune",
    "Fine-tune an adapter over the frozen base on local data: lora, ffa-lora and bitfit train a\n"
    "new head too, head trains only the head. The frozen layers below the first adapted one run\n"
    "once per record and are cached (--cache-mb); with --augment they run on every step. Image\n"
    "sets larger than --cache-budget once decoded stream from their files each epoch.\n",
    s_finetune_options);

static int s_write_base(const char *path, fl_model_t *m, const struct fl_base_meta *meta)
{
    uint8_t hash[FL_HASH_BYTES];
    int rc = fl_model_write_base(m, meta, path, hash);
    if (rc == 0) {
        char hex[2 * FL_HASH_BYTES + 1];
        fl_hash_hex(hash, hex);
        printf("wrote %s (base %s)\n", path, hex);
    }
    return rc;
}

/* A zoo architecture's image shape: --input-shape, else one grey square channel. */
static int s_image_shape(const struct tool_opts *o, size_t dim, int shape[3])
{
    if (o->input_shape) {
        int64_t d[3];
        int nd = 0;
        int rc = tool_parse_shape(o->input_shape, d, &nd);
        if (rc)
            return rc;
        if (nd != 3 || d[0] > 4096)
            return fl_fail(FL_EINVAL, "--input-shape '%s' is not CxHxW (e.g. 1x28x28)",
                           o->input_shape);
        for (int i = 0; i < 3; i++)
            shape[i] = (int)d[i];
        if ((size_t)shape[0] * (size_t)shape[1] * (size_t)shape[2] != dim)
            return fl_fail(FL_EINVAL, "--input-shape %s has %zu values, a record has %zu",
                           o->input_shape, (size_t)shape[0] * shape[1] * shape[2], dim);
        return 0;
    }
    shape[0] = 1;
    shape[1] = shape[2] = (int)lround(sqrt((double)dim));
    if ((size_t)shape[1] * (size_t)shape[2] != dim)
        return fl_fail(FL_EINVAL,
                       "--arch %s takes images: a record of %zu values is not a square of grey "
                       "pixels; give --input-shape CxHxW",
                       o->arch, dim);
    return 0;
}

/* A fresh model: a zoo graph described in *def (which the model borrows). */
static fl_model_t *s_fresh_model(const struct tool_opts *o, size_t dim, int classes,
                                 struct fl_arch *arch, struct fl_graphdef *def, fl_pool_t *pool)
{
    int shape[3] = {(int)dim, 1, 1}; /* mlp: a flat record */
    struct fl_tensor *params = NULL;
    size_t n = 0;
    if (dim > (1 << 24)) {
        fl_fail(FL_EINVAL, "a record of %zu values is too large", dim);
        return NULL;
    }
    if ((strcmp(o->arch, "mlp") != 0 && s_image_shape(o, dim, shape) != 0) ||
        fl_zoo_build(o->arch, shape[0], shape[1], shape[2], classes, o->train.seed, def, &params,
                     &n) != 0 ||
        fl_arch_from_graph(def, o->arch, classes, arch) != 0)
        return NULL;
    fl_model_t *m = fl_model_new_graph(arch, params, n, pool);
    fl_zoo_free_params(params, n);
    return m;
}

/* Mean and standard deviation of each of c channels of ds's records (planes of dim / c), read
 * a chunk of records at a time (streamed records are decoded into buf, [chunk, dim]). */
static int s_channel_stats(const struct fl_dataset *ds, int c, float *mean, float *std)
{
    enum { CHUNK = 64 };
    size_t plane = ds->dim / (size_t)c;
    double *s = calloc((size_t)c, sizeof *s), *s2 = calloc((size_t)c, sizeof *s2);
    float *buf = fl_dataset_streamed(ds) ? fl_falloc(CHUNK * ds->dim) : NULL;
    int rc = s && s2 && (buf || !fl_dataset_streamed(ds)) ? 0 : FL_ENOMEM;
    for (size_t first = 0; rc == 0 && first < ds->n; first += CHUNK) {
        size_t n = ds->n - first < CHUNK ? ds->n - first : CHUNK;
        const float *x = buf ? buf : ds->x + first * ds->dim;
        if (buf && (rc = fl_dataset_read(ds, first, n, buf)) != 0)
            break;
        for (int k = 0; k < c; k++)
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < plane; j++) {
                    double v = x[i * ds->dim + (size_t)k * plane + j];
                    s[k] += v;
                    s2[k] += v * v;
                }
    }
    for (int k = 0; rc == 0 && k < c; k++) {
        double cnt = ds->n * plane > 0 ? (double)(ds->n * plane) : 1.0;
        double mu = s[k] / cnt, var = s2[k] / cnt - mu * mu;
        mean[k] = (float)mu;
        std[k] = (float)(var > 1e-12 ? sqrt(var) : 1.0);
    }
    free(s);
    free(s2);
    free(buf);
    return rc;
}

/* The input normalisation from the data, one value per channel of the graph's input: one for
 * cnn-small (a grey image), one per feature for mlp (a flat record has a channel per value). */
static int s_norm(fl_model_t *m, const struct fl_dataset *ds)
{
    const struct fl_arch *a = fl_model_arch(m);
    float *mean = fl_falloc(ds->dim), *std = fl_falloc(ds->dim);
    int rc = FL_ENOMEM;
    if (mean && std && (rc = s_channel_stats(ds, a->in_c, mean, std)) == 0)
        rc = fl_model_set_norm(m, mean, std, (size_t)a->in_c);
    free(mean);
    free(std);
    return rc;
}

/* Class folder names become the base's label names, so predict can print them. */
static void s_label_names(struct fl_base_meta *meta, const struct fl_data_info *info)
{
    int n = info->nnames < FL_MAX_CLASSES ? info->nnames : FL_MAX_CLASSES;
    for (int i = 0; i < n; i++)
        snprintf(meta->label_names[i], FL_LABEL_NAME_MAX, "%s", info->names[i]);
    meta->nlabel_names = n;
}

int cmd_pretrain(int argc, char **argv)
{
    struct tool_opts o;
    int rc = tool_parse(&tool_pretrain_spec, argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : 2;
    struct fl_dataset ds = {0};
    struct fl_base_meta meta = {0};
    int nclasses = 0;
    struct fl_data_info info;
    struct fl_arch arch;
    struct fl_graphdef def; /* a graph architecture's description, borrowed by the model */
    fl_model_t *m = NULL;
    fl_pool_t *pool = NULL; /* the command's threads (--threads): decoding and compute */
    fl_graphdef_init(&def);
    if (!(pool = fl_pool_new(o.threads))) {
        rc = tool_error(FL_ENOMEM, "cannot make the threads");
        goto out_free_data;
    }
    o.pool = pool;
    if (tool_load_data(&o, &ds, meta.class_ids, &nclasses, &info) != 0) {
        rc = 1;
        goto out_free_data;
    }
    s_label_names(&meta, &info);
    fl_data_info_free(&info);
    if ((rc = tool_class_names(&o, &meta, nclasses)) != 0) {
        rc = tool_error(rc, "--class-names");
        goto out_free_data;
    }
    if (!(m = s_fresh_model(&o, ds.dim, nclasses, &arch, &def, pool))) {
        rc = tool_error(FL_EINVAL, "cannot build the model");
        goto out_free_data;
    }
    if ((rc = s_norm(m, &ds)) != 0) {
        rc = tool_error(rc, "normalisation");
        goto out_destroy;
    }
    printf("pretrain %s on %zu records, %d classes, %zu parameters, %d threads\n", arch.name, ds.n,
           nclasses, fl_model_param_count(m, false), fl_pool_size(pool));
    fflush(stdout);
    if ((rc = fl_train(m, &ds, &o.train, NULL, NULL, NULL)) != 0) {
        rc = tool_error(rc, "training failed");
        goto out_destroy;
    }
    meta.nclasses = nclasses;
    meta.created_unix = fl_time_stamp();
    snprintf(meta.data_desc, sizeof meta.data_desc, "%s%s%s%s; classes %s; %zu records", o.data,
             o.labels ? " + " : "", o.labels ? o.labels : "", "", o.classes ? o.classes : "all",
             ds.n);
    rc = s_write_base(o.out, m, &meta) ? tool_error(FL_EIO, "cannot write the base") : 0;
out_destroy:
    fl_model_destroy(&m);
out_free_data:
    fl_dataset_free(&ds);
    fl_pool_destroy(&pool);
    fl_graphdef_free(&def);
    return rc;
}

void tool_adapter_meta(const struct tool_opts *o, const struct fl_method *mp, int nclasses,
                       const int32_t *class_ids, struct fl_adapter_meta *am)
{
    memset(am, 0, sizeof *am);
    fl_method_to_meta(mp, am);
    am->seed = o->train.seed;
    am->num_classes = nclasses;
    memcpy(am->class_ids, class_ids, sizeof(int32_t) * (size_t)nclasses);
    am->created_unix = fl_time_stamp();
}

int cmd_finetune(int argc, char **argv)
{
    struct tool_opts o;
    int rc = tool_parse(&tool_finetune_spec, argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : 2;
    enum fl_adapter_kind kind;
    if (fl_adapter_kind_parse(o.method, &kind) != 0)
        return tool_usage_error(&tool_finetune_spec, fl_error_msg());
    struct fl_base_file bf;
    if ((rc = fl_base_read(o.base, &bf)) != 0)
        return tool_error(rc, "cannot load the base");
    struct fl_dataset ds = {0};
    int32_t class_ids[FL_MAX_CLASSES];
    int nclasses = 0;
    fl_model_t *m = NULL;
    fl_pool_t *pool = NULL; /* the command's compute threads (--threads) */
    struct fl_image_target image;
    fl_image_target_for_base(&image, &bf.arch, &bf.meta);
    o.image = &image;
    if (!(pool = fl_pool_new(o.threads))) {
        rc = tool_error(FL_ENOMEM, "cannot make the threads");
        goto out_free_data;
    }
    o.pool = pool;
    if (tool_load_data(&o, &ds, class_ids, &nclasses, NULL) != 0) {
        rc = 1;
        goto out_free_data;
    }
    struct fl_method mp;
    struct fl_method_overrides mo = {.rank = o.rank,
                                     .alpha = o.alpha,
                                     .lr = o.train.lr,
                                     .epochs = o.train.epochs,
                                     .targets = o.targets};
    if ((rc = fl_method_resolve(&bf.arch, kind, &mo, &mp)) != 0) {
        rc = tool_error(rc, "adapter");
        goto out_free_data;
    }
    o.train.lr = mp.lr;
    o.train.epochs = mp.epochs;
    struct fl_adapter_meta am;
    tool_adapter_meta(&o, &mp, nclasses, class_ids, &am);
    if (!(m = fl_model_from_base(&bf, o.base, &am, pool))) {
        rc = tool_error(FL_EINVAL, "cannot build the adapter");
        goto out_free_data;
    }
    size_t total = fl_model_param_count(m, false), trainable = fl_model_param_count(m, true);
    printf("finetune %s (rank %d) on %zu records, %d classes: %zu trainable of %zu parameters "
           "(%.2f%%), %d threads\n",
           o.method, am.rank, ds.n, nclasses, trainable, total, 100.0 * trainable / total,
           fl_pool_size(pool));
    fflush(stdout);
    if ((rc = fl_train(m, &ds, &o.train, NULL, NULL, NULL)) != 0) {
        rc = tool_error(rc, "training failed");
        goto out_destroy;
    }
    rc = fl_model_write_adapter(m, o.out, NULL);
    if (rc)
        rc = tool_error(rc, "cannot write the adapter");
    else
        printf("wrote %s\n", o.out);
out_destroy:
    fl_model_destroy(&m);
out_free_data:
    fl_dataset_free(&ds);
    fl_pool_destroy(&pool);
    fl_base_close(&bf);
    return rc;
}
