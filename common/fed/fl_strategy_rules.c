/* fl_strategy_rules: stages 1 and 2, bounding each update's delta and the rule that turns the
 * round's deltas into one. Every result is the same bits whatever the pool: work is split by
 * coordinate (each coordinate computed whole by one task) or by fixed blocks summed in order.
 *
 * The streaming mean (fl_strategy_fold) keeps, per coordinate, the weighted sum of the deltas
 * as an unevaluated double-double hi + lo, each addition error-free (TwoSum): the sum carries
 * about 106 bits, so the mean rounded to the float adapter is the same whatever the order the
 * updates arrived in, unless the exact sum lies within about n x 2^-106 of its terms' size
 * from a rounding boundary of the result (catastrophic cancellation to below a float's
 * precision), which timing cannot bring about in practice. Each term w x scale x (u - g) is
 * computed from the update alone, so it does not depend on the order either.
 *
 * DP-FedAvg (cfg.dp_noise > 0) is the streaming mean with every weight 1, Gaussian noise of
 * deviation dp_noise x norm_bound added to the sum, and the round's expected count as the
 * denominator (docs/PRIVACY.md); with dp_distributed the noise came with the branches' secure
 * sum instead, which is added whole. */
#include "fl_strategy_impl.h"
#include "fl_dp.h"
#include "fl_error.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ---- deterministic squared distances ---- */

struct s_sq {
    const float *a, *b; /* the two vectors */
    size_t len;         /* their length */
    double *part;       /* per block: its sum */
};

static double s_sq_block(const float *a, const float *b, size_t begin, size_t end)
{
    double sq = 0;
    for (size_t j = begin; j < end; j++) {
        double x = (double)a[j] - (double)b[j];
        sq += x * x;
    }
    return sq;
}

static void s_sq_task(void *arg, int t, size_t begin, size_t end)
{
    struct s_sq *q = arg;
    for (size_t k = begin; k < end; k++) {
        size_t hi = (k + 1) * S_BLOCK < q->len ? (k + 1) * S_BLOCK : q->len;
        q->part[k] = s_sq_block(q->a, q->b, k * S_BLOCK, hi);
    }
}

double fl_strategy_sqdist(fl_pool_t *pool, const float *a, const float *b, size_t len)
{
    size_t nb = (len + S_BLOCK - 1) / S_BLOCK;
    double *part = nb > 16 && fl_pool_size(pool) > 1 ? malloc(nb * sizeof *part) : NULL;
    double sq = 0;
    if (part) {
        struct s_sq q = {a, b, len, part};
        fl_pool_for(pool, nb, 16, s_sq_task, &q);
        for (size_t k = 0; k < nb; k++)
            sq += part[k];
        free(part);
        return sq;
    }
    /* the same blocks, summed in the same order */
    for (size_t k = 0; k < nb; k++)
        sq += s_sq_block(a, b, k * S_BLOCK, (k + 1) * S_BLOCK < len ? (k + 1) * S_BLOCK : len);
    return sq;
}

/* ---- the streaming mean ---- */

struct s_fold {
    double *hi, *lo; /* the tensor's accumulators */
    const float *u;  /* the update's values */
    const float *g;  /* the global's */
    double c;        /* weight x scale */
};

static void s_fold_task(void *arg, int t, size_t begin, size_t end)
{
    const struct s_fold *f = arg;
    for (size_t j = begin; j < end; j++) {
        double x = f->c * ((double)f->u[j] - (double)f->g[j]);
        double s = f->hi[j] + x, bp = s - f->hi[j];
        f->lo[j] += (f->hi[j] - (s - bp)) + (x - bp);
        f->hi[j] = s;
    }
}

void fl_strategy_fold(fl_strategy_t *s, const struct fl_tensor *update, double c)
{
    for (size_t i = 0; i < s->n; i++) {
        size_t o = s->off[i];
        struct s_fold f = {s->hi + o, s->lo + o, update[i].data, s->g + o, c};
        fl_pool_for(s->pool, s->off[i + 1] - o, 1u << 15, s_fold_task, &f);
    }
}

