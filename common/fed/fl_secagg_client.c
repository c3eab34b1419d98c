/* fl_secagg_client: a branch's side of SecAgg+ for one round, with no I/O. */
#include "fl_secagg_client.h"
#include "fl_codec.h"
#include "fl_error.h"
#include "fl_shamir.h"

#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define S_KEY    FL_SECAGG_KEY_BYTES
#define S_SEALED (FL_SECAGG_SHARE_BYTES + FL_SECAGG_SEAL_OVERHEAD)

/* The secrets of one round, in sodium_malloc'd memory. */
struct s_secrets {
    uint8_t c_sk[FL_SECAGG_SK_BYTES]; /* channel key */
    uint8_t s_sk[FL_SECAGG_SK_BYTES]; /* mask key (shared) */
    uint8_t b[S_KEY];                 /* self-mask seed (shared) */
};

/* What the client knows of one neighbour (by position in its row). */
struct s_nbr {
    bool has_keys;                    /* its signed keys arrived */
    uint8_t c_pk[FL_SECAGG_PK_BYTES]; /* its channel key */
    uint8_t s_pk[FL_SECAGG_PK_BYTES]; /* its mask key */
    bool got_share;                   /* its shares arrived and opened */
};

struct fl_secagg_client {
    const struct fl_identity *id;    /* the branch (borrowed) */
    struct fl_secagg_ctx ctx;        /* the round (federation points into fed) */
    char fed[256];                   /* the federation name */
    struct fl_secagg_client_ops ops; /* callbacks */
    void *arg;                       /* their argument */
    enum fl_secagg_phase phase;      /* the phase it takes part in next */
    bool have_setup;                 /* the setup arrived */
    struct fl_secagg_params p;       /* from it */
    uint8_t setup_hash[32];          /* its hash */
    uint32_t me;                     /* own index in the roster */
    uint32_t *row;                   /* own neighbours (degree entries, sorted) */
    struct s_nbr *nb;                /* per neighbour */
    uint8_t *held;                   /* neighbours' shares for us: degree x (s, b), locked */
    struct s_secrets *sec;           /* own secrets */
    float *x;                        /* the input (NULL until given) */
    size_t xn;                       /* its values */
    uint64_t samples;                /* its sample count */
    uint8_t *survivors;              /* the survivor set this branch signed */
    size_t survivors_len;            /* its bytes */
    uint32_t min_threshold;          /* the least threshold a setup may have */
    struct fl_secagg_fixed fixed;    /* the encoding a setup must have (when min_threshold) */
};

fl_secagg_client_t *fl_secagg_client_new(const struct fl_identity *id,
                                         const struct fl_secagg_ctx *ctx,
                                         const struct fl_secagg_client_ops *ops, void *arg)
{
    fl_secagg_client_t *self = calloc(1, sizeof *self);
    if (!self || strlen(ctx->federation) >= sizeof self->fed) {
        free(self);
        return NULL;
    }
    self->id = id;
    self->ctx = *ctx;
    strcpy(self->fed, ctx->federation);
    self->ctx.federation = self->fed;
    self->ops = *ops;
    self->arg = arg;
    self->sec = sodium_malloc(sizeof *self->sec);
    if (!self->sec) {
        free(self);
        return NULL;
    }
    return self;
}

/* Wipe and drop every secret and the input. */
static void s_wipe(fl_secagg_client_t *self)
{
    if (self->sec)
        sodium_memzero(self->sec, sizeof *self->sec);
    if (self->held)
        sodium_memzero(self->held, (size_t)self->p.degree * 2 * S_KEY);
    if (self->x) {
        sodium_memzero(self->x, self->xn * sizeof *self->x);
        free(self->x);
        self->x = NULL;
    }
}

void fl_secagg_client_destroy(fl_secagg_client_t **self_p)
{
    fl_secagg_client_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    s_wipe(self);
    sodium_free(self->sec);
    sodium_free(self->held);
    free(self->row);
    free(self->nb);
    free(self->survivors);
    fl_secagg_params_free(&self->p);
    free(self);
    *self_p = NULL;
}

enum fl_secagg_phase fl_secagg_client_phase(const fl_secagg_client_t *self)
{
    return self->phase;
}

