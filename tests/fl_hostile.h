/* fl_hostile: a coordinator as a real process and peers of our own that speak the protocol
 * over real CurveZMQ sockets with real keys, built on fedtl's own codec and crypto so that they
 * cannot drift from the protocol: honest when asked, hostile when a test needs it (spoiled
 * updates, raw frames, other peers' keys). Header only, for the process tests. */
#ifndef FL_HOSTILE_H
#define FL_HOSTILE_H

#include <criterion/criterion.h>

#include <cJSON.h>

#include "fl_codec.h"
#include "fl_error.h"
#include "fl_keys.h"
#include "fl_model.h"
#include "fl_modelfile.h"
#include "fl_modelio.h"
#include "fl_net.h"
#include "fl_seal.h"
#include "fl_testutil.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

struct s_fed {
    char *dir;                /* scratch directory */
    char path[8][1024];       /* named files, see s_file */
    int port;                 /* coordinator port */
    pid_t coord;              /* coordinator process */
    char cmd[8192];           /* how it was started */
    struct fl_base_file base; /* the base the branches hold */
    struct fl_identity *hq;   /* coordinator identity (public half used) */
    const char *federation;   /* its name */
};

enum { F_BASE, F_HQKEY, F_ALLOW, F_STATE, F_LOG, F_LEDGER, F_GLOBAL, F_STATE_JSON };

static inline void s_run(const char *cmd)
{
    char *out = NULL;
    int rc = fl_test_run(cmd, &out);
    cr_assert_eq(rc, 0, "%s failed: %s", cmd, out ? out : "");
    free(out);
}

/* Keys for hq, b1, b2 (enrolled) and evil (not), a small random base, a coordinator of the
 * federation `federation` (put in single quotes for the shell: it holds none). */
static inline void s_fed_setup_named(struct s_fed *f, const char *federation, const char *extra)
{
    memset(f, 0, sizeof *f);
    cr_assert_null(strchr(federation, '\''));
    f->federation = federation;
    f->dir = fl_test_tmpdir("coord");
    f->port = 20000 + (int)(getpid() % 20000);
    const char *names[] = {
        "base.ftm",           "hq.key",           "allow",           "state", "coord.log",
        "state/rounds.jsonl", "state/global.fta", "state/state.json"};
    for (int i = 0; i < 8; i++)
        snprintf(f->path[i], sizeof f->path[i], "%s/%s", f->dir, names[i]);
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "cd %s && mkdir allow && for k in hq b1 b2 evil; do %s/fedtl keygen --out $k "
             "--name $k >/dev/null || exit 1; done && cp b1.pub b2.pub allow/",
             f->dir, FEDTL_BIN_DIR);
    s_run(cmd);
    struct fl_arch a;
    cr_assert_eq(fl_arch_builtin("mlp", 8, 3, &a), 0);
    fl_model_t *m = fl_model_new(&a, 5, NULL);
    size_t n = fl_model_ntensors(m, FL_SET_BASE);
    struct fl_tensor ts[16];
    for (size_t i = 0; i < n; i++)
        ts[i] = *fl_model_tensor(m, FL_SET_BASE, i);
    struct fl_base_meta meta = {.nclasses = 3, .class_ids = {0, 1, 2}};
    cr_assert_eq(fl_base_write(f->path[F_BASE], &a, &meta, ts, n, NULL), 0);
    fl_model_destroy(&m);
    cr_assert_eq(fl_base_read(f->path[F_BASE], &f->base), 0);
    f->hq = fl_identity_load(f->path[F_HQKEY]);
    cr_assert_not_null(f->hq);
    snprintf(cmd, sizeof cmd,
             "exec %s/fedtl-coordinator --key %s --allow %s --base %s --state-dir %s "
             "--endpoint tcp://127.0.0.1:%d --federation '%s' --method lora --targets fc1 "
             "--rank 2 --classes 0-2 --heartbeat-ms 200 %s",
             FEDTL_BIN_DIR, f->path[F_HQKEY], f->path[F_ALLOW], f->path[F_BASE], f->path[F_STATE],
             f->port, federation, extra);
    snprintf(f->cmd, sizeof f->cmd, "%s", cmd);
    f->coord = fl_test_spawn(cmd, f->path[F_LOG]);
    cr_assert_gt(f->coord, 0);
}

