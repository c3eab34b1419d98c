/* fl_seal: segmented, signed update encryption, and base-model signatures. */
#include "fl_seal.h"
#include "fl_error.h"

#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define S_UPDATE_TAG "fedtl-update-v3" /* 15 bytes, no NUL */
#define S_BASE_TAG   "fedtl-base-v1"   /* 13 bytes, no NUL */
#define S_HELLO_TAG  "fedtl-hello-v1"  /* 14 bytes, no NUL */
#define S_KEY_BYTES  crypto_aead_xchacha20poly1305_ietf_KEYBYTES
#define S_FED_MAX    255 /* federation name length fits a u8 */
#define S_CTX_MAX                                                                                  \
    (sizeof S_UPDATE_TAG - 1 + 4 + 1 + S_FED_MAX + FL_RUN_ID_BYTES + 4 + FL_SIGN_PK_BYTES +        \
     FL_HASH_BYTES + FL_SEAL_KEY_BYTES + 4 + 8)
#define S_HELLO_MAX                                                                                \
    (sizeof S_HELLO_TAG - 1 + 4 + 1 + S_FED_MAX + FL_HELLO_NONCE_BYTES + FL_SIGN_PK_BYTES)

_Static_assert(FL_SEAL_KEY_BYTES == S_KEY_BYTES + crypto_box_SEALBYTES, "sealed key size");
_Static_assert(FL_SEAL_TAG_BYTES == crypto_aead_xchacha20poly1305_ietf_ABYTES, "segment tag");
_Static_assert(FL_SEAL_SEGMENT >= FL_SEAL_MIN_SEGMENT && FL_SEAL_SEGMENT <= FL_SEAL_MAX_SEGMENT,
               "segment size within the wire's limits");
_Static_assert(FL_HASH_BYTES <= crypto_generichash_BYTES_MAX, "hash size");

static void s_put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* What every signed message of fedtl starts with: tag || u32le protocol version || u8 length ||
 * federation name, into out; its length, or 0 when the name is longer than S_FED_MAX. */
static size_t s_put_prefix(uint8_t *out, const char *tag, size_t tag_len, const char *federation)
{
    size_t fed_len = strlen(federation), n = 0;
    if (fed_len > S_FED_MAX)
        return 0;
    memcpy(out, tag, tag_len);
    n += tag_len;
    s_put_le(out + n, FL_PROTOCOL_VERSION, 4);
    n += 4;
    out[n++] = (uint8_t)fed_len;
    memcpy(out + n, federation, fed_len);
    return n + fed_len;
}

/* The update context of docs/PROTOCOL.md into out[S_CTX_MAX]; its length, or 0 when the
 * federation name does not fit. It is each segment's associated data and, followed by the
 * hash of the tags, the message the branch signs. */
static size_t s_context(const char *federation, const uint8_t run_id[FL_RUN_ID_BYTES],
                        uint32_t round, const uint8_t signer_pk[FL_SIGN_PK_BYTES],
                        const uint8_t base_hash[FL_HASH_BYTES],
                        const uint8_t sealed_key[FL_SEAL_KEY_BYTES], uint32_t segment,
                        uint64_t ct_len, uint8_t out[S_CTX_MAX])
{
    size_t n = s_put_prefix(out, S_UPDATE_TAG, sizeof S_UPDATE_TAG - 1, federation);
    if (n == 0)
        return 0;
    memcpy(out + n, run_id, FL_RUN_ID_BYTES);
    n += FL_RUN_ID_BYTES;
    s_put_le(out + n, round, 4);
    n += 4;
    memcpy(out + n, signer_pk, FL_SIGN_PK_BYTES);
    n += FL_SIGN_PK_BYTES;
    memcpy(out + n, base_hash, FL_HASH_BYTES);
    n += FL_HASH_BYTES;
    memcpy(out + n, sealed_key, FL_SEAL_KEY_BYTES);
    n += FL_SEAL_KEY_BYTES;
    s_put_le(out + n, segment, 4);
    n += 4;
    s_put_le(out + n, ct_len, 8);
    n += 8;
    return n;
}

