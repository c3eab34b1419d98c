/* fl_coord_http: the coordinator's --http server: /metrics (Prometheus, fl_metrics), / (the
 * status page, fl_statuspage) and /status.json; anything else 404, methods other than GET and
 * HEAD 405.
 * Threading: the server has no thread of its own. Its descriptor (an epoll set) is polled by
 * the event loop with the ZeroMQ sockets and fl_http_run answers what is ready, so every page
 * is rendered on the loop thread from the live state, which the coordinator never shares with
 * another thread (fl_coord.h). A snapshot under a mutex would have needed a copy after every
 * event and a lock in every hook, to serve numbers no fresher. libmicrohttpd reads and writes
 * without blocking, bounds connections, request sizes and idle time (fl_http.h): a slow or
 * hostile HTTP client costs the loop a few microseconds per event, never a wait. */
#ifndef FL_COORD_HTTP_H
#define FL_COORD_HTTP_H

struct fl_coord;

/* With cfg.http set: the counters and the server, bound to that address. 0, or FL_EIO /
 * FL_ENOMEM with the message set. Without: 0, and nothing is counted. */
int fl_coord_http_open(struct fl_coord *c);
/* Stop the server and free the counters (twice is harmless). */
void fl_coord_http_close(struct fl_coord *c);

#endif
