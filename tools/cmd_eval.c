/* fedtl eval / inspect, and the model loading predict shares. */
#include "fedtl.h"
#include "fl_csv.h"
#include "fl_data.h"
#include "fl_error.h"
#include "fl_model.h"
#include "fl_modelfile.h"
#include "fl_modelio.h"

#include <cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct fl_option s_eval_options[] = {
    TOOL_OPT_BASE(FL_OPTION_REQUIRED),
    TOOL_OPT_ADAPTER,
    TOOL_OPT_DATA,
    TOOL_OPT_LABELS,
    TOOL_OPT_TABLE,
    TOOL_OPT_SKIP_BAD,
    TOOL_OPT_CLASSES,
    TOOL_OPT_CACHE_BUDGET,
    TOOL_OPT_THREADS,
    TOOL_OPT_JSON,
};

const struct fl_options_spec tool_eval_spec = TOOL_SPEC(
    "eval",
    "Accuracy, mean loss and per-class accuracy. The model's own classes are kept (records of\n"
    "other classes are skipped); --classes, if given, must name them in the model's order.\n",
    s_eval_options);

static const struct fl_option s_inspect_options[] = {
    TOOL_PATH("base", base, 0, "FILE", "the adapter's base: its share of the whole model"),
    TOOL_OPT_JSON,
    TOOL_OPT_THREADS,
};

const struct fl_options_spec tool_inspect_spec = {
    .program = "fedtl inspect",
    .about = "Architecture, total and trainable parameters and the content hash of a base model\n"
             "(.ftm) or adapter (.fta) FILE; for an adapter, the base hash it needs.\n",
    .options = s_inspect_options,
    .noptions = sizeof s_inspect_options / sizeof s_inspect_options[0],
    .positional = "FILE",
    .min_positional = 1,
    .max_positional = 1,
    .siblings = tool_specs,
};

void tool_model_unload(struct tool_model *l)
{
    fl_model_destroy(&l->m);
    fl_pool_destroy(&l->pool);
    if (l->has_adapter)
        fl_adapter_close(&l->adapter);
    fl_base_close(&l->base);
}

int tool_model_load(const struct tool_opts *o, struct tool_model *l)
{
    memset(l, 0, sizeof *l);
    int rc = fl_base_read(o->base, &l->base);
    if (rc)
        return tool_error(rc, "cannot load the base");
    if (o->adapter) {
        if ((rc = fl_adapter_read(o->adapter, &l->adapter)) != 0) {
            fl_base_close(&l->base);
            return tool_error(rc, "cannot load the adapter");
        }
        l->has_adapter = true;
        if ((rc = fl_adapter_check_base(&l->adapter, o->adapter, l->base.hash, o->base)) != 0)
            goto out_fail;
    }
    if (!(l->pool = fl_pool_new(o->threads))) {
        rc = FL_ENOMEM;
        goto out_fail;
    }
    l->m = fl_model_from_base(&l->base, o->base, l->has_adapter ? &l->adapter.meta : NULL, l->pool);
    if (!l->m) {
        rc = FL_EFORMAT;
        goto out_fail;
    }
    if (l->has_adapter && (rc = fl_model_set_adapter(l->m, &l->adapter, o->adapter)) != 0)
        goto out_fail;
    l->class_ids = l->has_adapter ? l->adapter.meta.class_ids : l->base.meta.class_ids;
    l->nclasses = fl_model_num_classes(l->m);
    return 0;
out_fail:
    tool_model_unload(l);
    return tool_error(rc, "cannot build the model");
}

/* The data, with the model's classes kept unless --classes says otherwise. */
static int s_data(struct tool_opts *o, const struct tool_model *l, struct fl_dataset *ds)
{
    char spec[FL_MAX_CLASSES * 12 + 1] = "";
    if (!o->classes) {
        size_t off = 0;
        for (int i = 0; i < l->nclasses && off < sizeof spec; i++)
            off +=
                (size_t)snprintf(spec + off, sizeof spec - off, i ? ",%d" : "%d", l->class_ids[i]);
        o->classes = spec;
    }
    int32_t ids[FL_MAX_CLASSES];
    int n = 0;
    struct fl_image_target image;
    fl_image_target_for_base(&image, &l->base.arch, &l->base.meta);
    o->image = &image;
    o->pool = l->pool; /* streamed records are decoded on the command's threads */
    int rc = tool_load_data(o, ds, ids, &n, NULL);
    o->image = NULL;
    bool same = rc == 0 && n == l->nclasses;
    for (int i = 0; same && i < n; i++)
        same = ids[i] == l->class_ids[i];
    if (rc == 0 && !same) {
        fprintf(stderr, "fedtl: --classes %s does not match the model's classes (", o->classes);
        for (int i = 0; i < l->nclasses; i++)
            fprintf(stderr, i ? ",%d" : "%d", l->class_ids[i]);
        fprintf(stderr, ", in this order); omit --classes to use them\n");
        fl_dataset_free(ds);
        rc = 1;
    }
    if (o->classes == spec)
        o->classes = NULL;
    return rc;
}

