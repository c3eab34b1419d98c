/* fl_metrics: the coordinator's counters and its Prometheus page. */
#include "fl_metrics.h"
#include "fl_prom.h"
#include "fl_time.h"

#include <stdlib.h>
#include <string.h>

#define S_NREASONS (FL_REJECT_TOO_MANY + 2) /* the known reasons, and "other" */

/* Round attempts: from seconds to hours. */
static const double s_round_bounds[] = {1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600};
/* One update through the intake: signature, decryption, checks, folding in. */
static const double s_intake_bounds[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                         0.25,  0.5,   1,    2.5,   5,    10};

struct fl_metrics {
    uint64_t accepted;                      /* updates accepted */
    uint64_t rejected[S_NREASONS];          /* updates rejected, by reason */
    uint64_t attempts_short;                /* attempts that fell short */
    uint64_t bytes_in_done, bytes_out_done; /* traffic of the attempts before the open one */
    uint64_t base_downloads;                /* base requests from offset 0 */
    uint64_t base_bytes;                    /* base chunks sent */
    struct fl_prom_hist round_s;            /* round attempt durations */
    struct fl_prom_hist intake_s;           /* update intake durations */
    struct fl_metrics_round open;           /* the open attempt's counts so far */
    double fed_n, fed_acc, fed_loss;        /* its held-out sums: records, weighted metrics */
    bool has_last_fed, has_last_server;     /* the last committed round's metrics are known */
    struct fl_metrics_round last;           /* the last committed round */
    struct fl_metrics_round rounds[FL_METRICS_ROUNDS_KEPT]; /* a ring of the last attempts */
    size_t rounds_head, nrounds;                            /* its oldest entry and its size */
    struct fl_metrics_branch *branches;                     /* seen branches */
    size_t nbranches, cap;                                  /* in use, allocated */
    bool has_dp;                                            /* DP-FedAvg has released a round */
    double dp_epsilon, dp_delta;                            /* its spending: (epsilon, delta) */
};

fl_metrics_t *fl_metrics_new(void)
{
    struct fl_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    fl_prom_hist_init(&m->round_s, s_round_bounds, sizeof s_round_bounds / sizeof(double));
    fl_prom_hist_init(&m->intake_s, s_intake_bounds, sizeof s_intake_bounds / sizeof(double));
    return m;
}

void fl_metrics_destroy(fl_metrics_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->branches);
    free(*self_p);
    *self_p = NULL;
}

/* The branch with key, added when new (NULL when the table is full or out of memory). */
static struct fl_metrics_branch *s_branch(struct fl_metrics *m, const uint8_t *key)
{
    for (size_t i = 0; i < m->nbranches; i++)
        if (memcmp(m->branches[i].key, key, FL_SIGN_PK_BYTES) == 0)
            return &m->branches[i];
    if (m->nbranches == FL_METRICS_BRANCHES_MAX)
        return NULL;
    if (m->nbranches == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 16;
        struct fl_metrics_branch *b = realloc(m->branches, cap * sizeof *b);
        if (!b)
            return NULL;
        m->branches = b;
        m->cap = cap;
    }
    struct fl_metrics_branch *b = &m->branches[m->nbranches++];
    memset(b, 0, sizeof *b);
    memcpy(b->key, key, FL_SIGN_PK_BYTES);
    fl_key_id(key, b->id);
    return b;
}

/* ---- hooks ---- */

void fl_metrics_begin(fl_metrics_t *self, const fl_ledger_t *ledger)
{
    if (!self)
        return;
    uint64_t in, out;
    fl_ledger_bytes(ledger, &in, &out);
    self->bytes_in_done += in;
    self->bytes_out_done += out;
    memset(&self->open, 0, sizeof self->open);
    self->fed_n = self->fed_acc = self->fed_loss = 0;
}

void fl_metrics_intake(fl_metrics_t *self, double t0)
{
    if (self)
        fl_prom_hist_observe(&self->intake_s, fl_now_s() - t0);
}

void fl_metrics_accepted(fl_metrics_t *self, const uint8_t key[FL_SIGN_PK_BYTES],
                         const struct fl_ledger_update *u)
{
    if (!self)
        return;
    self->accepted++;
    self->open.accepted++;
    if (u->eval_samples > 0) {
        double n = (double)u->eval_samples;
        self->fed_n += n;
        self->fed_acc += n * u->eval_accuracy;
        self->fed_loss += n * u->eval_loss;
    }
    struct fl_metrics_branch *b = s_branch(self, key);
    if (b) {
        b->rounds_joined++;
        b->last_seen = fl_now_ms();
        if (!b->name[0])
            snprintf(b->name, sizeof b->name, "%s", u->branch);
    }
}

