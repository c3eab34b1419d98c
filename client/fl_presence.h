/* fl_presence: whether the coordinator knows this branch, and what keeps it so. The branch's
 * registration state (waiting for a Welcome, fetching the base, ready), its heartbeats, the
 * re-registration after silence or a Bye, and the connect timeout. No sockets and no clock:
 * the caller feeds it events with the time in ms and sends what it asks for through the
 * callbacks, so the rules run in tests without a coordinator. */
#ifndef FL_PRESENCE_H
#define FL_PRESENCE_H

#include <stdbool.h>
#include <stdint.h>

#define FL_PRESENCE_SILENCE_BEATS 5 /* heartbeat intervals of silence before registering again */

/* What a presence needs; the strings must outlive it. */
struct fl_presence_config {
    const char *peer;      /* the coordinator's endpoint, for messages */
    int heartbeat_ms;      /* fixed interval; 0 takes the coordinator's (from Welcome) */
    int connect_timeout_s; /* give up when unregistered this long; 0 waits forever */
    /* Send a Hello now: with the base's hash when with_base, else without. */
    void (*send_hello)(void *arg, bool with_base);
    /* Send a Heartbeat now. */
    void (*send_heartbeat)(void *arg);
    /* The coordinator has not been heard from for FL_PRESENCE_SILENCE_BEATS intervals: drop
     * the connection and open a new one (a Hello follows at once). */
    void (*reconnect)(void *arg);
    void *arg; /* passed to each */
};

/* After a Welcome, what the caller does next. */
enum fl_presence_next {
    FL_PRESENCE_WAIT = 0,  /* nothing: a Hello went out, or the branch was ready already */
    FL_PRESENCE_READY = 1, /* the branch just became ready: tasks may come */
    FL_PRESENCE_FETCH = 2  /* get the base (from the cache or by download), then call
                              fl_presence_base_ready */
};

typedef struct fl_presence fl_presence_t;

/* A presence in the waiting state (cfg is copied). NULL when out of memory. */
fl_presence_t *fl_presence_new(const struct fl_presence_config *cfg);
void fl_presence_destroy(fl_presence_t **self_p);

/* The run starts: send the first Hello and start the connect timeout. */
void fl_presence_start(fl_presence_t *self, uint64_t now);
/* Something arrived from the coordinator (a bad frame counts: the coordinator is there). */
void fl_presence_heard(fl_presence_t *self, uint64_t now);
/* The loop was busy (training) until now: what the coordinator sent meanwhile is still queued,
 * so the time is counted neither as silence nor as a missed heartbeat. */
void fl_presence_resume(fl_presence_t *self, uint64_t now);
/* Heartbeats, registering again (on a new connection) after silence, Hellos while waiting. 0, or
 * FL_EIO when the connect timeout passed without a Welcome (fl_error_msg says so). */
int fl_presence_tick(fl_presence_t *self, uint64_t now);

/* A Challenge came: answer it with a Hello at once (the caller signs it), and wait for the
 * Welcome. */
void fl_presence_challenge(fl_presence_t *self, uint64_t now);
/* A Welcome with the coordinator's heartbeat interval (ms, 0: none given). */
enum fl_presence_next fl_presence_welcome(fl_presence_t *self, uint64_t now, uint64_t heartbeat_ms);
/* The base is open and verified: register again, saying so. */
void fl_presence_base_ready(fl_presence_t *self, uint64_t now);
/* The base held is not the federation's any more (the caller closes it). */
void fl_presence_base_lost(fl_presence_t *self);
/* A Bye from the coordinator, by its code (a Fedtl__ByeCode; the reason is only quoted in
 * messages). 0, or FL_ECRYPTO when the coordinator refused this branch for good. */
int fl_presence_bye(fl_presence_t *self, int code, const char *reason, uint64_t now);

/* The base is open and verified. */
bool fl_presence_has_base(const fl_presence_t *self);
/* Registered (a Welcome came and nothing since asked to register again): base requests may
 * go out. */
bool fl_presence_registered(const fl_presence_t *self);
/* The heartbeat interval in use (ms). */
int fl_presence_heartbeat_ms(const fl_presence_t *self);

#endif
