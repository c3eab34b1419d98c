/* fl_codec: the one module that speaks the federation protocol's protobuf-c
 * (proto/fedtl_wire.proto). Messages are the generated protobuf-c structs; build them with the
 * generated *__INIT macros. Decoding enforces the size limits before it parses and checks every
 * field's length, so a caller never sees an over-long key, hash or blob. No other file packs or
 * unpacks these messages. */
#ifndef FL_CODEC_H
#define FL_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fedtl_wire.pb-c.h"
#include "fl_keys.h"
#include "fl_modelfile.h"
#include "fl_seal.h"

#define FL_WIRE_SEAL_SLACK (64u << 10) /* a sealed update's ciphertext beyond its adapter */
/* Largest frame accepted (also ZMQ_MAXMSGSIZE): an update of the largest adapter. */
#define FL_WIRE_MAX_MSG   (FL_ADAPTER_MAX_BYTES + (128u << 10))
#define FL_WIRE_MAX_CHUNK (4u << 20) /* largest base chunk */
/* Most words a masked input (SecAggMasked) may carry: 8 bytes each within an update's limit. */
#define FL_WIRE_SECAGG_MAX_WORDS (FL_ADAPTER_MAX_BYTES / 8)

/* Decode one frame into *env (free with fl_wire_free). Before parsing, the frame's bytes are
 * scanned without allocating: one body of a known type, the frame within that type's limit
 * (4 KiB for every message but the update, task, final model and base chunk), at most 64
 * fields in the Envelope and in its body; the parse may then allocate the frame's size plus
 * 64 KiB. FL_ERANGE for a frame over FL_WIRE_MAX_MSG or over its type's limit, FL_EFORMAT for
 * malformed protobuf, a missing body, too many fields, a parse over budget or a field out of
 * bounds, FL_EVERSION for another protocol version; the message says which (the caller adds
 * the peer). */
int fl_wire_decode(const uint8_t *buf, size_t len, Fedtl__Envelope **env);
/* Encode env (version is set here) into a malloc'd buffer the caller frees. */
int fl_wire_encode(Fedtl__Envelope *env, uint8_t **buf, size_t *len);
void fl_wire_free(Fedtl__Envelope **env);
/* The plaintext of a sealed update: same contract. */
int fl_wire_decode_body(const uint8_t *buf, size_t len, Fedtl__UpdateBody **body);
int fl_wire_encode_body(const Fedtl__UpdateBody *body, uint8_t **buf, size_t *len);
void fl_wire_free_body(Fedtl__UpdateBody **body);

/* Is code one of the Bye codes this fedtl sends and understands? */
bool fl_wire_bye_known(int code);
/* A Bye code's name for logs ("not_enrolled", ..., "unknown"). */
const char *fl_wire_bye_name(int code);

/* Point u's fields at s (no copies: s must outlive u's use). */
void fl_wire_sealed_put(const struct fl_sealed *s, Fedtl__SealedUpdate *u);
/* A whole Envelope frame carrying the sealed update s, in a malloc'd *buf (caller frees). */
int fl_wire_encode_update(const struct fl_sealed *s, uint8_t **buf, size_t *len);
/* The sealed update u as trust's plain struct: the small fields copied, the ciphertext
 * borrowed from u (so *s must not be fl_sealed_free'd, and u must outlive it). FL_EFORMAT when
 * a field has the wrong length (fl_wire_decode has already refused such a message). */
int fl_wire_sealed_get(const Fedtl__SealedUpdate *u, struct fl_sealed *s);

#endif