/* A number cut to `decimals` places, as the text output prints it. */
static void s_json_fixed(cJSON *obj, const char *key, double v, int decimals)
{
    double scale = pow(10, decimals);
    cJSON_AddNumberToObject(obj, key, round(v * scale) / scale);
}

/* A 64-bit value exactly (as digits: cJSON's doubles round above 2^53). */
static void s_json_u64(cJSON *obj, const char *key, uint64_t v)
{
    char digits[24];
    snprintf(digits, sizeof digits, "%" PRIu64, v);
    cJSON_AddRawToObject(obj, key, digits);
}

/* Print a JSON value on one line and free it; 1 (with a message) when out of memory. */
static int s_print_json(cJSON *v)
{
    char *text = v ? cJSON_PrintUnformatted(v) : NULL;
    cJSON_Delete(v);
    if (!text)
        return tool_error(FL_ENOMEM, "--json");
    printf("%s\n", text);
    cJSON_free(text);
    return 0;
}

/* eval --json: accuracy, loss, records, and per class (by original label) the same. */
static int s_print_eval_json(const struct fl_eval *ev, const int32_t *class_ids)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return s_print_json(NULL);
    s_json_fixed(o, "accuracy", ev->accuracy, 6);
    s_json_fixed(o, "loss", ev->loss, 6);
    cJSON_AddNumberToObject(o, "n", (double)ev->n);
    cJSON *per = cJSON_AddArrayToObject(o, "per_class");
    for (int k = 0; per && k < ev->classes; k++) {
        cJSON *c = cJSON_CreateObject();
        if (!c || !cJSON_AddItemToArray(per, c)) {
            cJSON_Delete(c);
            cJSON_Delete(o);
            return s_print_json(NULL);
        }
        cJSON_AddNumberToObject(c, "class", class_ids[k]);
        cJSON_AddNumberToObject(c, "n", (double)ev->class_n[k]);
        s_json_fixed(c, "accuracy",
                     ev->class_n[k] ? (double)ev->class_hit[k] / ev->class_n[k] : 0.0, 6);
    }
    if (!per) { /* out of memory */
        cJSON_Delete(o);
        o = NULL;
    }
    return s_print_json(o);
}

