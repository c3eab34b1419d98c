/* fl_secagg: parameters, hashes and signed bodies shared by both sides of secure aggregation. */
#include "fl_secagg.h"
#include "fl_codec.h"
#include "fl_error.h"

#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

const char *fl_secagg_phase_name(enum fl_secagg_phase phase)
{
    static const char *const names[] = {"keys",   "shares", "masked", "consistency",
                                        "reveal", "done",   "aborted"};
    return (unsigned)phase < sizeof names / sizeof names[0] ? names[phase] : "unknown";
}

int fl_secagg_index(const struct fl_secagg_params *p, const uint8_t key[FL_SIGN_PK_BYTES])
{
    for (uint32_t i = 0; i < p->n; i++)
        if (memcmp(p->branches[i], key, FL_SIGN_PK_BYTES) == 0)
            return (int)i;
    return -1;
}

int fl_secagg_pos(const uint32_t *row, uint32_t k, uint32_t j)
{
    uint32_t lo = 0, hi = k;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (row[mid] == j)
            return (int)mid;
        if (row[mid] < j)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

int fl_secagg_params_check(const struct fl_secagg_params *p)
{
    if (p->n < 3 || p->n > FL_SECAGG_MAX_BRANCHES)
        return fl_fail(FL_EINVAL, "secure aggregation needs 3 to %d branches, not %u",
                       FL_SECAGG_MAX_BRANCHES, p->n);
    for (uint32_t i = 0; i < p->n; i++)
        if (fl_secagg_index(p, p->branches[i]) != (int)i)
            return fl_fail(FL_EINVAL, "secure aggregation: branch %u is listed twice", i);
    uint32_t k = p->degree;
    if (k == 0 || k > p->n - 1 || k > FL_SECAGG_MAX_DEGREE || (k % 2 && k != p->n - 1))
        return fl_fail(FL_EINVAL, "secure aggregation: no %u-regular graph of %u branches", k,
                       p->n);
    if (p->threshold > k || p->threshold < 2)
        return fl_fail(FL_EINVAL, "secure aggregation: threshold %u outside [2, %u]", p->threshold,
                       k);
    if (p->fixed.max_branches < p->n)
        return fl_fail(FL_ERANGE, "secure aggregation: %u branches, the encoding allows %u", p->n,
                       p->fixed.max_branches);
    if (p->length + 1 > FL_WIRE_SECAGG_MAX_WORDS)
        return fl_fail(FL_ERANGE, "secure aggregation: %llu values exceed one masked input",
                       (unsigned long long)p->length);
    return fl_secagg_fixed_check(&p->fixed);
}

static void s_hash_u64(crypto_generichash_state *st, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    crypto_generichash_update(st, b, 8);
}

void fl_secagg_params_hash(const struct fl_secagg_params *p, uint8_t out[32])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, (const uint8_t *)"fedtl-secagg-setup-v1", 21);
    s_hash_u64(&st, p->n);
    for (uint32_t i = 0; i < p->n; i++)
        crypto_generichash_update(&st, p->branches[i], FL_SIGN_PK_BYTES);
    crypto_generichash_update(&st, p->graph_seed, FL_SECAGG_SEED_BYTES);
    s_hash_u64(&st, p->degree);
    s_hash_u64(&st, p->threshold);
    s_hash_u64(&st, p->fixed.frac_bits);
    uint64_t clip_bits;
    memcpy(&clip_bits, &p->fixed.clip, sizeof clip_bits);
    s_hash_u64(&st, clip_bits);
    s_hash_u64(&st, p->fixed.max_weight);
    s_hash_u64(&st, p->fixed.max_branches);
    s_hash_u64(&st, p->length);
    crypto_generichash_final(&st, out, 32);
}

void fl_secagg_params_put(const struct fl_secagg_params *p, uint32_t round, Fedtl__SecAggSetup *m,
                          ProtobufCBinaryData *keys_storage)
{
    for (uint32_t i = 0; i < p->n; i++)
        keys_storage[i] = (ProtobufCBinaryData){FL_SIGN_PK_BYTES, p->branches[i]};
    m->round = round;
    m->n_branches = p->n;
    m->branches = keys_storage;
    m->graph_seed = (ProtobufCBinaryData){FL_SECAGG_SEED_BYTES, (uint8_t *)p->graph_seed};
    m->degree = p->degree;
    m->threshold = p->threshold;
    m->frac_bits = p->fixed.frac_bits;
    m->clip = p->fixed.clip;
    m->max_weight = p->fixed.max_weight;
    m->max_branches = p->fixed.max_branches;
    m->length = p->length;
}

int fl_secagg_params_get(const Fedtl__SecAggSetup *m, struct fl_secagg_params *p)
{
    memset(p, 0, sizeof *p);
    if (m->n_branches < 2 || m->n_branches > FL_SECAGG_MAX_BRANCHES ||
        m->graph_seed.len != FL_SECAGG_SEED_BYTES)
        return fl_fail(FL_EFORMAT, "secagg setup: bad roster or seed");
    p->branches = malloc((size_t)m->n_branches * FL_SIGN_PK_BYTES);
    if (!p->branches)
        return FL_ENOMEM;
    p->n = (uint32_t)m->n_branches;
    for (uint32_t i = 0; i < p->n; i++) {
        if (m->branches[i].len != FL_SIGN_PK_BYTES) {
            fl_secagg_params_free(p);
            return fl_fail(FL_EFORMAT, "secagg setup: bad key %u", i);
        }
        memcpy(p->branches[i], m->branches[i].data, FL_SIGN_PK_BYTES);
    }
    memcpy(p->graph_seed, m->graph_seed.data, FL_SECAGG_SEED_BYTES);
    p->degree = m->degree;
    p->threshold = m->threshold;
    p->fixed = (struct fl_secagg_fixed){.frac_bits = m->frac_bits,
                                        .clip = m->clip,
                                        .max_weight = m->max_weight,
                                        .max_branches = m->max_branches};
    p->length = m->length;
    int rc = fl_secagg_params_check(p);
    if (rc)
        fl_secagg_params_free(p);
    return rc;
}

