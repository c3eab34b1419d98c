/* Tests of secure aggregation's primitives: Shamir sharing over GF(2^8) (fl_shamir), key
 * agreement, masks, signatures, share channels and the neighbour graph (fl_secagg_crypto), and
 * the fixed-point encoding (fl_secagg_fixed). */
#include "fl_error.h"
#include "fl_keys.h"
#include "fl_pool.h"
#include "fl_secagg.h"
#include "fl_secagg_crypto.h"
#include "fl_secagg_fixed.h"
#include "fl_shamir.h"

#include <criterion/criterion.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static void s_init(void)
{
    cr_assert_geq(sodium_init(), 0);
}
TestSuite(fl_shamir, .init = s_init);
TestSuite(fl_secagg_crypto, .init = s_init);
TestSuite(fl_secagg_fixed, .init = s_init);

/* ---- GF(2^8) and Shamir ------------------------------------------------------------------ */

Test(fl_shamir, field_matches_the_aes_field)
{
    /* FIPS-197 section 4.2: {57} * {83} = {c1}, {57} * {13} = {fe}; {53}^-1 = {ca} */
    cr_expect_eq(fl_gf256_mul(0x57, 0x83), 0xc1);
    cr_expect_eq(fl_gf256_mul(0x57, 0x13), 0xfe);
    cr_expect_eq(fl_gf256_inv(0x53), 0xca);
    cr_expect_eq(fl_gf256_inv(0), 0);
    for (unsigned a = 1; a < 256; a++)
        cr_expect_eq(fl_gf256_mul((uint8_t)a, fl_gf256_inv((uint8_t)a)), 1, "a=%u", a);
}

Test(fl_shamir, hand_checked_line_rebuilds_from_any_two_points)
{
    /* f(x) = 0x42 + 0x03 x: f(1) = 0x41, f(2) = 0x42 ^ 0x06 = 0x44, f(3) = 0x42 ^ 0x05 = 0x47 */
    const uint8_t xs[3] = {1, 2, 3}, ys[3][1] = {{0x41}, {0x44}, {0x47}};
    for (unsigned a = 0; a < 3; a++)
        for (unsigned b = 0; b < 3; b++) {
            if (a == b)
                continue;
            uint8_t px[2] = {xs[a], xs[b]}, s = 0;
            const uint8_t *py[2] = {ys[a], ys[b]};
            cr_assert_eq(fl_shamir_combine(px, py, 2, 1, &s), 0);
            cr_expect_eq(s, 0x42, "points %u,%u gave 0x%02x", xs[a], xs[b], s);
        }
    const uint8_t *py3[3] = {ys[0], ys[1], ys[2]};
    uint8_t s = 0;
    cr_assert_eq(fl_shamir_combine(xs, py3, 3, 1, &s), 0);
    cr_expect_eq(s, 0x42);
}

/* Combine the shares whose indices are in pick[k] (0-based share index = x - 1). */
static void s_combine(const uint8_t *shares, size_t len, const unsigned *pick, unsigned k,
                      uint8_t *out)
{
    uint8_t xs[FL_SHAMIR_MAX_SHARES];
    const uint8_t *ys[FL_SHAMIR_MAX_SHARES];
    for (unsigned j = 0; j < k; j++) {
        xs[j] = (uint8_t)(pick[j] + 1);
        ys[j] = shares + (size_t)pick[j] * len;
    }
    cr_assert_eq(fl_shamir_combine(xs, ys, k, len, out), 0, "%s", fl_error_msg());
}

Test(fl_shamir, any_t_of_n_rebuild_the_secret)
{
    static const unsigned cases[][2] = {{2, 2}, {2, 5}, {3, 5}, {5, 5}, {11, 20}, {128, 255}};
    uint8_t secret[32], got[32];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        unsigned t = cases[c][0], n = cases[c][1];
        uint8_t *shares = malloc((size_t)n * sizeof secret);
        randombytes_buf(secret, sizeof secret);
        cr_assert_eq(fl_shamir_split(secret, sizeof secret, t, n, shares), 0);
        for (int trial = 0; trial < 40; trial++) {
            unsigned idx[FL_SHAMIR_MAX_SHARES];
            for (unsigned i = 0; i < n; i++)
                idx[i] = i;
            for (unsigned i = n - 1; i > 0; i--) { /* a random subset of t..n shares */
                unsigned j = randombytes_uniform(i + 1), tmp = idx[i];
                idx[i] = idx[j];
                idx[j] = tmp;
            }
            unsigned k = t + randombytes_uniform(n - t + 1);
            s_combine(shares, sizeof secret, idx, k, got);
            cr_expect_eq(memcmp(got, secret, sizeof secret), 0, "t=%u n=%u k=%u", t, n, k);
        }
        free(shares);
    }
}

