/* fl_session: which connection is which branch (docs/PROTOCOL.md, "Transport"). The ROUTER
 * names each connection with a routing id it assigns; a connection is a branch's only once it
 * proved, by signing its Challenge nonce, that it holds the branch's key, and only the newest
 * such connection of a key is served. No I/O: the caller draws nonces and sends messages. */
#ifndef FL_SESSION_H
#define FL_SESSION_H

#include "fl_keys.h"
#include "fl_seal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FL_SESSION_ROUTE_MAX 256  /* longest routing id kept */
#define FL_SESSION_PENDING   1024 /* connections challenged and not yet proven, at most */

typedef struct fl_session fl_session_t;

/* NULL when out of memory. */
fl_session_t *fl_session_new(void);
void fl_session_destroy(fl_session_t **self_p);

/* The connection `route` was sent the Challenge `nonce` (it replaces any earlier one; a
 * connection that proved a key keeps it until it proves again). The oldest pending connection
 * is forgotten when FL_SESSION_PENDING are pending. FL_ENOMEM or 0. */
int fl_session_challenge(fl_session_t *self, const uint8_t *route, size_t route_len,
                         const uint8_t nonce[FL_HELLO_NONCE_BYTES], int64_t now);
/* The nonce the connection was last challenged with, or NULL. */
const uint8_t *fl_session_nonce(const fl_session_t *self, const uint8_t *route, size_t route_len);
/* The connection proved it holds key: it is the branch's connection from now on, and any
 * other connection of that key is forgotten. FL_ENOTFOUND when it was never challenged. */
int fl_session_bind(fl_session_t *self, const uint8_t *route, size_t route_len,
                    const uint8_t key[FL_SIGN_PK_BYTES]);
/* The key the connection proved, or NULL. */
const uint8_t *fl_session_key(const fl_session_t *self, const uint8_t *route, size_t route_len);
/* The connection that serves key (*route_len set), or NULL. */
const uint8_t *fl_session_route(const fl_session_t *self, const uint8_t key[FL_SIGN_PK_BYTES],
                                size_t *route_len);
/* Forget the connection (it said Bye). */
void fl_session_drop(fl_session_t *self, const uint8_t *route, size_t route_len);
/* Forget the connection of key (the branch was lost or revoked). */
void fl_session_forget(fl_session_t *self, const uint8_t key[FL_SIGN_PK_BYTES]);
/* Connections known (pending or proven). */
size_t fl_session_size(const fl_session_t *self);

#endif