int cmd_eval(int argc, char **argv)
{
    struct tool_opts o;
    int rc = tool_parse(&tool_eval_spec, argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : 2;
    struct tool_model l;
    if (tool_model_load(&o, &l) != 0)
        return 1;
    struct fl_dataset ds;
    if (s_data(&o, &l, &ds) != 0) {
        tool_model_unload(&l);
        return 1;
    }
    struct fl_eval ev;
    if ((rc = fl_evaluate(l.m, &ds, &ev)) != 0) {
        rc = tool_error(rc, o.data);
        goto out;
    }
    if (o.json) {
        rc = s_print_eval_json(&ev, l.class_ids);
    } else {
        printf("records  %zu\naccuracy %.4f\nloss     %.4f\n", ev.n, ev.accuracy, ev.loss);
        for (int k = 0; k < ev.classes; k++)
            printf("  class %-4d n=%-6zu accuracy %.4f\n", l.class_ids[k], ev.class_n[k],
                   ev.class_n[k] ? (double)ev.class_hit[k] / ev.class_n[k] : 0.0);
    }
out:
    fl_dataset_free(&ds);
    tool_model_unload(&l);
    return rc;
}

static const char *const s_layer_kinds[] = {"?", "conv2d", "relu", "maxpool", "flatten", "dense"};

static void s_print_arch(const struct fl_arch *a)
{
    for (int i = 0; i < a->nlayers; i++) {
        const struct fl_layer_spec *s = &a->layers[i];
        printf("  %-8s %-8s", s->name, s_layer_kinds[s->kind]);
        if (s->kind == FL_LAYER_CONV2D)
            printf(" %dx%d %d->%d stride %d pad %d", s->kernel, s->kernel, s->in_ch, s->out_ch,
                   s->stride, s->pad);
        else if (s->kind == FL_LAYER_MAXPOOL)
            printf(" %dx%d stride %d", s->kernel, s->kernel, s->stride);
        else if (s->kind == FL_LAYER_DENSE)
            printf(" %d->%d", s->in_features, s->out_features);
        printf("\n");
    }
}

/* inspect --json of a base: type, arch, hash, parameters, classes, creation time, layers. */
static int s_print_base_json(const struct fl_base_file *bf, const char *hex, size_t total)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return s_print_json(NULL);
    cJSON_AddStringToObject(o, "type", "base");
    cJSON_AddStringToObject(o, "arch", bf->arch.name);
    cJSON_AddStringToObject(o, "hash", hex);
    cJSON_AddNumberToObject(o, "parameters", (double)total);
    cJSON_AddNumberToObject(o, "trainable", (double)total);
    cJSON_AddNumberToObject(o, "classes", bf->arch.num_classes);
    if (bf->meta.created_unix) /* 0: not recorded (fl_time_stamp) */
        cJSON_AddNumberToObject(o, "created", (double)bf->meta.created_unix);
    cJSON *img = cJSON_AddObjectToObject(o, "images");
    if (img) {
        cJSON_AddNumberToObject(img, "resize", bf->meta.image_resize);
        cJSON_AddNumberToObject(img, "crop", bf->meta.image_crop);
        cJSON_AddNumberToObject(img, "pixel_max", bf->meta.pixel_max ? bf->meta.pixel_max : 255);
    }
    cJSON *names = cJSON_AddArrayToObject(o, "label_names");
    for (int i = 0; names && i < bf->meta.nlabel_names; i++)
        cJSON_AddItemToArray(names, cJSON_CreateString(bf->meta.label_names[i]));
    cJSON *layers = cJSON_AddArrayToObject(o, "layers");
    for (int i = 0; layers && i < bf->arch.nlayers; i++) {
        const struct fl_layer_spec *s = &bf->arch.layers[i];
        cJSON *l = cJSON_CreateObject();
        if (!l || !cJSON_AddItemToArray(layers, l)) {
            cJSON_Delete(l);
            layers = NULL;
            break;
        }
        cJSON_AddStringToObject(l, "name", s->name);
        cJSON_AddStringToObject(l, "kind", s_layer_kinds[s->kind]);
    }
    if (!layers || (bf->graph && tool_graph_json(bf, o) != 0)) { /* out of memory */
        cJSON_Delete(o);
        o = NULL;
    }
    return s_print_json(o);
}

static int s_inspect_base(const char *path, bool json)
{
    struct fl_base_file bf;
    int rc = fl_base_read(path, &bf);
    if (rc)
        return tool_error(rc, "cannot read");
    fl_model_t *m = fl_model_from_base(&bf, path, NULL, NULL); /* counted, never run */
    if (!m) {
        fl_base_close(&bf);
        return tool_error(FL_EFORMAT, "cannot build");
    }
    char hex[2 * FL_HASH_BYTES + 1];
    fl_hash_hex(bf.hash, hex);
    size_t total = fl_model_param_count(m, false);
    if (json) {
        rc = s_print_base_json(&bf, hex, total);
    } else {
        /* A chain's input reads HxWxC (NHWC); a graph's CxHxW, as its ONNX file has it. */
        const struct fl_arch *a = &bf.arch;
        int d0 = bf.graph ? a->in_c : a->in_h, d2 = bf.graph ? a->in_w : a->in_c;
        printf("base model  %s\narch        %s (input %dx%dx%d, %d classes)\nhash        %s\n"
               "parameters  %zu (all trainable when pretraining; frozen under an adapter)\n"
               "data        %s\n",
               path, a->name, d0, bf.graph ? a->in_h : a->in_w, d2, a->num_classes, hex, total,
               bf.meta.data_desc);
        printf("images      resize %d, crop %d, pixels 0-%g\n", bf.meta.image_resize,
               bf.meta.image_crop, bf.meta.pixel_max ? (double)bf.meta.pixel_max : 255.0);
        if (bf.meta.nlabel_names) {
            printf("labels     ");
            for (int i = 0; i < bf.meta.nlabel_names; i++)
                printf(" %d=%s", i, bf.meta.label_names[i]);
            printf("\n");
        }
        s_print_arch(&bf.arch);
        if (bf.graph)
            tool_graph_print(&bf);
    }
    fl_model_destroy(&m);
    fl_base_close(&bf);
    return rc;
}

/* An adapter's parameter counts. */
struct s_counts {
    size_t params;    /* stored in the adapter */
    size_t trainable; /* trained under it */
    size_t total;     /* of the whole model (0: unknown without the base) */
};

