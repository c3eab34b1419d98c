/* fl_uplink: a branch's connection to its coordinator. */
#include "fl_uplink.h"
#include "fl_error.h"
#include "fl_net.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define S_NO_DETAIL_MAX 3 /* handshake failures without detail in a row before giving up */

struct fl_uplink {
    const struct fl_identity *id; /* our key pair (borrowed) */
    const char *endpoint;         /* the coordinator's endpoint (borrowed) */
    bool insecure;                /* plaintext: no CURVE */
    char key_id[FL_KEY_ID_LEN];   /* short id of our key, for messages */
    const uint8_t *coord_box_pk;  /* the coordinator's X25519 key (borrowed), NULL: plaintext */
    void *ctx, *sock, *mon;       /* ZeroMQ context, DEALER, monitor PAIR */
    int no_detail;                /* handshake failures without detail in a row */
    unsigned sockets;             /* DEALERs opened so far (names their monitors) */
};

/* The DEALER and a monitor on it for handshake failures. */
static int s_open(fl_uplink_t *self)
{
    self->sock = fl_net_dealer(self->ctx, self->id, self->coord_box_pk, self->endpoint);
    if (!self->sock)
        return FL_EIO;
    char addr[80];
    snprintf(addr, sizeof addr, "inproc://fedtl-client-monitor-%p-%u", (void *)self,
             self->sockets++);
    int events = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                 ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                 ZMQ_EVENT_DISCONNECTED;
    if (zmq_socket_monitor(self->sock, addr, events) != 0 ||
        !(self->mon = zmq_socket(self->ctx, ZMQ_PAIR)) || zmq_connect(self->mon, addr) != 0)
        return fl_fail(FL_EIO, "cannot monitor the socket: %s", zmq_strerror(errno));
    return 0;
}

static void s_close(fl_uplink_t *self)
{
    if (self->mon)
        zmq_close(self->mon);
    if (self->sock)
        zmq_close(self->sock);
    self->mon = self->sock = NULL;
}

static int s_connect(fl_uplink_t *self)
{
    if (!(self->ctx = zmq_ctx_new()))
        return fl_fail(FL_EIO, "cannot create a ZeroMQ context: %s", zmq_strerror(errno));
    if (self->insecure)
        fl_log(FL_LOG_WARN, "insecure",
               "msg=\"CURVE is off: traffic to the coordinator is plaintext\"");
    return s_open(self);
}

int fl_uplink_reconnect(fl_uplink_t *self)
{
    s_close(self);
    self->no_detail = 0;
    int rc = s_open(self);
    if (rc == 0)
        fl_log(FL_LOG_INFO, "reconnect", "endpoint=%s", self->endpoint);
    return rc;
}

fl_uplink_t *fl_uplink_new(const struct fl_identity *id, const uint8_t *coord_box_pk,
                           const char *endpoint)
{
    fl_uplink_t *self = calloc(1, sizeof *self);
    if (!self) {
        fl_error_set("out of memory");
        return NULL;
    }
    self->id = id;
    self->endpoint = endpoint;
    self->insecure = coord_box_pk == NULL;
    self->coord_box_pk = coord_box_pk;
    fl_key_id(id->sign_pk, self->key_id);
    if (s_connect(self) != 0)
        fl_uplink_destroy(&self);
    return self;
}

void fl_uplink_destroy(fl_uplink_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_uplink_t *self = *self_p;
    s_close(self);
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    free(self);
    *self_p = NULL;
}

void fl_uplink_linger(fl_uplink_t *self, int ms)
{
    zmq_setsockopt(self->sock, ZMQ_LINGER, &ms, sizeof ms);
}

/* ---- receiving ---- */

/* The error for a failed handshake with ZMTP error or ZAP status value. */
static int s_handshake_failed(fl_uplink_t *self, uint16_t event, uint32_t value)
{
    const char *ep = self->endpoint;
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        return fl_fail(FL_ECRYPTO,
                       "the coordinator at %s refused our key %s (ZAP status %u): this branch is "
                       "not enrolled (its .pub is not in the allow-list) or was revoked",
                       ep, self->key_id, value);
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
        return fl_fail(FL_ECRYPTO, "handshake with %s failed (ZMTP protocol error 0x%x): %s", ep,
                       value,
                       self->insecure ? "is the coordinator also --insecure?"
                                      : "wrong --coordinator-key, or the coordinator runs "
                                        "--insecure");
    return fl_fail(FL_ECRYPTO,
                   "handshake with %s failed %d times in a row: wrong "
                   "--coordinator-key%s?",
                   ep, self->no_detail, self->insecure ? " or only one side --insecure" : "");
}

