/* fedtl import / export: ONNX in (a base from a model users already have) and ONNX out (the
 * base with an adapter merged in, which PyTorch or ONNX Runtime serve; its LoRA tensors alone
 * in Hugging Face PEFT's layout). */
#include "fedtl.h"
#include "fl_data.h"
#include "fl_error.h"
#include "fl_graph_merge.h"
#include "fl_graphadapt.h"
#include "fl_modelfile.h"
#include "fl_onnx.h"
#include "fl_onnx_export.h"
#include "fl_peft.h"
#include "fl_time.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_NORM 4096 /* values of --mean / --std: one, one per channel or one per feature */

static const struct fl_option s_import_options[] = {
    TOOL_PATH("out", out, FL_OPTION_REQUIRED, "FILE", "the base model to write (.ftm)"),
    TOOL_TEXT("input-shape", input_shape, 0, "CxHxW",
              "per-sample input shape, fixing the model's dynamic axes (e.g. 3x224x224)"),
    TOOL_TEXT("mean", mean, 0, "M,...",
              "input normalisation x' = (x - mean) / std: one value, or one per channel"),
    TOOL_TEXT("std", std, 0, "S,...", "see --mean (default 1)"),
    TOOL_INT("resize", resize, 0, 65536, "N",
             "images: resize the shorter side to N first (PIL bilinear, as torchvision's "
             "Resize(N)); 0: not"),
    TOOL_INT("crop", crop, 0, 65536, "N",
             "images: centre crop to N x N, the input's size (torchvision's CenterCrop(N))"),
    TOOL_INT("pixel-max", pixel_max, 1, 255, "1|255",
             "images: the feature value of a white pixel: 1 (ToTensor's [0, 1], default) or 255"),
    TOOL_TEXT("classes", classes, 0, "C",
              "the original label of each model output, in order (0-4 or 3,5,7; default 0..k-1)"),
    TOOL_OPT_CLASS_NAMES,
    TOOL_TEXT("name", name, 0, "NAME", "the architecture's name (default: the file's name)"),
    TOOL_TEXT("desc", desc, 0, "TEXT", "what the model was trained on (free text)"),
    TOOL_OPT_JSON,
};

const struct fl_options_spec tool_import_spec = {
    .program = "fedtl import",
    .about =
        "Import an ONNX model (opsets 9-17, as PyTorch, Paddle2ONNX or tf2onnx write it) as a\n"
        "fedtl base. Shape computations are folded, BatchNorm is folded into the conv before\n"
        "it and a final Softmax is dropped; an operation fedtl cannot run is refused by name.\n"
        "Record the input normalisation the model was trained with (--mean, --std): fedtl\n"
        "applies it to raw records everywhere the base is used. For image data, record how\n"
        "files become input (--resize, --crop, --pixel-max): every fedtl program then reads\n"
        "image folders as torchvision's Resize, CenterCrop and ToTensor would.\n",
    .options = s_import_options,
    .noptions = sizeof s_import_options / sizeof s_import_options[0],
    .positional = "MODEL.onnx",
    .min_positional = 1,
    .max_positional = 1,
    .siblings = tool_specs,
};

static const struct fl_option s_export_options[] = {
    TOOL_OPT_BASE(FL_OPTION_REQUIRED),
    TOOL_OPT_ADAPTER,
    TOOL_PATH("out", out, FL_OPTION_REQUIRED, "FILE", "the ONNX model to write"),
    TOOL_PATH("peft", peft, 0, "DIR",
              "also write the LoRA tensors alone as Hugging Face PEFT does (adapter_model."
              "safetensors, adapter_config.json)"),
    TOOL_OPT_JSON,
};

const struct fl_options_spec tool_export_spec = TOOL_SPEC(
    "export",
    "Write a graph base, with an adapter merged in when one is given (LoRA folded into the\n"
    "weights, BitFit biases and the new head in place), as an ONNX model (opset 13, or 14 with\n"
    "HardSwish) that takes raw records: the base's input normalisation comes first.\n",
    s_export_options);

/* A comma list of finite floats into out (at most max); *count values. */
static int s_parse_floats(const char *what, const char *text, float *out, int max, int *count)
{
    const char *p = text;
    int n = 0;
    while (*p) {
        char *end;
        errno = 0;
        float v = strtof(p, &end);
        if (end == p || errno || !isfinite(v) || n == max || (*end && *end != ','))
            return fl_fail(FL_EINVAL, "--%s '%s': want a comma list of at most %d numbers", what,
                           text, max);
        out[n++] = v;
        p = *end ? end + 1 : end;
    }
    if (n == 0)
        return fl_fail(FL_EINVAL, "--%s is empty", what);
    *count = n;
    return 0;
}

