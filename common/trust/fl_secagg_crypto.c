/* fl_secagg_crypto: key agreement, mask expansion, signatures, share channels and the
 * neighbour graph of secure aggregation. */
#include "fl_secagg_crypto.h"
#include "fl_error.h"

#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define S_KDF_TAG      "fedtl-secagg-kdf-v1"  /* 19 bytes, no NUL */
#define S_SIG_TAG      "fedtl-secagg-sig-v1"  /* 19 bytes, no NUL */
#define S_SEAL_TAG     "fedtl-secagg-seal-v1" /* 20 bytes, no NUL */
#define S_GRAPH_TAG    "fedtl-secagg-graph-v1"
#define S_FED_MAX      255
#define S_CTX_MAX      (32 + 4 + 1 + S_FED_MAX + FL_RUN_ID_BYTES + 4 + 1 + 2 * FL_SIGN_PK_BYTES + 32)
#define S_BLOCK_WORDS  2048 /* mask words made at a time, each mask in turn (16 KiB, 256 blocks) */
#define S_GRAIN_BLOCKS 16   /* a thread takes at least this many S_BLOCK_WORDS */

_Static_assert(FL_SECAGG_KEY_BYTES == crypto_stream_chacha20_ietf_KEYBYTES, "mask key");
_Static_assert(FL_SECAGG_KEY_BYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "channel key");
_Static_assert(FL_SECAGG_PK_BYTES == 32 && FL_SECAGG_SK_BYTES == 32, "X25519 sizes");
_Static_assert(S_BLOCK_WORDS % 8 == 0, "whole ChaCha20 blocks");

static size_t s_put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
    return (size_t)n;
}

/* tag || u32le protocol version || u8 length || federation || run id || u32le round into out;
 * its length, or 0 when the federation name is too long. */
static size_t s_put_ctx(uint8_t *out, const char *tag, const struct fl_secagg_ctx *ctx)
{
    size_t tag_len = strlen(tag), fed_len = ctx->federation ? strlen(ctx->federation) : 0;
    if (fed_len > S_FED_MAX || tag_len > 32)
        return 0;
    size_t n = 0;
    memcpy(out, tag, tag_len);
    n += tag_len;
    n += s_put_le(out + n, FL_PROTOCOL_VERSION, 4);
    out[n++] = (uint8_t)fed_len;
    memcpy(out + n, ctx->federation, fed_len);
    n += fed_len;
    memcpy(out + n, ctx->run_id, FL_RUN_ID_BYTES);
    n += FL_RUN_ID_BYTES;
    n += s_put_le(out + n, ctx->round, 4);
    return n;
}

void fl_secagg_keypair(uint8_t pk[FL_SECAGG_PK_BYTES], uint8_t sk[FL_SECAGG_SK_BYTES])
{
    randombytes_buf(sk, FL_SECAGG_SK_BYTES);
    crypto_scalarmult_base(pk, sk);
}

bool fl_secagg_pair_adds(const uint8_t me[FL_SIGN_PK_BYTES], const uint8_t other[FL_SIGN_PK_BYTES])
{
    return memcmp(me, other, FL_SIGN_PK_BYTES) < 0;
}

int fl_secagg_agree(const uint8_t my_sk[FL_SECAGG_SK_BYTES],
                    const uint8_t their_pk[FL_SECAGG_PK_BYTES], const struct fl_secagg_ctx *ctx,
                    enum fl_secagg_purpose purpose, const uint8_t id_a[FL_SIGN_PK_BYTES],
                    const uint8_t id_b[FL_SIGN_PK_BYTES], uint8_t key[FL_SECAGG_KEY_BYTES])
{
    uint8_t shared[crypto_scalarmult_BYTES], msg[S_CTX_MAX];
    int rc = FL_ECRYPTO;
    size_t n = s_put_ctx(msg, S_KDF_TAG, ctx);
    if (n == 0 || crypto_scalarmult(shared, my_sk, their_pk) != 0)
        goto out_wipe;
    msg[n++] = (uint8_t)purpose;
    bool a_first = memcmp(id_a, id_b, FL_SIGN_PK_BYTES) < 0;
    memcpy(msg + n, a_first ? id_a : id_b, FL_SIGN_PK_BYTES);
    n += FL_SIGN_PK_BYTES;
    memcpy(msg + n, a_first ? id_b : id_a, FL_SIGN_PK_BYTES);
    n += FL_SIGN_PK_BYTES;
    crypto_generichash(key, FL_SECAGG_KEY_BYTES, msg, n, shared, sizeof shared);
    rc = 0;
out_wipe:
    sodium_memzero(shared, sizeof shared);
    return rc;
}

