/* fl_peft: see fl_peft.h. Safetensors: an 8-byte little-endian header length, a JSON header
 * {key: {dtype, shape, data_offsets [begin, end)}} padded with spaces to a multiple of 8,
 * then the tensors' bytes back to back (offsets count from the end of the header). */
#include "fl_peft.h"

#include "fl_error.h"
#include "fl_graphadapt.h"
#include "fl_fs.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_KEY_MAX (FL_GRAPH_NAME_MAX + 64)

/* One tensor of the file. */
struct s_entry {
    char key[S_KEY_MAX]; /* "base_model.model.<module>.lora_X.weight" */
    int ndim;            /* axes */
    int64_t shape[4];    /* PEFT's shape */
    float *data;         /* owned values in PEFT's layout */
    size_t numel;        /* elements */
};

int fl_peft_module_name(const struct fl_graphdef *def, int node, char *out, size_t len)
{
    const struct fl_gdef_node *nd = &def->nodes[node];
    const char *w = nd->nin > 1 ? nd->in[1] : "";
    size_t wl = strlen(w), suffix = strlen(".weight");
    int n;
    if (wl > suffix && strcmp(w + wl - suffix, ".weight") == 0) {
        n = snprintf(out, len, "%.*s", (int)(wl - suffix), w);
    } else {
        const char *s = nd->name, *e = s + strlen(s);
        while (*s == '/' || *s == '.')
            s++;
        while (e > s && (e[-1] == '/' || e[-1] == '.'))
            e--;
        n = snprintf(out, len, "%.*s", (int)(e - s), s);
        for (char *p = out; *p; p++)
            if (*p == '/')
                *p = '.';
    }
    if (n <= 0 || (size_t)n >= len)
        return fl_fail(FL_ERANGE, "peft: no module name for node '%s'", nd->name);
    return 0;
}

/* dst [cols, rows] = src [rows, cols] transposed. */
static void s_transpose(float *dst, const float *src, int64_t rows, int64_t cols)
{
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            dst[j * rows + i] = src[i * cols + j];
}

static int s_entry_set(struct s_entry *e, const char *module, const char *which, int ndim,
                       const int64_t *shape, const float *src, bool transpose)
{
    snprintf(e->key, sizeof e->key, "base_model.model.%s.%s.weight", module, which);
    e->ndim = ndim;
    memcpy(e->shape, shape, (size_t)ndim * sizeof *shape);
    e->numel = 1;
    for (int i = 0; i < ndim; i++)
        e->numel *= (size_t)shape[i];
    if (!(e->data = malloc(e->numel * sizeof *e->data)))
        return fl_fail(FL_ENOMEM, "peft: out of memory");
    if (transpose) /* PEFT's [shape0, shape1] from fedtl's [shape1, shape0] */
        s_transpose(e->data, src, shape[1], shape[0]);
    else
        memcpy(e->data, src, e->numel * sizeof *e->data);
    return 0;
}

