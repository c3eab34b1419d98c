/* fl_branch_secagg: a branch's secure aggregation, one fl_secagg_client per round; under
 * distributed DP (RoundTask.dp_noise_multiplier) its input is its clipped change plus its share
 * of the noise, with weight 1 (docs/PRIVACY.md). */
#include "fl_branch_secagg.h"
#include "fl_codec.h"
#include "fl_dp.h"
#include "fl_error.h"
#include "fl_modelfile.h"
#include "fl_secagg_client.h"

#include <math.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct fl_branch_secagg {
    const struct fl_identity *id; /* the branch (borrowed) */
    fl_uplink_t *up;              /* its connection (borrowed) */
    fl_secagg_client_t *cl;       /* the current round's, or NULL */
    uint32_t round;               /* its round */
    fl_pool_t *pool;              /* expands the masks (borrowed), or NULL */
#ifdef FEDTL_TESTING
    float *test_x;         /* test builds, FEDTL_TEST_RECORD_DIR set: the round's input, or NULL */
    size_t test_n;         /* its values */
    uint64_t test_samples; /* its sample count */
#endif
};

fl_branch_secagg_t *fl_branch_secagg_new(const struct fl_identity *id, fl_uplink_t *up,
                                         fl_pool_t *pool)
{
    fl_branch_secagg_t *self = calloc(1, sizeof *self);
    if (self) {
        self->id = id;
        self->up = up;
        self->pool = pool;
    }
    return self;
}

void fl_branch_secagg_destroy(fl_branch_secagg_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_secagg_client_destroy(&(*self_p)->cl);
#ifdef FEDTL_TESTING
    free((*self_p)->test_x);
#endif
    free(*self_p);
    *self_p = NULL;
}

static int s_send(void *arg, Fedtl__Envelope *env)
{
    fl_branch_secagg_t *self = arg;
    return fl_uplink_send(self->up, env, "secagg");
}

/* The change of the trained adapter (bytes) from the global one, values in tensor order, into a
 * malloc'd *delta of *n values. */
static int s_delta(const uint8_t *global, size_t global_len, const uint8_t *trained,
                   size_t trained_len, float **delta, size_t *n)
{
    struct fl_adapter_file g, a;
    int rc = fl_adapter_unpack(global, global_len, "global adapter", &g);
    if (rc)
        return rc;
    if ((rc = fl_adapter_unpack(trained, trained_len, "trained adapter", &a)) != 0) {
        fl_adapter_close(&g);
        return rc;
    }
    size_t total = 0;
    for (size_t t = 0; rc == 0 && t < g.ntensors; t++) {
        if (t >= a.ntensors || fl_tensor_numel(&a.tensors[t]) != fl_tensor_numel(&g.tensors[t]))
            rc = fl_fail(FL_EMISMATCH, "the trained adapter does not fit the global one");
        total += fl_tensor_numel(&g.tensors[t]);
    }
    if (rc == 0 && a.ntensors != g.ntensors)
        rc = fl_fail(FL_EMISMATCH, "the trained adapter does not fit the global one");
    if (rc == 0 && !(*delta = malloc((total ? total : 1) * sizeof **delta)))
        rc = FL_ENOMEM;
    size_t off = 0;
    for (size_t t = 0; rc == 0 && t < g.ntensors; t++) {
        size_t m = fl_tensor_numel(&g.tensors[t]);
        for (size_t v = 0; v < m; v++)
            (*delta)[off + v] = a.tensors[t].data[v] - g.tensors[t].data[v];
        off += m;
    }
    *n = total;
    fl_adapter_close(&a);
    fl_adapter_close(&g);
    return rc;
}

#ifdef FEDTL_TESTING
/* Test builds only, with FEDTL_TEST_RECORD_DIR set: the global adapter the task t came with
 * goes to DIR/task-ID-ROUND.fta (ID the branch's key id), and the round's input (x NULL: none)
 * is kept until the masked input is out (s_test_record). */
