/* fl_strategy: the strategy table and sample-weighted FedAvg. */
#include "fl_strategy.h"
#include "fl_error.h"

#include <stdlib.h>
#include <string.h>

struct fl_strategy {
    const struct fl_strategy_ops *ops; /* the implementation */
    void *state;                       /* its private state */
    fl_pool_t *pool;                   /* threads for elementwise work, or NULL */
    size_t count;                      /* updates since begin */
};

/* FedAvg: sum_i w_i x_i / sum_i w_i, accumulated in double. */
struct s_fedavg {
    double **acc; /* one accumulator per tensor */
    size_t *len;  /* their lengths */
    size_t n;     /* tensors */
    double total; /* sum of weights */
};

static void s_fedavg_clear(struct s_fedavg *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->acc[i]);
    free(f->acc);
    free(f->len);
    f->acc = NULL;
    f->len = NULL;
    f->n = 0;
    f->total = 0;
}

static int s_fedavg_begin(void *state, const struct fl_tensor *global, size_t n)
{
    struct s_fedavg *f = state;
    s_fedavg_clear(f);
    f->acc = calloc(n ? n : 1, sizeof *f->acc);
    f->len = calloc(n ? n : 1, sizeof *f->len);
    if (!f->acc || !f->len)
        goto out_nomem;
    f->n = n;
    for (size_t i = 0; i < n; i++) {
        f->len[i] = fl_tensor_numel(&global[i]);
        if (!(f->acc[i] = calloc(f->len[i] ? f->len[i] : 1, sizeof(double))))
            goto out_nomem;
    }
    return 0;
out_nomem:
    s_fedavg_clear(f);
    return fl_fail(FL_ENOMEM, "fedavg: out of memory");
}

/* acc[j] += weight * x[j] over one piece of a tensor. */
struct s_axpy {
    double *acc;    /* accumulator */
    const float *x; /* update */
    double weight;  /* its weight */
};

static void s_axpy_task(void *arg, int t, size_t begin, size_t end)
{
    (void)t;
    const struct s_axpy *j = arg;
    for (size_t i = begin; i < end; i++)
        j->acc[i] += j->weight * j->x[i];
}

static int s_fedavg_add(void *state, const struct fl_tensor *update, size_t n, double weight,
                        fl_pool_t *pool)
{
    struct s_fedavg *f = state;
    if (n != f->n || !(weight > 0))
        return fl_fail(FL_EMISMATCH, "fedavg: %zu tensors (expected %zu), weight %g", n, f->n,
                       weight);
    for (size_t i = 0; i < n; i++)
        if (fl_tensor_numel(&update[i]) != f->len[i])
            return fl_fail(FL_EMISMATCH, "fedavg: tensor %zu has the wrong size", i);
    for (size_t i = 0; i < n; i++) {
        struct s_axpy j = {f->acc[i], update[i].data, weight};
        fl_pool_for(pool, f->len[i], 1u << 16, s_axpy_task, &j);
    }
    f->total += weight;
    return 0;
}

static int s_fedavg_finish(void *state, struct fl_tensor *global, size_t n)
{
    struct s_fedavg *f = state;
    if (n != f->n || !(f->total > 0))
        return fl_fail(FL_EINVAL, "fedavg: nothing to average");
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < f->len[i]; j++)
            global[i].data[j] = (float)(f->acc[i][j] / f->total);
    return 0;
}

static void s_fedavg_destroy(void *state)
{
    s_fedavg_clear(state);
    free(state);
}

static const struct fl_strategy_ops s_fedavg_ops = {
    .name = "fedavg",
    .begin = s_fedavg_begin,
    .add = s_fedavg_add,
    .finish = s_fedavg_finish,
    .destroy = s_fedavg_destroy,
};

static const struct fl_strategy_ops *s_table[] = {&s_fedavg_ops};

fl_strategy_t *fl_strategy_new(const char *name)
{
    for (size_t i = 0; i < sizeof s_table / sizeof s_table[0]; i++) {
        if (strcmp(s_table[i]->name, name) != 0)
            continue;
        fl_strategy_t *s = calloc(1, sizeof *s);
        struct s_fedavg *st = calloc(1, sizeof *st);
        if (!s || !st) {
            free(s);
            free(st);
            fl_error_set("out of memory");
            return NULL;
        }
        s->ops = s_table[i];
        s->state = st;
        return s;
    }
    fl_error_set("unknown strategy '%s' (available: fedavg)", name);
    return NULL;
}

void fl_strategy_destroy(fl_strategy_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    (*self_p)->ops->destroy((*self_p)->state);
    free(*self_p);
    *self_p = NULL;
}

void fl_strategy_set_pool(fl_strategy_t *s, fl_pool_t *pool)
{
    s->pool = pool;
}

const char *fl_strategy_name(const fl_strategy_t *s)
{
    return s->ops->name;
}

int fl_strategy_begin(fl_strategy_t *s, const struct fl_tensor *global, size_t n)
{
    s->count = 0;
    return s->ops->begin(s->state, global, n);
}

int fl_strategy_add(fl_strategy_t *s, const struct fl_tensor *update, size_t n, double weight)
{
    int rc = s->ops->add(s->state, update, n, weight, s->pool);
    if (rc == 0)
        s->count++;
    return rc;
}

size_t fl_strategy_count(const fl_strategy_t *s)
{
    return s->count;
}

int fl_strategy_finish(fl_strategy_t *s, struct fl_tensor *global, size_t n)
{
    return s->ops->finish(s->state, global, n);
}
