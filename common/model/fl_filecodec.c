/* fl_filecodec: protobuf-c encoding of the model file headers, with full validation of
 * everything decoded (counts, string lengths, shapes, kinds) against the C structs' limits. */
#include "fl_filecodec.h"
#include "fl_error.h"
#include "fl_graphcodec.h"
#include "fl_protobuf.h"
#include "fedtl_model.pb-c.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Copy a decoded string into a fixed C buffer, refusing one that does not fit. */
static int s_copy_str(char *dst, size_t cap, const char *src, const char *origin, const char *what)
{
    size_t len = strlen(src);
    if (len >= cap)
        return fl_fail(FL_EFORMAT, "%s: %s is %zu bytes long, at most %zu allowed", origin, what,
                       len, cap - 1);
    memcpy(dst, src, len + 1);
    return 0;
}

/* True when the fixed buffer holds a NUL-terminated string. */
static bool s_terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

/* A graph's architecture: no layers, a name, and the input geometry of its graph. */
static int s_check_graph_arch(const struct fl_arch *arch, const char *origin, int err)
{
    const struct fl_graphdef *d = arch->graph;
    int64_t dims[3] = {1, 1, 1};
    for (int i = 0; i < d->in_ndim && i < 3; i++)
        dims[i] = d->in_dims[i];
    if (arch->nlayers != 0 || arch->name[0] == '\0')
        return fl_fail(err, "%s: a graph architecture has a name and no layers", origin);
    if (arch->in_c != dims[0] || arch->in_h != dims[1] || arch->in_w != dims[2])
        return fl_fail(err, "%s: architecture input %dx%dx%d differs from the graph's", origin,
                       arch->in_c, arch->in_h, arch->in_w);
    if (arch->num_classes < 1 || arch->num_classes > FL_MAX_CLASSES)
        return fl_fail(err, "%s: %d classes, 1 to %d allowed", origin, arch->num_classes,
                       FL_MAX_CLASSES);
    return 0;
}

/* Consistency of an architecture: counts, names, kinds, geometry. */
static int s_check_arch(const struct fl_arch *arch, const char *origin, int err)
{
    if (!s_terminated(arch->name, sizeof arch->name))
        return fl_fail(err, "%s: architecture name is not terminated", origin);
    if (arch->nlayers < 0 || arch->nlayers > FL_ARCH_MAX_LAYERS)
        return fl_fail(err, "%s: %d layers, at most %d allowed", origin, (int)arch->nlayers,
                       FL_ARCH_MAX_LAYERS);
    if (arch->in_h < 0 || arch->in_w < 0 || arch->in_c < 0 || arch->num_classes < 0)
        return fl_fail(err, "%s: negative input geometry or class count", origin);
    if (arch->graph)
        return s_check_graph_arch(arch, origin, err);
    for (int i = 0; i < arch->nlayers; i++) {
        const struct fl_layer_spec *l = &arch->layers[i];
        if (!s_terminated(l->name, sizeof l->name) || l->name[0] == '\0')
            return fl_fail(err, "%s: layer %d has no valid name", origin, i);
        if (l->kind < FL_LAYER_CONV2D || l->kind > FL_LAYER_DENSE)
            return fl_fail(err, "%s: layer %d ('%s') has unknown kind %d", origin, i, l->name,
                           (int)l->kind);
        if (l->in_ch < 0 || l->out_ch < 0 || l->kernel < 0 || l->stride < 0 || l->pad < 0 ||
            l->in_features < 0 || l->out_features < 0)
            return fl_fail(err, "%s: layer %d ('%s') has a negative size", origin, i, l->name);
        for (int j = 0; j < i; j++)
            if (strcmp(arch->layers[j].name, l->name) == 0)
                return fl_fail(err, "%s: layer name '%s' appears twice", origin, l->name);
    }
    return 0;
}

