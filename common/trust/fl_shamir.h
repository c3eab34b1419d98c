/* fl_shamir: Shamir secret sharing over GF(2^8), byte by byte, for secure aggregation's
 * ephemeral secrets (docs/SECURITY.md, "Secure aggregation").
 *
 * Each byte of the secret is the constant term of its own random polynomial of degree t-1 over
 * GF(2^8) (the AES field, x^8 + x^4 + x^3 + x + 1); share i is the polynomials' values at x = i,
 * 1 <= i <= 255. Any t shares give the secret back by Lagrange interpolation at 0; t-1 shares
 * are consistent with every secret alike, so they reveal nothing about it. Field arithmetic is
 * branch-free (no tables indexed by secrets). Shares carry no integrity check: they travel
 * signed and authenticated (fl_secagg_crypto), and a wrong one gives a wrong secret. */
#ifndef FL_SHAMIR_H
#define FL_SHAMIR_H

#include <stddef.h>
#include <stdint.h>

#define FL_SHAMIR_MAX_SHARES 255 /* the non-zero points of GF(2^8) */

/* a * b in GF(2^8) (exposed for the known-answer tests). */
uint8_t fl_gf256_mul(uint8_t a, uint8_t b);
/* The inverse of a in GF(2^8); 0 for a = 0. */
uint8_t fl_gf256_inv(uint8_t a);

/* Split secret (len bytes) into n shares, any t of which rebuild it: shares[i * len ..] gets
 * the share at x = i + 1. 2 <= t <= n <= FL_SHAMIR_MAX_SHARES, else FL_EINVAL. The polynomials'
 * coefficients come from libsodium's generator and are wiped before return. */
int fl_shamir_split(const uint8_t *secret, size_t len, unsigned t, unsigned n, uint8_t *shares);

/* Rebuild a secret of len bytes from k shares: share j is ys[j] (len bytes) at point xs[j].
 * The points must be non-zero and distinct (FL_EINVAL). With at least t of the dealer's shares
 * the result is the secret; with fewer it is a value unrelated to it. */
int fl_shamir_combine(const uint8_t *xs, const uint8_t *const *ys, unsigned k, size_t len,
                      uint8_t *secret);

#endif
