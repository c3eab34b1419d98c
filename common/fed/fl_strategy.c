/* fl_strategy: the strategy's configuration (names, defaults, checks) and the round's life
 * cycle: begin, add (stream or hold), finish (bound, rule, optimiser) and the verdicts.
 * The stages themselves are in fl_strategy_rules.c and fl_strategy_opt.c.
 *
 * Defaults by name (fl_strategy_config_default; docs/STRATEGIES.md quotes this table):
 *
 *   name          rule          optimiser  eta    other
 *   fedavg        mean          none       1
 *   fedprox       mean          none       1      prox_mu 0.01 (applied by the branches)
 *   fedavgm       mean          avgm       1      beta1 (momentum) 0.9       Hsu et al. 2019
 *   fedadagrad    mean          adagrad    0.1    beta1 0.9, tau 1e-3        Reddi et al. 2021,
 *   fedadam       mean          adam       0.01   beta1 0.9, beta2 0.99,     Algorithm 2, no
 *   fedyogi       mean          yogi       0.01     tau 1e-3                 bias correction
 *   median        median        none       1
 *   trimmed-mean  trimmed-mean  none       1      trim_beta 0.1
 *   krum          krum          none       1      krum_f 1
 *   multi-krum    multi-krum    none       1      krum_f 1, krum_m 0 (n - f)
 *
 * Every name also carries the others' defaults (trim_beta 0.1, krum_f 1, krum_m 0, beta1 0.9,
 * beta2 0.99, tau 1e-3, bound none with norm_bound 0: a bound needs its value; a constant eta:
 * server_lr_decay 1, server_lr_decay_after 0), so that an
 * option may switch the rule or the optimiser alone. The adaptive optimisers' first step moves
 * each coordinate by about eta x sign(delta) (Adam, Yogi: m = 0.1 delta, sqrt(v) ~ 0.1 |delta|)
 * or 0.1 eta x sign(delta) (Adagrad: sqrt(v) ~ |delta|), whatever the size of delta: eta 0.01
 * for Adam and Yogi and 0.1 for Adagrad give a first step of 0.01 per coordinate, the order of
 * a round's client delta on fedtl's small LoRA and head adapters (Flower's 0.1 for FedAdam
 * would move every coordinate ten times further than a round of local training does).
 * Measured with scripts/simulate.sh (cnn-small LoRA, 4 branches, 8 rounds, 1 epoch, 2,000
 * records, seed 1; server accuracy after rounds 1..8): Adam and Yogi at 0.1 swing (Adam
 * 0.38 0.58 0.37 0.40 0.54 0.62 0.78 0.60), at 0.01 climb steadily (Adam to 0.63, Yogi to
 * 0.65), at 0.001 hardly move (Adam 0.25 to 0.35); Adagrad climbs steadily at 0.1 (0.33 to
 * 0.72) and hardly moves at 0.01 (0.25 to 0.39). FedAvg reached 0.75 and FedAvgM 0.81. */
#include "fl_strategy_impl.h"
#include "fl_error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- configuration ---- */

struct s_named {
    const char *name;       /* as configured */
    enum fl_rule rule;      /* its rule */
    enum fl_server_opt opt; /* its optimiser */
    double server_lr;       /* its eta */
    double prox_mu;         /* its FedProx mu */
};

static const struct s_named s_names[] = {
    {"fedavg", FL_RULE_MEAN, FL_SERVER_OPT_NONE, 1.0, 0},
    {"fedavgm", FL_RULE_MEAN, FL_SERVER_OPT_AVGM, 1.0, 0},
    {"fedadagrad", FL_RULE_MEAN, FL_SERVER_OPT_ADAGRAD, 0.1, 0},
    {"fedadam", FL_RULE_MEAN, FL_SERVER_OPT_ADAM, 0.01, 0},
    {"fedyogi", FL_RULE_MEAN, FL_SERVER_OPT_YOGI, 0.01, 0},
    {"fedprox", FL_RULE_MEAN, FL_SERVER_OPT_NONE, 1.0, 0.01},
    {"median", FL_RULE_MEDIAN, FL_SERVER_OPT_NONE, 1.0, 0},
    {"trimmed-mean", FL_RULE_TRIMMED_MEAN, FL_SERVER_OPT_NONE, 1.0, 0},
    {"krum", FL_RULE_KRUM, FL_SERVER_OPT_NONE, 1.0, 0},
    {"multi-krum", FL_RULE_MULTI_KRUM, FL_SERVER_OPT_NONE, 1.0, 0},
};
#define S_NNAMES (sizeof s_names / sizeof s_names[0])

