/* fl_seal: sealed-box updates signed over their context, and base-model signatures. */
#include "fl_seal.h"
#include "fl_codec.h"
#include "fl_error.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(FL_SEAL_OVERHEAD == crypto_box_SEALBYTES, "sealed box overhead");

#define S_UPDATE_TAG "fedtl-update-v1" /* 15 bytes, no NUL */
#define S_BASE_TAG   "fedtl-base-v1"   /* 13 bytes, no NUL */
#define S_HASH_BYTES 32                /* BLAKE2b-256 */
#define S_FED_MAX    255               /* federation name length fits a u8 */
#define S_CTX_MAX                                                                                  \
    (sizeof S_UPDATE_TAG - 1 + 4 + 1 + S_FED_MAX + 4 + FL_SIGN_PK_BYTES + S_HASH_BYTES +           \
     S_HASH_BYTES)

_Static_assert(S_HASH_BYTES <= crypto_generichash_BYTES_MAX, "hash size");

static void s_put_u32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* The update context of docs/PROTOCOL.md into out[S_CTX_MAX]; its length, or 0 when the
 * federation name does not fit. */
static size_t s_update_context(const char *federation, uint32_t round,
                               const uint8_t sign_pk[FL_SIGN_PK_BYTES],
                               const uint8_t base_hash[S_HASH_BYTES], const uint8_t *ct,
                               size_t ct_len, uint8_t out[S_CTX_MAX])
{
    size_t fed_len = strlen(federation);
    if (fed_len > S_FED_MAX)
        return 0;
    size_t n = 0;
    memcpy(out + n, S_UPDATE_TAG, sizeof S_UPDATE_TAG - 1);
    n += sizeof S_UPDATE_TAG - 1;
    s_put_u32le(out + n, FL_WIRE_VERSION);
    n += 4;
    out[n++] = (uint8_t)fed_len;
    memcpy(out + n, federation, fed_len);
    n += fed_len;
    s_put_u32le(out + n, round);
    n += 4;
    memcpy(out + n, sign_pk, FL_SIGN_PK_BYTES);
    n += FL_SIGN_PK_BYTES;
    memcpy(out + n, base_hash, S_HASH_BYTES);
    n += S_HASH_BYTES;
    crypto_generichash(out + n, S_HASH_BYTES, ct, ct_len, NULL, 0);
    n += S_HASH_BYTES;
    return n;
}

int fl_seal_update(const struct fl_identity *branch, const uint8_t coord_box_pk[FL_BOX_PK_BYTES],
                   const char *federation, uint32_t round, const uint8_t base_hash[32],
                   const uint8_t *plain, size_t plain_len, uint8_t **ct, size_t *ct_len,
                   uint8_t sig[FL_SIG_BYTES])
{
    *ct = NULL;
    *ct_len = 0;
    if (sodium_init() < 0)
        return fl_fail(FL_ECRYPTO, "libsodium: initialisation failed");
    if (!branch || !coord_box_pk || !federation || !base_hash || (!plain && plain_len))
        return fl_fail(FL_EINVAL, "seal: missing argument");
    if (strlen(federation) > S_FED_MAX)
        return fl_fail(FL_EINVAL, "seal: federation name longer than %d bytes", S_FED_MAX);
    if (plain_len > SIZE_MAX - crypto_box_SEALBYTES ||
        plain_len > crypto_box_MESSAGEBYTES_MAX - crypto_box_SEALBYTES)
        return fl_fail(FL_ERANGE, "seal: update of %zu bytes is too large", plain_len);
    size_t n = plain_len + crypto_box_SEALBYTES;
    uint8_t *c = malloc(n);
    if (!c)
        return fl_fail(FL_ENOMEM, "seal: out of memory for %zu bytes", n);
    static const uint8_t empty[1] = {0};
    if (crypto_box_seal(c, plain ? plain : empty, plain_len, coord_box_pk) != 0) {
        free(c);
        return fl_fail(FL_ECRYPTO, "seal: cannot encrypt to the coordinator's key");
    }
    uint8_t ctx[S_CTX_MAX];
    size_t ctx_len = s_update_context(federation, round, branch->sign_pk, base_hash, c, n, ctx);
    if (crypto_sign_detached(sig, NULL, ctx, ctx_len, branch->sign_sk) != 0) {
        free(c);
        return fl_fail(FL_ECRYPTO, "seal: signing failed");
    }
    *ct = c;
    *ct_len = n;
    return 0;
}

