/* fl_model: building a model (fresh, or a frozen base with an adapter attached), its named
 * parameters and their roles, loading adapter values, and the accessors. The passes that run
 * it are in fl_model_run.c. */
#include "fl_model_impl.h"
#include "fl_error.h"
#include "fl_linalg.h"
#include "fl_rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A set of named tensors handed in (a frozen base's). */
struct s_tensors {
    const struct fl_tensor *t; /* the tensors */
    size_t n;                  /* how many */
    const char *origin;        /* where they come from, for messages */
};

/* Where a parameter comes from (made fresh, or borrowed from a base): the index of the new
 * parameter of that name and size, or a negative FL_E code. */
typedef int(s_param_src)(fl_model_t *m, const char *name, int64_t rows, int64_t cols,
                         const void *arg);

/* ---- parameters ---- */

static int s_param_add(fl_model_t *m, const char *name, int64_t rows, int64_t cols)
{
    if (m->nparams >= m->cap_params)
        return fl_fail(FL_EINVAL, "too many parameter tensors");
    struct fl_model_param *p = &m->params[m->nparams];
    memset(p, 0, sizeof *p);
    if (fl_tensor_init2(&p->t, name, rows, cols) != 0)
        return fl_fail(FL_ENOMEM, "%s: cannot allocate %lldx%lld", name, (long long)rows,
                       (long long)cols);
    p->used = true;
    return m->nparams++;
}

static void s_init_normal(struct fl_tensor *t, struct fl_rng *rng, double std)
{
    size_t n = fl_tensor_numel(t);
    for (size_t i = 0; i < n; i++)
        t->data[i] = (float)(fl_rng_normal(rng) * std);
}

static void s_init_uniform(struct fl_tensor *t, struct fl_rng *rng, double bound)
{
    size_t n = fl_tensor_numel(t);
    for (size_t i = 0; i < n; i++)
        t->data[i] = (float)((2.0 * fl_rng_uniform(rng) - 1.0) * bound);
}

/* A seed per layer so that FFA-LoRA's A is a function of (adapter seed, layer name) only. */
static uint64_t s_layer_seed(uint64_t seed, const char *name)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *c = name; *c; c++)
        h = (h ^ (uint8_t)*c) * 1099511628211ULL;
    return seed ^ h;
}

/* ---- geometry ---- */

/* Walk the layers, checking that each fits the previous one; fill dims and geometry. */
static int s_plan(fl_model_t *m, const char *origin)
{
    const struct fl_arch *a = &m->arch;
    int h = a->in_h, w = a->in_w, c = a->in_c;
    if (a->nlayers < 1 || a->nlayers > FL_ARCH_MAX_LAYERS || h < 1 || w < 1 || c < 1 ||
        (int64_t)h * w * c > (1 << 24))
        return fl_fail(FL_EFORMAT, "%s: invalid architecture (%d layers, input %dx%dx%d)", origin,
                       a->nlayers, h, w, c);
    for (int i = 0; i < a->nlayers; i++) {
        struct fl_model_layer *L = &m->layers[i];
        const struct fl_layer_spec *s = &a->layers[i];
        L->spec = *s;
        L->w = L->b = L->lora_a = L->lora_b = -1;
        L->in_dim = (size_t)h * w * c;
        for (int j = 0; j < i; j++)
            if (strcmp(a->layers[j].name, s->name) == 0)
                return fl_fail(FL_EFORMAT, "%s: two layers named '%s'", origin, s->name);
        switch (s->kind) {
        case FL_LAYER_CONV2D:
        case FL_LAYER_MAXPOOL: {
            struct fl_conv_geom g = {.n = 1,
                                     .h = h,
                                     .w = w,
                                     .c = c,
                                     .k = s->kernel,
                                     .stride = s->stride,
                                     .pad = s->pad,
                                     .out_c = s->kind == FL_LAYER_CONV2D ? s->out_ch : c};
            if (s->kernel > 15 || s->pad > s->kernel || g.out_c > 4096 ||
                fl_conv_geom_init(&g) != 0 || (s->kind == FL_LAYER_CONV2D && s->in_ch != c) ||
                (s->kind == FL_LAYER_MAXPOOL && s->pad != 0))
                return fl_fail(FL_EFORMAT, "%s: layer %s does not fit its %dx%dx%d input", origin,
                               s->name, h, w, c);
            L->geom = g;
            h = g.oh, w = g.ow, c = g.out_c;
            L->wrows = g.out_c;
            L->wcols = s->kernel * s->kernel * g.c;
            break;
        }
        case FL_LAYER_RELU:
            break;
        case FL_LAYER_FLATTEN:
            c = h * w * c, h = 1, w = 1;
            break;
        case FL_LAYER_DENSE:
            if (s->in_features != h * w * c || s->out_features < 1 || s->out_features > (1 << 16))
                return fl_fail(FL_EFORMAT, "%s: layer %s expects %d inputs, gets %d", origin,
                               s->name, s->in_features, h * w * c);
            c = s->out_features, h = 1, w = 1;
            L->wrows = s->out_features;
            L->wcols = s->in_features;
            break;
        default:
            return fl_fail(FL_EFORMAT, "%s: layer %s has unknown kind %d", origin, s->name,
                           (int)s->kind);
        }
        L->out_dim = (size_t)h * w * c;
    }
    const struct fl_layer_spec *last = &a->layers[a->nlayers - 1];
    if (last->kind != FL_LAYER_DENSE || last->out_features != a->num_classes)
        return fl_fail(FL_EFORMAT, "%s: the last layer must be a dense layer with %d outputs",
                       origin, a->num_classes);
    return 0;
}

