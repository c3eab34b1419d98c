/* fuzz_util: memfd-backed files, hash fix-up and fixture keys for the fuzz targets. */
#include "fuzz_util.h"
#include "fl_modelfile.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define S_HASH_OFFSET 24 /* fl_modelfile.h: the hash sits at [24, 56) */

const char *fuzz_file_set(struct fuzz_file *f, const char *tag, const uint8_t *data, size_t len)
{
    if (f->fd < 0) {
        f->fd = memfd_create(tag, MFD_CLOEXEC);
        if (f->fd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
    }
    if (ftruncate(f->fd, 0) != 0) {
        perror("ftruncate");
        abort();
    }
    size_t done = 0;
    while (done < len) {
        ssize_t w = pwrite(f->fd, data + done, len - done, (off_t)done);
        if (w <= 0) {
            perror("pwrite");
            abort();
        }
        done += (size_t)w;
    }
    return f->path;
}

void fuzz_fix_hash(uint8_t *buf, size_t len)
{
    if (len < FL_MODELFILE_PREAMBLE)
        return;
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, FL_HASH_BYTES);
    crypto_generichash_update(&st, buf, S_HASH_OFFSET);
    crypto_generichash_update(&st, buf + FL_MODELFILE_PREAMBLE, len - FL_MODELFILE_PREAMBLE);
    crypto_generichash_final(&st, buf + S_HASH_OFFSET, FL_HASH_BYTES);
}

static void s_identity(struct fl_identity *id, uint8_t fill, const char *name)
{
    uint8_t seed[crypto_sign_SEEDBYTES];
    memset(id, 0, sizeof *id);
    memset(seed, fill, sizeof seed);
    if (sodium_init() < 0 || crypto_sign_seed_keypair(id->sign_pk, id->sign_sk, seed) != 0 ||
        crypto_sign_ed25519_pk_to_curve25519(id->box_pk, id->sign_pk) != 0 ||
        crypto_sign_ed25519_sk_to_curve25519(id->box_sk, id->sign_sk) != 0)
        abort();
    snprintf(id->name, sizeof id->name, "%s", name);
}

void fuzz_branch_identity(struct fl_identity *id)
{
    s_identity(id, 0xB7, "fuzz-branch");
}

void fuzz_coord_identity(struct fl_identity *id)
{
    s_identity(id, 0xC0, "fuzz-coordinator");
}

void fuzz_secagg_identity(struct fl_identity *id, int i)
{
    s_identity(id, (uint8_t)(0xB7 + i), i ? "fuzz-secagg-branch" : "fuzz-branch");
}

void fuzz_secagg_params(struct fl_secagg_params *p, uint8_t keys[FUZZ_SECAGG_N][FL_SIGN_PK_BYTES])
{
    memset(p, 0, sizeof *p);
    for (int i = 0; i < FUZZ_SECAGG_N; i++) {
        struct fl_identity id;
        fuzz_secagg_identity(&id, i);
        memcpy(keys[i], id.sign_pk, FL_SIGN_PK_BYTES);
    }
    p->n = FUZZ_SECAGG_N;
    p->branches = keys;
    memset(p->graph_seed, 0x5E, sizeof p->graph_seed);
    p->degree = 2;
    p->threshold = 2;
    p->fixed = FL_SECAGG_FIXED_DEFAULT;
    p->length = FUZZ_SECAGG_LENGTH;
}

void fuzz_secagg_ctx(struct fl_secagg_ctx *ctx)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->federation = FUZZ_FEDERATION;
    memcpy(ctx->run_id, FUZZ_RUN_ID, FL_RUN_ID_BYTES);
    ctx->round = FUZZ_ROUND;
}
