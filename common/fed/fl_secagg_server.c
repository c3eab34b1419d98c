/* fl_secagg_server: the coordinator's side of SecAgg+ for one round, with no I/O. */
#include "fl_secagg_server.h"
#include "fl_codec.h"
#include "fl_error.h"
#include "fl_shamir.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define S_SEALED (FL_SECAGG_SHARE_BYTES + FL_SECAGG_SEAL_OVERHEAD)
#define S_KEY    FL_SECAGG_KEY_BYTES
#define S_NPHASE 5 /* the phases that collect answers */

/* What the server holds about one branch. */
struct s_branch {
    uint8_t c_pk[FL_SECAGG_PK_BYTES]; /* its channel key */
    uint8_t s_pk[FL_SECAGG_PK_BYTES]; /* its mask key */
    uint8_t keys_sig[FL_SIG_BYTES];   /* its signature over them, forwarded to its neighbours */
    uint8_t cons_sig[FL_SIG_BYTES];   /* its signature over the survivor set */
    bool in[S_NPHASE];                /* it answered phase p */
    uint8_t *cts;                     /* sealed shares it sent, by neighbour position */
    bool *ct_has;                     /* which neighbour positions it sent a share to */
    bool *delivered;                  /* by neighbour position: that neighbour's share went to it */
    uint8_t *rev;                     /* revealed shares of its secret, by revealer position */
    bool *rev_has;                    /* which positions revealed one */
};

struct fl_secagg_server {
    struct fl_secagg_ctx ctx;        /* the round (federation points into fed) */
    char fed[256];                   /* the federation name */
    struct fl_secagg_params p;       /* the round's parameters (branches owned) */
    uint8_t setup_hash[32];          /* fl_secagg_params_hash(p) */
    uint32_t *nbr;                   /* the neighbour graph: n rows of degree entries */
    struct s_branch *b;              /* per branch */
    enum fl_secagg_phase phase;      /* where the round is */
    int abort_code;                  /* SecAggAbortCode when aborted */
    uint64_t *sum;                   /* length + 1 words: the masked sum, then the sum */
    uint8_t *survivors;              /* the survivor set's keys, as signed */
    size_t survivors_len;            /* its length in bytes */
    struct fl_secagg_server_ops ops; /* callbacks */
    void *arg;                       /* their argument */
    uint32_t min_inputs;             /* fewest masked inputs to unmask (0: the threshold) */
};

static const uint32_t *s_row(const fl_secagg_server_t *self, uint32_t i)
{
    return self->nbr + (size_t)i * self->p.degree;
}

static void s_send(fl_secagg_server_t *self, uint32_t i, Fedtl__Envelope *env)
{
    self->ops.send(self->arg, i, env);
}

fl_secagg_server_t *fl_secagg_server_new(const struct fl_secagg_ctx *ctx,
                                         const struct fl_secagg_params *p,
                                         const struct fl_secagg_server_ops *ops, void *arg)
{
    if (fl_secagg_params_check(p) ||
        strlen(ctx->federation) >= sizeof(((struct fl_secagg_server *)0)->fed))
        return NULL;
    fl_secagg_server_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->ctx = *ctx;
    strcpy(self->fed, ctx->federation);
    self->ctx.federation = self->fed;
    self->p = *p;
    self->ops = *ops;
    self->arg = arg;
    uint32_t n = p->n, k = p->degree;
    self->p.branches = malloc((size_t)n * FL_SIGN_PK_BYTES);
    self->nbr = malloc((size_t)n * k * sizeof *self->nbr);
    self->b = calloc(n, sizeof *self->b);
    self->sum = calloc(p->length + 1, sizeof *self->sum);
    if (!self->p.branches || !self->nbr || !self->b || !self->sum)
        goto out_fail;
    memcpy(self->p.branches, p->branches, (size_t)n * FL_SIGN_PK_BYTES);
    for (uint32_t i = 0; i < n; i++) {
        struct s_branch *b = &self->b[i];
        b->cts = malloc((size_t)k * S_SEALED);
        b->rev = sodium_malloc((size_t)k * S_KEY);
        b->ct_has = calloc(k, 1);
        b->delivered = calloc(k, 1);
        b->rev_has = calloc(k, 1);
        if (!b->cts || !b->rev || !b->ct_has || !b->delivered || !b->rev_has)
            goto out_fail;
    }
    if (fl_secagg_graph(p->graph_seed, n, k, self->nbr))
        goto out_fail;
    fl_secagg_params_hash(&self->p, self->setup_hash);
    return self;
out_fail:
    fl_secagg_server_destroy(&self);
    return NULL;
}

