/* Tests of fl_seal: sealed, signed updates bound to their context, and base signatures. */
#include "fl_error.h"
#include "fl_keys.h"
#include "fl_pool.h"
#include "fl_seal.h"
#include "fl_testutil.h"

#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *s_dir;
static struct fl_identity *s_coord, *s_branch, *s_other;

static struct fl_identity *s_make(const char *prefix, const char *name)
{
    char *p = fl_test_path(s_dir, prefix);
    cr_assert_eq(fl_keygen(p, name), 0, "%s", fl_error_msg());
    char key[1100];
    snprintf(key, sizeof key, "%s.key", p);
    free(p);
    struct fl_identity *id = fl_identity_load(key);
    cr_assert_not_null(id, "%s", fl_error_msg());
    return id;
}

static void s_setup(void)
{
    s_dir = fl_test_tmpdir("seal");
    cr_assert_not_null(s_dir);
    s_coord = s_make("coord", "coordinator");
    s_branch = s_make("branch", "branch-01");
    s_other = s_make("other", "branch-02");
}

static void s_teardown(void)
{
    fl_identity_destroy(&s_coord);
    fl_identity_destroy(&s_branch);
    fl_identity_destroy(&s_other);
    fl_test_rmtree(s_dir);
    free(s_dir);
}

TestSuite(fl_seal, .init = s_setup, .fini = s_teardown);

static const char s_fed[] = "hospitals-eu";
static const uint8_t s_run[FL_RUN_ID_BYTES] = {0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7,
                                               0xA8, 0xA9, 0xAA, 0xAB, 0xAC, 0xAD, 0xAE, 0xAF};
static const uint8_t s_base[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                   17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

/* Seal plain (len bytes) as s_branch for s_coord, round 7. */
static void s_seal(const uint8_t *plain, size_t len, struct fl_sealed *s)
{
    cr_assert_eq(fl_seal_update(s_branch, s_coord->box_pk, s_fed, s_run, 7, s_base, plain, len, s),
                 0, "%s", fl_error_msg());
    size_t nseg = len ? (len + FL_SEAL_SEGMENT - 1) / FL_SEAL_SEGMENT : 1;
    cr_assert_eq(s->ct_len, len + nseg * FL_SEAL_TAG_BYTES);
    cr_assert_eq(s->segment, FL_SEAL_SEGMENT);
}

/* Verify, open (on pool) and compare with want. */
static void s_check_opens(const struct fl_sealed *u, fl_pool_t *pool, const uint8_t *want,
                          size_t len)
{
    cr_assert_eq(fl_verify_update(u, s_branch->sign_pk, s_fed, s_run), 0, "%zu bytes", len);
    struct fl_plain p = {0};
    cr_assert_eq(fl_open_update(s_coord, u, s_branch->sign_pk, s_fed, s_run, pool, &p), 0,
                 "%zu bytes", len);
    cr_assert_eq(p.len, len);
    cr_expect(len == 0 || memcmp(p.data, want, len) == 0, "%zu bytes differ", len);
    fl_plain_free(&p);
    cr_expect_null(p.data);
}

Test(fl_seal, round_trip_at_every_segment_boundary)
{
    size_t seg = FL_SEAL_SEGMENT;
    size_t lens[] = {0, 1, 31, seg - 1, seg, seg + 1, 2 * seg, 3 * seg + 5, 17 * seg + 4093};
    size_t max = 17 * seg + 4093;
    uint8_t *data = malloc(max);
    cr_assert_not_null(data);
    randombytes_buf(data, max);
    fl_pool_t *pool = fl_pool_new(3);
    cr_assert_not_null(pool);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        struct fl_sealed s;
        s_seal(lens[i] ? data : NULL, lens[i], &s);
        s_check_opens(&s, NULL, data, lens[i]);
        s_check_opens(&s, pool, data, lens[i]); /* segments opened on three threads */
        fl_sealed_free(&s);
    }
    fl_pool_destroy(&pool);
    free(data);
}