static int s_name2(char *buf, size_t len, const char *a, const char *b)
{
    int n = snprintf(buf, len, "%s.%s", a, b);
    return n > 0 && (size_t)n < len ? 0 : FL_EINVAL;
}

/* Give every conv2d and dense layer its weight and bias, "<layer>.weight" and "<layer>.bias"
 * as a base file names them, from src. */
static int s_add_weights(fl_model_t *m, s_param_src *src, const void *arg)
{
    char name[FL_NAME_MAX];
    for (int i = 0; i < m->arch.nlayers; i++) {
        struct fl_model_layer *L = &m->layers[i];
        if (!fl_model_layer_has_weights(L))
            continue;
        s_name2(name, sizeof name, L->spec.name, "weight");
        if ((L->w = src(m, name, L->wrows, L->wcols, arg)) < 0)
            return L->w;
        s_name2(name, sizeof name, L->spec.name, "bias");
        if ((L->b = src(m, name, L->wrows, 0, arg)) < 0)
            return L->b;
        m->params[L->w].base = m->params[L->b].base = true;
    }
    return 0;
}

static int s_fresh(fl_model_t *m, const char *name, int64_t rows, int64_t cols, const void *arg)
{
    return s_param_add(m, name, rows, cols);
}

/* Fresh weights for every layer, all trainable (pretraining). */
static int s_create_weights(fl_model_t *m, struct fl_rng *rng)
{
    int rc = s_add_weights(m, s_fresh, NULL);
    if (rc)
        return rc;
    for (int i = 0; i < m->arch.nlayers; i++) {
        struct fl_model_layer *L = &m->layers[i];
        if (!fl_model_layer_has_weights(L))
            continue;
        if (L->spec.kind == FL_LAYER_CONV2D) {
            struct fl_tensor *t = &m->params[L->w].t;
            t->ndim = 4;
            t->shape[0] = L->wrows;
            t->shape[1] = t->shape[2] = L->spec.kernel;
            t->shape[3] = L->geom.c;
        }
        s_init_normal(&m->params[L->w].t, rng, sqrt(2.0 / L->wcols));
    }
    return 0;
}

static int s_add_norm(fl_model_t *m, size_t len)
{
    if ((m->norm_mean = s_param_add(m, "norm.mean", (int64_t)len, 0)) < 0)
        return m->norm_mean;
    if ((m->norm_std = s_param_add(m, "norm.std", (int64_t)len, 0)) < 0)
        return m->norm_std;
    for (size_t i = 0; i < len; i++)
        m->params[m->norm_std].t.data[i] = 1.0f;
    m->params[m->norm_mean].base = m->params[m->norm_std].base = true;
    m->params[m->norm_mean].used = m->params[m->norm_std].used = false;
    return 0;
}