void fl_secagg_server_destroy(fl_secagg_server_t **self_p)
{
    fl_secagg_server_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    for (uint32_t i = 0; self->b && i < self->p.n; i++) {
        struct s_branch *b = &self->b[i];
        free(b->cts);
        sodium_free(b->rev);
        free(b->ct_has);
        free(b->delivered);
        free(b->rev_has);
    }
    free(self->b);
    free(self->nbr);
    free(self->sum);
    free(self->survivors);
    free(self->p.branches);
    free(self);
    *self_p = NULL;
}

int fl_secagg_server_start(fl_secagg_server_t *self)
{
    ProtobufCBinaryData *keys = malloc((size_t)self->p.n * sizeof *keys);
    if (!keys)
        return FL_ENOMEM;
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__SecAggSetup m = FEDTL__SEC_AGG_SETUP__INIT;
    fl_secagg_params_put(&self->p, self->ctx.round, &m, keys);
    env.body_case = FEDTL__ENVELOPE__BODY_SA_SETUP;
    env.sa_setup = &m;
    for (uint32_t i = 0; i < self->p.n; i++)
        s_send(self, i, &env);
    free(keys);
    self->phase = FL_SECAGG_PHASE_KEYS;
    return 0;
}

/* Is branch i still expected to answer the current phase? */
static bool s_expected(const fl_secagg_server_t *self, uint32_t i)
{
    return self->phase <= FL_SECAGG_PHASE_REVEAL &&
           (self->phase == FL_SECAGG_PHASE_KEYS || self->b[i].in[self->phase - 1]);
}

static uint32_t s_count(const fl_secagg_server_t *self, int phase)
{
    uint32_t c = 0;
    for (uint32_t i = 0; i < self->p.n; i++)
        c += self->b[i].in[phase];
    return c;
}

static void s_abort(fl_secagg_server_t *self, int code)
{
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__SecAggAbort m = FEDTL__SEC_AGG_ABORT__INIT;
    m.round = self->ctx.round;
    m.code = code;
    env.body_case = FEDTL__ENVELOPE__BODY_SA_ABORT;
    env.sa_abort = &m;
    for (uint32_t i = 0; i < self->p.n; i++)
        if (s_expected(self, i))
            s_send(self, i, &env);
    self->phase = FL_SECAGG_PHASE_ABORTED;
    self->abort_code = code;
    memset(self->sum, 0, (self->p.length + 1) * sizeof *self->sum);
    fl_log(FL_LOG_WARN, "secagg_abort", "round=%u code=%d", self->ctx.round, code);
}

/* Each branch that advertised keys gets those of its neighbours that did. */
static void s_send_key_sets(fl_secagg_server_t *self)
{
    uint32_t k = self->p.degree;
    Fedtl__SecAggKeys *ent = calloc(k, sizeof *ent), **ptr = calloc(k, sizeof *ptr);
    if (!ent || !ptr)
        goto out_free;
    for (uint32_t u = 0; u < self->p.n; u++) {
        if (!self->b[u].in[0])
            continue;
        Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
        Fedtl__SecAggKeySet m = FEDTL__SEC_AGG_KEY_SET__INIT;
        m.round = self->ctx.round;
        m.keys = ptr;
        for (uint32_t j = 0; j < k; j++) {
            uint32_t v = s_row(self, u)[j];
            struct s_branch *bv = &self->b[v];
            if (!bv->in[0])
                continue;
            Fedtl__SecAggKeys *e = &ent[m.n_keys];
            fedtl__sec_agg_keys__init(e);
            e->round = self->ctx.round;
            e->branch_key = (ProtobufCBinaryData){FL_SIGN_PK_BYTES, self->p.branches[v]};
            e->c_pk = (ProtobufCBinaryData){FL_SECAGG_PK_BYTES, bv->c_pk};
            e->s_pk = (ProtobufCBinaryData){FL_SECAGG_PK_BYTES, bv->s_pk};
            e->signature = (ProtobufCBinaryData){FL_SIG_BYTES, bv->keys_sig};
            ptr[m.n_keys++] = e;
        }
        env.body_case = FEDTL__ENVELOPE__BODY_SA_KEY_SET;
        env.sa_key_set = &m;
        s_send(self, u, &env);
    }
out_free:
    free(ent);
    free(ptr);
}

