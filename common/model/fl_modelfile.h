/* fl_modelfile: the base model file (.ftm, validated then used through a read-only mmap) and
 * the adapter file (.fta, small, read into memory and sent over the network as is). A file's
 * BLAKE2b-256 content hash is its identity: adapters record the hash of the base they fit. */
#ifndef FL_MODELFILE_H
#define FL_MODELFILE_H

#include "fl_arch.h"
#include "fl_tensor.h"

#include <stddef.h>
#include <stdint.h>

/* File layout, all little-endian:
 *   offset  size  field
 *   0       8     magic "FEDTLBM\n" (base) or "FEDTLAD\n" (adapter)
 *   8       4     u32 format version (FL_MODELFILE_VERSION)
 *   12      4     u32 reserved, 0
 *   16      8     u64 header length H
 *   24      32    content hash over bytes [0,24) followed by [56, end of file)
 *   56      H     protobuf BaseHeader / AdapterHeader (fl_codec): metadata and tensor table
 *   ...           tensor blobs in table order, raw float32 row-major, each at a 64-byte aligned
 *                 offset from the start of the file, zero padding between; the file ends with
 *                 the last blob. The header never holds tensor data (protobuf stops at 2 GB). */
#define FL_MODELFILE_VERSION  1           /* the only format version this fedtl reads and writes */
#define FL_MODELFILE_PREAMBLE 56          /* bytes before the header */
#define FL_MODELFILE_ALIGN    64          /* tensor blobs start at multiples of this */
#define FL_ADAPTER_MAX_BYTES  (48u << 20) /* largest adapter a peer may send */

/* A base model opened for reading. Zero it (or let fl_base_read do so) before use. */
struct fl_base_file {
    struct fl_arch arch;         /* architecture the tensors belong to (arch.graph: graph) */
    struct fl_graphdef *graph;   /* a graph base's description (owned), NULL for a chain */
    struct fl_base_meta meta;    /* what the base was trained on */
    size_t ntensors;             /* entries in tensors */
    struct fl_tensor *tensors;   /* data borrowed from the read-only mapping (owned=false) */
    uint8_t hash[FL_HASH_BYTES]; /* content hash: the base's identity */
    void *map;                   /* the read-only mapping of the whole file */
    size_t map_len;              /* its length (the file size) */
};

/* Write a base model to path atomically (temporary file, fsync, rename), mode 0644. A graph
 * architecture (arch->graph, see fl_arch_from_graph) is recorded with it. Tensor names must
 * be unique. The content hash (which covers the graph) goes to hash_out unless it is NULL. */
int fl_base_write(const char *path, const struct fl_arch *arch, const struct fl_base_meta *meta,
                  const struct fl_tensor *tensors, size_t n, uint8_t hash_out[FL_HASH_BYTES]);
/* Map and fully validate a base model (layout, header, hash). On failure out is zeroed and
 * fl_error_msg() names the file and what is wrong. Release with fl_base_close. The file must
 * not be truncated while it is open (the mapping would fault). */
int fl_base_read(const char *path, struct fl_base_file *out);
/* Unmap and free; safe on a zeroed or already-closed file. */
void fl_base_close(struct fl_base_file *f);
/* The tensor called name, or NULL. */
const struct fl_tensor *fl_base_tensor(const struct fl_base_file *f, const char *name);

/* An adapter held in memory. Zero it (or let fl_adapter_unpack do so) before use. */
struct fl_adapter_file {
    struct fl_adapter_meta meta; /* method, targets, head classes, base it fits */
    size_t ntensors;             /* entries in tensors */
    struct fl_tensor *tensors;   /* owned copies of the tensors */
    uint8_t hash[FL_HASH_BYTES]; /* content hash of the adapter file */
};

/* The exact bytes of an adapter file in a malloc'd *buf of *len bytes (caller frees);
 * this is also what goes over the network. */
int fl_adapter_pack(const struct fl_adapter_meta *meta, const struct fl_tensor *tensors, size_t n,
                    uint8_t **buf, size_t *len);
/* Validate and decode adapter file bytes; origin (file path or peer) names the source in
 * messages. Copies the tensors: buf may be freed afterwards. On failure out is zeroed. */
int fl_adapter_unpack(const uint8_t *buf, size_t len, const char *origin,
                      struct fl_adapter_file *out);
/* fl_adapter_unpack for bytes whose integrity is already proven (an update that opened under
 * a verified signature): every structural check, but not the content hash again, which is
 * taken from the file as it stands. Copies nothing where it can: a tensor whose data is
 * aligned for floats in buf borrows it (owned = false), so buf must outlive out. */
int fl_adapter_view_authenticated(const uint8_t *buf, size_t len, const char *origin,
                                  struct fl_adapter_file *out);
/* Pack and write atomically to path, mode 0644; the content hash goes to hash_out unless NULL. */
int fl_adapter_write(const char *path, const struct fl_adapter_meta *meta,
                     const struct fl_tensor *tensors, size_t n, uint8_t hash_out[FL_HASH_BYTES]);
/* Read (at most 4 GiB) and unpack an adapter file. */
int fl_adapter_read(const char *path, struct fl_adapter_file *out);
/* Free the tensors; safe on a zeroed or already-closed adapter. */
void fl_adapter_close(struct fl_adapter_file *f);
/* The tensor called name, or NULL. */
const struct fl_tensor *fl_adapter_tensor(const struct fl_adapter_file *f, const char *name);
/* 0 when the adapter was made for the base with content hash base_hash, else FL_EMISMATCH
 * with a message naming both files and both hashes. */
int fl_adapter_check_base(const struct fl_adapter_file *a, const char *adapter_path,
                          const uint8_t base_hash[FL_HASH_BYTES], const char *base_path);

/* Lower-case hex of a content hash, NUL-terminated. */
void fl_hash_hex(const uint8_t hash[FL_HASH_BYTES], char out[2 * FL_HASH_BYTES + 1]);

#endif