Test(fl_shamir, fewer_than_t_shares_fit_every_secret)
{
    /* t = 3 of 5: holders of shares 1 and 2 see values that every secret byte explains
     * equally. A third point at x = 4 completes the polynomial; its 256 values give 256
     * different secrets, so each secret has exactly one polynomial through what they hold. */
    uint8_t secret[1] = {0xA5}, shares[5];
    cr_assert_eq(fl_shamir_split(secret, 1, 3, 5, shares), 0);
    bool seen[256] = {false};
    for (unsigned v = 0; v < 256; v++) {
        uint8_t xs[3] = {1, 2, 4}, y4 = (uint8_t)v, s;
        const uint8_t *ys[3] = {&shares[0], &shares[1], &y4};
        cr_assert_eq(fl_shamir_combine(xs, ys, 3, 1, &s), 0);
        cr_expect_not(seen[s], "two completions give secret 0x%02x", s);
        seen[s] = true;
    }
    /* and combining only t - 1 = 2 of the shares of a 32-byte secret does not give it back */
    uint8_t big[32], bshares[5 * 32], got[32];
    randombytes_buf(big, sizeof big);
    cr_assert_eq(fl_shamir_split(big, sizeof big, 3, 5, bshares), 0);
    unsigned pick[2] = {0, 3};
    s_combine(bshares, sizeof big, pick, 2, got);
    cr_expect_neq(memcmp(got, big, sizeof big), 0);
}

Test(fl_shamir, refuses_bad_parameters_and_points)
{
    uint8_t s[4] = {1, 2, 3, 4}, sh[256 * 4];
    cr_expect_eq(fl_shamir_split(s, 4, 1, 3, sh), FL_EINVAL);
    cr_expect_eq(fl_shamir_split(s, 4, 4, 3, sh), FL_EINVAL);
    cr_expect_eq(fl_shamir_split(s, 4, 2, 256, sh), FL_EINVAL);
    cr_assert_eq(fl_shamir_split(s, 4, 2, 3, sh), 0);
    uint8_t out[4], dup[2] = {2, 2}, zero[2] = {0, 1};
    const uint8_t *ys[2] = {sh, sh + 4};
    cr_expect_eq(fl_shamir_combine(dup, ys, 2, 4, out), FL_EINVAL);
    cr_expect_eq(fl_shamir_combine(zero, ys, 2, 4, out), FL_EINVAL);
    cr_expect_eq(fl_shamir_combine(dup, ys, 0, 4, out), FL_EINVAL);
}

/* ---- key agreement, masks, signatures, channels ------------------------------------------ */

static const struct fl_secagg_ctx s_ctx = {.federation = "hospitals-eu",
                                           .run_id = {0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6,
                                                      0xA7, 0xA8, 0xA9, 0xAA, 0xAB, 0xAC, 0xAD,
                                                      0xAE, 0xAF},
                                           .round = 7};

/* A branch identity made in memory (sodium_malloc'd like fl_identity_load's). */
static struct fl_identity *s_identity(void)
{
    struct fl_identity *id = sodium_malloc(sizeof *id);
    cr_assert_not_null(id);
    crypto_sign_keypair(id->sign_pk, id->sign_sk);
    cr_assert_eq(crypto_sign_ed25519_pk_to_curve25519(id->box_pk, id->sign_pk), 0);
    cr_assert_eq(crypto_sign_ed25519_sk_to_curve25519(id->box_sk, id->sign_sk), 0);
    strcpy(id->name, "branch");
    return id;
}