/* Each branch that sent shares gets the shares sealed for it by neighbours that did. */
static void s_send_share_sets(fl_secagg_server_t *self)
{
    uint32_t k = self->p.degree;
    Fedtl__SecAggShare *ent = calloc(k, sizeof *ent), **ptr = calloc(k, sizeof *ptr);
    if (!ent || !ptr)
        goto out_free;
    for (uint32_t u = 0; u < self->p.n; u++) {
        if (!self->b[u].in[1])
            continue;
        Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
        Fedtl__SecAggShareSet m = FEDTL__SEC_AGG_SHARE_SET__INIT;
        m.round = self->ctx.round;
        m.shares = ptr;
        for (uint32_t j = 0; j < k; j++) {
            uint32_t v = s_row(self, u)[j];
            int pv = fl_secagg_pos(s_row(self, v), k, u);
            if (!self->b[v].in[1] || pv < 0 || !self->b[v].ct_has[pv])
                continue;
            Fedtl__SecAggShare *e = &ent[m.n_shares];
            fedtl__sec_agg_share__init(e);
            e->peer = (ProtobufCBinaryData){FL_SIGN_PK_BYTES, self->p.branches[v]};
            e->ciphertext = (ProtobufCBinaryData){S_SEALED, self->b[v].cts + (size_t)pv * S_SEALED};
            ptr[m.n_shares++] = e;
            self->b[u].delivered[j] = true;
        }
        env.body_case = FEDTL__ENVELOPE__BODY_SA_SHARE_SET;
        env.sa_share_set = &m;
        s_send(self, u, &env);
    }
out_free:
    free(ent);
    free(ptr);
}

/* The survivor set to each survivor; with_sigs: and the signatures over it (to the signers). */
static int s_send_survivors(fl_secagg_server_t *self, bool with_sigs)
{
    uint32_t n = self->p.n;
    ProtobufCBinaryData *keys = calloc(n, sizeof *keys);
    Fedtl__SecAggSignature *sig = calloc(n, sizeof *sig), **ptr = calloc(n, sizeof *ptr);
    int rc = FL_ENOMEM;
    if (!keys || !sig || !ptr)
        goto out_free;
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__SecAggSurvivors m = FEDTL__SEC_AGG_SURVIVORS__INIT;
    m.round = self->ctx.round;
    m.branches = keys;
    m.signatures = ptr;
    for (uint32_t i = 0; i < n; i++) {
        if (self->b[i].in[2])
            keys[m.n_branches++] = (ProtobufCBinaryData){FL_SIGN_PK_BYTES, self->p.branches[i]};
        if (with_sigs && self->b[i].in[3]) {
            fedtl__sec_agg_signature__init(&sig[m.n_signatures]);
            sig[m.n_signatures].branch_key =
                (ProtobufCBinaryData){FL_SIGN_PK_BYTES, self->p.branches[i]};
            sig[m.n_signatures].signature =
                (ProtobufCBinaryData){FL_SIG_BYTES, self->b[i].cons_sig};
            ptr[m.n_signatures] = &sig[m.n_signatures];
            m.n_signatures++;
        }
    }
    if (!with_sigs &&
        (rc = fl_secagg_body_keys(keys, m.n_branches, &self->survivors, &self->survivors_len)) != 0)
        goto out_free;
    env.body_case = FEDTL__ENVELOPE__BODY_SA_SURVIVORS;
    env.sa_survivors = &m;
    for (uint32_t i = 0; i < n; i++)
        if (self->b[i].in[with_sigs ? 3 : 2])
            s_send(self, i, &env);
    rc = 0;
out_free:
    free(keys);
    free(sig);
    free(ptr);
    return rc;
}

