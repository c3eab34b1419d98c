/* fl_train: the training loop, optimisers, frozen-prefix cache, evaluation. */
#include "fl_train.h"
#include "fl_error.h"
#include "fl_layers.h"
#include "fl_rng.h"
#include "fl_time.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void fl_train_opts_default(struct fl_train_opts *o)
{
    memset(o, 0, sizeof *o);
    o->epochs = 5;
    o->batch = 64;
    o->optimizer = FL_OPT_ADAM;
    o->lr = 1e-3f;
    o->momentum = 0.9f;
    o->seed = 1;
    o->cache_bytes = (size_t)1 << 30;
    o->label = "train";
}

/* Optimiser state: one or two moment buffers per trainable tensor, and the proximal anchor. */
struct s_optim {
    size_t n;         /* trainable tensors */
    float **m1, **m2; /* first / second moments */
    float **anchor;   /* FedProx's anchor per tensor (NULL: no proximal term) */
    long step;        /* Adam step count */
};

static void s_optim_free(struct s_optim *o)
{
    for (size_t i = 0; i < o->n; i++) {
        free(o->m1 ? o->m1[i] : NULL);
        free(o->m2 ? o->m2[i] : NULL);
        free(o->anchor ? o->anchor[i] : NULL);
    }
    free(o->m1);
    free(o->m2);
    free(o->anchor);
    memset(o, 0, sizeof *o);
}

/* A copy of the proximal anchor: opt's, checked against the trainable tensors, or those. */
static int s_optim_anchor(struct s_optim *o, fl_model_t *m, const struct fl_train_opts *opt)
{
    if (!(opt->prox_mu > 0))
        return 0;
    if (!(o->anchor = calloc(o->n ? o->n : 1, sizeof(float *))))
        return fl_fail(FL_ENOMEM, "out of memory for the proximal anchor");
    for (size_t i = 0; i < o->n; i++) {
        const struct fl_tensor *t = fl_model_tensor(m, FL_SET_TRAINABLE, i);
        const struct fl_tensor *a = opt->prox_anchor ? &opt->prox_anchor[i] : t;
        size_t len = fl_tensor_numel(t);
        if (fl_tensor_numel(a) != len)
            return fl_fail(FL_EMISMATCH, "proximal anchor: tensor %zu (%s) has %zu values, %s %zu",
                           i, a->name, fl_tensor_numel(a), t->name, len);
        if (!(o->anchor[i] = fl_falloc(len)))
            return fl_fail(FL_ENOMEM, "out of memory for the proximal anchor");
        memcpy(o->anchor[i], a->data, len * sizeof(float));
    }
    return 0;
}

static int s_optim_init(struct s_optim *o, fl_model_t *m, const struct fl_train_opts *opt)
{
    memset(o, 0, sizeof *o);
    o->n = fl_model_ntensors(m, FL_SET_TRAINABLE);
    o->m1 = calloc(o->n ? o->n : 1, sizeof(float *));
    o->m2 = calloc(o->n ? o->n : 1, sizeof(float *));
    if (!o->m1 || !o->m2)
        goto out_nomem;
    for (size_t i = 0; i < o->n; i++) {
        size_t len = fl_tensor_numel(fl_model_tensor(m, FL_SET_TRAINABLE, i));
        if (!(o->m1[i] = fl_falloc(len)) || !(o->m2[i] = fl_falloc(len)))
            goto out_nomem;
    }
    int rc = s_optim_anchor(o, m, opt);
    if (rc)
        s_optim_free(o);
    return rc;
out_nomem:
    s_optim_free(o);
    return fl_fail(FL_ENOMEM, "out of memory for optimiser state");
}

/* FedProx: mu (w - anchor) into the gradient g; returns mu/2 ||w - anchor||^2. */
static double s_prox(float *g, const float *w, const float *anchor, size_t len, float mu)
{
    double sq = 0;
    for (size_t j = 0; j < len; j++) {
        float d = w[j] - anchor[j];
        g[j] += mu * d;
        sq += (double)d * d;
    }
    return 0.5 * mu * sq;
}