const struct fl_secagg_params *fl_secagg_client_params(const fl_secagg_client_t *self)
{
    return self->have_setup ? &self->p : NULL;
}

static int s_send(fl_secagg_client_t *self, Fedtl__Envelope *env)
{
    return self->ops.send(self->arg, env);
}

/* Fresh ephemeral keys and self-mask seed, advertised signed for this setup. */
static int s_send_keys(fl_secagg_client_t *self)
{
    uint8_t c_pk[FL_SECAGG_PK_BYTES], s_pk[FL_SECAGG_PK_BYTES], sig[FL_SIG_BYTES];
    uint8_t body[32 + 2 * FL_SECAGG_PK_BYTES];
    fl_secagg_keypair(c_pk, self->sec->c_sk);
    fl_secagg_keypair(s_pk, self->sec->s_sk);
    randombytes_buf(self->sec->b, sizeof self->sec->b);
    memcpy(body, self->setup_hash, 32);
    memcpy(body + 32, c_pk, sizeof c_pk);
    memcpy(body + 32 + sizeof c_pk, s_pk, sizeof s_pk);
    int rc = fl_secagg_sign(self->id, &self->ctx, FL_SECAGG_SIG_KEYS, body, sizeof body, sig);
    if (rc)
        return rc;
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__SecAggKeys m = FEDTL__SEC_AGG_KEYS__INIT;
    m.round = self->ctx.round;
    m.branch_key = (ProtobufCBinaryData){FL_SIGN_PK_BYTES, (uint8_t *)self->id->sign_pk};
    m.c_pk = (ProtobufCBinaryData){sizeof c_pk, c_pk};
    m.s_pk = (ProtobufCBinaryData){sizeof s_pk, s_pk};
    m.signature = (ProtobufCBinaryData){sizeof sig, sig};
    env.body_case = FEDTL__ENVELOPE__BODY_SA_KEYS;
    env.sa_keys = &m;
    rc = s_send(self, &env);
    if (rc == 0)
        self->phase = FL_SECAGG_PHASE_SHARES;
    return rc;
}

int fl_secagg_client_input(fl_secagg_client_t *self, const float *x, size_t n, uint64_t samples)
{
    if (self->x || self->phase != FL_SECAGG_PHASE_KEYS)
        return fl_fail(FL_EINVAL, "secagg: the input was already given");
    if (self->have_setup && n != self->p.length)
        return fl_fail(FL_EMISMATCH, "secagg: %zu values, the setup says %llu", n,
                       (unsigned long long)self->p.length);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return fl_fail(FL_ERANGE, "secagg: value %zu is not finite", i);
    self->x = malloc(n ? n * sizeof *x : 1);
    if (!self->x)
        return FL_ENOMEM;
    memcpy(self->x, x, n * sizeof *x);
    self->xn = n;
    self->samples = samples;
    return self->have_setup ? s_send_keys(self) : 0;
}

void fl_secagg_client_require(fl_secagg_client_t *self, uint32_t min_threshold,
                              const struct fl_secagg_fixed *fixed)
{
    self->min_threshold = min_threshold;
    self->fixed = *fixed;
}

static int s_on_setup(fl_secagg_client_t *self, const Fedtl__SecAggSetup *m)
{
    if (self->have_setup || m->round != self->ctx.round)
        return fl_fail(FL_EINVAL, "secagg setup for round %u, or a second one", m->round);
    int rc = fl_secagg_params_get(m, &self->p);
    if (rc)
        return rc;
    self->have_setup = true;
    if (self->p.threshold < self->min_threshold ||
        (self->min_threshold && !fl_secagg_fixed_same(&self->p.fixed, &self->fixed)))
        return fl_fail(FL_EFORMAT,
                       "secagg setup: threshold %u, encoding of %u fractional bits, range %g, "
                       "weights up to %u, %u branches; distributed DP needs a threshold of at "
                       "least %u and the encoding of %u bits, range %g, weight %u, %u branches",
                       self->p.threshold, self->p.fixed.frac_bits, self->p.fixed.clip,
                       self->p.fixed.max_weight, self->p.fixed.max_branches, self->min_threshold,
                       self->fixed.frac_bits, self->fixed.clip, self->fixed.max_weight,
                       self->fixed.max_branches);
    int me = fl_secagg_index(&self->p, self->id->sign_pk);
    if (me < 0)
        return fl_fail(FL_EFORMAT, "secagg setup: this branch is not in the roster");
    if (self->x && self->xn != self->p.length)
        return fl_fail(FL_EMISMATCH, "secagg setup: length %llu, the input has %zu values",
                       (unsigned long long)self->p.length, self->xn);
    self->me = (uint32_t)me;
    uint32_t n = self->p.n, k = self->p.degree;
    uint32_t *graph = malloc((size_t)n * k * sizeof *graph);
    self->row = malloc((size_t)k * sizeof *self->row);
    self->nb = calloc(k, sizeof *self->nb);
    self->held = sodium_malloc((size_t)k * 2 * S_KEY);
    if (!graph || !self->row || !self->nb || !self->held) {
        free(graph);
        return FL_ENOMEM;
    }
    rc = fl_secagg_graph(self->p.graph_seed, n, k, graph);
    if (rc == 0)
        memcpy(self->row, graph + (size_t)self->me * k, (size_t)k * sizeof *self->row);
    free(graph);
    fl_secagg_params_hash(&self->p, self->setup_hash);
    return rc ? rc : self->x ? s_send_keys(self) : 0;
}