void fl_secagg_params_free(struct fl_secagg_params *p)
{
    free(p->branches);
    p->branches = NULL;
    p->n = 0;
}

/* A body of n entries of `each` bytes at most, or FL_ENOMEM. */
static int s_body_alloc(size_t n, size_t each, uint8_t **body, size_t *len)
{
    *len = 0;
    *body = malloc(n ? n * each : 1);
    return *body ? 0 : FL_ENOMEM;
}

static void s_put(uint8_t *body, size_t *len, const void *p, size_t n)
{
    memcpy(body + *len, p, n);
    *len += n;
}

int fl_secagg_body_shares(Fedtl__SecAggShare *const *s, size_t n, uint8_t **body, size_t *len)
{
    size_t each = FL_SIGN_PK_BYTES + FL_SECAGG_SHARE_BYTES + FL_SECAGG_SEAL_OVERHEAD;
    if (s_body_alloc(n, each, body, len))
        return FL_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        s_put(*body, len, s[i]->peer.data, FL_SIGN_PK_BYTES);
        s_put(*body, len, s[i]->ciphertext.data, s[i]->ciphertext.len);
    }
    return 0;
}

int fl_secagg_body_keys(const ProtobufCBinaryData *keys, size_t n, uint8_t **body, size_t *len)
{
    if (s_body_alloc(n, FL_SIGN_PK_BYTES, body, len))
        return FL_ENOMEM;
    for (size_t i = 0; i < n; i++)
        s_put(*body, len, keys[i].data, FL_SIGN_PK_BYTES);
    return 0;
}

int fl_secagg_body_reveal(Fedtl__SecAggRevealShare *const *s, size_t n, uint8_t **body, size_t *len)
{
    if (s_body_alloc(n, FL_SIGN_PK_BYTES + 1 + FL_SECAGG_KEY_BYTES, body, len))
        return FL_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        uint8_t survived = s[i]->survived ? 1 : 0;
        s_put(*body, len, s[i]->owner.data, FL_SIGN_PK_BYTES);
        s_put(*body, len, &survived, 1);
        s_put(*body, len, s[i]->share.data, FL_SECAGG_KEY_BYTES);
    }
    return 0;
}

int fl_secagg_body_words(const uint64_t *w, size_t n, uint8_t **body, size_t *len)
{
    if (s_body_alloc(n, 8, body, len))
        return FL_ENOMEM;
    for (size_t i = 0; i < n; i++)
        for (int b = 0; b < 8; b++)
            (*body)[(*len)++] = (uint8_t)(w[i] >> (8 * b));
    return 0;
}

int fl_secagg_strategy_check(const struct fl_strategy_config *c)
{
    static const char *const rules[] = {"the mean", "the coordinate-wise median",
                                        "the trimmed mean", "Krum", "multi-Krum"};
    if (c->rule != FL_RULE_MEAN)
        return fl_fail(FL_EINVAL,
                       "secure aggregation: strategy %s uses %s, which must see every branch's "
                       "update; the coordinator sees only their sum (use fedavg, fedavgm, "
                       "fedadagrad, fedadam, fedyogi or fedprox)",
                       c->name, (unsigned)c->rule < 5 ? rules[c->rule] : "a rule");
    if (c->bound == FL_BOUND_MEDIAN)
        return fl_fail(FL_EINVAL,
                       "secure aggregation: the median norm bound needs every update's norm; "
                       "use a fixed norm bound (each branch clips its own update)");
    return 0;
}

double fl_secagg_clip(float *delta, size_t n, double bound)
{
    if (!(bound > 0))
        return 1.0;
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (double)delta[i] * delta[i];
    double norm = sqrt(ss);
    if (norm <= bound)
        return 1.0;
    double scale = bound / norm;
    for (size_t i = 0; i < n; i++)
        delta[i] = (float)(delta[i] * scale);
    return scale;
}

uint32_t fl_secagg_dp_shares(uint32_t selected, uint32_t min_clients, double dropout)
{
    if (selected < 3)
        return 0;
    uint32_t k = fl_secagg_degree(selected, dropout), t = fl_secagg_threshold(k);
    uint32_t lo = min_clients < k ? min_clients : k;
    return t > lo ? t : lo;
}

int fl_secagg_dp_check(double z, double clip, uint32_t shares, double *sigma)
{
    if (!(isfinite(z) && z > 0 && z <= 1e6))
        return fl_fail(FL_EFORMAT, "distributed DP: noise multiplier %g is not in (0, 1e6]", z);
    if (!(isfinite(clip) && clip > 0))
        return fl_fail(FL_EFORMAT, "distributed DP: norm bound %g is not a finite value > 0", clip);
    if (shares < 2 || shares > FL_SECAGG_MAX_BRANCHES)
        return fl_fail(FL_EFORMAT, "distributed DP: %u noise shares, not in [2, %d]", shares,
                       FL_SECAGG_MAX_BRANCHES);
    double s = z * clip / sqrt((double)shares), range = FL_SECAGG_FIXED_DP.clip;
    if (!(clip + FL_SECAGG_DP_TAIL * s <= range))
        return fl_fail(FL_ERANGE,
                       "distributed DP: noise of deviation %g on values up to %g does not fit "
                       "the encoding's range %g (noise multiplier %g, norm bound %g)",
                       s, clip, range, z, clip);
    *sigma = s;
    return 0;
}
