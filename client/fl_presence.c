/* fl_presence: the branch's registration with its coordinator, as a core without I/O. */
#include "fl_presence.h"
#include "fl_codec.h"
#include "fl_error.h"

#include <stdlib.h>

#define S_DEFAULT_HEARTBEAT 1000   /* ms, until a Welcome says otherwise */
#define S_HEARTBEAT_MIN     50     /* bounds on the coordinator's interval (ms) */
#define S_HEARTBEAT_MAX     600000 /* ten minutes */

enum s_state {
    S_HELLO,    /* waiting for a Welcome (not registered, or asked to be marked ready) */
    S_DOWNLOAD, /* registered, getting the base */
    S_READY     /* registered with the base: heartbeats, tasks */
};

struct fl_presence {
    struct fl_presence_config cfg;  /* as given */
    enum s_state state;             /* where the registration is */
    int heartbeat_ms;               /* in use */
    bool have_base;                 /* the base is open and verified */
    bool hello_had_base;            /* the last Hello said we hold the base */
    uint64_t last_heard;            /* ms: last message from the coordinator */
    uint64_t last_hello, last_beat; /* ms: last Hello / Heartbeat sent */
    uint64_t lost_since;            /* ms: entered S_HELLO */
};

fl_presence_t *fl_presence_new(const struct fl_presence_config *cfg)
{
    fl_presence_t *self = calloc(1, sizeof *self);
    if (!self) {
        fl_error_set("out of memory");
        return NULL;
    }
    self->cfg = *cfg;
    self->heartbeat_ms = cfg->heartbeat_ms > 0 ? cfg->heartbeat_ms : S_DEFAULT_HEARTBEAT;
    return self;
}

void fl_presence_destroy(fl_presence_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

static void s_hello(fl_presence_t *self, uint64_t now)
{
    self->hello_had_base = self->have_base;
    self->last_hello = now;
    self->cfg.send_hello(self->cfg.arg, self->have_base);
}

/* Wait for a Welcome again (re-register, or ask to be marked ready). */
static void s_rehello(fl_presence_t *self, uint64_t now)
{
    if (self->state != S_HELLO)
        self->lost_since = now;
    self->state = S_HELLO;
    s_hello(self, now);
}

/* A new connection: what it hears is counted from now. */
static void s_reconnect(fl_presence_t *self, uint64_t now)
{
    if (self->cfg.reconnect)
        self->cfg.reconnect(self->cfg.arg);
    self->last_heard = now;
}

void fl_presence_start(fl_presence_t *self, uint64_t now)
{
    self->state = S_HELLO;
    self->lost_since = self->last_heard = now;
    s_hello(self, now);
}

void fl_presence_heard(fl_presence_t *self, uint64_t now)
{
    self->last_heard = now;
}

void fl_presence_resume(fl_presence_t *self, uint64_t now)
{
    self->last_heard = self->last_beat = now;
}

int fl_presence_tick(fl_presence_t *self, uint64_t now)
{
    uint64_t hb = (uint64_t)self->heartbeat_ms;
    if (self->state == S_HELLO) {
        uint64_t limit = (uint64_t)self->cfg.connect_timeout_s * 1000u;
        if (limit > 0 && now - self->lost_since > limit)
            return fl_fail(FL_EIO,
                           "no answer from %s: wrong --coordinator-key, not enrolled, or "
                           "coordinator down",
                           self->cfg.peer);
        if (now - self->last_hello >= FL_PRESENCE_SILENCE_BEATS * hb) {
            /* Nothing heard meanwhile: the connection may be dead for good. */
            if (now - self->last_heard >= FL_PRESENCE_SILENCE_BEATS * hb)
                s_reconnect(self, now);
            s_hello(self, now);
        }
    } else if (now - self->last_heard > FL_PRESENCE_SILENCE_BEATS * hb) {
        fl_log(FL_LOG_WARN, "coordinator_silent", "ms=%llu msg=\"registering again\"",
               (unsigned long long)(now - self->last_heard));
        s_reconnect(self, now);
        s_rehello(self, now);
    } else if (now - self->last_beat >= hb) {
        self->last_beat = now;
        self->cfg.send_heartbeat(self->cfg.arg);
    }
    return 0;
}

void fl_presence_challenge(fl_presence_t *self, uint64_t now)
{
    s_rehello(self, now);
}

enum fl_presence_next fl_presence_welcome(fl_presence_t *self, uint64_t now, uint64_t heartbeat_ms)
{
    if (self->cfg.heartbeat_ms <= 0 && heartbeat_ms > 0)
        self->heartbeat_ms = heartbeat_ms < S_HEARTBEAT_MIN   ? S_HEARTBEAT_MIN
                             : heartbeat_ms > S_HEARTBEAT_MAX ? S_HEARTBEAT_MAX
                                                              : (int)heartbeat_ms;
    if (!self->have_base) {
        self->state = S_DOWNLOAD;
        return FL_PRESENCE_FETCH;
    }
    if (!self->hello_had_base) { /* registered without the base: say we have it now */
        s_rehello(self, now);
        return FL_PRESENCE_WAIT;
    }
    bool became = self->state != S_READY;
    self->state = S_READY;
    self->last_beat = now;
    return became ? FL_PRESENCE_READY : FL_PRESENCE_WAIT;
}

void fl_presence_base_ready(fl_presence_t *self, uint64_t now)
{
    self->have_base = true;
    s_rehello(self, now);
}

void fl_presence_base_lost(fl_presence_t *self)
{
    self->have_base = false;
}

int fl_presence_bye(fl_presence_t *self, int code, const char *reason, uint64_t now)
{
    switch (code) {
    case FEDTL__BYE_CODE__BYE_SAY_HELLO:
        /* The coordinator does not know us (it restarted or forgot us). Once per interval:
         * heartbeats queued meanwhile each draw a Bye. */
        if (self->state != S_HELLO || now - self->last_hello >= (uint64_t)self->heartbeat_ms)
            s_rehello(self, now);
        return 0;
    case FEDTL__BYE_CODE__BYE_NOT_ENROLLED:
    case FEDTL__BYE_CODE__BYE_REVOKED:
        return fl_fail(FL_ECRYPTO, "the coordinator refused this branch (%s): %s",
                       fl_wire_bye_name(code), reason);
    case FEDTL__BYE_CODE__BYE_SHUTDOWN:
        /* Keep registering until it is back or the connect timeout passes. */
        if (self->state != S_HELLO)
            self->lost_since = now;
        self->state = S_HELLO;
        self->last_hello = now;
        return 0;
    default: /* a branch's codes, from a coordinator: ignore */
        fl_log(FL_LOG_WARN, "bad_message", "msg=bye error=\"code %s from the coordinator\"",
               fl_wire_bye_name(code));
        return 0;
    }
}

bool fl_presence_has_base(const fl_presence_t *self)
{
    return self->have_base;
}

bool fl_presence_registered(const fl_presence_t *self)
{
    return self->state != S_HELLO;
}

int fl_presence_heartbeat_ms(const fl_presence_t *self)
{
    return self->heartbeat_ms;
}
