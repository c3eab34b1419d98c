/* fl_zap: who may connect, and who a message is from (docs/PROTOCOL.md, "Transport"). The ZAP
 * handler (RFC 27, inproc://zeromq.zap.01) admits CURVE clients whose key is the X25519 form of
 * an enrolled Ed25519 key and hands their key to ZeroMQ as the connection's User-Id; a Hello
 * whose signature proves an Ed25519 key is then taken only when that key's X25519 form is the
 * connection's. Identities are the proven Ed25519 keys, never the X25519 ones (two Ed25519 keys
 * that differ in the sign bit share one X25519 key). */
#ifndef FL_ZAP_H
#define FL_ZAP_H

#include "fl_allowlist.h"
#include "fl_keys.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The User-Id the handler gives a connection: the client's X25519 key in hex. */
#define FL_ZAP_USER_ID_LEN (2 * FL_BOX_PK_BYTES + 1)

typedef struct fl_zap fl_zap_t;

/* Bind the handler in the ZeroMQ context ctx; it must be bound before the first handshake.
 * NULL with the message set. */
fl_zap_t *fl_zap_new(void *ctx);
void fl_zap_destroy(fl_zap_t **self_p);
/* The socket, to poll for requests. */
void *fl_zap_socket(fl_zap_t *self);
/* Answer the pending request, if any, against the allow-list as it is now (a refusal is
 * logged with the client's address). */
void fl_zap_answer(fl_zap_t *self, const fl_allowlist_t *allow);

/* Is key (an Ed25519 key a Hello proved) the one whose X25519 form the connection
 * authenticated with (user_id, its User-Id)? */
bool fl_zap_key_ok(const uint8_t key[FL_SIGN_PK_BYTES], const char *user_id);

#endif