/* Position in the row of the neighbour with identity key (32 bytes), or -1. */
static int s_nbr_pos(const fl_secagg_client_t *self, const uint8_t *key)
{
    int v = fl_secagg_index(&self->p, key);
    return v < 0 ? -1 : fl_secagg_pos(self->row, self->p.degree, (uint32_t)v);
}

static const uint8_t *s_nbr_key(const fl_secagg_client_t *self, uint32_t pos)
{
    return self->p.branches[self->row[pos]];
}

/* Deal the two secrets among the neighbours that advertised keys (Shamir point: position + 1)
 * and send each its pair of shares sealed under the pair's channel key. */
static int s_send_shares(fl_secagg_client_t *self)
{
    uint32_t k = self->p.degree, t = self->p.threshold;
    size_t cnt = 0;
    uint8_t *sh = sodium_malloc((size_t)k * 2 * S_KEY); /* k s-shares, then k b-shares */
    uint8_t *ct = malloc((size_t)k * S_SEALED);
    Fedtl__SecAggShare *ent = calloc(k, sizeof *ent), **ptr = calloc(k, sizeof *ptr);
    uint8_t *body = NULL, plain[2 * S_KEY], chan[S_KEY], sig[FL_SIG_BYTES];
    size_t body_len = 0;
    int rc = FL_ENOMEM;
    if (!sh || !ct || !ent || !ptr)
        goto out_free;
    if ((rc = fl_shamir_split(self->sec->s_sk, S_KEY, t, k, sh)) != 0 ||
        (rc = fl_shamir_split(self->sec->b, S_KEY, t, k, sh + (size_t)k * S_KEY)) != 0)
        goto out_free;
    for (uint32_t j = 0; j < k; j++) {
        if (!self->nb[j].has_keys)
            continue;
        const uint8_t *vk = s_nbr_key(self, j);
        memcpy(plain, sh + (size_t)j * S_KEY, S_KEY);
        memcpy(plain + S_KEY, sh + ((size_t)k + j) * S_KEY, S_KEY);
        if ((rc = fl_secagg_agree(self->sec->c_sk, self->nb[j].c_pk, &self->ctx, FL_SECAGG_CHANNEL,
                                  self->id->sign_pk, vk, chan)) != 0 ||
            (rc = fl_secagg_seal(chan, &self->ctx, self->id->sign_pk, vk, plain, sizeof plain,
                                 ct + cnt * S_SEALED)) != 0)
            goto out_free;
        fedtl__sec_agg_share__init(&ent[cnt]);
        ent[cnt].peer = (ProtobufCBinaryData){FL_SIGN_PK_BYTES, (uint8_t *)vk};
        ent[cnt].ciphertext = (ProtobufCBinaryData){S_SEALED, ct + cnt * S_SEALED};
        ptr[cnt] = &ent[cnt];
        cnt++;
    }
    if ((rc = fl_secagg_body_shares(ptr, cnt, &body, &body_len)) != 0 ||
        (rc = fl_secagg_sign(self->id, &self->ctx, FL_SECAGG_SIG_SHARES, body, body_len, sig)))
        goto out_free;
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__SecAggShares m = FEDTL__SEC_AGG_SHARES__INIT;
    m.round = self->ctx.round;
    m.branch_key = (ProtobufCBinaryData){FL_SIGN_PK_BYTES, (uint8_t *)self->id->sign_pk};
    m.n_shares = cnt;
    m.shares = ptr;
    m.signature = (ProtobufCBinaryData){sizeof sig, sig};
    env.body_case = FEDTL__ENVELOPE__BODY_SA_SHARES;
    env.sa_shares = &m;
    if ((rc = s_send(self, &env)) == 0)
        self->phase = FL_SECAGG_PHASE_MASKED;
out_free:
    sodium_memzero(plain, sizeof plain);
    sodium_memzero(chan, sizeof chan);
    sodium_free(sh);
    free(ct);
    free(ent);
    free(ptr);
    free(body);
    return rc;
}

