/* fedtl: keys, pretraining, local fine-tuning, evaluation, prediction, partitioning and
 * inspection: the tool beside the coordinator and the branch clients. */
#include "fedtl.h"
#include "fl_data.h"
#include "fl_error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} s_cmds[] = {
    {"keygen", cmd_keygen, "make a node's Ed25519 identity (PREFIX.key, PREFIX.pub)"},
    {"pretrain", cmd_pretrain, "train a base model from scratch"},
    {"finetune", cmd_finetune, "fine-tune an adapter on local data over a frozen base"},
    {"eval", cmd_eval, "accuracy, loss and per-class accuracy of a base (+ adapter)"},
    {"predict", cmd_predict, "the predicted class of each record or image file"},
    {"import", cmd_import, "import an ONNX model as a base (.ftm)"},
    {"export", cmd_export, "write a graph base, with an adapter merged in, as an ONNX model"},
    {"inspect", cmd_inspect, "architecture, parameters and hashes of a model file"},
    {"export-images", cmd_export_images, "write a data set as class folders of PNG or JPEG images"},
    {"partition", cmd_partition, "split a data set into client shards (IID or Dirichlet)"},
    {"status", cmd_status, "ask a running coordinator for its round, branches and metrics"},
};

static void s_usage(FILE *f)
{
    fprintf(f, "usage: fedtl COMMAND [OPTIONS]   (fedtl COMMAND --help for its options)\n\n");
    for (size_t i = 0; i < sizeof s_cmds / sizeof s_cmds[0]; i++)
        fprintf(f, "  %-13s %s\n", s_cmds[i].name, s_cmds[i].help);
}

int tool_error(int rc, const char *what)
{
    const char *msg = fl_error_msg();
    fprintf(stderr, "fedtl: %s: %s\n", what, msg[0] ? msg : fl_strerror(rc));
    return 1;
}

const struct fl_options_spec *const tool_specs[] = {
    &tool_keygen_spec,  &tool_pretrain_spec, &tool_finetune_spec,      &tool_eval_spec,
    &tool_predict_spec, &tool_inspect_spec,  &tool_partition_spec,     &tool_status_spec,
    &tool_import_spec,  &tool_export_spec,   &tool_export_images_spec, NULL};

const struct fl_option_choice tool_optimizers[] = {
    {"adam", FL_OPT_ADAM}, {"sgd", FL_OPT_SGD}, {NULL, 0}};

int tool_usage_error(const struct fl_options_spec *spec, const char *msg)
{
    fprintf(stderr, "%s: %s\n", spec->program, msg);
    fl_options_usage(spec, stderr);
    fprintf(stderr, "(%s --help lists the options)\n", spec->program);
    return 2;
}

int tool_parse_shape(const char *text, int64_t dims[3], int *ndim)
{
    const char *p = text;
    int n = 0;
    while (*p) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < 1 || v > (1 << 20) || n == 3 || (*end && *end != 'x'))
            return fl_fail(FL_EINVAL,
                           "--input-shape '%s': want 1 to 3 positive axes, e.g. 3x224x224", text);
        dims[n++] = v;
        p = *end ? end + 1 : end;
    }
    if (n == 0)
        return fl_fail(FL_EINVAL, "--input-shape is empty");
    *ndim = n;
    return 0;
}

int tool_parse(const struct fl_options_spec *spec, int argc, char **argv, struct tool_opts *o)
{
    memset(o, 0, sizeof *o);
    fl_train_opts_default(&o->train);
    o->train.progress = true;
    o->train.label = spec->program + strlen("fedtl ");
    o->cache_mb = o->train.cache_bytes >> 20;
    fl_options_reset(spec, o);
    struct fl_options_args args;
    if (fl_options_parse(spec, o, argc, argv, &args) != 0 ||
        (!args.help && fl_options_check_required(spec, o) != 0))
        return tool_usage_error(spec, fl_error_msg());
    if (args.help) { /* o holds the defaults: --help reads nothing else */
        fl_options_help(spec, o, stdout);
        return 1;
    }
    o->file = args.npositional ? args.positional[0] : NULL;
    o->train.progress = !o->quiet;
    o->train.cache_bytes = o->cache_mb << 20;
    if (o->augment && fl_augment_parse(o->augment, &o->train.augment.ops) != 0)
        return tool_usage_error(spec, fl_error_msg()); /* the table's check passed it: never */
    if (o->iid)
        o->dir_alpha = 0;
    return 0;
}

