/* fl_privacy: the coordinator's privacy accountant for DP-FedAvg (the mathematics are
 * common/fed/fl_dp.h): the noise multiplier of the federation (given, or chosen at its start
 * for a target epsilon over the planned rounds), the budget spent round by round, whether the
 * next round still fits the budget, and STATE/privacy-ROUND.state, which keeps the spending
 * across restarts beside the strategy's state (docs/PRIVACY.md): the account while global.fta
 * holds round ROUND, with every sum of round ROUND + 1 the coordinator could unmask since. */
#ifndef FL_PRIVACY_H
#define FL_PRIVACY_H

#include <stdbool.h>
#include <stdint.h>

/* What the configuration asks for. */
struct fl_privacy_settings {
    double noise;    /* noise multiplier z (0: chosen from epsilon) */
    double clip;     /* C, the L2 bound of each update's change */
    double epsilon;  /* the budget (0: none, with noise given) */
    double delta;    /* in (0, 1) */
    uint32_t rounds; /* rounds planned */
    double q;        /* sampling rate planned: branches per round / enrolled */
};

typedef struct fl_privacy fl_privacy_t;

/* The accountant of the state directory: resumed from STATE/privacy-COMPLETED.state when
 * rounds were completed or the file exists (sums of round 1 were unmasked), else fresh, with z
 * calibrated (fl_dp_calibrate) when only epsilon is given. NULL with the message set: the file
 * missing, unreadable or made with another noise multiplier (naming the file), or a budget no noise
 * multiplier up to 1e4 meets. */
fl_privacy_t *fl_privacy_new(const struct fl_privacy_settings *s, const char *state_dir,
                             uint32_t completed);
void fl_privacy_destroy(fl_privacy_t **self_p);

/* The noise multiplier in force. */
double fl_privacy_noise(const fl_privacy_t *self);
/* The delta epsilon is reported at. */
double fl_privacy_delta(const fl_privacy_t *self);
/* The epsilon spent so far (0 before the first round). */
double fl_privacy_epsilon(const fl_privacy_t *self);
/* Whether one more round at sampling rate q keeps epsilon within the budget (always with no
 * budget); the epsilon it would bring in *after (may be NULL). */
bool fl_privacy_affords(const fl_privacy_t *self, double q, double *after);
/* Count a released round at sampling rate q. */
int fl_privacy_spend(fl_privacy_t *self, double q);
/* Count a sum the coordinator can unmask in an attempt at round completed + 1 (distributed
 * DP: the point of release, whatever becomes of the attempt) and save the account to
 * STATE/privacy-COMPLETED.state at once, so that a crash after it cannot forget the charge.
 * The committing round then spends nothing more. */
int fl_privacy_release(fl_privacy_t *self, double q, uint32_t completed);
/* Save the account after `round` to STATE/privacy-ROUND.state atomically (before the global
 * adapter commits the round, or at a release), and drop the one of round - 2 once `round` is
 * committed. */
int fl_privacy_save(const fl_privacy_t *self, uint32_t round);
void fl_privacy_prune(const fl_privacy_t *self, uint32_t round);

#endif
