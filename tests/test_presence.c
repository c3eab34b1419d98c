/* fl_presence: the branch's registration rules on their own, with a made-up clock and the
 * sends recorded: Hellos while waiting, heartbeats when ready, registering again after
 * silence or a Bye, and the connect timeout. */
#include "fl_codec.h"
#include "fl_error.h"
#include "fl_presence.h"

#include <criterion/criterion.h>
#include <string.h>

#define HB 100 /* the configured heartbeat interval (ms) in most tests */

/* What the presence asked to send. */
struct sent {
    int hellos;              /* Hellos */
    int hellos_with_base;    /* of which said we hold the base */
    int beats;               /* Heartbeats */
    int reconnects;          /* new connections asked for */
    int hellos_at_reconnect; /* Hellos sent before the last new connection */
};

static void s_hello(void *arg, bool with_base)
{
    struct sent *s = arg;
    s->hellos++;
    s->hellos_with_base += with_base;
}

static void s_beat(void *arg)
{
    struct sent *s = arg;
    s->beats++;
}

static void s_reconnect(void *arg)
{
    struct sent *s = arg;
    s->reconnects++;
    s->hellos_at_reconnect = s->hellos;
}

static fl_presence_t *s_new(struct sent *s, int heartbeat_ms, int connect_timeout_s)
{
    memset(s, 0, sizeof *s);
    struct fl_presence_config cfg = {.peer = "tcp://coordinator:7777",
                                     .heartbeat_ms = heartbeat_ms,
                                     .connect_timeout_s = connect_timeout_s,
                                     .send_hello = s_hello,
                                     .send_heartbeat = s_beat,
                                     .reconnect = s_reconnect,
                                     .arg = s};
    fl_presence_t *p = fl_presence_new(&cfg);
    cr_assert_not_null(p);
    return p;
}

/* Started at 0, welcomed at 10 without a base, the base ready at 20, welcomed again at 30:
 * ready, with two Hellos sent. */
static fl_presence_t *s_ready(struct sent *s)
{
    fl_presence_t *p = s_new(s, HB, 5);
    fl_presence_start(p, 0);
    fl_presence_heard(p, 10);
    cr_assert_eq(fl_presence_welcome(p, 10, 0), FL_PRESENCE_FETCH);
    fl_presence_base_ready(p, 20);
    fl_presence_heard(p, 30);
    cr_assert_eq(fl_presence_welcome(p, 30, 0), FL_PRESENCE_READY);
    cr_assert_eq(s->hellos, 2);
    return p;
}

Test(fl_presence, registers_fetches_the_base_then_asks_to_be_marked_ready)
{
    struct sent s;
    fl_presence_t *p = s_new(&s, HB, 5);
    fl_presence_start(p, 0);
    cr_assert_eq(s.hellos, 1, "the first Hello goes out at once");
    cr_assert_eq(s.hellos_with_base, 0);
    cr_assert(!fl_presence_registered(p));
    fl_presence_heard(p, 10);
    cr_assert_eq(fl_presence_welcome(p, 10, 0), FL_PRESENCE_FETCH, "no base: get it");
    cr_assert(fl_presence_registered(p), "base requests may go out");
    cr_assert(!fl_presence_has_base(p));
    fl_presence_base_ready(p, 20);
    cr_assert(fl_presence_has_base(p));
    cr_assert_eq(s.hellos, 2);
    cr_assert_eq(s.hellos_with_base, 1, "the second Hello says we hold the base");
    cr_assert(!fl_presence_registered(p), "waiting for the Welcome that marks us ready");
    cr_assert_eq(fl_presence_welcome(p, 30, 0), FL_PRESENCE_READY);
    cr_assert(fl_presence_registered(p));
    cr_assert_eq(fl_presence_welcome(p, 40, 0), FL_PRESENCE_WAIT, "ready already");
    cr_assert_eq(s.hellos, 2);
    fl_presence_destroy(&p);
    fl_presence_destroy(&p);
}

