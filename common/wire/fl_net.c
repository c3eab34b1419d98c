/* fl_net: socket set-up and framing. */
#include "fl_net.h"
#include "fl_error.h"

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define S_TRIM_AFTER (1u << 20) /* a refused frame this large: give memory back */

/* A socket of the given type with the options every fedtl socket has, or NULL (message set). */
static void *s_socket(void *ctx, int type)
{
    void *s = zmq_socket(ctx, type);
    if (!s) {
        fl_error_set("cannot create socket: %s", zmq_strerror(errno));
        return NULL;
    }
    int linger = 0, hwm = 1000;
    int64_t max = FL_WIRE_MAX_MSG;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof max);
    return s;
}

void *fl_net_router(void *ctx, const struct fl_identity *id, const char *endpoint)
{
    void *s = s_socket(ctx, ZMQ_ROUTER);
    if (!s)
        return NULL;
    /* Per peer, at most this many messages wait in either direction. Out: 64 chunks of the
     * base (4 times what a branch may ask for at once), so a peer that does not read pins
     * little. In: a peer that sends faster than the loop reads is held back by TCP rather
     * than queued here (a branch has a request or two in flight). */
    int sndhwm = FL_NET_ROUTER_SNDHWM, rcvhwm = FL_NET_ROUTER_RCVHWM;
    zmq_setsockopt(s, ZMQ_SNDHWM, &sndhwm, sizeof sndhwm);
    zmq_setsockopt(s, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
    int one = 1;
    zmq_setsockopt(s, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    /* The ROUTER names each connection itself (branches set no routing id): a routing id
     * names a connection, never a branch, and no later connection takes one over (no
     * ZMQ_ROUTER_HANDOVER). Which branch a connection is, its Hello proves (fl_session). */
    /* Room for a connection storm (1,000 branches at once overflowed the default 100). */
    int backlog = 1024;
    zmq_setsockopt(s, ZMQ_BACKLOG, &backlog, sizeof backlog);
    if (id) {
        zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof one);
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, id->box_sk, FL_BOX_SK_BYTES);
        zmq_setsockopt(s, ZMQ_ZAP_DOMAIN, "fedtl", 5);
    }
    if (zmq_bind(s, endpoint) != 0) {
        fl_error_set("cannot bind %s: %s", endpoint, zmq_strerror(errno));
        zmq_close(s);
        return NULL;
    }
    return s;
}

void *fl_net_dealer(void *ctx, const struct fl_identity *id, const uint8_t *server_box_pk,
                    const char *endpoint)
{
    void *s = s_socket(ctx, ZMQ_DEALER);
    if (!s)
        return NULL;
    int ivl = 100, max_ivl = 2000;
    zmq_setsockopt(s, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(s, ZMQ_RECONNECT_IVL_MAX, &max_ivl, sizeof max_ivl);
    if (server_box_pk) {
        zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server_box_pk, FL_BOX_PK_BYTES);
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, id->box_pk, FL_BOX_PK_BYTES);
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, id->box_sk, FL_BOX_SK_BYTES);
    }
    if (zmq_connect(s, endpoint) != 0) {
        fl_error_set("cannot connect to %s: %s", endpoint, zmq_strerror(errno));
        zmq_close(s);
        return NULL;
    }
    return s;
}

static void s_free_frame(void *data, void *hint)
{
    (void)hint;
    free(data);
}

