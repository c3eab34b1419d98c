/* fl_seal: updates sealed to the coordinator and signed by the branch, and the coordinator's
 * signature over its base model. The signed context binds an update to the protocol version,
 * the federation, the round, the branch, the base and the ciphertext (docs/PROTOCOL.md).
 * Verification and opening return one opaque failure (FL_ECRYPTO): no oracle for a peer. */
#ifndef FL_SEAL_H
#define FL_SEAL_H

#include "fl_keys.h"

#include <stddef.h>
#include <stdint.h>

#define FL_SEAL_OVERHEAD 48 /* crypto_box_SEALBYTES */

/* Encrypt plain to the coordinator's X25519 key (sealed box) into a malloc'd *ct of *ct_len
 * bytes, and sign the update context with the branch's key into sig. */
int fl_seal_update(const struct fl_identity *branch, const uint8_t coord_box_pk[FL_BOX_PK_BYTES],
                   const char *federation, uint32_t round, const uint8_t base_hash[32],
                   const uint8_t *plain, size_t plain_len, uint8_t **ct, size_t *ct_len,
                   uint8_t sig[FL_SIG_BYTES]);
/* Check the branch's signature over the update context. 0 or FL_ECRYPTO. */
int fl_verify_update(const uint8_t branch_sign_pk[FL_SIGN_PK_BYTES], const char *federation,
                     uint32_t round, const uint8_t base_hash[32], const uint8_t *ct, size_t ct_len,
                     const uint8_t sig[FL_SIG_BYTES]) __attribute__((warn_unused_result));
/* Open a sealed box with the coordinator's identity into a sodium_malloc'd *plain (free with
 * fl_seal_free_plain, which wipes it). 0 or FL_ECRYPTO. */
int fl_open_update(const struct fl_identity *coord, const uint8_t *ct, size_t ct_len,
                   uint8_t **plain, size_t *plain_len) __attribute__((warn_unused_result));
void fl_seal_free_plain(uint8_t **plain, size_t len);

/* The coordinator's signature over a base model's content hash ("fedtl-base-v1" || hash). */
int fl_sign_base(const struct fl_identity *coord, const uint8_t base_hash[32],
                 uint8_t sig[FL_SIG_BYTES]);
int fl_verify_base(const uint8_t coord_sign_pk[FL_SIGN_PK_BYTES], const uint8_t base_hash[32],
                   const uint8_t sig[FL_SIG_BYTES]) __attribute__((warn_unused_result));

#endif
