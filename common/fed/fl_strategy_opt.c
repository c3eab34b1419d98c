/* fl_strategy_opt: stage 3, the server optimiser on the round's aggregate delta d, and its
 * state. With x the global, per coordinate (Reddi et al., "Adaptive Federated Optimization",
 * ICLR 2021, Algorithm 2, without bias correction; FedAvgM: Hsu et al. 2019):
 *
 *   none     x += eta d
 *   avgm     m = beta1 m + d;                   x += eta m
 *   adagrad  m = beta1 m + (1 - beta1) d;  v = v + d^2
 *   adam     m = beta1 m + (1 - beta1) d;  v = beta2 v + (1 - beta2) d^2
 *   yogi     m = beta1 m + (1 - beta1) d;  v = v - (1 - beta2) d^2 sign(v - d^2)
 *            and for the three:            x += eta m / (sqrt(v) + tau)
 *
 * m starts at 0 and v at tau^2. eta is the configured server_lr times
 * server_lr_decay^max(0, t - server_lr_decay_after), t the rounds finished before this one
 * (the state's steps, saved and restored with m and v): the full step for the first rounds,
 * then a per-round exponential decay (server_lr_decay 1: constant). Computed in double from the
 * float state; the new m and v are kept (and saved) as floats, the step uses them before that
 * rounding. */
#include "fl_strategy_impl.h"
#include "fl_error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

bool fl_strategy_opt_has_m(enum fl_server_opt opt)
{
    return opt != FL_SERVER_OPT_NONE;
}

bool fl_strategy_opt_has_v(enum fl_server_opt opt)
{
    return opt == FL_SERVER_OPT_ADAGRAD || opt == FL_SERVER_OPT_ADAM || opt == FL_SERVER_OPT_YOGI;
}

static void s_free_tensors(struct fl_tensor **t, size_t n)
{
    if (!*t)
        return;
    for (size_t i = 0; i < n; i++)
        fl_tensor_free(&(*t)[i]);
    free(*t);
    *t = NULL;
}

void fl_strategy_opt_free(fl_strategy_t *s)
{
    s_free_tensors(&s->m, s->nstate);
    s_free_tensors(&s->v, s->nstate);
    s->nstate = 0;
}

/* n tensors shaped like the global's, every value `fill`. */
static int s_new_like(const struct fl_tensor *global, size_t n, float fill, struct fl_tensor **out)
{
    struct fl_tensor *t = calloc(n ? n : 1, sizeof *t);
    if (!t)
        return FL_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (fl_tensor_init(&t[i], global[i].name, global[i].ndim, global[i].shape) != 0) {
            s_free_tensors(&t, n);
            return FL_ENOMEM;
        }
        for (size_t j = 0, k = fl_tensor_numel(&t[i]); j < k; j++)
            t[i].data[j] = fill;
    }
    *out = t;
    return 0;
}

int fl_strategy_opt_prepare(fl_strategy_t *s)
{
    enum fl_server_opt opt = s->cfg.opt;
    if (!fl_strategy_opt_has_m(opt))
        return 0;
    if (s->nstate == 0) {
        float tau2 = (float)(s->cfg.tau * s->cfg.tau);
        if (s_new_like(s->global, s->n, 0.0f, &s->m) != 0 ||
            (fl_strategy_opt_has_v(opt) && s_new_like(s->global, s->n, tau2, &s->v) != 0)) {
            s_free_tensors(&s->m, s->n);
            return fl_fail(FL_ENOMEM, "strategy: out of memory for the optimiser's state");
        }
        s->nstate = s->n;
        return 0;
    }
    /* a restored state: it must fit the global, tensor by tensor */
    if (s->nstate != s->n)
        return fl_fail(FL_EMISMATCH,
                       "strategy: the optimiser's state has %zu tensors, the "
                       "global adapter %zu",
                       s->nstate, s->n);
    for (size_t i = 0; i < s->n; i++) {
        const struct fl_tensor *g = &s->global[i];
        if (strcmp(s->m[i].name, g->name) != 0 ||
            fl_tensor_numel(&s->m[i]) != s->off[i + 1] - s->off[i]) {
            char a[96], b[96];
            return fl_fail(FL_EMISMATCH,
                           "strategy: the optimiser's state tensor %zu is %s with %zu values, "
                           "the global's %s with %zu",
                           i, fl_log_str(s->m[i].name, a, sizeof a), fl_tensor_numel(&s->m[i]),
                           fl_log_str(g->name, b, sizeof b), s->off[i + 1] - s->off[i]);
        }
    }
    /* take the global's shapes (a state read from a file knows only the sizes) */
    for (size_t i = 0; i < s->n; i++) {
        s->m[i].ndim = s->global[i].ndim;
        memcpy(s->m[i].shape, s->global[i].shape, sizeof s->m[i].shape);
        if (s->v) {
            s->v[i].ndim = s->global[i].ndim;
            memcpy(s->v[i].shape, s->global[i].shape, sizeof s->v[i].shape);
        }
    }
    return 0;
}