/* inspect --json of an adapter: its configuration, hashes, parameter counts and targets. */
static int s_print_adapter_json(const struct fl_adapter_meta *am, const char *hex, const char *bhex,
                                const struct s_counts *n)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return s_print_json(NULL);
    cJSON_AddStringToObject(o, "type", "adapter");
    cJSON_AddStringToObject(o, "method", fl_adapter_kind_name(am->kind));
    cJSON_AddNumberToObject(o, "rank", am->rank);
    char alpha[32]; /* a float: its shortest decimal form, as the text output prints it */
    snprintf(alpha, sizeof alpha, "%g", am->alpha);
    cJSON_AddNumberToObject(o, "alpha", strtod(alpha, NULL));
    s_json_u64(o, "seed", am->seed);
    cJSON_AddNumberToObject(o, "classes", am->num_classes);
    cJSON_AddNumberToObject(o, "round", am->round);
    cJSON_AddStringToObject(o, "hash", hex);
    cJSON_AddStringToObject(o, "base_hash", bhex);
    cJSON_AddNumberToObject(o, "adapter_parameters", (double)n->params);
    cJSON_AddNumberToObject(o, "trainable", (double)n->trainable);
    if (n->total) {
        cJSON_AddNumberToObject(o, "parameters", (double)n->total);
        s_json_fixed(o, "trainable_fraction", (double)n->trainable / n->total, 6);
    }
    cJSON *targets = cJSON_AddArrayToObject(o, "targets");
    for (int i = 0; targets && i < am->ntargets; i++) {
        cJSON *t = cJSON_CreateString(am->targets[i]);
        if (!t || !cJSON_AddItemToArray(targets, t)) {
            cJSON_Delete(t);
            targets = NULL;
        }
    }
    if (!targets) { /* out of memory */
        cJSON_Delete(o);
        o = NULL;
    }
    return s_print_json(o);
}

static int s_inspect_adapter(const char *path, const char *base_path, bool json)
{
    struct fl_adapter_file af;
    int rc = fl_adapter_read(path, &af);
    if (rc)
        return tool_error(rc, "cannot read");
    const struct fl_adapter_meta *am = &af.meta;
    size_t params = 0;
    for (size_t i = 0; i < af.ntensors; i++)
        params += fl_tensor_numel(&af.tensors[i]);
    size_t total = 0, trainable = params;
    if (base_path) {
        struct fl_base_file bf;
        if ((rc = fl_base_read(base_path, &bf)) != 0 ||
            (rc = fl_adapter_check_base(&af, path, bf.hash, base_path)) != 0) {
            if (rc != 0 && bf.map)
                fl_base_close(&bf);
            fl_adapter_close(&af);
            return tool_error(rc, "--base");
        }
        fl_model_t *m = fl_model_from_base(&bf, base_path, am, NULL);
        if (m) {
            total = fl_model_param_count(m, false);
            trainable = fl_model_param_count(m, true);
        }
        fl_model_destroy(&m);
        fl_base_close(&bf);
    }
    char hex[2 * FL_HASH_BYTES + 1], bhex[2 * FL_HASH_BYTES + 1];
    fl_hash_hex(af.hash, hex);
    fl_hash_hex(am->base_hash, bhex);
    if (json) {
        struct s_counts n = {params, trainable, total};
        rc = s_print_adapter_json(am, hex, bhex, &n);
    } else {
        printf("adapter     %s\nmethod      %s", path, fl_adapter_kind_name(am->kind));
        if (am->rank)
            printf(" (rank %d, alpha %g, seed %llu)", am->rank, am->alpha,
                   (unsigned long long)am->seed);
        printf("\ntargets    ");
        for (int i = 0; i < am->ntargets; i++)
            printf(" %s", am->targets[i]);
        printf("%s\nclasses     %d\nround       %u\nhash        %s\nneeds base  %s\n"
               "parameters  %zu stored\n",
               am->ntargets ? "" : " (head only)", am->num_classes, am->round, hex, bhex, params);
        for (size_t i = 0; i < af.ntensors; i++) {
            char shape[64];
            fl_tensor_shape_str(&af.tensors[i], shape, sizeof shape);
            printf("  %-16s %s\n", af.tensors[i].name, shape);
        }
        if (total)
            printf("trainable   %zu of %zu model parameters (%.2f%%)\n", trainable, total,
                   100.0 * trainable / total);
    }
    fl_adapter_close(&af);
    return rc;
}

int cmd_inspect(int argc, char **argv)
{
    struct tool_opts o;
    int rc = tool_parse(&tool_inspect_spec, argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : 2;
    const char *path = o.file;
    char magic[8] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fedtl: %s: cannot open\n", path);
        return 1;
    }
    size_t got = fread(magic, 1, sizeof magic, f);
    fclose(f);
    if (got == sizeof magic && memcmp(magic, "FEDTLAD\n", 8) == 0)
        return s_inspect_adapter(path, o.base, o.json);
    return s_inspect_base(path, o.json);
}