Test(fl_secagg_crypto, mask_is_the_chacha20_key_stream)
{
    /* RFC 8439 A.1, test vector 1: key 0, nonce 0, block 0 starts 76 b8 e0 ad a0 f1 3d 90 40 5d
     * 6a e5 53 86 bd 28 */
    uint8_t key[FL_SECAGG_KEY_BYTES] = {0};
    uint64_t v[2] = {0, 0};
    cr_assert_eq(fl_secagg_mask_apply(key, false, v, 2), 0);
    cr_expect_eq(v[0], 0x903df1a0ade0b876ull);
    cr_expect_eq(v[1], 0x28bd8653e56a5d40ull);
    cr_assert_eq(fl_secagg_mask_apply(key, true, v, 2), 0);
    cr_expect(v[0] == 0 && v[1] == 0, "subtracting the same mask restores the vector");
    /* across chunk boundaries, against the key stream generated in one piece */
    enum { N = 1531 };
    uint8_t stream[N * 8], nonce[crypto_stream_chacha20_ietf_NONCEBYTES] = {0};
    randombytes_buf(key, sizeof key);
    crypto_stream_chacha20_ietf(stream, sizeof stream, nonce, key);
    static uint64_t w[N];
    memset(w, 0, sizeof w);
    cr_assert_eq(fl_secagg_mask_apply(key, false, w, N), 0);
    for (size_t i = 0; i < N; i++) {
        uint64_t want = 0;
        for (int b = 7; b >= 0; b--)
            want = (want << 8) | stream[i * 8 + (size_t)b];
        cr_assert_eq(w[i], want, "word %zu", i);
    }
}

/* The reference: vec +/-= each mask's words, each mask's key stream made in one piece by
 * libsodium's crypto_stream_chacha20_ietf (zero nonce) and read byte by byte. */
static void s_masks_reference(const struct fl_secagg_mask *m, size_t count, uint64_t *vec, size_t n)
{
    static const uint8_t nonce[crypto_stream_chacha20_ietf_NONCEBYTES];
    uint8_t *stream = malloc(n * 8);
    cr_assert_not_null(stream);
    for (size_t k = 0; k < count; k++) {
        crypto_stream_chacha20_ietf(stream, n * 8, nonce, m[k].key);
        for (size_t i = 0; i < n; i++) {
            uint64_t w = 0;
            for (int b = 7; b >= 0; b--)
                w = (w << 8) | stream[i * 8 + (size_t)b];
            vec[i] = m[k].subtract ? vec[i] - w : vec[i] + w;
        }
    }
    free(stream);
}

Test(fl_secagg_crypto, blocked_parallel_masks_equal_the_reference_for_any_thread_count)
{
    /* lengths around the 2,048-word block and the 8-word ChaCha20 block, and long enough for
     * the range to be cut between 2 and 3 threads (16 blocks at least each) */
    static const size_t lens[] = {1, 7, 8, 9, 2047, 2048, 2049, 4103, 16 * 2048 * 3 + 13};
    enum { NMASK = 5 };
    struct fl_secagg_mask m[NMASK];
    for (int k = 0; k < NMASK; k++) {
        randombytes_buf(m[k].key, sizeof m[k].key);
        m[k].subtract = k % 2 == 1;
    }
    fl_pool_t *pools[4] = {NULL, fl_pool_new(1), fl_pool_new(2), fl_pool_new(3)};
    for (int p = 1; p < 4; p++)
        cr_assert_not_null(pools[p]);
    for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
        size_t n = lens[l];
        uint64_t *start = malloc(n * 8), *want = malloc(n * 8), *got = malloc(n * 8);
        cr_assert(start && want && got);
        randombytes_buf(start, n * 8);
        memcpy(want, start, n * 8);
        s_masks_reference(m, NMASK, want, n);
        for (int p = 0; p < 4; p++) {
            memcpy(got, start, n * 8);
            cr_assert_eq(fl_secagg_masks_apply(m, NMASK, got, n, pools[p]), 0);
            cr_expect_eq(memcmp(got, want, n * 8), 0, "%zu words, pool of %d: not the reference", n,
                         fl_pool_size(pools[p]));
        }
        memcpy(got, start, n * 8); /* one mask at a time gives the same */
        for (int k = 0; k < NMASK; k++)
            cr_assert_eq(fl_secagg_mask_apply(m[k].key, m[k].subtract, got, n), 0);
        cr_expect_eq(memcmp(got, want, n * 8), 0, "%zu words, mask by mask", n);
        free(start);
        free(want);
        free(got);
    }
    uint64_t v = 0;
    cr_expect_eq(fl_secagg_masks_apply(m, NMASK, &v, ((size_t)1 << 35) + 1, pools[2]), FL_ERANGE,
                 "a mask longer than one key stream is refused before anything is written");
    for (int p = 1; p < 4; p++)
        fl_pool_destroy(&pools[p]);
}

