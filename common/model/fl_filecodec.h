/* fl_filecodec: the model files' protobuf-c headers (proto/fedtl_model.proto). Converts the
 * engine's structs to and from header bytes and validates everything it decodes, so callers
 * only ever see well-formed structs. The only file that packs or unpacks fedtl_model.proto. */
#ifndef FL_FILECODEC_H
#define FL_FILECODEC_H

#include "fl_arch.h"
#include "fl_graphdef.h"
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
 * rows (NULL when empty; caller frees) and, for a graph base, *graph its description
 * (malloc'd, the caller frees it with fl_graphdef_free and free; arch->graph points at it),
 * else NULL. On failure (FL_EFORMAT, FL_ENOMEM) the outputs are zeroed and the message
 * starts with `origin`. */
int fl_codec_unpack_base_header(const uint8_t *buf, size_t len, const char *origin,
                                struct fl_arch *arch, struct fl_graphdef **graph,
                                struct fl_base_meta *meta, struct fl_tensor_entry **entries,
                                size_t *n);

/* Encode an adapter header into a malloc'd *buf of *len bytes (caller frees). */
int fl_codec_pack_adapter_header(const struct fl_adapter_meta *meta,
                                 const struct fl_tensor_entry *entries, size_t n,
                                 const char *origin, uint8_t **buf, size_t *len);
/* Decode and validate an adapter header; same contract as fl_codec_unpack_base_header. */
int fl_codec_unpack_adapter_header(const uint8_t *buf, size_t len, const char *origin,
                                   struct fl_adapter_meta *meta, struct fl_tensor_entry **entries,
                                   size_t *n);

#endif