/* The layout of ct_len bytes of segments of `segment` plaintext bytes: the segment count and
 * the plaintext length, or false when no ciphertext fedtl writes has that length. */
static bool s_layout(size_t ct_len, uint32_t segment, size_t *nseg, size_t *plain_len)
{
    if (segment < FL_SEAL_MIN_SEGMENT || segment > FL_SEAL_MAX_SEGMENT ||
        ct_len < FL_SEAL_TAG_BYTES)
        return false;
    size_t full = (size_t)segment + FL_SEAL_TAG_BYTES;
    size_t n = ct_len / full + (ct_len % full != 0);
    size_t last = ct_len - (n - 1) * full;
    if (n > 1 && last == FL_SEAL_TAG_BYTES)
        return false; /* an empty closing segment: never written */
    *nseg = n;
    *plain_len = ct_len - n * FL_SEAL_TAG_BYTES;
    return true;
}

/* Segment i's nonce: i (u64 little-endian), then 1 for the last segment, then zeros. The key
 * is never reused, so the nonce only has to order the segments and mark the end. */
static void s_nonce(uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES], size_t i,
                    bool last)
{
    memset(nonce, 0, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
    s_put_le(nonce, i, 8);
    nonce[8] = last;
}

/* BLAKE2b-256 of the segments' tags, in order. */
static void s_tags_hash(const uint8_t *ct, size_t ct_len, uint32_t segment, size_t nseg,
                        uint8_t out[FL_HASH_BYTES])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, FL_HASH_BYTES);
    size_t full = (size_t)segment + FL_SEAL_TAG_BYTES;
    for (size_t i = 0; i < nseg; i++) {
        size_t end = i + 1 < nseg ? (i + 1) * full : ct_len;
        crypto_generichash_update(&st, ct + end - FL_SEAL_TAG_BYTES, FL_SEAL_TAG_BYTES);
    }
    crypto_generichash_final(&st, out, FL_HASH_BYTES);
}

int fl_seal_update(const struct fl_identity *branch, const uint8_t coord_box_pk[FL_BOX_PK_BYTES],
                   const char *federation, const uint8_t run_id[FL_RUN_ID_BYTES], uint32_t round,
                   const uint8_t base_hash[FL_HASH_BYTES], const uint8_t *plain, size_t plain_len,
                   struct fl_sealed *out)
{
    memset(out, 0, sizeof *out);
    if (sodium_init() < 0)
        return fl_fail(FL_ECRYPTO, "libsodium: initialisation failed");
    if (!branch || !coord_box_pk || !federation || !run_id || !base_hash || (!plain && plain_len))
        return fl_fail(FL_EINVAL, "seal: missing argument");
    if (strlen(federation) > S_FED_MAX)
        return fl_fail(FL_EINVAL, "seal: federation name longer than %d bytes", S_FED_MAX);
    size_t seg = FL_SEAL_SEGMENT;
    size_t nseg = plain_len ? plain_len / seg + (plain_len % seg != 0) : 1;
    if (plain_len > FL_SEAL_MAX_PLAIN)
        return fl_fail(FL_ERANGE, "seal: update of %zu bytes is too large", plain_len);
    size_t ct_len = plain_len + nseg * FL_SEAL_TAG_BYTES;
    uint8_t *ct = malloc(ct_len);
    if (!ct)
        return fl_fail(FL_ENOMEM, "seal: out of memory for %zu bytes", ct_len);
    uint8_t key[S_KEY_BYTES], ctx[S_CTX_MAX + FL_HASH_BYTES];
    crypto_aead_xchacha20poly1305_ietf_keygen(key);
    int rc = 0;
    if (crypto_box_seal(out->sealed_key, key, sizeof key, coord_box_pk) != 0) {
        rc = fl_fail(FL_ECRYPTO, "seal: cannot seal the update key to the coordinator's key");
        goto out;
    }
    size_t ctx_len = s_context(federation, run_id, round, branch->sign_pk, base_hash,
                               out->sealed_key, (uint32_t)seg, ct_len, ctx);
    for (size_t i = 0; i < nseg; i++) {
        size_t off = i * seg, n = i + 1 < nseg ? seg : plain_len - off;
        uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
        s_nonce(nonce, i, i + 1 == nseg);
        static const uint8_t empty[1] = {0};
        crypto_aead_xchacha20poly1305_ietf_encrypt(ct + i * (seg + FL_SEAL_TAG_BYTES), NULL,
                                                   plain ? plain + off : empty, n, ctx, ctx_len,
                                                   NULL, nonce, key);
    }
    s_tags_hash(ct, ct_len, (uint32_t)seg, nseg, ctx + ctx_len);
    if (crypto_sign_detached(out->sig, NULL, ctx, ctx_len + FL_HASH_BYTES, branch->sign_sk) != 0) {
        rc = fl_fail(FL_ECRYPTO, "seal: signing failed");
        goto out;
    }
    out->round = round;
    memcpy(out->branch_key, branch->sign_pk, FL_SIGN_PK_BYTES);
    memcpy(out->base_hash, base_hash, FL_HASH_BYTES);
    out->segment = (uint32_t)seg;
    out->ct = ct;
    out->ct_len = ct_len;
    ct = NULL;
out:
    sodium_memzero(key, sizeof key);
    free(ct);
    return rc;
}

