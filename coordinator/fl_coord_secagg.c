/* fl_coord_secagg: the coordinator's secure aggregation, one fl_secagg_server per round attempt.
 * Under distributed DP (docs/PRIVACY.md) every weight is 1, the encoding is FL_SECAGG_FIXED_DP,
 * the threshold is the share count the tasks carried, and the unmasked sum goes to the strategy
 * whole (it divides it by the branches selected), its weight the count of inputs in it. The
 * attempt is charged to the privacy account once the coordinator holds threshold reveals (what
 * unmasking needs), whatever becomes of it after. */
#include "fl_coord_secagg.h"
#include "fl_coord_impl.h"
#include "fl_secagg_server.h"

#include <signal.h>

/* Of the round's deadline: training, then the keys; and each later phase. The four later ones
 * end by 0.9 of it, so that an attempt ends in the protocol rather than at the deadline. */
#define S_KEYS_SHARE  0.5
#define S_PHASE_SHARE 0.1

struct fl_coord_secagg {
    struct fl_coord *c;         /* the coordinator (borrowed) */
    fl_secagg_server_t *srv;    /* the current attempt's, or NULL */
    int64_t started_ms;         /* the attempt it serves (fl_round_info.started_ms) */
    uint32_t round;             /* its round */
    struct fl_secagg_params p;  /* its parameters (roster owned) */
    enum fl_secagg_phase phase; /* the server's phase when phase_end was set */
    int64_t phase_end;          /* when that phase is closed at the latest (ms) */
    bool finished;              /* the outcome went to the round core */
    bool released;              /* DP: the attempt was charged (threshold reveals held) */
    bool unchargeable;          /* DP: the charge could not be saved: the sum is not used */
    cJSON *record;              /* the attempt's ledger record */
};

fl_coord_secagg_t *fl_coord_secagg_new(struct fl_coord *c)
{
    fl_coord_secagg_t *self = calloc(1, sizeof *self);
    if (self)
        self->c = c;
    return self;
}

static void s_reset(fl_coord_secagg_t *self)
{
    fl_secagg_server_destroy(&self->srv);
    free(self->p.branches);
    self->p.branches = NULL;
    cJSON_Delete(self->record);
    self->record = NULL;
    self->finished = false;
    self->released = false;
    self->unchargeable = false;
}

void fl_coord_secagg_destroy(fl_coord_secagg_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    s_reset(*self_p);
    free(*self_p);
    *self_p = NULL;
}

static void s_record(fl_coord_secagg_t *self);

const cJSON *fl_coord_secagg_record(fl_coord_secagg_t *self)
{
    if (self->srv && !self->finished)
        s_record(self); /* the round ended first: where the protocol stood */
    return self->record;
}

static void s_send(void *arg, uint32_t branch, Fedtl__Envelope *env)
{
    fl_coord_secagg_t *self = arg;
    fl_outbox_envelope(self->c->outbox, self->p.branches[branch], env);
}

/* Values in the global adapter: the length of every input. */
static size_t s_length(struct fl_coord *c)
{
    const struct fl_adapter_file *g = fl_global_adapter(c->global);
    size_t n = 0;
    for (size_t t = 0; t < g->ntensors; t++)
        n += fl_tensor_numel(&g->tensors[t]);
    return n;
}