static const char *s_rule_names[] = {"mean", "median", "trimmed-mean", "krum", "multi-krum"};
static const char *s_opt_names[] = {"none", "avgm", "adagrad", "adam", "yogi"};
static const char *s_bound_names[] = {"none", "fixed", "median"};

int fl_strategy_config_default(struct fl_strategy_config *c, const char *name)
{
    for (size_t i = 0; name && i < S_NNAMES; i++) {
        if (strcmp(s_names[i].name, name) != 0)
            continue;
        memset(c, 0, sizeof *c);
        snprintf(c->name, sizeof c->name, "%s", name);
        c->rule = s_names[i].rule;
        c->opt = s_names[i].opt;
        c->bound = FL_BOUND_NONE;
        c->norm_bound = 0;
        c->trim_beta = 0.1;
        c->krum_f = 1;
        c->krum_m = 0;
        c->server_lr = s_names[i].server_lr;
        c->server_lr_decay = 1.0;
        c->beta1 = 0.9;
        c->beta2 = 0.99;
        c->tau = 1e-3;
        c->prox_mu = s_names[i].prox_mu;
        return 0;
    }
    char known[256] = "";
    for (size_t i = 0; i < S_NNAMES; i++)
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                 s_names[i].name);
    char shown[96];
    return fl_fail(FL_EINVAL, "strategy: unknown name %s (known: %s)",
                   fl_log_str(name ? name : "", shown, sizeof shown), known);
}

/* x in [lo, hi) (hi_open) or [lo, hi], finite. */
static bool s_in(double x, double lo, double hi, bool hi_open)
{
    return isfinite(x) && x >= lo && (hi_open ? x < hi : x <= hi);
}

