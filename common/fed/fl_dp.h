/* fl_dp: the mathematics of client-level differential privacy (DP-FedAvg, McMahan et al.,
 * "Learning Differentially Private Recurrent Language Models", ICLR 2018), with no I/O: the
 * Renyi-DP accountant of the sampled Gaussian mechanism (Mironov, "Renyi Differential Privacy",
 * CSF 2017; Mironov, Talwar, Zhang, "Renyi Differential Privacy of the Sampled Gaussian
 * Mechanism", 2019), its conversion to (epsilon, delta), the noise multiplier for a target
 * epsilon, and Gaussian noise drawn from libsodium's CSPRNG: all of it for the coordinator
 * (central DP), a share of it for each branch under secure aggregation (distributed DP).
 * docs/PRIVACY.md explains the choices. */
#ifndef FL_DP_H
#define FL_DP_H

#include <stddef.h>
#include <stdint.h>

/* The Renyi orders fedtl's accountant tracks: 1.1, 1.2, ..., 10.9, 12, 13, ..., 63 (the
 * default of Opacus and of TensorFlow Privacy's tutorials), then 64, 128, 256 and 512 for
 * small budgets. Increasing. */
#define FL_DP_NORDERS 155
const double *fl_dp_orders(void);

/* RDP at order alpha (> 1) of one step of the sampled Gaussian mechanism: each record (here:
 * branch) taken with probability q in [0, 1], the sum's sensitivity 1, Gaussian noise of
 * standard deviation z (the noise multiplier, >= 0). Integer orders by the binomial expansion,
 * fractional ones by the series of Mironov, Talwar and Zhang (Section 3.3). 0 when q is 0,
 * alpha / (2 z^2) when q is 1, INFINITY when z is 0; NAN for arguments out of range. */
double fl_dp_rdp(double q, double z, double alpha);

/* How RDP becomes (epsilon, delta), minimised over the orders. */
enum fl_dp_conversion {
    /* Mironov 2017, Proposition 3: eps = rdp + log(1/delta) / (alpha - 1). */
    FL_DP_CONVERT_MIRONOV,
    /* Balle, Barthe, Gaboardi, Hsu, Sato 2020, Theorem 21 (also Canonne, Kamath, Steinke 2020):
     * eps = rdp + log((alpha - 1) / alpha) - (log delta + log alpha) / (alpha - 1). Tighter;
     * what Opacus and TensorFlow Privacy report today, and what fedtl reports. */
    FL_DP_CONVERT_BALLE,
};

/* The smallest epsilon (>= 0) over n orders for delta in (0, 1); the order reaching it in
 * *best (NULL: not wanted). INFINITY when every order's RDP is infinite. */
double fl_dp_epsilon(const double *orders, const double *rdp, size_t n, double delta,
                     enum fl_dp_conversion conv, double *best);

/* What a federation has spent: the RDP per order of fl_dp_orders(), summed over rounds
 * (composition adds RDP order by order). A plain value: zero it to start. */
struct fl_dp_account {
    double rdp[FL_DP_NORDERS]; /* per order of fl_dp_orders() */
    uint32_t rounds;           /* noisy aggregates released */
};

/* Add one round with sampling rate q and noise multiplier z. FL_EINVAL for q outside [0, 1]
 * or z not > 0 (nothing added). */
int fl_dp_account_spend(struct fl_dp_account *a, double q, double z);
/* The epsilon spent at delta (Balle et al.'s conversion); 0 before any round. */
double fl_dp_account_epsilon(const struct fl_dp_account *a, double delta);
/* The epsilon one more round at (q, z) would bring the account to, a left unchanged. */
double fl_dp_account_epsilon_after(const struct fl_dp_account *a, double q, double z, double delta);
/* A restored account is sane: every RDP finite and >= 0. FL_EINVAL naming the order. */
int fl_dp_account_check(const struct fl_dp_account *a);

/* The smallest noise multiplier (to 1e-5, then rounded up to 4 decimals) with which `rounds` rounds
 * at sampling rate q stay within (target, delta). FL_EINVAL for arguments out of range, FL_ERANGE
 * when even z = 1e4 does not reach the target. */
int fl_dp_calibrate(double target, double delta, double q, uint32_t rounds, double *z);

/* n independent standard normal values from libsodium's CSPRNG (randombytes_buf): the
 * Box-Muller transform of uniforms with 53 random bits. sodium_init() must have run. The
 * floating-point caveat (Mironov 2012) is in docs/SECURITY.md. */
void fl_dp_gauss(double *out, size_t n);
/* x[i] += sigma * N(0, 1) for i < n (sigma >= 0). */
void fl_dp_add_noise(double *x, size_t n, double sigma);

/* Scale delta (n values) down to L2 norm `clip` (> 0) if it is longer; the factor applied
 * (1: unchanged). A branch clips its own change before adding its share of the noise. */
double fl_dp_clip(float *delta, size_t n, double clip);
/* Distributed DP: the standard deviation of one branch's share of the noise, so that the sum
 * of at least expected - tolerated shares carries noise of standard deviation z * clip at the
 * least: z * clip / sqrt(expected - tolerated). FL_EINVAL unless z > 0, clip > 0 and
 * tolerated < expected. */
int fl_dp_share_sigma(double z, double clip, uint32_t expected, uint32_t tolerated, double *sigma);
/* Distributed DP, at the aggregator: the noise multiplier the sum of `survivors` shares carries,
 * z sqrt(survivors / (expected - tolerated)): at least z when survivors >= expected -
 * tolerated; below it the round must not be released as a z-noisy one (discard it, or account
 * it at this smaller multiplier). 0 for arguments fl_dp_share_sigma refuses. */
double fl_dp_share_noise(double z, uint32_t survivors, uint32_t expected, uint32_t tolerated);
/* Distributed DP, at a branch: add its share (fl_dp_share_sigma) to its clipped change (n
 * floats) before secure aggregation masks it. fl_dp_share_sigma's errors, delta unchanged. */
int fl_dp_add_share(float *delta, size_t n, double z, double clip, uint32_t expected,
                    uint32_t tolerated);

#endif
