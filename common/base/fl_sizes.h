/* fl_sizes: the sizes and numbers every layer shares, each named once. Key and signature sizes are
 * libsodium's and live in trust/fl_keys.h; limits of one format live with that format. */
#ifndef FL_SIZES_H
#define FL_SIZES_H

#define FL_PROTOCOL_VERSION 4  /* the protocol spoken (docs/PROTOCOL.md); signed into updates */
#define FL_HASH_BYTES       32 /* BLAKE2b-256: a file's content hash, its identity */
#define FL_HASH_HEX         (2 * FL_HASH_BYTES + 1) /* a hash in lower-case hex, with its NUL */
#define FL_KEY_ID_LEN       13 /* a key's short id for logs: 12 hex characters and a NUL */
#define FL_RUN_ID_BYTES     16 /* a federation run's random id (state.json, Welcome, updates) */
#define FL_NODE_NAME_MAX    64 /* branch, coordinator and federation names, NUL included */

#endif