/* Rebuild branch v's secret from the shares its neighbours revealed into out. */
static int s_rebuild(fl_secagg_server_t *self, uint32_t v, uint8_t out[S_KEY])
{
    uint8_t xs[FL_SECAGG_MAX_DEGREE];
    const uint8_t *ys[FL_SECAGG_MAX_DEGREE];
    unsigned m = 0;
    struct s_branch *b = &self->b[v];
    for (uint32_t j = 0; j < self->p.degree; j++)
        if (b->rev_has[j]) {
            xs[m] = (uint8_t)(j + 1);
            ys[m++] = b->rev + (size_t)j * S_KEY;
        }
    if (m < self->p.threshold)
        return FL_ERANGE;
    return fl_shamir_combine(xs, ys, m, S_KEY, out);
}

/* Dropped branch v's pairwise masks with the survivors, to take out of the sum, appended to
 * m[*cnt...], given its rebuilt mask key. */
static int s_pair_masks(fl_secagg_server_t *self, uint32_t v, const uint8_t s_sk[S_KEY],
                        struct fl_secagg_mask *m, size_t *cnt)
{
    uint8_t pk[FL_SECAGG_PK_BYTES];
    crypto_scalarmult_base(pk, s_sk);
    if (sodium_memcmp(pk, self->b[v].s_pk, sizeof pk) != 0)
        return FL_ECRYPTO; /* the shares did not give the key it advertised */
    uint32_t k = self->p.degree;
    for (uint32_t j = 0; j < k; j++) {
        uint32_t u = s_row(self, v)[j];
        int pu = fl_secagg_pos(s_row(self, u), k, v);
        if (!self->b[u].in[2] || pu < 0 || !self->b[u].delivered[pu])
            continue; /* u did not mask with v */
        const uint8_t *uk = self->p.branches[u], *vk = self->p.branches[v];
        struct fl_secagg_mask *e = &m[(*cnt)++];
        e->subtract = fl_secagg_pair_adds(uk, vk); /* u added it: take it away */
        int rc = fl_secagg_agree(s_sk, self->b[u].s_pk, &self->ctx, FL_SECAGG_MASK, vk, uk, e->key);
        if (rc)
            return rc;
    }
    return 0;
}

/* The reveal phase is over: rebuild the survivors' self-mask seeds and the dropped branches'
 * mask keys, and take all their masks out of the sum in one pass (on the pool's threads). */
static void s_unmask(fl_secagg_server_t *self)
{
    uint8_t secret[S_KEY];
    size_t cap = 1, cnt = 0;
    for (uint32_t v = 0; v < self->p.n; v++)
        cap += !self->b[v].in[1] ? 0 : self->b[v].in[2] ? 1 : self->p.degree;
    struct fl_secagg_mask *m = sodium_malloc(cap * sizeof *m);
    int rc = m ? 0 : FL_ENOMEM;
    for (uint32_t v = 0; v < self->p.n && rc == 0; v++) {
        if (!self->b[v].in[1])
            continue; /* shared nothing: nobody masked with it */
        rc = s_rebuild(self, v, secret);
        if (rc == 0 && self->b[v].in[2]) {
            m[cnt].subtract = true;
            rc = fl_secagg_self_key(secret, &self->ctx, self->p.branches[v], m[cnt++].key);
        } else if (rc == 0) {
            rc = s_pair_masks(self, v, secret, m, &cnt);
        }
    }
    if (rc == 0)
        rc = fl_secagg_masks_apply(m, cnt, self->sum, self->p.length + 1, self->ops.pool);
    sodium_memzero(secret, sizeof secret);
    sodium_free(m); /* wipes the keys */
    if (rc == FL_ERANGE)
        s_abort(self, FEDTL__SEC_AGG_ABORT_CODE__SECAGG_ABORT_TOO_FEW);
    else if (rc)
        s_abort(self, FEDTL__SEC_AGG_ABORT_CODE__SECAGG_ABORT_RECONSTRUCT);
    else
        self->phase = FL_SECAGG_PHASE_DONE;
}