int fl_strategy_config_check(const struct fl_strategy_config *c)
{
    size_t len = strnlen(c->name, sizeof c->name);
    if (len == 0 || len == sizeof c->name)
        return fl_fail(FL_EINVAL, "strategy: the name is empty or longer than %zu bytes",
                       sizeof c->name - 1);
    for (size_t i = 0; i < len; i++)
        if (c->name[i] <= ' ' || c->name[i] > '~')
            return fl_fail(FL_EINVAL, "strategy: the name holds a blank or non-ASCII byte");
    if ((unsigned)c->rule > FL_RULE_MULTI_KRUM)
        return fl_fail(FL_EINVAL, "strategy: rule %d is not a rule", (int)c->rule);
    if ((unsigned)c->opt > FL_SERVER_OPT_YOGI)
        return fl_fail(FL_EINVAL, "strategy: server-opt %d is not an optimiser", (int)c->opt);
    if ((unsigned)c->bound > FL_BOUND_MEDIAN)
        return fl_fail(FL_EINVAL, "strategy: bound %d is not a bound", (int)c->bound);
    if (c->bound != FL_BOUND_NONE && !(isfinite(c->norm_bound) && c->norm_bound > 0))
        return fl_fail(FL_EINVAL, "strategy: bound %s needs norm-bound > 0 (%s), got %g",
                       s_bound_names[c->bound],
                       c->bound == FL_BOUND_FIXED ? "the largest L2 norm of a delta"
                                                  : "the multiple of the round's median norm",
                       c->norm_bound);
    if (c->bound == FL_BOUND_NONE && !s_in(c->norm_bound, 0, INFINITY, true))
        return fl_fail(FL_EINVAL, "strategy: norm-bound %g is not a finite value >= 0",
                       c->norm_bound);
    if (!s_in(c->trim_beta, 0, 0.5, true))
        return fl_fail(FL_EINVAL, "strategy: trim-beta %g is outside [0, 0.5)", c->trim_beta);
    if (c->krum_f > 100000)
        return fl_fail(FL_EINVAL, "strategy: krum-f %u is above 100000", c->krum_f);
    if (c->krum_m > 100000)
        return fl_fail(FL_EINVAL, "strategy: krum-m %u is above 100000", c->krum_m);
    if (c->krum_m && c->rule != FL_RULE_MULTI_KRUM)
        return fl_fail(FL_EINVAL, "strategy: krum-m %u applies to rule multi-krum only, not %s",
                       c->krum_m, s_rule_names[c->rule]);
    if (!(isfinite(c->server_lr) && c->server_lr > 0 && c->server_lr <= 1e6))
        return fl_fail(FL_EINVAL, "strategy: server-lr %g is outside (0, 1e6]", c->server_lr);
    if (!(isfinite(c->server_lr_decay) && c->server_lr_decay > 0 && c->server_lr_decay <= 1))
        return fl_fail(FL_EINVAL, "strategy: server-lr-decay %g is outside (0, 1]",
                       c->server_lr_decay);
    if (c->server_lr_decay_after > 1000000)
        return fl_fail(FL_EINVAL, "strategy: server-lr-decay-after %u is above 1000000",
                       c->server_lr_decay_after);
    if (c->server_lr_decay_after && c->server_lr_decay == 1)
        return fl_fail(FL_EINVAL,
                       "strategy: server-lr-decay-after %u needs a server-lr-decay below 1",
                       c->server_lr_decay_after);
    if (!s_in(c->beta1, 0, 1, true))
        return fl_fail(FL_EINVAL, "strategy: beta1 %g is outside [0, 1)", c->beta1);
    if (!s_in(c->beta2, 0, 1, true))
        return fl_fail(FL_EINVAL, "strategy: beta2 %g is outside [0, 1)", c->beta2);
    if (!(isfinite(c->tau) && c->tau > 0 && c->tau <= 1e3))
        return fl_fail(FL_EINVAL, "strategy: tau %g is outside (0, 1000]", c->tau);
    if ((double)(float)(c->tau * c->tau) <= 0)
        return fl_fail(FL_EINVAL, "strategy: tau %g is too small (tau^2 underflows a float)",
                       c->tau);
    if (!s_in(c->prox_mu, 0, 1e6, false))
        return fl_fail(FL_EINVAL, "strategy: prox-mu %g is outside [0, 1e6]", c->prox_mu);
    return fl_strategy_dp_check(c);
}

bool fl_strategy_config_holds_all(const struct fl_strategy_config *c)
{
    return c->rule != FL_RULE_MEAN || c->bound == FL_BOUND_MEDIAN;
}