Test(fl_secagg_crypto, both_ends_agree_on_a_key_bound_to_round_and_purpose)
{
    struct fl_identity *a = s_identity(), *b = s_identity();
    uint8_t apk[32], ask[32], bpk[32], bsk[32], ka[32], kb[32], other[32];
    fl_secagg_keypair(apk, ask);
    fl_secagg_keypair(bpk, bsk);
    cr_assert_eq(fl_secagg_agree(ask, bpk, &s_ctx, FL_SECAGG_MASK, a->sign_pk, b->sign_pk, ka), 0);
    cr_assert_eq(fl_secagg_agree(bsk, apk, &s_ctx, FL_SECAGG_MASK, b->sign_pk, a->sign_pk, kb), 0);
    cr_expect_eq(memcmp(ka, kb, 32), 0, "the two ends derive the same key");
    cr_assert_eq(
        fl_secagg_agree(ask, bpk, &s_ctx, FL_SECAGG_CHANNEL, a->sign_pk, b->sign_pk, other), 0);
    cr_expect_neq(memcmp(ka, other, 32), 0, "another purpose, another key");
    struct fl_secagg_ctx next = s_ctx;
    next.round++;
    cr_assert_eq(fl_secagg_agree(ask, bpk, &next, FL_SECAGG_MASK, a->sign_pk, b->sign_pk, other),
                 0);
    cr_expect_neq(memcmp(ka, other, 32), 0, "another round, another key");
    struct fl_secagg_ctx fed = s_ctx;
    fed.federation = "hospitals-us";
    cr_assert_eq(fl_secagg_agree(ask, bpk, &fed, FL_SECAGG_MASK, a->sign_pk, b->sign_pk, other), 0);
    cr_expect_neq(memcmp(ka, other, 32), 0, "another federation, another key");
    uint8_t low_order[32] = {0}; /* the identity point: X25519 gives all zeros */
    cr_expect_eq(
        fl_secagg_agree(ask, low_order, &s_ctx, FL_SECAGG_MASK, a->sign_pk, b->sign_pk, other),
        FL_ECRYPTO);
    sodium_free(a);
    sodium_free(b);
}

Test(fl_secagg_crypto, pairwise_masks_cancel_in_the_sum)
{
    enum { B = 6, N = 777 };
    struct fl_identity *id[B];
    uint8_t pk[B][32], sk[B][32];
    static uint64_t in[B][N], masked[B][N];
    for (int i = 0; i < B; i++) {
        id[i] = s_identity();
        fl_secagg_keypair(pk[i], sk[i]);
        randombytes_buf(in[i], sizeof in[i]);
        memcpy(masked[i], in[i], sizeof in[i]);
    }
    for (int i = 0; i < B; i++)
        for (int j = 0; j < B; j++) {
            if (i == j)
                continue;
            uint8_t key[32];
            cr_assert_eq(fl_secagg_agree(sk[i], pk[j], &s_ctx, FL_SECAGG_MASK, id[i]->sign_pk,
                                         id[j]->sign_pk, key),
                         0);
            bool adds = fl_secagg_pair_adds(id[i]->sign_pk, id[j]->sign_pk);
            cr_expect_neq(adds, fl_secagg_pair_adds(id[j]->sign_pk, id[i]->sign_pk));
            cr_assert_eq(fl_secagg_mask_apply(key, !adds, masked[i], N), 0);
        }
    for (size_t w = 0; w < N; w++) {
        uint64_t want = 0, got = 0;
        for (int i = 0; i < B; i++) {
            want += in[i][w];
            got += masked[i][w];
        }
        cr_assert_eq(got, want, "word %zu", w);
    }
    size_t same = 0; /* and no masked input resembles its input */
    for (int i = 0; i < B; i++)
        for (size_t w = 0; w < N; w++)
            same += masked[i][w] == in[i][w];
    cr_expect_eq(same, 0);
    for (int i = 0; i < B; i++)
        sodium_free(id[i]);
}

Test(fl_secagg_crypto, signatures_bind_kind_round_signer_and_body)
{
    struct fl_identity *a = s_identity(), *b = s_identity();
    uint8_t body[64], sig[FL_SIG_BYTES];
    randombytes_buf(body, sizeof body);
    cr_assert_eq(fl_secagg_sign(a, &s_ctx, FL_SECAGG_SIG_KEYS, body, sizeof body, sig), 0);
    cr_expect_eq(fl_secagg_verify(a->sign_pk, &s_ctx, FL_SECAGG_SIG_KEYS, body, sizeof body, sig),
                 0);
    cr_expect_eq(fl_secagg_verify(b->sign_pk, &s_ctx, FL_SECAGG_SIG_KEYS, body, sizeof body, sig),
                 FL_ECRYPTO, "another signer");
    cr_expect_eq(fl_secagg_verify(a->sign_pk, &s_ctx, FL_SECAGG_SIG_REVEAL, body, sizeof body, sig),
                 FL_ECRYPTO, "another kind");
    struct fl_secagg_ctx next = s_ctx;
    next.round++;
    cr_expect_eq(fl_secagg_verify(a->sign_pk, &next, FL_SECAGG_SIG_KEYS, body, sizeof body, sig),
                 FL_ECRYPTO, "another round");
    body[13] ^= 1;
    cr_expect_eq(fl_secagg_verify(a->sign_pk, &s_ctx, FL_SECAGG_SIG_KEYS, body, sizeof body, sig),
                 FL_ECRYPTO, "another body");
    sodium_free(a);
    sodium_free(b);
}