static int s_finish(fl_model_t *m)
{
    m->first_trainable = m->arch.nlayers;
    for (int i = m->arch.nlayers - 1; i >= 0; i--) {
        struct fl_model_layer *L = &m->layers[i];
        int idx[4] = {L->w, L->b, L->lora_a, L->lora_b};
        for (int j = 0; j < 4; j++)
            if (idx[j] >= 0 && m->params[idx[j]].trainable)
                m->first_trainable = i;
    }
    for (int i = 0; i < m->nparams; i++) {
        struct fl_model_param *p = &m->params[i];
        if (p->trainable && !(p->grad = fl_falloc(fl_tensor_numel(&p->t))))
            return FL_ENOMEM;
    }
    for (int i = 0; i < m->arch.nlayers; i++) {
        struct fl_model_layer *L = &m->layers[i];
        if (!fl_model_layer_has_weights(L))
            continue;
        size_t wn = (size_t)L->wrows * L->wcols;
        if (L->lora_a >= 0 && !(L->w_eff = fl_falloc(wn)))
            return FL_ENOMEM;
    }
    return 0;
}

/* An empty model with room for a chain's parameters; NULL when out of memory. */
static fl_model_t *s_alloc(const struct fl_arch *arch, fl_pool_t *pool)
{
    fl_model_t *m = calloc(1, sizeof *m);
    if (!m || !(m->params = calloc(FL_MODEL_MAX_PARAMS, sizeof *m->params))) {
        free(m);
        fl_error_set("out of memory");
        return NULL;
    }
    m->cap_params = FL_MODEL_MAX_PARAMS;
    m->pool = pool;
    m->arch = *arch;
    return m;
}

fl_model_t *fl_model_new(const struct fl_arch *arch, uint64_t seed, fl_pool_t *pool)
{
    fl_linalg_init();
    if (arch->graph) {
        fl_error_set("%s: a graph model is built from its tensors (fl_model_new_graph)",
                     arch->name);
        return NULL;
    }
    fl_model_t *m = s_alloc(arch, pool);
    if (!m)
        return NULL;
    struct fl_rng rng;
    fl_rng_seed(&rng, seed);
    if (s_plan(m, arch->name) != 0 || s_create_weights(m, &rng) != 0 || s_add_norm(m, 1) != 0)
        goto out_destroy;
    for (int i = 0; i < m->nparams; i++)
        m->params[i].trainable = m->params[i].used;
    if (s_finish(m) != 0)
        goto out_destroy;
    return m;
out_destroy:
    fl_model_destroy(&m);
    return NULL;
}

/* Borrow one tensor of the base set arg, checking its shape. */
static int s_borrow(fl_model_t *m, const char *name, int64_t rows, int64_t cols, const void *arg)
{
    const struct s_tensors *base = arg;
    const char *origin = base->origin;
    const struct fl_tensor *t = fl_tensor_find(base->t, base->n, name);
    if (!t)
        return fl_fail(FL_EFORMAT, "%s: tensor '%s' is missing", origin, name);
    size_t want = (size_t)rows * (size_t)(cols > 0 ? cols : 1);
    if (fl_tensor_numel(t) != want)
        return fl_fail(FL_EFORMAT, "%s: tensor '%s' has %zu values, the architecture needs %zu",
                       origin, name, fl_tensor_numel(t), want);
    if (m->nparams >= m->cap_params)
        return fl_fail(FL_EFORMAT, "%s: too many tensors", origin);
    struct fl_model_param *p = &m->params[m->nparams];
    memset(p, 0, sizeof *p);
    p->t = *t;
    p->t.owned = false;
    p->base = true;
    p->used = true;
    return m->nparams++;
}

static int s_borrow_base(fl_model_t *m, const struct s_tensors *base)
{
    const char *origin = base->origin;
    int rc = s_add_weights(m, s_borrow, base);
    if (rc)
        return rc;
    const struct fl_tensor *mean = fl_tensor_find(base->t, base->n, "norm.mean");
    size_t len = mean ? fl_tensor_numel(mean) : 0;
    if (len != 1 && len != m->layers[0].in_dim)
        return fl_fail(FL_EFORMAT, "%s: norm.mean is missing or has the wrong size", origin);
    if ((m->norm_mean = s_borrow(m, "norm.mean", (int64_t)len, 0, base)) < 0 ||
        (m->norm_std = s_borrow(m, "norm.std", (int64_t)len, 0, base)) < 0)
        return FL_EFORMAT;
    m->params[m->norm_mean].used = m->params[m->norm_std].used = false;
    for (size_t i = 0; i < len; i++)
        if (!(m->params[m->norm_std].t.data[i] > 0.0f))
            return fl_fail(FL_EFORMAT, "%s: norm.std must be positive", origin);
    return 0;
}