Test(fl_seal, the_plaintext_buffer_is_reused_and_wiped)
{
    static const char a[] = "first update, the longer one", b[] = "second";
    struct fl_sealed sa, sb;
    s_seal((const uint8_t *)a, sizeof a, &sa);
    s_seal((const uint8_t *)b, sizeof b, &sb);
    struct fl_plain p = {0};
    cr_assert_eq(fl_open_update(s_coord, &sa, s_branch->sign_pk, s_fed, s_run, NULL, &p), 0);
    uint8_t *mem = p.data;
    cr_assert_eq(p.len, sizeof a);
    fl_plain_wipe(&p, NULL);
    cr_expect_eq(p.len, 0);
    for (size_t i = 0; i < sizeof a; i++)
        cr_expect_eq(mem[i], 0, "byte %zu survived the wipe", i);
    cr_assert_eq(fl_open_update(s_coord, &sb, s_branch->sign_pk, s_fed, s_run, NULL, &p), 0);
    cr_expect_eq(p.data, mem, "a smaller update reuses the memory");
    cr_expect_eq(memcmp(p.data, b, sizeof b), 0);
    /* a failed open leaves nothing behind */
    sa.ct[0] ^= 1;
    cr_expect_eq(fl_open_update(s_coord, &sa, s_branch->sign_pk, s_fed, s_run, NULL, &p),
                 FL_ECRYPTO);
    cr_expect_eq(p.len, 0);
    for (size_t i = 0; i < sizeof a; i++)
        cr_expect_eq(p.data[i], 0, "byte %zu left after a failed open", i);
    fl_plain_free(&p);
    fl_sealed_free(&sa);
    fl_sealed_free(&sb);
}

Test(fl_seal, context_binds_every_field)
{
    size_t len = 2 * FL_SEAL_SEGMENT + 100; /* three segments */
    uint8_t *msg = calloc(1, len);
    cr_assert_not_null(msg);
    struct fl_sealed s;
    s_seal(msg, len, &s);
    const size_t full_len = s.ct_len;
    const uint8_t *pk = s_branch->sign_pk;
    cr_expect_eq(fl_verify_update(&s, s_other->sign_pk, s_fed, s_run), FL_ECRYPTO, "another key");
    cr_expect_eq(fl_verify_update(&s, pk, "hospitals-us", s_run), FL_ECRYPTO, "another federation");
    uint8_t later_run[FL_RUN_ID_BYTES];
    memcpy(later_run, s_run, sizeof later_run);
    later_run[FL_RUN_ID_BYTES - 1] ^= 1;
    cr_expect_eq(fl_verify_update(&s, pk, s_fed, later_run), FL_ECRYPTO, "another run");
    cr_expect_eq(fl_verify_update(&s, pk, "", s_run), FL_ECRYPTO, "empty federation");
    s.round = 8;
    cr_expect_eq(fl_verify_update(&s, pk, s_fed, s_run), FL_ECRYPTO, "next round");
    s.round = 6;
    cr_expect_eq(fl_verify_update(&s, pk, s_fed, s_run), FL_ECRYPTO, "previous round");
    s.round = 7;
    s.base_hash[31] ^= 1;
    cr_expect_eq(fl_verify_update(&s, pk, s_fed, s_run), FL_ECRYPTO, "another base");
    s.base_hash[31] ^= 1;
    s.sealed_key[40] ^= 1;
    cr_expect_eq(fl_verify_update(&s, pk, s_fed, s_run), FL_ECRYPTO, "another sealed key");
    s.sealed_key[40] ^= 1;
    s.segment = FL_SEAL_SEGMENT / 2;
    cr_expect_eq(fl_verify_update(&s, pk, s_fed, s_run), FL_ECRYPTO, "another segment size");
    s.segment = FL_SEAL_SEGMENT;
    s.ct_len--;
    cr_expect_eq(fl_verify_update(&s, pk, s_fed, s_run), FL_ECRYPTO, "one byte short");
    s.ct_len -= FL_SEAL_SEGMENT + FL_SEAL_TAG_BYTES - 1;
    cr_expect_eq(fl_verify_update(&s, pk, s_fed, s_run), FL_ECRYPTO, "one segment short");
    s.ct_len = full_len;
    size_t full = FL_SEAL_SEGMENT + FL_SEAL_TAG_BYTES;
    for (size_t seg = 0; seg < 3; seg++) {
        size_t tag = (seg < 2 ? (seg + 1) * full : s.ct_len) - 1;
        s.ct[tag] ^= 0x20;
        cr_expect_eq(fl_verify_update(&s, pk, s_fed, s_run), FL_ECRYPTO, "segment %zu's tag", seg);
        s.ct[tag] ^= 0x20;
    }
    for (size_t i = 0; i < FL_SIG_BYTES; i += 7) {
        s.sig[i] ^= 0x01;
        cr_expect_eq(fl_verify_update(&s, pk, s_fed, s_run), FL_ECRYPTO, "signature byte %zu", i);
        s.sig[i] ^= 0x01;
    }
    /* and all restored, it verifies and opens again */
    s_check_opens(&s, NULL, msg, len);
    fl_sealed_free(&s);
    free(msg);
}

