/* fl_partition: IID shards from one shuffled permutation; Dirichlet shards from per-class
 * proportions drawn until every shard is large enough. */
#include "fl_partition.h"
#include "fl_data.h"
#include "fl_error.h"
#include "fl_mem.h"
#include "fl_rng.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Attempts at a Dirichlet draw that gives every shard min_size records. */
#define S_DIRICHLET_TRIES 1000

static int s_cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

void fl_partition_free(size_t **shard_idx, int nclients)
{
    if (!shard_idx)
        return;
    for (int c = 0; c < nclients; c++) {
        free(shard_idx[c]);
        shard_idx[c] = NULL;
    }
}

/* IID: one shuffled permutation cut into near-equal consecutive pieces. */
static int s_partition_iid(const struct fl_dataset *ds, int nclients, struct fl_rng *rng,
                           size_t **shard_idx, size_t *shard_n)
{
    size_t *perm = fl_malloc_array(ds->n, sizeof *perm);
    if (!perm)
        return fl_fail(FL_ENOMEM, "partition: out of memory");
    for (size_t i = 0; i < ds->n; i++)
        perm[i] = i;
    fl_rng_shuffle(rng, perm, ds->n);
    size_t base = ds->n / (size_t)nclients, extra = ds->n % (size_t)nclients, at = 0;
    for (int c = 0; c < nclients; c++) {
        shard_n[c] = base + ((size_t)c < extra);
        if (!(shard_idx[c] = fl_malloc_array(shard_n[c], sizeof(size_t)))) {
            free(perm);
            return fl_fail(FL_ENOMEM, "partition: out of memory");
        }
        memcpy(shard_idx[c], perm + at, shard_n[c] * sizeof(size_t));
        at += shard_n[c];
    }
    free(perm);
    return 0;
}

/* Split cnt records over nclients by one Dirichlet(alpha) draw; adds to take[] and total[]. */
static void s_dirichlet_counts(struct fl_rng *rng, double alpha, int nclients, size_t cnt,
                               double *p, size_t *take, size_t *total)
{
    double sum = 0;
    for (int k = 0; k < nclients; k++)
        sum += p[k] = fl_rng_gamma(rng, alpha);
    if (!(sum > 0)) { /* every draw underflowed: all mass on one client */
        memset(p, 0, (size_t)nclients * sizeof *p);
        p[fl_rng_below(rng, (uint64_t)nclients)] = sum = 1;
    }
    double cum = 0;
    size_t prev = 0;
    for (int k = 0; k < nclients; k++) {
        cum += p[k];
        size_t cut = k == nclients - 1 ? cnt : (size_t)llround(cum / sum * (double)cnt);
        if (cut > cnt)
            cut = cnt;
        if (cut < prev)
            cut = prev;
        take[k] = cut - prev;
        total[k] += take[k];
        prev = cut;
    }
}

/* Dirichlet label skew: per-class proportions over clients, redrawn until every client has
 * min_size records. */
static int s_partition_dirichlet(const struct fl_dataset *ds, int nclients, double alpha,
                                 struct fl_rng *rng, size_t min_size, size_t **shard_idx,
                                 size_t *shard_n)
{
    size_t *order = NULL, *start = NULL, *take = NULL, *fill = NULL;
    double *p = NULL;
    size_t k = (size_t)ds->num_classes, nc = (size_t)nclients;
    int rc = fl_dataset_by_class(ds, &order, &start);
    if (rc)
        return rc;
    take = k && nc > SIZE_MAX / k ? NULL : fl_malloc_array(k * nc, sizeof *take);
    fill = fl_malloc_array(nc, sizeof *fill);
    p = fl_malloc_array(nc, sizeof *p);
    if (!take || !fill || !p) {
        rc = fl_fail(FL_ENOMEM, "partition: out of memory");
        goto out_free;
    }
    for (size_t c = 0; c < k; c++)
        fl_rng_shuffle(rng, order + start[c], start[c + 1] - start[c]);
    bool ok = false;
    for (int t = 0; t < S_DIRICHLET_TRIES && !ok; t++) {
        memset(shard_n, 0, nc * sizeof *shard_n);
        for (size_t c = 0; c < k; c++)
            s_dirichlet_counts(rng, alpha, nclients, start[c + 1] - start[c], p, take + c * nc,
                               shard_n);
        ok = true;
        for (size_t j = 0; j < nc; j++)
            ok = ok && shard_n[j] >= min_size;
    }
    if (!ok) {
        rc = fl_fail(FL_ERANGE,
                     "partition: min_size %zu is too large for %zu records over %d clients "
                     "(%zu each on average) with alpha %g: no draw in %d tries fits",
                     min_size, ds->n, nclients, ds->n / nc, alpha, S_DIRICHLET_TRIES);
        goto out_free;
    }
    for (size_t j = 0; j < nc; j++) {
        fill[j] = 0;
        if (!(shard_idx[j] = fl_malloc_array(shard_n[j], sizeof(size_t)))) {
            rc = fl_fail(FL_ENOMEM, "partition: out of memory");
            goto out_free;
        }
    }
    for (size_t c = 0; c < k; c++) {
        size_t at = start[c];
        for (size_t j = 0; j < nc; j++)
            for (size_t i = 0; i < take[c * nc + j]; i++)
                shard_idx[j][fill[j]++] = order[at++];
    }
out_free:
    free(order);
    free(start);
    free(take);
    free(fill);
    free(p);
    return rc;
}

int fl_partition(const struct fl_dataset *ds, int nclients, double alpha, uint64_t seed,
                 size_t min_size, size_t **shard_idx, size_t *shard_n)
{
    struct fl_rng rng;
    if (nclients < 1)
        return fl_fail(FL_EINVAL, "partition: %d clients (need at least 1)", nclients);
    for (int c = 0; c < nclients; c++) {
        shard_idx[c] = NULL;
        shard_n[c] = 0;
    }
    if (min_size > ds->n / (size_t)nclients)
        return fl_fail(FL_ERANGE,
                       "partition: min_size %zu is too large for %zu records over %d clients "
                       "(%zu each)",
                       min_size, ds->n, nclients, ds->n / (size_t)nclients);
    fl_rng_seed(&rng, seed);
    int rc = alpha > 0
                 ? s_partition_dirichlet(ds, nclients, alpha, &rng, min_size, shard_idx, shard_n)
                 : s_partition_iid(ds, nclients, &rng, shard_idx, shard_n);
    if (rc) {
        fl_partition_free(shard_idx, nclients);
        memset(shard_n, 0, (size_t)nclients * sizeof *shard_n);
        return rc;
    }
    for (int c = 0; c < nclients; c++)
        qsort(shard_idx[c], shard_n[c], sizeof(size_t), s_cmp_size);
    return 0;
}