Test(fl_secagg_crypto, masked_words_are_signed_as_their_little_endian_bytes)
{
    /* fl_secagg_sign_words hashes the words in place: the signed text must stay that of the
     * body fl_secagg_body_words spells out, in both directions */
    struct fl_identity *a = s_identity();
    enum { N = 1001 };
    static uint64_t w[N];
    uint8_t *body = NULL, sig[FL_SIG_BYTES];
    size_t len = 0;
    randombytes_buf(w, sizeof w);
    cr_assert_eq(fl_secagg_body_words(w, N, &body, &len), 0);
    cr_assert_eq(len, (size_t)N * 8);
    cr_assert_eq(fl_secagg_sign_words(a, &s_ctx, FL_SECAGG_SIG_MASKED, w, N, sig), 0);
    cr_expect_eq(fl_secagg_verify(a->sign_pk, &s_ctx, FL_SECAGG_SIG_MASKED, body, len, sig), 0);
    cr_assert_eq(fl_secagg_sign(a, &s_ctx, FL_SECAGG_SIG_MASKED, body, len, sig), 0);
    cr_expect_eq(fl_secagg_verify_words(a->sign_pk, &s_ctx, FL_SECAGG_SIG_MASKED, w, N, sig), 0);
    w[N - 1] ^= 1;
    cr_expect_eq(fl_secagg_verify_words(a->sign_pk, &s_ctx, FL_SECAGG_SIG_MASKED, w, N, sig),
                 FL_ECRYPTO, "one bit of the last word changed");
    cr_expect_eq(fl_secagg_verify_words(a->sign_pk, &s_ctx, FL_SECAGG_SIG_MASKED, w, N - 1, sig),
                 FL_ECRYPTO, "a word fewer");
    free(body);
    sodium_free(a);
}

Test(fl_secagg_crypto, sealed_shares_open_only_for_their_pair_and_round)
{
    struct fl_identity *a = s_identity(), *b = s_identity();
    uint8_t key[32], plain[70], ct[70 + FL_SECAGG_SEAL_OVERHEAD], back[70];
    randombytes_buf(key, sizeof key);
    randombytes_buf(plain, sizeof plain);
    cr_assert_eq(fl_secagg_seal(key, &s_ctx, a->sign_pk, b->sign_pk, plain, sizeof plain, ct), 0);
    cr_assert_eq(fl_secagg_open(key, &s_ctx, a->sign_pk, b->sign_pk, ct, sizeof ct, back), 0);
    cr_expect_eq(memcmp(back, plain, sizeof plain), 0);
    cr_expect_eq(fl_secagg_open(key, &s_ctx, b->sign_pk, a->sign_pk, ct, sizeof ct, back),
                 FL_ECRYPTO, "the other direction");
    struct fl_secagg_ctx next = s_ctx;
    next.round++;
    cr_expect_eq(fl_secagg_open(key, &next, a->sign_pk, b->sign_pk, ct, sizeof ct, back),
                 FL_ECRYPTO, "another round");
    cr_expect_eq(fl_secagg_open(key, &s_ctx, a->sign_pk, b->sign_pk, ct, 10, back), FL_ECRYPTO,
                 "truncated");
    ct[sizeof ct - 1] ^= 0x80;
    cr_expect_eq(fl_secagg_open(key, &s_ctx, a->sign_pk, b->sign_pk, ct, sizeof ct, back),
                 FL_ECRYPTO, "tampered");
    sodium_free(a);
    sodium_free(b);
}

/* ---- the neighbour graph ----------------------------------------------------------------- */