void fl_strategy_config_str(const struct fl_strategy_config *c, char *buf, size_t len)
{
    if (!len)
        return;
    size_t at = 0;
#define S_PUT(...)                                                                                 \
    do {                                                                                           \
        if (at < len) {                                                                            \
            int k_ = snprintf(buf + at, len - at, __VA_ARGS__);                                    \
            at += k_ > 0 ? (size_t)k_ : 0;                                                         \
        }                                                                                          \
    } while (0)
    buf[0] = '\0';
    S_PUT("%.*s rule=%s", (int)strnlen(c->name, sizeof c->name), c->name,
          (unsigned)c->rule <= FL_RULE_MULTI_KRUM ? s_rule_names[c->rule] : "?");
    if (c->rule == FL_RULE_TRIMMED_MEAN)
        S_PUT(" trim-beta=%g", c->trim_beta);
    if (c->rule == FL_RULE_KRUM || c->rule == FL_RULE_MULTI_KRUM)
        S_PUT(" krum-f=%u", c->krum_f);
    if (c->rule == FL_RULE_MULTI_KRUM)
        S_PUT(" krum-m=%u", c->krum_m);
    if (c->bound == FL_BOUND_NONE)
        S_PUT(" bound=none");
    else
        S_PUT(" bound=%s:%g", (unsigned)c->bound <= FL_BOUND_MEDIAN ? s_bound_names[c->bound] : "?",
              c->norm_bound);
    S_PUT(" opt=%s eta=%g", (unsigned)c->opt <= FL_SERVER_OPT_YOGI ? s_opt_names[c->opt] : "?",
          c->server_lr);
    if (c->server_lr_decay != 1)
        S_PUT(" eta-decay=%g", c->server_lr_decay);
    if (c->server_lr_decay_after)
        S_PUT(" eta-decay-after=%u", c->server_lr_decay_after);
    if (c->opt != FL_SERVER_OPT_NONE)
        S_PUT(" beta1=%g", c->beta1);
    if (c->opt == FL_SERVER_OPT_ADAM || c->opt == FL_SERVER_OPT_YOGI)
        S_PUT(" beta2=%g", c->beta2);
    if (c->opt == FL_SERVER_OPT_ADAGRAD || c->opt == FL_SERVER_OPT_ADAM ||
        c->opt == FL_SERVER_OPT_YOGI)
        S_PUT(" tau=%g", c->tau);
    if (c->prox_mu > 0)
        S_PUT(" prox-mu=%g", c->prox_mu);
    for (int k = 6; c->dp_noise > 0 && k <= 17; k++) { /* the shortest text that reads back */
        char z[32];
        snprintf(z, sizeof z, "%.*g", k, c->dp_noise);
        if (strtod(z, NULL) == c->dp_noise || k == 17) {
            S_PUT(" dp-noise=%s%s", z, c->dp_distributed ? " dp-distributed" : "");
            break;
        }
    }
#undef S_PUT
}

/* ---- life cycle ---- */