/* One coordinate's step: from x, m, v, d to the new x (as float), m and v (double). */
static inline float s_step(const struct fl_strategy_config *c, double eta, float x, float m,
                           float v, double d, double *mn, double *vn)
{
    double b1 = c->beta1, b2 = c->beta2, dd = d * d;
    switch (c->opt) {
    case FL_SERVER_OPT_NONE:
        return (float)((double)x + eta * d);
    case FL_SERVER_OPT_AVGM:
        *mn = b1 * (double)m + d;
        return (float)((double)x + eta * *mn);
    case FL_SERVER_OPT_ADAGRAD:
        *vn = (double)v + dd;
        break;
    case FL_SERVER_OPT_ADAM:
        *vn = b2 * (double)v + (1 - b2) * dd;
        break;
    case FL_SERVER_OPT_YOGI: {
        double diff = (double)v - dd;
        *vn = (double)v - (1 - b2) * dd * (double)((diff > 0) - (diff < 0));
        break;
    }
    }
    *mn = b1 * (double)m + (1 - b1) * d;
    return (float)((double)x + eta * *mn / (sqrt(*vn) + c->tau));
}

struct s_opt {
    const fl_strategy_t *s; /* configuration, global, state */
    size_t i;               /* the tensor */
    const double *d;        /* its aggregate delta */
    double eta;             /* this round's server learning rate */
    float *out;             /* write: the caller's global tensor; check: NULL */
    bool *bad;              /* check: per task, a value would not be finite */
};

static void s_opt_task(void *arg, int t, size_t begin, size_t end)
{
    const struct s_opt *a = arg;
    const fl_strategy_t *s = a->s;
    const float *g = s->g + s->off[a->i];
    float *m = s->m ? s->m[a->i].data : NULL, *v = s->v ? s->v[a->i].data : NULL;
    bool ok = true;
    for (size_t j = begin; j < end; j++) {
        double mn = 0, vn = 0;
        float x = s_step(&s->cfg, a->eta, g[j], m ? m[j] : 0, v ? v[j] : 0, a->d[j], &mn, &vn);
        if (!a->out) {
            ok &= isfinite(x) && isfinite((float)mn) && isfinite((float)vn);
            continue;
        }
        a->out[j] = x;
        if (m)
            m[j] = (float)mn;
        if (v)
            v[j] = (float)vn;
    }
    if (!a->out)
        a->bad[t] = !ok;
}

double fl_strategy_server_lr(const fl_strategy_t *s)
{
    const struct fl_strategy_config *c = &s->cfg;
    if (c->server_lr_decay == 1 || s->steps <= c->server_lr_decay_after)
        return c->server_lr;
    return c->server_lr * pow(c->server_lr_decay, (double)(s->steps - c->server_lr_decay_after));
}