/* Check that nbr is a k-regular, symmetric, loop-free, connected graph with sorted rows. */
static void s_check_graph(const uint32_t *nbr, uint32_t n, uint32_t k)
{
    uint8_t *adj = calloc((size_t)n * n, 1);
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t m = 0; m < k; m++) {
            uint32_t j = nbr[(size_t)i * k + m];
            cr_assert_lt(j, n);
            cr_assert_neq(j, i, "node %u is its own neighbour", i);
            if (m)
                cr_assert_gt(j, nbr[(size_t)i * k + m - 1], "row %u sorted, no repeats", i);
            adj[(size_t)i * n + j] = 1;
        }
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t j = 0; j < n; j++)
            cr_assert_eq(adj[(size_t)i * n + j], adj[(size_t)j * n + i], "%u-%u symmetric", i, j);
    uint32_t *queue = malloc(n * sizeof *queue), head = 0, tail = 0; /* BFS from 0 */
    uint8_t *seen = calloc(n, 1);
    queue[tail++] = 0;
    seen[0] = 1;
    while (head < tail) {
        uint32_t i = queue[head++];
        for (uint32_t m = 0; m < k; m++) {
            uint32_t j = nbr[(size_t)i * k + m];
            if (!seen[j]) {
                seen[j] = 1;
                queue[tail++] = j;
            }
        }
    }
    cr_expect_eq(tail, n, "connected");
    free(adj);
    free(queue);
    free(seen);
}

/* The tail sums against values computed apart, exactly in Python:
 * python3 -c "from math import comb; f=lambda k,p,t: sum(comb(k,i)*p**i*(1-p)**(k-i)
 *             for i in range(t)); print(f(28,.7,15), f(28,.9,15), f(10,.5,3))" */
Test(fl_secagg_crypto, binomial_tail)
{
    cr_expect(fabs(fl_secagg_binom_below(28, 0.7, 15) / 0.02076328162048037 - 1) < 1e-9);
    cr_expect(fabs(fl_secagg_binom_below(28, 0.9, 15) / 1.0222265369206622e-07 - 1) < 1e-9);
    cr_expect(fabs(fl_secagg_binom_below(10, 0.5, 3) - 0.0546875) < 1e-12); /* 56 / 1024 */
    cr_expect_eq(fl_secagg_binom_below(10, 0.5, 0), 0);
    cr_expect_eq(fl_secagg_binom_below(10, 0.5, 11), 1);
    cr_expect_eq(fl_secagg_binom_below(10, 1.0, 6), 0, "no dropout: never short");
    cr_expect(fabs(fl_secagg_binom_below(254, 0.5, 254) - (1 - ldexp(1, -254))) < 1e-12);
}

/* Degrees: the smallest even k from 4 log2 n up with n P[Bin(k, 1 - dropout) < k/2 + 1] at most
 * 2^-20 = 9.54e-7 (tail sums as in binomial_tail):
 *   n 100, dropout 0.1: 4 log2 100 = 26.6 -> 28; 100 f(32,.9,17) = 1.24e-6 > 2^-20,
 *     100 f(34,.9,18) = 4.34e-7: 34
 *   n 1000, dropout 0.1: 39.9 -> 40; 1000 f(40,.9,21) = 1.87e-7: 40
 *   n 500, dropout 0.3: 500 f(202,.7,102) = 1.09e-6, 500 f(204,.7,103) = 9.07e-7: 204
 *   n 100, dropout 0.3: no even k below 100 (100 f(98,.7,50) = 2.7e-3): everyone, 99 */
Test(fl_secagg_crypto, degree_from_dropout)
{
    cr_expect_eq(fl_secagg_degree(2, 0.1), 1);
    cr_expect_eq(fl_secagg_degree(10, 0.3), 9);
    cr_expect_eq(fl_secagg_degree(16, 0.1), 15);
    cr_expect_eq(fl_secagg_degree(17, 0), 16);   /* ceil(4 log2 17) = 17 -> 18 > 16: n - 1 */
    cr_expect_eq(fl_secagg_degree(100, 0), 28);  /* 4 log2 100 = 26.6 -> 27 -> 28 */
    cr_expect_eq(fl_secagg_degree(1000, 0), 40); /* 39.9 -> 40 */
    cr_expect_eq(fl_secagg_degree(100, 0.1), 34);
    cr_expect_eq(fl_secagg_degree(1000, 0.1), 40);
    cr_expect_eq(fl_secagg_degree(500, 0.3), 204);
    cr_expect_eq(fl_secagg_degree(100, 0.3), 99);
    cr_expect_eq(fl_secagg_degree(1000, 0.45), FL_SECAGG_MAX_DEGREE, "capped");
    /* where the bound is met, it holds at the degree chosen and not two below it */
    static const struct {
        uint32_t n;
        double d;
    } met[] = {{100, 0.1}, {1000, 0.1}, {500, 0.3}, {1000, 0.3}, {200, 0.2}};
    for (size_t i = 0; i < sizeof met / sizeof met[0]; i++) {
        uint32_t n = met[i].n, k = fl_secagg_degree(n, met[i].d);
        cr_assert(k < n - 1, "n %u dropout %g: degree %u", n, met[i].d, k);
        cr_expect_eq(k % 2, 0);
        cr_expect(n * fl_secagg_binom_below(k, 1 - met[i].d, fl_secagg_threshold(k)) <=
                  FL_SECAGG_FAIL_BOUND);
        uint32_t k0 = ((uint32_t)ceil(4 * log2(n)) + 1u) & ~1u;
        cr_expect(k == k0 ||
                  n * fl_secagg_binom_below(k - 2, 1 - met[i].d, fl_secagg_threshold(k - 2)) >
                      FL_SECAGG_FAIL_BOUND);
    }
    /* n 100 at dropout 0.3: no sparse graph meets the bound; even everyone does not (100
     * f(99,.7,50) = 1.6e-3), which is the most secure aggregation can do */
    cr_expect(100 * fl_secagg_binom_below(98, 0.7, 50) > FL_SECAGG_FAIL_BOUND);
}