fl_strategy_t *fl_strategy_new(const struct fl_strategy_config *cfg)
{
    if (!cfg) {
        fl_error_set("strategy: no configuration");
        return NULL;
    }
    if (fl_strategy_config_check(cfg) != 0)
        return NULL;
    fl_strategy_t *s = calloc(1, sizeof *s);
    if (!s) {
        fl_error_set("strategy: out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    return s;
}

/* Free what the round holds (not the verdicts nor the optimiser's state). */
static void s_round_clear(fl_strategy_t *s)
{
    for (size_t i = 0; i < s->ne; i++)
        free(s->e[i].u);
    free(s->e);
    free(s->off);
    free(s->g);
    free(s->hi);
    free(s->lo);
    s->e = NULL;
    s->ne = s->ecap = 0;
    s->off = NULL;
    s->g = NULL;
    s->hi = s->lo = NULL;
    s->whi = s->wlo = 0;
    s->global = NULL;
    s->n = s->numel = 0;
    s->expected = 0;
    s->open = false;
}

void fl_strategy_destroy(fl_strategy_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_strategy_t *s = *self_p;
    s_round_clear(s);
    free(s->verdicts);
    fl_strategy_opt_free(s);
    free(s);
    *self_p = NULL;
}

void fl_strategy_set_pool(fl_strategy_t *s, fl_pool_t *pool)
{
    s->pool = pool;
}

const struct fl_strategy_config *fl_strategy_config(const fl_strategy_t *s)
{
    return &s->cfg;
}

const char *fl_strategy_name(const fl_strategy_t *s)
{
    return s->cfg.name;
}

int fl_strategy_begin(fl_strategy_t *s, const struct fl_tensor *global, size_t n)
{
    s_round_clear(s);
    free(s->verdicts);
    s->verdicts = NULL;
    s->nverdicts = 0;
    if (!global && n)
        return fl_fail(FL_EINVAL, "strategy: no global tensors");
    if (!(s->off = malloc((n + 1) * sizeof *s->off)))
        goto out_nomem;
    s->off[0] = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = fl_tensor_numel(&global[i]);
        if (k && !global[i].data) {
            s_round_clear(s);
            return fl_fail(FL_EINVAL, "strategy: global tensor %zu has no data", i);
        }
        if (k > SIZE_MAX / sizeof(double) - s->off[i])
            goto out_nomem;
        s->off[i + 1] = s->off[i] + k;
    }
    s->n = n;
    s->numel = s->off[n];
    s->global = global;
    if (!(s->g = malloc((s->numel ? s->numel : 1) * sizeof *s->g)))
        goto out_nomem;
    for (size_t i = 0; i < n; i++)
        if (s->off[i + 1] > s->off[i])
            memcpy(s->g + s->off[i], global[i].data, (s->off[i + 1] - s->off[i]) * sizeof(float));
    if (!fl_strategy_config_holds_all(&s->cfg)) {
        s->hi = calloc(s->numel ? s->numel : 1, sizeof *s->hi);
        s->lo = calloc(s->numel ? s->numel : 1, sizeof *s->lo);
        if (!s->hi || !s->lo)
            goto out_nomem;
    }
    int rc = fl_strategy_opt_prepare(s);
    if (rc) {
        s_round_clear(s);
        return rc;
    }
    s->open = true;
    return 0;
out_nomem:
    s_round_clear(s);
    return fl_fail(FL_ENOMEM, "strategy: out of memory for a round");
}

/* Index of the first value of x[0..len) that is not finite, or len. The pieces are contiguous
 * and in order, so the lowest piece's find is the first. */
struct s_scan {
    const float *x; /* values */
    size_t *first;  /* per task: its first non-finite index, or SIZE_MAX */
};

static void s_scan_task(void *arg, int t, size_t begin, size_t end)
{
    struct s_scan *a = arg;
    a->first[t] = SIZE_MAX;
    for (size_t i = begin; i < end; i++)
        if (!isfinite(a->x[i])) {
            a->first[t] = i;
            return;
        }
}

static int s_first_nonfinite(fl_pool_t *pool, const float *x, size_t len, size_t *at)
{
    size_t first[64];
    size_t *f = first;
    int size = fl_pool_size(pool);
    if (size > 64 && !(f = malloc((size_t)size * sizeof *f)))
        return FL_ENOMEM;
    struct s_scan a = {x, f};
    int tasks = fl_pool_for(pool, len, 1u << 15, s_scan_task, &a);
    *at = len;
    for (int t = 0; t < tasks; t++)
        if (f[t] < *at)
            *at = f[t];
    if (f != first)
        free(f);
    return 0;
}

/* The update's checks: open round, id, shapes, weight, values. */
static int s_add_check(fl_strategy_t *s, const struct fl_tensor *update, size_t n, double weight,
                       const char *id)
{
    char shown[96];
    if (!id || !id[0] || strlen(id) >= sizeof s->e[0].id)
        return fl_fail(FL_EINVAL, "strategy: an update's id must be 1 to %zu bytes",
                       sizeof s->e[0].id - 1);
    fl_log_str(id, shown, sizeof shown);
    if (!s->open)
        return fl_fail(FL_EINVAL, "update from %s: no round begun", shown);
    if (n != s->n || (n && !update))
        return fl_fail(FL_EMISMATCH, "update from %s: %zu tensors, the global has %zu", shown, n,
                       s->n);
    for (size_t i = 0; i < n; i++) {
        size_t k = s->off[i + 1] - s->off[i];
        if (fl_tensor_numel(&update[i]) != k || (k && !update[i].data))
            return fl_fail(FL_EMISMATCH, "update from %s: tensor %zu has %zu values, expected %zu",
                           shown, i, fl_tensor_numel(&update[i]), k);
    }
    if (!(isfinite(weight) && weight > 0))
        return fl_fail(FL_EINVAL, "update from %s: weight %g is not a finite value > 0", shown,
                       weight);
    for (size_t i = 0; i < s->ne; i++)
        if (strcmp(s->e[i].id, id) == 0)
            return fl_fail(FL_EINVAL, "update from %s: a second update in the round", shown);
    for (size_t i = 0; i < n; i++) {
        size_t at;
        if (s_first_nonfinite(s->pool, update[i].data, s->off[i + 1] - s->off[i], &at) != 0)
            return fl_fail(FL_ENOMEM, "update from %s: out of memory", shown);
        if (at < s->off[i + 1] - s->off[i]) {
            char name[96];
            return fl_fail(FL_EINVAL, "update from %s: non-finite value in tensor %s at index %zu",
                           shown, fl_log_str(update[i].name, name, sizeof name), at);
        }
    }
    return 0;
}

/* Error-free addition (Knuth's TwoSum): *hi + *lo accumulates x with the rounding error of
 * each addition kept in *lo. */
static inline void s_two_sum(double *hi, double *lo, double x)
{
    double s = *hi + x, bp = s - *hi;
    *lo += (*hi - (s - bp)) + (x - bp);
    *hi = s;
}

int fl_strategy_add(fl_strategy_t *s, const struct fl_tensor *update, size_t n, double weight,
                    const char *id)
{
    int rc = s_add_check(s, update, n, weight, id);
    if (rc)
        return rc;
    if (s->ne == s->ecap) {
        size_t cap = s->ecap ? 2 * s->ecap : 16;
        struct fl_strategy_entry *e = realloc(s->e, cap * sizeof *e);
        if (!e)
            return fl_fail(FL_ENOMEM, "strategy: out of memory");
        s->e = e;
        s->ecap = cap;
    }
    struct fl_strategy_entry *e = &s->e[s->ne];
    memset(e, 0, sizeof *e);
    snprintf(e->id, sizeof e->id, "%s", id);
    e->weight = weight;
    e->scale = 1;
    e->used = true;
    double sq = 0;
    for (size_t i = 0; i < n; i++)
        sq += fl_strategy_sqdist(s->pool, update[i].data, s->g + s->off[i],
                                 s->off[i + 1] - s->off[i]);
    e->norm = sqrt(sq);
    if (fl_strategy_config_holds_all(&s->cfg)) {
        if (!(e->u = fl_falloc(s->numel ? s->numel : 1)))
            return fl_fail(FL_ENOMEM, "strategy: out of memory to hold an update");
        for (size_t i = 0; i < n; i++)
            if (s->off[i + 1] > s->off[i])
                memcpy(e->u + s->off[i], update[i].data,
                       (s->off[i + 1] - s->off[i]) * sizeof(float));
    } else {
        if (s->cfg.bound == FL_BOUND_FIXED && !s->cfg.dp_distributed && e->norm > s->cfg.norm_bound)
            e->scale = s->cfg.norm_bound / e->norm;
        fl_strategy_fold(s, update, s->cfg.dp_noise > 0 ? e->scale : weight * e->scale);
        s_two_sum(&s->whi, &s->wlo, weight);
    }
    s->ne++;
    return 0;
}

int fl_strategy_set_expected(fl_strategy_t *s, uint32_t expected)
{
    if (!s->open || expected == 0)
        return fl_fail(FL_EINVAL, "strategy: an expected count of %u outside a round", expected);
    s->expected = expected;
    return 0;
}

size_t fl_strategy_count(const fl_strategy_t *s)
{
    return s->ne;
}

size_t fl_strategy_held_bytes(const fl_strategy_t *s)
{
    size_t bytes = 0;
    for (size_t i = 0; i < s->ne; i++)
        if (s->e[i].u)
            bytes += s->numel * sizeof(float);
    return bytes;
}

static int s_cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct fl_strategy_entry *)a)->id,
                  ((const struct fl_strategy_entry *)b)->id);
}

