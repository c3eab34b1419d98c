/* fl_http: the programs' small read-only HTTP server (libmicrohttpd), for /metrics and status
 * pages. GET and HEAD only (others 405, with Allow), bounded connections, request sizes and
 * idle time, so that a slow or hostile client costs a few kilobytes and never the caller's loop.
 * Two ways to run it:
 * - from the caller's loop (fl_http_new): no thread of its own; the caller polls fl_http_fd()
 *   with its other sockets and calls fl_http_run(), which answers what is ready without
 *   blocking and calls the handler on the caller's thread (the coordinator: its state is read
 *   where it lives, with no lock and no copy);
 * - on its own thread (fl_http_new_threaded): it serves only documents the caller publishes
 *   (fl_http_publish, under the server's mutex), for a program whose loop blocks for long (a
 *   branch while it trains). */
#ifndef FL_HTTP_H
#define FL_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define FL_HTTP_MAX_CONNECTIONS  16   /* open connections at once (more are refused) */
#define FL_HTTP_MAX_PER_IP       8    /* of them from one address */
#define FL_HTTP_MAX_REQUEST      8192 /* request line and headers, bytes (more: 414/431) */
#define FL_HTTP_IDLE_SECONDS     10   /* a connection silent this long is closed */
#define FL_HTTP_DEFAULT_HOST     "127.0.0.1"
#define FL_HTTP_MAX_DOCUMENTS    8 /* paths a threaded server publishes */
#define FL_HTTP_MAX_DOCUMENT_LEN (16u << 20)

/* A handler's answer: status (200, 404...), a content type (static text) and a malloc'd body
 * the server takes and frees (may be NULL for an empty body). */
struct fl_http_reply {
    int status;               /* HTTP status code */
    const char *content_type; /* e.g. "text/plain; version=0.0.4; charset=utf-8" */
    char *body;               /* malloc'd, owned by the server once returned */
    size_t len;               /* its length */
};

/* Answer a GET (or HEAD) of path (the URL's path, without the query). Fill reply; a handler
 * that leaves status 0 answers 404. */
typedef void(fl_http_handler_fn)(void *arg, const char *path, struct fl_http_reply *reply);

typedef struct fl_http fl_http_t;

/* Check an address as --http takes it: "PORT", "HOST:PORT" with HOST a numeric IPv4 address,
 * or "[IPv6]:PORT"; "" (off) passes too. 0, or FL_EINVAL with a message saying what is wrong (for
 * the option table's validate). An empty HOST means 127.0.0.1: the loopback unless the operator
 * names another address. */
int fl_http_check_address(const char *address);
/* A server on address run from the caller's loop; handler(arg, ...) answers on the caller's
 * thread, inside fl_http_run. NULL with the message set (bad address, port in use). */
fl_http_t *fl_http_new(const char *address, fl_http_handler_fn *handler, void *arg);
/* A server on its own thread, answering published documents only (404 until published). */
fl_http_t *fl_http_new_threaded(const char *address);
/* Stops the server (joins its thread) and frees it; accepts NULL. */
void fl_http_destroy(fl_http_t **self_p);

/* The address it listens on, as HOST:PORT (for logs). */
const char *fl_http_where(const fl_http_t *self);

/* The descriptor to poll for input (fl_http_new servers): ready when fl_http_run has work. */
int fl_http_fd(const fl_http_t *self);
/* The longest the caller's poll may wait before fl_http_run is due, at most max_ms. */
int fl_http_poll_ms(const fl_http_t *self, int max_ms);
/* Answer what is ready, without blocking (fl_http_new servers). */
void fl_http_run(fl_http_t *self);

/* Publish (replace) the document at path (threaded servers; copied, under the server's lock).
 * 0, FL_ENOMEM, or FL_ERANGE when there are too many paths or the body is too long. */
int fl_http_publish(fl_http_t *self, const char *path, const char *content_type, const char *body,
                    size_t len);

/* Escape s for HTML text or a quoted attribute (& < > " '), appending to f. */
void fl_http_html(FILE *f, const char *s);

#endif