void fl_sealed_free(struct fl_sealed *s)
{
    if (!s)
        return;
    free(s->ct);
    memset(s, 0, sizeof *s);
}

/* The context of u for signer into ctx (S_CTX_MAX + FL_HASH_BYTES bytes), with the segment
 * layout; its length without the tags' hash, or 0 when u's fields cannot be an update. */
static size_t s_update_context(const struct fl_sealed *u, const uint8_t *signer_pk,
                               const char *federation, const uint8_t run_id[FL_RUN_ID_BYTES],
                               uint8_t *ctx, size_t *nseg, size_t *plain_len)
{
    if (!u || !signer_pk || !federation || !run_id || !u->ct ||
        !s_layout(u->ct_len, u->segment, nseg, plain_len))
        return 0;
    return s_context(federation, run_id, u->round, signer_pk, u->base_hash, u->sealed_key,
                     u->segment, u->ct_len, ctx);
}

int fl_verify_update(const struct fl_sealed *u, const uint8_t signer_pk[FL_SIGN_PK_BYTES],
                     const char *federation, const uint8_t run_id[FL_RUN_ID_BYTES])
{
    uint8_t ctx[S_CTX_MAX + FL_HASH_BYTES];
    size_t nseg, plain_len;
    size_t n = sodium_init() < 0
                   ? 0
                   : s_update_context(u, signer_pk, federation, run_id, ctx, &nseg, &plain_len);
    if (n == 0)
        return fl_fail(FL_ECRYPTO, "update signature does not verify");
    s_tags_hash(u->ct, u->ct_len, u->segment, nseg, ctx + n);
    if (crypto_sign_verify_detached(u->sig, ctx, n + FL_HASH_BYTES, signer_pk) != 0)
        return fl_fail(FL_ECRYPTO, "update signature does not verify");
    return 0;
}

static void s_wipe_task(void *arg, int t, size_t begin, size_t end)
{
    (void)t;
    sodium_memzero((uint8_t *)arg + begin, end - begin);
}

void fl_wipe(void *mem, size_t len, fl_pool_t *pool)
{
    if (mem && len)
        fl_pool_for(pool, len, 1u << 20, s_wipe_task, mem);
}

void fl_plain_wipe(struct fl_plain *p, fl_pool_t *pool)
{
    if (!p)
        return;
    fl_wipe(p->data, p->len, pool);
    p->len = 0;
}