/* End the current phase with the branches that answered it. */
static int s_close(fl_secagg_server_t *self)
{
    int ph = self->phase;
    if (ph > FL_SECAGG_PHASE_REVEAL)
        return FL_EINVAL;
    uint32_t need = self->p.threshold;
    if (ph == FL_SECAGG_PHASE_MASKED && self->min_inputs > need)
        need = self->min_inputs;
    if (s_count(self, ph) < need) {
        s_abort(self, FEDTL__SEC_AGG_ABORT_CODE__SECAGG_ABORT_TOO_FEW);
        return 0;
    }
    int rc = 0;
    switch (ph) {
    case FL_SECAGG_PHASE_KEYS:
        s_send_key_sets(self);
        break;
    case FL_SECAGG_PHASE_SHARES:
        s_send_share_sets(self);
        break;
    case FL_SECAGG_PHASE_MASKED:
        rc = s_send_survivors(self, false);
        break;
    case FL_SECAGG_PHASE_CONSISTENCY:
        rc = s_send_survivors(self, true);
        break;
    case FL_SECAGG_PHASE_REVEAL:
        s_unmask(self);
        return 0;
    }
    if (rc == 0)
        self->phase = ph + 1;
    return rc;
}

void fl_secagg_server_min_inputs(fl_secagg_server_t *self, uint32_t k)
{
    self->min_inputs = k;
}

int fl_secagg_server_timeout(fl_secagg_server_t *self)
{
    return s_close(self);
}

/* The checks every branch message passes: the phase expects it from i, it is for this round
 * and names i's key. */
static int s_admit(fl_secagg_server_t *self, uint32_t i, int phase, uint32_t round,
                   ProtobufCBinaryData key)
{
    if (i >= self->p.n || (int)self->phase != phase || !s_expected(self, i) || self->b[i].in[phase])
        return fl_fail(FL_EINVAL, "secagg: a %s message not expected now (phase %s)",
                       fl_secagg_phase_name(phase), fl_secagg_phase_name(self->phase));
    if (round != self->ctx.round || key.len != FL_SIGN_PK_BYTES ||
        memcmp(key.data, self->p.branches[i], FL_SIGN_PK_BYTES) != 0)
        return fl_fail(FL_EFORMAT, "secagg: message for round %u or another branch's key", round);
    return 0;
}

/* Verify sig as branch i's over body (freed here). */
static int s_verify(fl_secagg_server_t *self, uint32_t i, enum fl_secagg_kind kind, uint8_t *body,
                    size_t len, int rc, ProtobufCBinaryData sig)
{
    if (rc == 0 && fl_secagg_verify(self->p.branches[i], &self->ctx, kind, body, len, sig.data))
        rc = fl_fail(FL_ECRYPTO, "secagg: bad signature");
    free(body);
    return rc;
}

static int s_on_keys(fl_secagg_server_t *self, uint32_t i, const Fedtl__SecAggKeys *m)
{
    int rc = s_admit(self, i, FL_SECAGG_PHASE_KEYS, m->round, m->branch_key);
    if (rc)
        return rc;
    uint8_t body[32 + 2 * FL_SECAGG_PK_BYTES];
    memcpy(body, self->setup_hash, 32);
    memcpy(body + 32, m->c_pk.data, FL_SECAGG_PK_BYTES);
    memcpy(body + 32 + FL_SECAGG_PK_BYTES, m->s_pk.data, FL_SECAGG_PK_BYTES);
    if (fl_secagg_verify(self->p.branches[i], &self->ctx, FL_SECAGG_SIG_KEYS, body, sizeof body,
                         m->signature.data))
        return fl_fail(FL_ECRYPTO, "secagg keys: bad signature");
    struct s_branch *b = &self->b[i];
    memcpy(b->c_pk, m->c_pk.data, FL_SECAGG_PK_BYTES);
    memcpy(b->s_pk, m->s_pk.data, FL_SECAGG_PK_BYTES);
    memcpy(b->keys_sig, m->signature.data, FL_SIG_BYTES);
    b->in[0] = true;
    return 0;
}