/* One step of the optimiser; returns the proximal term's loss at the weights it started from. */
static double s_optim_step(struct s_optim *o, fl_model_t *m, const struct fl_train_opts *opt)
{
    o->step++;
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    float c1 = 1.0f - powf(b1, (float)o->step), c2 = 1.0f - powf(b2, (float)o->step);
    double prox = 0;
    for (size_t i = 0; i < o->n; i++) {
        struct fl_tensor *t = fl_model_tensor(m, FL_SET_TRAINABLE, i);
        float *g = fl_model_grad(m, i), *p = t->data, *v = o->m1[i], *s = o->m2[i];
        size_t len = fl_tensor_numel(t);
        float wd = opt->weight_decay, lr = opt->lr, mom = opt->momentum;
        if (o->anchor)
            prox += s_prox(g, p, o->anchor[i], len, opt->prox_mu);
        if (opt->optimizer == FL_OPT_SGD) {
            for (size_t j = 0; j < len; j++) {
                v[j] = mom * v[j] + g[j] + wd * p[j];
                p[j] -= lr * v[j];
            }
            continue;
        }
        for (size_t j = 0; j < len; j++) {
            float gj = g[j] + wd * p[j];
            v[j] = b1 * v[j] + (1.0f - b1) * gj;
            s[j] = b2 * s[j] + (1.0f - b2) * gj * gj;
            p[j] -= lr * (v[j] / c1) / (sqrtf(s[j] / c2) + eps);
        }
    }
    return prox;
}

/* The frozen-prefix cache: inputs of the first trainable layer for records [0, cap). */
struct s_cache {
    int layer;    /* first trainable layer; 0 = no cache */
    size_t dim;   /* floats per record */
    size_t cap;   /* records that fit in the budget */
    float *data;  /* [cap, dim] */
    bool *filled; /* which records are computed */
};

static void s_cache_free(struct s_cache *c)
{
    free(c->data);
    free(c->filled);
    memset(c, 0, sizeof *c);
}

static void s_cache_init(struct s_cache *c, fl_model_t *m, size_t n, size_t budget)
{
    memset(c, 0, sizeof *c);
    int f = fl_model_frozen_prefix(m);
    if (f <= 0 || budget == 0)
        return;
    c->layer = f;
    c->dim = fl_model_act_dim(m, f);
    c->cap = budget / (c->dim * sizeof(float));
    if (c->cap > n)
        c->cap = n;
    if (c->cap == 0)
        return;
    c->data = fl_falloc(c->cap * c->dim);
    c->filled = calloc(c->cap, sizeof(bool));
    if (!c->data || !c->filled) {
        /* Not fatal: recompute everything. */
        free(c->data);
        free(c->filled);
        c->data = NULL;
        c->filled = NULL;
        c->cap = 0;
    }
}

/* Fill `in` with the inputs of layer cache->layer for the batch, from the cache where it can;
 * the rest is read (from memory or the source) into raw and computed by the frozen prefix
 * (and stored while the budget lasts). miss_idx and miss_pos hold n entries each. */
static int s_cache_gather(struct s_cache *c, fl_model_t *m, const struct fl_dataset *ds,
                          const size_t *idx, int n, float *in, float *raw, float *tmp,
                          size_t *miss_idx, int *miss_pos, size_t *hits)
{
    int miss = 0;
    for (int i = 0; i < n; i++) {
        size_t s = idx[i];
        if (s < c->cap && c->filled[s]) {
            memcpy(in + (size_t)i * c->dim, c->data + s * c->dim, sizeof(float) * c->dim);
            (*hits)++;
            continue;
        }
        miss_idx[miss] = s;
        miss_pos[miss++] = i;
    }
    if (miss == 0)
        return 0;
    int rc = fl_dataset_gather(ds, miss_idx, (size_t)miss, raw);
    if (rc == 0)
        rc = fl_model_forward_prefix(m, raw, miss, c->layer, tmp);
    if (rc)
        return rc;
    for (int j = 0; j < miss; j++) {
        int i = miss_pos[j];
        size_t s = idx[i];
        memcpy(in + (size_t)i * c->dim, tmp + (size_t)j * c->dim, sizeof(float) * c->dim);
        if (s < c->cap) {
            memcpy(c->data + s * c->dim, tmp + (size_t)j * c->dim, sizeof(float) * c->dim);
            c->filled[s] = true;
        }
    }
    return 0;
}