void fl_plain_free(struct fl_plain *p)
{
    if (!p)
        return;
    if (p->data)
        sodium_free(p->data); /* zeroes the whole allocation before releasing it */
    memset(p, 0, sizeof *p);
}

/* One opening job: the segments, split by fl_pool_for into contiguous runs. */
struct s_open_job {
    const uint8_t *ct;  /* segments */
    size_t ct_len;      /* their length */
    size_t seg;         /* plaintext bytes per segment */
    size_t nseg;        /* segment count */
    const uint8_t *ctx; /* associated data */
    size_t ctx_len;     /* its length */
    const uint8_t *key; /* the opened one-time key */
    uint8_t *out;       /* plaintext */
    atomic_int failed;  /* a segment did not open */
};

static void s_open_task(void *arg, int t, size_t from, size_t to)
{
    (void)t;
    struct s_open_job *j = arg;
    size_t full = j->seg + FL_SEAL_TAG_BYTES;
    for (size_t i = from; i < to && !atomic_load_explicit(&j->failed, memory_order_relaxed); i++) {
        size_t clen = i + 1 < j->nseg ? full : j->ct_len - i * full;
        uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
        s_nonce(nonce, i, i + 1 == j->nseg);
        if (crypto_aead_xchacha20poly1305_ietf_decrypt(j->out + i * j->seg, NULL, NULL,
                                                       j->ct + i * full, clen, j->ctx, j->ctx_len,
                                                       nonce, j->key) != 0)
            atomic_store(&j->failed, 1);
    }
}

int fl_open_update(const struct fl_identity *coord, const struct fl_sealed *u,
                   const uint8_t signer_pk[FL_SIGN_PK_BYTES], const char *federation,
                   const uint8_t run_id[FL_RUN_ID_BYTES], fl_pool_t *pool, struct fl_plain *out)
{
    fl_plain_wipe(out, pool);
    uint8_t ctx[S_CTX_MAX + FL_HASH_BYTES], key[S_KEY_BYTES];
    size_t nseg, plain_len;
    size_t ctx_len =
        sodium_init() < 0 || !coord || !out
            ? 0
            : s_update_context(u, signer_pk, federation, run_id, ctx, &nseg, &plain_len);
    if (ctx_len == 0 || crypto_box_seal_open(key, u->sealed_key, FL_SEAL_KEY_BYTES, coord->box_pk,
                                             coord->box_sk) != 0)
        return fl_fail(FL_ECRYPTO, "sealed update does not open");
    if (out->cap < plain_len || !out->data) {
        fl_plain_free(out);
        size_t cap = plain_len < 4096 ? 4096 : plain_len;
        if (!(out->data = sodium_malloc(cap))) {
            sodium_memzero(key, sizeof key);
            return fl_fail(FL_ENOMEM, "open: out of memory for %zu bytes", cap);
        }
        out->cap = cap;
    }
    struct s_open_job j = {.ct = u->ct,
                           .ct_len = u->ct_len,
                           .seg = u->segment,
                           .nseg = nseg,
                           .ctx = ctx,
                           .ctx_len = ctx_len,
                           .key = key,
                           .out = out->data};
    atomic_init(&j.failed, 0);
    fl_pool_for(pool, nseg, 1, s_open_task, &j);
    sodium_memzero(key, sizeof key);
    out->len = plain_len;
    if (atomic_load(&j.failed)) {
        fl_plain_wipe(out, pool);
        return fl_fail(FL_ECRYPTO, "sealed update does not open");
    }
    return 0;
}

/* "fedtl-base-v1" || hash */
static size_t s_base_message(const uint8_t base_hash[FL_HASH_BYTES],
                             uint8_t out[sizeof S_BASE_TAG - 1 + FL_HASH_BYTES])
{
    memcpy(out, S_BASE_TAG, sizeof S_BASE_TAG - 1);
    memcpy(out + sizeof S_BASE_TAG - 1, base_hash, FL_HASH_BYTES);
    return sizeof S_BASE_TAG - 1 + FL_HASH_BYTES;
}