int tool_class_names(const struct tool_opts *o, struct fl_base_meta *meta, int nclasses)
{
    if (!o->class_names)
        return 0;
    char(*names)[FL_LABEL_NAME_MAX] = calloc(FL_MAX_CLASSES, sizeof *names);
    int count = 0, rc;
    if (!names)
        return fl_fail(FL_ENOMEM, "out of memory");
    if ((rc = fl_class_names_parse(o->class_names, names, FL_MAX_CLASSES, &count)) != 0)
        goto out_free;
    if (count != nclasses) {
        rc = fl_fail(FL_EINVAL, "--class-names names %d classes, the base has %d", count, nclasses);
        goto out_free;
    }
    for (int i = 0; i < count; i++)
        if (meta->class_ids[i] < 0 || meta->class_ids[i] >= FL_MAX_CLASSES) {
            rc = fl_fail(FL_ERANGE,
                         "--class-names: class %d's original label %d is past the %d "
                         "a base can name",
                         i, (int)meta->class_ids[i], FL_MAX_CLASSES);
            goto out_free;
        }
    memset(meta->label_names, 0, sizeof meta->label_names);
    meta->nlabel_names = 0;
    for (int i = 0; i < count; i++) {
        int32_t y = meta->class_ids[i];
        memcpy(meta->label_names[y], names[i], FL_LABEL_NAME_MAX);
        if (y + 1 > meta->nlabel_names)
            meta->nlabel_names = y + 1;
    }
out_free:
    free(names);
    return rc;
}

int tool_load_data(const struct tool_opts *o, struct fl_dataset *ds, int32_t *class_ids,
                   int *nclasses, struct fl_data_info *info)
{
    struct fl_table_opts table = {.label_column = o->label_column, .columns = o->columns};
    struct fl_data_opts dopts = {
        .image = o->image, .skip_bad = o->skip_bad, .budget = o->cache_budget, .pool = o->pool};
    if (o->missing && fl_missing_parse(o->missing, &table.missing) != 0)
        return tool_error(FL_EINVAL, "--missing");
    if (o->label_column || o->columns || o->missing)
        dopts.table = &table;
    struct fl_data_info own;
    struct fl_data_info *di = info ? info : &own;
    int rc = fl_dataset_load_ex(ds, o->data, o->labels, &dopts, di);
    if (rc)
        return tool_error(rc, "cannot load data");
    if (di->dropped)
        fprintf(stderr, "fedtl: %s: %zu rows with a missing value dropped\n", o->data, di->dropped);
    if (di->skipped || di->ignored)
        fprintf(stderr, "fedtl: %s: %zu records; %zu bad images skipped, %zu other files ignored\n",
                o->data, ds->n, di->skipped, di->ignored);
    if (!info)
        fl_data_info_free(&own);
    if (o->classes) {
        int count = 0;
        if ((rc = fl_classes_parse(o->classes, class_ids, FL_MAX_CLASSES, &count)) != 0 ||
            (rc = fl_dataset_select_classes(ds, class_ids, count)) != 0) {
            fl_dataset_free(ds);
            return tool_error(rc, "--classes");
        }
        *nclasses = count;
    } else {
        *nclasses = ds->num_classes;
        for (int i = 0; i < ds->num_classes && i < FL_MAX_CLASSES; i++)
            class_ids[i] = i;
    }
    if (ds->n == 0) {
        fl_dataset_free(ds);
        fprintf(stderr, "fedtl: %s: no records left after --classes %s\n", o->data, o->classes);
        return 1;
    }
    if (o->samples > 0 && o->samples < ds->n) {
        struct fl_dataset sub;
        if ((rc = fl_dataset_take(&sub, ds, o->samples, o->train.seed)) != 0) {
            fl_dataset_free(ds);
            return tool_error(rc, "--samples");
        }
        fl_dataset_free(ds);
        *ds = sub;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        s_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof s_cmds / sizeof s_cmds[0]; i++)
        if (strcmp(argv[1], s_cmds[i].name) == 0)
            return s_cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "fedtl: unknown command '%s'\n", argv[1]);
    s_usage(stderr);
    return 2;
}