Test(fl_seal, a_changed_or_moved_segment_does_not_open)
{
    size_t seg = FL_SEAL_SEGMENT, full = seg + FL_SEAL_TAG_BYTES;
    size_t len = 3 * seg; /* three full segments */
    uint8_t *msg = malloc(len), *saved = malloc(full);
    cr_assert(msg && saved);
    randombytes_buf(msg, len);
    struct fl_sealed s;
    s_seal(msg, len, &s);
    fl_pool_t *pool = fl_pool_new(2);
    struct fl_plain p = {0};
    const uint8_t *pk = s_branch->sign_pk;
    /* A flipped byte in any segment's body: the signature holds (it covers the tags), the
     * segment does not open, and nothing of the update is released. */
    for (size_t i = 0; i < 3; i++) {
        size_t at = i * full + 1000 * (i + 1);
        s.ct[at] ^= 0x01;
        cr_expect_eq(fl_verify_update(&s, pk, s_fed, s_run), 0);
        cr_expect_eq(fl_open_update(s_coord, &s, pk, s_fed, s_run, pool, &p), FL_ECRYPTO,
                     "segment %zu", i);
        cr_expect_eq(p.len, 0);
        s.ct[at] ^= 0x01;
    }
    /* Two whole segments swapped (tags and all): the tags' order is signed. */
    memcpy(saved, s.ct, full);
    memcpy(s.ct, s.ct + full, full);
    memcpy(s.ct + full, saved, full);
    cr_expect_eq(fl_verify_update(&s, pk, s_fed, s_run), FL_ECRYPTO, "segments swapped");
    cr_expect_eq(fl_open_update(s_coord, &s, pk, s_fed, s_run, pool, &p), FL_ECRYPTO);
    memcpy(s.ct + full, s.ct, full);
    memcpy(s.ct, saved, full);
    /* Another branch's context: the segments' associated data differs. */
    cr_expect_eq(fl_open_update(s_coord, &s, s_other->sign_pk, s_fed, s_run, pool, &p), FL_ECRYPTO);
    cr_expect_eq(fl_open_update(s_coord, &s, pk, "other-fed", s_run, pool, &p), FL_ECRYPTO);
    cr_expect_eq(fl_open_update(s_coord, &s, pk, s_fed, s_run, pool, &p), 0);
    cr_expect_eq(memcmp(p.data, msg, len), 0);
    fl_plain_free(&p);
    fl_pool_destroy(&pool);
    fl_sealed_free(&s);
    free(msg);
    free(saved);
}

Test(fl_seal, open_needs_the_coordinator)
{
    static const char msg[] = "for the coordinator only";
    struct fl_sealed s;
    s_seal((const uint8_t *)msg, sizeof msg, &s);
    struct fl_plain p = {0};
    const uint8_t *pk = s_branch->sign_pk;
    cr_expect_eq(fl_open_update(s_other, &s, pk, s_fed, s_run, NULL, &p), FL_ECRYPTO);
    cr_expect_eq(p.len, 0);
    cr_expect_eq(fl_open_update(s_branch, &s, pk, s_fed, s_run, NULL, &p), FL_ECRYPTO);
    cr_expect_eq(fl_open_update(s_coord, &s, pk, s_fed, s_run, NULL, &p), 0);
    cr_expect_eq(memcmp(p.data, msg, sizeof msg), 0);
    fl_plain_free(&p);
    fl_sealed_free(&s);
}

Test(fl_seal, layouts_fedtl_never_writes_are_refused)
{
    static const uint8_t msg[] = "x";
    struct fl_sealed s;
    s_seal(msg, sizeof msg, &s);
    const size_t full_len = s.ct_len;
    struct fl_plain p = {0};
    const uint8_t *pk = s_branch->sign_pk;
    s.ct_len = FL_SEAL_TAG_BYTES - 1; /* shorter than a tag */
    cr_expect_eq(fl_verify_update(&s, pk, s_fed, s_run), FL_ECRYPTO);
    cr_expect_eq(fl_open_update(s_coord, &s, pk, s_fed, s_run, NULL, &p), FL_ECRYPTO);
    s.ct_len = full_len;
    s.segment = 0; /* no division by zero, no endless segments */
    cr_expect_eq(fl_verify_update(&s, pk, s_fed, s_run), FL_ECRYPTO);
    cr_expect_eq(fl_open_update(s_coord, &s, pk, s_fed, s_run, NULL, &p), FL_ECRYPTO);
    s.segment = FL_SEAL_SEGMENT;
    cr_expect_eq(fl_verify_update(&s, pk, s_fed, s_run), 0);
    fl_plain_free(&p);
    fl_sealed_free(&s);
}