/* The attempt's record: how far each phase got, and who left when. */
static void s_record(fl_coord_secagg_t *self)
{
    static const char *const after[] = {"setup",        "keys",        "shares",
                                        "masked_input", "consistency", "reveal"};
    cJSON_Delete(self->record);
    cJSON *o = self->record = cJSON_CreateObject(), *dropped = cJSON_CreateArray();
    if (!o || !dropped) {
        cJSON_Delete(dropped);
        return;
    }
    enum fl_secagg_phase ph = fl_secagg_server_phase(self->srv);
    cJSON_AddStringToObject(o, "phase", fl_secagg_phase_name(ph));
    cJSON_AddNumberToObject(o, "selected", self->p.n);
    cJSON_AddNumberToObject(o, "degree", self->p.degree);
    cJSON_AddNumberToObject(o, "threshold", self->p.threshold);
    cJSON_AddNumberToObject(o, "inputs",
                            fl_secagg_server_answered(self->srv, FL_SECAGG_PHASE_MASKED));
    const uint64_t *sum = fl_secagg_server_sum(self->srv);
    if (sum)
        fl_json_add_u64(o, "total_weight", sum[self->p.length]);
    if (ph == FL_SECAGG_PHASE_ABORTED)
        cJSON_AddNumberToObject(o, "abort_code", fl_secagg_server_abort_code(self->srv));
    for (uint32_t i = 0; i < self->p.n; i++) {
        int got = fl_secagg_server_progress(self->srv, i);
        if (got == 5)
            continue;
        cJSON *d = cJSON_CreateObject();
        char id[FL_KEY_ID_LEN];
        fl_key_id(self->p.branches[i], id);
        const struct fl_round_branch *b =
            fl_round_find(self->c->round, self->p.branches[i], FL_SIGN_PK_BYTES);
        cJSON_AddStringToObject(d, "id", id);
        cJSON_AddStringToObject(d, "branch", b ? b->name : "?");
        cJSON_AddStringToObject(d, "after", after[got]);
        cJSON_AddBoolToObject(d, "in_sum", sum && fl_secagg_server_survived(self->srv, i));
        cJSON_AddItemToArray(dropped, d);
    }
    cJSON_AddItemToObject(o, "dropped", dropped);
}

/* A round attempt started: its secure aggregation among the branches it selected. */
static void s_begin(fl_coord_secagg_t *self, const struct fl_round_info *info, int64_t now)
{
    struct fl_coord *c = self->c;
    s_reset(self);
    self->started_ms = info->started_ms;
    self->round = info->round;
    size_t nb = fl_round_nbranches(c->round);
    self->p.branches = malloc((nb ? nb : 1) * FL_SIGN_PK_BYTES);
    self->p.n = 0;
    for (size_t i = 0; self->p.branches && i < nb; i++) {
        const struct fl_round_branch *b = fl_round_branch_at(c->round, i);
        if (fl_round_busy(c->round, b))
            memcpy(self->p.branches[self->p.n++], b->key, FL_SIGN_PK_BYTES);
    }
    randombytes_buf(self->p.graph_seed, sizeof self->p.graph_seed);
    self->p.degree = fl_secagg_degree(self->p.n, c->cfg.secagg_dropout);
    self->p.threshold = fl_secagg_threshold(self->p.degree);
    self->p.fixed = FL_SECAGG_FIXED_DEFAULT;
    if (c->cfg.max_samples < self->p.fixed.max_weight)
        self->p.fixed.max_weight = (uint32_t)c->cfg.max_samples;
    if (c->privacy) { /* as the tasks said, of the roster: at most the degree (a branch
                       * whose task said more refuses the setup) */
        self->p.threshold =
            fl_secagg_dp_shares(self->p.n, (uint32_t)c->cfg.min_clients, c->cfg.secagg_dropout);
        self->p.fixed = FL_SECAGG_FIXED_DP;
    }
    self->p.length = s_length(c);
    struct fl_secagg_ctx ctx = {.federation = c->cfg.federation, .round = info->round};
    memcpy(ctx.run_id, c->run_id, FL_RUN_ID_BYTES);
    struct fl_secagg_server_ops ops = {.send = s_send, .pool = c->pool};
    char reason[512];
    self->srv = self->p.branches ? fl_secagg_server_new(&ctx, &self->p, &ops, self) : NULL;
    if (self->srv) /* a sum of fewer inputs would fall short: it is not unmasked at all */
        fl_secagg_server_min_inputs(self->srv, (uint32_t)c->cfg.min_clients);
    if (!self->srv || fl_secagg_server_start(self->srv) != 0) {
        fl_log(FL_LOG_ERROR, "secagg_failed", "round=%u selected=%u reason=%s", info->round,
               self->p.n, fl_log_str(fl_error_msg(), reason, sizeof reason));
        fl_secagg_server_destroy(&self->srv);
        return; /* the attempt falls short at its deadline */
    }
    self->phase = FL_SECAGG_PHASE_KEYS;
    self->phase_end = now + (int64_t)(c->cfg.deadline_s * 1000 * S_KEYS_SHARE);
    fl_log(FL_LOG_INFO, "secagg_start", "round=%u selected=%u degree=%u threshold=%u values=%llu",
           info->round, self->p.n, self->p.degree, self->p.threshold,
           (unsigned long long)self->p.length);
}