int fl_net_send(void *sock, const uint8_t *peer, size_t peer_len, Fedtl__Envelope *env, int flags,
                size_t *bytes)
{
    uint8_t *buf;
    size_t len;
    int rc = fl_wire_encode(env, &buf, &len);
    if (rc)
        return rc;
    if (bytes)
        *bytes = len;
    if (peer && zmq_send(sock, peer, peer_len, ZMQ_SNDMORE | flags) < 0) {
        int e = errno;
        free(buf);
        errno = e;
        return FL_EIO;
    }
    /* The frame goes out of the encoded buffer itself (ZeroMQ frees it when sent): no copy. */
    zmq_msg_t m;
    if (zmq_msg_init_data(&m, buf, len, s_free_frame, NULL) != 0) {
        int e = errno;
        free(buf);
        errno = e;
        return FL_EIO;
    }
    if (zmq_msg_send(&m, sock, flags) < 0) {
        int e = errno;
        zmq_msg_close(&m);
        errno = e;
        return FL_EIO;
    }
    return 0;
}

int fl_net_send_update(void *sock, const struct fl_sealed *s, int flags, size_t *bytes)
{
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__SealedUpdate u = FEDTL__SEALED_UPDATE__INIT;
    fl_wire_sealed_put(s, &u);
    env.body_case = FEDTL__ENVELOPE__BODY_UPDATE;
    env.update = &u;
    return fl_net_send(sock, NULL, 0, &env, flags, bytes);
}

/* Drop the rest of a multi-part message. */
static void s_drain(void *sock)
{
    int more = 0;
    size_t sz = sizeof more;
    while (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz) == 0 && more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        zmq_msg_recv(&m, sock, ZMQ_DONTWAIT);
        zmq_msg_close(&m);
    }
}

static int s_recv(void *sock, bool router, uint8_t *peer, size_t *peer_len, char *user_id,
                  size_t user_id_len, Fedtl__Envelope **env, size_t *bytes, uint8_t **frame_copy)
{
    *env = NULL;
    if (frame_copy)
        *frame_copy = NULL;
    zmq_msg_t m;
    if (router) {
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return errno == EAGAIN ? 1 : FL_EIO;
        }
        size_t n = zmq_msg_size(&m);
        *peer_len = n < FL_NET_PEER_MAX ? n : FL_NET_PEER_MAX;
        memcpy(peer, zmq_msg_data(&m), *peer_len);
        zmq_msg_close(&m);
    }
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, sock, router ? 0 : ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
        return errno == EAGAIN ? 1 : FL_EIO;
    }
    int more = 0;
    size_t sz = sizeof more;
    zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz);
    if (bytes)
        *bytes = zmq_msg_size(&m);
    if (user_id && user_id_len) {
        /* Set by the ZAP handler's reply for this connection (empty without one). */
        const char *uid = zmq_msg_gets(&m, "User-Id");
        snprintf(user_id, user_id_len, "%s", uid ? uid : "");
    }
    if (frame_copy && (*frame_copy = malloc(zmq_msg_size(&m) ? zmq_msg_size(&m) : 1)))
        memcpy(*frame_copy, zmq_msg_data(&m), zmq_msg_size(&m));
    int rc;
    if (more) {
        s_drain(sock);
        rc = fl_fail(FL_EFORMAT, "multi-part message (the protocol sends one frame)");
    } else {
        rc = fl_wire_decode(zmq_msg_data(&m), zmq_msg_size(&m), env);
    }
    size_t frame = zmq_msg_size(&m);
    zmq_msg_close(&m);
#ifdef __GLIBC__
    /* A large frame refused: what its read and its parse took goes back to the system now,
     * not at the next large allocation. */
    if (rc < 0 && frame > S_TRIM_AFTER)
        malloc_trim(0);
#endif
    return rc;
}

int fl_net_recv(void *sock, bool router, uint8_t *peer, size_t *peer_len, Fedtl__Envelope **env,
                size_t *bytes)
{
    return s_recv(sock, router, peer, peer_len, NULL, 0, env, bytes, NULL);
}

int fl_net_recv_from(void *sock, uint8_t *peer, size_t *peer_len, char *user_id, size_t user_id_len,
                     Fedtl__Envelope **env, size_t *bytes, uint8_t **frame)
{
    return s_recv(sock, true, peer, peer_len, user_id, user_id_len, env, bytes, frame);
}
