/* Tests of fl_seal: sealed, signed updates bound to their context, and base signatures. */
#include "fl_error.h"
#include "fl_keys.h"
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
static const uint8_t s_base[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                   17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

struct sealed {
    uint8_t *ct;               /* malloc'd ciphertext */
    size_t ct_len;             /* its length */
    uint8_t sig[FL_SIG_BYTES]; /* the branch's signature */
};

static void s_seal(const uint8_t *plain, size_t len, struct sealed *s)
{
    cr_assert_eq(fl_seal_update(s_branch, s_coord->box_pk, s_fed, 7, s_base, plain, len, &s->ct,
                                &s->ct_len, s->sig),
                 0, "%s", fl_error_msg());
    cr_assert_eq(s->ct_len, len + FL_SEAL_OVERHEAD);
}

Test(fl_seal, round_trip)
{
    static const char msg[] = "adapter bytes, samples, losses";
    struct sealed s;
    s_seal((const uint8_t *)msg, sizeof msg, &s);
    cr_expect_eq(fl_verify_update(s_branch->sign_pk, s_fed, 7, s_base, s.ct, s.ct_len, s.sig), 0);
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    cr_assert_eq(fl_open_update(s_coord, s.ct, s.ct_len, &plain, &plain_len), 0);
    cr_assert_eq(plain_len, sizeof msg);
    cr_expect_eq(memcmp(plain, msg, sizeof msg), 0);
    fl_seal_free_plain(&plain, plain_len);
    cr_expect_null(plain);
    fl_seal_free_plain(&plain, plain_len);
    free(s.ct);
}

Test(fl_seal, empty_and_large_updates)
{
    struct sealed s;
    s_seal(NULL, 0, &s);
    cr_expect_eq(fl_verify_update(s_branch->sign_pk, s_fed, 7, s_base, s.ct, s.ct_len, s.sig), 0);
    uint8_t *plain;
    size_t plain_len;
    cr_assert_eq(fl_open_update(s_coord, s.ct, s.ct_len, &plain, &plain_len), 0);
    cr_expect_eq(plain_len, 0);
    fl_seal_free_plain(&plain, plain_len);
    free(s.ct);

    size_t n = 8u << 20;
    uint8_t *big = malloc(n);
    cr_assert_not_null(big);
    randombytes_buf(big, n);
    s_seal(big, n, &s);
    cr_assert_eq(fl_open_update(s_coord, s.ct, s.ct_len, &plain, &plain_len), 0);
    cr_assert_eq(plain_len, n);
    cr_expect_eq(memcmp(plain, big, n), 0);
    fl_seal_free_plain(&plain, plain_len);
    free(s.ct);
    free(big);
}

Test(fl_seal, context_binds_every_field)
{
    static const char msg[] = "update";
    struct sealed s;
    s_seal((const uint8_t *)msg, sizeof msg, &s);
    uint8_t other_base[32];
    memcpy(other_base, s_base, 32);
    other_base[31] ^= 1;

    cr_expect_eq(fl_verify_update(s_other->sign_pk, s_fed, 7, s_base, s.ct, s.ct_len, s.sig),
                 FL_ECRYPTO, "another branch's key");
    cr_expect_eq(
        fl_verify_update(s_branch->sign_pk, "hospitals-us", 7, s_base, s.ct, s.ct_len, s.sig),
        FL_ECRYPTO, "another federation");
    cr_expect_eq(fl_verify_update(s_branch->sign_pk, "", 7, s_base, s.ct, s.ct_len, s.sig),
                 FL_ECRYPTO, "empty federation");
    cr_expect_eq(fl_verify_update(s_branch->sign_pk, s_fed, 8, s_base, s.ct, s.ct_len, s.sig),
                 FL_ECRYPTO, "next round");
    cr_expect_eq(fl_verify_update(s_branch->sign_pk, s_fed, 6, s_base, s.ct, s.ct_len, s.sig),
                 FL_ECRYPTO, "previous round");
    cr_expect_eq(fl_verify_update(s_branch->sign_pk, s_fed, 7, other_base, s.ct, s.ct_len, s.sig),
                 FL_ECRYPTO, "another base");
    cr_expect_eq(fl_verify_update(s_branch->sign_pk, s_fed, 7, s_base, s.ct, s.ct_len - 1, s.sig),
                 FL_ECRYPTO, "truncated ciphertext");
    for (size_t i = 0; i < s.ct_len; i += 11) {
        s.ct[i] ^= 0x40;
        cr_expect_eq(fl_verify_update(s_branch->sign_pk, s_fed, 7, s_base, s.ct, s.ct_len, s.sig),
                     FL_ECRYPTO, "ciphertext byte %zu flipped", i);
        s.ct[i] ^= 0x40;
    }
    for (size_t i = 0; i < FL_SIG_BYTES; i += 7) {
        s.sig[i] ^= 0x01;
        cr_expect_eq(fl_verify_update(s_branch->sign_pk, s_fed, 7, s_base, s.ct, s.ct_len, s.sig),
                     FL_ECRYPTO, "signature byte %zu flipped", i);
        s.sig[i] ^= 0x01;
    }
    /* and all restored, it verifies again */
    cr_expect_eq(fl_verify_update(s_branch->sign_pk, s_fed, 7, s_base, s.ct, s.ct_len, s.sig), 0);
    free(s.ct);
}

/* The signed context, rebuilt by hand from docs/PROTOCOL.md: a known-answer check that the
 * layout is the documented one. */
Test(fl_seal, context_layout_is_the_documented_one)
{
    static const char msg[] = "x";
    struct sealed s;
    s_seal((const uint8_t *)msg, sizeof msg, &s);
    uint8_t ctx[512];
    size_t n = 0;
    memcpy(ctx, "fedtl-update-v1", 15);
    n += 15;
    const uint8_t version[4] = {1, 0, 0, 0};
    memcpy(ctx + n, version, 4);
    n += 4;
    ctx[n++] = (uint8_t)strlen(s_fed);
    memcpy(ctx + n, s_fed, strlen(s_fed));
    n += strlen(s_fed);
    const uint8_t round[4] = {7, 0, 0, 0};
    memcpy(ctx + n, round, 4);
    n += 4;
    memcpy(ctx + n, s_branch->sign_pk, 32);
    n += 32;
    memcpy(ctx + n, s_base, 32);
    n += 32;
    crypto_generichash(ctx + n, 32, s.ct, s.ct_len, NULL, 0);
    n += 32;
    cr_expect_eq(n, 15 + 4 + 1 + 12 + 4 + 32 + 32 + 32);
    cr_expect_eq(crypto_sign_verify_detached(s.sig, ctx, n, s_branch->sign_pk), 0);
    free(s.ct);
}

Test(fl_seal, federation_name_limits)
{
    char fed[300];
    memset(fed, 'f', sizeof fed);
    fed[255] = '\0'; /* 255 bytes: the longest a u8 length can hold */
    uint8_t *ct = NULL;
    size_t ct_len = 0;
    uint8_t sig[FL_SIG_BYTES];
    cr_assert_eq(fl_seal_update(s_branch, s_coord->box_pk, fed, 1, s_base, (const uint8_t *)"a", 1,
                                &ct, &ct_len, sig),
                 0, "%s", fl_error_msg());
    cr_expect_eq(fl_verify_update(s_branch->sign_pk, fed, 1, s_base, ct, ct_len, sig), 0);
    free(ct);
    fed[255] = 'f';
    fed[256] = '\0';
    cr_expect_eq(fl_seal_update(s_branch, s_coord->box_pk, fed, 1, s_base, (const uint8_t *)"a", 1,
                                &ct, &ct_len, sig),
                 FL_EINVAL);
    cr_expect_null(ct);
    cr_expect_eq(
        fl_verify_update(s_branch->sign_pk, fed, 1, s_base, (const uint8_t *)"abc", 3, sig),
        FL_ECRYPTO);
}

Test(fl_seal, open_needs_the_coordinator_and_the_whole_box)
{
    static const char msg[] = "for the coordinator only";
    struct sealed s;
    s_seal((const uint8_t *)msg, sizeof msg, &s);
    uint8_t *plain = (uint8_t *)"sentinel";
    size_t plain_len = 99;
    cr_expect_eq(fl_open_update(s_other, s.ct, s.ct_len, &plain, &plain_len), FL_ECRYPTO);
    cr_expect_null(plain);
    cr_expect_eq(plain_len, 0);
    cr_expect_eq(fl_open_update(s_branch, s.ct, s.ct_len, &plain, &plain_len), FL_ECRYPTO);
    cr_expect_eq(fl_open_update(s_coord, s.ct, s.ct_len - 1, &plain, &plain_len), FL_ECRYPTO);
    cr_expect_eq(fl_open_update(s_coord, s.ct, FL_SEAL_OVERHEAD - 1, &plain, &plain_len),
                 FL_ECRYPTO);
    cr_expect_eq(fl_open_update(s_coord, s.ct, 0, &plain, &plain_len), FL_ECRYPTO);
    s.ct[s.ct_len / 2] ^= 1;
    cr_expect_eq(fl_open_update(s_coord, s.ct, s.ct_len, &plain, &plain_len), FL_ECRYPTO);
    s.ct[s.ct_len / 2] ^= 1;
    cr_expect_eq(fl_open_update(s_coord, s.ct, s.ct_len, &plain, &plain_len), 0);
    fl_seal_free_plain(&plain, plain_len);
    free(s.ct);
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
    uint8_t other[32];
    memcpy(other, s_base, 32);
    other[0] ^= 0x80;
    cr_expect_eq(fl_verify_base(s_coord->sign_pk, other, sig), FL_ECRYPTO);
    sig[10] ^= 4;
    cr_expect_eq(fl_verify_base(s_coord->sign_pk, s_base, sig), FL_ECRYPTO);
    sig[10] ^= 4;
    /* an update signature is not a base signature, nor the reverse */
    struct sealed s;
    s_seal(s_base, 0, &s);
    cr_expect_eq(fl_verify_base(s_branch->sign_pk, s_base, s.sig), FL_ECRYPTO);
    cr_expect_eq(fl_verify_update(s_coord->sign_pk, s_fed, 7, s_base, s.ct, s.ct_len, sig),
                 FL_ECRYPTO);
    free(s.ct);
}