/* The raw records of a batch into in, augmented for the epoch when asked (tmp: scratch). */
static int s_raw_batch(const struct fl_dataset *ds, const struct fl_train_opts *o,
                       const struct fl_augment_shape *shape, int epoch, const size_t *idx, int n,
                       float *in, float *tmp)
{
    int rc = fl_dataset_gather(ds, idx, (size_t)n, in);
    for (int i = 0; rc == 0 && o->augment.ops && i < n; i++)
        fl_augment_record(&o->augment, shape, o->seed, (uint64_t)epoch, idx[i],
                          in + (size_t)i * ds->dim, tmp);
    return rc;
}

static void s_progress_bar(const struct fl_train_opts *o, int epoch, size_t done, size_t n,
                           double loss, double t0)
{
    double el = fl_now_s() - t0;
    fprintf(stderr, "\r%s epoch %d/%d [%3d%%] loss=%.4f %.0f samples/s   ", o->label, epoch,
            o->epochs, (int)(100.0 * done / n), loss, el > 0 ? done / el : 0.0);
    fflush(stderr);
}

int fl_train(fl_model_t *m, const struct fl_dataset *ds, const struct fl_train_opts *o,
             fl_epoch_fn *fn, void *arg, struct fl_epoch_stats *last)
{
    if (ds->n == 0 || o->epochs < 1 || o->batch < 1)
        return fl_fail(FL_EINVAL, "training needs data, epochs >= 1 and batch >= 1");
    if (ds->dim != fl_model_input_dim(m))
        return fl_fail(FL_EMISMATCH, "data has %zu features, the model takes %zu", ds->dim,
                       fl_model_input_dim(m));
    for (size_t i = 0; i < ds->n; i++)
        if (ds->y[i] < 0 || ds->y[i] >= fl_model_num_classes(m))
            return fl_fail(FL_ERANGE, "record %zu: label %d, the model has %d classes", i, ds->y[i],
                           fl_model_num_classes(m));
    struct fl_augment_shape shape = {0};
    if (o->augment.ops && fl_augment_shape_of(fl_model_arch(m), &shape) != 0)
        return FL_EINVAL;
    int rc = FL_ENOMEM;
    struct s_optim opt;
    struct s_cache cache;
    struct fl_rng rng;
    fl_rng_seed(&rng, o->seed);
    if ((rc = s_optim_init(&opt, m, o)) != 0)
        return rc;
    /* Augmented records differ every epoch: the frozen prefix's output cannot be kept. */
    s_cache_init(&cache, m, ds->n, o->augment.ops ? 0 : o->cache_bytes);
    size_t in_dim = cache.layer > 0 ? cache.dim : ds->dim;
    size_t *perm = malloc(sizeof(size_t) * ds->n);
    float *in = fl_falloc((size_t)o->batch * (in_dim > ds->dim ? in_dim : ds->dim));
    float *raw = fl_falloc((size_t)o->batch * ds->dim);
    float *tmp = fl_falloc((size_t)o->batch * (in_dim > ds->dim ? in_dim : ds->dim));
    int32_t *y = malloc(sizeof(int32_t) * o->batch);
    size_t *miss_idx = malloc(sizeof(size_t) * o->batch);
    int *miss_pos = malloc(sizeof(int) * o->batch);
    if (!perm || !in || !raw || !tmp || !y || !miss_idx || !miss_pos) {
        rc = fl_fail(FL_ENOMEM, "out of memory for training buffers");
        goto out_free;
    }
    for (size_t i = 0; i < ds->n; i++)
        perm[i] = i;
    bool tty = o->progress && isatty(STDERR_FILENO);
    struct fl_epoch_stats st = {0};
    for (int e = 1; e <= o->epochs; e++) {
        fl_rng_shuffle(&rng, perm, ds->n);
        double t0 = fl_now_s(), loss_sum = 0;
        size_t hits = 0, cached = 0;
        for (size_t done = 0; done < ds->n; done += (size_t)o->batch) {
            int n = (int)(ds->n - done < (size_t)o->batch ? ds->n - done : (size_t)o->batch);
            const size_t *idx = perm + done;
            for (int i = 0; i < n; i++)
                y[i] = ds->y[idx[i]];
            if (cache.cap > 0)
                rc = s_cache_gather(&cache, m, ds, idx, n, in, raw, tmp, miss_idx, miss_pos,
                                    &cached);
            else
                rc = s_raw_batch(ds, o, &shape, e, idx, n, in, tmp);
            double loss = 0;
            int correct = 0;
            if (rc == 0)
                rc = fl_model_train_step(m, cache.cap > 0 ? cache.layer : 0, in, y, n, &loss,
                                         &correct);
            if (rc)
                goto out_free;
            if (!isfinite(loss)) {
                rc = fl_fail(FL_ERANGE,
                             "%s: loss became %f in epoch %d: lower the learning "
                             "rate",
                             o->label, loss, e);
                goto out_free;
            }
            loss += s_optim_step(&opt, m, o);
            loss_sum += loss * n;
            hits += (size_t)correct;
            if (tty && (done / o->batch) % 16 == 0)
                s_progress_bar(o, e, done + n, ds->n, loss_sum / (done + n), t0);
        }
        double dt = fl_now_s() - t0;
        st = (struct fl_epoch_stats){.epoch = e,
                                     .epochs = o->epochs,
                                     .loss = loss_sum / ds->n,
                                     .accuracy = (double)hits / ds->n,
                                     .seconds = dt,
                                     .samples_per_s = dt > 0 ? ds->n / dt : 0,
                                     .cached = cached};
        if (o->progress)
            fprintf(stderr, "%s%s epoch %d/%d loss=%.4f acc=%.4f samples/s=%.0f time=%.2fs\n",
                    tty ? "\r" : "", o->label, e, o->epochs, st.loss, st.accuracy, st.samples_per_s,
                    dt);
        if (fn)
            fn(&st, arg);
    }
    if (last)
        *last = st;
    rc = 0;
out_free:
    free(perm);
    free(in);
    free(raw);
    free(tmp);
    free(y);
    free(miss_idx);
    free(miss_pos);
    s_cache_free(&cache);
    s_optim_free(&opt);
    return rc;
}