/* The streaming mean's aggregate delta: (hi + lo) / total weight. */
struct s_mean {
    const fl_strategy_t *s; /* the strategy */
    double *d;              /* out */
    double w;               /* total weight */
};

static void s_mean_task(void *arg, int t, size_t begin, size_t end)
{
    const struct s_mean *a = arg;
    for (size_t j = begin; j < end; j++)
        a->d[j] = (a->s->hi[j] + a->s->lo[j]) / a->w;
}

/* One verdict per update, from the entries (sorted by id). */
static int s_verdicts(fl_strategy_t *s)
{
    s->verdicts = calloc(s->ne ? s->ne : 1, sizeof *s->verdicts);
    if (!s->verdicts)
        return fl_fail(FL_ENOMEM, "strategy: out of memory");
    s->nverdicts = s->ne;
    size_t used = 0;
    for (size_t i = 0; i < s->ne; i++)
        used += s->e[i].used;
    for (size_t i = 0; i < s->ne; i++) {
        const struct fl_strategy_entry *e = &s->e[i];
        struct fl_verdict *v = &s->verdicts[i];
        snprintf(v->id, sizeof v->id, "%s", e->id);
        v->norm = e->norm;
        v->scale = e->scale;
        v->score = e->score;
        double bound = e->scale < 1 ? e->norm * e->scale : 0;
        if (!e->used) {
            v->kind = FL_VERDICT_DROPPED;
            if (s->cfg.rule == FL_RULE_KRUM)
                snprintf(v->why, sizeof v->why, "krum score %.4g, not the lowest", e->score);
            else
                snprintf(v->why, sizeof v->why, "krum score %.4g not among the %zu lowest",
                         e->score, used);
        } else if (e->scale < 1) {
            v->kind = FL_VERDICT_CLIPPED;
            if (s->cfg.bound == FL_BOUND_MEDIAN)
                snprintf(v->why, sizeof v->why, "norm %.4g above bound %.4g (%g x median %.4g)",
                         e->norm, bound, s->cfg.norm_bound, bound / s->cfg.norm_bound);
            else
                snprintf(v->why, sizeof v->why, "norm %.4g above bound %g", e->norm,
                         s->cfg.norm_bound);
        } else {
            v->kind = FL_VERDICT_KEPT;
            if (s->cfg.rule == FL_RULE_KRUM)
                snprintf(v->why, sizeof v->why, "krum score %.4g, the lowest", e->score);
            else if (s->cfg.rule == FL_RULE_MULTI_KRUM)
                snprintf(v->why, sizeof v->why, "krum score %.4g among the %zu lowest", e->score,
                         used);
        }
    }
    return 0;
}

