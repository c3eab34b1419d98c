/* fl_basecache: a branch's cache of base models, DIR/<hash>.ftm. Opens a cached base after
 * checking its content hash and the coordinator's signature, and downloads a missing one in
 * chunks with credit-based flow control into DIR/<hash>.part, resuming after an interruption.
 * No sockets here: the caller sends the requests this module asks for and feeds it chunks. */
#ifndef FL_BASECACHE_H
#define FL_BASECACHE_H

#include "fl_keys.h"
#include "fl_modelfile.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FL_BASECACHE_CREDIT 8 /* chunks kept in flight during a download */

/* The base a coordinator offers (from its Welcome). */
struct fl_base_offer {
    uint8_t hash[FL_HASH_BYTES];     /* BLAKE2b-256 content hash: the base's identity */
    uint64_t size;                   /* file size in bytes */
    uint8_t signature[FL_SIG_BYTES]; /* coordinator's Ed25519 signature over the hash */
    uint32_t chunk_size;             /* bytes per chunk */
};

typedef struct fl_basecache fl_basecache_t;

/* A cache in dir (created if missing) trusting bases signed by coord_sign_pk. NULL on error. */
fl_basecache_t *fl_basecache_new(const char *dir, const uint8_t coord_sign_pk[FL_SIGN_PK_BYTES]);
/* Close any download in progress (its .part file stays for a later resume). */
void fl_basecache_destroy(fl_basecache_t **self_p);
/* Milliseconds without an accepted chunk after which the credit in flight is written off and
 * requested again from the first missing byte (default 5000). */
void fl_basecache_set_stall_ms(fl_basecache_t *self, uint64_t ms);

/* The path of the base with this hash in the cache, with extension ext (".ftm", ".part"). */
void fl_basecache_path(const fl_basecache_t *self, const uint8_t hash[FL_HASH_BYTES],
                       const char *ext, char *out, size_t len);

/* Open the offered base from the cache into *out (fl_base_close it). 0 when it is there, whole
 * and signed; FL_ENOTFOUND when it is not cached (a corrupt cached copy is logged and removed);
 * FL_ECRYPTO when the offer's signature does not verify; another FL_E code on local errors. */
int fl_basecache_open(fl_basecache_t *self, const struct fl_base_offer *offer,
                      struct fl_base_file *out);

/* Start downloading the offer, or resume it from what DIR/<hash>.part holds (cut back to a
 * chunk boundary). Returns 0 (chunks needed), 1 (the file is already whole: call
 * fl_basecache_finish), FL_ECRYPTO for an unsigned offer, or another FL_E code. A download
 * already running for the same hash is kept (its credit is written off, see _restart). */
int fl_basecache_begin(fl_basecache_t *self, const struct fl_base_offer *offer, uint64_t now_ms);
/* True while a download is running. */
bool fl_basecache_active(const fl_basecache_t *self);
/* Forget the credit in flight (the coordinator may have restarted): the next request starts
 * again at the first missing byte. */
void fl_basecache_restart(fl_basecache_t *self);
/* The next BaseRequest to send, if one is due now: true with *offset and *credit set. Keeps
 * about FL_BASECACHE_CREDIT chunks in flight, asking for more when half have arrived. */
bool fl_basecache_next_request(fl_basecache_t *self, uint64_t now_ms, uint64_t *offset,
                               uint32_t *credit);
/* Take one BaseChunk. A chunk for another base or at an unexpected offset is ignored (0).
 * Returns 0 (more to come), 1 (the file is whole: call fl_basecache_finish) or an FL_E code
 * for a local write error. */
int fl_basecache_chunk(fl_basecache_t *self, const uint8_t *hash, size_t hash_len, uint64_t offset,
                       const uint8_t *data, size_t len, uint64_t now_ms);
/* Bytes held so far and the total size of the running (or last) download. */
void fl_basecache_progress(const fl_basecache_t *self, uint64_t *have, uint64_t *size);
/* Finish a whole download: fsync, check the content hash against the offer and the
 * coordinator's signature, rename .part to .ftm and open it into *out. On a mismatch the
 * file is deleted and FL_EHASH / FL_ECRYPTO returned (message says which). */
int fl_basecache_finish(fl_basecache_t *self, struct fl_base_file *out);

#endif