static int s_on_key_set(fl_secagg_client_t *self, const Fedtl__SecAggKeySet *m)
{
    uint32_t have = 0;
    uint8_t body[32 + 2 * FL_SECAGG_PK_BYTES];
    memcpy(body, self->setup_hash, 32);
    for (size_t i = 0; i < m->n_keys; i++) {
        const Fedtl__SecAggKeys *e = m->keys[i];
        int pos = s_nbr_pos(self, e->branch_key.data);
        if (pos < 0 || self->nb[pos].has_keys)
            return fl_fail(FL_EFORMAT, "secagg key set: entry %zu is no neighbour, or twice", i);
        memcpy(body + 32, e->c_pk.data, FL_SECAGG_PK_BYTES);
        memcpy(body + 32 + FL_SECAGG_PK_BYTES, e->s_pk.data, FL_SECAGG_PK_BYTES);
        if (e->round != self->ctx.round ||
            fl_secagg_verify(e->branch_key.data, &self->ctx, FL_SECAGG_SIG_KEYS, body, sizeof body,
                             e->signature.data))
            return fl_fail(FL_ECRYPTO, "secagg key set: entry %zu is not signed for this setup", i);
        struct s_nbr *nb = &self->nb[pos];
        memcpy(nb->c_pk, e->c_pk.data, FL_SECAGG_PK_BYTES);
        memcpy(nb->s_pk, e->s_pk.data, FL_SECAGG_PK_BYTES);
        nb->has_keys = true;
        have++;
    }
    if (have < self->p.threshold)
        return fl_fail(FL_ERANGE, "secagg: %u neighbours advertised keys, the threshold is %u",
                       have, self->p.threshold);
    return s_send_shares(self);
}

/* The masks of the masked input into m (k + 1 entries), their count in *cnt: the self-mask,
 * and the mask shared with every neighbour whose shares arrived, added or subtracted. */
static int s_masks(fl_secagg_client_t *self, struct fl_secagg_mask *m, size_t *cnt)
{
    m[0].subtract = false;
    int rc = fl_secagg_self_key(self->sec->b, &self->ctx, self->id->sign_pk, m[0].key);
    *cnt = 1;
    for (uint32_t j = 0; rc == 0 && j < self->p.degree; j++) {
        if (!self->nb[j].got_share)
            continue;
        const uint8_t *vk = s_nbr_key(self, j);
        struct fl_secagg_mask *e = &m[(*cnt)++];
        e->subtract = !fl_secagg_pair_adds(self->id->sign_pk, vk);
        rc = fl_secagg_agree(self->sec->s_sk, self->nb[j].s_pk, &self->ctx, FL_SECAGG_MASK,
                             self->id->sign_pk, vk, e->key);
    }
    return rc;
}

/* The masked input: the encoded update, plus the self-mask, plus or minus the mask shared with
 * every neighbour whose shares arrived, expanded together on the pool's threads. */