static int s_check_base_meta(const struct fl_base_meta *meta, const char *origin, int err)
{
    if (!s_terminated(meta->data_desc, sizeof meta->data_desc))
        return fl_fail(err, "%s: data description is not terminated", origin);
    if (meta->nclasses < 0 || meta->nclasses > FL_MAX_CLASSES)
        return fl_fail(err, "%s: %d classes, at most %d allowed", origin, (int)meta->nclasses,
                       FL_MAX_CLASSES);
    if (meta->image_resize < 0 || meta->image_resize > 65536 || meta->image_crop < 0 ||
        meta->image_crop > 65536)
        return fl_fail(err, "%s: image resize %d / crop %d out of range (0 to 65536)", origin,
                       (int)meta->image_resize, (int)meta->image_crop);
    if (meta->pixel_max != 0.0f && meta->pixel_max != 1.0f && meta->pixel_max != 255.0f)
        return fl_fail(err, "%s: pixel maximum %g is neither 1 nor 255", origin,
                       (double)meta->pixel_max);
    if (meta->nlabel_names < 0 || meta->nlabel_names > FL_MAX_CLASSES)
        return fl_fail(err, "%s: %d label names, at most %d allowed", origin,
                       (int)meta->nlabel_names, FL_MAX_CLASSES);
    for (int i = 0; i < meta->nlabel_names; i++) {
        const char *nm = meta->label_names[i];
        if (!s_terminated(nm, FL_LABEL_NAME_MAX) || !fl_utf8_valid(nm))
            return fl_fail(err, "%s: label name %d is not UTF-8 text", origin, i);
        for (const char *q = nm; *q; q++)
            if ((unsigned char)*q < 0x20 || *q == 0x7f)
                return fl_fail(err, "%s: label name %d holds a control character", origin, i);
    }
    return 0;
}

static int s_check_adapter_meta(const struct fl_adapter_meta *meta, const char *origin, int err)
{
    if (meta->kind < FL_ADAPTER_HEAD || meta->kind > FL_ADAPTER_BITFIT)
        return fl_fail(err, "%s: unknown adapter kind %d", origin, (int)meta->kind);
    if (meta->rank < 0)
        return fl_fail(err, "%s: negative LoRA rank %d", origin, (int)meta->rank);
    if (!isfinite(meta->alpha))
        return fl_fail(err, "%s: LoRA alpha is not a finite number", origin);
    if (meta->ntargets < 0 || meta->ntargets > FL_MAX_TARGETS)
        return fl_fail(err, "%s: %d target layers, at most %d allowed", origin, (int)meta->ntargets,
                       FL_MAX_TARGETS);
    for (int i = 0; i < meta->ntargets; i++)
        if (!s_terminated(meta->targets[i], FL_TARGET_NAME_MAX) || meta->targets[i][0] == '\0')
            return fl_fail(err, "%s: target %d has no valid name", origin, i);
    if (meta->num_classes < 0 || meta->num_classes > FL_MAX_CLASSES)
        return fl_fail(err, "%s: %d classes, at most %d allowed", origin, (int)meta->num_classes,
                       FL_MAX_CLASSES);
    return 0;
}

/* Tensor table rows: names, shapes, byte counts that match the shape, no duplicates. */
static int s_check_entries(const struct fl_tensor_entry *e, size_t n, const char *origin, int err)
{
    if (n > FL_CODEC_MAX_TENSORS)
        return fl_fail(err, "%s: %zu tensors, at most %d allowed", origin, n, FL_CODEC_MAX_TENSORS);
    for (size_t i = 0; i < n; i++) {
        if (!s_terminated(e[i].name, sizeof e[i].name) || e[i].name[0] == '\0')
            return fl_fail(err, "%s: tensor %zu has no valid name", origin, i);
        if (e[i].ndim < 1 || e[i].ndim > FL_TENSOR_MAX_DIMS)
            return fl_fail(err, "%s: tensor '%s' has %d axes (1 to %d allowed)", origin, e[i].name,
                           e[i].ndim, FL_TENSOR_MAX_DIMS);
        uint64_t bytes = sizeof(float);
        for (int d = 0; d < e[i].ndim; d++) {
            if (e[i].shape[d] <= 0)
                return fl_fail(err, "%s: tensor '%s' axis %d has size %lld", origin, e[i].name, d,
                               (long long)e[i].shape[d]);
            if ((uint64_t)e[i].shape[d] > UINT64_MAX / bytes)
                return fl_fail(err, "%s: tensor '%s' is too large", origin, e[i].name);
            bytes *= (uint64_t)e[i].shape[d];
        }
        if (bytes != e[i].nbytes)
            return fl_fail(err, "%s: tensor '%s' has %llu bytes but its shape needs %llu", origin,
                           e[i].name, (unsigned long long)e[i].nbytes, (unsigned long long)bytes);
        for (size_t j = 0; j < i; j++)
            if (strcmp(e[j].name, e[i].name) == 0)
                return fl_fail(err, "%s: tensor name '%s' appears twice", origin, e[i].name);
    }
    return 0;
}

