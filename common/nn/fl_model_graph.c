/* fl_model_graph: a model whose base is a graph network (arch.graph): the graph built from the
 * description and the base's tensors, with an adapter on it (a new head replacing the Gemm or
 * MatMul that computes the logits, LoRA on Conv / Gemm / MatMul nodes, BitFit biases), its
 * frozen prefix for the client's cache, and the passes, run a few samples at a time (up to
 * FL_MODEL_GRAPH_BATCH, fewer when the network's values would pass FL_MODEL_GRAPH_BYTES) on
 * buffers made once. Tensor names and default targets: fl_graphadapt.h. */
#include "fl_model_impl.h"

#include "fl_error.h"
#include "fl_graph.h"
#include "fl_graphadapt.h"
#include "fl_graphdef.h"
#include "fl_linalg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(FL_TARGET_NAME_MAX >= FL_GRAPH_NAME_MAX, "a target holds any node's name");

struct fl_model_graph {
    struct fl_graphdef def; /* the description as built: head replaced, BitFit biases added */
    fl_graph_t *g;          /* the engine */
    fl_graph_cut_t *cut;    /* its frozen prefix (NULL without an adapter) */
    size_t in_dim;          /* floats per input record */
    int64_t in_c;           /* input channels (per-channel normalisation) */
    int classes;            /* logits per record */
    int cap;                /* samples the graph runs at once */
    float *x;               /* [cap, in_dim] normalised inputs */
    float *dlogits;         /* [cap, classes] */
    const float **ggrad;    /* per model parameter: the graph's gradient (trainable only) */
};

/* A new parameter entry called name; with ndim > 0 its data is allocated (zeros). */
static int s_param(fl_model_t *m, const char *name, int ndim, const int64_t *shape)
{
    if (m->nparams >= m->cap_params)
        return fl_fail(FL_EINVAL, "too many parameter tensors");
    struct fl_model_param *p = &m->params[m->nparams];
    memset(p, 0, sizeof *p);
    snprintf(p->t.name, sizeof p->t.name, "%s", name);
    if (ndim > 0 && fl_tensor_init(&p->t, name, ndim, shape) != 0)
        return fl_fail(FL_ENOMEM, "%s: out of memory", name);
    p->used = true;
    return m->nparams++;
}

/* The base's tensors as entries (borrowed), and its normalisation (identity when absent). */
static int s_base_params(fl_model_t *m, const struct fl_tensor *t, size_t n, const char *origin)
{
    for (size_t i = 0; i < n; i++) {
        struct fl_model_param *p = &m->params[m->nparams++];
        memset(p, 0, sizeof *p);
        p->t = t[i];
        p->t.owned = false;
        p->base = true;
    }
    const struct fl_tensor *mean = fl_tensor_find(t, n, "norm.mean");
    const struct fl_tensor *std = fl_tensor_find(t, n, "norm.std");
    if (!mean && !std) {
        int64_t one = 1;
        if ((m->norm_mean = s_param(m, "norm.mean", 1, &one)) < 0 ||
            (m->norm_std = s_param(m, "norm.std", 1, &one)) < 0)
            return FL_ENOMEM;
        m->params[m->norm_std].t.data[0] = 1.0f;
        m->params[m->norm_mean].base = m->params[m->norm_std].base = true;
        m->params[m->norm_mean].used = m->params[m->norm_std].used = false;
        return 0;
    }
    size_t len = mean ? fl_tensor_numel(mean) : 0;
    if (!std || fl_tensor_numel(std) != len || !fl_model_graph_norm_fits(m, len))
        return fl_fail(FL_EFORMAT, "%s: norm.mean and norm.std must have 1, %lld or %zu values",
                       origin, (long long)m->graph->in_c, m->graph->in_dim);
    for (size_t i = 0; i < len; i++)
        if (!(std->data[i] > 0.0f) || !isfinite(mean->data[i]))
            return fl_fail(FL_EFORMAT, "%s: norm.std must be positive, norm.mean finite", origin);
    m->norm_mean = (int)(mean - t);
    m->norm_std = (int)(std - t);
    return 0;
}

/* The new head: node h becomes a Gemm reading "head.weight" [classes, in] (trans_b) and
 * "head.bias" [classes], initialised as a chain's head is. */