static int s_send_masked(fl_secagg_client_t *self)
{
    size_t words = self->p.length + 1, cnt = 0;
    uint64_t *y = malloc(words * sizeof *y);
    struct fl_secagg_mask *m = sodium_malloc(((size_t)self->p.degree + 1) * sizeof *m);
    uint8_t sig[FL_SIG_BYTES];
    int rc = y && m ? 0 : FL_ENOMEM;
    uint32_t w = fl_secagg_fixed_weight(&self->p.fixed, self->samples);
    if (rc == 0)
        rc = fl_secagg_fixed_encode(&self->p.fixed, self->x, self->xn, w, y);
    if (rc == 0 && (rc = s_masks(self, m, &cnt)) == 0)
        rc = fl_secagg_masks_apply(m, cnt, y, words, self->ops.pool);
    sodium_free(m); /* wipes the keys */
    if (rc == 0)
        rc = fl_secagg_sign_words(self->id, &self->ctx, FL_SECAGG_SIG_MASKED, y, words, sig);
    if (rc == 0) {
        Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
        Fedtl__SecAggMasked msg = FEDTL__SEC_AGG_MASKED__INIT;
        msg.round = self->ctx.round;
        msg.branch_key = (ProtobufCBinaryData){FL_SIGN_PK_BYTES, (uint8_t *)self->id->sign_pk};
        msg.n_words = words;
        msg.words = y;
        msg.signature = (ProtobufCBinaryData){sizeof sig, sig};
        env.body_case = FEDTL__ENVELOPE__BODY_SA_MASKED;
        env.sa_masked = &msg;
        if ((rc = s_send(self, &env)) == 0)
            self->phase = FL_SECAGG_PHASE_CONSISTENCY;
    }
    free(y);
    return rc;
}

static int s_on_share_set(fl_secagg_client_t *self, const Fedtl__SecAggShareSet *m)
{
    uint8_t chan[S_KEY];
    uint32_t got = 0;
    int rc = 0;
    for (size_t i = 0; i < m->n_shares && rc == 0; i++) {
        const Fedtl__SecAggShare *e = m->shares[i];
        int pos = s_nbr_pos(self, e->peer.data);
        if (pos < 0 || !self->nb[pos].has_keys || self->nb[pos].got_share) {
            rc = fl_fail(FL_EFORMAT, "secagg share set: share %zu from no neighbour, or twice", i);
            break;
        }
        if (fl_secagg_agree(self->sec->c_sk, self->nb[pos].c_pk, &self->ctx, FL_SECAGG_CHANNEL,
                            self->id->sign_pk, e->peer.data, chan) ||
            fl_secagg_open(chan, &self->ctx, e->peer.data, self->id->sign_pk, e->ciphertext.data,
                           e->ciphertext.len, self->held + (size_t)pos * 2 * S_KEY))
            rc = fl_fail(FL_ECRYPTO, "secagg share set: share %zu does not open", i);
        self->nb[pos].got_share = rc == 0;
        got += rc == 0;
    }
    sodium_memzero(chan, sizeof chan);
    if (rc)
        return rc;
    if (got < self->p.threshold)
        return fl_fail(FL_ERANGE, "secagg: %u neighbours sent shares, the threshold is %u", got,
                       self->p.threshold);
    rc = s_send_masked(self);
    if (self->x) { /* the input is in the masked input now: no longer needed */
        sodium_memzero(self->x, self->xn * sizeof *self->x);
        free(self->x);
        self->x = NULL;
    }
    return rc;
}

/* Is neighbour position j on the survivor list m? */
static bool s_listed(const fl_secagg_client_t *self, const Fedtl__SecAggSurvivors *m, uint32_t j)
{
    for (size_t i = 0; i < m->n_branches; i++)
        if (memcmp(m->branches[i].data, s_nbr_key(self, j), FL_SIGN_PK_BYTES) == 0)
            return true;
    return false;
}

/* The survivor set, first time: it must list this branch, only branches of the roster and no
 * neighbour that sent no share, and at least t neighbours. Sign it. */