/* Protobuf views of a tensor table; they borrow the entries' names. */
struct s_infos {
    Fedtl__TensorInfo *infos; /* one message per entry */
    Fedtl__TensorInfo **ptrs; /* what the repeated field points at */
    uint64_t *shapes;         /* FL_TENSOR_MAX_DIMS axis sizes per entry */
};

static void s_infos_free(struct s_infos *t)
{
    free(t->infos);
    free(t->ptrs);
    free(t->shapes);
    memset(t, 0, sizeof *t);
}

static int s_infos_build(struct s_infos *t, const struct fl_tensor_entry *e, size_t n,
                         const char *origin)
{
    memset(t, 0, sizeof *t);
    size_t m = n ? n : 1;
    t->infos = calloc(m, sizeof *t->infos);
    t->ptrs = calloc(m, sizeof *t->ptrs);
    t->shapes = calloc(m, FL_TENSOR_MAX_DIMS * sizeof *t->shapes);
    if (!t->infos || !t->ptrs || !t->shapes) {
        s_infos_free(t);
        return fl_fail(FL_ENOMEM, "%s: out of memory", origin);
    }
    for (size_t i = 0; i < n; i++) {
        Fedtl__TensorInfo init = FEDTL__TENSOR_INFO__INIT;
        Fedtl__TensorInfo *info = &t->infos[i];
        *info = init;
        info->name = (char *)e[i].name;
        info->n_shape = (size_t)e[i].ndim;
        info->shape = &t->shapes[i * FL_TENSOR_MAX_DIMS];
        for (int d = 0; d < e[i].ndim; d++)
            info->shape[d] = (uint64_t)e[i].shape[d];
        info->offset = e[i].offset;
        info->nbytes = e[i].nbytes;
        t->ptrs[i] = info;
    }
    return 0;
}

/* Decode a tensor table into a malloc'd array of validated entries. */
static int s_infos_read(Fedtl__TensorInfo *const *infos, size_t n, const char *origin,
                        struct fl_tensor_entry **out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    if (n == 0)
        return 0;
    if (n > FL_CODEC_MAX_TENSORS)
        return fl_fail(FL_EFORMAT, "%s: %zu tensors, at most %d allowed", origin, n,
                       FL_CODEC_MAX_TENSORS);
    struct fl_tensor_entry *e = calloc(n, sizeof *e);
    if (!e)
        return fl_fail(FL_ENOMEM, "%s: out of memory", origin);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = s_copy_str(e[i].name, sizeof e[i].name, infos[i]->name, origin, "a tensor name");
        if (rc == 0 && (infos[i]->n_shape < 1 || infos[i]->n_shape > FL_TENSOR_MAX_DIMS))
            rc = fl_fail(FL_EFORMAT, "%s: tensor '%s' has %zu axes (1 to %d allowed)", origin,
                         e[i].name, infos[i]->n_shape, FL_TENSOR_MAX_DIMS);
        for (size_t d = 0; rc == 0 && d < infos[i]->n_shape; d++) {
            if (infos[i]->shape[d] > (uint64_t)INT64_MAX)
                rc = fl_fail(FL_EFORMAT, "%s: tensor '%s' axis %zu is too large", origin, e[i].name,
                             d);
            e[i].shape[d] = (int64_t)infos[i]->shape[d];
        }
        e[i].ndim = (int)infos[i]->n_shape;
        e[i].offset = infos[i]->offset;
        e[i].nbytes = infos[i]->nbytes;
    }
    if (rc == 0)
        rc = s_check_entries(e, n, origin, FL_EFORMAT);
    if (rc != 0) {
        free(e);
        return rc;
    }
    *out = e;
    *nout = n;
    return 0;
}