int fl_secagg_self_key(const uint8_t seed[FL_SECAGG_KEY_BYTES], const struct fl_secagg_ctx *ctx,
                       const uint8_t id[FL_SIGN_PK_BYTES], uint8_t key[FL_SECAGG_KEY_BYTES])
{
    uint8_t msg[S_CTX_MAX];
    size_t n = s_put_ctx(msg, S_KDF_TAG, ctx);
    if (n == 0)
        return FL_EINVAL;
    msg[n++] = FL_SECAGG_SELF;
    memcpy(msg + n, id, FL_SIGN_PK_BYTES);
    n += FL_SIGN_PK_BYTES;
    crypto_generichash(key, FL_SECAGG_KEY_BYTES, msg, n, seed, FL_SECAGG_KEY_BYTES);
    return 0;
}

/* Little-endian u64 at p. */
static inline uint64_t s_le64(const uint8_t *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t w;
    memcpy(&w, p, sizeof w);
    return w;
#else
    uint64_t w = 0;
    for (int b = 7; b >= 0; b--)
        w = (w << 8) | p[b];
    return w;
#endif
}

/* One fl_secagg_masks_apply: the masks and the vector they go into. */
struct s_masks_job {
    const struct fl_secagg_mask *m; /* the masks */
    size_t count;                   /* how many */
    uint64_t *vec;                  /* the vector */
    size_t n;                       /* its words */
};

/* Words [begin, end) x S_BLOCK_WORDS of the job's vector, every mask in turn over one block
 * while it is in cache. Block b of a mask is the key stream from ChaCha20 block
 * b x S_BLOCK_WORDS / 8 on, so the result does not depend on how the range is cut. */
static void s_masks_range(void *arg, int t, size_t begin, size_t end)
{
    (void)t;
    static const uint8_t zero[S_BLOCK_WORDS * 8];
    static const uint8_t nonce[crypto_stream_chacha20_ietf_NONCEBYTES];
    const struct s_masks_job *j = arg;
    uint8_t buf[S_BLOCK_WORDS * 8];
    for (size_t blk = begin; blk < end; blk++) {
        size_t off = blk * S_BLOCK_WORDS;
        size_t words = j->n - off < S_BLOCK_WORDS ? j->n - off : S_BLOCK_WORDS;
        size_t bytes = (words * 8 + 63) / 64 * 64;
        uint64_t *v = j->vec + off;
        for (size_t k = 0; k < j->count; k++) {
            crypto_stream_chacha20_ietf_xor_ic(buf, zero, bytes, nonce, (uint32_t)(off / 8),
                                               j->m[k].key);
            if (j->m[k].subtract)
                for (size_t i = 0; i < words; i++)
                    v[i] -= s_le64(buf + 8 * i);
            else
                for (size_t i = 0; i < words; i++)
                    v[i] += s_le64(buf + 8 * i);
        }
    }
    sodium_memzero(buf, sizeof buf);
}

int fl_secagg_masks_apply(const struct fl_secagg_mask *m, size_t count, uint64_t *vec, size_t n,
                          fl_pool_t *pool)
{
    if (n > ((uint64_t)1 << 35))
        return fl_fail(FL_ERANGE, "secagg: a mask of %zu words is longer than one key stream", n);
    if (count == 0 || n == 0)
        return 0;
    struct s_masks_job job = {m, count, vec, n};
    fl_pool_for(pool, (n + S_BLOCK_WORDS - 1) / S_BLOCK_WORDS, S_GRAIN_BLOCKS, s_masks_range, &job);
    return 0;
}