static int s_on_survivors(fl_secagg_client_t *self, const Fedtl__SecAggSurvivors *m)
{
    bool me = false;
    uint32_t listed = 0;
    for (size_t i = 0; i < m->n_branches; i++) {
        if (fl_secagg_index(&self->p, m->branches[i].data) < 0)
            return fl_fail(FL_EFORMAT, "secagg survivors: entry %zu is not in the roster", i);
        me |= memcmp(m->branches[i].data, self->id->sign_pk, FL_SIGN_PK_BYTES) == 0;
    }
    for (uint32_t j = 0; j < self->p.degree; j++)
        if (s_listed(self, m, j)) {
            if (!self->nb[j].got_share)
                return fl_fail(FL_EFORMAT, "secagg survivors: a neighbour that sent no share");
            listed++;
        }
    if (!me)
        return fl_fail(FL_EFORMAT, "secagg survivors: this branch is not listed");
    if (listed < self->p.threshold)
        return fl_fail(FL_ERANGE, "secagg: %u neighbours survived, the threshold is %u", listed,
                       self->p.threshold);
    uint8_t sig[FL_SIG_BYTES];
    int rc =
        fl_secagg_body_keys(m->branches, m->n_branches, &self->survivors, &self->survivors_len);
    if (rc == 0)
        rc = fl_secagg_sign(self->id, &self->ctx, FL_SECAGG_SIG_CONSISTENCY, self->survivors,
                            self->survivors_len, sig);
    if (rc)
        return rc;
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__SecAggConsistency c = FEDTL__SEC_AGG_CONSISTENCY__INIT;
    c.round = self->ctx.round;
    c.branch_key = (ProtobufCBinaryData){FL_SIGN_PK_BYTES, (uint8_t *)self->id->sign_pk};
    c.signature = (ProtobufCBinaryData){sizeof sig, sig};
    env.body_case = FEDTL__ENVELOPE__BODY_SA_CONSISTENCY;
    env.sa_consistency = &c;
    if ((rc = s_send(self, &env)) == 0)
        self->phase = FL_SECAGG_PHASE_REVEAL;
    return rc;
}

/* The consistency check: the same survivor set, with valid signatures over it from at least
 * t neighbours. */
static int s_check_consistency(fl_secagg_client_t *self, const Fedtl__SecAggSurvivors *m)
{
    uint8_t *body = NULL;
    size_t len = 0;
    int rc = fl_secagg_body_keys(m->branches, m->n_branches, &body, &len);
    if (rc)
        return rc;
    if (len != self->survivors_len || memcmp(body, self->survivors, len) != 0)
        rc = fl_fail(FL_ECRYPTO, "secagg: the survivor set changed after this branch signed it");
    bool seen[FL_SECAGG_MAX_DEGREE] = {false};
    uint32_t good = 0;
    for (size_t i = 0; rc == 0 && i < m->n_signatures; i++) {
        const Fedtl__SecAggSignature *s = m->signatures[i];
        if (fl_secagg_verify(s->branch_key.data, &self->ctx, FL_SECAGG_SIG_CONSISTENCY,
                             self->survivors, self->survivors_len, s->signature.data))
            rc = fl_fail(FL_ECRYPTO,
                         "secagg: consistency signature %zu is not over this "
                         "survivor set",
                         i);
        int pos = s_nbr_pos(self, s->branch_key.data);
        if (rc == 0 && pos >= 0 && !seen[pos] && s_listed(self, m, (uint32_t)pos)) {
            seen[pos] = true;
            good++;
        }
    }
    free(body);
    if (rc == 0 && good < self->p.threshold)
        rc = fl_fail(FL_ERANGE,
                     "secagg: %u neighbours signed the survivor set, the threshold "
                     "is %u",
                     good, self->p.threshold);
    return rc;
}

/* Reveal, for each neighbour whose shares this branch holds, the share of its self-mask seed
 * when it survived, of its mask key when it dropped: never both. Then forget everything. */