Test(fl_secagg_crypto, neighbour_graph_is_regular_random_and_reproducible)
{
    cr_expect_eq(fl_secagg_threshold(9), 5);
    cr_expect_eq(fl_secagg_threshold(28), 15);
    cr_expect_eq(fl_secagg_threshold(2), 2);
    static const uint32_t cases[][2] = {{2, 1}, {5, 4}, {10, 9}, {7, 4}, {100, 28}, {1000, 40}};
    uint8_t seed[FL_SECAGG_SEED_BYTES], seed2[FL_SECAGG_SEED_BYTES];
    randombytes_buf(seed, sizeof seed);
    memcpy(seed2, seed, sizeof seed);
    seed2[0] ^= 1;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        uint32_t n = cases[c][0], k = cases[c][1];
        uint32_t *g = malloc((size_t)n * k * sizeof *g), *h = malloc((size_t)n * k * sizeof *h);
        cr_assert_eq(fl_secagg_graph(seed, n, k, g), 0, "n=%u k=%u: %s", n, k, fl_error_msg());
        s_check_graph(g, n, k);
        cr_assert_eq(fl_secagg_graph(seed, n, k, h), 0);
        cr_expect_eq(memcmp(g, h, (size_t)n * k * sizeof *g), 0, "same seed, same graph");
        cr_assert_eq(fl_secagg_graph(seed2, n, k, h), 0);
        if (k < n - 1)
            cr_expect_neq(memcmp(g, h, (size_t)n * k * sizeof *g), 0, "another seed, n=%u", n);
        free(g);
        free(h);
    }
    uint32_t g[100];
    cr_expect_eq(fl_secagg_graph(seed, 10, 3, g), FL_EINVAL, "odd degree, not complete");
    cr_expect_eq(fl_secagg_graph(seed, 10, 10, g), FL_EINVAL, "degree n");
    cr_expect_eq(fl_secagg_graph(seed, 1, 0, g), FL_EINVAL);
}

/* ---- fixed point ------------------------------------------------------------------------- */

Test(fl_secagg_fixed, hand_checked_encoding)
{
    struct fl_secagg_fixed fx = FL_SECAGG_FIXED_DEFAULT;
    cr_assert_eq(fl_secagg_fixed_check(&fx), 0, "%s", fl_error_msg());
    const float x[4] = {0.5f, -1.0f, 1000.0f, 0x1p-26f};
    uint64_t out[5];
    cr_assert_eq(fl_secagg_fixed_encode(&fx, x, 4, 3, out), 0);
    cr_expect_eq(out[0], 3ull << 23);                 /* 3 * 0.5 * 2^24 */
    cr_expect_eq(out[1], (uint64_t)0 - (3ull << 24)); /* -3 * 2^24 mod 2^64 */
    cr_expect_eq(out[2], (uint64_t)(3 * 256) << 24);  /* clipped to 256 */
    cr_expect_eq(out[3], 1);                          /* 3 * 2^-26 * 2^24 = 0.75 -> 1 */
    cr_expect_eq(out[4], 3, "the weight travels in the last word");
    float bad[1] = {NAN};
    cr_expect_eq(fl_secagg_fixed_encode(&fx, bad, 1, 3, out), FL_ERANGE);
    cr_expect_eq(fl_secagg_fixed_encode(&fx, x, 1, 0, out), FL_EINVAL);
    cr_expect_eq(fl_secagg_fixed_encode(&fx, x, 1, fx.max_weight + 1, out), FL_EINVAL);
    cr_expect_eq(fl_secagg_fixed_weight(&fx, 0), 1);
    cr_expect_eq(fl_secagg_fixed_weight(&fx, 600), 600);
    cr_expect_eq(fl_secagg_fixed_weight(&fx, 1ull << 40), fx.max_weight);
    uint64_t sum[2] = {0, 0};
    float mean;
    uint64_t total;
    cr_expect_eq(fl_secagg_fixed_decode(&fx, sum, 1, &mean, &total), FL_ERANGE, "weight 0");
}

