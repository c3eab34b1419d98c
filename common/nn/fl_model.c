/* fl_model: layer bookkeeping, parameters, adapters and the forward/backward passes. */
#include "fl_model.h"
#include "fl_error.h"
#include "fl_layers.h"
#include "fl_linalg.h"
#include "fl_pool.h"
#include "fl_rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_PARAMS     (4 * FL_ARCH_MAX_LAYERS + 4)
#define S_EVAL_BATCH     256
#define S_MAX_WORKERS    16
#define S_MIN_PER_WORKER 16

struct s_param {
    struct fl_tensor t; /* name, shape, data (borrowed for a frozen base) */
    bool base;          /* belongs to the base (saved in a base file) */
    bool adapter;       /* belongs to the adapter (saved in an adapter file) */
    bool trainable;     /* updated by the optimiser */
    bool used;          /* read by the forward pass (counts as a model parameter) */
    float *grad;        /* gradient, trainable only */
};

/* A set of named tensors handed in (a frozen base's). */
struct s_tensors {
    const struct fl_tensor *t; /* the tensors */
    size_t n;                  /* how many */
};

struct s_layer {
    struct fl_layer_spec spec; /* what it computes */
    struct fl_conv_geom geom;  /* conv/pool geometry for one sample (n set per call) */
    size_t in_dim, out_dim;    /* per-sample activation sizes */
    int wrows, wcols;          /* weight as a matrix [out, in_flat] */
    int w, b, lora_a, lora_b;  /* parameter indices, -1 when absent */
    float *w_eff;              /* merged W + scale B A when LoRA */
};

/* One worker's share of a batch: its activations, scratch and private gradients. The batch
 * is split over the workers (fl_pool threads, single-threaded BLAS each) and their gradients
 * are summed in a fixed order, so a run is reproducible for a given thread count. */
struct s_work {
    int cap;                                 /* records the buffers hold */
    float *act_buf[FL_ARCH_MAX_LAYERS + 1];  /* owned activation buffers */
    float *grad_buf[FL_ARCH_MAX_LAYERS + 1]; /* owned activation-gradient buffers */
    float *act[FL_ARCH_MAX_LAYERS + 1];      /* act[l]: input of layer l (may alias) */
    float *grad[FL_ARCH_MAX_LAYERS + 1];     /* grad[l]: gradient of act[l] */
    float *col[FL_ARCH_MAX_LAYERS];          /* im2col patches (conv) */
    float *dcol[FL_ARCH_MAX_LAYERS];         /* their gradient (conv) */
    int32_t *argmax[FL_ARCH_MAX_LAYERS];     /* max-pool winners */
    float *xa[FL_ARCH_MAX_LAYERS];           /* LoRA layers: X A^T [rows, rank] */
    float *dyb[FL_ARCH_MAX_LAYERS];          /* LoRA layers: dY B [rows, rank] */
    float *pg[S_MAX_PARAMS];                 /* gradients of the trainable parameters */
    double loss;                             /* summed loss of its records */
    int correct;                             /* hits among its records */
};

struct fl_model {
    struct fl_arch arch;                       /* as run: the head replaced when adapted */
    bool has_adapter;                          /* built with an adapter */
    struct fl_adapter_meta ameta;              /* its configuration */
    uint8_t base_hash[FL_HASH_BYTES];          /* hash of the base it was built on */
    int nparams;                               /* entries used in params */
    struct s_param params[S_MAX_PARAMS];       /* every named tensor */
    int norm_mean, norm_std;                   /* parameter indices of the normalisation */
    struct s_layer layers[FL_ARCH_MAX_LAYERS]; /* one per arch layer */
    int first_trainable;                       /* see fl_model_frozen_prefix */
    fl_pool_t *pool;                           /* compute threads (fl_get_threads at build) */
    struct s_work *work[S_MAX_WORKERS];        /* per-thread workspaces, made on demand */
};

/* ---- architectures ---- */

static void s_layer_set(struct fl_layer_spec *l, enum fl_layer_kind kind, const char *name)
{
    memset(l, 0, sizeof *l);
    l->kind = kind;
    snprintf(l->name, sizeof l->name, "%s", name);
}