#define S_CHUNK        1024 /* records per forward call when evaluating or predicting */
#define S_STREAM_CHUNK 64   /* the same for streamed records, read into a buffer first */

/* What s_forward_chunks hands on: records [first, first + n) and their logits [n, k]. */
typedef int(s_logits_fn)(void *arg, size_t first, size_t n, const float *logits, int k);

/* The logits of the n records of x, or of ds when x is NULL (streamed records read a chunk at
 * a time), S_CHUNK records at a time, each chunk handed to fn; stops at the first non-zero
 * return (of the model, the source or fn) and returns it. */
static int s_forward_chunks(fl_model_t *m, const struct fl_dataset *ds, const float *x, size_t n,
                            s_logits_fn *fn, void *arg)
{
    int k = fl_model_num_classes(m);
    size_t dim = fl_model_input_dim(m), chunk = x ? S_CHUNK : S_STREAM_CHUNK;
    float *logits = fl_falloc(chunk * (size_t)k);
    float *buf = x ? NULL : fl_falloc(chunk * dim);
    int rc = logits && (x || buf) ? 0 : fl_fail(FL_ENOMEM, "out of memory for evaluation");
    for (size_t done = 0; done < n && rc == 0; done += chunk) {
        size_t b = n - done < chunk ? n - done : chunk;
        if (!x && (rc = fl_dataset_read(ds, done, b, buf)) != 0)
            break;
        if ((rc = fl_model_forward(m, x ? x + done * dim : buf, b, logits)) == 0)
            rc = fn(arg, done, b, logits, k);
    }
    free(buf);
    free(logits);
    return rc;
}

