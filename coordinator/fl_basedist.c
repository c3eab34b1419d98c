/* fl_basedist: the base in chunks, with credit-based flow control. */
#include "fl_basedist.h"
#include "fl_error.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_CREDIT 16 /* chunks per request */

/* Where one branch's download stands, and what it may still be sent. Kept when the branch
 * leaves or says Hello again: the budget belongs to the key, not to a session. */
struct s_cursor {
    uint8_t key[FL_SIGN_PK_BYTES]; /* the branch */
    uint64_t next;                 /* the first byte not yet sent */
    bool rewound;                  /* it asked again for bytes already sent... */
    int64_t rewind;                /* ...last at this time (ms) */
    uint64_t tokens;               /* bytes it may be sent now */
    int64_t refilled;              /* when tokens were last topped up (ms) */
};

struct fl_basedist {
    const uint8_t *base;      /* the file's bytes */
    uint64_t size;            /* their count */
    uint32_t chunk_size;      /* bytes per chunk */
    int64_t stall_ms;         /* one rewind per this long */
    uint64_t budget;          /* bytes one key may be sent per FL_BASEDIST_WINDOW_MS */
    uint64_t refused;         /* chunks not sent for want of budget */
    struct s_cursor *cursors; /* downloads in progress */
    size_t ncursors, cap;     /* their count and room */
};

fl_basedist_t *fl_basedist_new(const uint8_t *base, uint64_t size, uint32_t chunk_size,
                               int heartbeat_ms)
{
    fl_basedist_t *self = calloc(1, sizeof *self);
    if (!self) {
        fl_error_set("out of memory");
        return NULL;
    }
    self->base = base;
    self->size = size;
    self->chunk_size = chunk_size;
    int64_t stall = 2 * (int64_t)heartbeat_ms;
    self->stall_ms = stall > 1000 ? stall : 1000;
    self->budget = FL_BASEDIST_BUDGET_FACTOR * size;
    return self;
}

void fl_basedist_destroy(fl_basedist_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->cursors);
    free(*self_p);
    *self_p = NULL;
}

static struct s_cursor *s_find(fl_basedist_t *self, const uint8_t *key, bool add, int64_t now)
{
    for (size_t i = 0; i < self->ncursors; i++)
        if (memcmp(self->cursors[i].key, key, FL_SIGN_PK_BYTES) == 0)
            return &self->cursors[i];
    if (!add)
        return NULL;
    if (self->ncursors == self->cap) {
        size_t ncap = self->cap ? 2 * self->cap : 16;
        struct s_cursor *nc = realloc(self->cursors, ncap * sizeof *nc);
        if (!nc)
            return NULL;
        self->cursors = nc;
        self->cap = ncap;
    }
    struct s_cursor *c = &self->cursors[self->ncursors++];
    memset(c, 0, sizeof *c);
    memcpy(c->key, key, FL_SIGN_PK_BYTES);
    c->tokens = self->budget;
    c->refilled = now;
    return c;
}

void fl_basedist_restart(fl_basedist_t *self, const uint8_t key[FL_SIGN_PK_BYTES])
{
    struct s_cursor *c = s_find(self, key, false, 0);
    if (c)
        c->next = 0; /* the rewind allowance and the budget stay: a Hello buys neither */
}

void fl_basedist_forget(fl_basedist_t *self, const uint8_t key[FL_SIGN_PK_BYTES])
{
    struct s_cursor *c = s_find(self, key, false, 0);
    if (c) { /* where it stood, not what it was sent: the key's budget outlives its sessions */
        c->next = 0;
        c->rewound = false;
    }
}

uint64_t fl_basedist_refused(const fl_basedist_t *self)
{
    return self->refused;
}

/* Top up c's budget for the time since the last top-up: the whole budget per window. */
static void s_refill(const fl_basedist_t *self, struct s_cursor *c, int64_t now)
{
    if (now <= c->refilled)
        return;
    int64_t dt = now - c->refilled;
    if (dt > FL_BASEDIST_WINDOW_MS)
        dt = FL_BASEDIST_WINDOW_MS;
    /* budget < 2^40 (a base is far smaller) and dt < 2^20: no overflow. */
    uint64_t add = self->budget * (uint64_t)dt / FL_BASEDIST_WINDOW_MS;
    if (add == 0)
        return; /* too soon to earn a byte: keep the time so that nothing is lost */
    c->tokens = self->budget - c->tokens < add ? self->budget : c->tokens + add;
    c->refilled = now;
}

int fl_basedist_request(fl_basedist_t *self, const uint8_t key[FL_SIGN_PK_BYTES], uint64_t offset,
                        uint32_t credit, int64_t now, fl_basedist_send_fn *send, void *arg)
{
    if (offset >= self->size)
        return fl_fail(FL_ERANGE, "offset %llu beyond the base", (unsigned long long)offset);
    struct s_cursor *c = s_find(self, key, true, now);
    if (!c)
        return fl_fail(FL_ENOMEM, "out of memory");
    s_refill(self, c, now);
    /* A branch asks for the bytes after those it asked for before; asking again for bytes
     * already sent (after a loss) is allowed once per stall period, so a branch cannot make
     * the coordinator send the base over and over. */
    if (offset < c->next) {
        if (c->rewound && now - c->rewind < self->stall_ms)
            return 0;
        c->rewound = true;
        c->rewind = now;
    }
    if (credit > S_MAX_CREDIT)
        credit = S_MAX_CREDIT;
    uint64_t off = offset;
    for (uint32_t i = 0; i < credit && off < self->size; i++) {
        size_t n =
            self->size - off < self->chunk_size ? (size_t)(self->size - off) : self->chunk_size;
        if (n > c->tokens) {
            self->refused++;
            break; /* its budget is spent: asked again later, the request is served */
        }
        if (send(arg, key, off, self->base + off, n) != 0)
            break; /* its queue is full: the rest would be dropped too */
        c->tokens -= n;
        off += n;
    }
    c->next = off;
    return 0;
}