static int s_on_reveal(fl_secagg_client_t *self, const Fedtl__SecAggSurvivors *m)
{
    int rc = s_check_consistency(self, m);
    if (rc)
        return rc;
    uint32_t k = self->p.degree;
    size_t cnt = 0, body_len = 0;
    Fedtl__SecAggRevealShare *ent = calloc(k, sizeof *ent), **ptr = calloc(k, sizeof *ptr);
    uint8_t *body = NULL, sig[FL_SIG_BYTES];
    rc = FL_ENOMEM;
    if (!ent || !ptr)
        goto out_free;
    for (uint32_t j = 0; j < k; j++) {
        if (!self->nb[j].got_share)
            continue;
        bool survived = s_listed(self, m, j);
        fedtl__sec_agg_reveal_share__init(&ent[cnt]);
        ent[cnt].owner = (ProtobufCBinaryData){FL_SIGN_PK_BYTES, (uint8_t *)s_nbr_key(self, j)};
        ent[cnt].survived = survived;
        ent[cnt].share = (ProtobufCBinaryData){S_KEY, self->held + (size_t)j * 2 * S_KEY +
                                                          (survived ? S_KEY : 0)};
        ptr[cnt] = &ent[cnt];
        cnt++;
    }
    if ((rc = fl_secagg_body_reveal(ptr, cnt, &body, &body_len)) != 0 ||
        (rc = fl_secagg_sign(self->id, &self->ctx, FL_SECAGG_SIG_REVEAL, body, body_len, sig)))
        goto out_free;
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__SecAggReveal r = FEDTL__SEC_AGG_REVEAL__INIT;
    r.round = self->ctx.round;
    r.branch_key = (ProtobufCBinaryData){FL_SIGN_PK_BYTES, (uint8_t *)self->id->sign_pk};
    r.n_shares = cnt;
    r.shares = ptr;
    r.signature = (ProtobufCBinaryData){sizeof sig, sig};
    env.body_case = FEDTL__ENVELOPE__BODY_SA_REVEAL;
    env.sa_reveal = &r;
    if ((rc = s_send(self, &env)) == 0)
        self->phase = FL_SECAGG_PHASE_DONE;
out_free:
    if (body)
        sodium_memzero(body, body_len);
    free(body);
    free(ent);
    free(ptr);
    s_wipe(self);
    return rc;
}

/* Is env for this round and the phase the client is in? */
static bool s_expects(const fl_secagg_client_t *self, const Fedtl__Envelope *env)
{
    switch (env->body_case) {
    case FEDTL__ENVELOPE__BODY_SA_SETUP:
        return self->phase == FL_SECAGG_PHASE_KEYS && env->sa_setup->round == self->ctx.round;
    case FEDTL__ENVELOPE__BODY_SA_KEY_SET:
        return self->phase == FL_SECAGG_PHASE_SHARES && env->sa_key_set->round == self->ctx.round;
    case FEDTL__ENVELOPE__BODY_SA_SHARE_SET:
        return self->phase == FL_SECAGG_PHASE_MASKED && env->sa_share_set->round == self->ctx.round;
    case FEDTL__ENVELOPE__BODY_SA_SURVIVORS:
        return (self->phase == FL_SECAGG_PHASE_CONSISTENCY ||
                self->phase == FL_SECAGG_PHASE_REVEAL) &&
               env->sa_survivors->round == self->ctx.round;
    case FEDTL__ENVELOPE__BODY_SA_ABORT:
        return self->phase < FL_SECAGG_PHASE_DONE && env->sa_abort->round == self->ctx.round;
    default:
        return false;
    }
}

int fl_secagg_client_recv(fl_secagg_client_t *self, const Fedtl__Envelope *env)
{
    if (!s_expects(self, env))
        return fl_fail(FL_EINVAL, "secagg: message type %d not expected in phase %s",
                       (int)env->body_case, fl_secagg_phase_name(self->phase));
    int rc = 0;
    switch (env->body_case) {
    case FEDTL__ENVELOPE__BODY_SA_SETUP:
        rc = s_on_setup(self, env->sa_setup);
        break;
    case FEDTL__ENVELOPE__BODY_SA_KEY_SET:
        rc = s_on_key_set(self, env->sa_key_set);
        break;
    case FEDTL__ENVELOPE__BODY_SA_SHARE_SET:
        rc = s_on_share_set(self, env->sa_share_set);
        break;
    case FEDTL__ENVELOPE__BODY_SA_SURVIVORS:
        if (self->phase == FL_SECAGG_PHASE_CONSISTENCY && env->sa_survivors->n_signatures == 0)
            rc = s_on_survivors(self, env->sa_survivors);
        else if (self->phase == FL_SECAGG_PHASE_REVEAL && env->sa_survivors->n_signatures > 0)
            rc = s_on_reveal(self, env->sa_survivors);
        else
            rc = fl_fail(FL_EFORMAT, "secagg survivors: signatures in the wrong phase");
        break;
    default: /* SA_ABORT: nothing more is revealed */
        self->phase = FL_SECAGG_PHASE_ABORTED;
        s_wipe(self);
        return 0;
    }
    if (rc && self->phase != FL_SECAGG_PHASE_DONE) {
        self->phase = FL_SECAGG_PHASE_ABORTED;
        s_wipe(self);
    }
    return rc;
}