int fl_secagg_mask_apply(const uint8_t key[FL_SECAGG_KEY_BYTES], bool subtract, uint64_t *vec,
                         size_t n)
{
    struct fl_secagg_mask *m = sodium_malloc(sizeof *m);
    if (!m)
        return FL_ENOMEM;
    memcpy(m->key, key, FL_SECAGG_KEY_BYTES);
    m->subtract = subtract;
    int rc = fl_secagg_masks_apply(m, 1, vec, n, NULL);
    sodium_free(m); /* wipes */
    return rc;
}

/* The signed text of fl_secagg_sign, for a body of BLAKE2b-256 digest, into msg[S_CTX_MAX];
 * its length, or 0. */
static size_t s_sig_msg(const uint8_t signer[FL_SIGN_PK_BYTES], const struct fl_secagg_ctx *ctx,
                        enum fl_secagg_kind kind, const uint8_t digest[32], uint8_t *msg)
{
    size_t n = s_put_ctx(msg, S_SIG_TAG, ctx);
    if (n == 0)
        return 0;
    msg[n++] = (uint8_t)kind;
    memcpy(msg + n, signer, FL_SIGN_PK_BYTES);
    n += FL_SIGN_PK_BYTES;
    memcpy(msg + n, digest, 32);
    return n + 32;
}

/* BLAKE2b-256 of n words as little-endian bytes (fl_secagg_body_words), without a copy where
 * the machine is little-endian. */
static void s_words_digest(const uint64_t *w, size_t n, uint8_t digest[32])
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    crypto_generichash(digest, 32, (const uint8_t *)w, n * sizeof *w, NULL, 0);
#else
    crypto_generichash_state st;
    uint8_t buf[4096];
    crypto_generichash_init(&st, NULL, 0, 32);
    for (size_t done = 0; done < n;) {
        size_t m = n - done < sizeof buf / 8 ? n - done : sizeof buf / 8;
        for (size_t i = 0; i < m; i++)
            for (int b = 0; b < 8; b++)
                buf[8 * i + (size_t)b] = (uint8_t)(w[done + i] >> (8 * b));
        crypto_generichash_update(&st, buf, m * 8);
        done += m;
    }
    crypto_generichash_final(&st, digest, 32);
#endif
}

static int s_sign(const struct fl_identity *id, const struct fl_secagg_ctx *ctx,
                  enum fl_secagg_kind kind, const uint8_t digest[32], uint8_t sig[FL_SIG_BYTES])
{
    uint8_t msg[S_CTX_MAX];
    size_t n = s_sig_msg(id->sign_pk, ctx, kind, digest, msg);
    if (n == 0)
        return fl_fail(FL_EINVAL, "secagg: federation name too long");
    crypto_sign_detached(sig, NULL, msg, n, id->sign_sk);
    return 0;
}

static int s_verify(const uint8_t signer[FL_SIGN_PK_BYTES], const struct fl_secagg_ctx *ctx,
                    enum fl_secagg_kind kind, const uint8_t digest[32],
                    const uint8_t sig[FL_SIG_BYTES])
{
    uint8_t msg[S_CTX_MAX];
    size_t n = s_sig_msg(signer, ctx, kind, digest, msg);
    if (n == 0 || crypto_sign_verify_detached(sig, msg, n, signer) != 0)
        return FL_ECRYPTO;
    return 0;
}

int fl_secagg_sign(const struct fl_identity *id, const struct fl_secagg_ctx *ctx,
                   enum fl_secagg_kind kind, const uint8_t *body, size_t len,
                   uint8_t sig[FL_SIG_BYTES])
{
    uint8_t digest[32];
    crypto_generichash(digest, sizeof digest, body, len, NULL, 0);
    return s_sign(id, ctx, kind, digest, sig);
}