static void s_conv(struct fl_arch *a, const char *name, int in, int out, int k, int pad)
{
    struct fl_layer_spec *l = &a->layers[a->nlayers++];
    s_layer_set(l, FL_LAYER_CONV2D, name);
    l->in_ch = in;
    l->out_ch = out;
    l->kernel = k;
    l->stride = 1;
    l->pad = pad;
}

static void s_simple(struct fl_arch *a, enum fl_layer_kind kind, const char *name)
{
    struct fl_layer_spec *l = &a->layers[a->nlayers++];
    s_layer_set(l, kind, name);
    if (kind == FL_LAYER_MAXPOOL) {
        l->kernel = 2;
        l->stride = 2;
    }
}

static void s_dense(struct fl_arch *a, const char *name, int in, int out)
{
    struct fl_layer_spec *l = &a->layers[a->nlayers++];
    s_layer_set(l, FL_LAYER_DENSE, name);
    l->in_features = in;
    l->out_features = out;
}

int fl_arch_builtin(const char *name, int in_dim, int classes, struct fl_arch *out)
{
    memset(out, 0, sizeof *out);
    if (classes < 2 || classes > FL_MAX_CLASSES)
        return fl_fail(FL_EINVAL, "%d classes: a model needs 2 to %d", classes, FL_MAX_CLASSES);
    out->num_classes = classes;
    snprintf(out->name, sizeof out->name, "%s", name);
    if (strcmp(name, "cnn-small") == 0) {
        if (in_dim != 28 * 28)
            return fl_fail(FL_EINVAL,
                           "cnn-small takes 28x28 single-channel images (784 "
                           "features), the data has %d features",
                           in_dim);
        out->in_h = 28, out->in_w = 28, out->in_c = 1;
        s_conv(out, "conv1", 1, 16, 3, 1);
        s_simple(out, FL_LAYER_RELU, "relu1");
        s_simple(out, FL_LAYER_MAXPOOL, "pool1");
        s_conv(out, "conv2", 16, 32, 3, 1);
        s_simple(out, FL_LAYER_RELU, "relu2");
        s_simple(out, FL_LAYER_MAXPOOL, "pool2");
        s_simple(out, FL_LAYER_FLATTEN, "flatten");
        s_dense(out, "fc1", 7 * 7 * 32, 128);
        s_simple(out, FL_LAYER_RELU, "relu3");
        s_dense(out, "fc2", 128, classes);
        return 0;
    }
    if (strcmp(name, "mlp") == 0) {
        if (in_dim < 1)
            return fl_fail(FL_EINVAL, "mlp needs at least one input feature");
        out->in_h = 1, out->in_w = 1, out->in_c = in_dim;
        s_dense(out, "fc1", in_dim, 256);
        s_simple(out, FL_LAYER_RELU, "relu1");
        s_dense(out, "fc2", 256, 128);
        s_simple(out, FL_LAYER_RELU, "relu2");
        s_dense(out, "fc3", 128, classes);
        return 0;
    }
    return fl_fail(FL_EINVAL, "unknown architecture '%s' (expected cnn-small or mlp)", name);
}

const char *fl_arch_default_targets(const struct fl_arch *arch, enum fl_adapter_kind kind)
{
    /* Measured on Fashion-MNIST 0-4 -> 5-9 (bench/README.md): LoRA on fc1 alone matches
     * conv2+fc1 and leaves both convolutions frozen (cacheable); FFA-LoRA, whose A is random,
     * needs conv2 as well. */
    if (kind == FL_ADAPTER_HEAD)
        return "";
    if (strcmp(arch->name, "cnn-small") == 0) {
        if (kind == FL_ADAPTER_BITFIT)
            return "conv1,conv2,fc1";
        return kind == FL_ADAPTER_FFA_LORA ? "conv2,fc1" : "fc1";
    }
    return "fc1,fc2";
}

