/* fedtl pretrain / finetune. */
#include "fedtl.h"
#include "fl_error.h"
#include "fl_model.h"
#include "fl_modelfile.h"
#include "fl_modelio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const struct fl_option_choice s_archs[] = {{"cnn-small", 0}, {"mlp", 1}, {NULL, 0}};

static const struct fl_option s_pretrain_options[] = {
    TOOL_OPT_DATA,
    TOOL_OPT_LABELS,
    TOOL_OPT_CLASSES,
    TOOL_OPT_SAMPLES,
    {"arch", .type = FL_OPTION_CHOICE, TOOL_ARG, .flags = FL_OPTION_REQUIRED, TOOL_FIELD(arch),
     .choices = s_archs, .help = "architecture: cnn-small (28x28x1 images) or mlp (any features)"},
    TOOL_PATH("out", out, FL_OPTION_REQUIRED, "FILE", "the base to write (.ftm)"),
    TOOL_OPT_EPOCHS(1, "passes over the data"),
    TOOL_OPT_BATCH,
    TOOL_OPT_LR("learning rate"),
    TOOL_OPT_OPTIMIZER,
    TOOL_OPT_MOMENTUM,
    TOOL_OPT_WEIGHT_DECAY,
    TOOL_OPT_SEED,
    TOOL_OPT_THREADS,
    TOOL_OPT_QUIET,
};

const struct fl_options_spec tool_pretrain_spec = TOOL_SPEC(
    "pretrain",
    "Train a base model from scratch. --classes keeps some classes, renumbered 0..k-1 in\n"
    "the order given. Input normalisation statistics are computed here and stored in\n"
    "the base.\n",
    s_pretrain_options);

static const struct fl_option s_finetune_options[] = {
    TOOL_OPT_BASE(FL_OPTION_REQUIRED),
    TOOL_OPT_DATA,
    TOOL_OPT_LABELS,
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
              "cache of the frozen layers' output per record (0: off)"),
    TOOL_OPT_THREADS,
    TOOL_OPT_QUIET,
};

const struct fl_options_spec tool_finetune_spec = TOOL_SPEC(
    "finetune",
    "Fine-tune an adapter over the frozen base on local data: lora, ffa-lora and bitfit train a\n"
    "new head too, head trains only the head. The frozen layers below the first adapted one run\n"
    "once per record and are cached (--cache-mb).\n",
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

int cmd_pretrain(int argc, char **argv)
{
    struct tool_opts o;
    int rc = tool_parse(&tool_pretrain_spec, argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : 2;
    struct fl_dataset ds;
    struct fl_base_meta meta = {0};
    int nclasses = 0;
    if (tool_load_data(&o, &ds, meta.class_ids, &nclasses) != 0)
        return 1;
    struct fl_arch arch;
    fl_model_t *m = NULL;
    fl_pool_t *pool = NULL; /* the command's compute threads (--threads) */
    if ((rc = fl_arch_builtin(o.arch, (int)ds.dim, nclasses, &arch)) != 0) {
        rc = tool_error(rc, o.data);
        goto out_free_data;
    }
    if (!(pool = fl_pool_new(o.threads)) || !(m = fl_model_new(&arch, o.train.seed, pool))) {
        rc = tool_error(FL_ENOMEM, "cannot build the model");
        goto out_free_data;
    }
    bool global = strcmp(o.arch, "cnn-small") == 0;
    float *mean = fl_falloc(ds.dim), *std = fl_falloc(ds.dim);
    if (!mean || !std) {
        free(mean);
        free(std);
        rc = tool_error(FL_ENOMEM, "normalisation");
        goto out_destroy;
    }
    fl_data_stats(&ds, global, mean, std);
    rc = fl_model_set_norm(m, mean, std, global ? 1 : ds.dim);
    free(mean);
    free(std);
    if (rc) {
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
    meta.created_unix = (int64_t)time(NULL);
    snprintf(meta.data_desc, sizeof meta.data_desc, "%s%s%s%s; classes %s; %zu records", o.data,
             o.labels ? " + " : "", o.labels ? o.labels : "", "", o.classes ? o.classes : "all",
             ds.n);
    rc = s_write_base(o.out, m, &meta) ? tool_error(FL_EIO, "cannot write the base") : 0;
out_destroy:
    fl_model_destroy(&m);
out_free_data:
    fl_pool_destroy(&pool);
    fl_dataset_free(&ds);
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
    am->created_unix = (int64_t)time(NULL);
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
    if (tool_load_data(&o, &ds, class_ids, &nclasses) != 0) {
        rc = 1;
        goto out_close;
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
    if (!(pool = fl_pool_new(o.threads)) || !(m = fl_model_from_base(&bf, o.base, &am, pool))) {
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
    fl_pool_destroy(&pool);
    fl_dataset_free(&ds);
out_close:
    fl_base_close(&bf);
    return rc;
}
