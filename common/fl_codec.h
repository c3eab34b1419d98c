/* fl_codec: the one module that speaks protobuf-c. Converts the C structs of fedtl to and
 * from protobuf bytes (the proto/ files) and validates everything it decodes, so callers only
 * ever see well-formed structs. No other file calls a *__pack / *__unpack function. */
#ifndef FL_CODEC_H
#define FL_CODEC_H

#include "fl_arch.h"
#include "fl_tensor.h"

#include <stddef.h>
#include <stdint.h>

#define FL_CODEC_MAX_TENSORS 4096 /* most tensors a file header may list */

/* One row of a file's tensor table: where a tensor's bytes lie in the file. */
struct fl_tensor_entry {
    char name[FL_NAME_MAX];            /* unique within the file */
    int ndim;                          /* axes used in shape (1..FL_TENSOR_MAX_DIMS) */
    int64_t shape[FL_TENSOR_MAX_DIMS]; /* axis sizes, outermost first, all positive */
    uint64_t offset;                   /* first byte, counted from the start of the file */
    uint64_t nbytes;                   /* 4 * product(shape): raw float32 little-endian */
};

/* Encode a base model header into a malloc'd *buf of *len bytes (caller frees).
 * Invalid input is FL_EINVAL; `origin` (the file being written) prefixes messages. */
int fl_codec_pack_base_header(const struct fl_arch *arch, const struct fl_base_meta *meta,
                              const struct fl_tensor_entry *entries, size_t n, const char *origin,
                              uint8_t **buf, size_t *len);
/* Decode and validate a base model header. On success *entries is a malloc'd table of *n
 * rows (NULL when empty; caller frees). On failure (FL_EFORMAT, FL_ENOMEM) the outputs are
 * zeroed and the message starts with `origin`. */
int fl_codec_unpack_base_header(const uint8_t *buf, size_t len, const char *origin,
                                struct fl_arch *arch, struct fl_base_meta *meta,
                                struct fl_tensor_entry **entries, size_t *n);

/* Encode an adapter header into a malloc'd *buf of *len bytes (caller frees). */
int fl_codec_pack_adapter_header(const struct fl_adapter_meta *meta,
                                 const struct fl_tensor_entry *entries, size_t n,
                                 const char *origin, uint8_t **buf, size_t *len);
/* Decode and validate an adapter header; same contract as fl_codec_unpack_base_header. */
int fl_codec_unpack_adapter_header(const uint8_t *buf, size_t len, const char *origin,
                                   struct fl_adapter_meta *meta, struct fl_tensor_entry **entries,
                                   size_t *n);

/* ---- the federation protocol (proto/fedtl_wire.proto) ----
 * Messages are the generated protobuf-c structs; build them with the generated *__INIT
 * macros. Decoding enforces the size limits before it parses and checks every field's
 * length, so a caller never sees an over-long key, hash or blob. */
#include "fedtl_wire.pb-c.h"

#define FL_WIRE_VERSION     2           /* protocol version spoken */
#define FL_WIRE_MAX_MSG     (64u << 20) /* largest frame accepted (also ZMQ_MAXMSGSIZE) */
#define FL_WIRE_MAX_ADAPTER (48u << 20) /* largest adapter file inside a message */
#define FL_WIRE_MAX_CHUNK   (4u << 20)  /* largest base chunk */
#define FL_WIRE_KEY_BYTES   32          /* Ed25519 public key */
#define FL_WIRE_SIG_BYTES   64          /* Ed25519 signature */
#define FL_WIRE_SEALED_KEY  80          /* an update key sealed to the coordinator */
#define FL_WIRE_MIN_SEGMENT (4u << 10)  /* smallest update ciphertext segment */
#define FL_WIRE_MAX_SEGMENT (16u << 20) /* largest update ciphertext segment */
#define FL_WIRE_NAME_MAX    64          /* branch and federation names */

/* Decode one frame into *env (free with fl_wire_free). FL_ERANGE for an oversized frame,
 * FL_EFORMAT for malformed protobuf, a missing body or a field out of bounds, FL_EVERSION for
 * another protocol version; the message says which (the caller adds the peer). */
int fl_wire_decode(const uint8_t *buf, size_t len, Fedtl__Envelope **env);
/* Encode env (version is set here) into a malloc'd buffer the caller frees. */
int fl_wire_encode(Fedtl__Envelope *env, uint8_t **buf, size_t *len);
void fl_wire_free(Fedtl__Envelope **env);
/* The plaintext of a sealed update: same contract. */
int fl_wire_decode_body(const uint8_t *buf, size_t len, Fedtl__UpdateBody **body);
int fl_wire_encode_body(const Fedtl__UpdateBody *body, uint8_t **buf, size_t *len);
void fl_wire_free_body(Fedtl__UpdateBody **body);

#endif