static inline void s_fed_setup(struct s_fed *f, const char *extra)
{
    s_fed_setup_named(f, "testfed", extra);
}

static inline void s_fed_teardown(struct s_fed *f)
{
    if (f->coord > 0) {
        kill(f->coord, SIGKILL);
        fl_test_wait(f->coord, 5);
    }
    fl_identity_destroy(&f->hq);
    fl_base_close(&f->base);
    if (!getenv("FEDTL_KEEP_TMP"))
        fl_test_rmtree(f->dir);
    free(f->dir);
}

/* An in-test branch: a DEALER with the branch's identity. */
struct s_branch {
    struct fl_identity *id;
    void *ctx, *sock;
    uint8_t run_id[FL_RUN_ID_BYTES]; /* from the last Welcome */
};

/* A peer with name's keys: CURVE unless insecure, and with the routing id it chooses
 * (routing_id, or none: the coordinator's ROUTER then names the connection). */
static inline void s_branch_open_as(struct s_branch *b, struct s_fed *f, const char *name,
                                    bool insecure, const uint8_t *routing_id, size_t routing_len)
{
    char key[600], ep[64];
    memset(b, 0, sizeof *b);
    snprintf(key, sizeof key, "%s/%s.key", f->dir, name);
    b->id = fl_identity_load(key);
    cr_assert_not_null(b->id, "%s", fl_error_msg());
    b->ctx = zmq_ctx_new();
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", f->port);
    b->sock = zmq_socket(b->ctx, ZMQ_DEALER);
    cr_assert_not_null(b->sock);
    int linger = 0;
    zmq_setsockopt(b->sock, ZMQ_LINGER, &linger, sizeof linger);
    if (routing_id)
        cr_assert_eq(zmq_setsockopt(b->sock, ZMQ_ROUTING_ID, routing_id, routing_len), 0);
    if (!insecure) {
        zmq_setsockopt(b->sock, ZMQ_CURVE_SERVERKEY, f->hq->box_pk, FL_BOX_PK_BYTES);
        zmq_setsockopt(b->sock, ZMQ_CURVE_PUBLICKEY, b->id->box_pk, FL_BOX_PK_BYTES);
        zmq_setsockopt(b->sock, ZMQ_CURVE_SECRETKEY, b->id->box_sk, FL_BOX_SK_BYTES);
    }
    cr_assert_eq(zmq_connect(b->sock, ep), 0);
}

static inline void s_branch_open(struct s_branch *b, struct s_fed *f, const char *name)
{
    s_branch_open_as(b, f, name, false, NULL, 0);
}

/* The same without CurveZMQ, for a coordinator started with --insecure. */
static inline void s_branch_open_plain(struct s_branch *b, struct s_fed *f, const char *name)
{
    char key[600], ep[64];
    snprintf(key, sizeof key, "%s/%s.key", f->dir, name);
    b->id = fl_identity_load(key);
    cr_assert_not_null(b->id, "%s", fl_error_msg());
    b->ctx = zmq_ctx_new();
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", f->port);
    b->sock = fl_net_dealer(b->ctx, b->id, NULL, ep);
    cr_assert_not_null(b->sock);
}

static inline void s_branch_close(struct s_branch *b)
{
    zmq_close(b->sock);
    zmq_ctx_term(b->ctx);
    fl_identity_destroy(&b->id);
}

/* Wait for the next message of a given type (others, e.g. heartbeats, are skipped). */
static inline Fedtl__Envelope *s_expect(struct s_branch *b, int body_case, double timeout_s)
{
    for (int i = 0; i < (int)(timeout_s * 50); i++) {
        zmq_pollitem_t it = {b->sock, 0, ZMQ_POLLIN, 0};
        zmq_poll(&it, 1, 20);
        Fedtl__Envelope *env = NULL;
        while (fl_net_recv(b->sock, false, NULL, NULL, &env, NULL) == 0) {
            if ((int)env->body_case == body_case)
                return env;
            fl_wire_free(&env);
        }
    }
    return NULL;
}

/* Send a Hello naming key (any key: a hostile peer names others'), holding the base, declaring
 * `samples` training records, with signature (NULL: none). */
