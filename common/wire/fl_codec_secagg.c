/* fl_codec_secagg: field checks and size limits of the secure-aggregation messages. */
#include "fl_codec_secagg.h"
#include "fl_codec.h"
#include "fl_error.h"
#include "fl_secagg_crypto.h"

#include <math.h>

#define S_LIST_MSG  (64u << 10)  /* key sets, shares, reveals: at most 254 entries */
#define S_SMALL     (4u << 10)   /* keys, consistency, abort */
#define S_ROSTER    (256u << 10) /* setup and survivors: up to FL_SECAGG_MAX_BRANCHES entries */
#define S_SLACK     (4u << 10)   /* an Envelope's own bytes around a large body */
#define S_SEALED    (FL_SECAGG_SHARE_BYTES + FL_SECAGG_SEAL_OVERHEAD)
#define S_FEW       16                             /* fields beside a list */
#define S_MAX_INPUT (FL_WIRE_SECAGG_MAX_WORDS - 1) /* values in an input (one word: the weight) */

static bool s_len(ProtobufCBinaryData b, size_t want)
{
    return b.len == want && (want == 0 || b.data);
}

static bool s_signed(uint32_t round, ProtobufCBinaryData key, ProtobufCBinaryData sig)
{
    return round > 0 && s_len(key, FL_SIGN_PK_BYTES) && s_len(sig, FL_SIG_BYTES);
}

static bool s_keys_ok(const Fedtl__SecAggKeys *m)
{
    return m && s_signed(m->round, m->branch_key, m->signature) &&
           s_len(m->c_pk, FL_SECAGG_PK_BYTES) && s_len(m->s_pk, FL_SECAGG_PK_BYTES);
}

static bool s_shares_ok(Fedtl__SecAggShare *const *s, size_t n)
{
    if (n > FL_SECAGG_MAX_DEGREE)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!s[i] || !s_len(s[i]->peer, FL_SIGN_PK_BYTES) || !s_len(s[i]->ciphertext, S_SEALED))
            return false;
    return true;
}

static bool s_keylist_ok(const ProtobufCBinaryData *keys, size_t n)
{
    if (n > FL_SECAGG_MAX_BRANCHES)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!s_len(keys[i], FL_SIGN_PK_BYTES))
            return false;
    return true;
}

static int s_setup(const Fedtl__SecAggSetup *m)
{
    if (m->round == 0 || m->n_branches < 2 || !s_keylist_ok(m->branches, m->n_branches) ||
        !s_len(m->graph_seed, FL_SECAGG_SEED_BYTES) || m->degree == 0 ||
        m->degree >= m->n_branches || m->degree > FL_SECAGG_MAX_DEGREE || m->threshold == 0 ||
        m->threshold > m->degree || !isfinite(m->clip) || !(m->clip > 0) || m->length > S_MAX_INPUT)
        return fl_fail(FL_EFORMAT, "secagg setup: bad round, roster, seed, degree, threshold, "
                                   "clip or length");
    return 0;
}

static int s_survivors(const Fedtl__SecAggSurvivors *m)
{
    if (m->round == 0 || !s_keylist_ok(m->branches, m->n_branches) ||
        m->n_signatures > m->n_branches)
        return fl_fail(FL_EFORMAT, "secagg survivors: bad round, roster or signature count");
    for (size_t i = 0; i < m->n_signatures; i++)
        if (!m->signatures[i] || !s_len(m->signatures[i]->branch_key, FL_SIGN_PK_BYTES) ||
            !s_len(m->signatures[i]->signature, FL_SIG_BYTES))
            return fl_fail(FL_EFORMAT, "secagg survivors: bad signature %zu", i);
    return 0;
}

static int s_reveal(const Fedtl__SecAggReveal *m)
{
    if (!s_signed(m->round, m->branch_key, m->signature) || m->n_shares > FL_SECAGG_MAX_DEGREE)
        return fl_fail(FL_EFORMAT, "secagg reveal: bad round, key, signature or share count");
    for (size_t i = 0; i < m->n_shares; i++)
        if (!m->shares[i] || !s_len(m->shares[i]->owner, FL_SIGN_PK_BYTES) ||
            !s_len(m->shares[i]->share, FL_SECAGG_KEY_BYTES))
            return fl_fail(FL_EFORMAT, "secagg reveal: bad share %zu", i);
    return 0;
}