Test(fl_presence, another_base_is_fetched_and_announced_again)
{
    struct sent s;
    fl_presence_t *p = s_ready(&s);
    /* A Welcome offers another base: the caller closes ours. */
    fl_presence_base_lost(p);
    cr_assert(!fl_presence_has_base(p));
    cr_assert_eq(fl_presence_welcome(p, 40, 0), FL_PRESENCE_FETCH);
    cr_assert(fl_presence_registered(p), "registered: the new base may be requested");
    fl_presence_base_ready(p, 50);
    cr_assert_eq(s.hellos, 3);
    cr_assert_eq(s.hellos_with_base, 2);
    cr_assert_eq(fl_presence_welcome(p, 60, 0), FL_PRESENCE_READY);
    fl_presence_destroy(&p);
}

Test(fl_presence, heartbeats_every_interval_once_ready)
{
    struct sent s;
    fl_presence_t *p = s_ready(&s);
    for (uint64_t t = 30; t <= 530; t += 10) {
        fl_presence_heard(p, t); /* the coordinator answers every heartbeat */
        cr_assert_eq(fl_presence_tick(p, t), 0);
    }
    cr_assert_eq(s.beats, 5, "one per 100 ms over 500 ms");
    cr_assert_eq(s.hellos, 2, "no Hello while the coordinator talks");
    fl_presence_destroy(&p);
}

Test(fl_presence, takes_the_coordinators_interval_within_bounds_unless_configured)
{
    struct sent s;
    fl_presence_t *p = s_new(&s, 0, 0);
    cr_assert_eq(fl_presence_heartbeat_ms(p), 1000, "until a Welcome says otherwise");
    fl_presence_start(p, 0);
    fl_presence_welcome(p, 1, 200);
    cr_assert_eq(fl_presence_heartbeat_ms(p), 200);
    fl_presence_welcome(p, 2, 3);
    cr_assert_eq(fl_presence_heartbeat_ms(p), 50);
    fl_presence_welcome(p, 3, 1u << 30);
    cr_assert_eq(fl_presence_heartbeat_ms(p), 600000);
    fl_presence_welcome(p, 4, 0);
    cr_assert_eq(fl_presence_heartbeat_ms(p), 600000, "0: none given");
    fl_presence_destroy(&p);
    p = s_new(&s, HB, 0);
    fl_presence_start(p, 0);
    fl_presence_welcome(p, 1, 200);
    cr_assert_eq(fl_presence_heartbeat_ms(p), HB, "the configured interval wins");
    fl_presence_destroy(&p);
}

Test(fl_presence, registers_again_after_five_silent_intervals)
{
    struct sent s;
    fl_presence_t *p = s_ready(&s);
    cr_assert_eq(fl_presence_tick(p, 30 + 5 * HB), 0);
    cr_assert_eq(s.hellos, 2, "5 intervals exactly: not yet");
    cr_assert_eq(fl_presence_tick(p, 31 + 5 * HB), 0);
    cr_assert_eq(s.hellos, 3, "silence: Hello again");
    cr_assert_eq(s.hellos_with_base, 2);
    cr_assert(!fl_presence_registered(p));
    fl_presence_heard(p, 600);
    cr_assert_eq(fl_presence_welcome(p, 600, 0), FL_PRESENCE_READY);
    fl_presence_destroy(&p);
}

Test(fl_presence, training_time_is_not_silence)
{
    struct sent s;
    fl_presence_t *p = s_ready(&s);
    fl_presence_resume(p, 10000); /* trained for ten seconds */
    cr_assert_eq(fl_presence_tick(p, 10001), 0);
    cr_assert_eq(s.hellos, 2);
    cr_assert_eq(s.beats, 0, "the interval starts again too");
    cr_assert_eq(fl_presence_tick(p, 10000 + HB), 0);
    cr_assert_eq(s.beats, 1);
    fl_presence_destroy(&p);
}