int fl_codec_pack_base_header(const struct fl_arch *arch, const struct fl_base_meta *meta,
                              const struct fl_tensor_entry *entries, size_t n, const char *origin,
                              uint8_t **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    struct fl_graphcodec_view gv = {0};
    int rc = arch->graph ? fl_graphcodec_view(arch->graph, origin, &gv) : 0;
    if (rc == 0)
        rc = s_check_arch(arch, origin, FL_EINVAL);
    if (rc == 0)
        rc = s_check_base_meta(meta, origin, FL_EINVAL);
    if (rc == 0)
        rc = s_check_entries(entries, n, origin, FL_EINVAL);
    if (rc != 0) {
        fl_graphcodec_view_free(&gv);
        return rc;
    }

    Fedtl__LayerSpec layers[FL_ARCH_MAX_LAYERS];
    Fedtl__LayerSpec *layer_ptrs[FL_ARCH_MAX_LAYERS];
    for (int i = 0; i < arch->nlayers; i++) {
        const struct fl_layer_spec *l = &arch->layers[i];
        Fedtl__LayerSpec init = FEDTL__LAYER_SPEC__INIT;
        layers[i] = init;
        layers[i].kind = (Fedtl__LayerKind)l->kind;
        layers[i].name = (char *)l->name;
        layers[i].in_ch = l->in_ch;
        layers[i].out_ch = l->out_ch;
        layers[i].kernel = l->kernel;
        layers[i].stride = l->stride;
        layers[i].pad = l->pad;
        layers[i].in_features = l->in_features;
        layers[i].out_features = l->out_features;
        layer_ptrs[i] = &layers[i];
    }
    Fedtl__Arch parch = FEDTL__ARCH__INIT;
    parch.name = (char *)arch->name;
    parch.in_h = arch->in_h;
    parch.in_w = arch->in_w;
    parch.in_c = arch->in_c;
    parch.num_classes = arch->num_classes;
    parch.n_layers = (size_t)arch->nlayers;
    parch.layers = layer_ptrs;

    struct s_infos infos;
    rc = s_infos_build(&infos, entries, n, origin);
    if (rc != 0) {
        fl_graphcodec_view_free(&gv);
        return rc;
    }
    Fedtl__BaseHeader hdr = FEDTL__BASE_HEADER__INIT;
    hdr.arch = &parch;
    hdr.graph = arch->graph ? &gv.msg : NULL;
    hdr.data_desc = (char *)meta->data_desc;
    hdr.created_unix = meta->created_unix;
    hdr.n_class_ids = (size_t)meta->nclasses;
    hdr.class_ids = (int32_t *)meta->class_ids;
    hdr.n_tensors = n;
    hdr.tensors = infos.ptrs;
    Fedtl__ImagePrep prep = FEDTL__IMAGE_PREP__INIT;
    char *names[FL_MAX_CLASSES];
    if (meta->image_resize || meta->image_crop || meta->pixel_max != 0.0f) {
        prep.resize = meta->image_resize;
        prep.crop = meta->image_crop;
        prep.pixel_max = meta->pixel_max;
        hdr.image_prep = &prep;
    }
    for (int i = 0; i < meta->nlabel_names && i < FL_MAX_CLASSES; i++)
        names[i] = (char *)meta->label_names[i];
    hdr.n_label_names = meta->nlabel_names > 0 ? (size_t)meta->nlabel_names : 0;
    hdr.label_names = names;
    rc = fl_protobuf_pack(&hdr.base, origin, buf, len);
    s_infos_free(&infos);
    fl_graphcodec_view_free(&gv);
    return rc;
}