/* The signed context, rebuilt by hand from docs/PROTOCOL.md: a known-answer check that the
 * layout is the documented one. */
Test(fl_seal, context_layout_is_the_documented_one)
{
    size_t len = FL_SEAL_SEGMENT + 3; /* two segments */
    uint8_t *msg = calloc(1, len);
    cr_assert_not_null(msg);
    struct fl_sealed s;
    s_seal(msg, len, &s);
    uint8_t ctx[600];
    size_t n = 0;
    memcpy(ctx, "fedtl-update-v3", 15);
    n += 15;
    const uint8_t version[4] = {4, 0, 0, 0}; /* protocol version 4 */
    memcpy(ctx + n, version, 4);
    n += 4;
    ctx[n++] = (uint8_t)strlen(s_fed);
    memcpy(ctx + n, s_fed, strlen(s_fed));
    n += strlen(s_fed);
    memcpy(ctx + n, s_run, FL_RUN_ID_BYTES);
    n += FL_RUN_ID_BYTES;
    const uint8_t round[4] = {7, 0, 0, 0};
    memcpy(ctx + n, round, 4);
    n += 4;
    memcpy(ctx + n, s_branch->sign_pk, 32);
    n += 32;
    memcpy(ctx + n, s_base, 32);
    n += 32;
    memcpy(ctx + n, s.sealed_key, 80);
    n += 80;
    for (int i = 0; i < 4; i++)
        ctx[n++] = (uint8_t)(FL_SEAL_SEGMENT >> (8 * i));
    for (int i = 0; i < 8; i++)
        ctx[n++] = (uint8_t)((uint64_t)s.ct_len >> (8 * i));
    size_t ad_len = n;
    cr_expect_eq(ad_len, 15 + 4 + 1 + 12 + 16 + 4 + 32 + 32 + 80 + 4 + 8);
    size_t full = FL_SEAL_SEGMENT + 16;
    uint8_t tags[32];
    memcpy(tags, s.ct + full - 16, 16);
    memcpy(tags + 16, s.ct + s.ct_len - 16, 16);
    crypto_generichash(ctx + n, 32, tags, 32, NULL, 0);
    n += 32;
    cr_expect_eq(crypto_sign_verify_detached(s.sig, ctx, n, s_branch->sign_pk), 0);
    /* The key opens from the sealed box, and each segment with its documented nonce. */
    uint8_t key[32], nonce[24] = {0}, out[8];
    cr_assert_eq(crypto_box_seal_open(key, s.sealed_key, 80, s_coord->box_pk, s_coord->box_sk), 0);
    nonce[0] = 1; /* segment 1 */
    nonce[8] = 1; /* the last */
    cr_expect_eq(crypto_aead_xchacha20poly1305_ietf_decrypt(out, NULL, NULL, s.ct + full, 3 + 16,
                                                            ctx, ad_len, nonce, key),
                 0);
    nonce[8] = 0; /* not marked last: refused */
    cr_expect_eq(crypto_aead_xchacha20poly1305_ietf_decrypt(out, NULL, NULL, s.ct + full, 3 + 16,
                                                            ctx, ad_len, nonce, key),
                 -1);
    sodium_memzero(key, sizeof key);
    fl_sealed_free(&s);
    free(msg);
}

Test(fl_seal, federation_name_limits)
{
    char fed[300];
    memset(fed, 'f', sizeof fed);
    fed[255] = '\0'; /* 255 bytes: the longest a u8 length can hold */
    struct fl_sealed s;
    cr_assert_eq(fl_seal_update(s_branch, s_coord->box_pk, fed, s_run, 1, s_base,
                                (const uint8_t *)"a", 1, &s),
                 0, "%s", fl_error_msg());
    cr_expect_eq(fl_verify_update(&s, s_branch->sign_pk, fed, s_run), 0);
    fed[255] = 'f';
    fed[256] = '\0';
    cr_expect_eq(fl_verify_update(&s, s_branch->sign_pk, fed, s_run), FL_ECRYPTO);
    fl_sealed_free(&s);
    cr_expect_eq(fl_seal_update(s_branch, s_coord->box_pk, fed, s_run, 1, s_base,
                                (const uint8_t *)"a", 1, &s),
                 FL_EINVAL);
    cr_expect_null(s.ct);
}