void fl_metrics_rejected(fl_metrics_t *self, const struct fl_round_rejection *r)
{
    if (!self)
        return;
    int why =
        r->why > FL_REJECT_NONE && r->why <= FL_REJECT_TOO_MANY ? (int)r->why : S_NREASONS - 1;
    self->rejected[why]++;
    self->open.rejected++;
    /* Updates come only from a connection that proved an enrolled key (fl_session), so the
     * table grows with enrolled keys alone; a routing id that is not a key is not listed. */
    struct fl_metrics_branch *b = r->peer_len == FL_SIGN_PK_BYTES ? s_branch(self, r->peer) : NULL;
    if (b) {
        b->rejected++;
        b->last_seen = fl_now_ms();
    }
}

void fl_metrics_round_end(fl_metrics_t *self, const struct fl_round_info *info, bool aggregated,
                          bool has_server, double server_accuracy, double server_loss)
{
    if (!self)
        return;
    struct fl_metrics_round r = self->open;
    r.round = info->round;
    r.retry = info->retry;
    r.aggregated = aggregated;
    r.selected = info->selected;
    r.accepted = info->accepted;
    r.has_fed = self->fed_n > 0;
    r.fed_accuracy = r.has_fed ? self->fed_acc / self->fed_n : 0;
    r.fed_loss = r.has_fed ? self->fed_loss / self->fed_n : 0;
    r.has_server = has_server;
    r.server_accuracy = server_accuracy;
    r.server_loss = server_loss;
    r.duration_s = (double)(fl_now_ms() - info->started_ms) / 1000.0;
    fl_prom_hist_observe(&self->round_s, r.duration_s);
    if (aggregated) {
        self->last = r;
        self->has_last_fed = r.has_fed;
        self->has_last_server = has_server;
    } else {
        self->attempts_short++;
    }
    size_t slot = (self->rounds_head + self->nrounds) % FL_METRICS_ROUNDS_KEPT;
    self->rounds[slot] = r;
    if (self->nrounds < FL_METRICS_ROUNDS_KEPT)
        self->nrounds++;
    else
        self->rounds_head = (self->rounds_head + 1) % FL_METRICS_ROUNDS_KEPT;
}

void fl_metrics_privacy(fl_metrics_t *self, double epsilon, double delta)
{
    if (!self)
        return;
    self->has_dp = true;
    self->dp_epsilon = epsilon;
    self->dp_delta = delta;
}

void fl_metrics_base_request(fl_metrics_t *self, uint64_t offset)
{
    if (self && offset == 0)
        self->base_downloads++;
}

void fl_metrics_base_chunk(fl_metrics_t *self, size_t len)
{
    if (self)
        self->base_bytes += len;
}

void fl_metrics_sync(fl_metrics_t *self, const fl_round_t *round)
{
    if (!self)
        return;
    for (size_t i = 0; i < self->nbranches; i++)
        self->branches[i].connected = false;
    for (size_t i = 0; i < fl_round_nbranches(round); i++) {
        const struct fl_round_branch *rb = fl_round_branch_at(round, i);
        struct fl_metrics_branch *b = s_branch(self, rb->key);
        if (!b)
            continue;
        b->connected = true;
        b->last_seen = rb->last_seen;
        snprintf(b->name, sizeof b->name, "%s", rb->name);
    }
}

/* ---- reading ---- */

size_t fl_metrics_nrounds(const fl_metrics_t *self)
{
    return self->nrounds;
}

const struct fl_metrics_round *fl_metrics_round_at(const fl_metrics_t *self, size_t i)
{
    return &self->rounds[(self->rounds_head + i) % FL_METRICS_ROUNDS_KEPT];
}

int fl_metrics_open_rejected(const fl_metrics_t *self)
{
    return self->open.rejected;
}

size_t fl_metrics_nbranches(const fl_metrics_t *self)
{
    return self->nbranches;
}

const struct fl_metrics_branch *fl_metrics_branch_at(const fl_metrics_t *self, size_t i)
{
    return &self->branches[i];
}

const char *fl_metrics_reject_label(int why)
{
    switch (why) {
    case FL_REJECT_STALE:
        return "stale";
    case FL_REJECT_UNREGISTERED:
        return "unregistered";
    case FL_REJECT_UNKNOWN_KEY:
        return "unknown_key";
    case FL_REJECT_FUTURE:
        return "future";
    case FL_REJECT_NOT_SELECTED:
        return "not_selected";
    case FL_REJECT_DUPLICATE:
        return "duplicate";
    case FL_REJECT_WRONG_BASE:
        return "wrong_base";
    case FL_REJECT_SIGNATURE:
        return "signature";
    case FL_REJECT_DECRYPT:
        return "decrypt";
    case FL_REJECT_MALFORMED:
        return "malformed";
    case FL_REJECT_METRICS:
        return "metrics";
    case FL_REJECT_BAD_ADAPTER:
        return "bad_adapter";
    case FL_REJECT_MISMATCH:
        return "mismatch";
    case FL_REJECT_TOO_FAR:
        return "too_far";
    case FL_REJECT_AGGREGATION:
        return "aggregation";
    case FL_REJECT_TOO_MANY:
        return "too_many";
    default:
        return "other";
    }
}

static void s_gauge(FILE *f, const char *name, const char *help, double v)
{
    fl_prom_family(f, name, "gauge", help);
    fl_prom_sample(f, name, "", v);
}