void fl_adapter_defaults(enum fl_adapter_kind kind, int *rank, float *lr)
{
    switch (kind) {
    case FL_ADAPTER_LORA:
        *rank = 4, *lr = 2e-3f;
        break;
    case FL_ADAPTER_FFA_LORA:
        *rank = 16, *lr = 1e-2f;
        break;
    default:
        *rank = 0, *lr = 1e-2f;
        break;
    }
}

/* ---- parameters ---- */

static int s_param_add(fl_model_t *m, const char *name, int64_t rows, int64_t cols)
{
    if (m->nparams >= S_MAX_PARAMS)
        return fl_fail(FL_EINVAL, "too many parameter tensors");
    struct s_param *p = &m->params[m->nparams];
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
        struct s_layer *L = &m->layers[i];
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

static bool s_has_weights(const struct s_layer *L)
{
    return L->spec.kind == FL_LAYER_CONV2D || L->spec.kind == FL_LAYER_DENSE;
}

static int s_name2(char *buf, size_t len, const char *a, const char *b)
{
    int n = snprintf(buf, len, "%s.%s", a, b);
    return n > 0 && (size_t)n < len ? 0 : FL_EINVAL;
}

/* Fresh weights for every layer, all trainable (pretraining). */
static int s_create_weights(fl_model_t *m, struct fl_rng *rng)
{
    char name[FL_NAME_MAX];
    for (int i = 0; i < m->arch.nlayers; i++) {
        struct s_layer *L = &m->layers[i];
        if (!s_has_weights(L))
            continue;
        s_name2(name, sizeof name, L->spec.name, "weight");
        if ((L->w = s_param_add(m, name, L->wrows, L->wcols)) < 0)
            return L->w;
        s_name2(name, sizeof name, L->spec.name, "bias");
        if ((L->b = s_param_add(m, name, L->wrows, 0)) < 0)
            return L->b;
        if (L->spec.kind == FL_LAYER_CONV2D) {
            struct fl_tensor *t = &m->params[L->w].t;
            t->ndim = 4;
            t->shape[0] = L->wrows;
            t->shape[1] = t->shape[2] = L->spec.kernel;
            t->shape[3] = L->geom.c;
        }
        s_init_normal(&m->params[L->w].t, rng, sqrt(2.0 / L->wcols));
        m->params[L->w].base = m->params[L->b].base = true;
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
        struct s_layer *L = &m->layers[i];
        int idx[4] = {L->w, L->b, L->lora_a, L->lora_b};
        for (int j = 0; j < 4; j++)
            if (idx[j] >= 0 && m->params[idx[j]].trainable)
                m->first_trainable = i;
    }
    for (int i = 0; i < m->nparams; i++) {
        struct s_param *p = &m->params[i];
        if (p->trainable && !(p->grad = fl_falloc(fl_tensor_numel(&p->t))))
            return FL_ENOMEM;
    }
    for (int i = 0; i < m->arch.nlayers; i++) {
        struct s_layer *L = &m->layers[i];
        if (!s_has_weights(L))
            continue;
        size_t wn = (size_t)L->wrows * L->wcols;
        if (L->lora_a >= 0 && !(L->w_eff = fl_falloc(wn)))
            return FL_ENOMEM;
    }
    return 0;
}

fl_model_t *fl_model_new(const struct fl_arch *arch, uint64_t seed)
{
    fl_linalg_init();
    fl_model_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    if (!(m->pool = fl_pool_new(fl_get_threads())))
        goto out_destroy;
    m->arch = *arch;
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

/* Borrow one base tensor, checking its shape. */
static int s_borrow(fl_model_t *m, const struct s_tensors *base, const char *origin,
                    const char *name, int64_t rows, int64_t cols)
{
    const struct fl_tensor *t = fl_tensor_find(base->t, base->n, name);
    if (!t)
        return fl_fail(FL_EFORMAT, "%s: tensor '%s' is missing", origin, name);
    size_t want = (size_t)rows * (size_t)(cols > 0 ? cols : 1);
    if (fl_tensor_numel(t) != want)
        return fl_fail(FL_EFORMAT, "%s: tensor '%s' has %zu values, the architecture needs %zu",
                       origin, name, fl_tensor_numel(t), want);
    if (m->nparams >= S_MAX_PARAMS)
        return fl_fail(FL_EFORMAT, "%s: too many tensors", origin);
    struct s_param *p = &m->params[m->nparams];
    memset(p, 0, sizeof *p);
    p->t = *t;
    p->t.owned = false;
    p->base = true;
    p->used = true;
    return m->nparams++;
}

static int s_borrow_base(fl_model_t *m, const struct s_tensors *base, const char *origin)
{
    char name[FL_NAME_MAX];
    for (int i = 0; i < m->arch.nlayers; i++) {
        struct s_layer *L = &m->layers[i];
        if (!s_has_weights(L))
            continue;
        s_name2(name, sizeof name, L->spec.name, "weight");
        if ((L->w = s_borrow(m, base, origin, name, L->wrows, L->wcols)) < 0)
            return L->w;
        s_name2(name, sizeof name, L->spec.name, "bias");
        if ((L->b = s_borrow(m, base, origin, name, L->wrows, 0)) < 0)
            return L->b;
    }
    const struct fl_tensor *mean = fl_tensor_find(base->t, base->n, "norm.mean");
    size_t len = mean ? fl_tensor_numel(mean) : 0;
    if (len != 1 && len != m->layers[0].in_dim)
        return fl_fail(FL_EFORMAT, "%s: norm.mean is missing or has the wrong size", origin);
    if ((m->norm_mean = s_borrow(m, base, origin, "norm.mean", (int64_t)len, 0)) < 0 ||
        (m->norm_std = s_borrow(m, base, origin, "norm.std", (int64_t)len, 0)) < 0)
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
    struct s_layer *H = &m->layers[last];
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
        if (li < 0 || li == last || !s_has_weights(&m->layers[li]))
            return fl_fail(FL_EINVAL, "%s: '%s' is not a conv2d or dense layer below the head",
                           origin, am->targets[t]);
        for (int u = 0; u < t; u++)
            if (strcmp(am->targets[u], am->targets[t]) == 0)
                return fl_fail(FL_EINVAL, "target layer '%s' given twice", am->targets[t]);
        struct s_layer *L = &m->layers[li];
        if (am->kind == FL_ADAPTER_BITFIT) {
            struct s_param *old = &m->params[L->b];
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
                                const char *origin, const struct fl_adapter_meta *adapter)
{
    const struct s_tensors base_set = {tensors, n}, *base = &base_set;
    fl_linalg_init();
    fl_model_t *m = calloc(1, sizeof *m);
    if (!m || !(m->pool = fl_pool_new(fl_get_threads()))) {
        fl_error_set("out of memory");
        fl_model_destroy(&m);
        return NULL;
    }
    m->arch = *arch;
    memcpy(m->base_hash, base_hash, FL_HASH_BYTES);
    if (s_plan(m, origin) != 0 || s_borrow_base(m, base, origin) != 0)
        goto out_destroy;
    if (adapter) {
        m->has_adapter = true;
        m->ameta = *adapter;
        memcpy(m->ameta.base_hash, base_hash, FL_HASH_BYTES);
        struct fl_rng rng;
        fl_rng_seed(&rng, adapter->seed);
        if (s_attach_adapter(m, origin, &rng) != 0)
            goto out_destroy;
    }
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

static void s_work_destroy(fl_model_t *m, struct s_work **wp)
{
    struct s_work *w = *wp;
    if (!w)
        return;
    for (int i = 0; i <= FL_ARCH_MAX_LAYERS; i++) {
        free(w->act_buf[i]);
        free(w->grad_buf[i]);
    }
    for (int i = 0; i < FL_ARCH_MAX_LAYERS; i++) {
        free(w->col[i]);
        free(w->dcol[i]);
        free(w->argmax[i]);
        free(w->xa[i]);
        free(w->dyb[i]);
    }
    for (int i = 0; i < S_MAX_PARAMS; i++)
        free(w->pg[i]);
    free(w);
    *wp = NULL;
}

void fl_model_destroy(fl_model_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_model_t *m = *self_p;
    for (int t = 0; t < S_MAX_WORKERS; t++)
        s_work_destroy(m, &m->work[t]);
    fl_pool_destroy(&m->pool);
    for (int i = 0; i < m->arch.nlayers; i++)
        free(m->layers[i].w_eff);
    for (int i = 0; i < m->nparams; i++) {
        free(m->params[i].grad);
        fl_tensor_free(&m->params[i].t);
    }
    free(m);
    *self_p = NULL;
}

int fl_model_set_norm(fl_model_t *m, const float *mean, const float *std, size_t len)
{
    if (len != 1 && len != m->layers[0].in_dim)
        return fl_fail(FL_EINVAL, "normalisation has %zu values, expected 1 or %zu", len,
                       m->layers[0].in_dim);
    struct s_param *pm = &m->params[m->norm_mean], *ps = &m->params[m->norm_std];
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
    return m->layers[0].in_dim;
}

int fl_model_num_classes(const fl_model_t *m)
{
    return m->arch.num_classes;
}

static bool s_in_set(const struct s_param *p, enum fl_tensor_set set)
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

static struct s_param *s_nth(fl_model_t *m, enum fl_tensor_set set, size_t k)
{
    for (int i = 0; i < m->nparams; i++)
        if (s_in_set(&m->params[i], set) && k-- == 0)
            return &m->params[i];
    return NULL;
}

struct fl_tensor *fl_model_tensor(fl_model_t *m, enum fl_tensor_set set, size_t i)
{
    struct s_param *p = s_nth(m, set, i);
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
    struct s_param *p = s_nth(m, FL_SET_TRAINABLE, i);
    return p ? p->grad : NULL;
}

size_t fl_model_param_count(const fl_model_t *m, bool trainable_only)
{
    size_t n = 0;
    for (int i = 0; i < m->nparams; i++) {
        const struct s_param *p = &m->params[i];
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
    return l >= m->arch.nlayers ? (size_t)m->arch.num_classes : m->layers[l].in_dim;
}

/* ---- workspace and passes ---- */

/* Grow worker w's buffers to hold n records; the gradient buffers are made once. */
static int s_work_reserve(fl_model_t *m, struct s_work *w, int n)
{
    int L = m->arch.nlayers;
    if (w->cap == 0) {
        for (int i = 0; i < m->nparams; i++)
            if (m->params[i].trainable && !(w->pg[i] = fl_falloc(fl_tensor_numel(&m->params[i].t))))
                return FL_ENOMEM;
    }
    if (n <= w->cap)
        return 0;
    for (int l = 0; l <= L; l++) {
        free(w->act_buf[l]);
        free(w->grad_buf[l]);
        w->act_buf[l] = w->grad_buf[l] = NULL;
        if (l > 0 && m->layers[l - 1].spec.kind == FL_LAYER_FLATTEN) {
            w->act[l] = w->act[l - 1];
            w->grad[l] = w->grad[l - 1];
            continue;
        }
        size_t dim = fl_model_act_dim(m, l);
        w->act_buf[l] = fl_falloc((size_t)n * dim);
        w->grad_buf[l] = fl_falloc((size_t)n * dim);
        if (!w->act_buf[l] || !w->grad_buf[l])
            return FL_ENOMEM;
        w->act[l] = w->act_buf[l];
        w->grad[l] = w->grad_buf[l];
    }
    for (int l = 0; l < L; l++) {
        struct s_layer *Ly = &m->layers[l];
        size_t pos = (size_t)n * Ly->geom.oh * Ly->geom.ow;
        if (Ly->lora_a >= 0) {
            size_t rows = Ly->spec.kind == FL_LAYER_CONV2D ? pos : (size_t)n;
            free(w->xa[l]);
            free(w->dyb[l]);
            w->xa[l] = fl_falloc(rows * m->ameta.rank);
            w->dyb[l] = fl_falloc(rows * m->ameta.rank);
            if (!w->xa[l] || !w->dyb[l])
                return FL_ENOMEM;
        }
        if (Ly->spec.kind == FL_LAYER_CONV2D) {
            free(w->col[l]);
            free(w->dcol[l]);
            w->col[l] = fl_falloc(pos * Ly->wcols);
            w->dcol[l] = fl_falloc(pos * Ly->wcols);
            if (!w->col[l] || !w->dcol[l])
                return FL_ENOMEM;
        } else if (Ly->spec.kind == FL_LAYER_MAXPOOL) {
            free(w->argmax[l]);
            if (!(w->argmax[l] = malloc(sizeof(int32_t) * pos * Ly->geom.c)))
                return FL_ENOMEM;
        }
    }
    w->cap = n;
    return 0;
}

/* Workers for a batch of n: every thread, but at least S_MIN_PER_WORKER records each. */
static int s_workers(const fl_model_t *m, int n)
{
    int t = fl_pool_size(m->pool);
    int by_size = (n + S_MIN_PER_WORKER - 1) / S_MIN_PER_WORKER;
    if (t > by_size)
        t = by_size;
    if (t > S_MAX_WORKERS)
        t = S_MAX_WORKERS;
    return t < 1 ? 1 : t;
}

/* Make sure workers 0..T-1 exist and hold `per` records each. */
static int s_reserve(fl_model_t *m, int T, int per)
{
    for (int t = 0; t < T; t++) {
        if (!m->work[t] && !(m->work[t] = calloc(1, sizeof(struct s_work))))
            return fl_fail(FL_ENOMEM, "out of memory for a batch of %d", per);
        if (s_work_reserve(m, m->work[t], per) != 0) {
            s_work_destroy(m, &m->work[t]);
            return fl_fail(FL_ENOMEM, "out of memory for a batch of %d", per);
        }
    }
    return 0;
}

static void s_normalise(const fl_model_t *m, const float *x, int n, float *out)
{
    const struct fl_tensor *mean = &m->params[m->norm_mean].t;
    const struct fl_tensor *std = &m->params[m->norm_std].t;
    size_t dim = m->layers[0].in_dim, len = fl_tensor_numel(mean);
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * dim;
        float *oi = out + (size_t)i * dim;
        if (len == 1) {
            float mu = mean->data[0], inv = 1.0f / std->data[0];
            for (size_t j = 0; j < dim; j++)
                oi[j] = (xi[j] - mu) * inv;
        } else {
            for (size_t j = 0; j < dim; j++)
                oi[j] = (xi[j] - mean->data[j]) / std->data[j];
        }
    }
}

/* Merge every LoRA layer's W + scale B A once per step, before the workers start. */
static void s_merge(fl_model_t *m)
{
    for (int l = 0; l < m->arch.nlayers; l++) {
        struct s_layer *L = &m->layers[l];
        if (L->lora_a < 0)
            continue;
        float scale = m->ameta.alpha / (float)m->ameta.rank;
        fl_lora_merge(L->wrows, L->wcols, m->ameta.rank, scale, m->params[L->w].t.data,
                      m->params[L->lora_a].t.data, m->params[L->lora_b].t.data, L->w_eff);
    }
}

static const float *s_weight(const fl_model_t *m, const struct s_layer *L)
{
    return L->lora_a >= 0 ? L->w_eff : m->params[L->w].t.data;
}

static void s_forward(fl_model_t *m, struct s_work *w, int from, int to, int n)
{
    for (int l = from; l < to; l++) {
        struct s_layer *L = &m->layers[l];
        struct fl_conv_geom g = L->geom;
        g.n = n;
        const float *x = w->act[l];
        float *y = w->act[l + 1];
        switch (L->spec.kind) {
        case FL_LAYER_CONV2D:
            fl_conv2d_forward(&g, x, s_weight(m, L), m->params[L->b].t.data, w->col[l], y);
            break;
        case FL_LAYER_DENSE:
            fl_dense_forward(n, L->wcols, L->wrows, x, s_weight(m, L), m->params[L->b].t.data, y);
            break;
        case FL_LAYER_RELU:
            fl_relu_forward((size_t)n * L->in_dim, x, y);
            break;
        case FL_LAYER_MAXPOOL:
            fl_maxpool_forward(&g, x, y, w->argmax[l]);
            break;
        case FL_LAYER_FLATTEN:
            break;
        }
    }
}

/* LoRA factor gradients straight from dY, never forming the full dW:
 * dB = s dY^T (X A^T), dA = s (dY B)^T X, with X the layer input (conv: its im2col rows). */
static void s_lora_grads(fl_model_t *m, struct s_work *w, int l, int rows, const float *x,
                         const float *dy)
{
    const struct s_layer *L = &m->layers[l];
    int r = m->ameta.rank, in = L->wcols, out = L->wrows;
    float s = m->ameta.alpha / (float)r;
    const float *a = m->params[L->lora_a].t.data, *b = m->params[L->lora_b].t.data;
    fl_gemm(false, true, rows, r, in, 1.0f, x, in, a, in, 0.0f, w->xa[l], r);
    fl_gemm(true, false, out, r, rows, s, dy, out, w->xa[l], r, 0.0f, w->pg[L->lora_b], r);
    if (!m->params[L->lora_a].trainable)
        return;
    fl_gemm(false, false, rows, r, out, 1.0f, dy, out, b, r, 0.0f, w->dyb[l], r);
    fl_gemm(true, false, r, in, rows, s, w->dyb[l], r, x, in, 0.0f, w->pg[L->lora_a], in);
}

static void s_backward(fl_model_t *m, struct s_work *w, int n)
{
    for (int l = m->arch.nlayers - 1; l >= m->first_trainable; l--) {
        struct s_layer *L = &m->layers[l];
        struct fl_conv_geom g = L->geom;
        g.n = n;
        const float *dy = w->grad[l + 1];
        float *dx = l > m->first_trainable ? w->grad[l] : NULL;
        float *dw = NULL, *db = NULL;
        if (s_has_weights(L)) {
            dw = L->lora_a < 0 ? w->pg[L->w] : NULL;
            db = w->pg[L->b];
        }
        switch (L->spec.kind) {
        case FL_LAYER_CONV2D:
            fl_conv2d_backward(&g, w->col[l], s_weight(m, L), dy, dw, db, w->dcol[l], dx);
            if (L->lora_a >= 0)
                s_lora_grads(m, w, l, n * g.oh * g.ow, w->col[l], dy);
            break;
        case FL_LAYER_DENSE:
            fl_dense_backward(n, L->wcols, L->wrows, w->act[l], s_weight(m, L), dy, dw, db, dx);
            if (L->lora_a >= 0)
                s_lora_grads(m, w, l, n, w->act[l], dy);
            break;
        case FL_LAYER_RELU:
            fl_relu_backward((size_t)n * L->in_dim, w->act[l + 1], dy, w->grad[l]);
            break;
        case FL_LAYER_MAXPOOL:
            fl_maxpool_backward(&g, w->argmax[l], dy, w->grad[l]);
            break;
        case FL_LAYER_FLATTEN:
            break;
        }
    }
}

/* Sum the workers' gradients into the model's, in worker order (reproducible). */
static void s_reduce(fl_model_t *m, int T)
{
    for (int i = 0; i < m->nparams; i++) {
        struct s_param *p = &m->params[i];
        if (!p->trainable)
            continue;
        size_t len = fl_tensor_numel(&p->t);
        memcpy(p->grad, m->work[0]->pg[i], sizeof(float) * len);
        for (int t = 1; t < T; t++)
            for (size_t j = 0; j < len; j++)
                p->grad[j] += m->work[t]->pg[i][j];
    }
}

/* One batch split over the workers: what each task needs to find its share. */
struct s_job {
    fl_model_t *m;    /* the model */
    int T;            /* tasks */
    int n;            /* records in the job */
    int start, upto;  /* layers run: [start, upto) */
    const float *in;  /* inputs of layer start, n rows */
    const int32_t *y; /* labels (training) */
    float *out;       /* outputs of layer upto (prefix), n rows */
};

static void s_prefix_task(void *arg, int t)
{
    struct s_job *j = arg;
    fl_model_t *m = j->m;
    int lo = j->n * t / j->T, hi = j->n * (t + 1) / j->T;
    size_t in_dim = m->layers[0].in_dim, out_dim = fl_model_act_dim(m, j->upto);
    struct s_work *w = m->work[t];
    s_normalise(m, j->in + (size_t)lo * in_dim, hi - lo, w->act[0]);
    s_forward(m, w, 0, j->upto, hi - lo);
    memcpy(j->out + (size_t)lo * out_dim, w->act[j->upto],
           sizeof(float) * (size_t)(hi - lo) * out_dim);
}

int fl_model_forward_prefix(fl_model_t *m, const float *x, int n, int upto, float *out)
{
    if (upto < 0 || upto > m->arch.nlayers || n < 0)
        return FL_EINVAL;
    size_t in_dim = m->layers[0].in_dim, out_dim = fl_model_act_dim(m, upto);
    s_merge(m);
    for (int done = 0; done < n;) {
        int T = s_workers(m, n - done);
        int block = n - done < T * S_EVAL_BATCH ? n - done : T * S_EVAL_BATCH;
        int rc = s_reserve(m, T, (block + T - 1) / T);
        if (rc)
            return rc;
        struct s_job j = {.m = m,
                          .T = T,
                          .n = block,
                          .upto = upto,
                          .in = x + (size_t)done * in_dim,
                          .out = out + (size_t)done * out_dim};
        fl_pool_run(m->pool, T, s_prefix_task, &j);
        done += block;
    }
    return 0;
}

int fl_model_forward(fl_model_t *m, const float *x, size_t n, float *logits)
{
    if (n > INT32_MAX)
        return FL_EINVAL;
    return fl_model_forward_prefix(m, x, (int)n, m->arch.nlayers, logits);
}

static void s_train_task(void *arg, int t)
{
    struct s_job *j = arg;
    fl_model_t *m = j->m;
    int L = m->arch.nlayers, k = m->arch.num_classes;
    int lo = j->n * t / j->T, hi = j->n * (t + 1) / j->T, nt = hi - lo;
    size_t in_dim = fl_model_act_dim(m, j->start);
    struct s_work *w = m->work[t];
    if (j->start == 0)
        s_normalise(m, j->in + (size_t)lo * in_dim, nt, w->act[0]);
    else
        memcpy(w->act[j->start], j->in + (size_t)lo * in_dim, sizeof(float) * nt * in_dim);
    s_forward(m, w, j->start, L, nt);
    w->loss = nt * fl_softmax_xent(nt, k, w->act[L], j->y + lo, w->grad[L], &w->correct);
    /* xent's gradient is of the worker's mean; make it a share of the batch mean. */
    float share = (float)nt / (float)j->n;
    for (size_t i = 0; i < (size_t)nt * k; i++)
        w->grad[L][i] *= share;
    s_backward(m, w, nt);
}

int fl_model_train_step(fl_model_t *m, int start, const float *in, const int32_t *y, int n,
                        double *loss, int *correct)
{
    if (start < 0 || start > m->first_trainable || n <= 0)
        return fl_fail(FL_EINVAL, "train step: start layer %d, batch %d", start, n);
    int k = m->arch.num_classes;
    for (int i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= k)
            return fl_fail(FL_ERANGE, "label %d out of range for %d classes", y[i], k);
    int T = s_workers(m, n);
    int rc = s_reserve(m, T, (n + T - 1) / T);
    if (rc)
        return rc;
    s_merge(m);
    struct s_job j = {.m = m, .T = T, .n = n, .start = start, .in = in, .y = y};
    fl_pool_run(m->pool, T, s_train_task, &j);
    s_reduce(m, T);
    *loss = 0;
    *correct = 0;
    for (int t = 0; t < T; t++) {
        *loss += m->work[t]->loss;
        *correct += m->work[t]->correct;
    }
    *loss /= n;
    return 0;
}
