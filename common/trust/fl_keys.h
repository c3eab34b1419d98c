/* fl_keys: node identities. One Ed25519 key pair per node (branch or coordinator); its X25519
 * form serves CurveZMQ and sealed boxes, so one public key names a node everywhere.
 * Files: PREFIX.key (secret, mode 0600) and PREFIX.pub (one line:
 * "fedtl-ed25519 <base64 public key> <name>"). Secret material is wiped after use. */
#ifndef FL_KEYS_H
#define FL_KEYS_H

#include "fl_sizes.h"

#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FL_SIGN_PK_BYTES crypto_sign_PUBLICKEYBYTES /* Ed25519 public key */
#define FL_SIGN_SK_BYTES crypto_sign_SECRETKEYBYTES /* Ed25519 secret key (seed || pk) */
#define FL_BOX_PK_BYTES  crypto_box_PUBLICKEYBYTES  /* X25519 public key */
#define FL_BOX_SK_BYTES  crypto_box_SECRETKEYBYTES  /* X25519 secret key */
#define FL_SIG_BYTES     crypto_sign_BYTES          /* Ed25519 signature */
#define FL_Z85_KEY_LEN   41 /* 40 Z85 characters + NUL, as ZMQ_CURVE_* take them */

/* A node's secret identity; lives in sodium_malloc'd (guarded, locked) memory. */
struct fl_identity {
    uint8_t sign_pk[FL_SIGN_PK_BYTES]; /* Ed25519 public key: the node's name on the wire */
    uint8_t sign_sk[FL_SIGN_SK_BYTES]; /* Ed25519 secret key */
    uint8_t box_pk[FL_BOX_PK_BYTES];   /* X25519 form of sign_pk */
    uint8_t box_sk[FL_BOX_SK_BYTES];   /* X25519 form of sign_sk */
    char name[FL_NODE_NAME_MAX];       /* from the .pub comment / keygen --name */
};

/* A node's public key as read from a .pub line. */
struct fl_pubkey {
    uint8_t sign_pk[FL_SIGN_PK_BYTES]; /* Ed25519 */
    uint8_t box_pk[FL_BOX_PK_BYTES];   /* X25519 form */
    char name[FL_NODE_NAME_MAX];       /* comment */
};

/* Generate a key pair and write PREFIX.key (0600, atomic) and PREFIX.pub. Refuses to
 * overwrite an existing PREFIX.key (FL_EINVAL). */
int fl_keygen(const char *prefix, const char *name);
/* Load PREFIX.key (path of the .key file) into a new sodium_malloc'd identity. Refuses a key
 * file readable by group or others (FL_EINVAL, like ssh). NULL on error (message names the
 * file). Free with fl_identity_destroy, which wipes it. */
struct fl_identity *fl_identity_load(const char *key_path);
void fl_identity_destroy(struct fl_identity **self_p);
/* Parse one .pub line; origin names the source (file:line) in messages. */
int fl_pubkey_parse(const char *line, const char *origin, struct fl_pubkey *pk);
/* Read a .pub file (its first non-comment line). */
int fl_pubkey_load(const char *path, struct fl_pubkey *pk);
/* What fl_pubkey_each calls with each key; a non-zero return stops the walk and is returned. */
typedef int(fl_pubkey_fn)(void *ctx, const struct fl_pubkey *pk);
/* Call fn for every key of a .pub or authorized_keys-style file (one .pub line per key, '#'
 * comments and blank lines skipped), in file order. An unparsable line is an error naming the
 * file and line, not a silent skip. */
int fl_pubkey_each(const char *path, fl_pubkey_fn *fn, void *ctx);
/* The .pub line of a key: "fedtl-ed25519 <base64> <name>" (no newline) into out. */
void fl_pubkey_format(const uint8_t sign_pk[FL_SIGN_PK_BYTES], const char *name, char *out,
                      size_t len);
/* Short printable id of a key for logs: first 12 hex digits of the Ed25519 key. */
void fl_key_id(const uint8_t sign_pk[FL_SIGN_PK_BYTES], char out[FL_KEY_ID_LEN]);
/* Z85 text of a 32-byte X25519 key, for ZMQ_CURVE_SERVERKEY / PUBLICKEY / SECRETKEY. */
void fl_key_z85(const uint8_t key[32], char out[FL_Z85_KEY_LEN]);

#endif