int fl_secagg_verify(const uint8_t signer[FL_SIGN_PK_BYTES], const struct fl_secagg_ctx *ctx,
                     enum fl_secagg_kind kind, const uint8_t *body, size_t len,
                     const uint8_t sig[FL_SIG_BYTES])
{
    uint8_t digest[32];
    crypto_generichash(digest, sizeof digest, body, len, NULL, 0);
    return s_verify(signer, ctx, kind, digest, sig);
}

int fl_secagg_sign_words(const struct fl_identity *id, const struct fl_secagg_ctx *ctx,
                         enum fl_secagg_kind kind, const uint64_t *w, size_t n,
                         uint8_t sig[FL_SIG_BYTES])
{
    uint8_t digest[32];
    s_words_digest(w, n, digest);
    return s_sign(id, ctx, kind, digest, sig);
}

int fl_secagg_verify_words(const uint8_t signer[FL_SIGN_PK_BYTES], const struct fl_secagg_ctx *ctx,
                           enum fl_secagg_kind kind, const uint64_t *w, size_t n,
                           const uint8_t sig[FL_SIG_BYTES])
{
    uint8_t digest[32];
    s_words_digest(w, n, digest);
    return s_verify(signer, ctx, kind, digest, sig);
}

/* The associated data of a sealed share message into ad[S_CTX_MAX]; its length, or 0. */
static size_t s_seal_ad(const struct fl_secagg_ctx *ctx, const uint8_t from[FL_SIGN_PK_BYTES],
                        const uint8_t to[FL_SIGN_PK_BYTES], uint8_t *ad)
{
    size_t n = s_put_ctx(ad, S_SEAL_TAG, ctx);
    if (n == 0)
        return 0;
    memcpy(ad + n, from, FL_SIGN_PK_BYTES);
    n += FL_SIGN_PK_BYTES;
    memcpy(ad + n, to, FL_SIGN_PK_BYTES);
    return n + FL_SIGN_PK_BYTES;
}

int fl_secagg_seal(const uint8_t key[FL_SECAGG_KEY_BYTES], const struct fl_secagg_ctx *ctx,
                   const uint8_t from[FL_SIGN_PK_BYTES], const uint8_t to[FL_SIGN_PK_BYTES],
                   const uint8_t *plain, size_t len, uint8_t *out)
{
    uint8_t ad[S_CTX_MAX];
    size_t ad_len = s_seal_ad(ctx, from, to, ad);
    if (ad_len == 0)
        return fl_fail(FL_EINVAL, "secagg: federation name too long");
    uint8_t *nonce = out, *ct = out + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
    randombytes_buf(nonce, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
    crypto_aead_xchacha20poly1305_ietf_encrypt(ct, NULL, plain, len, ad, ad_len, NULL, nonce, key);
    return 0;
}

int fl_secagg_open(const uint8_t key[FL_SECAGG_KEY_BYTES], const struct fl_secagg_ctx *ctx,
                   const uint8_t from[FL_SIGN_PK_BYTES], const uint8_t to[FL_SIGN_PK_BYTES],
                   const uint8_t *ct, size_t ct_len, uint8_t *plain)
{
    uint8_t ad[S_CTX_MAX];
    size_t ad_len = s_seal_ad(ctx, from, to, ad);
    if (ad_len == 0 || ct_len < FL_SECAGG_SEAL_OVERHEAD)
        return FL_ECRYPTO;
    const uint8_t *nonce = ct;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            plain, NULL, NULL, ct + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
            ct_len - crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, ad, ad_len, nonce, key) != 0)
        return FL_ECRYPTO;
    return 0;
}

double fl_secagg_binom_below(uint32_t k, double p, uint32_t t)
{
    if (t == 0)
        return 0;
    if (t > k)
        return 1;
    if (p <= 0)
        return 1;
    if (p >= 1)
        return 0;
    /* Each term C(k, i) p^i (1-p)^(k-i) in log space: no overflow of C(k, i) nor underflow of
     * p^i before the product is formed. */
    double lp = log(p), lq = log1p(-p), lk = lgamma((double)k + 1), sum = 0;
    for (uint32_t i = 0; i < t; i++)
        sum +=
            exp(lk - lgamma((double)i + 1) - lgamma((double)(k - i) + 1) + i * lp + (k - i) * lq);
    return sum < 1 ? sum : 1;
}