/* Replace the base's last layer by a new head and attach LoRA / BitFit to the targets. */
static int s_attach_adapter(fl_model_t *m, const char *origin, struct fl_rng *rng)
{
    struct fl_adapter_meta *am = &m->ameta;
    int last = m->arch.nlayers - 1;
    struct fl_model_layer *H = &m->layers[last];
    if (am->num_classes < 2 || am->num_classes > FL_MAX_CLASSES)
        return fl_fail(FL_EINVAL, "adapter: %d classes (need 2 to %d)", am->num_classes,
                       FL_MAX_CLASSES);
    m->params[H->w].used = m->params[H->b].used = false;
    snprintf(H->spec.name, sizeof H->spec.name, "head");
    H->spec.out_features = am->num_classes;
    H->wrows = am->num_classes;
    H->out_dim = (size_t)am->num_classes;
    m->arch.layers[last] = H->spec;
    m->arch.num_classes = am->num_classes;
    if ((H->w = s_param_add(m, "head.weight", H->wrows, H->wcols)) < 0 ||
        (H->b = s_param_add(m, "head.bias", H->wrows, 0)) < 0)
        return FL_ENOMEM;
    s_init_normal(&m->params[H->w].t, rng, sqrt(1.0 / H->wcols));
    m->params[H->w].adapter = m->params[H->b].adapter = true;
    m->params[H->w].trainable = m->params[H->b].trainable = true;

    bool lora = am->kind == FL_ADAPTER_LORA || am->kind == FL_ADAPTER_FFA_LORA;
    if (am->kind == FL_ADAPTER_HEAD && am->ntargets > 0)
        return fl_fail(FL_EINVAL, "method head takes no target layers");
    if (lora && (am->rank < 1 || am->rank > 1024))
        return fl_fail(FL_EINVAL, "LoRA rank %d is out of range (1..1024)", am->rank);
    if (lora && !(am->alpha > 0.0f))
        return fl_fail(FL_EINVAL, "LoRA alpha must be positive");
    char name[FL_NAME_MAX];
    for (int t = 0; t < am->ntargets; t++) {
        int li = fl_arch_find(&m->arch, am->targets[t]);
        if (li < 0 || li == last || !fl_model_layer_has_weights(&m->layers[li]))
            return fl_fail(FL_EINVAL, "%s: '%s' is not a conv2d or dense layer below the head",
                           origin, am->targets[t]);
        for (int u = 0; u < t; u++)
            if (strcmp(am->targets[u], am->targets[t]) == 0)
                return fl_fail(FL_EINVAL, "target layer '%s' given twice", am->targets[t]);
        struct fl_model_layer *L = &m->layers[li];
        if (am->kind == FL_ADAPTER_BITFIT) {
            struct fl_model_param *old = &m->params[L->b];
            s_name2(name, sizeof name, L->spec.name, "bias");
            int nb = s_param_add(m, name, L->wrows, 0);
            if (nb < 0)
                return nb;
            old = &m->params[L->b];
            memcpy(m->params[nb].t.data, old->t.data, sizeof(float) * L->wrows);
            old->used = false;
            L->b = nb;
            m->params[nb].adapter = m->params[nb].trainable = true;
            continue;
        }
        s_name2(name, sizeof name, L->spec.name, "lora_A");
        if ((L->lora_a = s_param_add(m, name, am->rank, L->wcols)) < 0)
            return L->lora_a;
        s_name2(name, sizeof name, L->spec.name, "lora_B");
        if ((L->lora_b = s_param_add(m, name, L->wrows, am->rank)) < 0)
            return L->lora_b;
        /* A ~ U(-1/sqrt(in), 1/sqrt(in)) from a per-layer seed; B = 0 so dW starts at 0. */
        struct fl_rng arng;
        fl_rng_seed(&arng, s_layer_seed(am->seed, L->spec.name));
        s_init_uniform(&m->params[L->lora_a].t, &arng, 1.0 / sqrt((double)L->wcols));
        bool ffa = am->kind == FL_ADAPTER_FFA_LORA;
        m->params[L->lora_a].adapter = !ffa;
        m->params[L->lora_a].trainable = !ffa;
        m->params[L->lora_b].adapter = m->params[L->lora_b].trainable = true;
    }
    return 0;
}