Test(fl_secagg_fixed, weighted_mean_is_exact_to_half_a_unit)
{
    enum { B = 40, N = 3000 };
    struct fl_secagg_fixed fx = FL_SECAGG_FIXED_DEFAULT;
    static float x[B][N];
    static uint64_t enc[N + 1], sum[N + 1];
    static double want[N];
    static float mean[N];
    uint32_t wsum = 0;
    memset(sum, 0, sizeof sum);
    memset(want, 0, sizeof want);
    for (int b = 0; b < B; b++) {
        uint32_t w = fl_secagg_fixed_weight(&fx, 1 + randombytes_uniform(5000));
        wsum += w;
        for (int i = 0; i < N; i++) {
            x[b][i] = (float)((randombytes_uniform(2000001) / 1e6 - 1.0) * (i % 3 ? 0.01 : 400));
            double c = fmax(-fx.clip, fmin(fx.clip, x[b][i]));
            want[i] += w * c;
        }
        cr_assert_eq(fl_secagg_fixed_encode(&fx, x[b], N, w, enc), 0);
        for (int i = 0; i <= N; i++)
            sum[i] += enc[i];
    }
    uint64_t total;
    cr_assert_eq(fl_secagg_fixed_decode(&fx, sum, N, mean, &total), 0);
    cr_expect_eq(total, wsum);
    double bound = ldexp(1.0, -(int)fx.frac_bits - 1), worst = 0;
    for (int i = 0; i < N; i++) {
        double m = want[i] / wsum, err = fabs(mean[i] - m);
        /* half a unit of the fixed point, plus the float the mean is returned in */
        cr_assert_leq(err, bound + fabs(m) * 0x1p-24, "value %d: %g vs %g", i, mean[i], m);
        worst = fmax(worst, err - fabs(m) * 0x1p-24);
    }
    cr_log_info("worst fixed-point error beyond the float result's rounding %.3g (bound %.3g)",
                worst, bound);
}

Test(fl_secagg_fixed, overflow_bound_is_tight)
{
    /* 8 branches x weight 1000 x clip 4: 2^14.97 units of 2^frac. 48 bits fit under 2^63,
     * 49 do not. At 48 bits the extreme sum decodes exactly; at 49 it would wrap. */
    struct fl_secagg_fixed fx = {
        .frac_bits = 48, .clip = 4.0, .max_weight = 1000, .max_branches = 8};
    cr_assert_eq(fl_secagg_fixed_check(&fx), 0, "%s", fl_error_msg());
    const float hi[2] = {4.0f, -1e9f};
    uint64_t enc[3], sum[3] = {0, 0, 0};
    float mean[2];
    uint64_t total;
    for (int b = 0; b < 8; b++) {
        cr_assert_eq(fl_secagg_fixed_encode(&fx, hi, 2, 1000, enc), 0);
        for (int i = 0; i < 3; i++)
            sum[i] += enc[i];
    }
    cr_assert_eq(fl_secagg_fixed_decode(&fx, sum, 2, mean, &total), 0);
    cr_expect_eq(mean[0], 4.0f);
    cr_expect_eq(mean[1], -4.0f);
    cr_expect_eq(total, 8000);
    fx.frac_bits = 49;
    cr_expect_eq(fl_secagg_fixed_check(&fx), FL_ERANGE);
    memset(sum, 0, sizeof sum);
    for (int b = 0; b < 8; b++) {
        cr_assert_eq(fl_secagg_fixed_encode(&fx, hi, 2, 1000, enc), 0);
        for (int i = 0; i < 3; i++)
            sum[i] += enc[i];
    }
    cr_assert_eq(fl_secagg_fixed_decode(&fx, sum, 2, mean, &total), 0);
    cr_expect_lt(mean[0], 0.0f, "past the bound the sum wraps: the check is what prevents it");
    fx.clip = 0;
    cr_expect_eq(fl_secagg_fixed_check(&fx), FL_EINVAL);
}