int fl_verify_update(const uint8_t branch_sign_pk[FL_SIGN_PK_BYTES], const char *federation,
                     uint32_t round, const uint8_t base_hash[32], const uint8_t *ct, size_t ct_len,
                     const uint8_t sig[FL_SIG_BYTES])
{
    if (sodium_init() < 0 || !branch_sign_pk || !federation || !base_hash || !sig ||
        (!ct && ct_len))
        return fl_fail(FL_ECRYPTO, "update signature does not verify");
    uint8_t ctx[S_CTX_MAX];
    static const uint8_t empty[1] = {0};
    size_t ctx_len = s_update_context(federation, round, branch_sign_pk, base_hash, ct ? ct : empty,
                                      ct_len, ctx);
    if (ctx_len == 0 || crypto_sign_verify_detached(sig, ctx, ctx_len, branch_sign_pk) != 0)
        return fl_fail(FL_ECRYPTO, "update signature does not verify");
    return 0;
}

int fl_open_update(const struct fl_identity *coord, const uint8_t *ct, size_t ct_len,
                   uint8_t **plain, size_t *plain_len)
{
    *plain = NULL;
    *plain_len = 0;
    if (sodium_init() < 0 || !coord || !ct || ct_len < crypto_box_SEALBYTES)
        return fl_fail(FL_ECRYPTO, "sealed update does not open");
    size_t n = ct_len - crypto_box_SEALBYTES;
    uint8_t *m = sodium_malloc(n ? n : 1);
    if (!m)
        return fl_fail(FL_ENOMEM, "open: out of memory for %zu bytes", n);
    if (crypto_box_seal_open(m, ct, ct_len, coord->box_pk, coord->box_sk) != 0) {
        sodium_free(m);
        return fl_fail(FL_ECRYPTO, "sealed update does not open");
    }
    *plain = m;
    *plain_len = n;
    return 0;
}

void fl_seal_free_plain(uint8_t **plain, size_t len)
{
    if (!plain || !*plain)
        return;
    (void)len;
    sodium_free(*plain); /* zeroes the whole allocation before releasing it */
    *plain = NULL;
}

/* "fedtl-base-v1" || hash */
static size_t s_base_message(const uint8_t base_hash[S_HASH_BYTES],
                             uint8_t out[sizeof S_BASE_TAG - 1 + S_HASH_BYTES])
{
    memcpy(out, S_BASE_TAG, sizeof S_BASE_TAG - 1);
    memcpy(out + sizeof S_BASE_TAG - 1, base_hash, S_HASH_BYTES);
    return sizeof S_BASE_TAG - 1 + S_HASH_BYTES;
}

int fl_sign_base(const struct fl_identity *coord, const uint8_t base_hash[32],
                 uint8_t sig[FL_SIG_BYTES])
{
    if (sodium_init() < 0)
        return fl_fail(FL_ECRYPTO, "libsodium: initialisation failed");
    if (!coord || !base_hash || !sig)
        return fl_fail(FL_EINVAL, "sign base: missing argument");
    uint8_t msg[sizeof S_BASE_TAG - 1 + S_HASH_BYTES];
    size_t n = s_base_message(base_hash, msg);
    if (crypto_sign_detached(sig, NULL, msg, n, coord->sign_sk) != 0)
        return fl_fail(FL_ECRYPTO, "sign base: signing failed");
    return 0;
}

int fl_verify_base(const uint8_t coord_sign_pk[FL_SIGN_PK_BYTES], const uint8_t base_hash[32],
                   const uint8_t sig[FL_SIG_BYTES])
{
    if (sodium_init() < 0 || !coord_sign_pk || !base_hash || !sig)
        return fl_fail(FL_ECRYPTO, "base signature does not verify");
    uint8_t msg[sizeof S_BASE_TAG - 1 + S_HASH_BYTES];
    size_t n = s_base_message(base_hash, msg);
    if (crypto_sign_verify_detached(sig, msg, n, coord_sign_pk) != 0)
        return fl_fail(FL_ECRYPTO, "base signature does not verify");
    return 0;
}
