/* fl_admit: metrics, weight and distance checks of an update. */
#include "fl_admit.h"
#include "fl_error.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

int fl_admit_check_metrics(const struct fl_admit_metrics *m)
{
    if (m->samples == 0)
        return fl_fail(FL_ERANGE, "no training records");
    if (!isfinite(m->train_loss) || m->train_loss < 0)
        return fl_fail(FL_ERANGE, "train_loss %g is not a loss (finite, >= 0)",
                       (double)m->train_loss);
    if (!isfinite(m->eval_loss) || m->eval_loss < 0)
        return fl_fail(FL_ERANGE, "eval_loss %g is not a loss (finite, >= 0)",
                       (double)m->eval_loss);
    if (!(m->eval_accuracy >= 0 && m->eval_accuracy <= 1))
        return fl_fail(FL_ERANGE, "eval_accuracy %g is outside [0, 1]", (double)m->eval_accuracy);
    if (m->eval_samples > m->samples)
        return fl_fail(FL_ERANGE, "eval_samples %llu exceeds the %llu training records",
                       (unsigned long long)m->eval_samples, (unsigned long long)m->samples);
    return 0;
}

uint64_t fl_admit_weight(const struct fl_admit_limits *l, uint64_t claimed, uint64_t declared,
                         uint64_t round_median)
{
    uint64_t w = claimed;
    if (l->max_samples && w > l->max_samples)
        w = l->max_samples;
    if (declared && w > declared)
        w = declared;
    if (l->max_samples_ratio > 0 && round_median) {
        double cap = floor(l->max_samples_ratio * (double)round_median);
        if (cap < 1)
            cap = 1;
        if ((double)w > cap)
            w = (uint64_t)cap;
    }
    return w;
}

static int s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

uint64_t fl_admit_median(uint64_t *counts, size_t n)
{
    if (n == 0)
        return 0;
    qsort(counts, n, sizeof *counts, s_cmp_u64);
    return counts[(n - 1) / 2];
}

/* One tensor's share of the pass: finite values and the squared distance, per task. */
struct s_dist {
    const float *g, *u; /* global and update values */
    double *sq;         /* per task: sum of squared differences */
    bool *bad;          /* per task: a NaN or Inf was seen */
};

static void s_dist_task(void *arg, int t, size_t begin, size_t end)
{
    struct s_dist *d = arg;
    double sq = 0;
    bool ok = true;
    for (size_t i = begin; i < end; i++) {
        ok &= isfinite(d->u[i]) != 0;
        double diff = (double)d->u[i] - (double)d->g[i];
        sq += diff * diff;
    }
    d->sq[t] = sq;
    d->bad[t] = !ok;
}

int fl_admit_distance(const struct fl_tensor *global, const struct fl_tensor *update, size_t n,
                      fl_pool_t *pool, double *distance)
{
    size_t ntasks = (size_t)fl_pool_size(pool);
    double *sq = calloc(ntasks, sizeof *sq);
    bool *bad = calloc(ntasks, sizeof *bad);
    int rc = 0;
    if (!sq || !bad) {
        rc = fl_fail(FL_ENOMEM, "out of memory");
        goto out_free;
    }
    double total = 0;
    for (size_t i = 0; i < n; i++) {
        struct s_dist d = {.g = global[i].data, .u = update[i].data, .sq = sq, .bad = bad};
        int used = fl_pool_for(pool, fl_tensor_numel(&update[i]), 1u << 16, s_dist_task, &d);
        for (int t = 0; t < used; t++) {
            if (bad[t]) {
                rc = fl_fail(FL_ERANGE, "tensor %s holds NaN or Inf", update[i].name);
                goto out_free;
            }
            total += sq[t];
        }
    }
    *distance = sqrt(total);
out_free:
    free(sq);
    free(bad);
    return rc;
}

int fl_admit_check_distance(const struct fl_admit_limits *l, double distance)
{
    if (l->max_update_norm > 0 && !(distance <= l->max_update_norm))
        return fl_fail(FL_ERANGE, "L2 distance %.4g exceeds max_update_norm %g", distance,
                       l->max_update_norm);
    return 0;
}