static int s_arch_read(const Fedtl__Arch *p, const struct fl_graphdef *graph, const char *origin,
                       struct fl_arch *arch)
{
    if (!p)
        return fl_fail(FL_EFORMAT, "%s: header has no architecture", origin);
    if (p->n_layers > FL_ARCH_MAX_LAYERS)
        return fl_fail(FL_EFORMAT, "%s: %zu layers, at most %d allowed", origin, p->n_layers,
                       FL_ARCH_MAX_LAYERS);
    int rc = s_copy_str(arch->name, sizeof arch->name, p->name, origin, "the architecture name");
    if (rc != 0)
        return rc;
    arch->in_h = p->in_h;
    arch->in_w = p->in_w;
    arch->in_c = p->in_c;
    arch->num_classes = p->num_classes;
    arch->nlayers = (int32_t)p->n_layers;
    arch->graph = graph;
    for (size_t i = 0; i < p->n_layers; i++) {
        const Fedtl__LayerSpec *pl = p->layers[i];
        struct fl_layer_spec *l = &arch->layers[i];
        rc = s_copy_str(l->name, sizeof l->name, pl->name, origin, "a layer name");
        if (rc != 0)
            return rc;
        l->kind = (enum fl_layer_kind)pl->kind;
        l->in_ch = pl->in_ch;
        l->out_ch = pl->out_ch;
        l->kernel = pl->kernel;
        l->stride = pl->stride;
        l->pad = pl->pad;
        l->in_features = pl->in_features;
        l->out_features = pl->out_features;
    }
    return s_check_arch(arch, origin, FL_EFORMAT);
}

static int s_base_meta_read(const Fedtl__BaseHeader *h, const char *origin,
                            struct fl_base_meta *meta)
{
    int rc = s_copy_str(meta->data_desc, sizeof meta->data_desc, h->data_desc, origin,
                        "the data description");
    if (rc != 0)
        return rc;
    if (h->n_class_ids > FL_MAX_CLASSES)
        return fl_fail(FL_EFORMAT, "%s: %zu classes, at most %d allowed", origin, h->n_class_ids,
                       FL_MAX_CLASSES);
    meta->created_unix = h->created_unix;
    meta->nclasses = (int32_t)h->n_class_ids;
    if (h->n_class_ids)
        memcpy(meta->class_ids, h->class_ids, h->n_class_ids * sizeof *h->class_ids);
    if (h->image_prep) {
        meta->image_resize = h->image_prep->resize;
        meta->image_crop = h->image_prep->crop;
        meta->pixel_max = h->image_prep->pixel_max;
    }
    if (h->n_label_names > FL_MAX_CLASSES)
        return fl_fail(FL_EFORMAT, "%s: %zu label names, at most %d allowed", origin,
                       h->n_label_names, FL_MAX_CLASSES);
    meta->nlabel_names = (int32_t)h->n_label_names;
    for (size_t i = 0; i < h->n_label_names; i++)
        if ((rc = s_copy_str(meta->label_names[i], FL_LABEL_NAME_MAX, h->label_names[i], origin,
                             "a label name")) != 0)
            return rc;
    return s_check_base_meta(meta, origin, FL_EFORMAT);
}

int fl_codec_unpack_base_header(const uint8_t *buf, size_t len, const char *origin,
                                struct fl_arch *arch, struct fl_graphdef **graph,
                                struct fl_base_meta *meta, struct fl_tensor_entry **entries,
                                size_t *n)
{
    memset(arch, 0, sizeof *arch);
    memset(meta, 0, sizeof *meta);
    *graph = NULL;
    *entries = NULL;
    *n = 0;
    Fedtl__BaseHeader *h = fedtl__base_header__unpack(NULL, len, buf);
    if (!h)
        return fl_fail(FL_EFORMAT, "%s: base model header is not valid protobuf", origin);
    int rc = h->graph ? fl_graphcodec_read(h->graph, origin, graph) : 0;
    if (rc == 0)
        rc = s_arch_read(h->arch, *graph, origin, arch);
    if (rc == 0)
        rc = s_base_meta_read(h, origin, meta);
    if (rc == 0)
        rc = s_infos_read(h->tensors, h->n_tensors, origin, entries, n);
    fedtl__base_header__free_unpacked(h, NULL);
    if (rc != 0) {
        memset(arch, 0, sizeof *arch);
        memset(meta, 0, sizeof *meta);
        fl_graphcodec_free(graph);
    }
    return rc;
}