static inline void s_hello_as_samples(struct s_branch *b, const uint8_t key[FL_SIGN_PK_BYTES],
                                      struct s_fed *f, const uint8_t *signature, uint64_t samples)
{
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__Hello h = FEDTL__HELLO__INIT;
    h.branch_key = (ProtobufCBinaryData){32, (uint8_t *)key};
    h.name = b->id->name;
    h.base_hash = (ProtobufCBinaryData){32, f->base.hash};
    h.samples = samples;
    if (signature)
        h.signature = (ProtobufCBinaryData){FL_SIG_BYTES, (uint8_t *)signature};
    env.body_case = FEDTL__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    cr_assert_eq(fl_net_send(b->sock, NULL, 0, &env, 0, NULL), 0);
}

/* The same, declaring 100 training records. */
static inline void s_hello_as(struct s_branch *b, const uint8_t key[FL_SIGN_PK_BYTES],
                              struct s_fed *f, const uint8_t *signature)
{
    s_hello_as_samples(b, key, f, signature, 100);
}

/* Register as an honest branch does, declaring `samples` training records: Hello, the
 * coordinator's Challenge, the signed Hello, Welcome (its run id kept for updates). */
static inline void s_hello_samples(struct s_branch *b, struct s_fed *f, uint64_t samples)
{
    s_hello_as_samples(b, b->id->sign_pk, f, NULL, samples);
    Fedtl__Envelope *c = s_expect(b, FEDTL__ENVELOPE__BODY_CHALLENGE, 10);
    cr_assert_not_null(c, "no Challenge");
    cr_assert_str_eq(c->challenge->federation, f->federation);
    uint8_t sig[FL_SIG_BYTES];
    cr_assert_eq(fl_sign_hello(b->id, f->federation, c->challenge->nonce.data, sig), 0);
    fl_wire_free(&c);
    s_hello_as_samples(b, b->id->sign_pk, f, sig, samples);
    Fedtl__Envelope *w = s_expect(b, FEDTL__ENVELOPE__BODY_WELCOME, 10);
    cr_assert_not_null(w, "no Welcome");
    cr_assert_str_eq(w->welcome->federation, f->federation);
    cr_assert_eq(fl_verify_base(f->hq->sign_pk, f->base.hash, w->welcome->base_signature.data), 0);
    memcpy(b->run_id, w->welcome->run_id.data, FL_RUN_ID_BYTES);
    fl_wire_free(&w);
}

/* Register as an honest branch with 100 training records. */
static inline void s_hello(struct s_branch *b, struct s_fed *f)
{
    s_hello_samples(b, f, 100);
}

/* How to spoil an update. */
enum s_spoil {
    S_GOOD,
    S_TAMPER,     /* a ciphertext byte flipped: the segment no longer opens */
    S_TAMPER_TAG, /* a segment tag flipped: the signature covers the tags */
    S_OTHER_SIGNER,
    S_FUTURE,
    S_WRONG_BASE,
    S_NAN,
    S_SHAPE,
    S_DELTA, /* not spoiled: the task's adapter plus `value` in every element */
    S_NAME   /* tensor 0's name carries a newline and a forged log line (S_FORGED_NAME) */
};

/* The name S_NAME gives tensor 0: a log line of its own if printed as it is. */
#define S_FORGED_NAME "x\nts=2026-01-01T00:00:00Z level=error event=forged peer=all"

/* What an update body reports besides its adapter. */
struct s_report {
    uint64_t samples; /* claimed training records (the weight) */
    float train_loss; /* and the metrics */
    float eval_loss;
    float eval_accuracy;
    uint64_t eval_samples;
};

/* Build and send an update: the task's adapter with every value set to `value` (S_DELTA: the
 * task's values plus `value`), reporting *rep. */
