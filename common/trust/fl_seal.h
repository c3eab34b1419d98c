/* fl_seal: updates encrypted to the coordinator and signed by the branch, and the coordinator's
 * signature over its base model (docs/PROTOCOL.md, "Updates").
 *
 * An update's body is encrypted under a fresh one-time key in XChaCha20-Poly1305 segments that
 * open independently (so the coordinator can spread them over cores); the key goes to the
 * coordinator in a sealed box. The branch signs a context that binds the update to the
 * protocol version, the federation and its run, the round, the branch, the base, the sealed key,
 * the segment size, the ciphertext length and every segment's tag. Verification and opening return
 * one opaque failure (FL_ECRYPTO): no oracle for a peer. */
#ifndef FL_SEAL_H
#define FL_SEAL_H

#include "fl_keys.h"
#include "fl_modelfile.h"
#include "fl_pool.h"

#include <stddef.h>
#include <stdint.h>

#define FL_SEAL_KEY_BYTES                                                                          \
    (crypto_box_SEALBYTES +                                                                        \
     crypto_aead_xchacha20poly1305_ietf_KEYBYTES) /* the one-time key in a sealed box */
#define FL_SEAL_SEGMENT      (256u << 10)         /* plaintext bytes per segment fedtl writes */
#define FL_SEAL_TAG_BYTES    16                   /* Poly1305 tag closing each segment */
#define FL_SEAL_MIN_SEGMENT  (4u << 10)           /* smallest segment size a peer may choose */
#define FL_SEAL_MAX_SEGMENT  (16u << 20)          /* largest segment size a peer may choose */
#define FL_HELLO_NONCE_BYTES 32                   /* a Challenge's nonce */
#define FL_SEAL_MAX_PLAIN    (FL_ADAPTER_MAX_BYTES + 1024) /* an adapter file and its metrics */

/* A sealed, signed update, field for field what goes on the wire (SealedUpdate). One made by
 * fl_seal_update owns ct (fl_sealed_free); one the wire layer fills from a received message
 * borrows ct from it and is never freed. */
struct fl_sealed {
    uint32_t round;                        /* round it answers */
    uint8_t branch_key[FL_SIGN_PK_BYTES];  /* signer */
    uint8_t base_hash[FL_HASH_BYTES];      /* base the adapter was trained on */
    uint8_t sealed_key[FL_SEAL_KEY_BYTES]; /* the one-time key, sealed to the coordinator */
    uint32_t segment;                      /* plaintext bytes per segment */
    uint8_t *ct;                           /* malloc'd segments, each closed by its tag */
    size_t ct_len;                         /* their length */
    uint8_t sig[FL_SIG_BYTES];             /* the branch's signature over the context */
};

/* Encrypt plain for the coordinator's X25519 key and sign it with the branch's key. */
int fl_seal_update(const struct fl_identity *branch, const uint8_t coord_box_pk[FL_BOX_PK_BYTES],
                   const char *federation, const uint8_t run_id[FL_RUN_ID_BYTES], uint32_t round,
                   const uint8_t base_hash[FL_HASH_BYTES], const uint8_t *plain, size_t plain_len,
                   struct fl_sealed *out);
void fl_sealed_free(struct fl_sealed *s);

/* Check signer's signature over u's context (u's round, base hash, sealed key, segment size,
 * ciphertext length and segment tags, under `federation` and its run id). Reads no more than the
 * tags of the ciphertext. 0 or FL_ECRYPTO. */
int fl_verify_update(const struct fl_sealed *u, const uint8_t signer_pk[FL_SIGN_PK_BYTES],
                     const char *federation, const uint8_t run_id[FL_RUN_ID_BYTES])
    __attribute__((warn_unused_result));

/* The plaintext of an opened update, in locked memory that is reused from one update to the
 * next and wiped between them. Zero-initialise; fl_plain_free when done. */
struct fl_plain {
    uint8_t *data; /* sodium_malloc'd */
    size_t len;    /* bytes of the current update */
    size_t cap;    /* bytes allocated */
};
/* Zero the current plaintext (keeps the memory for the next update), on pool's threads. */
void fl_plain_wipe(struct fl_plain *p, fl_pool_t *pool);
/* sodium_memzero of len bytes at mem, spread over pool's threads (pool may be NULL). */
void fl_wipe(void *mem, size_t len, fl_pool_t *pool);
/* Wipe and release. */
void fl_plain_free(struct fl_plain *p);

/* Open u (already verified for signer) with the coordinator's identity into out, opening the
 * segments on pool's threads (pool may be NULL). On failure out holds nothing. 0, FL_ENOMEM
 * or FL_ECRYPTO. */
int fl_open_update(const struct fl_identity *coord, const struct fl_sealed *u,
                   const uint8_t signer_pk[FL_SIGN_PK_BYTES], const char *federation,
                   const uint8_t run_id[FL_RUN_ID_BYTES], fl_pool_t *pool, struct fl_plain *out)
    __attribute__((warn_unused_result));

/* The coordinator's signature over a base model's content hash ("fedtl-base-v1" || hash). */
int fl_sign_base(const struct fl_identity *coord, const uint8_t base_hash[FL_HASH_BYTES],
                 uint8_t sig[FL_SIG_BYTES]);
int fl_verify_base(const uint8_t coord_sign_pk[FL_SIGN_PK_BYTES],
                   const uint8_t base_hash[FL_HASH_BYTES], const uint8_t sig[FL_SIG_BYTES])
    __attribute__((warn_unused_result));

/* A branch's proof that it holds its key on this connection: its signature over the hello
 * context ("fedtl-hello-v1" || u32le protocol version || u8 len || federation || nonce ||
 * branch key), nonce being the coordinator's Challenge (docs/PROTOCOL.md, "Exchanges"). */
int fl_sign_hello(const struct fl_identity *branch, const char *federation,
                  const uint8_t nonce[FL_HELLO_NONCE_BYTES], uint8_t sig[FL_SIG_BYTES]);
/* 0, or FL_ECRYPTO (one opaque failure). */
int fl_verify_hello(const uint8_t branch_pk[FL_SIGN_PK_BYTES], const char *federation,
                    const uint8_t nonce[FL_HELLO_NONCE_BYTES], const uint8_t sig[FL_SIG_BYTES])
    __attribute__((warn_unused_result));

#endif