static int s_on_shares(fl_secagg_server_t *self, uint32_t i, const Fedtl__SecAggShares *m)
{
    int rc = s_admit(self, i, FL_SECAGG_PHASE_SHARES, m->round, m->branch_key);
    if (rc)
        return rc;
    uint8_t *body = NULL;
    size_t len = 0;
    rc = fl_secagg_body_shares(m->shares, m->n_shares, &body, &len);
    rc = s_verify(self, i, FL_SECAGG_SIG_SHARES, body, len, rc, m->signature);
    if (rc)
        return rc;
    uint32_t k = self->p.degree, want = 0;
    struct s_branch *b = &self->b[i];
    memset(b->ct_has, 0, k);
    for (uint32_t j = 0; j < k; j++)
        want += self->b[s_row(self, i)[j]].in[0];
    for (size_t s = 0; s < m->n_shares; s++) {
        int v = fl_secagg_index(&self->p, m->shares[s]->peer.data);
        int pos = v < 0 ? -1 : fl_secagg_pos(s_row(self, i), k, (uint32_t)v);
        if (pos < 0 || !self->b[v].in[0] || b->ct_has[pos])
            return fl_fail(FL_EFORMAT, "secagg shares: share %zu for no neighbour, or twice", s);
        memcpy(b->cts + (size_t)pos * S_SEALED, m->shares[s]->ciphertext.data, S_SEALED);
        b->ct_has[pos] = true;
    }
    if (m->n_shares != want)
        return fl_fail(FL_EFORMAT, "secagg shares: %zu shares for %u neighbours", m->n_shares,
                       want);
    b->in[1] = true;
    return 0;
}

static int s_on_masked(fl_secagg_server_t *self, uint32_t i, const Fedtl__SecAggMasked *m)
{
    int rc = s_admit(self, i, FL_SECAGG_PHASE_MASKED, m->round, m->branch_key);
    if (rc)
        return rc;
    if (m->n_words != self->p.length + 1)
        return fl_fail(FL_EFORMAT, "secagg masked input: %zu words, want %llu", m->n_words,
                       (unsigned long long)self->p.length + 1);
    if (fl_secagg_verify_words(self->p.branches[i], &self->ctx, FL_SECAGG_SIG_MASKED, m->words,
                               m->n_words, m->signature.data))
        return fl_fail(FL_ECRYPTO, "secagg masked input: bad signature");
    for (size_t w = 0; w < m->n_words; w++)
        self->sum[w] += m->words[w];
    self->b[i].in[2] = true;
    return 0;
}

static int s_on_consistency(fl_secagg_server_t *self, uint32_t i, const Fedtl__SecAggConsistency *m)
{
    int rc = s_admit(self, i, FL_SECAGG_PHASE_CONSISTENCY, m->round, m->branch_key);
    if (rc)
        return rc;
    if (fl_secagg_verify(self->p.branches[i], &self->ctx, FL_SECAGG_SIG_CONSISTENCY,
                         self->survivors, self->survivors_len, m->signature.data))
        return fl_fail(FL_ECRYPTO, "secagg consistency: bad signature over the survivor set");
    memcpy(self->b[i].cons_sig, m->signature.data, FL_SIG_BYTES);
    self->b[i].in[3] = true;
    return 0;
}

