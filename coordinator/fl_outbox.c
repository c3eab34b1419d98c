/* fl_outbox: the coordinator's messages to branches. */
#include "fl_outbox.h"
#include "fl_error.h"
#include "fl_net.h"

#include <errno.h>
#include <stdlib.h>
#include <zmq.h>

struct fl_outbox {
    struct fl_outbox_env env; /* as given */
};

fl_outbox_t *fl_outbox_new(const struct fl_outbox_env *env)
{
    fl_outbox_t *self = calloc(1, sizeof *self);
    if (!self) {
        fl_error_set("out of memory");
        return NULL;
    }
    self->env = *env;
    return self;
}

void fl_outbox_destroy(fl_outbox_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

/* Send without blocking; a branch whose queue is full loses this message (logged). */
static int s_send(fl_outbox_t *self, const uint8_t *key, Fedtl__Envelope *env)
{
    size_t bytes = 0, route_len = 0;
    const uint8_t *route = fl_session_route(self->env.sessions, key, &route_len);
    int rc = route ? fl_net_send(self->env.router, route, route_len, env, ZMQ_DONTWAIT, &bytes)
                   : fl_fail(FL_ENOTFOUND, "no connection proved this key");
    if (rc != 0) {
        char id[FL_KEY_ID_LEN], reason[512];
        fl_key_id(key, id);
        fl_log(FL_LOG_WARN, "send_failed", "peer=%s reason=%s", id,
               fl_log_str(rc != FL_EIO      ? fl_error_msg()
                          : errno == EAGAIN ? "queue full"
                                            : zmq_strerror(errno),
                          reason, sizeof reason));
        return rc;
    }
    fl_ledger_traffic(self->env.ledger, 0, bytes);
    return 0;
}

int fl_outbox_welcome(fl_outbox_t *self, const uint8_t key[FL_SIGN_PK_BYTES], uint32_t completed)
{
    const struct fl_outbox_env *e = &self->env;
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__Welcome w = FEDTL__WELCOME__INIT;
    w.federation = (char *)e->cfg->federation;
    w.base_hash = (ProtobufCBinaryData){FL_HASH_BYTES, (uint8_t *)e->base->hash};
    w.base_size = e->base->map_len;
    w.base_signature = (ProtobufCBinaryData){FL_SIG_BYTES, (uint8_t *)e->base_sig};
    w.chunk_size = e->cfg->chunk_size;
    w.round = completed;
    w.heartbeat_ms = (uint32_t)e->cfg->heartbeat_ms;
    w.run_id = (ProtobufCBinaryData){FL_RUN_ID_BYTES, (uint8_t *)e->run_id};
    env.body_case = FEDTL__ENVELOPE__BODY_WELCOME;
    env.welcome = &w;
    return s_send(self, key, &env);
}

int fl_outbox_envelope(fl_outbox_t *self, const uint8_t key[FL_SIGN_PK_BYTES], Fedtl__Envelope *env)
{
    return s_send(self, key, env);
}

int fl_outbox_task(fl_outbox_t *self, const uint8_t key[FL_SIGN_PK_BYTES], uint32_t round,
                   int64_t deadline_ms, uint32_t dp_shares)
{
    const struct fl_outbox_env *e = &self->env;
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__RoundTask t = FEDTL__ROUND_TASK__INIT;
    Fedtl__TrainParams p = FEDTL__TRAIN_PARAMS__INIT;
    p.epochs = (uint32_t)e->cfg->epochs;
    p.batch = (uint32_t)e->cfg->batch;
    p.lr = fl_global_lr(e->global);
    p.seed = e->cfg->seed * 1000003u + round; /* each round shuffles afresh */
    size_t len;
    const uint8_t *bytes = fl_global_bytes(e->global, &len);
    t.round = round;
    t.adapter = (ProtobufCBinaryData){len, (uint8_t *)bytes};
    t.params = &p;
    t.deadline_ms = deadline_ms > 0 ? (uint64_t)deadline_ms : 0;
    t.proximal_mu = e->prox_mu;
    t.personal_head = e->cfg->personal_head;
    t.secure_aggregation = e->cfg->secure_aggregation;
    t.norm_bound = e->cfg->secure_aggregation ? e->secagg_norm_bound : 0;
    if (e->cfg->secure_aggregation && e->dp_noise > 0) {
        t.dp_noise_multiplier = e->dp_noise;
        t.dp_noise_shares = dp_shares;
    }
    env.body_case = FEDTL__ENVELOPE__BODY_TASK;
    env.task = &t;
    return s_send(self, key, &env);
}

int fl_outbox_final(fl_outbox_t *self, const uint8_t key[FL_SIGN_PK_BYTES], uint32_t completed)
{
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__FinalModel f = FEDTL__FINAL_MODEL__INIT;
    Fedtl__TrainParams p = FEDTL__TRAIN_PARAMS__INIT;
    const struct fl_coord_config *cfg = self->env.cfg;
    size_t len;
    const uint8_t *bytes = fl_global_bytes(self->env.global, &len);
    f.round = completed;
    f.adapter = (ProtobufCBinaryData){len, (uint8_t *)bytes};
    f.personal_head = cfg->personal_head;
    if (cfg->personalize_epochs > 0) {
        p.epochs = (uint32_t)cfg->personalize_epochs;
        p.batch = (uint32_t)cfg->batch;
        p.lr = fl_global_lr(self->env.global);
        p.seed = cfg->seed * 1000003u + completed + 1; /* as a round after the last would */
        f.personalize = &p;
    }
    env.body_case = FEDTL__ENVELOPE__BODY_FINAL;
    env.final = &f;
    return s_send(self, key, &env);
}

int fl_outbox_receipt(fl_outbox_t *self, const uint8_t key[FL_SIGN_PK_BYTES], uint32_t round,
                      bool accepted, const char *reason)
{
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__UpdateReceipt r = FEDTL__UPDATE_RECEIPT__INIT;
    r.round = round;
    r.accepted = accepted;
    r.reason = (char *)reason;
    env.body_case = FEDTL__ENVELOPE__BODY_RECEIPT;
    env.receipt = &r;
    return s_send(self, key, &env);
}

int fl_outbox_heartbeat(fl_outbox_t *self, const uint8_t key[FL_SIGN_PK_BYTES], uint32_t completed)
{
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__Heartbeat hb = FEDTL__HEARTBEAT__INIT;
    hb.round = completed;
    env.body_case = FEDTL__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    return s_send(self, key, &env);
}

int fl_outbox_chunk(fl_outbox_t *self, const uint8_t key[FL_SIGN_PK_BYTES], uint64_t offset,
                    const uint8_t *data, size_t len)
{
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__BaseChunk ch = FEDTL__BASE_CHUNK__INIT;
    ch.base_hash = (ProtobufCBinaryData){FL_HASH_BYTES, (uint8_t *)self->env.base->hash};
    ch.offset = offset;
    ch.data = (ProtobufCBinaryData){len, (uint8_t *)data};
    env.body_case = FEDTL__ENVELOPE__BODY_BASE_CHUNK;
    env.base_chunk = &ch;
    return s_send(self, key, &env);
}

void fl_outbox_bye(fl_outbox_t *self, const uint8_t *peer, size_t peer_len, Fedtl__ByeCode code,
                   const char *reason)
{
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__Bye bye = FEDTL__BYE__INIT;
    bye.code = code;
    bye.reason = (char *)reason;
    env.body_case = FEDTL__ENVELOPE__BODY_BYE;
    env.bye = &bye;
    fl_net_send(self->env.router, peer, peer_len, &env, ZMQ_DONTWAIT, NULL);
}

void fl_outbox_bye_branch(fl_outbox_t *self, const uint8_t key[FL_SIGN_PK_BYTES],
                          Fedtl__ByeCode code, const char *reason)
{
    size_t route_len = 0;
    const uint8_t *route = fl_session_route(self->env.sessions, key, &route_len);
    if (route)
        fl_outbox_bye(self, route, route_len, code, reason);
}

void fl_outbox_challenge(fl_outbox_t *self, const uint8_t *peer, size_t peer_len,
                         const uint8_t nonce[FL_HELLO_NONCE_BYTES])
{
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__Challenge ch = FEDTL__CHALLENGE__INIT;
    ch.nonce = (ProtobufCBinaryData){FL_HELLO_NONCE_BYTES, (uint8_t *)nonce};
    ch.federation = (char *)self->env.cfg->federation;
    env.body_case = FEDTL__ENVELOPE__BODY_CHALLENGE;
    env.challenge = &ch;
    fl_net_send(self->env.router, peer, peer_len, &env, ZMQ_DONTWAIT, NULL);
}