/* The two entries of target node `node`. */
static int s_target(const struct fl_graphdef *def, int node, const struct fl_tensor *base,
                    size_t nbase, const struct fl_adapter_meta *meta, const struct fl_tensor *ad,
                    size_t nad, struct s_entry e[2])
{
    const struct fl_gdef_node *nd = &def->nodes[node];
    if (nd->op != FL_OP_CONV && nd->op != FL_OP_GEMM && nd->op != FL_OP_MATMUL)
        return fl_fail(FL_EINVAL, "peft: target '%s' is a %s (Conv, Gemm or MatMul only)", nd->name,
                       fl_op_name(nd->op));
    if (nd->op == FL_OP_CONV && nd->a.group != 1)
        return fl_fail(FL_EINVAL,
                       "peft: '%s' is a grouped Conv (group %d), which PEFT's LoRA "
                       "does not take",
                       nd->name, nd->a.group);
    char module[FL_GRAPH_NAME_MAX], an[S_KEY_MAX], bn[S_KEY_MAX];
    int rc = fl_peft_module_name(def, node, module, sizeof module);
    if (rc)
        return rc;
    fl_graphadapt_tensor_name(an, nd->name, "lora_A");
    fl_graphadapt_tensor_name(bn, nd->name, "lora_B");
    const struct fl_tensor *a = fl_tensor_find(ad, nad, an), *b = fl_tensor_find(ad, nad, bn);
    const struct fl_tensor *w = nd->nin > 1 ? fl_tensor_find(base, nbase, nd->in[1]) : NULL;
    int64_t r = meta->rank;
    if (!a || !b || !w || w->ndim < 2 || a->ndim != 2 || b->ndim != 2 || a->shape[0] != r ||
        b->shape[1] != r || b->shape[0] != w->shape[0] ||
        (size_t)(a->shape[1] * b->shape[0]) != fl_tensor_numel(w))
        return fl_fail(FL_EMISMATCH,
                       "peft: LoRA on '%s' needs its weight and '%s' [%lld, cols], "
                       "'%s' [rows, %lld] fitting it",
                       nd->name, an, (long long)r, bn, (long long)r);
    if (nd->op == FL_OP_CONV) {
        int64_t as[4] = {r, w->shape[1], w->shape[2], w->shape[3]}, bs[4] = {w->shape[0], r, 1, 1};
        rc = s_entry_set(&e[0], module, "lora_A", 4, as, a->data, false);
        return rc ? rc : s_entry_set(&e[1], module, "lora_B", 4, bs, b->data, false);
    }
    if (nd->op == FL_OP_GEMM && nd->a.trans_b) {
        rc = s_entry_set(&e[0], module, "lora_A", 2, a->shape, a->data, false);
        return rc ? rc : s_entry_set(&e[1], module, "lora_B", 2, b->shape, b->data, false);
    }
    int64_t as[2] = {r, b->shape[0]}, bs[2] = {a->shape[1], r}; /* W [in, out] */
    rc = s_entry_set(&e[0], module, "lora_A", 2, as, b->data, true);
    return rc ? rc : s_entry_set(&e[1], module, "lora_B", 2, bs, a->data, true);
}

/* The safetensors header of entries e[0..n), padded to a multiple of 8 (malloc'd). */
static char *s_header(const struct s_entry *e, size_t n, size_t *len)
{
    cJSON *root = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(root, "__metadata__");
    cJSON_AddStringToObject(meta, "format", "pt");
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        cJSON *t = cJSON_AddObjectToObject(root, e[i].key), *shape = cJSON_CreateArray();
        cJSON *offs = cJSON_CreateArray();
        cJSON_AddStringToObject(t, "dtype", "F32");
        for (int k = 0; k < e[i].ndim; k++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)e[i].shape[k]));
        cJSON_AddItemToObject(t, "shape", shape);
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        off += e[i].numel * 4;
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToObject(t, "data_offsets", offs);
    }
    char *json = cJSON_PrintUnformatted(root), *out = NULL;
    cJSON_Delete(root);
    size_t jl = json ? strlen(json) : 0, padded = (jl + 7) / 8 * 8;
    if (json && (out = malloc(padded + 1))) {
        memcpy(out, json, jl);
        memset(out + jl, ' ', padded - jl);
        out[padded] = 0;
        *len = padded;
    }
    free(json);
    return out;
}