/* A monitor event: handshake failures are fatal (not enrolled, wrong key). */
static int s_on_monitor(fl_uplink_t *self)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, self->mon, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
        return 0;
    }
    uint16_t event = 0;
    uint32_t value = 0;
    if (zmq_msg_size(&m) >= 6) {
        memcpy(&event, zmq_msg_data(&m), 2);
        memcpy(&value, (uint8_t *)zmq_msg_data(&m) + 2, 4);
    }
    bool more = zmq_msg_more(&m);
    zmq_msg_close(&m);
    if (more) { /* the endpoint frame */
        zmq_msg_init(&m);
        zmq_msg_recv(&m, self->mon, ZMQ_DONTWAIT);
        zmq_msg_close(&m);
    }
    const char *ep = self->endpoint;
    switch (event) {
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        self->no_detail = 0;
        fl_log(FL_LOG_DEBUG, "connected", "endpoint=%s", ep);
        return 0;
    case ZMQ_EVENT_DISCONNECTED:
        fl_log(FL_LOG_INFO, "disconnected", "endpoint=%s", ep);
        return 0;
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        if (value == 300) { /* temporary: try again */
            fl_log(FL_LOG_WARN, "handshake_retry", "endpoint=%s zap_status=300", ep);
            return 0;
        }
        return s_handshake_failed(self, event, value);
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        return s_handshake_failed(self, event, value);
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        fl_log(FL_LOG_WARN, "handshake_failed", "endpoint=%s errno=%u", ep, value);
        if (++self->no_detail >= S_NO_DETAIL_MAX)
            return s_handshake_failed(self, event, value);
        return 0;
    default:
        return 0;
    }
}

int fl_uplink_wait(fl_uplink_t *self, int timeout_ms, bool *readable)
{
    *readable = false;
    zmq_pollitem_t items[2] = {{self->sock, 0, ZMQ_POLLIN, 0}, {self->mon, 0, ZMQ_POLLIN, 0}};
    if (zmq_poll(items, 2, timeout_ms) < 0) {
        if (errno == EINTR)
            return 1;
        return fl_fail(FL_EIO, "poll failed: %s", zmq_strerror(errno));
    }
    if (items[1].revents & ZMQ_POLLIN) {
        int rc = s_on_monitor(self);
        if (rc)
            return rc;
    }
    *readable = (items[0].revents & ZMQ_POLLIN) != 0;
    return 0;
}

int fl_uplink_recv(fl_uplink_t *self, Fedtl__Envelope **env, size_t *bytes)
{
    int rc = fl_net_recv(self->sock, false, NULL, NULL, env, bytes);
    if (rc == FL_EIO)
        fl_log(FL_LOG_WARN, "recv_failed", "error=\"%s\"", zmq_strerror(errno));
    return rc;
}

/* ---- sending ---- */

static int s_send(fl_uplink_t *self, Fedtl__Envelope *env, const char *what, size_t *bytes)
{
    int rc = fl_net_send(self->sock, NULL, 0, env, ZMQ_DONTWAIT, bytes);
    if (rc)
        fl_log(FL_LOG_WARN, "send_failed", "msg=%s error=\"%s\"", what,
               rc == FL_EIO ? zmq_strerror(errno) : fl_error_msg());
    return rc;
}

int fl_uplink_hello(fl_uplink_t *self, uint64_t samples, const uint8_t *base_hash,
                    const uint8_t *signature)
{
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__Hello h = FEDTL__HELLO__INIT;
    env.body_case = FEDTL__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    h.branch_key.data = (uint8_t *)self->id->sign_pk;
    h.branch_key.len = FL_SIGN_PK_BYTES;
    char name[FL_NODE_NAME_MAX];
    snprintf(name, sizeof name, "%s", self->id->name);
    h.name = name;
    h.samples = samples;
    if (base_hash) {
        h.base_hash.data = (uint8_t *)base_hash;
        h.base_hash.len = FL_HASH_BYTES;
    }
    if (signature)
        h.signature = (ProtobufCBinaryData){FL_SIG_BYTES, (uint8_t *)signature};
    int rc = s_send(self, &env, "hello", NULL);
    if (rc == 0)
        fl_log(FL_LOG_DEBUG, "hello", "ready=%s samples=%llu signed=%s", base_hash ? "yes" : "no",
               (unsigned long long)samples, signature ? "yes" : "no");
    return rc;
}

int fl_uplink_send(fl_uplink_t *self, Fedtl__Envelope *env, const char *what)
{
    return s_send(self, env, what, NULL);
}

int fl_uplink_heartbeat(fl_uplink_t *self, uint32_t round)
{
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__Heartbeat hb = FEDTL__HEARTBEAT__INIT;
    env.body_case = FEDTL__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    hb.round = round;
    return s_send(self, &env, "heartbeat", NULL);
}

int fl_uplink_bye(fl_uplink_t *self, Fedtl__ByeCode code, const char *reason)
{
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__Bye b = FEDTL__BYE__INIT;
    env.body_case = FEDTL__ENVELOPE__BODY_BYE;
    env.bye = &b;
    b.code = code;
    b.reason = (char *)reason;
    return s_send(self, &env, "bye", NULL);
}

int fl_uplink_base_request(fl_uplink_t *self, const uint8_t base_hash[FL_HASH_BYTES],
                           uint64_t offset, uint32_t credit)
{
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__BaseRequest r = FEDTL__BASE_REQUEST__INIT;
    env.body_case = FEDTL__ENVELOPE__BODY_BASE_REQUEST;
    env.base_request = &r;
    r.base_hash.data = (uint8_t *)base_hash;
    r.base_hash.len = FL_HASH_BYTES;
    r.offset = offset;
    r.credit = credit;
    return s_send(self, &env, "base_request", NULL);
}

int fl_uplink_update(fl_uplink_t *self, const struct fl_sealed *sealed, size_t *bytes)
{
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__SealedUpdate u = FEDTL__SEALED_UPDATE__INIT;
    env.body_case = FEDTL__ENVELOPE__BODY_UPDATE;
    env.update = &u;
    fl_wire_sealed_put(sealed, &u);
    return s_send(self, &env, "update", bytes);
}