static int s_head(fl_model_t *m, const struct fl_gadapt_node *hd, struct fl_rng *rng)
{
    struct fl_gdef_node *nd = &m->graph->def.nodes[hd->node];
    int64_t ws[2] = {m->ameta.num_classes, hd->cols}, bs[1] = {m->ameta.num_classes};
    int w = s_param(m, "head.weight", 2, ws), b = w < 0 ? w : s_param(m, "head.bias", 1, bs);
    if (b < 0)
        return b;
    struct fl_tensor *wt = &m->params[w].t;
    for (size_t i = 0; i < fl_tensor_numel(wt); i++)
        wt->data[i] = (float)(fl_rng_normal(rng) * sqrt(1.0 / (double)hd->cols));
    nd->op = FL_OP_GEMM;
    nd->nin = 3;
    snprintf(nd->in[1], sizeof nd->in[1], "head.weight");
    snprintf(nd->in[2], sizeof nd->in[2], "head.bias");
    nd->a.trans_b = true;
    nd->a.alpha = nd->a.beta = 1.0f;
    m->params[w].adapter = m->params[w].trainable = true;
    m->params[b].adapter = m->params[b].trainable = true;
    m->arch.num_classes = m->ameta.num_classes;
    return 0;
}

/* BitFit on node x: it reads a trainable "<node>.bias", a copy of its bias (zeros without). */
static int s_bitfit(fl_model_t *m, const struct fl_gadapt_node *x, const struct fl_tensor *t,
                    size_t n, const char *origin)
{
    struct fl_gdef_node *nd = &m->graph->def.nodes[x->node];
    char name[FL_NAME_MAX];
    fl_graphadapt_tensor_name(name, nd->name, "bias");
    int64_t rows = x->rows;
    int b = s_param(m, name, 1, &rows);
    if (b < 0)
        return b;
    float *dst = m->params[b].t.data;
    const struct fl_tensor *old = x->bias ? fl_tensor_find(t, n, x->bias) : NULL;
    float scale = nd->op == FL_OP_GEMM && old ? nd->a.beta : 1.0f;
    size_t len = old ? fl_tensor_numel(old) : 0;
    if (old && len != (size_t)rows && len != 1)
        return fl_fail(FL_EFORMAT, "%s: node '%s': bias '%s' has %zu values for %lld outputs",
                       origin, nd->name, x->bias, len, (long long)rows);
    for (int64_t i = 0; old && i < rows; i++)
        dst[i] = scale * old->data[len == 1 ? 0 : i];
    if (nd->op == FL_OP_MATMUL) {
        nd->op = FL_OP_GEMM;
        nd->a = fl_op_attrs_default();
    }
    nd->a.beta = 1.0f;
    nd->nin = 3;
    snprintf(nd->in[2], sizeof nd->in[2], "%s", name);
    m->params[b].adapter = m->params[b].trainable = true;
    return 0;
}

/* Check the adapter's configuration and its targets; add the head, the BitFit biases and
 * placeholders for the LoRA factors (filled once the graph holds them). */
static int s_adapter(fl_model_t *m, const struct fl_tensor *t, size_t n, const char *origin,
                     const struct fl_gadapt_node *hd, struct fl_rng *rng)
{
    struct fl_adapter_meta *am = &m->ameta;
    const struct fl_graphdef *d = &m->graph->def;
    bool lora = am->kind == FL_ADAPTER_LORA || am->kind == FL_ADAPTER_FFA_LORA;
    if (am->num_classes < 2 || am->num_classes > FL_MAX_CLASSES)
        return fl_fail(FL_EINVAL, "adapter: %d classes (need 2 to %d)", am->num_classes,
                       FL_MAX_CLASSES);
    if (am->kind == FL_ADAPTER_HEAD && am->ntargets > 0)
        return fl_fail(FL_EINVAL, "method head takes no target nodes");
    if (am->ntargets < 0 || am->ntargets > FL_MAX_TARGETS)
        return fl_fail(FL_EINVAL, "adapter: %d targets", am->ntargets);
    if (lora && (am->rank < 1 || am->rank > 1024))
        return fl_fail(FL_EINVAL, "LoRA rank %d is out of range (1..1024)", am->rank);
    if (lora && !(am->alpha > 0.0f))
        return fl_fail(FL_EINVAL, "LoRA alpha must be positive");
    int rc = s_head(m, hd, rng);
    for (int k = 0; rc == 0 && k < am->ntargets; k++) {
        const char *name = am->targets[k];
        int i = fl_graphdef_find(d, name);
        struct fl_gadapt_node x;
        if (i < 0 || i == hd->node || fl_graphadapt_node(d, t, n, i, &x) != 0)
            return fl_fail(FL_EINVAL, "%s: '%s' is not a Conv, Gemm or MatMul node below the head",
                           origin, name);
        for (int u = 0; u < k; u++)
            if (strcmp(am->targets[u], name) == 0)
                return fl_fail(FL_EINVAL, "target node '%s' given twice", name);
        if (lora && x.depthwise)
            return fl_fail(FL_EINVAL,
                           "%s: node '%s' is a depthwise convolution: depthwise takes BitFit only",
                           origin, name);
        if (!lora) {
            rc = s_bitfit(m, &x, t, n, origin);
            continue;
        }
        char an[FL_NAME_MAX], bn[FL_NAME_MAX];
        fl_graphadapt_tensor_name(an, name, "lora_A");
        fl_graphadapt_tensor_name(bn, name, "lora_B");
        int a = s_param(m, an, 0, NULL), b = a < 0 ? a : s_param(m, bn, 0, NULL);
        if (b < 0)
            return b;
        bool ffa = am->kind == FL_ADAPTER_FFA_LORA;
        m->params[a].adapter = m->params[a].trainable = !ffa;
        m->params[b].adapter = m->params[b].trainable = true;
    }
    return rc;
}