static void s_test_keep(fl_branch_secagg_t *self, const Fedtl__RoundTask *t, const float *x,
                        size_t n, uint64_t samples)
{
    free(self->test_x);
    self->test_x = NULL;
    const char *dir = getenv("FEDTL_TEST_RECORD_DIR");
    if (!dir || !*dir)
        return;
    char id[FL_KEY_ID_LEN], path[4096];
    fl_key_id(self->id->sign_pk, id);
    snprintf(path, sizeof path, "%s/task-%s-%u.fta", dir, id, t->round);
    (void)mkdir(dir, 0700);
    FILE *fp = fopen(path, "wb");
    bool ok = fp && fwrite(t->adapter.data, 1, t->adapter.len, fp) == t->adapter.len;
    if ((fp && fclose(fp) != 0) || !ok)
        fl_log(FL_LOG_ERROR, "test_record_failed", "path=\"%s\"", path);
    if (!x || !(self->test_x = malloc((n ? n : 1) * sizeof *x)))
        return;
    memcpy(self->test_x, x, n * sizeof *x);
    self->test_n = n;
    self->test_samples = samples;
}

/* Test builds only: once the masked input is out, the input it masked goes to
 * FEDTL_TEST_RECORD_DIR/input-ID-ROUND (ID the branch's key id): a line "input branch=ID
 * round=R values=N samples=S weight=W", a newline, the N + 1 words of its fixed-point encoding
 * under the round's setup (the weight W last), then its N values as floats, both in host byte
 * order (tests/test_secagg_view.c compares them with what the coordinator read). */
static void s_test_record(fl_branch_secagg_t *self)
{
    const char *dir = getenv("FEDTL_TEST_RECORD_DIR");
    const struct fl_secagg_params *p = fl_secagg_client_params(self->cl);
    if (!dir || !*dir || !p || !self->test_x)
        return;
    size_t n = self->test_n;
    uint32_t w = fl_secagg_fixed_weight(&p->fixed, self->test_samples);
    uint64_t *y = malloc((n + 1) * sizeof *y);
    char id[FL_KEY_ID_LEN], path[4096];
    fl_key_id(self->id->sign_pk, id);
    snprintf(path, sizeof path, "%s/input-%s-%u", dir, id, self->round);
    FILE *fp = y && fl_secagg_fixed_encode(&p->fixed, self->test_x, n, w, y) == 0
                   ? fopen(path, "wb")
                   : NULL;
    bool ok = fp &&
              fprintf(fp, "input branch=%s round=%u values=%zu samples=%llu weight=%u\n", id,
                      self->round, n, (unsigned long long)self->test_samples, w) > 0 &&
              fwrite(y, sizeof *y, n + 1, fp) == n + 1 &&
              fwrite(self->test_x, sizeof *self->test_x, n, fp) == n;
    if (fp && fclose(fp) != 0)
        ok = false;
    if (!ok)
        fl_log(FL_LOG_ERROR, "test_record_failed", "path=\"%s\"", path);
    free(y);
    free(self->test_x);
    self->test_x = NULL;
}
#endif

/* The task's distributed-DP settings: *sigma the branch's noise share's deviation (0: off). */
static int s_dp_settings(const Fedtl__RoundTask *t, double *sigma)
{
    *sigma = 0;
    if (t->dp_noise_multiplier == 0 && t->dp_noise_shares == 0)
        return 0;
    int rc = fl_secagg_dp_check(t->dp_noise_multiplier, t->norm_bound, t->dp_noise_shares, sigma);
    return rc ? fl_fail(rc, "task of round %u: %s", t->round, fl_error_msg()) : 0;
}

/* The branch's input: its change clipped to the norm bound, plus its noise share under DP. */
static int s_input(fl_branch_secagg_t *self, const Fedtl__RoundTask *t, double sigma, float *delta,
                   size_t n, uint64_t samples)
{
    double scale = fl_secagg_clip(delta, n, t->norm_bound);
    int rc = 0;
    if (sigma > 0) {
        /* the encoding fl_secagg_dp_check fitted the noise into (s_dp_settings) */
        const struct fl_secagg_fixed dp = FL_SECAGG_FIXED_DP;
        fl_secagg_client_require(self->cl, t->dp_noise_shares, &dp);
        rc =
            fl_dp_add_share(delta, n, t->dp_noise_multiplier, t->norm_bound, t->dp_noise_shares, 0);
        samples = 1; /* DP-FedAvg's uniform weights */
    }
    if (rc == 0)
        rc = fl_secagg_client_input(self->cl, delta, n, samples);
    if (rc == 0)
        fl_log(FL_LOG_INFO, "secagg_input",
               "round=%u values=%zu samples=%llu clip_scale=%.4g dp_noise_sigma=%.6g", t->round, n,
               (unsigned long long)samples, scale, sigma);
    return rc;
}