fl_model_t *fl_model_new_frozen(const struct fl_arch *arch, const struct fl_tensor *tensors,
                                size_t n, const uint8_t base_hash[FL_HASH_BYTES],
                                const char *origin, const struct fl_adapter_meta *adapter,
                                fl_pool_t *pool)
{
    const struct s_tensors base = {tensors, n, origin};
    fl_linalg_init();
    fl_model_t *m = s_alloc(arch, pool);
    if (!m)
        return NULL;
    memcpy(m->base_hash, base_hash, FL_HASH_BYTES);
    struct fl_rng rng;
    fl_rng_seed(&rng, adapter ? adapter->seed : 0);
    if (adapter) {
        m->has_adapter = true;
        m->ameta = *adapter;
        memcpy(m->ameta.base_hash, base_hash, FL_HASH_BYTES);
    }
    if (arch->graph) {
        if (fl_model_graph_build(m, tensors, n, origin, &rng) != 0)
            goto out_destroy;
        return m;
    }
    if (s_plan(m, origin) != 0 || s_borrow_base(m, &base) != 0)
        goto out_destroy;
    if (adapter && s_attach_adapter(m, origin, &rng) != 0)
        goto out_destroy;
    if (s_finish(m) != 0)
        goto out_destroy;
    return m;
out_destroy:
    fl_model_destroy(&m);
    return NULL;
}

int fl_model_load_adapter(fl_model_t *m, const struct fl_adapter_meta *meta,
                          const struct fl_tensor *tensors, size_t ntensors, const char *origin)
{
    const struct fl_adapter_meta *x = meta, *y = &m->ameta;
    if (!m->has_adapter)
        return fl_fail(FL_EINVAL, "%s: model has no adapter slot", origin);
    if (memcmp(x->base_hash, m->base_hash, FL_HASH_BYTES) != 0)
        return fl_fail(FL_EMISMATCH, "%s: adapter was made for another base model", origin);
    bool same_targets = x->ntargets == y->ntargets;
    for (int i = 0; same_targets && i < x->ntargets; i++)
        same_targets = strcmp(x->targets[i], y->targets[i]) == 0;
    if (x->kind != y->kind || x->rank != y->rank || x->num_classes != y->num_classes ||
        !same_targets || (x->kind == FL_ADAPTER_FFA_LORA && x->seed != y->seed))
        return fl_fail(FL_EMISMATCH,
                       "%s: adapter configuration (%s, rank %d, %d classes) "
                       "differs from the model's (%s, rank %d, %d classes)",
                       origin, fl_adapter_kind_name(x->kind), x->rank, x->num_classes,
                       fl_adapter_kind_name(y->kind), y->rank, y->num_classes);
    size_t n = fl_model_ntensors(m, FL_SET_ADAPTER);
    if (ntensors != n)
        return fl_fail(FL_EMISMATCH, "%s: %zu tensors, the adapter needs %zu", origin, ntensors, n);
    for (size_t i = 0; i < n; i++) {
        struct fl_tensor *t = fl_model_tensor(m, FL_SET_ADAPTER, i);
        const struct fl_tensor *src = fl_tensor_find(tensors, ntensors, t->name);
        if (!src || fl_tensor_numel(src) != fl_tensor_numel(t))
            return fl_fail(FL_EMISMATCH, "%s: tensor '%s' is missing or has the wrong shape",
                           origin, t->name);
    }
    for (size_t i = 0; i < n; i++) {
        struct fl_tensor *t = fl_model_tensor(m, FL_SET_ADAPTER, i);
        const struct fl_tensor *src = fl_tensor_find(tensors, ntensors, t->name);
        memcpy(t->data, src->data, sizeof(float) * fl_tensor_numel(t));
    }
    m->ameta.alpha = x->alpha;
    m->ameta.round = x->round;
    return 0;
}

void fl_model_destroy(fl_model_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_model_t *m = *self_p;
    fl_model_work_free(m);
    fl_model_graph_free(m);
    for (int i = 0; i < m->arch.nlayers; i++)
        free(m->layers[i].w_eff);
    for (int i = 0; i < m->nparams; i++) {
        free(m->params[i].grad);
        fl_tensor_free(&m->params[i].t);
    }
    free(m->params);
    free(m);
    *self_p = NULL;
}

