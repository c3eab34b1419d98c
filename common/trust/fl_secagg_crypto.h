/* fl_secagg_crypto: the cryptography of secure aggregation (SecAgg+, Bell et al., CCS 2020;
 * docs/SECURITY.md, "Secure aggregation"): ephemeral X25519 key agreement, keys derived for one
 * federation, run, round and pair of branches, masks expanded with ChaCha20 into Z_2^64,
 * signatures binding every secure-aggregation message to its round and signer, shares sealed
 * between two neighbours, and the neighbour graph drawn from a seed. */
#ifndef FL_SECAGG_CRYPTO_H
#define FL_SECAGG_CRYPTO_H

#include "fl_keys.h"
#include "fl_pool.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FL_SECAGG_PK_BYTES   crypto_scalarmult_BYTES       /* an ephemeral X25519 public key */
#define FL_SECAGG_SK_BYTES   crypto_scalarmult_SCALARBYTES /* an ephemeral X25519 secret key */
#define FL_SECAGG_KEY_BYTES  32 /* a derived key (mask, channel) or a self-mask seed */
#define FL_SECAGG_SEED_BYTES 32 /* the seed the neighbour graph is drawn from */
#define FL_SECAGG_SEAL_OVERHEAD                                                                    \
    (crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + crypto_aead_xchacha20poly1305_ietf_ABYTES)
#define FL_SECAGG_COMPLETE_MAX 16  /* up to this many branches, everyone is everyone's neighbour */
#define FL_SECAGG_MAX_DEGREE   254 /* neighbours per branch: each takes one Shamir point */
#define FL_SECAGG_FAIL_BOUND   0x1p-20 /* fl_secagg_degree's bound on a round's abort */
#define FL_SECAGG_MAX_BRANCHES 1024    /* branches in one secure aggregation */
#define FL_SECAGG_SHARE_BYTES  (2 * FL_SECAGG_KEY_BYTES) /* a neighbour's two shares, sealed */

/* The round a secure aggregation belongs to; every key and signature is bound to it. */
struct fl_secagg_ctx {
    const char *federation;          /* federation name (at most 255 bytes) */
    uint8_t run_id[FL_RUN_ID_BYTES]; /* the federation run */
    uint32_t round;                  /* the round */
};

/* What a derived key is for: the pairwise mask, the channel that carries shares, the self-mask. */
enum fl_secagg_purpose { FL_SECAGG_MASK = 1, FL_SECAGG_CHANNEL = 2, FL_SECAGG_SELF = 3 };

/* What a signed secure-aggregation message is (signed as one byte). */
enum fl_secagg_kind {
    FL_SECAGG_SIG_KEYS = 1,        /* the two ephemeral public keys */
    FL_SECAGG_SIG_SHARES = 2,      /* the sealed shares for the neighbours */
    FL_SECAGG_SIG_MASKED = 3,      /* the masked input */
    FL_SECAGG_SIG_CONSISTENCY = 4, /* the survivor set the coordinator announced */
    FL_SECAGG_SIG_REVEAL = 5       /* the shares revealed for unmasking */
};

/* A fresh ephemeral X25519 key pair. */
void fl_secagg_keypair(uint8_t pk[FL_SECAGG_PK_BYTES], uint8_t sk[FL_SECAGG_SK_BYTES]);

/* The key that branches id_a and id_b (identity keys, either order) share for purpose in ctx:
 * BLAKE2b keyed by X25519(my_sk, their_pk), over the tag, protocol version, federation, run,
 * round, purpose and the two identities in byte order. FL_ECRYPTO when their_pk is a low-order
 * point (the agreement would be all zeros) or the federation name is too long. */
int fl_secagg_agree(const uint8_t my_sk[FL_SECAGG_SK_BYTES],
                    const uint8_t their_pk[FL_SECAGG_PK_BYTES], const struct fl_secagg_ctx *ctx,
                    enum fl_secagg_purpose purpose, const uint8_t id_a[FL_SIGN_PK_BYTES],
                    const uint8_t id_b[FL_SIGN_PK_BYTES], uint8_t key[FL_SECAGG_KEY_BYTES])
    __attribute__((warn_unused_result));

/* The self-mask key of branch id from its seed, bound to ctx. */
int fl_secagg_self_key(const uint8_t seed[FL_SECAGG_KEY_BYTES], const struct fl_secagg_ctx *ctx,
                       const uint8_t id[FL_SIGN_PK_BYTES], uint8_t key[FL_SECAGG_KEY_BYTES]);

/* Does branch me add (true) or subtract (false) the mask it shares with other? The branch whose
 * identity key sorts first adds, so the pair's two masks cancel in the sum. */
bool fl_secagg_pair_adds(const uint8_t me[FL_SIGN_PK_BYTES], const uint8_t other[FL_SIGN_PK_BYTES]);

/* vec[i] += (or -= when subtract) word i of the mask expanded from key, modulo 2^64: the
 * ChaCha20 (IETF) key stream under key with a zero nonce, read as little-endian u64 words.
 * FL_ERANGE when n words exceed one key stream (2^35 words), FL_ENOMEM when no locked memory
 * holds the key's copy. One mask at a time: fl_secagg_masks_apply does many in one pass. */