int fl_branch_secagg_answer(fl_branch_secagg_t *self, const char *federation,
                            const uint8_t run_id[FL_RUN_ID_BYTES], const Fedtl__RoundTask *t,
                            const uint8_t *body, size_t body_len)
{
    fl_secagg_client_destroy(&self->cl);
    if (!isfinite(t->norm_bound) || t->norm_bound < 0)
        return fl_fail(FL_EFORMAT, "task: norm bound %g", (double)t->norm_bound);
    double sigma = 0;
    int rc = s_dp_settings(t, &sigma);
    if (rc)
        return rc;
    Fedtl__UpdateBody *b = NULL;
    float *delta = NULL;
    size_t n = 0;
    rc = fl_wire_decode_body(body, body_len, &b);
    if (rc == 0)
        rc = s_delta(t->adapter.data, t->adapter.len, b->adapter.data, b->adapter.len, &delta, &n);
    struct fl_secagg_ctx ctx = {.federation = federation, .round = t->round};
    memcpy(ctx.run_id, run_id, FL_RUN_ID_BYTES);
    struct fl_secagg_client_ops ops = {.send = s_send, .pool = self->pool};
    if (rc == 0 && !(self->cl = fl_secagg_client_new(self->id, &ctx, &ops, self)))
        rc = FL_ENOMEM;
    if (rc == 0)
        rc = s_input(self, t, sigma, delta, n, b->samples);
    self->round = t->round;
#ifdef FEDTL_TESTING
    s_test_keep(self, t, rc == 0 ? delta : NULL, n, rc != 0 ? 0 : sigma > 0 ? 1 : b->samples);
#endif
    if (delta)
        sodium_memzero(delta, n * sizeof *delta);
    free(delta);
    fl_wire_free_body(&b);
    return rc;
}

#ifdef FEDTL_TESTING
/* Test builds only: FEDTL_TEST_SECAGG_DIE_ROUND=R makes the branch die (SIGKILL) once it sent
 * its masked input in round R, before the consistency round: a dropout the protocol must
 * survive (tests/test_secagg_e2e.c). */
static void s_test_die(const fl_branch_secagg_t *self)
{
    const char *r = getenv("FEDTL_TEST_SECAGG_DIE_ROUND");
    if (r && strtoul(r, NULL, 10) == self->round &&
        fl_secagg_client_phase(self->cl) == FL_SECAGG_PHASE_CONSISTENCY) {
        fl_log(FL_LOG_WARN, "test_secagg_die", "round=%u", self->round);
        raise(SIGKILL);
    }
}
#endif

int fl_branch_secagg_recv(fl_branch_secagg_t *self, const Fedtl__Envelope *env)
{
    char msg[512];
#ifdef FEDTL_TESTING
    if (self->cl)
        s_test_die(self);
#endif
    if (!self->cl) {
        fl_log(FL_LOG_WARN, "secagg_ignored", "msg=%d reason=\"no secure aggregation open\"",
               (int)env->body_case);
        return 0;
    }
    enum fl_secagg_phase before = fl_secagg_client_phase(self->cl);
    int rc = fl_secagg_client_recv(self->cl, env);
    enum fl_secagg_phase after = fl_secagg_client_phase(self->cl);
#ifdef FEDTL_TESTING
    if (before < FL_SECAGG_PHASE_CONSISTENCY && after == FL_SECAGG_PHASE_CONSISTENCY)
        s_test_record(self);
#endif
    if (rc)
        fl_log(rc == FL_EINVAL ? FL_LOG_DEBUG : FL_LOG_WARN, "secagg_refused",
               "round=%u msg=%d error=%s reason=%s", self->round, (int)env->body_case,
               fl_strerror(rc), fl_log_str(fl_error_msg(), msg, sizeof msg));
    if (after != before && (after == FL_SECAGG_PHASE_DONE || after == FL_SECAGG_PHASE_ABORTED))
        fl_log(after == FL_SECAGG_PHASE_DONE ? FL_LOG_INFO : FL_LOG_WARN, "secagg_end",
               "round=%u phase=%s", self->round, fl_secagg_phase_name(after));
    return 0;
}