/* Every adapter tensor name once (node names cut to FL_GRAPHADAPT_NODE_CHARS may collide). */
static int s_unique(const fl_model_t *m, const char *origin)
{
    for (int i = 0; i < m->nparams; i++)
        for (int j = 0; !m->params[i].base && j < i; j++)
            if (strcmp(m->params[i].t.name, m->params[j].t.name) == 0 && !m->params[j].base)
                return fl_fail(FL_EINVAL, "%s: two adapter tensors called '%s'", origin,
                               m->params[i].t.name);
    return 0;
}

/* Build the graph: adapter tensors first, so that a BitFit bias called like a base tensor
 * ("conv1.bias") is the one the node reads. */
static int s_graph(fl_model_t *m, const struct fl_tensor *t, size_t n, fl_pool_t *pool)
{
    struct fl_model_graph *mg = m->graph;
    struct fl_tensor *all = calloc((size_t)m->nparams + n + 1, sizeof *all);
    if (!all)
        return fl_fail(FL_ENOMEM, "out of memory");
    size_t k = 0;
    for (int i = 0; i < m->nparams; i++)
        if (m->params[i].adapter || m->params[i].trainable)
            if (m->params[i].t.data)
                all[k++] = m->params[i].t;
    for (size_t i = 0; i < n; i++)
        all[k++] = t[i];
    mg->g = fl_graph_from_def(&mg->def, all, k, pool);
    free(all);
    if (!mg->g)
        return FL_EFORMAT;
    int rc = 0;
    for (int i = 0; rc == 0 && i < m->nparams; i++)
        if (m->params[i].trainable && m->params[i].t.data)
            rc = fl_graph_set_trainable(mg->g, m->params[i].t.name, true);
    bool lora = m->ameta.kind == FL_ADAPTER_LORA || m->ameta.kind == FL_ADAPTER_FFA_LORA;
    for (int i = 0; rc == 0 && m->has_adapter && lora && i < m->ameta.ntargets; i++) {
        const char *node = m->ameta.targets[i];
        rc = fl_graph_add_lora(mg->g, node, m->ameta.rank, m->ameta.alpha,
                               fl_graphadapt_node_seed(m->ameta.seed, node),
                               m->ameta.kind == FL_ADAPTER_LORA);
    }
    return rc ? rc : fl_graph_plan(mg->g, mg->cap, false);
}

/* How many samples the graph runs at once: planned for one, its values (kept for the
 * backward pass, with as many gradients at most) sized against FL_MODEL_GRAPH_BYTES. */
static int s_capacity(fl_model_t *m, const struct fl_tensor *t, size_t n)
{
    struct fl_model_graph *mg = m->graph;
    mg->cap = 1;
    int rc = s_graph(m, t, n, NULL);
    double bytes = (double)mg->in_dim;
    for (int i = 0; rc == 0 && i < mg->def.nnodes; i++) {
        int64_t dims[FL_GRAPH_MAX_DIMS];
        int nd = fl_graph_value_shape(mg->g, mg->def.nodes[i].out, dims);
        double v = 1;
        for (int k = 0; k < nd; k++)
            v *= (double)dims[k];
        bytes += v;
    }
    bytes *= 2 * sizeof(float);
    fl_graph_destroy(&mg->g);
    double cap = (double)FL_MODEL_GRAPH_BYTES / bytes;
    mg->cap = cap >= FL_MODEL_GRAPH_BATCH ? FL_MODEL_GRAPH_BATCH : cap < 1 ? 1 : (int)cap;
    return rc;
}