int fl_model_set_norm(fl_model_t *m, const float *mean, const float *std, size_t len)
{
    if (m->graph ? !fl_model_graph_norm_fits(m, len) : len != 1 && len != m->layers[0].in_dim)
        return fl_fail(FL_EINVAL, "normalisation has %zu values, expected 1%s or %zu", len,
                       m->graph ? ", one per channel" : "", fl_model_input_dim(m));
    struct fl_model_param *pm = &m->params[m->norm_mean], *ps = &m->params[m->norm_std];
    if (!pm->t.owned)
        return fl_fail(FL_EINVAL, "a frozen base's normalisation cannot change");
    fl_tensor_free(&pm->t);
    fl_tensor_free(&ps->t);
    if (fl_tensor_init2(&pm->t, "norm.mean", (int64_t)len, 0) != 0 ||
        fl_tensor_init2(&ps->t, "norm.std", (int64_t)len, 0) != 0)
        return FL_ENOMEM;
    for (size_t i = 0; i < len; i++) {
        pm->t.data[i] = mean[i];
        ps->t.data[i] = std[i] > 1e-6f ? std[i] : 1.0f;
    }
    return 0;
}

const struct fl_arch *fl_model_arch(const fl_model_t *m)
{
    return &m->arch;
}

const struct fl_adapter_meta *fl_model_adapter_meta(const fl_model_t *m)
{
    return m->has_adapter ? &m->ameta : NULL;
}

size_t fl_model_input_dim(const fl_model_t *m)
{
    return m->graph ? fl_model_graph_input_dim(m) : m->layers[0].in_dim;
}

int fl_model_num_classes(const fl_model_t *m)
{
    return m->arch.num_classes;
}

static bool s_in_set(const struct fl_model_param *p, enum fl_tensor_set set)
{
    switch (set) {
    case FL_SET_BASE:
        return p->base;
    case FL_SET_ADAPTER:
        return p->adapter;
    case FL_SET_TRAINABLE:
        return p->trainable;
    }
    return false;
}

size_t fl_model_ntensors(const fl_model_t *m, enum fl_tensor_set set)
{
    size_t n = 0;
    for (int i = 0; i < m->nparams; i++)
        n += s_in_set(&m->params[i], set);
    return n;
}

static struct fl_model_param *s_nth(fl_model_t *m, enum fl_tensor_set set, size_t k)
{
    for (int i = 0; i < m->nparams; i++)
        if (s_in_set(&m->params[i], set) && k-- == 0)
            return &m->params[i];
    return NULL;
}

struct fl_tensor *fl_model_tensor(fl_model_t *m, enum fl_tensor_set set, size_t i)
{
    struct fl_model_param *p = s_nth(m, set, i);
    if (p && m->graph && set == FL_SET_BASE)
        fl_model_graph_touch(m); /* the caller may write a frozen weight (the others are
                                  * never cached: trainable, or read through LoRA) */
    return p ? &p->t : NULL;
}

struct fl_tensor *fl_model_tensors(fl_model_t *m, enum fl_tensor_set set, size_t *n)
{
    *n = fl_model_ntensors(m, set);
    struct fl_tensor *ts = calloc(*n ? *n : 1, sizeof *ts);
    for (size_t i = 0; ts && i < *n; i++)
        ts[i] = *fl_model_tensor(m, set, i);
    return ts;
}

float *fl_model_grad(fl_model_t *m, size_t i)
{
    struct fl_model_param *p = s_nth(m, FL_SET_TRAINABLE, i);
    return p ? p->grad : NULL;
}

size_t fl_model_param_count(const fl_model_t *m, bool trainable_only)
{
    size_t n = 0;
    for (int i = 0; i < m->nparams; i++) {
        const struct fl_model_param *p = &m->params[i];
        if (trainable_only ? p->trainable : p->used)
            n += fl_tensor_numel(&p->t);
    }
    return n;
}

int fl_model_frozen_prefix(const fl_model_t *m)
{
    return m->first_trainable;
}

size_t fl_model_act_dim(const fl_model_t *m, int l)
{
    if (m->graph)
        return fl_model_graph_act_dim(m, l);
    return l >= m->arch.nlayers ? (size_t)m->arch.num_classes : m->layers[l].in_dim;
}
