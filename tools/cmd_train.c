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

static const char s_pretrain_usage[] =
    "usage: fedtl pretrain --data D [--labels L] [--classes C] --arch cnn-small|mlp\n"
    "                      [--epochs N] [--batch B] [--lr LR] [--optimizer adam|sgd]\n"
    "                      [--momentum M] [--weight-decay W] [--seed S] [--samples N]\n"
    "                      [--threads N] [--quiet] --out base.ftm\n"
    "Train a base model from scratch. D is a CSV file (label, features...) or an IDX images\n"
    "file with its IDX labels file L (raw or gzip). --classes 0-4 or 0,3,7 keeps those classes,\n"
    "renumbered 0..k-1 in the order given. Input normalisation statistics are computed here\n"
    "and stored in the base. Defaults: 5 epochs, batch 64, Adam, lr 0.001, seed 1.\n";

static const char s_finetune_usage[] =
    "usage: fedtl finetune --base base.ftm --data D [--labels L] [--classes C]\n"
    "                      --method ffa-lora|lora|head|bitfit [--rank R] [--alpha A]\n"
    "                      [--targets layer,layer] [--epochs N] [--batch B] [--lr LR]\n"
    "                      [--optimizer adam|sgd] [--momentum M] [--weight-decay W] [--seed S]\n"
    "                      [--samples N] [--cache-mb MB] [--threads N] [--quiet] --out "
    "adapter.fta\n"
    "Fine-tune an adapter over the frozen base on local data: lora, ffa-lora and bitfit train a\n"
    "new head too, head trains only the head. --targets chooses the layers carrying LoRA or\n"
    "BitFit (cnn-small: lora fc1; ffa-lora conv2,fc1; bitfit conv1,conv2,fc1). --alpha\n"
    "defaults to 2 * rank. The frozen layers below the first adapted one run once per record\n"
    "and are cached (--cache-mb, default 1024; 0 turns the cache off). Defaults: 10 epochs,\n"
    "batch 64, Adam; rank 4 and lr 0.002 for lora, rank 16 and lr 0.01 for ffa-lora,\n"
    "lr 0.01 for head and bitfit.\n";

static int s_write_base(const char *path, fl_model_t *m, const struct fl_base_meta *meta)
{
    size_t n = fl_model_ntensors(m, FL_SET_BASE);
    struct fl_tensor *ts = calloc(n, sizeof *ts);
    if (!ts)
        return FL_ENOMEM;
    for (size_t i = 0; i < n; i++)
        ts[i] = *fl_model_tensor(m, FL_SET_BASE, i);
    uint8_t hash[FL_HASH_BYTES];
    int rc = fl_base_write(path, fl_model_arch(m), meta, ts, n, hash);
    free(ts);
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
    int rc = tool_parse("pretrain", s_pretrain_usage, argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : 2;
    if (!o.data || !o.arch || !o.out) {
        fprintf(stderr, "fedtl pretrain: --data, --arch and --out are required\n%s",
                s_pretrain_usage);
        return 2;
    }
    if (strcmp(o.arch, "cnn-small") != 0 && strcmp(o.arch, "mlp") != 0) {
        fprintf(stderr, "fedtl pretrain: unknown --arch '%s' (expected cnn-small or mlp)\n",
                o.arch);
        return 2;
    }
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

/* Split "a,b,c" into the adapter's target list. */
static int s_targets(const char *list, struct fl_adapter_meta *am)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", list);
    am->ntargets = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (am->ntargets >= FL_MAX_TARGETS || strlen(t) >= FL_LAYER_NAME_MAX)
            return fl_fail(FL_EINVAL, "--targets: too many layers or a name too long");
        snprintf(am->targets[am->ntargets++], FL_LAYER_NAME_MAX, "%s", t);
    }
    return 0;
}

int tool_adapter_meta(const struct tool_opts *o, const struct fl_arch *arch, int nclasses,
                      const int32_t *class_ids, struct fl_adapter_meta *am)
{
    memset(am, 0, sizeof *am);
    int rc = fl_adapter_kind_parse(o->method, &am->kind);
    if (rc)
        return rc;
    bool lora = am->kind == FL_ADAPTER_LORA || am->kind == FL_ADAPTER_FFA_LORA;
    int rank;
    float lr;
    fl_adapter_defaults(am->kind, &rank, &lr);
    if (o->rank > 0)
        rank = o->rank;
    am->rank = lora ? rank : 0;
    am->alpha = lora ? (o->alpha > 0 ? o->alpha : 2.0f * (float)rank) : 0.0f;
    am->seed = o->train.seed;
    am->num_classes = nclasses;
    memcpy(am->class_ids, class_ids, sizeof(int32_t) * (size_t)nclasses);
    am->created_unix = (int64_t)time(NULL);
    return s_targets(o->targets ? o->targets : fl_arch_default_targets(arch, am->kind), am);
}

int cmd_finetune(int argc, char **argv)
{
    struct tool_opts o;
    int rc = tool_parse("finetune", s_finetune_usage, argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : 2;
    if (!o.base || !o.data || !o.method || !o.out) {
        fprintf(stderr, "fedtl finetune: --base, --data, --method and --out are required\n%s",
                s_finetune_usage);
        return 2;
    }
    enum fl_adapter_kind kind;
    if (fl_adapter_kind_parse(o.method, &kind) != 0) {
        fprintf(stderr, "fedtl finetune: %s\n", fl_error_msg());
        return 2;
    }
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
    struct fl_adapter_meta am;
    if ((rc = tool_adapter_meta(&o, &bf.arch, nclasses, class_ids, &am)) != 0) {
        rc = tool_error(rc, "adapter");
        goto out_free_data;
    }
    if (!(o.train.lr > 0)) {
        int rank;
        fl_adapter_defaults(am.kind, &rank, &o.train.lr);
    }
    if (o.train.epochs <= 0)
        o.train.epochs = 10;
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
    size_t n = fl_model_ntensors(m, FL_SET_ADAPTER);
    struct fl_tensor *ts = calloc(n, sizeof *ts);
    if (!ts) {
        rc = tool_error(FL_ENOMEM, "adapter");
        goto out_destroy;
    }
    for (size_t i = 0; i < n; i++)
        ts[i] = *fl_model_tensor(m, FL_SET_ADAPTER, i);
    rc = fl_adapter_write(o.out, fl_model_adapter_meta(m), ts, n, NULL);
    free(ts);
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