/* ---- stage 1 over held updates ---- */

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sort v[0..n) ascending: insertion sort for the usual handful, qsort beyond. */
static void s_sort(double *v, size_t n)
{
    if (n > 48) {
        qsort(v, n, sizeof *v, s_cmp_double);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        double x = v[i];
        size_t j = i;
        for (; j > 0 && v[j - 1] > x; j--)
            v[j] = v[j - 1];
        v[j] = x;
    }
}

/* Hoare's selection: reorder v[0..n) so that v[k] is the (k+1)-th smallest, v[0..k) are no
 * larger and v(k..n) no smaller. Average O(n); the order it leaves depends on the input's
 * alone. Median-of-three pivots keep both scans inside [l, r]. */
static void s_select(double *v, ptrdiff_t n, ptrdiff_t k)
{
    ptrdiff_t l = 0, r = n - 1;
    while (r > l) {
        if (r - l < 16) {
            s_sort(v + l, (size_t)(r - l + 1));
            return;
        }
        ptrdiff_t m = l + (r - l) / 2, i = l, j = r;
        double t;
#define S_SWAP(a, b) (t = v[a], v[a] = v[b], v[b] = t)
        if (v[m] < v[l])
            S_SWAP(m, l);
        if (v[r] < v[l])
            S_SWAP(r, l);
        if (v[r] < v[m])
            S_SWAP(r, m);
        double p = v[m];
        while (i <= j) {
            while (v[i] < p)
                i++;
            while (v[j] > p)
                j--;
            if (i <= j) {
                S_SWAP(i, j);
                i++;
                j--;
            }
        }
#undef S_SWAP
        /* now v[l..j] <= p, v[i..r] >= p and whatever lies between equals p */
        if (k <= j)
            r = j;
        else if (k >= i)
            l = i;
        else
            return;
    }
}