int fl_strategy_opt_step(fl_strategy_t *s, const double *d, struct fl_tensor *global)
{
    bool bad[64];
    double eta = fl_strategy_server_lr(s);
    int size = fl_pool_size(s->pool);
    fl_pool_t *pool = size <= 64 ? s->pool : NULL; /* a wider pool checks on the caller */
    /* first pass: every new value finite, or nothing changes */
    for (size_t i = 0; i < s->n; i++) {
        struct s_opt a = {s, i, d + s->off[i], eta, NULL, bad};
        int tasks = fl_pool_for(pool, s->off[i + 1] - s->off[i], 1u << 14, s_opt_task, &a);
        for (int t = 0; t < tasks; t++)
            if (bad[t]) {
                char name[96];
                return fl_fail(FL_ERANGE,
                               "strategy: the step would make tensor %s non-finite (server-lr "
                               "%g too large for these updates?)",
                               fl_log_str(global[i].name, name, sizeof name), eta);
            }
    }
    for (size_t i = 0; i < s->n; i++) {
        struct s_opt a = {s, i, d + s->off[i], eta, global[i].data, NULL};
        fl_pool_for(s->pool, s->off[i + 1] - s->off[i], 1u << 14, s_opt_task, &a);
    }
    s->steps++;
    return 0;
}

void fl_strategy_get_state(const fl_strategy_t *s, struct fl_strategy_state *out)
{
    out->steps = s->steps;
    out->n = s->nstate;
    out->m = s->m;
    out->v = s->v;
}

/* Copy n tensors, refusing non-finite values (and negative ones for a second moment). */
static int s_copy_checked(const struct fl_tensor *src, size_t n, bool second,
                          struct fl_tensor **out)
{
    struct fl_tensor *t = calloc(n, sizeof *t);
    if (!t)
        return fl_fail(FL_ENOMEM, "strategy: out of memory for the optimiser's state");
    for (size_t i = 0; i < n; i++) {
        if (fl_tensor_copy(&t[i], &src[i]) != 0) {
            s_free_tensors(&t, n);
            return fl_fail(FL_ENOMEM, "strategy: out of memory for the optimiser's state");
        }
        for (size_t j = 0, k = fl_tensor_numel(&t[i]); j < k; j++)
            if (!isfinite(t[i].data[j]) || (second && t[i].data[j] < 0)) {
                char name[96];
                s_free_tensors(&t, n);
                return fl_fail(FL_EINVAL, "strategy: the state's %s moment of %s holds %s at %zu",
                               second ? "second" : "first",
                               fl_log_str(src[i].name, name, sizeof name),
                               second ? "a negative or non-finite value" : "a non-finite value", j);
            }
    }
    *out = t;
    return 0;
}

int fl_strategy_set_state(fl_strategy_t *s, const struct fl_strategy_state *st)
{
    if (s->open)
        return fl_fail(FL_EINVAL, "strategy: the optimiser's state cannot change during a round");
    enum fl_server_opt opt = s->cfg.opt;
    struct fl_tensor *m = NULL, *v = NULL;
    size_t n = fl_strategy_opt_has_m(opt) ? st->n : 0;
    if (n && (!st->m || (fl_strategy_opt_has_v(opt) && !st->v)))
        return fl_fail(FL_EMISMATCH,
                       "strategy: the state lacks the %s moments optimiser %s "
                       "keeps",
                       !st->m ? "first" : "second", s->cfg.name);
    for (size_t i = 0; i < n && st->v && fl_strategy_opt_has_v(opt); i++)
        if (fl_tensor_numel(&st->m[i]) != fl_tensor_numel(&st->v[i]))
            return fl_fail(FL_EMISMATCH,
                           "strategy: the state's moments of tensor %zu differ in "
                           "size",
                           i);
    int rc;
    if (n && (rc = s_copy_checked(st->m, n, false, &m)) != 0)
        return rc;
    if (n && fl_strategy_opt_has_v(opt) && (rc = s_copy_checked(st->v, n, true, &v)) != 0) {
        s_free_tensors(&m, n);
        return rc;
    }
    fl_strategy_opt_free(s);
    s->m = m;
    s->v = v;
    s->nstate = n;
    s->steps = st->steps;
    return 0;
}