/* The inputs in the sum: under DP each weighs 1, whatever weight word a branch wrote. */
static uint64_t s_inputs(fl_coord_secagg_t *self, const uint64_t *sum)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < self->p.n; i++)
        n += fl_secagg_server_survived(self->srv, i);
    if (sum[self->p.length] != n) /* the sum is anonymous: nobody in particular is to blame */
        fl_log(FL_LOG_WARN, "secagg_weight_mismatch",
               "round=%u inputs=%llu weight_word=%llu reason=\"a branch in the sum wrote a "
               "weight other than 1; the sum counts as its inputs\"",
               self->round, (unsigned long long)n, (unsigned long long)sum[self->p.length]);
    return n;
}

/* The change the sum stands for: the weighted mean change, or under DP the sum of the noisy
 * clipped changes (the strategy divides it by the branches selected). */
static int s_decode(fl_coord_secagg_t *self, double *out, uint64_t *total)
{
    const uint64_t *sum = fl_secagg_server_sum(self->srv);
    if (self->c->privacy) {
        *total = s_inputs(self, sum);
        fl_secagg_fixed_decode_sum(&self->p.fixed, sum, self->p.length, out);
        return 0;
    }
    float *mean = malloc((self->p.length ? self->p.length : 1) * sizeof *mean);
    if (!mean)
        return FL_ENOMEM;
    int rc = fl_secagg_fixed_decode(&self->p.fixed, sum, self->p.length, mean, total);
    for (size_t i = 0; rc == 0 && i < self->p.length; i++)
        out[i] = mean[i];
    free(mean);
    return rc;
}

/* The sum is known: the change it stands for, added to the global adapter, is the round's one
 * update, with the total weight. 0, or an FL_E code (logged by the caller). */
static int s_add_update(fl_coord_secagg_t *self)
{
    struct fl_coord *c = self->c;
    const struct fl_adapter_file *g = fl_global_adapter(c->global);
    double *mean = malloc((self->p.length ? self->p.length : 1) * sizeof *mean);
    struct fl_tensor *upd = calloc(g->ntensors ? g->ntensors : 1, sizeof *upd);
    uint64_t total = 0;
    int rc = !mean || !upd ? FL_ENOMEM : 0;
    if (rc == 0)
        rc = s_decode(self, mean, &total);
    size_t off = 0, made = 0;
    for (; rc == 0 && made < g->ntensors; made++) {
        if ((rc = fl_tensor_copy(&upd[made], &g->tensors[made])) != 0)
            break;
        size_t n = fl_tensor_numel(&upd[made]);
        for (size_t v = 0; v < n; v++)
            upd[made].data[v] = (float)(upd[made].data[v] + mean[off + v]);
        off += n;
    }
    if (rc == 0)
        rc = fl_strategy_add(c->strategy, upd, g->ntensors, (double)total, "secure-aggregate");
    for (size_t t = 0; t < made; t++)
        fl_tensor_free(&upd[t]);
    free(upd);
    free(mean);
    return rc;
}

/* The attempt ended (sum or abort): every selected branch has answered; those in the sum are
 * the round's accepted updates (none when it aborted or the sum could not be used). */
static void s_finish(fl_coord_secagg_t *self)
{
    struct fl_coord *c = self->c;
    enum fl_secagg_phase ph = fl_secagg_server_phase(self->srv);
    char reason[512];
    int rc = ph == FL_SECAGG_PHASE_DONE ? 0 : FL_ERANGE;
    if (rc == 0 && c->privacy && (!self->released || self->unchargeable))
        rc = fl_fail(FL_EIO, "the privacy account could not count the sum");
    if (rc == 0)
        rc = s_add_update(self);
    if (ph == FL_SECAGG_PHASE_DONE && rc != 0)
        fl_log(FL_LOG_ERROR, "secagg_sum_unusable", "round=%u reason=%s", self->round,
               fl_log_str(fl_error_msg(), reason, sizeof reason));
    uint32_t inputs = 0;
    for (uint32_t i = 0; i < self->p.n; i++) {
        fl_round_answered(c->round, self->p.branches[i]);
        if (rc == 0 && fl_secagg_server_survived(self->srv, i)) {
            fl_round_accept(c->round, self->p.branches[i], FL_SIGN_PK_BYTES, self->round);
            inputs++;
        }
    }
    s_record(self);
    self->finished = true;
    fl_log(ph == FL_SECAGG_PHASE_DONE ? FL_LOG_INFO : FL_LOG_WARN, "secagg_end",
           "round=%u phase=%s selected=%u inputs=%u revealed=%u abort_code=%d", self->round,
           fl_secagg_phase_name(ph), self->p.n, inputs,
           fl_secagg_server_answered(self->srv, FL_SECAGG_PHASE_REVEAL),
           fl_secagg_server_abort_code(self->srv));
}

