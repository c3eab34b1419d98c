/* fl_branch_secagg: a branch's secure aggregation, one fl_secagg_client per round. */
#include "fl_branch_secagg.h"
#include "fl_codec.h"
#include "fl_error.h"
#include "fl_modelfile.h"
#include "fl_secagg_client.h"

#include <math.h>
#include <signal.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct fl_branch_secagg {
    const struct fl_identity *id; /* the branch (borrowed) */
    fl_uplink_t *up;              /* its connection (borrowed) */
    fl_secagg_client_t *cl;       /* the current round's, or NULL */
    uint32_t round;               /* its round */
    fl_pool_t *pool;              /* expands the masks (borrowed), or NULL */
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

int fl_branch_secagg_answer(fl_branch_secagg_t *self, const char *federation,
                            const uint8_t run_id[FL_RUN_ID_BYTES], const Fedtl__RoundTask *t,
                            const uint8_t *body, size_t body_len)
{
    fl_secagg_client_destroy(&self->cl);
    if (!isfinite(t->norm_bound) || t->norm_bound < 0)
        return fl_fail(FL_EFORMAT, "task: norm bound %g", (double)t->norm_bound);
    Fedtl__UpdateBody *b = NULL;
    float *delta = NULL;
    size_t n = 0;
    int rc = fl_wire_decode_body(body, body_len, &b);
    if (rc == 0)
        rc = s_delta(t->adapter.data, t->adapter.len, b->adapter.data, b->adapter.len, &delta, &n);
    double scale = rc == 0 ? fl_secagg_clip(delta, n, t->norm_bound) : 1;
    struct fl_secagg_ctx ctx = {.federation = federation, .round = t->round};
    memcpy(ctx.run_id, run_id, FL_RUN_ID_BYTES);
    struct fl_secagg_client_ops ops = {.send = s_send, .pool = self->pool};
    if (rc == 0 && !(self->cl = fl_secagg_client_new(self->id, &ctx, &ops, self)))
        rc = FL_ENOMEM;
    if (rc == 0)
        rc = fl_secagg_client_input(self->cl, delta, n, b->samples);
    if (rc == 0)
        fl_log(FL_LOG_INFO, "secagg_input", "round=%u values=%zu samples=%llu clip_scale=%.4g",
               t->round, n, (unsigned long long)b->samples, scale);
    self->round = t->round;
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
    if (rc)
        fl_log(rc == FL_EINVAL ? FL_LOG_DEBUG : FL_LOG_WARN, "secagg_refused",
               "round=%u msg=%d error=%s reason=%s", self->round, (int)env->body_case,
               fl_strerror(rc), fl_log_str(fl_error_msg(), msg, sizeof msg));
    if (after != before && (after == FL_SECAGG_PHASE_DONE || after == FL_SECAGG_PHASE_ABORTED))
        fl_log(after == FL_SECAGG_PHASE_DONE ? FL_LOG_INFO : FL_LOG_WARN, "secagg_end",
               "round=%u phase=%s", self->round, fl_secagg_phase_name(after));
    return 0;
}