Test(fl_seal, base_signature)
{
    uint8_t sig[FL_SIG_BYTES];
    cr_assert_eq(fl_sign_base(s_coord, s_base, sig), 0, "%s", fl_error_msg());
    cr_expect_eq(fl_verify_base(s_coord->sign_pk, s_base, sig), 0);
    /* the documented message: "fedtl-base-v1" || hash */
    uint8_t m[13 + 32];
    memcpy(m, "fedtl-base-v1", 13);
    memcpy(m + 13, s_base, 32);
    cr_expect_eq(crypto_sign_verify_detached(sig, m, sizeof m, s_coord->sign_pk), 0);

    cr_expect_eq(fl_verify_base(s_other->sign_pk, s_base, sig), FL_ECRYPTO);
    uint8_t other[FL_HASH_BYTES];
    memcpy(other, s_base, 32);
    other[0] ^= 0x80;
    cr_expect_eq(fl_verify_base(s_coord->sign_pk, other, sig), FL_ECRYPTO);
    sig[10] ^= 4;
    cr_expect_eq(fl_verify_base(s_coord->sign_pk, s_base, sig), FL_ECRYPTO);
    sig[10] ^= 4;
    /* an update signature is not a base signature, nor the reverse */
    struct fl_sealed s;
    s_seal(s_base, 0, &s);
    cr_expect_eq(fl_verify_base(s_branch->sign_pk, s_base, s.sig), FL_ECRYPTO);
    memcpy(s.sig, sig, FL_SIG_BYTES);
    cr_expect_eq(fl_verify_update(&s, s_coord->sign_pk, s_fed, s_run), FL_ECRYPTO);
    fl_sealed_free(&s);
}

/* The hello context, rebuilt by hand from docs/PROTOCOL.md: "fedtl-hello-v1" || u32le version
 * || u8 len || federation || nonce || key. */
Test(fl_seal, hello_signature_layout_is_the_documented_one)
{
    uint8_t nonce[FL_HELLO_NONCE_BYTES], sig[FL_SIG_BYTES];
    for (size_t i = 0; i < sizeof nonce; i++)
        nonce[i] = (uint8_t)(0x40 + i);
    cr_assert_eq(fl_sign_hello(s_branch, s_fed, nonce, sig), 0, "%s", fl_error_msg());
    uint8_t m[14 + 4 + 1 + 12 + 32 + 32];
    size_t n = 0;
    memcpy(m, "fedtl-hello-v1", 14);
    n += 14;
    const uint8_t version[4] = {4, 0, 0, 0};
    memcpy(m + n, version, 4);
    n += 4;
    m[n++] = (uint8_t)strlen(s_fed);
    memcpy(m + n, s_fed, strlen(s_fed));
    n += strlen(s_fed);
    memcpy(m + n, nonce, sizeof nonce);
    n += sizeof nonce;
    memcpy(m + n, s_branch->sign_pk, 32);
    n += 32;
    cr_assert_eq(n, sizeof m);
    cr_expect_eq(crypto_sign_verify_detached(sig, m, n, s_branch->sign_pk), 0);
    cr_expect_eq(fl_verify_hello(s_branch->sign_pk, s_fed, nonce, sig), 0);
}

Test(fl_seal, hello_signature_binds_key_nonce_and_federation)
{
    uint8_t nonce[FL_HELLO_NONCE_BYTES] = {1}, sig[FL_SIG_BYTES];
    cr_assert_eq(fl_sign_hello(s_branch, s_fed, nonce, sig), 0);
    cr_expect_eq(fl_verify_hello(s_other->sign_pk, s_fed, nonce, sig), FL_ECRYPTO, "another key");
    cr_expect_eq(fl_verify_hello(s_branch->sign_pk, "hospitals-us", nonce, sig), FL_ECRYPTO,
                 "another federation");
    nonce[0] ^= 1;
    cr_expect_eq(fl_verify_hello(s_branch->sign_pk, s_fed, nonce, sig), FL_ECRYPTO,
                 "another nonce");
    nonce[0] ^= 1;
    /* The other Ed25519 key with the same X25519 form (the sign bit flipped) proves nothing. */
    uint8_t twin[FL_SIGN_PK_BYTES];
    memcpy(twin, s_branch->sign_pk, sizeof twin);
    twin[31] ^= 0x80;
    cr_expect_eq(fl_verify_hello(twin, s_fed, nonce, sig), FL_ECRYPTO, "sign-bit twin");
    /* A base signature is no hello signature. */
    uint8_t base_sig[FL_SIG_BYTES];
    cr_assert_eq(fl_sign_base(s_branch, s_base, base_sig), 0);
    cr_expect_eq(fl_verify_hello(s_branch->sign_pk, s_fed, nonce, base_sig), FL_ECRYPTO);
}
