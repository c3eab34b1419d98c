/* fl_client_http: fedtl-client's --http: /metrics in the Prometheus text format for the
 * branch's side (rounds joined, receipts, local training seconds, bytes, the last held-out
 * accuracy and loss). Threading: the branch's loop blocks while it trains (minutes on a real
 * model), so a page rendered on that loop would keep a scrape waiting as long. The server runs
 * on its own thread (fl_http_new_threaded) and serves the text the loop last published, a
 * snapshot under the server's mutex: the loop renders it after an event changed a count, and
 * the branch's state is never read from the server's thread. Every call accepts NULL (no
 * --http: nothing is counted). */
#ifndef FL_CLIENT_HTTP_H
#define FL_CLIENT_HTTP_H

#include "fl_localtrain.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fl_client_http fl_client_http_t;

/* Serve /metrics on address (fl_http_check_address). NULL with the message set. */
fl_client_http_t *fl_client_http_new(const char *address);
void fl_client_http_destroy(fl_client_http_t **self_p);

/* A message of `bytes` bytes came from the coordinator. */
void fl_client_http_received(fl_client_http_t *self, size_t bytes);
/* The update of `round` went out: `bytes` on the wire, after `seconds` of local training that
 * measured m. */
void fl_client_http_round(fl_client_http_t *self, uint32_t round, double seconds, size_t bytes,
                          const struct fl_localtrain_metrics *m);
/* The coordinator's receipt for an update. */
void fl_client_http_receipt(fl_client_http_t *self, bool accepted);
/* Publish the page when a count changed since the last time (call it from the loop). */
void fl_client_http_publish(fl_client_http_t *self);

#endif
