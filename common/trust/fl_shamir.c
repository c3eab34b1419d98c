/* fl_shamir: Shamir secret sharing over GF(2^8). */
#include "fl_shamir.h"
#include "fl_error.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

uint8_t fl_gf256_mul(uint8_t a, uint8_t b)
{
    unsigned p = 0, x = a, y = b;
    for (int i = 0; i < 8; i++) {
        p ^= x & (0u - (y & 1u));
        unsigned hi = 0u - ((x >> 7) & 1u);
        x = ((x << 1) ^ (hi & 0x1bu)) & 0xffu;
        y >>= 1;
    }
    return (uint8_t)p;
}

uint8_t fl_gf256_inv(uint8_t a)
{
    /* a^254 = a^-1 in the multiplicative group of order 255 (and 0 for 0) */
    uint8_t r = 1, base = a;
    for (unsigned e = 254; e; e >>= 1) {
        if (e & 1u)
            r = fl_gf256_mul(r, base);
        base = fl_gf256_mul(base, base);
    }
    return r;
}

int fl_shamir_split(const uint8_t *secret, size_t len, unsigned t, unsigned n, uint8_t *shares)
{
    if (t < 2 || t > n || n > FL_SHAMIR_MAX_SHARES || (len && (!secret || !shares)))
        return fl_fail(FL_EINVAL, "shamir: need 2 <= t (%u) <= n (%u) <= %d", t, n,
                       FL_SHAMIR_MAX_SHARES);
    uint8_t coef[FL_SHAMIR_MAX_SHARES]; /* coefficients of x^1 .. x^(t-1) for one byte */
    for (size_t b = 0; b < len; b++) {
        randombytes_buf(coef, t - 1);
        for (unsigned i = 0; i < n; i++) {
            uint8_t x = (uint8_t)(i + 1), y = 0;
            for (unsigned c = t - 1; c >= 1; c--) /* Horner, highest degree first */
                y = fl_gf256_mul((uint8_t)(y ^ coef[c - 1]), x);
            shares[(size_t)i * len + b] = (uint8_t)(y ^ secret[b]);
        }
    }
    sodium_memzero(coef, sizeof coef);
    return 0;
}

int fl_shamir_combine(const uint8_t *xs, const uint8_t *const *ys, unsigned k, size_t len,
                      uint8_t *secret)
{
    if (k == 0 || k > FL_SHAMIR_MAX_SHARES)
        return fl_fail(FL_EINVAL, "shamir: %u shares", k);
    uint8_t lag[FL_SHAMIR_MAX_SHARES]; /* Lagrange basis at 0 for each share */
    for (unsigned j = 0; j < k; j++) {
        if (xs[j] == 0)
            return fl_fail(FL_EINVAL, "shamir: share at point 0");
        uint8_t num = 1, den = 1;
        for (unsigned m = 0; m < k; m++) {
            if (m == j)
                continue;
            if (xs[m] == xs[j])
                return fl_fail(FL_EINVAL, "shamir: two shares at point %u", xs[j]);
            num = fl_gf256_mul(num, xs[m]); /* (0 - x_m) = x_m in characteristic 2 */
            den = fl_gf256_mul(den, (uint8_t)(xs[m] ^ xs[j]));
        }
        lag[j] = fl_gf256_mul(num, fl_gf256_inv(den));
    }
    for (size_t b = 0; b < len; b++) {
        uint8_t s = 0;
        for (unsigned j = 0; j < k; j++)
            s ^= fl_gf256_mul(lag[j], ys[j][b]);
        secret[b] = s;
    }
    return 0;
}
