/* fl_session: connections and the keys they proved. */
#include "fl_session.h"
#include "fl_error.h"

#include <stdlib.h>
#include <string.h>

struct s_conn {
    uint8_t route[FL_SESSION_ROUTE_MAX]; /* the ROUTER's routing id */
    size_t route_len;                    /* its length */
    uint8_t nonce[FL_HELLO_NONCE_BYTES]; /* the last Challenge sent to it */
    bool proven;                         /* it signed a Challenge for key */
    uint8_t key[FL_SIGN_PK_BYTES];       /* the key it proved (when proven) */
    int64_t challenged_at;               /* when it was last challenged (ms) */
};

struct fl_session {
    struct s_conn *conns; /* in no particular order */
    size_t n, cap;        /* used, allocated */
};

fl_session_t *fl_session_new(void)
{
    fl_session_t *self = calloc(1, sizeof *self);
    if (!self)
        fl_error_set("out of memory");
    return self;
}

void fl_session_destroy(fl_session_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->conns);
    free(*self_p);
    *self_p = NULL;
}

static struct s_conn *s_find(const fl_session_t *self, const uint8_t *route, size_t route_len)
{
    for (size_t i = 0; i < self->n; i++)
        if (self->conns[i].route_len == route_len &&
            memcmp(self->conns[i].route, route, route_len) == 0)
            return &self->conns[i];
    return NULL;
}

static void s_remove(fl_session_t *self, struct s_conn *c)
{
    *c = self->conns[--self->n];
}

/* Make room for one more pending connection: forget the oldest when the limit is reached. */
static void s_make_room(fl_session_t *self)
{
    size_t pending = 0;
    struct s_conn *oldest = NULL;
    for (size_t i = 0; i < self->n; i++) {
        struct s_conn *c = &self->conns[i];
        if (c->proven)
            continue;
        pending++;
        if (!oldest || c->challenged_at < oldest->challenged_at)
            oldest = c;
    }
    if (pending >= FL_SESSION_PENDING && oldest)
        s_remove(self, oldest);
}

int fl_session_challenge(fl_session_t *self, const uint8_t *route, size_t route_len,
                         const uint8_t nonce[FL_HELLO_NONCE_BYTES], int64_t now)
{
    if (route_len == 0 || route_len > FL_SESSION_ROUTE_MAX)
        return fl_fail(FL_EINVAL, "routing id of %zu bytes", route_len);
    struct s_conn *c = s_find(self, route, route_len);
    if (!c) {
        s_make_room(self);
        if (self->n == self->cap) {
            size_t cap = self->cap ? 2 * self->cap : 16;
            struct s_conn *grown = realloc(self->conns, cap * sizeof *grown);
            if (!grown)
                return fl_fail(FL_ENOMEM, "out of memory");
            self->conns = grown;
            self->cap = cap;
        }
        c = &self->conns[self->n++];
        memset(c, 0, sizeof *c);
        memcpy(c->route, route, route_len);
        c->route_len = route_len;
    }
    memcpy(c->nonce, nonce, FL_HELLO_NONCE_BYTES);
    c->challenged_at = now;
    return 0;
}

const uint8_t *fl_session_nonce(const fl_session_t *self, const uint8_t *route, size_t route_len)
{
    const struct s_conn *c = s_find(self, route, route_len);
    return c ? c->nonce : NULL;
}

int fl_session_bind(fl_session_t *self, const uint8_t *route, size_t route_len,
                    const uint8_t key[FL_SIGN_PK_BYTES])
{
    struct s_conn *c = s_find(self, route, route_len);
    if (!c)
        return FL_ENOTFOUND;
    for (size_t i = 0; i < self->n;) {
        struct s_conn *o = &self->conns[i];
        if (o != c && o->proven && memcmp(o->key, key, FL_SIGN_PK_BYTES) == 0) {
            bool moves = c == &self->conns[self->n - 1]; /* s_remove moves the last entry */
            s_remove(self, o);
            if (moves)
                c = o;
        } else {
            i++;
        }
    }
    c->proven = true;
    memcpy(c->key, key, FL_SIGN_PK_BYTES);
    return 0;
}

const uint8_t *fl_session_key(const fl_session_t *self, const uint8_t *route, size_t route_len)
{
    const struct s_conn *c = s_find(self, route, route_len);
    return c && c->proven ? c->key : NULL;
}

const uint8_t *fl_session_route(const fl_session_t *self, const uint8_t key[FL_SIGN_PK_BYTES],
                                size_t *route_len)
{
    for (size_t i = 0; i < self->n; i++) {
        const struct s_conn *c = &self->conns[i];
        if (c->proven && memcmp(c->key, key, FL_SIGN_PK_BYTES) == 0) {
            *route_len = c->route_len;
            return c->route;
        }
    }
    return NULL;
}

void fl_session_drop(fl_session_t *self, const uint8_t *route, size_t route_len)
{
    struct s_conn *c = s_find(self, route, route_len);
    if (c)
        s_remove(self, c);
}

void fl_session_forget(fl_session_t *self, const uint8_t key[FL_SIGN_PK_BYTES])
{
    size_t len;
    const uint8_t *route = fl_session_route(self, key, &len);
    if (route) {
        uint8_t copy[FL_SESSION_ROUTE_MAX];
        memcpy(copy, route, len);
        fl_session_drop(self, copy, len);
    }
}

size_t fl_session_size(const fl_session_t *self)
{
    return self->n;
}
