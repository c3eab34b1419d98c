/* fl_basedist: serving the base to branches in chunks with credit-based flow control
 * (docs/PROTOCOL.md, "Base flow control"): a request is served only when it continues where
 * the branch's last one ended, with at most 16 chunks, plus one request to go back (to refill
 * a loss) per stall period of 2 heartbeats (at least 1 s); a Hello starts afresh from any
 * offset. Over all of that, each key may be sent at most FL_BASEDIST_BUDGET_FACTOR times the
 * base per FL_BASEDIST_WINDOW_MS, a budget that refills steadily and that
 * neither a Hello nor a reconnect resets. No sockets: chunks go out through a callback. */
#ifndef FL_BASEDIST_H
#define FL_BASEDIST_H

#include "fl_keys.h"

#include <stddef.h>
#include <stdint.h>

/* Send one chunk of the base to a branch. Non-zero when it could not be queued: the rest of
 * the request is then not sent either. */
typedef int(fl_basedist_send_fn)(void *arg, const uint8_t key[FL_SIGN_PK_BYTES], uint64_t offset,
                                 const uint8_t *data, size_t len);

#define FL_BASEDIST_BUDGET_FACTOR 2u           /* bases per key per window: one, and one lost */
#define FL_BASEDIST_WINDOW_MS     (10 * 60000) /* the budget's window: 10 minutes */

typedef struct fl_basedist fl_basedist_t;

/* Serve the size bytes at base (borrowed: they outlive this) in chunks of chunk_size bytes,
 * to branches with this heartbeat. NULL when out of memory. */
fl_basedist_t *fl_basedist_new(const uint8_t *base, uint64_t size, uint32_t chunk_size,
                               int heartbeat_ms);
void fl_basedist_destroy(fl_basedist_t **self_p);

/* The branch said Hello: its download may start again from any offset (within its budget). */
void fl_basedist_restart(fl_basedist_t *self, const uint8_t key[FL_SIGN_PK_BYTES]);
/* The branch is gone: forget where its download stood (not what it was sent: its budget). */
void fl_basedist_forget(fl_basedist_t *self, const uint8_t key[FL_SIGN_PK_BYTES]);
/* Chunks not sent so far because a key's budget was spent. */
uint64_t fl_basedist_refused(const fl_basedist_t *self);
/* A BaseRequest from a registered branch at time now (ms): send what is due through send.
 * 0 (even when nothing was due), FL_ERANGE for an offset beyond the base, FL_ENOMEM. */
int fl_basedist_request(fl_basedist_t *self, const uint8_t key[FL_SIGN_PK_BYTES], uint64_t offset,
                        uint32_t credit, int64_t now, fl_basedist_send_fn *send, void *arg);

#endif