/* Median of sorted v[0..n): the middle value, or the mean of the two middle ones. */
static double s_median_sorted(const double *v, size_t n)
{
    if (n == 0)
        return 0;
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int fl_strategy_rules_bound(fl_strategy_t *s)
{
    double bound = INFINITY;
    if (s->cfg.bound == FL_BOUND_FIXED) {
        bound = s->cfg.norm_bound;
    } else if (s->cfg.bound == FL_BOUND_MEDIAN) {
        double *v = malloc(s->ne * sizeof *v);
        if (!v)
            return fl_fail(FL_ENOMEM, "strategy: out of memory");
        for (size_t i = 0; i < s->ne; i++)
            v[i] = s->e[i].norm;
        s_sort(v, s->ne);
        bound = s->cfg.norm_bound * s_median_sorted(v, s->ne);
        free(v);
    }
    for (size_t i = 0; i < s->ne; i++)
        s->e[i].scale = s->e[i].norm > bound ? bound / s->e[i].norm : 1;
    return 0;
}

/* ---- stage 2 over held updates ---- */

/* The coordinate-wise rules: each task owns whole coordinates and a scratch row. */
/* The coordinate-wise rules go through the coordinates S_CBLOCK at a time, reading each held
 * update's block in one sweep: reading one coordinate of every update in turn would hit the
 * same cache set in every buffer (they are all page-aligned) and run at memory latency. */
#define S_CBLOCK 256

struct s_coord {
    const fl_strategy_t *s;              /* updates (sorted by id), global, configuration */
    double *d;                           /* out: the aggregate delta */
    double *scratch;                     /* per task: S_CBLOCK x ne doubles */
    size_t trim;                         /* trimmed mean: values cut at each end */
    double wsum;                         /* mean: the total weight of the used updates */
    const struct fl_strategy_entry *one; /* Krum: the chosen update's delta, as it is */
};

static inline double s_delta(const struct fl_strategy_entry *e, const float *g, size_t j)
{
    return e->scale * ((double)e->u[j] - (double)g[j]);
}

/* The weighted mean: per coordinate, the updates' terms added in id order. */
static void s_mean_task(void *arg, int t, size_t begin, size_t end)
{
    const struct s_coord *a = arg;
    const fl_strategy_t *s = a->s;
    for (size_t j = begin; j < end && a->one; j++)
        a->d[j] = s_delta(a->one, s->g, j);
    for (size_t b0 = begin; b0 < end && !a->one; b0 += S_CBLOCK) {
        size_t b1 = end - b0 < S_CBLOCK ? end : b0 + S_CBLOCK;
        for (size_t j = b0; j < b1; j++)
            a->d[j] = 0;
        for (size_t k = 0; k < s->ne; k++) {
            const struct fl_strategy_entry *e = &s->e[k];
            for (size_t j = b0; j < b1 && e->used; j++)
                a->d[j] += e->weight * s_delta(e, s->g, j);
        }
        for (size_t j = b0; j < b1; j++)
            a->d[j] /= a->wsum;
    }
}

/* One coordinate's median or trimmed mean from its n values v (reordered). */
static double s_robust(const struct s_coord *a, double *v, size_t n)
{
    if (a->s->cfg.rule == FL_RULE_MEDIAN) {
        /* the middle value, or the mean of the lower middle and the least above it */
        s_select(v, (ptrdiff_t)n, (ptrdiff_t)((n - 1) / 2));
        double lo = v[(n - 1) / 2];
        if (n % 2)
            return lo;
        double hi = v[n / 2];
        for (size_t k = n / 2 + 1; k < n; k++)
            hi = v[k] < hi ? v[k] : hi;
        return 0.5 * (lo + hi);
    }
    /* the trim smallest to the front, then the trim largest to the back */
    size_t cut = a->trim, keep = n - 2 * cut;
    if (cut) {
        s_select(v, (ptrdiff_t)n, (ptrdiff_t)cut);
        s_select(v + cut, (ptrdiff_t)(n - cut), (ptrdiff_t)(keep - 1));
    }
    double acc = 0;
    for (size_t k = cut; k < n - cut; k++)
        acc += v[k];
    return acc / (double)keep;
}

static void s_sorted_task(void *arg, int t, size_t begin, size_t end)
{
    const struct s_coord *a = arg;
    const fl_strategy_t *s = a->s;
    size_t n = s->ne;
    double *v = a->scratch + (size_t)t * S_CBLOCK * n; /* coordinate-major: v[j * n + k] */
    for (size_t b0 = begin; b0 < end; b0 += S_CBLOCK) {
        size_t b1 = end - b0 < S_CBLOCK ? end : b0 + S_CBLOCK;
        for (size_t k = 0; k < n; k++)
            for (size_t j = b0; j < b1; j++)
                v[(j - b0) * n + k] = s_delta(&s->e[k], s->g, j);
        for (size_t j = b0; j < b1; j++)
            a->d[j] = s_robust(a, v + (j - b0) * n, n);
    }
}

/* Krum: squared distances between the bounded deltas, block by block of coordinates so that
 * a block of every delta stays in cache while all pairs use it. Each pair's sum runs over the
 * blocks in order, whatever task computes it. */
#define S_KBLOCK 1024

struct s_pairs {
    const fl_strategy_t *s; /* updates */
    size_t *pa, *pb;        /* pair k is (pa[k], pb[k]) */
    double *dist;           /* per pair: the sum so far */
    double *blk;            /* ne rows of S_KBLOCK: the block's deltas */
    size_t b0, len;         /* the block's first coordinate and length */
};

static void s_pair_fill(void *arg, int t, size_t begin, size_t end)
{
    const struct s_pairs *p = arg;
    for (size_t k = begin; k < end; k++)
        for (size_t j = 0; j < p->len; j++)
            p->blk[k * S_KBLOCK + j] = s_delta(&p->s->e[k], p->s->g, p->b0 + j);
}

static void s_pair_task(void *arg, int t, size_t begin, size_t end)
{
    const struct s_pairs *p = arg;
    for (size_t k = begin; k < end; k++) {
        const double *a = p->blk + p->pa[k] * S_KBLOCK, *b = p->blk + p->pb[k] * S_KBLOCK;
        double q[4] = {0, 0, 0, 0}; /* four lanes, added in a fixed order */
        size_t j = 0;
        for (; j + 4 <= p->len; j += 4)
            for (int l = 0; l < 4; l++)
                q[l] += (a[j + l] - b[j + l]) * (a[j + l] - b[j + l]);
        for (; j < p->len; j++)
            q[0] += (a[j] - b[j]) * (a[j] - b[j]);
        p->dist[k] += (q[0] + q[1]) + (q[2] + q[3]);
    }
}

/* dist[a * n + b]: the squared distance between the bounded deltas of a and b. */
static int s_pair_dists(fl_strategy_t *s, double *dist)
{
    size_t n = s->ne, npairs = n * (n - 1) / 2, k = 0;
    size_t *pa = malloc(npairs * sizeof *pa), *pb = malloc(npairs * sizeof *pb);
    double *acc = calloc(npairs, sizeof *acc), *blk = malloc(n * S_KBLOCK * sizeof *blk);
    int rc = 0;
    if (!pa || !pb || !acc || !blk) {
        rc = fl_fail(FL_ENOMEM, "strategy: out of memory for krum");
        goto out_free;
    }
    for (size_t a = 0; a < n; a++)
        for (size_t b = a + 1; b < n; b++) {
            pa[k] = a;
            pb[k++] = b;
        }
    struct s_pairs p = {s, pa, pb, acc, blk, 0, 0};
    for (p.b0 = 0; p.b0 < s->numel; p.b0 += S_KBLOCK) {
        p.len = s->numel - p.b0 < S_KBLOCK ? s->numel - p.b0 : S_KBLOCK;
        fl_pool_for(s->pool, n, 8, s_pair_fill, &p);
        fl_pool_for(s->pool, npairs, 64, s_pair_task, &p);
    }
    for (k = 0; k < npairs; k++) {
        dist[pa[k] * n + pb[k]] = acc[k];
        dist[pb[k] * n + pa[k]] = acc[k];
    }
out_free:
    free(pa);
    free(pb);
    free(acc);
    free(blk);
    return rc;
}

/* Each update's Krum score: the sum of its n - f - 2 smallest squared distances to the others
 * (Blanchard et al., NeurIPS 2017); then mark the best one (Krum) or the m best (multi-Krum),
 * ties to the smaller id. */
static int s_krum(fl_strategy_t *s)
{
    size_t n = s->ne, f = s->cfg.krum_f;
    if (n < 2 * f + 3)
        return fl_fail(FL_EINVAL,
                       "strategy: %s with krum-f %zu needs at least %zu updates, the round has %zu",
                       s->cfg.rule == FL_RULE_KRUM ? "krum" : "multi-krum", f, 2 * f + 3, n);
    double *dist = calloc(n * n, sizeof *dist), *row = malloc(n * sizeof *row);
    size_t *order = malloc(n * sizeof *order);
    int rc = 0;
    if (!dist || !row || !order) {
        rc = fl_fail(FL_ENOMEM, "strategy: out of memory for krum");
        goto out_free;
    }
    if ((rc = s_pair_dists(s, dist)) != 0)
        goto out_free;
    for (size_t a = 0; a < n; a++) {
        size_t r = 0;
        for (size_t b = 0; b < n; b++)
            if (b != a)
                row[r++] = dist[a * n + b];
        s_sort(row, r);
        double score = 0;
        for (size_t i = 0; i < n - f - 2; i++)
            score += row[i];
        s->e[a].score = score;
        order[a] = a;
    }
    /* stable selection by score: insertion sort of the indices keeps ties in id order */
    for (size_t i = 1; i < n; i++) {
        size_t x = order[i], j = i;
        for (; j > 0 && s->e[order[j - 1]].score > s->e[x].score; j--)
            order[j] = order[j - 1];
        order[j] = x;
    }
    size_t m = 1;
    if (s->cfg.rule == FL_RULE_MULTI_KRUM)
        m = s->cfg.krum_m && s->cfg.krum_m < n - f ? s->cfg.krum_m : n - f;
    for (size_t i = 0; i < n; i++)
        s->e[order[i]].used = i < m;
out_free:
    free(dist);
    free(row);
    free(order);
    return rc;
}

int fl_strategy_rules_held(fl_strategy_t *s, double *d)
{
    for (size_t i = 0; i < s->ne; i++) {
        s->e[i].used = true;
        s->e[i].score = 0;
    }
    int rc = fl_strategy_rules_bound(s);
    if (rc)
        return rc;
    struct s_coord a = {.s = s, .d = d};
    switch (s->cfg.rule) {
    case FL_RULE_KRUM:
    case FL_RULE_MULTI_KRUM:
        if ((rc = s_krum(s)) != 0)
            return rc;
        for (size_t k = 0; k < s->ne && s->cfg.rule == FL_RULE_KRUM; k++)
            if (s->e[k].used)
                a.one = &s->e[k];
        /* then the chosen one, or the weighted mean of the chosen: */
        /* fall through */
    case FL_RULE_MEAN:
        for (size_t k = 0; k < s->ne; k++)
            if (s->e[k].used)
                a.wsum += s->e[k].weight;
        fl_pool_for(s->pool, s->numel, 1u << 12, s_mean_task, &a);
        return 0;
    case FL_RULE_MEDIAN:
    case FL_RULE_TRIMMED_MEAN:
        /* floor(beta n), with room for beta n's rounding (0.29 x 100 is 28.999...) */
        a.trim = s->cfg.rule == FL_RULE_TRIMMED_MEAN
                     ? (size_t)floor(s->cfg.trim_beta * (double)s->ne + 1e-9)
                     : 0;
        if (2 * a.trim >= s->ne) /* beta just under 0.5: keep the middle one */
            a.trim = (s->ne - 1) / 2;
        if (!(a.scratch =
                  malloc((size_t)fl_pool_size(s->pool) * S_CBLOCK * s->ne * sizeof(double))))
            return fl_fail(FL_ENOMEM, "strategy: out of memory");
        fl_pool_for(s->pool, s->numel, 1u << 10, s_sorted_task, &a);
        free(a.scratch);
        return 0;
    }
    return fl_fail(FL_EINVAL, "strategy: unknown rule");
}

/* ---- DP-FedAvg ---- */

int fl_strategy_dp_check(const struct fl_strategy_config *c)
{
    static const char *const rules[] = {"mean", "median", "trimmed-mean", "krum", "multi-krum"};
    if (!(isfinite(c->dp_noise) && c->dp_noise >= 0 && c->dp_noise <= 1e6))
        return fl_fail(FL_EINVAL, "strategy: dp-noise %g is outside [0, 1e6]", c->dp_noise);
    if (c->dp_noise == 0)
        return c->dp_distributed ? fl_fail(FL_EINVAL, "strategy: dp-distributed without dp-noise")
                                 : 0;
    if (c->rule != FL_RULE_MEAN)
        return fl_fail(FL_EINVAL,
                       "strategy: dp-noise (DP-FedAvg) needs the mean, not rule %s: the noise is "
                       "calibrated to one update's share of a sum",
                       (unsigned)c->rule <= FL_RULE_MULTI_KRUM ? rules[c->rule] : "?");
    if (c->bound != FL_BOUND_FIXED)
        return fl_fail(FL_EINVAL,
                       "strategy: dp-noise (DP-FedAvg) needs a fixed bound on each update's change "
                       "(the clip), not %s",
                       c->bound == FL_BOUND_MEDIAN
                           ? "a multiple of the round's median norm, which other updates move"
                           : "none");
    return 0;
}

int fl_strategy_dp_mean(fl_strategy_t *s, double *d)
{
    if (s->expected == 0)
        return fl_fail(FL_EINVAL, "strategy: DP-FedAvg needs the round's expected count of "
                                  "updates (fl_strategy_set_expected)");
    if (s->ne > s->expected)
        return fl_fail(FL_EINVAL, "strategy: %zu updates, more than the %u expected", s->ne,
                       s->expected);
    for (size_t j = 0; j < s->numel; j++)
        d[j] = s->hi[j] + s->lo[j];
    if (!s->cfg.dp_distributed) /* else the branches' shares are in the sum */
        fl_dp_add_noise(d, s->numel, s->cfg.dp_noise * s->cfg.norm_bound);
    for (size_t j = 0; j < s->numel; j++)
        d[j] /= s->expected;
    return 0;
}