/* Plan the imported graph once for one record: checks every shape, and gives the classes. */
static int s_classes(const struct fl_graphdef *def, const struct fl_tensor *params, size_t n,
                     int *classes)
{
    fl_graph_t *g = fl_graph_from_def(def, params, n, NULL);
    if (!g)
        return FL_EINVAL;
    int rc = fl_graph_plan(g, 1, false);
    int64_t dims[FL_GRAPH_MAX_DIMS];
    int nd = rc ? 0 : fl_graph_value_shape(g, def->output, dims);
    fl_graph_destroy(&g);
    if (rc)
        return rc;
    if (nd != 1 || dims[0] < 2 || dims[0] > FL_MAX_CLASSES)
        return fl_fail(FL_EINVAL, "the output '%s' must be [batch, classes] with 2 to %d classes",
                       def->output, FL_MAX_CLASSES);
    *classes = (int)dims[0];
    return 0;
}

/* norm.mean and norm.std from the options, appended to the imported tensors. */
static int s_add_norm(const struct tool_opts *o, const struct fl_graphdef *def,
                      struct fl_tensor **params, size_t *n)
{
    static float mean[S_MAX_NORM], stdv[S_MAX_NORM];
    int nm = 1, ns = 1, rc = 0;
    mean[0] = 0.0f, stdv[0] = 1.0f;
    if (o->mean && (rc = s_parse_floats("mean", o->mean, mean, S_MAX_NORM, &nm)))
        return rc;
    if (o->std && (rc = s_parse_floats("std", o->std, stdv, S_MAX_NORM, &ns)))
        return rc;
    if (nm == 1 && ns > 1)
        for (int i = 1; i < ns; i++)
            mean[i] = mean[0];
    if (ns == 1 && nm > 1)
        for (int i = 1; i < nm; i++)
            stdv[i] = stdv[0];
    int len = nm > ns ? nm : ns;
    if ((nm != 1 && nm != len) || (ns != 1 && ns != len))
        return fl_fail(FL_EINVAL, "--mean has %d values and --std %d: give as many of each", nm,
                       ns);
    if (len > 1 && len != def->in_dims[0])
        return fl_fail(FL_EINVAL,
                       "--mean/--std have %d values, the input has %lld channels "
                       "(give one value, or one per channel)",
                       len, (long long)def->in_dims[0]);
    for (int i = 0; i < len; i++)
        if (!(stdv[i] > 0.0f))
            return fl_fail(FL_EINVAL, "--std must be positive (value %d is %g)", i + 1, stdv[i]);
    struct fl_tensor *t = realloc(*params, (*n + 2) * sizeof *t);
    if (!t)
        return fl_fail(FL_ENOMEM, "out of memory");
    *params = t;
    memset(&t[*n], 0, 2 * sizeof *t);
    if ((rc = fl_tensor_init2(&t[*n], "norm.mean", len, 0)) ||
        (rc = fl_tensor_init2(&t[*n + 1], "norm.std", len, 0))) {
        fl_tensor_free(&t[*n]);
        return rc;
    }
    memcpy(t[*n].data, mean, (size_t)len * sizeof(float));
    memcpy(t[*n + 1].data, stdv, (size_t)len * sizeof(float));
    *n += 2;
    return 0;
}

/* The base file's name for the architecture: --name, else the model file's name. */
static void s_arch_name(const struct tool_opts *o, char *out, size_t len)
{
    if (o->name) {
        snprintf(out, len, "%s", o->name);
        return;
    }
    const char *b = strrchr(o->file, '/');
    b = b ? b + 1 : o->file;
    size_t k = strcspn(b, ".");
    snprintf(out, len, "%.*s", (int)(k ? k : strlen(b)), b);
}