/* An evaluation in progress. */
struct s_score {
    const int32_t *y;    /* the labels */
    struct fl_eval *out; /* per-class counts */
    double loss;         /* summed loss */
    size_t hits;         /* right predictions */
};

static int s_score_chunk(void *arg, size_t first, size_t n, const float *logits, int k)
{
    struct s_score *s = arg;
    for (size_t i = 0; i < n; i++) {
        int32_t yi = s->y[first + i];
        if (yi < 0 || yi >= k)
            return fl_fail(FL_ERANGE, "record %zu: label %d, the model has %d classes", first + i,
                           yi, k);
        int correct = 0;
        s->loss += fl_softmax_xent(1, k, logits + i * k, &yi, NULL, &correct);
        s->hits += (size_t)correct;
        s->out->class_n[yi]++;
        s->out->class_hit[yi] += (size_t)correct;
    }
    return 0;
}

int fl_evaluate(fl_model_t *m, const struct fl_dataset *ds, struct fl_eval *out)
{
    memset(out, 0, sizeof *out);
    out->classes = fl_model_num_classes(m);
    if (ds->dim != fl_model_input_dim(m))
        return fl_fail(FL_EMISMATCH, "data has %zu features, the model takes %zu", ds->dim,
                       fl_model_input_dim(m));
    struct s_score s = {.y = ds->y, .out = out};
    int rc = s_forward_chunks(m, ds, ds->x, ds->n, s_score_chunk, &s);
    if (rc)
        return rc;
    out->n = ds->n;
    out->loss = ds->n ? s.loss / ds->n : 0;
    out->accuracy = ds->n ? (double)s.hits / ds->n : 0;
    return 0;
}

static int s_argmax_chunk(void *arg, size_t first, size_t n, const float *logits, int k)
{
    int32_t *pred = arg;
    for (size_t i = 0; i < n; i++) {
        const float *z = logits + i * k;
        int best = 0;
        for (int j = 1; j < k; j++)
            if (z[j] > z[best])
                best = j;
        pred[first + i] = best;
    }
    return 0;
}

int fl_predict(fl_model_t *m, const float *x, size_t n, int32_t *pred)
{
    return s_forward_chunks(m, NULL, x, n, s_argmax_chunk, pred);
}

void fl_data_stats(const struct fl_dataset *ds, bool global, float *mean, float *std)
{
    size_t d = ds->dim;
    if (global) {
        double s = 0, s2 = 0;
        for (size_t i = 0; i < ds->n * d; i++) {
            s += ds->x[i];
            s2 += (double)ds->x[i] * ds->x[i];
        }
        double cnt = ds->n * d > 0 ? (double)(ds->n * d) : 1.0;
        double mu = s / cnt, var = s2 / cnt - mu * mu;
        mean[0] = (float)mu;
        std[0] = (float)(var > 1e-12 ? sqrt(var) : 1.0);
        return;
    }
    for (size_t j = 0; j < d; j++) {
        double s = 0, s2 = 0;
        for (size_t i = 0; i < ds->n; i++) {
            double v = ds->x[i * d + j];
            s += v;
            s2 += v * v;
        }
        double cnt = (double)(ds->n ? ds->n : 1);
        double mu = s / cnt, var = s2 / cnt - mu * mu;
        mean[j] = (float)mu;
        std[j] = (float)(var > 1e-12 ? sqrt(var) : 1.0);
    }
}