int fl_secagg_mask_apply(const uint8_t key[FL_SECAGG_KEY_BYTES], bool subtract, uint64_t *vec,
                         size_t n);

/* One mask of a sum: the key it expands from and its sign. Keep in locked memory
 * (sodium_malloc) and wipe. */
struct fl_secagg_mask {
    uint8_t key[FL_SECAGG_KEY_BYTES]; /* the ChaCha20 key */
    bool subtract;                    /* taken away from the vector rather than added */
};
/* fl_secagg_mask_apply of each of the count masks m into vec, in cache-sized blocks spread
 * over pool's threads (NULL: the caller's alone). The result is the same whatever the pool:
 * every word's mask depends only on its position, and the sum in Z_2^64 on no order. */
int fl_secagg_masks_apply(const struct fl_secagg_mask *m, size_t count, uint64_t *vec, size_t n,
                          fl_pool_t *pool);

/* Sign, as id, a secure-aggregation message of kind with its body: the signed text is the tag,
 * protocol version, federation, run, round, kind, signer's key and the BLAKE2b-256 of body. */
int fl_secagg_sign(const struct fl_identity *id, const struct fl_secagg_ctx *ctx,
                   enum fl_secagg_kind kind, const uint8_t *body, size_t len,
                   uint8_t sig[FL_SIG_BYTES]);
/* 0, or FL_ECRYPTO (one opaque failure). */
int fl_secagg_verify(const uint8_t signer[FL_SIGN_PK_BYTES], const struct fl_secagg_ctx *ctx,
                     enum fl_secagg_kind kind, const uint8_t *body, size_t len,
                     const uint8_t sig[FL_SIG_BYTES]) __attribute__((warn_unused_result));
/* fl_secagg_sign and fl_secagg_verify of n words as body, each as 8 little-endian bytes
 * (fl_secagg_body_words), hashed in place where the machine is little-endian. */
int fl_secagg_sign_words(const struct fl_identity *id, const struct fl_secagg_ctx *ctx,
                         enum fl_secagg_kind kind, const uint64_t *w, size_t n,
                         uint8_t sig[FL_SIG_BYTES]);
int fl_secagg_verify_words(const uint8_t signer[FL_SIGN_PK_BYTES], const struct fl_secagg_ctx *ctx,
                           enum fl_secagg_kind kind, const uint64_t *w, size_t n,
                           const uint8_t sig[FL_SIG_BYTES]) __attribute__((warn_unused_result));

/* Encrypt plain (len bytes) from branch `from` to branch `to` under their channel key, bound to
 * ctx and the pair in that direction; out gets len + FL_SECAGG_SEAL_OVERHEAD bytes. */
int fl_secagg_seal(const uint8_t key[FL_SECAGG_KEY_BYTES], const struct fl_secagg_ctx *ctx,
                   const uint8_t from[FL_SIGN_PK_BYTES], const uint8_t to[FL_SIGN_PK_BYTES],
                   const uint8_t *plain, size_t len, uint8_t *out);
/* Open what fl_secagg_seal made (ct_len bytes) into plain (ct_len - overhead bytes). 0, or
 * FL_ECRYPTO (one opaque failure: wrong key, pair, round or tampered bytes). */
int fl_secagg_open(const uint8_t key[FL_SECAGG_KEY_BYTES], const struct fl_secagg_ctx *ctx,
                   const uint8_t from[FL_SIGN_PK_BYTES], const uint8_t to[FL_SIGN_PK_BYTES],
                   const uint8_t *ct, size_t ct_len, uint8_t *plain)
    __attribute__((warn_unused_result));

/* P[Binomial(k, p) < t]: the chance that fewer than t of k neighbours survive when each does
 * with probability p, summed exactly in double (each term in log space). */
double fl_secagg_binom_below(uint32_t k, double p, uint32_t t);
/* The neighbour count for n branches that should survive losing a fraction dropout of them
 * (in [0, 0.5)): n - 1 (everyone) up to FL_SECAGG_COMPLETE_MAX branches, else the smallest even
 * k at or above 4 log2 n with n * P[Binomial(k, 1 - dropout) < fl_secagg_threshold(k)] at most
 * FL_SECAGG_FAIL_BOUND (no branch left with fewer than a threshold of surviving neighbours,
 * by a union bound over the n), or when no even k below n and FL_SECAGG_MAX_DEGREE meets that,
 * everyone: n - 1, at most FL_SECAGG_MAX_DEGREE. */
uint32_t fl_secagg_degree(uint32_t n, double dropout);
/* The default Shamir threshold among k neighbours: a strict majority, k / 2 + 1, at least 2
 * (1 when k = 1). */
uint32_t fl_secagg_threshold(uint32_t k);
/* The neighbour graph of n branches (0 .. n-1) drawn from seed: the Harary graph H(k, n) (each
 * node on a ring joined to its k/2 nearest on either side) with nodes relabelled by a
 * permutation drawn from seed with ChaCha20, so k-regular, connected and random. k must be even
 * and at most n - 1, or equal to n - 1 (the complete graph); else FL_EINVAL. nbr[i * k ..] gets
 * node i's neighbours in increasing order. */
int fl_secagg_graph(const uint8_t seed[FL_SECAGG_SEED_BYTES], uint32_t n, uint32_t k,
                    uint32_t *nbr);

#endif