int fl_wire_secagg_check(const Fedtl__Envelope *e)
{
    switch (e->body_case) {
    case FEDTL__ENVELOPE__BODY_SA_SETUP:
        return s_setup(e->sa_setup);
    case FEDTL__ENVELOPE__BODY_SA_KEYS:
        if (!s_keys_ok(e->sa_keys))
            return fl_fail(FL_EFORMAT, "secagg keys: bad round, key, signature or X25519 key");
        return 0;
    case FEDTL__ENVELOPE__BODY_SA_KEY_SET: {
        const Fedtl__SecAggKeySet *m = e->sa_key_set;
        if (m->round == 0 || m->n_keys > FL_SECAGG_MAX_DEGREE)
            return fl_fail(FL_EFORMAT, "secagg key set: bad round or count");
        for (size_t i = 0; i < m->n_keys; i++)
            if (!s_keys_ok(m->keys[i]) || m->keys[i]->round != m->round)
                return fl_fail(FL_EFORMAT, "secagg key set: bad entry %zu", i);
        return 0;
    }
    case FEDTL__ENVELOPE__BODY_SA_SHARES: {
        const Fedtl__SecAggShares *m = e->sa_shares;
        if (!s_signed(m->round, m->branch_key, m->signature) ||
            !s_shares_ok(m->shares, m->n_shares))
            return fl_fail(FL_EFORMAT, "secagg shares: bad round, key, signature or share");
        return 0;
    }
    case FEDTL__ENVELOPE__BODY_SA_SHARE_SET:
        if (e->sa_share_set->round == 0 ||
            !s_shares_ok(e->sa_share_set->shares, e->sa_share_set->n_shares))
            return fl_fail(FL_EFORMAT, "secagg share set: bad round or share");
        return 0;
    case FEDTL__ENVELOPE__BODY_SA_MASKED: {
        const Fedtl__SecAggMasked *m = e->sa_masked;
        if (!s_signed(m->round, m->branch_key, m->signature) || m->n_words < 1 ||
            m->n_words > FL_WIRE_SECAGG_MAX_WORDS)
            return fl_fail(FL_EFORMAT, "secagg masked input: bad round, key, signature or length");
        return 0;
    }
    case FEDTL__ENVELOPE__BODY_SA_SURVIVORS:
        return s_survivors(e->sa_survivors);
    case FEDTL__ENVELOPE__BODY_SA_CONSISTENCY:
        if (!s_signed(e->sa_consistency->round, e->sa_consistency->branch_key,
                      e->sa_consistency->signature))
            return fl_fail(FL_EFORMAT, "secagg consistency: bad round, key or signature");
        return 0;
    case FEDTL__ENVELOPE__BODY_SA_REVEAL:
        return s_reveal(e->sa_reveal);
    case FEDTL__ENVELOPE__BODY_SA_ABORT:
        if (e->sa_abort->round == 0 ||
            e->sa_abort->code < FEDTL__SEC_AGG_ABORT_CODE__SECAGG_ABORT_TOO_FEW ||
            e->sa_abort->code > FEDTL__SEC_AGG_ABORT_CODE__SECAGG_ABORT_RECONSTRUCT)
            return fl_fail(FL_EFORMAT, "secagg abort: bad round or code");
        return 0;
    default:
        return fl_fail(FL_EFORMAT, "unknown message type %d", (int)e->body_case);
    }
}

size_t fl_wire_secagg_type_max(uint64_t body)
{
    switch (body) {
    case FEDTL__ENVELOPE__BODY_SA_KEYS:
    case FEDTL__ENVELOPE__BODY_SA_CONSISTENCY:
    case FEDTL__ENVELOPE__BODY_SA_ABORT:
        return S_SMALL;
    case FEDTL__ENVELOPE__BODY_SA_KEY_SET:
    case FEDTL__ENVELOPE__BODY_SA_SHARES:
    case FEDTL__ENVELOPE__BODY_SA_SHARE_SET:
    case FEDTL__ENVELOPE__BODY_SA_REVEAL:
        return S_LIST_MSG;
    case FEDTL__ENVELOPE__BODY_SA_SETUP:
    case FEDTL__ENVELOPE__BODY_SA_SURVIVORS:
        return S_ROSTER;
    case FEDTL__ENVELOPE__BODY_SA_MASKED:
        return (size_t)FL_WIRE_SECAGG_MAX_WORDS * 8 + S_SLACK;
    default:
        return 0;
    }
}

int fl_wire_secagg_max_fields(uint64_t body)
{
    switch (body) {
    case FEDTL__ENVELOPE__BODY_SA_KEY_SET:
    case FEDTL__ENVELOPE__BODY_SA_SHARES:
    case FEDTL__ENVELOPE__BODY_SA_SHARE_SET:
    case FEDTL__ENVELOPE__BODY_SA_REVEAL:
        return FL_SECAGG_MAX_DEGREE + S_FEW;
    case FEDTL__ENVELOPE__BODY_SA_SETUP:
        return FL_SECAGG_MAX_BRANCHES + S_FEW;
    case FEDTL__ENVELOPE__BODY_SA_SURVIVORS:
        return 2 * FL_SECAGG_MAX_BRANCHES + S_FEW;
    default:
        return 0;
    }
}