static inline void s_send_report(struct s_branch *b, struct s_fed *f, struct s_branch *other,
                                 const struct fl_adapter_file *task, uint32_t round, float value,
                                 const struct s_report *rep, enum s_spoil spoil, uint8_t **raw,
                                 size_t *raw_len)
{
    size_t n = task->ntensors;
    struct fl_tensor ts[16];
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(fl_tensor_copy(&ts[i], &task->tensors[i]), 0);
        for (size_t j = 0; j < fl_tensor_numel(&ts[i]); j++)
            ts[i].data[j] = spoil == S_DELTA ? ts[i].data[j] + value : value;
    }
    if (spoil == S_NAN)
        ts[0].data[0] = NAN;
    if (spoil == S_NAME)
        snprintf(ts[0].name, sizeof ts[0].name, "%s", S_FORGED_NAME);
    struct fl_tensor wide;
    if (spoil == S_SHAPE) {
        cr_assert_eq(fl_tensor_init2(&wide, ts[n - 1].name, ts[n - 1].shape[0] + 1, 0), 0);
        fl_tensor_free(&ts[n - 1]);
        ts[n - 1] = wide;
    }
    struct fl_adapter_meta meta = task->meta;
    meta.round = round;
    uint8_t *abuf;
    size_t alen;
    cr_assert_eq(fl_adapter_pack(&meta, ts, n, &abuf, &alen), 0, "%s", fl_error_msg());
    for (size_t i = 0; i < n; i++)
        fl_tensor_free(&ts[i]);
    Fedtl__UpdateBody body = FEDTL__UPDATE_BODY__INIT;
    body.adapter = (ProtobufCBinaryData){alen, abuf};
    body.samples = rep->samples;
    body.train_loss = rep->train_loss;
    body.eval_loss = rep->eval_loss;
    body.eval_accuracy = rep->eval_accuracy;
    body.eval_samples = rep->eval_samples;
    uint8_t *plain;
    size_t plain_len;
    cr_assert_eq(fl_wire_encode_body(&body, &plain, &plain_len), 0);
    uint8_t base_hash[FL_HASH_BYTES];
    memcpy(base_hash, f->base.hash, 32);
    if (spoil == S_WRONG_BASE)
        base_hash[0] ^= 1;
    uint32_t sround = spoil == S_FUTURE ? round + 1 : round;
    const struct fl_identity *signer = spoil == S_OTHER_SIGNER ? other->id : b->id;
    struct fl_sealed sealed;
    cr_assert_eq(fl_seal_update(signer, f->hq->box_pk, f->federation, b->run_id, sround, base_hash,
                                plain, plain_len, &sealed),
                 0);
    if (spoil == S_TAMPER)
        sealed.ct[sealed.ct_len / 2] ^= 0x40;
    if (spoil == S_TAMPER_TAG)
        sealed.ct[sealed.ct_len - 1] ^= 0x40;
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__SealedUpdate u = FEDTL__SEALED_UPDATE__INIT;
    fl_wire_sealed_put(&sealed, &u);
    u.branch_key = (ProtobufCBinaryData){32, b->id->sign_pk}; /* whoever signed */
    env.body_case = FEDTL__ENVELOPE__BODY_UPDATE;
    env.update = &u;
    if (raw)
        cr_assert_eq(fl_wire_encode(&env, raw, raw_len), 0);
    cr_assert_eq(fl_net_send(b->sock, NULL, 0, &env, 0, NULL), 0);
    free(abuf);
    free(plain);
    fl_sealed_free(&sealed);
}

/* s_send_report with plausible metrics and `samples` claimed. */
static inline void s_send_update(struct s_branch *b, struct s_fed *f, struct s_branch *other,
                                 const struct fl_adapter_file *task, uint32_t round, float value,
                                 uint64_t samples, enum s_spoil spoil, uint8_t **raw,
                                 size_t *raw_len)
{
    struct s_report rep = {.samples = samples,
                           .train_loss = 0.5f,
                           .eval_loss = 0.6f,
                           .eval_accuracy = 0.75f,
                           .eval_samples = samples < 10 ? samples : 10};
    s_send_report(b, f, other, task, round, value, &rep, spoil, raw, raw_len);
}

static inline void s_expect_receipt(struct s_branch *b, bool accepted, const char *reason)
{
    Fedtl__Envelope *r = s_expect(b, FEDTL__ENVELOPE__BODY_RECEIPT, 10);
    cr_assert_not_null(r, "no receipt (expected %s)", reason ? reason : "accepted");
    cr_assert_eq(r->receipt->accepted, accepted, "receipt: accepted=%d reason=%s",
                 r->receipt->accepted, r->receipt->reason);
    if (reason)
        cr_assert(strstr(r->receipt->reason, reason), "reason '%s' lacks '%s'", r->receipt->reason,
                  reason);
    fl_wire_free(&r);
}

/* Wait for a task; returns its adapter (caller closes) and round. */
static inline uint32_t s_task(struct s_branch *b, struct fl_adapter_file *task)
{
    Fedtl__Envelope *t = s_expect(b, FEDTL__ENVELOPE__BODY_TASK, 15);
    cr_assert_not_null(t, "no task");
    cr_assert_eq(fl_adapter_unpack(t->task->adapter.data, t->task->adapter.len, "task", task), 0);
    uint32_t r = t->task->round;
    fl_wire_free(&t);
    return r;
}