int fl_codec_pack_adapter_header(const struct fl_adapter_meta *meta,
                                 const struct fl_tensor_entry *entries, size_t n,
                                 const char *origin, uint8_t **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    int rc = s_check_adapter_meta(meta, origin, FL_EINVAL);
    if (rc == 0)
        rc = s_check_entries(entries, n, origin, FL_EINVAL);
    if (rc != 0)
        return rc;

    char *targets[FL_MAX_TARGETS];
    for (int i = 0; i < meta->ntargets; i++)
        targets[i] = (char *)meta->targets[i];
    struct s_infos infos;
    rc = s_infos_build(&infos, entries, n, origin);
    if (rc != 0)
        return rc;
    Fedtl__AdapterHeader hdr = FEDTL__ADAPTER_HEADER__INIT;
    hdr.kind = (Fedtl__AdapterKind)meta->kind;
    hdr.rank = meta->rank;
    hdr.alpha = meta->alpha;
    hdr.seed = meta->seed;
    hdr.n_targets = (size_t)meta->ntargets;
    hdr.targets = targets;
    hdr.num_classes = meta->num_classes;
    hdr.n_class_ids = (size_t)meta->num_classes;
    hdr.class_ids = (int32_t *)meta->class_ids;
    hdr.base_hash.data = (uint8_t *)meta->base_hash;
    hdr.base_hash.len = sizeof meta->base_hash;
    hdr.created_unix = meta->created_unix;
    hdr.round = meta->round;
    hdr.n_tensors = n;
    hdr.tensors = infos.ptrs;
    rc = fl_protobuf_pack(&hdr.base, origin, buf, len);
    s_infos_free(&infos);
    return rc;
}

static int s_adapter_meta_read(const Fedtl__AdapterHeader *h, const char *origin,
                               struct fl_adapter_meta *meta)
{
    if (h->n_targets > FL_MAX_TARGETS)
        return fl_fail(FL_EFORMAT, "%s: %zu target layers, at most %d allowed", origin,
                       h->n_targets, FL_MAX_TARGETS);
    if (h->num_classes < 0 || h->num_classes > FL_MAX_CLASSES)
        return fl_fail(FL_EFORMAT, "%s: %d classes, at most %d allowed", origin,
                       (int)h->num_classes, FL_MAX_CLASSES);
    if (h->n_class_ids != (size_t)h->num_classes)
        return fl_fail(FL_EFORMAT, "%s: %zu class ids for %d classes", origin, h->n_class_ids,
                       (int)h->num_classes);
    if (h->base_hash.len != FL_HASH_BYTES)
        return fl_fail(FL_EFORMAT, "%s: base hash is %zu bytes, expected %d", origin,
                       h->base_hash.len, FL_HASH_BYTES);
    for (size_t i = 0; i < h->n_targets; i++) {
        int rc = s_copy_str(meta->targets[i], FL_TARGET_NAME_MAX, h->targets[i], origin,
                            "a target layer name");
        if (rc != 0)
            return rc;
    }
    meta->kind = (enum fl_adapter_kind)h->kind;
    meta->rank = h->rank;
    meta->alpha = h->alpha;
    meta->seed = h->seed;
    meta->ntargets = (int32_t)h->n_targets;
    meta->num_classes = h->num_classes;
    if (h->n_class_ids)
        memcpy(meta->class_ids, h->class_ids, h->n_class_ids * sizeof *h->class_ids);
    memcpy(meta->base_hash, h->base_hash.data, FL_HASH_BYTES);
    meta->created_unix = h->created_unix;
    meta->round = h->round;
    return s_check_adapter_meta(meta, origin, FL_EFORMAT);
}

int fl_codec_unpack_adapter_header(const uint8_t *buf, size_t len, const char *origin,
                                   struct fl_adapter_meta *meta, struct fl_tensor_entry **entries,
                                   size_t *n)
{
    memset(meta, 0, sizeof *meta);
    *entries = NULL;
    *n = 0;
    Fedtl__AdapterHeader *h = fedtl__adapter_header__unpack(NULL, len, buf);
    if (!h)
        return fl_fail(FL_EFORMAT, "%s: adapter header is not valid protobuf", origin);
    int rc = s_adapter_meta_read(h, origin, meta);
    if (rc == 0)
        rc = s_infos_read(h->tensors, h->n_tensors, origin, entries, n);
    fedtl__adapter_header__free_unpacked(h, NULL);
    if (rc != 0)
        memset(meta, 0, sizeof *meta);
    return rc;
}

/* ---- the federation protocol ---- */
