/* fuzz_util: what the libFuzzer targets under fuzz/ share: in-memory files (memfd) for the
 * loaders that take a path, the content-hash fix-up that lets mutated model files past the
 * hash check, and the fixed keys the corpus generator seals and signs with. */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include "fl_keys.h"
#include "fl_secagg.h"

#include <stddef.h>
#include <stdint.h>

#define FUZZ_FEDERATION "fedtl" /* federation name bound into the seed update's signature */
#define FUZZ_ROUND      3       /* round of the seed update */
/* the run id bound into the seed update's signature */
#define FUZZ_RUN_ID ((const uint8_t[FL_RUN_ID_BYTES]){0x72, 0x75, 0x6e})

/* A file that lives in memory: a memfd reached through /proc/self/fd/N. */
struct fuzz_file {
    int fd;        /* the memfd; initialise to -1 (FUZZ_FILE_INIT) */
    char path[64]; /* "/proc/self/fd/N" */
};
#define FUZZ_FILE_INIT                                                                             \
    {                                                                                              \
        .fd = -1                                                                                   \
    }

/* Replace the contents of f (created on first use, named tag) by data[0..len). Aborts when
 * the memfd cannot be made or written: that is the harness failing, not the code under test. */
const char *fuzz_file_set(struct fuzz_file *f, const char *tag, const uint8_t *data, size_t len);

/* Recompute the content hash of fedtl model file bytes in place (bytes [24, 56) over [0, 24)
 * and [56, len)); no-op when len is shorter than the preamble. */
void fuzz_fix_hash(uint8_t *buf, size_t len);

/* The branch and coordinator identities the seed corpus is made with (from fixed seeds).
 * Plain memory (not sodium_malloc): these keys are public test fixtures. */
void fuzz_branch_identity(struct fl_identity *id);
void fuzz_coord_identity(struct fl_identity *id);

/* Secure aggregation's fixture: FUZZ_SECAGG_N branches, branch 0 being fuzz_branch_identity
 * and the others from their own fixed seeds, and the round they take part in (degree 2,
 * threshold 2, the default encoding, FUZZ_SECAGG_LENGTH values, a fixed graph seed).
 * fuzz_secagg_params fills p with branches pointing into keys. */
#define FUZZ_SECAGG_N      3
#define FUZZ_SECAGG_LENGTH 4
void fuzz_secagg_identity(struct fl_identity *id, int i);
void fuzz_secagg_params(struct fl_secagg_params *p, uint8_t keys[FUZZ_SECAGG_N][FL_SIGN_PK_BYTES]);
void fuzz_secagg_ctx(struct fl_secagg_ctx *ctx);

/* How make_corpus writes a seed: OUT_DIR/target/name. */
typedef void(corpus_write_fn)(const char *target, const char *name, const void *buf, size_t len);
/* The wire corpus's secure-aggregation frames (corpus_secagg.c), written through write. */
void corpus_secagg(corpus_write_fn *write);

/* make_corpus's tiny graph base (corpus_graph.c): x [1,6,6] -> Conv 3x3 -> Relu -> Add (+ x)
 * -> GlobalAveragePool -> Flatten -> Gemm [3, 2], written to OUT_DIR/base/graph-tiny.ftm; 0 or
 * an FL_E* code (message set). */
int corpus_graph_base(const char *out_dir, int64_t created);

#endif