Test(fl_presence, hellos_while_waiting_then_the_connect_timeout)
{
    struct sent s;
    fl_presence_t *p = s_new(&s, HB, 2);
    fl_presence_start(p, 0);
    for (uint64_t t = 0; t <= 2000; t += 10)
        cr_assert_eq(fl_presence_tick(p, t), 0, "at %llu ms", (unsigned long long)t);
    cr_assert_eq(s.hellos, 5, "every five intervals: 0, 500, 1000, 1500, 2000 ms");
    cr_assert_eq(fl_presence_tick(p, 2001), FL_EIO);
    cr_assert(strstr(fl_error_msg(), "no answer from tcp://coordinator:7777"), "%s",
              fl_error_msg());
    fl_presence_destroy(&p);
    p = s_new(&s, HB, 0);
    fl_presence_start(p, 0);
    cr_assert_eq(fl_presence_tick(p, 1000000), 0, "0 waits forever");
    fl_presence_destroy(&p);
}

Test(fl_presence, the_connect_timeout_counts_from_losing_the_registration)
{
    struct sent s;
    fl_presence_t *p = s_ready(&s); /* connect timeout 5 s */
    fl_presence_heard(p, 9000);
    cr_assert_eq(fl_presence_tick(p, 9000), 0);
    cr_assert_eq(fl_presence_bye(p, FEDTL__BYE_CODE__BYE_SHUTDOWN, "", 9000), 0);
    cr_assert_eq(fl_presence_tick(p, 14000), 0);
    cr_assert_eq(fl_presence_tick(p, 14001), FL_EIO);
    fl_presence_destroy(&p);
}

Test(fl_presence, a_shutdown_bye_waits_before_the_next_hello)
{
    struct sent s;
    fl_presence_t *p = s_ready(&s);
    cr_assert_eq(fl_presence_bye(p, FEDTL__BYE_CODE__BYE_SHUTDOWN, "going down", 40), 0);
    cr_assert_eq(s.hellos, 2, "no Hello into a closing coordinator");
    cr_assert(!fl_presence_registered(p));
    cr_assert_eq(fl_presence_tick(p, 40 + 5 * HB - 1), 0);
    cr_assert_eq(s.hellos, 2);
    cr_assert_eq(fl_presence_tick(p, 40 + 5 * HB), 0);
    cr_assert_eq(s.hellos, 3);
    fl_presence_destroy(&p);
}

Test(fl_presence, say_hello_registers_again_once_per_interval)
{
    struct sent s;
    fl_presence_t *p = s_ready(&s);
    cr_assert_eq(fl_presence_bye(p, FEDTL__BYE_CODE__BYE_SAY_HELLO, "", 40), 0);
    cr_assert_eq(s.hellos, 3);
    /* Queued heartbeats each draw one: they do not each draw a Hello. */
    cr_assert_eq(fl_presence_bye(p, FEDTL__BYE_CODE__BYE_SAY_HELLO, "", 41), 0);
    cr_assert_eq(fl_presence_bye(p, FEDTL__BYE_CODE__BYE_SAY_HELLO, "", 42), 0);
    cr_assert_eq(s.hellos, 3);
    cr_assert_eq(fl_presence_bye(p, FEDTL__BYE_CODE__BYE_SAY_HELLO, "", 40 + HB), 0);
    cr_assert_eq(s.hellos, 4);
    fl_presence_destroy(&p);
}

