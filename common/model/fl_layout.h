/* fl_layout: the byte layout both model files share (drawn in fl_modelfile.h): a file planned,
 * hashed and emitted for writing, and file bytes validated and decoded for reading. What is
 * common to fl_basefile.c and fl_adapterfile.c; nothing outside the model layer includes it. */
#ifndef FL_LAYOUT_H
#define FL_LAYOUT_H

#include "fl_arch.h"
#include "fl_filecodec.h"
#include "fl_modelfile.h"
#include "fl_tensor.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FL_LAYOUT_MAGIC_LEN   8
#define FL_LAYOUT_HASH_OFFSET 24 /* the hash covers [0, HASH_OFFSET) and [PREAMBLE, end) */

enum fl_layout_kind { FL_LAYOUT_BASE, FL_LAYOUT_ADAPTER };

/* Metadata on its way into or out of a file; which members are used depends on the kind. */
struct fl_layout_meta {
    enum fl_layout_kind kind;        /* base model or adapter */
    struct fl_arch *arch;            /* base only */
    struct fl_graphdef **graph;      /* base read only: the decoded graph (caller frees), or NULL */
    struct fl_base_meta *base;       /* base only */
    struct fl_adapter_meta *adapter; /* adapter only */
};

/* A file about to be written: its preamble, header and tensor table. */
struct fl_layout_plan {
    uint8_t preamble[FL_MODELFILE_PREAMBLE]; /* magic, version, header length, hash */
    uint8_t *header;                         /* packed protobuf header */
    size_t hlen;                             /* its length */
    struct fl_tensor_entry *entries;         /* tensor table with offsets filled in */
    const struct fl_tensor *tensors;         /* the data, borrowed */
    size_t n;                                /* number of tensors */
    uint64_t total;                          /* file size */
};

/* Receives the bytes of a file after the preamble, in order. */
typedef int (*fl_layout_sink_fn)(void *ctx, const void *p, size_t len);

/* libsodium ready for hashing; FL_ECRYPTO (message starting with origin) when it cannot be. */
int fl_layout_sodium_ready(const char *origin);
/* The content hash of complete file bytes (len >= FL_MODELFILE_PREAMBLE). */
void fl_layout_hash(const uint8_t *buf, size_t len, uint8_t out[FL_HASH_BYTES]);

/* Lay out a file of the n tensors (borrowed until fl_layout_plan_free) with m's header: blob
 * offsets, packed header and preamble (its hash still unset). origin prefixes messages. */
int fl_layout_plan_build(struct fl_layout_plan *p, const struct fl_layout_meta *m,
                         const struct fl_tensor *tensors, size_t n, const char *origin);
/* Feed the bytes after the preamble (header, padding, blobs) to sink, in order; stops at the
 * first non-zero return of sink and returns it. */
int fl_layout_plan_emit(const struct fl_layout_plan *p, fl_layout_sink_fn sink, void *ctx);
/* Compute the content hash from the in-memory data and store it in the preamble. */
void fl_layout_plan_hash(struct fl_layout_plan *p);
void fl_layout_plan_free(struct fl_layout_plan *p);

/* Validate complete file bytes of kind m->kind and decode the header into m, the table into
 * *entries (malloc'd, caller frees) and the content hash into hash: computed and checked when
 * check_hash, else taken from the file. A truncated file says so; any other damage shows up
 * as a hash mismatch (FL_EHASH). */
int fl_layout_parse(const uint8_t *buf, size_t len, const char *origin,
                    const struct fl_layout_meta *m, bool check_hash,
                    struct fl_tensor_entry **entries, size_t *n, uint8_t hash[FL_HASH_BYTES]);
/* *t = the tensor of table row e, its data borrowed (owned = false) from the file bytes at e's
 * offset, which must be aligned for floats and outlive the tensor. */
void fl_layout_view(const struct fl_tensor_entry *e, const uint8_t *file, struct fl_tensor *t);

#endif