/* Point every entry the graph reads at the graph's live copy; gradients for the trainable. */
static int s_bind(fl_model_t *m)
{
    struct fl_model_graph *mg = m->graph;
    if (!(mg->ggrad = calloc((size_t)m->nparams, sizeof *mg->ggrad)))
        return FL_ENOMEM;
    for (int i = 0; i < m->nparams; i++) {
        struct fl_model_param *p = &m->params[i];
        bool shadowed = false; /* a base tensor whose name an adapter tensor took */
        for (int j = 0; p->base && j < m->nparams; j++)
            shadowed |= !m->params[j].base && strcmp(m->params[j].t.name, p->t.name) == 0;
        size_t numel = 0;
        float *live = shadowed ? NULL : fl_graph_param(mg->g, p->t.name, &numel);
        if (i == m->norm_mean || i == m->norm_std)
            continue;
        p->used = live != NULL;
        if (!live && (p->adapter || p->trainable))
            return fl_fail(FL_EINVAL, "adapter tensor %s is not in the graph", p->t.name);
        if (!live)
            continue;
        char name[FL_NAME_MAX];
        int64_t dims[FL_GRAPH_MAX_DIMS];
        memcpy(name, p->t.name, sizeof name);
        int nd = fl_graph_value_shape(mg->g, name, dims);
        fl_tensor_free(&p->t); /* owned initial values were copied into the graph */
        memcpy(p->t.name, name, sizeof name);
        p->t.ndim = nd;
        memcpy(p->t.shape, dims, sizeof p->t.shape);
        p->t.data = live;
        if (p->trainable) {
            mg->ggrad[i] = fl_graph_grad(mg->g, name);
            if (!mg->ggrad[i] || !(p->grad = fl_falloc(numel)))
                return fl_fail(FL_ENOMEM, "out of memory for the gradient of %s", name);
        }
    }
    return 0;
}

/* Wrap the graph engine's message with the origin of the base. */
static int s_origin_fail(int rc, const char *origin)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fl_error_msg());
    return fl_fail(rc, "%s: %s", origin, msg);
}

/* Plan the graph on the model's parameters (and the n base tensors), bind, make buffers. */
static int s_engine(fl_model_t *m, const struct fl_tensor *t, size_t n, const char *origin)
{
    struct fl_model_graph *mg = m->graph;
    int rc;
    if ((rc = s_capacity(m, t, n)) != 0 || (rc = s_graph(m, t, n, m->pool)) != 0)
        return s_origin_fail(rc, origin);
    if ((rc = s_bind(m)) != 0)
        return rc;
    mg->classes = m->arch.num_classes;
    mg->x = fl_falloc((size_t)mg->cap * mg->in_dim);
    mg->dlogits = fl_falloc((size_t)mg->cap * (size_t)mg->classes);
    if (m->has_adapter && !(mg->cut = fl_graph_cut_new(mg->g)))
        return FL_ENOMEM;
    if (!mg->x || !mg->dlogits)
        return fl_fail(FL_ENOMEM, "out of memory");
    m->first_trainable = mg->cut && fl_graph_cut_dim(mg->cut) > 0 ? 1 : 0;
    return 0;
}

/* The model's graph description copied, its input size, room for cap parameter entries. */
static int s_start(fl_model_t *m, size_t cap)
{
    const struct fl_graphdef *d = m->arch.graph;
    struct fl_model_graph *mg = calloc(1, sizeof *mg);
    if (!mg)
        return fl_fail(FL_ENOMEM, "out of memory");
    m->graph = mg;
    int rc = fl_graphdef_copy(&mg->def, d);
    if (rc)
        return rc;
    mg->in_dim = 1;
    for (int i = 0; i < d->in_ndim && i < 3; i++)
        mg->in_dim *= (size_t)d->in_dims[i];
    mg->in_c = d->in_ndim > 1 ? d->in_dims[0] : (int64_t)mg->in_dim;
    free(m->params);
    m->nparams = 0;
    if (!(m->params = calloc(cap, sizeof *m->params)))
        return fl_fail(FL_ENOMEM, "out of memory");
    m->cap_params = (int)cap;
    return 0;
}

