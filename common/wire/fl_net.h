/* fl_net: the ZeroMQ plumbing the coordinator and the branches share: CURVE-secured ROUTER
 * and DEALER sockets with the protocol's limits, and sending / receiving one Envelope. */
#ifndef FL_NET_H
#define FL_NET_H

#include "fl_codec.h"
#include "fl_keys.h"

#include <stddef.h>
#include <stdint.h>

#define FL_NET_PEER_MAX      256 /* longest routing id kept */
#define FL_NET_ROUTER_SNDHWM 64  /* messages queued for one peer on the ROUTER */
/* Messages queued from one peer on the ROUTER: with one being read, what a peer pins. */
#define FL_NET_ROUTER_RCVHWM 2

/* A ROUTER bound to endpoint. With id, it is a CURVE server on id's X25519 key (the ZAP
 * handler decides who gets in); with id NULL, plaintext. NULL on error (message set). */
void *fl_net_router(void *ctx, const struct fl_identity *id, const char *endpoint);
/* A DEALER connected to endpoint (no routing id of its own: the ROUTER names the connection).
 * With server_box_pk, a CURVE client pinning that key; NULL means plaintext. NULL on error. */
void *fl_net_dealer(void *ctx, const struct fl_identity *id, const uint8_t *server_box_pk,
                    const char *endpoint);
/* Send env (to peer, on a ROUTER; peer NULL on a DEALER). flags: ZMQ_DONTWAIT or 0.
 * Returns 0, FL_EIO (errno set: EAGAIN when the peer's queue is full, EHOSTUNREACH when it
 * is gone). *bytes (may be NULL) gets the frame size. */
int fl_net_send(void *sock, const uint8_t *peer, size_t peer_len, Fedtl__Envelope *env, int flags,
                size_t *bytes);
/* Send the sealed update s in an Envelope (on a DEALER); same contract as fl_net_send. */
int fl_net_send_update(void *sock, const struct fl_sealed *s, int flags, size_t *bytes);
/* Receive one message without waiting. On a ROUTER the routing id goes to peer/peer_len.
 * Returns 0 with *env (fl_wire_free it), 1 when nothing is waiting, or a negative FL_E code
 * for a frame that was read but is bad (the message says why; the frame is consumed). */
int fl_net_recv(void *sock, bool router, uint8_t *peer, size_t *peer_len, Fedtl__Envelope **env,
                size_t *bytes);

/* fl_net_recv on a ROUTER that also returns the connection's User-Id, which the ZAP handler
 * sets to the hex of the client's CurveZMQ key (empty on a plaintext socket): the proof of
 * who is at the other end, which the routing id alone is not. With frame non-NULL, *frame gets
 * a malloc'd copy of the frame read (*bytes long, after CurveZMQ: what the decoder saw), good
 * or bad, or NULL when nothing was read or out of memory; the caller frees it. */
int fl_net_recv_from(void *sock, uint8_t *peer, size_t *peer_len, char *user_id, size_t user_id_len,
                     Fedtl__Envelope **env, size_t *bytes, uint8_t **frame);

#endif