static void s_counter(FILE *f, const char *name, const char *help, uint64_t v)
{
    fl_prom_family(f, name, "counter", help);
    fl_prom_count(f, name, "", v);
}

static void s_write_rounds(const struct fl_metrics *m, const struct fl_metrics_live *live, FILE *f)
{
    char label[256];
    fl_prom_family(f, "fedtl_federation_info", "gauge",
                   "the federation this coordinator serves (its name as a label), always 1");
    fl_prom_sample(f, "fedtl_federation_info",
                   fl_prom_label(label, sizeof label, "federation", live->federation), 1);
    s_counter(f, "fedtl_rounds_completed_total",
              "rounds aggregated and committed (from the saved state on)", live->completed);
    s_counter(f, "fedtl_round_attempts_short_total",
              "round attempts that fell short of min_clients (retried)", m->attempts_short);
    s_gauge(f, "fedtl_rounds_target", "rounds the federation runs", live->rounds);
    s_gauge(f, "fedtl_round_current",
            "the open round's number (between rounds: the last completed)",
            live->phase == FL_ROUND_RUNNING ? live->completed + 1 : live->completed);
    fl_prom_family(f, "fedtl_round_phase", "gauge",
                   "1 for the coordinator's phase: waiting (for branches), round (open) or done");
    const enum fl_round_phase phases[] = {FL_ROUND_WAITING, FL_ROUND_RUNNING, FL_ROUND_DONE};
    for (size_t i = 0; i < 3; i++)
        fl_prom_sample(f, "fedtl_round_phase",
                       fl_prom_label(label, sizeof label, "phase", fl_round_phase_name(phases[i])),
                       live->phase == phases[i]);
    fl_prom_hist_write(f, "fedtl_round_duration_seconds",
                       "round attempts, from start to commit or to falling short", &m->round_s);
}

static void s_write_updates(const struct fl_metrics *m, FILE *f)
{
    char label[128];
    s_counter(f, "fedtl_updates_accepted_total", "updates accepted into an aggregate", m->accepted);
    fl_prom_family(f, "fedtl_updates_rejected_total", "counter", "updates rejected, by reason");
    for (int why = FL_REJECT_NONE + 1; why < S_NREASONS; why++)
        fl_prom_count(f, "fedtl_updates_rejected_total",
                      fl_prom_label(label, sizeof label, "reason", fl_metrics_reject_label(why)),
                      m->rejected[why]);
    fl_prom_hist_write(f, "fedtl_update_intake_duration_seconds",
                       "one update through the intake: signature, decryption, checks, folding in",
                       &m->intake_s);
}

static void s_write_quality(const struct fl_metrics *m, FILE *f)
{
    /* Known once a round has committed with them: absent before, never a made-up 0. */
    if (m->has_last_fed) {
        s_gauge(f, "fedtl_federated_accuracy_ratio",
                "the last committed round's held-out accuracy the branches reported, weighted "
                "by their held-out records",
                m->last.fed_accuracy);
        s_gauge(f, "fedtl_federated_loss", "the same round's held-out loss, likewise weighted",
                m->last.fed_loss);
    }
    if (m->has_last_server) {
        s_gauge(f, "fedtl_server_accuracy_ratio",
                "the last committed global adapter's accuracy on the server's evaluation data",
                m->last.server_accuracy);
        s_gauge(f, "fedtl_server_loss", "its loss there", m->last.server_loss);
    }
    /* Differential privacy's spent budget (fl_privacy's RDP accountant), once DP-FedAvg has
     * released a round: absent without DP, never a made-up figure. */
    if (m->has_dp) {
        s_gauge(f, "fedtl_dp_epsilon",
                "the privacy budget spent so far (DP-FedAvg, RDP accountant), at fedtl_dp_delta",
                m->dp_epsilon);
        s_gauge(f, "fedtl_dp_delta", "the delta fedtl_dp_epsilon is reported at", m->dp_delta);
    }
}

char *fl_metrics_prometheus(const fl_metrics_t *self, const struct fl_metrics_live *live,
                            size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    if (!f)
        return NULL;
    s_write_rounds(self, live, f);
    s_gauge(f, "fedtl_branches_connected", "branches registered now", (double)live->connected);
    s_gauge(f, "fedtl_branches_enrolled", "keys on the allow-list", (double)live->enrolled);
    s_write_updates(self, f);
    s_counter(f, "fedtl_received_bytes_total",
              "bytes of updates (and, during rounds, of frames that did not decode) from branches",
              self->bytes_in_done + live->bytes_in);
    s_counter(f, "fedtl_sent_bytes_total", "bytes of every message sent to branches",
              self->bytes_out_done + live->bytes_out);
    s_counter(f, "fedtl_base_downloads_total", "base downloads started (requests from offset 0)",
              self->base_downloads);
    s_counter(f, "fedtl_base_sent_bytes_total", "bytes of base chunks sent", self->base_bytes);
    s_write_quality(self, f);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}