static void s_print_import(const struct tool_opts *o, const struct fl_arch *arch,
                           const struct fl_graphdef *def, const struct fl_tensor *t, size_t n,
                           const uint8_t hash[FL_HASH_BYTES])
{
    size_t params = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(t[i].name, "norm.", 5) != 0)
            params += fl_tensor_numel(&t[i]);
    char hex[2 * FL_HASH_BYTES + 1], targets[FL_MAX_TARGETS][FL_TARGET_NAME_MAX];
    fl_hash_hex(hash, hex);
    int head = fl_graphadapt_head(def);
    int nt = fl_graphadapt_default_targets(def, FL_ADAPTER_LORA, targets, FL_MAX_TARGETS);
    if (o->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "base", o->out);
        cJSON_AddStringToObject(j, "arch", arch->name);
        cJSON_AddNumberToObject(j, "nodes", def->nnodes);
        cJSON_AddNumberToObject(j, "parameters", (double)params);
        cJSON_AddNumberToObject(j, "classes", arch->num_classes);
        cJSON *shape = cJSON_AddArrayToObject(j, "input_shape");
        for (int i = 0; i < def->in_ndim; i++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)def->in_dims[i]));
        cJSON_AddStringToObject(j, "head", head >= 0 ? def->nodes[head].name : "");
        cJSON *lt = cJSON_AddArrayToObject(j, "lora_targets");
        for (int i = 0; i < nt; i++)
            cJSON_AddItemToArray(lt, cJSON_CreateString(targets[i]));
        cJSON_AddStringToObject(j, "hash", hex);
        char *s = cJSON_PrintUnformatted(j);
        if (s)
            puts(s);
        free(s);
        cJSON_Delete(j);
        return;
    }
    printf("imported %s: %d nodes, %zu parameters, input ", o->file, def->nnodes, params);
    for (int i = 0; i < def->in_ndim; i++)
        printf(i ? "x%lld" : "%lld", (long long)def->in_dims[i]);
    printf(", %d classes\nhead     %s\nlora     ", arch->num_classes,
           head >= 0 ? def->nodes[head].name : "(none: only BitFit and LoRA apply)");
    for (int i = 0; i < nt; i++)
        printf(i ? ",%s" : "%s", targets[i]);
    printf(" (default targets; `fedtl inspect %s` lists them all)\nwrote    %s\nhash     %s\n",
           o->out, o->out, hex);
}

/* --resize, --crop, --pixel-max into the base's image preparation. */
static int s_image_prep(const struct tool_opts *o, const struct fl_arch *arch,
                        struct fl_base_meta *meta)
{
    if (o->pixel_max && o->pixel_max != 1 && o->pixel_max != 255)
        return fl_fail(FL_EINVAL, "--pixel-max is 1 or 255, not %d", o->pixel_max);
    if (o->crop && (o->crop != arch->in_h || o->crop != arch->in_w))
        return fl_fail(FL_EINVAL, "--crop %d: the model's input is %d x %d", o->crop,
                       (int)arch->in_h, (int)arch->in_w);
    if (o->resize && o->crop && o->resize < o->crop)
        return fl_fail(FL_EINVAL, "--resize %d is smaller than --crop %d", o->resize, o->crop);
    meta->image_resize = o->resize;
    meta->image_crop = o->crop;
    meta->pixel_max = o->pixel_max ? (float)o->pixel_max : 1.0f;
    return 0;
}