static int s_write_safetensors(const char *path, const struct s_entry *e, size_t n)
{
    size_t hl = 0;
    char *hdr = s_header(e, n, &hl);
    if (!hdr)
        return fl_fail(FL_ENOMEM, "peft: out of memory");
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    struct fl_atomic_file af;
    int rc = fl_atomic_open(&af, path, 0644);
    bool ok = rc == 0 && fwrite(len8, 1, 8, af.f) == 8 && fwrite(hdr, 1, hl, af.f) == hl;
    for (size_t i = 0; ok && i < n; i++)
        for (size_t k = 0; ok && k < e[i].numel; k++) {
            uint32_t u;
            memcpy(&u, &e[i].data[k], 4);
            uint8_t b[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
            ok = fwrite(b, 1, 4, af.f) == 4;
        }
    free(hdr);
    if (rc)
        return rc;
    if (!ok) {
        fl_atomic_abort(&af);
        return fl_fail(FL_EIO, "peft: %s: %s", path, strerror(errno));
    }
    return fl_atomic_commit(&af);
}

static int s_write_config(const char *path, const struct fl_graphdef *def,
                          const struct fl_adapter_meta *meta, const char *base_model)
{
    cJSON *c = cJSON_CreateObject(), *targets = cJSON_AddArrayToObject(c, "target_modules");
    int rc = 0;
    for (int t = 0; rc == 0 && t < meta->ntargets; t++) {
        char module[FL_GRAPH_NAME_MAX];
        rc = fl_peft_module_name(def, fl_graphdef_find(def, meta->targets[t]), module,
                                 sizeof module);
        cJSON_AddItemToArray(targets, cJSON_CreateString(module));
    }
    cJSON_AddStringToObject(c, "peft_type", "LORA");
    cJSON_AddNullToObject(c, "task_type");
    if (base_model)
        cJSON_AddStringToObject(c, "base_model_name_or_path", base_model);
    else
        cJSON_AddNullToObject(c, "base_model_name_or_path");
    cJSON_AddNumberToObject(c, "r", meta->rank);
    cJSON_AddNumberToObject(c, "lora_alpha", meta->alpha);
    cJSON_AddNumberToObject(c, "lora_dropout", 0.0);
    cJSON_AddStringToObject(c, "bias", "none");
    cJSON_AddBoolToObject(c, "fan_in_fan_out", false);
    cJSON_AddBoolToObject(c, "inference_mode", true);
    cJSON_AddTrueToObject(c, "init_lora_weights");
    cJSON_AddNullToObject(c, "modules_to_save");
    cJSON_AddNullToObject(c, "layers_to_transform");
    cJSON_AddNullToObject(c, "layers_pattern");
    cJSON_AddObjectToObject(c, "rank_pattern");
    cJSON_AddObjectToObject(c, "alpha_pattern");
    cJSON_AddNullToObject(c, "revision");
    cJSON_AddBoolToObject(c, "use_rslora", false);
    cJSON_AddBoolToObject(c, "use_dora", false);
    char *json = rc == 0 ? cJSON_Print(c) : NULL;
    cJSON_Delete(c);
    if (rc == 0 && !json)
        rc = fl_fail(FL_ENOMEM, "peft: out of memory");
    if (rc == 0)
        rc = fl_fs_write_file(path, json, strlen(json), 0644);
    free(json);
    return rc;
}

static char *s_join(const char *dir, const char *name)
{
    size_t len = strlen(dir) + strlen(name) + 2;
    char *p = malloc(len);
    if (p)
        snprintf(p, len, "%s/%s", dir, name);
    return p;
}

int fl_peft_export(const char *dir, const struct fl_graphdef *def, const struct fl_tensor *base,
                   size_t nbase, const struct fl_adapter_meta *meta,
                   const struct fl_tensor *adapter, size_t n, const char *base_model)
{
    if (meta->kind != FL_ADAPTER_LORA && meta->kind != FL_ADAPTER_FFA_LORA)
        return fl_fail(FL_EINVAL, "peft: a %s adapter has no LoRA tensors to export",
                       fl_adapter_kind_name(meta->kind));
    if (meta->ntargets < 1 || meta->ntargets > FL_MAX_TARGETS || meta->rank < 1)
        return fl_fail(FL_EINVAL, "peft: %d targets of rank %d", meta->ntargets, meta->rank);
    struct s_entry *e = calloc(2 * (size_t)meta->ntargets, sizeof *e);
    char *wpath = s_join(dir, FL_PEFT_WEIGHTS), *cpath = s_join(dir, FL_PEFT_CONFIG);
    int rc = e && wpath && cpath ? 0 : fl_fail(FL_ENOMEM, "peft: out of memory");
    for (int t = 0; rc == 0 && t < meta->ntargets; t++) {
        int node = fl_graphdef_find(def, meta->targets[t]);
        rc = node < 0 ? fl_fail(FL_EINVAL, "peft: target '%.32s' is no node of the graph",
                                meta->targets[t])
                      : s_target(def, node, base, nbase, meta, adapter, n, &e[2 * t]);
    }
    if (rc == 0)
        rc = fl_fs_mkdirs(dir, 0755);
    if (rc == 0)
        rc = s_write_safetensors(wpath, e, 2 * (size_t)meta->ntargets);
    if (rc == 0)
        rc = s_write_config(cpath, def, meta, base_model);
    for (int i = 0; e && i < 2 * meta->ntargets; i++)
        free(e[i].data);
    free(e);
    free(wpath);
    free(cpath);
    return rc;
}