/* The Gemm or MatMul computing the logits, which must have the architecture's classes. */
static int s_head_node(const fl_model_t *m, const struct fl_tensor *t, size_t n, const char *origin,
                       struct fl_gadapt_node *hd)
{
    const struct fl_graphdef *d = m->arch.graph;
    int head = fl_graphadapt_head(d);
    if (head < 0)
        return fl_fail(FL_EFORMAT, "%s: the graph has no Gemm or MatMul computing its output",
                       origin);
    if (fl_graphadapt_node(d, t, n, head, hd) != 0)
        return s_origin_fail(FL_EFORMAT, origin);
    if (hd->rows != m->arch.num_classes)
        return fl_fail(FL_EFORMAT, "%s: head '%s' has %lld outputs, the base says %d classes",
                       origin, d->nodes[head].name, (long long)hd->rows, m->arch.num_classes);
    return 0;
}

int fl_model_graph_build(fl_model_t *m, const struct fl_tensor *t, size_t n, const char *origin,
                         struct fl_rng *rng)
{
    size_t cap = n + 4 + (size_t)(m->has_adapter ? 2 * m->ameta.ntargets : 0);
    struct fl_gadapt_node hd;
    int rc = s_start(m, cap);
    if (rc || (rc = s_head_node(m, t, n, origin, &hd)) != 0)
        return rc;
    if ((rc = s_base_params(m, t, n, origin)) != 0 ||
        (m->has_adapter && (rc = s_adapter(m, t, n, origin, &hd, rng)) != 0) ||
        (rc = s_unique(m, origin)) != 0)
        return rc;
    return s_engine(m, t, n, origin);
}

/* Is value read by a node of d? */
static bool s_read(const struct fl_graphdef *d, const char *value)
{
    for (int i = 0; i < d->nnodes; i++)
        for (int k = 0; k < d->nodes[i].nin; k++)
            if (strcmp(d->nodes[i].in[k], value) == 0)
                return true;
    return false;
}

fl_model_t *fl_model_new_graph(const struct fl_arch *arch, const struct fl_tensor *t, size_t n,
                               fl_pool_t *pool)
{
    fl_linalg_init();
    if (!arch->graph) {
        fl_error_set("%s: not a graph architecture", arch->name);
        return NULL;
    }
    fl_model_t *m = calloc(1, sizeof *m);
    if (!m) {
        fl_error_set("out of memory");
        return NULL;
    }
    m->arch = *arch;
    m->pool = pool;
    struct fl_gadapt_node hd;
    int rc = s_start(m, n + 2);
    if (rc || (rc = s_head_node(m, t, n, arch->name, &hd)) != 0)
        goto out_destroy;
    for (size_t i = 0; i < n; i++) {
        if (!fl_graphdef_is_param(m->arch.graph, t[i].name) || !s_read(m->arch.graph, t[i].name))
            continue; /* norm.mean, norm.std and what no node reads */
        int k = t[i].ndim > 0
                    ? s_param(m, t[i].name, t[i].ndim, t[i].shape)
                    : fl_fail(FL_EFORMAT, "%s: tensor '%s' has no shape", arch->name, t[i].name);
        if (k < 0)
            goto out_destroy;
        memcpy(m->params[k].t.data, t[i].data, sizeof(float) * fl_tensor_numel(&t[i]));
        m->params[k].base = m->params[k].trainable = true;
    }
    if (s_base_params(m, NULL, 0, arch->name) != 0 || s_engine(m, NULL, 0, arch->name) != 0)
        goto out_destroy;
    return m;
out_destroy:
    fl_model_destroy(&m);
    return NULL;
}

void fl_model_graph_touch(fl_model_t *m)
{
    if (m->graph->g)
        fl_graph_touch(m->graph->g);
}

void fl_model_graph_free(fl_model_t *m)
{
    struct fl_model_graph *mg = m->graph;
    if (!mg)
        return;
    fl_graph_cut_destroy(&mg->cut);
    fl_graph_destroy(&mg->g);
    fl_graphdef_free(&mg->def);
    free(mg->x);
    free(mg->dlogits);
    free(mg->ggrad);
    free(mg);
    m->graph = NULL;
}

size_t fl_model_graph_input_dim(const fl_model_t *m)
{
    return m->graph->in_dim;
}

bool fl_model_graph_norm_fits(const fl_model_t *m, size_t len)
{
    return len == 1 || len == (size_t)m->graph->in_c || len == m->graph->in_dim;
}