int fl_sign_base(const struct fl_identity *coord, const uint8_t base_hash[FL_HASH_BYTES],
                 uint8_t sig[FL_SIG_BYTES])
{
    if (sodium_init() < 0)
        return fl_fail(FL_ECRYPTO, "libsodium: initialisation failed");
    if (!coord || !base_hash || !sig)
        return fl_fail(FL_EINVAL, "sign base: missing argument");
    uint8_t msg[sizeof S_BASE_TAG - 1 + FL_HASH_BYTES];
    size_t n = s_base_message(base_hash, msg);
    if (crypto_sign_detached(sig, NULL, msg, n, coord->sign_sk) != 0)
        return fl_fail(FL_ECRYPTO, "sign base: signing failed");
    return 0;
}

int fl_verify_base(const uint8_t coord_sign_pk[FL_SIGN_PK_BYTES],
                   const uint8_t base_hash[FL_HASH_BYTES], const uint8_t sig[FL_SIG_BYTES])
{
    if (sodium_init() < 0 || !coord_sign_pk || !base_hash || !sig)
        return fl_fail(FL_ECRYPTO, "base signature does not verify");
    uint8_t msg[sizeof S_BASE_TAG - 1 + FL_HASH_BYTES];
    size_t n = s_base_message(base_hash, msg);
    if (crypto_sign_verify_detached(sig, msg, n, coord_sign_pk) != 0)
        return fl_fail(FL_ECRYPTO, "base signature does not verify");
    return 0;
}

/* "fedtl-hello-v1" || u32le protocol version || u8 len || federation || nonce || key; its
 * length, or 0 when the federation name does not fit. */
static size_t s_hello_message(const char *federation, const uint8_t nonce[FL_HELLO_NONCE_BYTES],
                              const uint8_t branch_pk[FL_SIGN_PK_BYTES], uint8_t out[S_HELLO_MAX])
{
    size_t n = s_put_prefix(out, S_HELLO_TAG, sizeof S_HELLO_TAG - 1, federation);
    if (n == 0)
        return 0;
    memcpy(out + n, nonce, FL_HELLO_NONCE_BYTES);
    n += FL_HELLO_NONCE_BYTES;
    memcpy(out + n, branch_pk, FL_SIGN_PK_BYTES);
    return n + FL_SIGN_PK_BYTES;
}

int fl_sign_hello(const struct fl_identity *branch, const char *federation,
                  const uint8_t nonce[FL_HELLO_NONCE_BYTES], uint8_t sig[FL_SIG_BYTES])
{
    if (sodium_init() < 0)
        return fl_fail(FL_ECRYPTO, "libsodium: initialisation failed");
    if (!branch || !federation || !nonce || !sig)
        return fl_fail(FL_EINVAL, "sign hello: missing argument");
    uint8_t msg[S_HELLO_MAX];
    size_t n = s_hello_message(federation, nonce, branch->sign_pk, msg);
    if (n == 0)
        return fl_fail(FL_EINVAL, "sign hello: federation name longer than %d bytes", S_FED_MAX);
    if (crypto_sign_detached(sig, NULL, msg, n, branch->sign_sk) != 0)
        return fl_fail(FL_ECRYPTO, "sign hello: signing failed");
    return 0;
}

int fl_verify_hello(const uint8_t branch_pk[FL_SIGN_PK_BYTES], const char *federation,
                    const uint8_t nonce[FL_HELLO_NONCE_BYTES], const uint8_t sig[FL_SIG_BYTES])
{
    uint8_t msg[S_HELLO_MAX];
    size_t n = 0;
    if (sodium_init() >= 0 && branch_pk && federation && nonce && sig)
        n = s_hello_message(federation, nonce, branch_pk, msg);
    if (n == 0 || crypto_sign_verify_detached(sig, msg, n, branch_pk) != 0)
        return fl_fail(FL_ECRYPTO, "hello signature does not verify");
    return 0;
}