static inline void s_send_raw(struct s_branch *b, const void *buf, size_t len)
{
    cr_assert_eq(zmq_send(b->sock, buf, len, 0), (int)len);
}

/* Ask for the base from offset with this credit; the bytes of the chunks that arrive until
 * none has come for quiet_s (what the coordinator chose to send). */
static inline size_t s_base_fetch(struct s_branch *b, struct s_fed *f, uint64_t offset,
                                  uint32_t credit, double quiet_s)
{
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__BaseRequest q = FEDTL__BASE_REQUEST__INIT;
    q.base_hash = (ProtobufCBinaryData){32, f->base.hash};
    q.offset = offset;
    q.credit = credit;
    env.body_case = FEDTL__ENVELOPE__BODY_BASE_REQUEST;
    env.base_request = &q;
    cr_assert_eq(fl_net_send(b->sock, NULL, 0, &env, 0, NULL), 0);
    size_t got = 0;
    Fedtl__Envelope *c;
    while ((c = s_expect(b, FEDTL__ENVELOPE__BODY_BASE_CHUNK, quiet_s)) != NULL) {
        got += c->base_chunk->data.len;
        fl_wire_free(&c);
    }
    return got;
}

/* The coordinator's peak resident memory so far (VmHWM), in KiB. */
static inline long s_coord_hwm_kb(const struct s_fed *f)
{
    long kb = fl_test_proc_status_kb(f->coord, "VmHWM:");
    cr_assert_gt(kb, 0, "no VmHWM for the coordinator");
    return kb;
}

/* Rejections in a ledger line whose reason holds `reason`. */
static inline int s_rejections(const cJSON *line, const char *reason)
{
    int n = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(line, "rejected"))
    {
        const cJSON *why = cJSON_GetObjectItemCaseSensitive(r, "reason");
        n += cJSON_IsString(why) && strstr(why->valuestring, reason) != NULL;
    }
    return n;
}

/* Wait up to tries x 50 ms for `what` in the coordinator's log; asserts that it came. */
static inline void s_log_await(const struct s_fed *f, const char *what, int tries)
{
    for (int i = 0; i < tries && fl_test_count(f->path[F_LOG], what) == 0; i++)
        usleep(50000);
    cr_assert_gt(fl_test_count(f->path[F_LOG], what), 0, "%s", what);
}

/* Enrol branches while the coordinator runs: once it has started (its SIGHUP handler is in
 * place from then on), keys for the names in `make` (separated by spaces), the public keys in
 * `allow` copied into the allow-list, a SIGHUP, and its reload logged. */
static inline void s_fed_enrol(struct s_fed *f, const char *make, const char *allow)
{
    s_log_await(f, "event=coordinator_start", 100);
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "cd %s && for k in %s; do %s/fedtl keygen --out $k --name $k >/dev/null || exit 1; "
             "done && cp %s allow/",
             f->dir, make, FEDTL_BIN_DIR, allow);
    s_run(cmd);
    kill(f->coord, SIGHUP);
    s_log_await(f, "event=allowlist_reloaded", 100);
}

/* Branch i's change in the secure-aggregation tests: a ramp of its own. */
static inline float s_ramp(int i, size_t v)
{
    return 0.001f * (float)(i + 1) + 1e-5f * (float)(v % 97) * (i % 2 ? -1.0f : 1.0f);
}

/* The largest |difference| between the adapter g and task's plus the mean of the ramps of
 * branches 0..n-1 weighted w[i]. */
static inline double s_ramp_gap(const struct fl_adapter_file *g, const struct fl_adapter_file *task,
                                const double *w, int n)
{
    double worst = 0, wsum = 0;
    for (int i = 0; i < n; i++)
        wsum += w[i];
    size_t off = 0;
    for (size_t k = 0; k < g->ntensors; k++) {
        size_t len = fl_tensor_numel(&g->tensors[k]);
        for (size_t v = 0; v < len; v++) {
            double m = 0;
            for (int i = 0; i < n; i++)
                m += w[i] * s_ramp(i, off + v);
            worst =
                fmax(worst, fabs(g->tensors[k].data[v] - (task->tensors[k].data[v] + m / wsum)));
        }
        off += len;
    }
    return worst;
}

#endif
