/* fl_model_run: running a model: per-worker workspaces, the forward and backward passes, and
 * a batch split over the model's pool for inference and for a training step. Building the
 * model and its parameters is fl_model.c's. */
#include "fl_model_impl.h"
#include "fl_error.h"
#include "fl_linalg.h"

#include <stdlib.h>
#include <string.h>

#define S_EVAL_BATCH     256 /* records per worker and call when only running forward */
#define S_MIN_PER_WORKER 16  /* fewest records worth a worker of their own */

/* One worker's share of a batch: its activations, scratch and private gradients. The batch
 * is split over the workers (fl_pool threads, single-threaded BLAS each) and their gradients
 * are summed in a fixed order, so a run is reproducible for a given thread count. */
struct fl_model_work {
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
    float *pg[FL_MODEL_MAX_PARAMS];          /* gradients of the trainable parameters */
    double loss;                             /* summed loss of its records */
    int correct;                             /* hits among its records */
};

static void s_work_destroy(fl_model_t *m, struct fl_model_work **wp)
{
    struct fl_model_work *w = *wp;
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
    for (int i = 0; i < FL_MODEL_MAX_PARAMS; i++)
        free(w->pg[i]);
    free(w);
    *wp = NULL;
}

void fl_model_work_free(fl_model_t *m)
{
    for (int t = 0; t < FL_MODEL_MAX_WORKERS; t++)
        s_work_destroy(m, &m->work[t]);
}

/* Grow worker w's buffers to hold n records; the gradient buffers are made once. */
static int s_work_reserve(fl_model_t *m, struct fl_model_work *w, int n)
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
        struct fl_model_layer *Ly = &m->layers[l];
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
    if (t > FL_MODEL_MAX_WORKERS)
        t = FL_MODEL_MAX_WORKERS;
    return t < 1 ? 1 : t;
}

/* Make sure workers 0..T-1 exist and hold `per` records each. */
static int s_reserve(fl_model_t *m, int T, int per)
{
    for (int t = 0; t < T; t++) {
        if (!m->work[t] && !(m->work[t] = calloc(1, sizeof(struct fl_model_work))))
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
        struct fl_model_layer *L = &m->layers[l];
        if (L->lora_a < 0)
            continue;
        float scale = m->ameta.alpha / (float)m->ameta.rank;
        fl_lora_merge(L->wrows, L->wcols, m->ameta.rank, scale, m->params[L->w].t.data,
                      m->params[L->lora_a].t.data, m->params[L->lora_b].t.data, L->w_eff);
    }
}

static const float *s_weight(const fl_model_t *m, const struct fl_model_layer *L)
{
    return L->lora_a >= 0 ? L->w_eff : m->params[L->w].t.data;
}

static void s_forward(fl_model_t *m, struct fl_model_work *w, int from, int to, int n)
{
    for (int l = from; l < to; l++) {
        struct fl_model_layer *L = &m->layers[l];
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
static void s_lora_grads(fl_model_t *m, struct fl_model_work *w, int l, int rows, const float *x,
                         const float *dy)
{
    const struct fl_model_layer *L = &m->layers[l];
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

static void s_backward(fl_model_t *m, struct fl_model_work *w, int n)
{
    for (int l = m->arch.nlayers - 1; l >= m->first_trainable; l--) {
        struct fl_model_layer *L = &m->layers[l];
        struct fl_conv_geom g = L->geom;
        g.n = n;
        const float *dy = w->grad[l + 1];
        float *dx = l > m->first_trainable ? w->grad[l] : NULL;
        float *dw = NULL, *db = NULL;
        if (fl_model_layer_has_weights(L)) {
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
        struct fl_model_param *p = &m->params[i];
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
    struct fl_model_work *w = m->work[t];
    s_normalise(m, j->in + (size_t)lo * in_dim, hi - lo, w->act[0]);
    s_forward(m, w, 0, j->upto, hi - lo);
    memcpy(j->out + (size_t)lo * out_dim, w->act[j->upto],
           sizeof(float) * (size_t)(hi - lo) * out_dim);
}

int fl_model_forward_prefix(fl_model_t *m, const float *x, int n, int upto, float *out)
{
    if (m->graph)
        return fl_model_graph_forward_prefix(m, x, n, upto, out);
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
    if (m->graph)
        return fl_model_graph_forward_prefix(m, x, (int)n, 2, logits);
    return fl_model_forward_prefix(m, x, (int)n, m->arch.nlayers, logits);
}

static void s_train_task(void *arg, int t)
{
    struct s_job *j = arg;
    fl_model_t *m = j->m;
    int L = m->arch.nlayers, k = m->arch.num_classes;
    int lo = j->n * t / j->T, hi = j->n * (t + 1) / j->T, nt = hi - lo;
    size_t in_dim = fl_model_act_dim(m, j->start);
    struct fl_model_work *w = m->work[t];
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
    if (m->graph)
        return fl_model_graph_train_step(m, start, in, y, n, loss, correct);
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