static int s_on_reveal(fl_secagg_server_t *self, uint32_t i, const Fedtl__SecAggReveal *m)
{
    int rc = s_admit(self, i, FL_SECAGG_PHASE_REVEAL, m->round, m->branch_key);
    if (rc)
        return rc;
    uint8_t *body = NULL;
    size_t len = 0;
    rc = fl_secagg_body_reveal(m->shares, m->n_shares, &body, &len);
    rc = s_verify(self, i, FL_SECAGG_SIG_REVEAL, body, len, rc, m->signature);
    if (rc)
        return rc;
    uint32_t k = self->p.degree, want = 0;
    bool seen[FL_SECAGG_MAX_DEGREE] = {false};
    for (uint32_t j = 0; j < k; j++)
        want += self->b[i].delivered[j];
    for (size_t s = 0; s < m->n_shares; s++) { /* check all before keeping any */
        const Fedtl__SecAggRevealShare *r = m->shares[s];
        int v = fl_secagg_index(&self->p, r->owner.data);
        int pos = v < 0 ? -1 : fl_secagg_pos(s_row(self, i), k, (uint32_t)v);
        if (pos < 0 || !self->b[i].delivered[pos] || seen[pos] || r->survived != self->b[v].in[2])
            return fl_fail(FL_EFORMAT,
                           "secagg reveal: share %zu not held, twice or of the wrong kind", s);
        seen[pos] = true;
    }
    if (m->n_shares != want)
        return fl_fail(FL_EFORMAT, "secagg reveal: %zu shares, %u held", m->n_shares, want);
    for (size_t s = 0; s < m->n_shares; s++) {
        uint32_t v = (uint32_t)fl_secagg_index(&self->p, m->shares[s]->owner.data);
        int pos = fl_secagg_pos(s_row(self, v), k, i); /* i's Shamir point in v's sharing */
        memcpy(self->b[v].rev + (size_t)pos * S_KEY, m->shares[s]->share.data, S_KEY);
        self->b[v].rev_has[pos] = true;
    }
    self->b[i].in[4] = true;
    return 0;
}

int fl_secagg_server_recv(fl_secagg_server_t *self, uint32_t branch, const Fedtl__Envelope *env)
{
    int rc;
    switch (env->body_case) {
    case FEDTL__ENVELOPE__BODY_SA_KEYS:
        rc = s_on_keys(self, branch, env->sa_keys);
        break;
    case FEDTL__ENVELOPE__BODY_SA_SHARES:
        rc = s_on_shares(self, branch, env->sa_shares);
        break;
    case FEDTL__ENVELOPE__BODY_SA_MASKED:
        rc = s_on_masked(self, branch, env->sa_masked);
        break;
    case FEDTL__ENVELOPE__BODY_SA_CONSISTENCY:
        rc = s_on_consistency(self, branch, env->sa_consistency);
        break;
    case FEDTL__ENVELOPE__BODY_SA_REVEAL:
        rc = s_on_reveal(self, branch, env->sa_reveal);
        break;
    default:
        return fl_fail(FL_EINVAL, "secagg: message type %d is not a branch's secagg message",
                       (int)env->body_case);
    }
    if (rc)
        return rc;
    for (uint32_t i = 0; i < self->p.n; i++)
        if (s_expected(self, i) && !self->b[i].in[self->phase])
            return 0;
    return s_close(self);
}

enum fl_secagg_phase fl_secagg_server_phase(const fl_secagg_server_t *self)
{
    return self->phase;
}

int fl_secagg_server_abort_code(const fl_secagg_server_t *self)
{
    return self->abort_code;
}

const uint64_t *fl_secagg_server_sum(const fl_secagg_server_t *self)
{
    return self->phase == FL_SECAGG_PHASE_DONE ? self->sum : NULL;
}

bool fl_secagg_server_survived(const fl_secagg_server_t *self, uint32_t branch)
{
    return branch < self->p.n && self->phase > FL_SECAGG_PHASE_MASKED && self->b[branch].in[2];
}

uint32_t fl_secagg_server_answered(const fl_secagg_server_t *self, enum fl_secagg_phase phase)
{
    return phase <= FL_SECAGG_PHASE_REVEAL ? s_count(self, phase) : 0;
}

int fl_secagg_server_progress(const fl_secagg_server_t *self, uint32_t branch)
{
    int p = 0;
    while (branch < self->p.n && p < S_NPHASE && self->b[branch].in[p])
        p++;
    return p;
}