int cmd_import(int argc, char **argv)
{
    struct tool_opts o;
    int rc = tool_parse(&tool_import_spec, argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : 2;
    struct fl_onnx_opts opts = {0};
    if (o.input_shape && (rc = tool_parse_shape(o.input_shape, opts.in_dims, &opts.in_ndim)))
        return tool_usage_error(&tool_import_spec, fl_error_msg());
    struct fl_graphdef def;
    struct fl_tensor *params = NULL;
    size_t n = 0;
    fl_graphdef_init(&def);
    if ((rc = fl_onnx_import(o.file, &opts, &def, &params, &n)))
        return tool_error(rc, "cannot import");
    struct fl_arch arch;
    struct fl_base_meta meta = {.created_unix = fl_time_stamp()};
    char name[FL_LAYER_NAME_MAX];
    int classes = 0;
    s_arch_name(&o, name, sizeof name);
    if ((rc = s_classes(&def, params, n, &classes)) == 0 &&
        (rc = fl_arch_from_graph(&def, name, classes, &arch)) == 0 &&
        (rc = s_add_norm(&o, &def, &params, &n)) == 0) {
        meta.nclasses = classes;
        for (int i = 0; i < classes; i++)
            meta.class_ids[i] = i;
        int count = 0;
        if (o.classes &&
            (rc = fl_classes_parse(o.classes, meta.class_ids, FL_MAX_CLASSES, &count)) == 0 &&
            count != classes)
            rc = fl_fail(FL_EINVAL, "--classes names %d classes, the model has %d outputs", count,
                         classes);
        if (rc == 0)
            rc = tool_class_names(&o, &meta, classes);
    }
    if (rc == 0)
        rc = s_image_prep(&o, &arch, &meta);
    if (rc == 0) {
        const char *b = strrchr(o.file, '/');
        snprintf(meta.data_desc, sizeof meta.data_desc, "%s", o.desc ? o.desc : b ? b + 1 : o.file);
        uint8_t hash[FL_HASH_BYTES];
        if ((rc = fl_base_write(o.out, &arch, &meta, params, n, hash)) == 0)
            s_print_import(&o, &arch, &def, params, n, hash);
    }
    fl_onnx_free_params(&params, n);
    fl_graphdef_free(&def);
    return rc ? tool_error(rc, o.file) : 0;
}

static void s_print_export(const struct tool_opts *o)
{
    if (!o->json) {
        printf("wrote %s (%s%s)\n", o->out, o->base, o->adapter ? " with the adapter merged" : "");
        if (o->peft)
            printf("wrote %s/adapter_model.safetensors and %s/adapter_config.json\n", o->peft,
                   o->peft);
        return;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "onnx", o->out);
    cJSON_AddStringToObject(j, "base", o->base);
    if (o->adapter)
        cJSON_AddStringToObject(j, "adapter", o->adapter);
    if (o->peft)
        cJSON_AddStringToObject(j, "peft", o->peft);
    char *s = cJSON_PrintUnformatted(j);
    if (s)
        puts(s);
    free(s);
    cJSON_Delete(j);
}

int cmd_export(int argc, char **argv)
{
    struct tool_opts o;
    int rc = tool_parse(&tool_export_spec, argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : 2;
    struct fl_base_file bf = {0};
    struct fl_adapter_file af = {0};
    if ((rc = fl_base_read(o.base, &bf)))
        return tool_error(rc, "cannot read the base");
    if (!bf.graph) {
        fprintf(stderr,
                "fedtl export: %s is a %s chain base (written by an earlier fedtl); only "
                "graph bases (fedtl import, fedtl pretrain) export to ONNX\n",
                o.base, bf.arch.name);
        fl_base_close(&bf);
        return 1;
    }
    if (o.adapter && ((rc = fl_adapter_read(o.adapter, &af)) ||
                      (rc = fl_adapter_check_base(&af, o.adapter, bf.hash, o.base)))) {
        fl_base_close(&bf);
        fl_adapter_close(&af);
        return tool_error(rc, "cannot use the adapter");
    }
    if (o.peft && !o.adapter)
        rc = fl_fail(FL_EINVAL, "--peft needs --adapter (a LoRA adapter)");
    struct fl_graphdef mdef, ndef;
    struct fl_tensor *mp = NULL, *np = NULL;
    size_t nmp = 0, nnp = 0;
    fl_graphdef_init(&mdef);
    fl_graphdef_init(&ndef);
    /* The normalisation first: the merge keeps only the tensors the nodes read. */
    if (rc == 0)
        rc = fl_graph_prepend_norm(bf.graph, bf.tensors, bf.ntensors, &ndef, &np, &nnp);
    /* The adapter's tensors, with FFA-LoRA's frozen A rebuilt from its seed. */
    struct fl_tensor *at = NULL;
    size_t nat = 0;
    if (rc == 0 && o.adapter)
        rc = fl_graphadapt_complete(bf.graph, bf.tensors, bf.ntensors, &af.meta, af.tensors,
                                    af.ntensors, &at, &nat);
    if (rc == 0 && o.adapter)
        rc = fl_graph_merge_adapter(&ndef, np, nnp, &af.meta, at, nat, &mdef, &mp, &nmp);
    if (rc == 0)
        rc = o.adapter ? fl_onnx_export(o.out, &mdef, mp, nmp, "fedtl")
                       : fl_onnx_export(o.out, &ndef, np, nnp, "fedtl");
    if (rc == 0 && o.peft)
        rc = fl_peft_export(o.peft, bf.graph, bf.tensors, bf.ntensors, &af.meta, at, nat,
                            bf.arch.name);
    if (rc == 0)
        s_print_export(&o);
    for (size_t i = 0; i < nmp; i++)
        fl_tensor_free(&mp[i]);
    free(mp);
    fl_graphdef_free(&mdef);
    for (size_t i = 0; i < nnp; i++)
        fl_tensor_free(&np[i]);
    free(np);
    fl_graphdef_free(&ndef);
    for (size_t i = 0; i < nat; i++)
        fl_tensor_free(&at[i]);
    free(at);
    fl_adapter_close(&af);
    fl_base_close(&bf);
    return rc ? tool_error(rc, "cannot export") : 0;
}