Test(fl_presence, a_refusal_ends_the_run_by_its_code_alone)
{
    static const int refusals[] = {FEDTL__BYE_CODE__BYE_NOT_ENROLLED, FEDTL__BYE_CODE__BYE_REVOKED};
    for (size_t i = 0; i < 2; i++) {
        struct sent s;
        fl_presence_t *p = s_ready(&s);
        cr_assert_eq(fl_presence_bye(p, refusals[i], "say hello, all is well", 40), FL_ECRYPTO);
        cr_assert(strstr(fl_error_msg(), "refused this branch"), "%s", fl_error_msg());
        cr_assert(strstr(fl_error_msg(), fl_wire_bye_name(refusals[i])), "%s", fl_error_msg());
        fl_presence_destroy(&p);
    }
    /* A branch's own codes, from a coordinator, change nothing. */
    struct sent s;
    fl_presence_t *p = s_ready(&s);
    cr_assert_eq(fl_presence_bye(p, FEDTL__BYE_CODE__BYE_DONE, "refused", 40), 0);
    cr_assert_eq(fl_presence_bye(p, FEDTL__BYE_CODE__BYE_STOPPING, "revoked", 40), 0);
    cr_assert_eq(fl_presence_bye(p, 99, "not enrolled", 40), 0);
    cr_assert(fl_presence_registered(p));
    cr_assert_eq(s.hellos, 2);
    fl_presence_destroy(&p);
}

/* A connection the coordinator no longer serves hears nothing: after SILENCE_BEATS intervals
 * the branch drops it and says Hello on a new one. */
Test(fl_presence, silence_when_ready_opens_a_new_connection_before_the_hello)
{
    struct sent s;
    fl_presence_t *p = s_ready(&s);
    uint64_t silent = 30 + FL_PRESENCE_SILENCE_BEATS * HB + 1;
    fl_presence_tick(p, silent - 2);
    cr_assert_eq(s.reconnects, 0, "not silent long enough yet");
    fl_presence_tick(p, silent);
    cr_assert_eq(s.reconnects, 1);
    cr_assert_eq(s.hellos_at_reconnect, 2, "the new connection comes before the Hello");
    cr_assert_eq(s.hellos, 3);
    cr_assert(!fl_presence_registered(p));
    fl_presence_destroy(&p);
}

Test(fl_presence, unanswered_hellos_open_a_new_connection_each_time)
{
    struct sent s;
    fl_presence_t *p = s_new(&s, HB, 0);
    fl_presence_start(p, 0);
    uint64_t t = 0;
    for (int i = 1; i <= 3; i++) {
        t += FL_PRESENCE_SILENCE_BEATS * HB;
        cr_assert_eq(fl_presence_tick(p, t), 0);
        cr_assert_eq(s.reconnects, i);
        cr_assert_eq(s.hellos, i + 1);
    }
    fl_presence_destroy(&p);
}

Test(fl_presence, hellos_that_are_answered_keep_the_connection)
{
    struct sent s;
    fl_presence_t *p = s_new(&s, HB, 0);
    fl_presence_start(p, 0);
    /* A Challenge arrives, the signed Hello goes out at once, and the Welcome is slow. */
    fl_presence_heard(p, 10);
    fl_presence_challenge(p, 10);
    cr_assert_eq(s.hellos, 2, "a Challenge is answered by a Hello at once");
    fl_presence_heard(p, 10 + FL_PRESENCE_SILENCE_BEATS * HB - 10);
    cr_assert_eq(fl_presence_tick(p, 10 + FL_PRESENCE_SILENCE_BEATS * HB), 0);
    cr_assert_eq(s.hellos, 3, "Hello again");
    cr_assert_eq(s.reconnects, 0, "the coordinator was heard: same connection");
    fl_presence_destroy(&p);
}

Test(fl_presence, a_challenge_when_ready_registers_again)
{
    struct sent s;
    fl_presence_t *p = s_ready(&s);
    fl_presence_heard(p, 40);
    fl_presence_challenge(p, 40);
    cr_assert_eq(s.hellos, 3);
    cr_assert(!fl_presence_registered(p), "waiting for the Welcome");
    cr_assert_eq(fl_presence_welcome(p, 50, 0), FL_PRESENCE_READY, "ready again");
    cr_assert(fl_presence_registered(p));
    fl_presence_destroy(&p);
}
