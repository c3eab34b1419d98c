/* fl_uplink: a branch's connection to its coordinator. A DEALER (CURVE with the coordinator's
 * key pinned, or plaintext), a monitor on it that turns handshake failures into errors, and
 * one function for each message a branch sends. It keeps no protocol state: fl_branch decides
 * what to send and when. */
#ifndef FL_UPLINK_H
#define FL_UPLINK_H

#include "fl_codec.h"
#include "fl_keys.h"
#include "fl_seal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fl_uplink fl_uplink_t;

/* Connect to endpoint as id; with coord_box_pk, a CURVE client pinning that key, with NULL
 * plaintext (logged as a warning). id, coord_box_pk and endpoint are borrowed: they must outlive
 * the uplink.
 * ZeroMQ connects in the background and reconnects by itself. NULL on error. */
fl_uplink_t *fl_uplink_new(const struct fl_identity *id, const uint8_t *coord_box_pk,
                           const char *endpoint);
/* Close the sockets; what is queued is dropped unless fl_uplink_linger said otherwise. */
void fl_uplink_destroy(fl_uplink_t **self_p);
/* Close the DEALER and open a new one: a new connection, which the coordinator knows nothing
 * of until it proves our key again. Queued messages are dropped. 0 or FL_EIO. */
int fl_uplink_reconnect(fl_uplink_t *self);
/* Give what is queued (a last Bye) up to ms to leave when the uplink is destroyed. */
void fl_uplink_linger(fl_uplink_t *self, int ms);

/* Wait up to timeout_ms for a message, reading one handshake event if one is waiting.
 * 0 with *readable set when a message waits, 1 when a signal interrupted the wait, or a
 * negative FL_E code: the poll failed (FL_EIO), or the handshake failed for good (FL_ECRYPTO:
 * our key refused, or the coordinator's key or the transport does not match; fl_error_msg
 * says which and what to check). */
int fl_uplink_wait(fl_uplink_t *self, int timeout_ms, bool *readable);
/* The next message, without waiting: 0 with *env (fl_wire_free it), 1 when nothing waits,
 * FL_EIO when the socket failed (logged), or another negative code for a bad frame, which is
 * consumed (fl_error_msg says why). *bytes gets the frame's size. */
int fl_uplink_recv(fl_uplink_t *self, Fedtl__Envelope **env, size_t *bytes);

/* The messages. Each returns 0 or the send's FL_E code, and logs a failure (send_failed). */

/* Hello: our name and key, samples to train on, base_hash when we hold the base (else NULL),
 * and our signature over the connection's Challenge (fl_sign_hello) once one came (else NULL). */
int fl_uplink_hello(fl_uplink_t *self, uint64_t samples, const uint8_t *base_hash,
                    const uint8_t *signature);
int fl_uplink_heartbeat(fl_uplink_t *self, uint32_t round);
/* reason is for people; the code is what the coordinator acts on. */
int fl_uplink_bye(fl_uplink_t *self, Fedtl__ByeCode code, const char *reason);
int fl_uplink_base_request(fl_uplink_t *self, const uint8_t base_hash[FL_HASH_BYTES],
                           uint64_t offset, uint32_t credit);
/* A sealed update; *bytes (may be NULL) gets the frame's size. */
int fl_uplink_update(fl_uplink_t *self, const struct fl_sealed *sealed, size_t *bytes);
/* Any other message (secure aggregation's); what names it in a failure's log line. */
int fl_uplink_send(fl_uplink_t *self, Fedtl__Envelope *env, const char *what);

#endif