uint32_t fl_secagg_degree(uint32_t n, double dropout)
{
    if (n <= FL_SECAGG_COMPLETE_MAX)
        return n ? n - 1 : 0;
    uint32_t everyone = n - 1 < FL_SECAGG_MAX_DEGREE ? n - 1 : FL_SECAGG_MAX_DEGREE;
    uint32_t k = (uint32_t)ceil(4.0 * log2((double)n));
    k += k & 1u;
    if (k >= n)
        k = (n - 1) & ~1u;
    for (; k <= everyone; k += 2)
        if ((double)n * fl_secagg_binom_below(k, 1 - dropout, fl_secagg_threshold(k)) <=
            FL_SECAGG_FAIL_BOUND)
            return k;
    return everyone;
}

uint32_t fl_secagg_threshold(uint32_t k)
{
    if (k <= 1)
        return k;
    return k / 2 + 1 < 2 ? 2 : k / 2 + 1;
}

/* Uniform in [0, bound) from the ChaCha20 stream of key at *pos (bytes of buf used), rejection
 * sampling so that there is no modulo bias. */
static uint32_t s_draw(const uint8_t key[32], uint8_t buf[64], uint32_t *block, unsigned *pos,
                       uint32_t bound)
{
    static const uint8_t zero[64];
    static const uint8_t nonce[crypto_stream_chacha20_ietf_NONCEBYTES];
    uint32_t limit = UINT32_MAX - UINT32_MAX % bound;
    for (;;) {
        if (*pos == 64) {
            crypto_stream_chacha20_ietf_xor_ic(buf, zero, 64, nonce, (*block)++, key);
            *pos = 0;
        }
        uint32_t v = (uint32_t)buf[*pos] | (uint32_t)buf[*pos + 1] << 8 |
                     (uint32_t)buf[*pos + 2] << 16 | (uint32_t)buf[*pos + 3] << 24;
        *pos += 4;
        if (v < limit)
            return v % bound;
    }
}

static int s_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int fl_secagg_graph(const uint8_t seed[FL_SECAGG_SEED_BYTES], uint32_t n, uint32_t k, uint32_t *nbr)
{
    if (n < 2 || k == 0 || k > n - 1 || (k % 2 && k != n - 1) || k > FL_SECAGG_MAX_DEGREE)
        return fl_fail(FL_EINVAL, "secagg: no %u-regular neighbour graph of %u branches", k, n);
    uint32_t *perm = malloc((size_t)n * sizeof *perm); /* ring position -> branch */
    if (!perm)
        return FL_ENOMEM;
    uint8_t key[32], buf[64];
    crypto_generichash(key, sizeof key, (const uint8_t *)S_GRAPH_TAG, sizeof S_GRAPH_TAG - 1, seed,
                       FL_SECAGG_SEED_BYTES);
    uint32_t block = 0;
    unsigned pos = 64;
    for (uint32_t i = 0; i < n; i++)
        perm[i] = i;
    for (uint32_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
        uint32_t j = s_draw(key, buf, &block, &pos, i + 1), tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
    for (uint32_t p = 0; p < n; p++) {
        uint32_t *row = nbr + (size_t)perm[p] * k, m = 0;
        if (k == n - 1) { /* complete */
            for (uint32_t q = 0; q < n; q++)
                if (q != perm[p])
                    row[m++] = q;
            continue;
        }
        for (uint32_t d = 1; d <= k / 2; d++) {
            row[m++] = perm[(p + d) % n];
            row[m++] = perm[(p + n - d) % n];
        }
        qsort(row, k, sizeof *row, s_cmp_u32);
    }
    sodium_memzero(key, sizeof key);
    free(perm);
    return 0;
}
