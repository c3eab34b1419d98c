/* fl_http: a read-only HTTP server on libmicrohttpd, run from the caller's loop (epoll, external
 * mode) or on its own thread serving published documents. */
#include "fl_http.h"
#include "fl_error.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A published document (threaded servers). */
struct s_doc {
    char path[64];    /* e.g. "/metrics" */
    const char *type; /* content type (static text) */
    char *body;       /* malloc'd */
    size_t len;       /* its length */
};

struct fl_http {
    struct MHD_Daemon *mhd;                   /* the server */
    fl_http_handler_fn *handler;              /* answers requests (loop servers) */
    void *arg;                                /* handler's argument */
    bool threaded;                            /* on MHD's thread: published documents only */
    char where[64];                           /* the address listened on, for logs */
    pthread_mutex_t lock;                     /* guards docs (threaded servers) */
    struct s_doc docs[FL_HTTP_MAX_DOCUMENTS]; /* published documents */
    size_t ndocs;                             /* how many */
};

/* ---- addresses ---- */

union s_addr {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
};

static int s_parse_port(const char *s, uint16_t *port)
{
    if (!*s || strlen(s) > 5 || strspn(s, "0123456789") != strlen(s))
        return fl_fail(FL_EINVAL, "port '%.16s' is not a number from 1 to 65535", s);
    long v = strtol(s, NULL, 10);
    if (v < 1 || v > 65535)
        return fl_fail(FL_EINVAL, "port %ld is not from 1 to 65535", v);
    *port = (uint16_t)v;
    return 0;
}

/* "PORT", "HOST:PORT" (numeric IPv4; empty HOST: the loopback) or "[IPv6]:PORT". */
static int s_parse_address(const char *address, union s_addr *out)
{
    char host[64];
    const char *port;
    memset(out, 0, sizeof *out);
    if (!address || !*address)
        return fl_fail(FL_EINVAL, "empty address: give PORT, HOST:PORT or [IPv6]:PORT");
    if (strlen(address) >= sizeof host)
        return fl_fail(FL_EINVAL, "address is too long");
    if (address[0] == '[') {
        const char *close = strchr(address, ']');
        if (!close || close[1] != ':')
            return fl_fail(FL_EINVAL, "'%s': an IPv6 address is written [ADDRESS]:PORT", address);
        snprintf(host, sizeof host, "%.*s", (int)(close - address - 1), address + 1);
        out->in6.sin6_family = AF_INET6;
        if (inet_pton(AF_INET6, host, &out->in6.sin6_addr) != 1)
            return fl_fail(FL_EINVAL, "'%s' is not a numeric IPv6 address", host);
        uint16_t p6;
        if (s_parse_port(close + 2, &p6) != 0)
            return FL_EINVAL;
        out->in6.sin6_port = htons(p6);
        return 0;
    }
    const char *colon = strrchr(address, ':');
    if (colon) {
        snprintf(host, sizeof host, "%.*s", (int)(colon - address), address);
        port = colon + 1;
    } else {
        host[0] = '\0';
        port = address;
    }
    if (!host[0])
        snprintf(host, sizeof host, "%s", FL_HTTP_DEFAULT_HOST);
    out->in4.sin_family = AF_INET;
    if (inet_pton(AF_INET, host, &out->in4.sin_addr) != 1)
        return fl_fail(FL_EINVAL, "'%s' is not a numeric IPv4 address (IPv6: [ADDRESS]:PORT)",
                       host);
    uint16_t p;
    if (s_parse_port(port, &p) != 0)
        return FL_EINVAL;
    out->in4.sin_port = htons(p);
    return 0;
}

int fl_http_check_address(const char *address)
{
    union s_addr a;
    return *address ? s_parse_address(address, &a) : 0;
}

/* ---- requests ---- */