size_t fl_model_graph_act_dim(const fl_model_t *m, int l)
{
    const struct fl_model_graph *mg = m->graph;
    if (l <= 0)
        return mg->in_dim;
    if (l == 1 && mg->cut && fl_graph_cut_dim(mg->cut) > 0)
        return fl_graph_cut_dim(mg->cut);
    return (size_t)mg->classes;
}

/* x' = (x - mean) / std for n records, per feature, per channel or global. */
static void s_normalise(const fl_model_t *m, const float *x, int n, float *out)
{
    const struct fl_tensor *mean = &m->params[m->norm_mean].t;
    const struct fl_tensor *std = &m->params[m->norm_std].t;
    size_t dim = m->graph->in_dim, len = fl_tensor_numel(mean);
    size_t plane = len == dim ? 1 : dim / (size_t)m->graph->in_c;
    for (size_t j = 0; j < (size_t)n * dim; j++) {
        size_t f = j % dim, k = len == 1 ? 0 : f / plane;
        out[j] = (x[j] - mean->data[k]) / std->data[k];
    }
}

int fl_model_graph_forward_prefix(fl_model_t *m, const float *x, int n, int upto, float *out)
{
    struct fl_model_graph *mg = m->graph;
    if (n < 0 || upto < 0 || upto > 2 || (upto == 1 && m->first_trainable != 1))
        return fl_fail(FL_EINVAL, "graph model: no layer %d to run up to", upto);
    size_t od = fl_model_graph_act_dim(m, upto);
    for (int done = 0; done < n;) {
        int k = n - done < m->graph->cap ? n - done : m->graph->cap;
        float *o = out + (size_t)done * od;
        s_normalise(m, x + (size_t)done * mg->in_dim, k, mg->x);
        int rc = 0;
        if (upto == 0)
            memcpy(o, mg->x, sizeof(float) * (size_t)k * od);
        else if (upto == 1)
            rc = fl_graph_cut_forward_prefix(mg->cut, mg->x, k, o);
        else if ((rc = fl_graph_forward(mg->g, mg->x, k)) == 0)
            memcpy(o, fl_graph_output(mg->g, NULL), sizeof(float) * (size_t)k * od);
        if (rc)
            return rc;
        done += k;
    }
    return 0;
}

/* Forward, loss and backward of k records (raw from x, or frontiers when start is 1); the
 * gradients of the mean over all n records are added into the model's. */
static int s_step_piece(fl_model_t *m, int start, const float *in, const int32_t *y, int k, int n,
                        double *loss, int *correct)
{
    struct fl_model_graph *mg = m->graph;
    int rc;
    if (start == 0) {
        s_normalise(m, in, k, mg->x);
        rc = fl_graph_forward(mg->g, mg->x, k);
    } else {
        rc = fl_graph_cut_forward_rest(mg->cut, in, k);
    }
    if (rc)
        return rc;
    int hits = 0;
    double l = fl_softmax_xent(k, mg->classes, fl_graph_output(mg->g, NULL), y, mg->dlogits, &hits);
    float share = (float)k / (float)n;
    for (size_t i = 0; i < (size_t)k * (size_t)mg->classes; i++)
        mg->dlogits[i] *= share;
    if ((rc = fl_graph_backward(mg->g, mg->dlogits)) != 0)
        return rc;
    for (int i = 0; i < m->nparams; i++) {
        const float *gg = mg->ggrad[i];
        float *acc = m->params[i].grad;
        for (size_t j = 0; gg && j < fl_tensor_numel(&m->params[i].t); j++)
            acc[j] += gg[j];
    }
    *loss += l * k;
    *correct += hits;
    return 0;
}

int fl_model_graph_train_step(fl_model_t *m, int start, const float *in, const int32_t *y, int n,
                              double *loss, int *correct)
{
    if (fl_model_ntensors(m, FL_SET_TRAINABLE) == 0)
        return fl_fail(FL_EINVAL, "train step: the model has nothing to train");
    size_t dim = fl_model_graph_act_dim(m, start);
    for (int i = 0; i < m->nparams; i++)
        if (m->params[i].grad)
            memset(m->params[i].grad, 0, sizeof(float) * fl_tensor_numel(&m->params[i].t));
    *loss = 0;
    *correct = 0;
    for (int done = 0; done < n;) {
        int k = n - done < m->graph->cap ? n - done : m->graph->cap;
        int rc = s_step_piece(m, start, in + (size_t)done * dim, y + done, k, n, loss, correct);
        if (rc)
            return rc;
        done += k;
    }
    *loss /= n;
    return 0;
}