#ifdef FEDTL_TESTING
/* Test builds only: FEDTL_TEST_DDP_DIE_RELEASE=R makes the coordinator die (SIGKILL) once it
 * counted an unmaskable sum of round R, before the round commits (tests/test_ddp_e2e.c). */
static void s_test_die(const fl_coord_secagg_t *self)
{
    const char *r = getenv("FEDTL_TEST_DDP_DIE_RELEASE");
    if (r && strtoul(r, NULL, 10) == self->round) {
        fl_log(FL_LOG_WARN, "test_ddp_die", "round=%u", self->round);
        raise(SIGKILL);
    }
}
#endif

/* Under DP, once the coordinator holds threshold reveals it may unmask the sum: charge the
 * attempt then, before anything is decoded, and once, whatever becomes of it. */
static void s_release(fl_coord_secagg_t *self)
{
    if (!self->c->privacy || self->released ||
        fl_secagg_server_answered(self->srv, FL_SECAGG_PHASE_REVEAL) < self->p.threshold)
        return;
    self->released = true;
    if (fl_coord_privacy_release(self->c, self->round) != 0)
        self->unchargeable = true;
#ifdef FEDTL_TESTING
    s_test_die(self);
#endif
}

/* After the server moved: a new phase gets its deadline; the end goes to the round core. */
static void s_check(fl_coord_secagg_t *self, int64_t now)
{
    s_release(self);
    enum fl_secagg_phase ph = fl_secagg_server_phase(self->srv);
    if (ph == self->phase)
        return;
    self->phase = ph;
    if (ph == FL_SECAGG_PHASE_DONE || ph == FL_SECAGG_PHASE_ABORTED) {
        s_finish(self);
        return;
    }
    self->phase_end = now + (int64_t)(self->c->cfg.deadline_s * 1000 * S_PHASE_SHARE);
    fl_log(FL_LOG_INFO, "secagg_phase", "round=%u phase=%s answered_before=%u", self->round,
           fl_secagg_phase_name(ph), fl_secagg_server_answered(self->srv, ph - 1));
}

void fl_coord_secagg_tick(fl_coord_secagg_t *self, int64_t now)
{
    struct fl_coord *c = self->c;
    const struct fl_round_info *info = fl_round_info(c->round);
    if (fl_round_phase(c->round) != FL_ROUND_RUNNING)
        return;
    if (!self->p.branches || info->started_ms != self->started_ms) {
        s_begin(self, info, now);
        return;
    }
    if (self->srv && !self->finished && now >= self->phase_end) {
        fl_log(FL_LOG_INFO, "secagg_timeout", "round=%u phase=%s", self->round,
               fl_secagg_phase_name(self->phase));
        fl_secagg_server_timeout(self->srv);
        s_check(self, now);
    }
}

void fl_coord_secagg_recv(fl_coord_secagg_t *self, const uint8_t key[FL_SIGN_PK_BYTES],
                          const Fedtl__Envelope *env)
{
    char id[FL_KEY_ID_LEN], reason[512];
    fl_key_id(key, id);
    const struct fl_round_info *info = fl_round_info(self->c->round);
    bool open = self->srv && !self->finished &&
                fl_round_phase(self->c->round) == FL_ROUND_RUNNING &&
                info->started_ms == self->started_ms; /* an attempt that ended unmasks nothing */
    int i = open ? fl_secagg_index(&self->p, key) : -1;
    int rc = i < 0 ? fl_fail(FL_EINVAL, "no secure aggregation of this branch is open")
                   : fl_secagg_server_recv(self->srv, (uint32_t)i, env);
    if (rc) {
        fl_log(FL_LOG_WARN, "secagg_refused", "peer=%s msg=%d error=%s reason=%s", id,
               (int)env->body_case, fl_strerror(rc),
               fl_log_str(fl_error_msg(), reason, sizeof reason));
        return;
    }
    s_check(self, fl_now_ms());
}