static enum MHD_Result s_send(struct MHD_Connection *conn, struct fl_http_reply *r)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        r->len, r->body ? r->body : "", r->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(r->body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    /* No script, style sheet, font or image from anywhere: the pages are self-contained. */
    MHD_add_response_header(resp, "Content-Security-Policy",
                            "default-src 'none'; style-src 'unsafe-inline'; img-src data:");
    if (r->status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static void s_text(struct fl_http_reply *r, int status, const char *text)
{
    r->status = status;
    r->content_type = "text/plain; charset=utf-8";
    r->body = strdup(text);
    r->len = r->body ? strlen(r->body) : 0;
}

/* A published document, copied under the lock. */
static void s_published(struct fl_http *self, const char *path, struct fl_http_reply *r)
{
    pthread_mutex_lock(&self->lock);
    for (size_t i = 0; i < self->ndocs; i++) {
        const struct s_doc *d = &self->docs[i];
        if (strcmp(d->path, path) != 0)
            continue;
        r->body = malloc(d->len ? d->len : 1);
        if (r->body) {
            memcpy(r->body, d->body, d->len);
            r->len = d->len;
            r->status = MHD_HTTP_OK;
            r->content_type = d->type;
        }
        break;
    }
    pthread_mutex_unlock(&self->lock);
}

static enum MHD_Result s_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                    const char *method, const char *version,
                                    const char *upload_data, size_t *upload_data_size,
                                    void **con_cls)
{
    struct fl_http *self = cls;
    struct fl_http_reply r = {0};
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        s_text(&r, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: GET or HEAD only\n");
        return s_send(conn, &r);
    }
    /* Answered at once: a body sent with a GET is not read (the connection then closes). */
    if (self->threaded)
        s_published(self, url, &r);
    else
        self->handler(self->arg, url, &r);
    if (r.status == 0) {
        free(r.body);
        s_text(&r, MHD_HTTP_NOT_FOUND, "not found\n");
    }
    if (!r.content_type)
        r.content_type = "text/plain; charset=utf-8";
    return s_send(conn, &r);
}

/* ---- life cycle ---- */

static fl_http_t *s_new(const char *address, bool threaded, fl_http_handler_fn *handler, void *arg)
{
    union s_addr addr;
    if (s_parse_address(address, &addr) != 0) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", fl_error_msg());
        fl_error_set("http address: %s", msg);
        return NULL;
    }
    struct fl_http *self = calloc(1, sizeof *self);
    if (!self) {
        fl_error_set("out of memory");
        return NULL;
    }
    self->handler = handler;
    self->arg = arg;
    self->threaded = threaded;
    char host[INET6_ADDRSTRLEN] = "?";
    bool v6 = addr.sa.sa_family == AF_INET6;
    inet_ntop(addr.sa.sa_family, v6 ? (void *)&addr.in6.sin6_addr : (void *)&addr.in4.sin_addr,
              host, sizeof host);
    snprintf(self->where, sizeof self->where, v6 ? "[%s]:%u" : "%s:%u", host,
             ntohs(v6 ? addr.in6.sin6_port : addr.in4.sin_port));
    pthread_mutex_init(&self->lock, NULL);
    unsigned flags = MHD_USE_EPOLL | (threaded ? MHD_USE_INTERNAL_POLLING_THREAD : 0) |
                     (addr.sa.sa_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    errno = 0;
    self->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, s_on_request, self, MHD_OPTION_SOCK_ADDR, &addr.sa,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)FL_HTTP_MAX_CONNECTIONS,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)FL_HTTP_MAX_PER_IP,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)FL_HTTP_IDLE_SECONDS,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)FL_HTTP_MAX_REQUEST,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)FL_HTTP_MAX_CONNECTIONS, MHD_OPTION_END);
    if (!self->mhd) {
        fl_error_set("cannot serve HTTP on %s: %s", self->where,
                     errno ? strerror(errno) : "libmicrohttpd refused to start");
        fl_http_destroy(&self);
        return NULL;
    }
    return self;
}

fl_http_t *fl_http_new(const char *address, fl_http_handler_fn *handler, void *arg)
{
    return s_new(address, false, handler, arg);
}

fl_http_t *fl_http_new_threaded(const char *address)
{
    return s_new(address, true, NULL, NULL);
}

void fl_http_destroy(fl_http_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    struct fl_http *self = *self_p;
    if (self->mhd)
        MHD_stop_daemon(self->mhd);
    for (size_t i = 0; i < self->ndocs; i++)
        free(self->docs[i].body);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

/* ---- the caller's loop ---- */

const char *fl_http_where(const fl_http_t *self)
{
    return self->where;
}

int fl_http_fd(const fl_http_t *self)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(self->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    return info ? info->epoll_fd : -1;
}

int fl_http_poll_ms(const fl_http_t *self, int max_ms)
{
    MHD_UNSIGNED_LONG_LONG t;
    if (MHD_get_timeout(self->mhd, &t) != MHD_YES || t >= (MHD_UNSIGNED_LONG_LONG)max_ms)
        return max_ms;
    return (int)t;
}

void fl_http_run(fl_http_t *self)
{
    MHD_run(self->mhd);
}

int fl_http_publish(fl_http_t *self, const char *path, const char *content_type, const char *body,
                    size_t len)
{
    if (len > FL_HTTP_MAX_DOCUMENT_LEN || strlen(path) >= sizeof self->docs[0].path)
        return fl_fail(FL_ERANGE, "http document %s is too long", path);
    char *copy = malloc(len ? len : 1);
    if (!copy)
        return fl_fail(FL_ENOMEM, "out of memory");
    memcpy(copy, body, len);
    int rc = 0;
    pthread_mutex_lock(&self->lock);
    size_t i = 0;
    while (i < self->ndocs && strcmp(self->docs[i].path, path) != 0)
        i++;
    if (i == FL_HTTP_MAX_DOCUMENTS) {
        rc = fl_fail(FL_ERANGE, "too many http documents");
        free(copy);
    } else {
        struct s_doc *d = &self->docs[i];
        if (i == self->ndocs) {
            self->ndocs++;
            snprintf(d->path, sizeof d->path, "%s", path);
        }
        free(d->body);
        d->body = copy;
        d->len = len;
        d->type = content_type;
    }
    pthread_mutex_unlock(&self->lock);
    return rc;
}

/* ---- HTML ---- */

void fl_http_html(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        case '\'':
            fputs("&#39;", f);
            break;
        default: /* control characters are no one's name: shown as '?' */
            fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, f);
        }
    }
}