int fl_strategy_finish(fl_strategy_t *s, struct fl_tensor *global, size_t n)
{
    if (!s->open)
        return fl_fail(FL_EINVAL, "strategy: finish without a round begun");
    if (n != s->n || (n && !global))
        return fl_fail(FL_EMISMATCH, "strategy: finish with %zu tensors, the round began with %zu",
                       n, s->n);
    for (size_t i = 0; i < n; i++)
        if (fl_tensor_numel(&global[i]) != s->off[i + 1] - s->off[i])
            return fl_fail(FL_EMISMATCH, "strategy: finish: global tensor %zu changed size", i);
    if (s->ne == 0)
        return fl_fail(FL_EINVAL, "strategy: no update to aggregate");
    double *d = malloc((s->numel ? s->numel : 1) * sizeof *d);
    if (!d)
        return fl_fail(FL_ENOMEM, "strategy: out of memory");
    int rc = 0;
    qsort(s->e, s->ne, sizeof *s->e, s_cmp_entry);
    if (fl_strategy_config_holds_all(&s->cfg)) {
        rc = fl_strategy_rules_held(s, d);
    } else if (s->cfg.dp_noise > 0) {
        rc = fl_strategy_dp_mean(s, d);
    } else {
        struct s_mean a = {s, d, s->whi + s->wlo};
        fl_pool_for(s->pool, s->numel, 1u << 15, s_mean_task, &a);
    }
    if (rc == 0)
        rc = fl_strategy_opt_step(s, d, global);
    free(d);
    if (rc)
        return rc; /* the round stays open: more updates may come, finish may be tried again */
    rc = s_verdicts(s);
    s_round_clear(s);
    return rc;
}

const struct fl_verdict *fl_strategy_verdicts(const fl_strategy_t *s, size_t *n)
{
    *n = s->nverdicts;
    return s->verdicts;
}
