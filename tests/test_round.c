/* The round core without sockets or processes: fake branches say Hello at fake times, the test
 * ticks a fake clock, and recording callbacks show what the core asked the coordinator to do. */
#include <criterion/criterion.h>

#include "fl_error.h"
#include "fl_round.h"

#include <stdio.h>
#include <string.h>

#define S_MAX_ACTS 512
#define S_HB       100 /* heartbeat, ms */

enum s_kind {
    A_REGISTERED,
    A_WELCOME,
    A_TASK,
    A_FINAL,
    A_LOST,
    A_REJECTED,
    A_BEGIN,
    A_SHORT,
    A_COMMIT,
    A_DONE
};

/* One action the core asked for. */
struct s_act {
    enum s_kind kind;          /* which callback */
    int branch;                /* the fake branch (key byte - 1), -1 when none */
    uint32_t round;            /* task/rejection: the round; begin/short/commit: info.round */
    int64_t deadline_ms;       /* task: due in */
    enum fl_reject why;        /* rejection: the reason */
    char text[200];            /* rejection: in words */
    struct fl_round_info info; /* begin/short/commit */
};

/* The recorder and the knobs the test turns. */
struct s_rec {
    struct s_act acts[S_MAX_ACTS]; /* in order */
    int n;                         /* their count */
    int begin_rc, commit_rc;       /* what begin and commit return */
};

static struct s_act *s_push(struct s_rec *r, enum s_kind kind, const struct fl_round_branch *b)
{
    cr_assert_lt(r->n, S_MAX_ACTS);
    struct s_act *a = &r->acts[r->n++];
    memset(a, 0, sizeof *a);
    a->kind = kind;
    a->branch = b ? b->key[0] - 1 : -1;
    return a;
}

static void s_registered(void *arg, const struct fl_round_branch *b, size_t n)
{
    s_push(arg, A_REGISTERED, b);
}
static void s_welcome(void *arg, const struct fl_round_branch *b)
{
    s_push(arg, A_WELCOME, b);
}
static void s_task(void *arg, const struct fl_round_branch *b, uint32_t round, int64_t deadline)
{
    struct s_act *a = s_push(arg, A_TASK, b);
    a->round = round;
    a->deadline_ms = deadline;
}
static void s_final(void *arg, const struct fl_round_branch *b)
{
    s_push(arg, A_FINAL, b);
}
static void s_lost(void *arg, const struct fl_round_branch *b, int64_t silent_ms)
{
    s_push(arg, A_LOST, b);
}
static void s_rejected(void *arg, const struct fl_round_rejection *rj)
{
    struct s_act *a = s_push(arg, A_REJECTED, NULL);
    a->branch = rj->peer_len == FL_SIGN_PK_BYTES ? rj->peer[0] - 1 : -1;
    a->round = rj->round;
    a->why = rj->why;
    snprintf(a->text, sizeof a->text, "%s", rj->text);
}
static int s_begin(void *arg, const struct fl_round_info *info)
{
    struct s_rec *r = arg;
    s_push(r, A_BEGIN, NULL)->info = *info;
    return r->begin_rc;
}
static void s_short(void *arg, const struct fl_round_info *info)
{
    s_push(arg, A_SHORT, NULL)->info = *info;
}
static int s_commit(void *arg, const struct fl_round_info *info)
{
    struct s_rec *r = arg;
    s_push(r, A_COMMIT, NULL)->info = *info;
    return r->commit_rc ? fl_fail(r->commit_rc, "disk full") : 0;
}
static void s_done(void *arg, uint32_t rounds, int ready)
{
    s_push(arg, A_DONE, NULL)->round = rounds;
}

static const struct fl_round_ops s_ops = {
    .registered = s_registered,
    .welcome = s_welcome,
    .task = s_task,
    .final = s_final,
    .lost = s_lost,
    .rejected = s_rejected,
    .begin = s_begin,
    .fell_short = s_short,
    .commit = s_commit,
    .done = s_done,
};

/* Rules for a quick federation: 3 rounds, everyone selected, 10 s deadline. */
static struct fl_round_rules s_rules(void)
{
    return (struct fl_round_rules){.rounds = 3,
                                   .fraction = 1.0,
                                   .min_clients = 1,
                                   .min_start = 1,
                                   .deadline_s = 10,
                                   .round_retries = 2,
                                   .seed = 42,
                                   .heartbeat_ms = S_HB};
}

/* Fake branch i's key: every byte i + 1 (so keys sort by i). */
static const uint8_t *s_key(int i)
{
    static uint8_t keys[64][FL_SIGN_PK_BYTES];
    memset(keys[i], i + 1, FL_SIGN_PK_BYTES);
    return keys[i];
}

static void s_hello(fl_round_t *r, int i, bool has_base, int64_t now)
{
    char name[16];
    snprintf(name, sizeof name, "b%d", i);
    cr_assert_eq(fl_round_hello(r, s_key(i), name, 100, has_base, now), 0);
}

/* Actions of one kind since `from`; with branches[], the branch of each. */
static int s_count(const struct s_rec *rec, int from, enum s_kind kind, int *branches)
{
    int n = 0;
    for (int i = from; i < rec->n; i++)
        if (rec->acts[i].kind == kind) {
            if (branches)
                branches[n] = rec->acts[i].branch;
            n++;
        }
    return n;
}

/* The last action of a kind, or NULL. */
static const struct s_act *s_last(const struct s_rec *rec, enum s_kind kind)
{
    for (int i = rec->n - 1; i >= 0; i--)
        if (rec->acts[i].kind == kind)
            return &rec->acts[i];
    return NULL;
}

/* n branches holding the base say Hello at time 0, then a tick: the round starts. */
static fl_round_t *s_started(struct s_rec *rec, const struct fl_round_rules *rules, int n)
{
    fl_round_t *r = fl_round_new(rules, 0, (size_t)n, &s_ops, rec);
    cr_assert_not_null(r);
    for (int i = 0; i < n; i++)
        s_hello(r, i, true, 0);
    cr_assert_eq(fl_round_tick(r, 0), 0);
    return r;
}

/* Branch i's update for `round` passes admission, opens, and is accepted. */
static void s_answer(fl_round_t *r, int i, uint32_t round)
{
    cr_assert_eq(fl_round_admit(r, s_key(i), FL_SIGN_PK_BYTES, true, true, round), FL_REJECT_NONE);
    fl_round_answered(r, s_key(i));
    cr_assert_eq(fl_round_accept(r, s_key(i), FL_SIGN_PK_BYTES, round), FL_REJECT_NONE);
}

/* The fake branches selected in the round that just began, as a bit set. */
static unsigned s_selected(const struct s_rec *rec, int from)
{
    int who[64];
    int n = s_count(rec, from, A_TASK, who);
    unsigned set = 0;
    for (int i = 0; i < n; i++)
        set |= 1u << who[i];
    return set;
}

/* ---- selection ---- */

Test(fl_round, selection_takes_clients_per_round_of_the_ready_branches)
{
    struct s_rec rec = {0};
    struct fl_round_rules rules = s_rules();
    rules.clients_per_round = 3;
    fl_round_t *r = s_started(&rec, &rules, 8);
    cr_assert_eq(fl_round_phase(r), FL_ROUND_RUNNING);
    cr_assert_eq(s_count(&rec, 0, A_TASK, NULL), 3);
    const struct s_act *b = s_last(&rec, A_BEGIN);
    cr_assert_eq(b->info.round, 1);
    cr_assert_eq(b->info.selected, 3);
    cr_assert_eq(b->info.eligible, 8);
    /* Each task is round 1's, due at the deadline. */
    const struct s_act *t = s_last(&rec, A_TASK);
    cr_assert_eq(t->round, 1);
    cr_assert_eq(t->deadline_ms, 10000);
    fl_round_destroy(&r);
    cr_assert_null(r);
    fl_round_destroy(&r); /* twice is fine */
}

Test(fl_round, selection_takes_a_fraction_of_the_ready_branches_rounded_up)
{
    struct s_rec rec = {0};
    struct fl_round_rules rules = s_rules();
    rules.fraction = 0.3;
    fl_round_t *r = s_started(&rec, &rules, 8); /* 2.4 -> 3 */
    cr_assert_eq(s_count(&rec, 0, A_TASK, NULL), 3);
    fl_round_destroy(&r);
}

Test(fl_round, selection_takes_at_least_min_clients_and_at_most_every_ready_branch)
{
    struct s_rec rec = {0};
    struct fl_round_rules rules = s_rules();
    rules.fraction = 0.1;
    rules.min_clients = 4;
    fl_round_t *r = s_started(&rec, &rules, 8); /* 0.8 -> 1, raised to 4 */
    cr_assert_eq(s_count(&rec, 0, A_TASK, NULL), 4);
    fl_round_destroy(&r);

    struct s_rec rec2 = {0};
    rules.clients_per_round = 10;
    rules.min_clients = 1;
    r = s_started(&rec2, &rules, 5);
    cr_assert_eq(s_count(&rec2, 0, A_TASK, NULL), 5);
    fl_round_destroy(&r);
}

Test(fl_round, selection_is_the_same_for_the_same_seed_and_round_whatever_the_hello_order)
{
    struct fl_round_rules rules = s_rules();
    rules.clients_per_round = 3;
    rules.rounds = 100;
    struct s_rec a = {0}, b = {0};
    fl_round_t *ra = fl_round_new(&rules, 0, 10, &s_ops, &a);
    fl_round_t *rb = fl_round_new(&rules, 0, 10, &s_ops, &b);
    for (int i = 0; i < 10; i++) {
        s_hello(ra, i, true, 0);
        s_hello(rb, 9 - i, true, 0); /* a restarted coordinator hears them in another order */
    }
    fl_round_tick(ra, 0);
    fl_round_tick(rb, 0);
    unsigned first = s_selected(&a, 0);
    cr_assert_eq(first, s_selected(&b, 0));
    cr_assert_eq(__builtin_popcount(first), 3);
    fl_round_destroy(&ra);
    fl_round_destroy(&rb);

    /* Another seed, or another round, chooses otherwise (for some of a few tries). */
    int differ_seed = 0, differ_round = 0;
    for (uint64_t s = 1; s <= 8; s++) {
        struct s_rec c = {0};
        rules.seed = 42 + s;
        fl_round_t *rc = s_started(&c, &rules, 10);
        differ_seed += s_selected(&c, 0) != first;
        fl_round_destroy(&rc);
        struct s_rec d = {0};
        rules.seed = 42;
        fl_round_t *rd = fl_round_new(&rules, (uint32_t)s, 10, &s_ops, &d); /* round s + 1 */
        for (int i = 0; i < 10; i++)
            s_hello(rd, i, true, 0);
        fl_round_tick(rd, 0);
        cr_assert_eq(s_last(&d, A_TASK)->round, s + 1);
        differ_round += s_selected(&d, 0) != first;
        fl_round_destroy(&rd);
    }
    cr_assert_gt(differ_seed, 0);
    cr_assert_gt(differ_round, 0);
}

Test(fl_round, only_branches_holding_the_base_and_heard_from_lately_are_selected)
{
    struct s_rec rec = {0};
    struct fl_round_rules rules = s_rules();
    rules.min_start = 2;
    fl_round_t *r = fl_round_new(&rules, 0, 4, &s_ops, &rec);
    s_hello(r, 0, true, 0);   /* silent since 0 */
    s_hello(r, 1, false, 0);  /* lacks the base, but is heard from */
    s_hello(r, 2, true, 250); /* fresh */
    s_hello(r, 3, true, 250);
    fl_round_heard(r, s_key(1), FL_SIGN_PK_BYTES, 350);
    /* At 350 ms, branch 0 was last heard 350 ms ago: more than 3 heartbeats. */
    cr_assert_eq(fl_round_tick(r, 350), 0);
    cr_assert_eq(s_selected(&rec, 0), (1u << 2) | (1u << 3));
    cr_assert_eq(s_last(&rec, A_BEGIN)->info.eligible, 2);
    fl_round_destroy(&r);
}

/* ---- start ---- */

Test(fl_round, a_round_waits_for_min_start_branches_holding_the_base)
{
    struct s_rec rec = {0};
    struct fl_round_rules rules = s_rules();
    rules.min_start = 2;
    fl_round_t *r = fl_round_new(&rules, 0, 5, &s_ops, &rec);
    s_hello(r, 0, true, 0);
    s_hello(r, 1, false, 0);
    fl_round_tick(r, 10);
    cr_assert_eq(fl_round_phase(r), FL_ROUND_WAITING);
    cr_assert_eq(s_count(&rec, 0, A_BEGIN, NULL), 0);
    s_hello(r, 1, true, 20); /* it downloaded the base */
    fl_round_tick(r, 20);
    cr_assert_eq(fl_round_phase(r), FL_ROUND_RUNNING);
    cr_assert_eq(s_selected(&rec, 0), 3u);
    fl_round_destroy(&r);
}

Test(fl_round, start_grace_waits_for_the_other_enrolled_branches)
{
    struct s_rec rec = {0};
    struct fl_round_rules rules = s_rules();
    rules.start_grace_s = 2;
    fl_round_t *r = fl_round_new(&rules, 0, 3, &s_ops, &rec);
    s_hello(r, 0, true, 0);
    fl_round_tick(r, 0); /* min_start (1) is ready: the grace starts */
    s_hello(r, 1, true, 100);
    for (int64_t t = 100; t < 2000; t += 100) {
        fl_round_heard(r, s_key(0), FL_SIGN_PK_BYTES, t);
        fl_round_heard(r, s_key(1), FL_SIGN_PK_BYTES, t);
        fl_round_tick(r, t);
        cr_assert_eq(fl_round_phase(r), FL_ROUND_WAITING, "at %lld ms", (long long)t);
    }
    fl_round_tick(r, 2000); /* the grace is over: start with whoever is there */
    cr_assert_eq(fl_round_phase(r), FL_ROUND_RUNNING);
    cr_assert_eq(s_selected(&rec, 0), 3u);
    fl_round_destroy(&r);
}

Test(fl_round, start_grace_ends_as_soon_as_every_enrolled_branch_is_ready)
{
    struct s_rec rec = {0};
    struct fl_round_rules rules = s_rules();
    rules.start_grace_s = 60;
    fl_round_t *r = fl_round_new(&rules, 0, 2, &s_ops, &rec);
    s_hello(r, 0, true, 0);
    fl_round_tick(r, 0);
    cr_assert_eq(fl_round_phase(r), FL_ROUND_WAITING);
    s_hello(r, 1, true, 50);
    fl_round_tick(r, 50);
    cr_assert_eq(fl_round_phase(r), FL_ROUND_RUNNING);
    fl_round_destroy(&r);
}

Test(fl_round, start_grace_starts_again_when_too_few_stay_ready)
{
    struct s_rec rec = {0};
    struct fl_round_rules rules = s_rules();
    rules.start_grace_s = 1;
    fl_round_t *r = fl_round_new(&rules, 0, 3, &s_ops, &rec);
    s_hello(r, 0, true, 0);
    fl_round_tick(r, 0);
    fl_round_tick(r, 400); /* silent for 4 heartbeats: not selectable, the grace is reset */
    s_hello(r, 0, true, 600);
    fl_round_tick(r, 600);
    fl_round_heard(r, s_key(0), FL_SIGN_PK_BYTES, 1500);
    fl_round_tick(r, 1500);
    cr_assert_eq(fl_round_phase(r), FL_ROUND_WAITING, "the grace counts from 600 ms");
    fl_round_tick(r, 1600);
    cr_assert_eq(fl_round_phase(r), FL_ROUND_RUNNING);
    fl_round_destroy(&r);
}

Test(fl_round, a_failed_begin_leaves_the_federation_waiting_and_the_next_tick_tries_again)
{
    struct s_rec rec = {0};
    rec.begin_rc = FL_ENOMEM;
    struct fl_round_rules rules = s_rules();
    fl_round_t *r = s_started(&rec, &rules, 2);
    cr_assert_eq(fl_round_phase(r), FL_ROUND_WAITING);
    cr_assert_eq(s_count(&rec, 0, A_TASK, NULL), 0);
    rec.begin_rc = 0;
    cr_assert_eq(fl_round_tick(r, 10), 0);
    cr_assert_eq(fl_round_phase(r), FL_ROUND_RUNNING);
    cr_assert_eq(s_count(&rec, 0, A_TASK, NULL), 2);
    fl_round_destroy(&r);
}

/* ---- deadline, aggregation, retries ---- */

Test(fl_round, a_round_ends_and_commits_when_every_selected_branch_answered)
{
    struct s_rec rec = {0};
    struct fl_round_rules rules = s_rules();
    fl_round_t *r = s_started(&rec, &rules, 2);
    s_answer(r, 0, 1);
    fl_round_tick(r, 100);
    cr_assert_eq(fl_round_phase(r), FL_ROUND_RUNNING, "one answer of two");
    s_answer(r, 1, 1);
    cr_assert_eq(fl_round_tick(r, 200), 0);
    const struct s_act *c = s_last(&rec, A_COMMIT);
    cr_assert_not_null(c);
    cr_assert_eq(c->info.round, 1);
    cr_assert_eq(c->info.accepted, 2);
    cr_assert_eq(c->info.selected, 2);
    cr_assert_eq(c->info.retry, 0);
    cr_assert_eq(fl_round_completed(r), 1);
    cr_assert_eq(fl_round_phase(r), FL_ROUND_WAITING);
    /* The next tick starts round 2. */
    int from = rec.n;
    fl_round_tick(r, 200);
    cr_assert_eq(s_count(&rec, from, A_TASK, NULL), 2);
    cr_assert_eq(s_last(&rec, A_TASK)->round, 2);
    fl_round_destroy(&r);
}

/* A spent privacy budget: stop during a round changes nothing; between rounds the next tick
 * ends the federation with the rounds done (final adapters to every branch holding the base),
 * not the rounds planned. */
Test(fl_round, stop_ends_the_federation_after_the_rounds_done)
{
    struct s_rec rec = {0};
    struct fl_round_rules rules = s_rules();
    fl_round_t *r = s_started(&rec, &rules, 2);
    fl_round_stop(r);
    cr_assert_eq(fl_round_phase(r), FL_ROUND_RUNNING, "the open round is not cut short");
    s_answer(r, 0, 1);
    s_answer(r, 1, 1);
    cr_assert_eq(fl_round_tick(r, 100), 0);
    cr_assert_eq(fl_round_completed(r), 1);
    int from = rec.n;
    fl_round_stop(r);
    cr_assert_eq(fl_round_tick(r, 200), 0);
    cr_assert_eq(fl_round_phase(r), FL_ROUND_DONE);
    cr_assert_eq(s_count(&rec, from, A_BEGIN, NULL), 0, "round 2 of 3 never begins");
    cr_assert_eq(s_last(&rec, A_DONE)->round, 1);
    cr_assert_eq(s_count(&rec, from, A_FINAL, NULL), 2);
    fl_round_destroy(&r);
}

Test(fl_round, a_round_ends_at_its_deadline_with_the_updates_it_has)
{
    struct s_rec rec = {0};
    struct fl_round_rules rules = s_rules();
    fl_round_t *r = s_started(&rec, &rules, 3);
    s_answer(r, 1, 1);
    for (int64_t t = 0; t < 10000; t += 50) {
        fl_round_heard(r, s_key(1), FL_SIGN_PK_BYTES, t);
        cr_assert_eq(fl_round_tick(r, t), 0);
    }
    cr_assert_eq(fl_round_phase(r), FL_ROUND_RUNNING);
    cr_assert_eq(s_count(&rec, 0, A_COMMIT, NULL), 0);
    cr_assert_eq(fl_round_tick(r, 10000), 0);
    cr_assert_eq(s_count(&rec, 0, A_COMMIT, NULL), 1);
    cr_assert_eq(s_last(&rec, A_COMMIT)->info.accepted, 1);
    cr_assert_eq(s_last(&rec, A_COMMIT)->info.selected, 3);
    fl_round_destroy(&r);
}

Test(fl_round, a_round_short_of_min_clients_is_retried_then_the_federation_gives_up)
{
    struct s_rec rec = {0};
    struct fl_round_rules rules = s_rules();
    rules.min_clients = 2;
    rules.round_retries = 2;
    fl_round_t *r = s_started(&rec, &rules, 2);
    int64_t t = 0;
    for (int attempt = 0; attempt <= 2; attempt++) {
        s_answer(r, 0, 1); /* one of the two */
        t += 10000;
        s_hello(r, 0, true, t);
        s_hello(r, 1, true, t);
        int rc = fl_round_tick(r, t); /* deadline */
        const struct s_act *s = s_last(&rec, A_SHORT);
        cr_assert_not_null(s);
        cr_assert_eq(s->info.round, 1);
        cr_assert_eq(s->info.retry, attempt);
        cr_assert_eq(s->info.accepted, 1);
        if (attempt < 2) {
            cr_assert_eq(rc, 0);
            int from = rec.n;
            fl_round_tick(r, t); /* the retry: round 1 again, selected afresh */
            cr_assert_eq(s_count(&rec, from, A_TASK, NULL), 2);
            cr_assert_eq(s_last(&rec, A_TASK)->round, 1);
            cr_assert_eq(s_last(&rec, A_BEGIN)->info.retry, attempt + 1);
        } else {
            cr_assert_eq(rc, FL_ERANGE, "the third short attempt is one retry too many");
            cr_assert(strstr(fl_error_msg(), "after 2 retries"), "%s", fl_error_msg());
        }
    }
    cr_assert_eq(s_count(&rec, 0, A_COMMIT, NULL), 0);
    cr_assert_eq(fl_round_completed(r), 0);
    fl_round_destroy(&r);
}

Test(fl_round, a_round_that_aggregates_resets_the_retry_count)
{
    struct s_rec rec = {0};
    struct fl_round_rules rules = s_rules();
    rules.round_retries = 1;
    fl_round_t *r = s_started(&rec, &rules, 1);
    s_hello(r, 0, true, 10000);
    cr_assert_eq(fl_round_tick(r, 10000), 0); /* short: no update */
    fl_round_tick(r, 10000);                  /* retry 1 */
    s_answer(r, 0, 1);
    fl_round_tick(r, 10001);
    cr_assert_eq(s_last(&rec, A_COMMIT)->info.retry, 1);
    fl_round_tick(r, 10001); /* round 2 */
    s_hello(r, 0, true, 20001);
    cr_assert_eq(fl_round_tick(r, 20001), 0, "round 2 may fall short once again");
    cr_assert_eq(s_last(&rec, A_SHORT)->info.round, 2);
    fl_round_destroy(&r);
}

Test(fl_round, a_failed_commit_stops_the_federation_without_completing_the_round)
{
    struct s_rec rec = {0};
    rec.commit_rc = FL_EIO;
    struct fl_round_rules rules = s_rules();
    fl_round_t *r = s_started(&rec, &rules, 1);
    s_answer(r, 0, 1);
    cr_assert_eq(fl_round_tick(r, 5), FL_EIO);
    cr_assert_eq(fl_round_completed(r), 0);
    fl_round_destroy(&r);
}

Test(fl_round, a_retry_forgets_the_earlier_attempts_selection)
{
    struct s_rec rec = {0};
    struct fl_round_rules rules = s_rules();
    rules.clients_per_round = 1;
    rules.min_start = 4;
    rules.round_retries = 5;
    fl_round_t *r = s_started(&rec, &rules, 4);
    int first = s_last(&rec, A_TASK)->branch;
    /* Retry until another branch is chosen; the first one's update is then refused. */
    int64_t t = 0;
    int other = first;
    for (int i = 0; i < 5 && other == first; i++) {
        t += 10000;
        for (int b = 0; b < 4; b++)
            s_hello(r, b, true, t);
        fl_round_tick(r, t);
        fl_round_tick(r, t);
        other = s_last(&rec, A_TASK)->branch;
    }
    cr_assert_neq(other, first);
    cr_assert_eq(fl_round_admit(r, s_key(first), FL_SIGN_PK_BYTES, true, true, 1),
                 FL_REJECT_NOT_SELECTED);
    fl_round_destroy(&r);
}

/* ---- admission ---- */

Test(fl_round, updates_for_a_round_that_is_over_are_stale)
{
    struct s_rec rec = {0};
    struct fl_round_rules rules = s_rules();
    fl_round_t *r = s_started(&rec, &rules, 2);
    s_answer(r, 0, 1);
    s_answer(r, 1, 1);
    fl_round_tick(r, 10);
    /* Between rounds, round 1 and even round 2 (not open yet) are stale. */
    cr_assert_eq(fl_round_admit(r, s_key(0), FL_SIGN_PK_BYTES, true, true, 1), FL_REJECT_STALE);
    cr_assert_eq(fl_round_admit(r, s_key(0), FL_SIGN_PK_BYTES, true, true, 2), FL_REJECT_STALE);
    fl_round_tick(r, 10); /* round 2 */
    cr_assert_eq(fl_round_admit(r, s_key(1), FL_SIGN_PK_BYTES, true, true, 1), FL_REJECT_STALE);
    const struct s_act *a = s_last(&rec, A_REJECTED);
    cr_assert_eq(a->branch, 1);
    cr_assert_eq(a->round, 1);
    cr_assert_str_eq(a->text, "stale round: that round is over");
    cr_assert_eq(s_count(&rec, 0, A_REJECTED, NULL), 3);
    fl_round_destroy(&r);
}

Test(fl_round, updates_for_a_future_round_are_rejected)
{
    struct s_rec rec = {0};
    struct fl_round_rules rules = s_rules();
    fl_round_t *r = s_started(&rec, &rules, 1);
    cr_assert_eq(fl_round_admit(r, s_key(0), FL_SIGN_PK_BYTES, true, true, 2), FL_REJECT_FUTURE);
    cr_assert_str_eq(s_last(&rec, A_REJECTED)->text, "future round");
    /* It has not answered: its real update is still welcome. */
    s_answer(r, 0, 1);
    fl_round_destroy(&r);
}

Test(fl_round, a_second_update_from_a_branch_in_one_round_is_a_duplicate)
{
    struct s_rec rec = {0};
    struct fl_round_rules rules = s_rules();
    fl_round_t *r = s_started(&rec, &rules, 2);
    s_answer(r, 0, 1);
    cr_assert_eq(fl_round_admit(r, s_key(0), FL_SIGN_PK_BYTES, true, true, 1), FL_REJECT_DUPLICATE);
    /* An update that opened but was unusable is the branch's answer too. */
    cr_assert_eq(fl_round_admit(r, s_key(1), FL_SIGN_PK_BYTES, true, true, 1), FL_REJECT_NONE);
    fl_round_answered(r, s_key(1));
    fl_round_reject(r, s_key(1), FL_SIGN_PK_BYTES, 1, FL_REJECT_MISMATCH, "tensor 0 is wrong");
    cr_assert_eq(fl_round_admit(r, s_key(1), FL_SIGN_PK_BYTES, true, true, 1), FL_REJECT_DUPLICATE);
    fl_round_tick(r, 1);
    cr_assert_eq(s_last(&rec, A_COMMIT)->info.accepted, 1);
    fl_round_destroy(&r);
}

Test(fl_round, a_branch_that_was_not_selected_is_rejected)
{
    struct s_rec rec = {0};
    struct fl_round_rules rules = s_rules();
    rules.clients_per_round = 1;
    fl_round_t *r = s_started(&rec, &rules, 2);
    int chosen = s_last(&rec, A_TASK)->branch, other = 1 - chosen;
    cr_assert_eq(fl_round_admit(r, s_key(other), FL_SIGN_PK_BYTES, true, true, 1),
                 FL_REJECT_NOT_SELECTED);
    /* A branch that registered after the round started was not selected either. */
    s_hello(r, 5, true, 1);
    cr_assert_eq(fl_round_admit(r, s_key(5), FL_SIGN_PK_BYTES, true, true, 1),
                 FL_REJECT_NOT_SELECTED);
    cr_assert_str_eq(s_last(&rec, A_REJECTED)->text, "branch was not selected for this round");
    fl_round_destroy(&r);
}

Test(fl_round, unknown_forgotten_and_mismatched_senders_are_told_apart)
{
    struct s_rec rec = {0};
    struct fl_round_rules rules = s_rules();
    fl_round_t *r = s_started(&rec, &rules, 1);
    /* Enrolled but not registered (forgotten after falling silent). */
    cr_assert_eq(fl_round_admit(r, s_key(7), FL_SIGN_PK_BYTES, true, true, 1),
                 FL_REJECT_UNREGISTERED);
    cr_assert(strstr(s_last(&rec, A_REJECTED)->text, "say hello again"));
    /* ...with an update for a round that is over: just stale. */
    cr_assert_eq(fl_round_admit(r, s_key(7), FL_SIGN_PK_BYTES, true, true, 0), FL_REJECT_STALE);
    /* Not enrolled; a registered branch naming another key; a routing id that is no key. */
    cr_assert_eq(fl_round_admit(r, s_key(8), FL_SIGN_PK_BYTES, true, false, 1),
                 FL_REJECT_UNKNOWN_KEY);
    cr_assert_eq(fl_round_admit(r, s_key(0), FL_SIGN_PK_BYTES, false, true, 1),
                 FL_REJECT_UNKNOWN_KEY);
    cr_assert_eq(fl_round_admit(r, (const uint8_t *)"short", 5, false, false, 1),
                 FL_REJECT_UNKNOWN_KEY);
    const struct s_act *a = s_last(&rec, A_REJECTED);
    cr_assert_eq(a->branch, -1);
    cr_assert_str_eq(a->text, "unknown, revoked or mismatched branch key");
    fl_round_destroy(&r);
}

Test(fl_round, no_more_updates_are_accepted_than_branches_were_selected)
{
    struct s_rec rec = {0};
    struct fl_round_rules rules = s_rules();
    fl_round_t *r = s_started(&rec, &rules, 2);
    s_answer(r, 0, 1);
    fl_round_revoke(r, s_key(1)); /* the round now waits for one update, and has it */
    cr_assert_eq(fl_round_accept(r, s_key(0), FL_SIGN_PK_BYTES, 1), FL_REJECT_TOO_MANY);
    cr_assert_str_eq(s_last(&rec, A_REJECTED)->text, "more updates than branches selected");
    fl_round_tick(r, 1);
    cr_assert_eq(s_last(&rec, A_COMMIT)->info.selected, 1);
    fl_round_destroy(&r);
}

Test(fl_round, rejection_reasons_are_worded_with_their_detail)
{
    char text[200];
    fl_round_reject_text(FL_REJECT_DECRYPT, NULL, text, sizeof text);
    cr_assert_str_eq(text, "cannot decrypt");
    fl_round_reject_text(FL_REJECT_SIGNATURE, "", text, sizeof text);
    cr_assert_str_eq(text, "bad signature");
    fl_round_reject_text(FL_REJECT_WRONG_BASE, NULL, text, sizeof text);
    cr_assert_str_eq(text, "wrong base hash");
    fl_round_reject_text(FL_REJECT_MALFORMED, "truncated", text, sizeof text);
    cr_assert_str_eq(text, "malformed update body: truncated");
    fl_round_reject_text(FL_REJECT_BAD_ADAPTER, "bad magic", text, sizeof text);
    cr_assert_str_eq(text, "bad adapter: bad magic");
    fl_round_reject_text(FL_REJECT_AGGREGATION, "weight 0", text, sizeof text);
    cr_assert_str_eq(text, "aggregation refused it: weight 0");
    fl_round_reject_text(FL_REJECT_MISMATCH, "tensor fc1.a holds NaN or Inf", text, sizeof text);
    cr_assert_str_eq(text, "tensor fc1.a holds NaN or Inf");
    /* Through the callback, with the sender's key id and the round in progress. */
    struct s_rec rec = {0};
    struct fl_round_rules rules = s_rules();
    fl_round_t *r = s_started(&rec, &rules, 1);
    fl_round_reject(r, s_key(0), FL_SIGN_PK_BYTES, 1, FL_REJECT_SIGNATURE, NULL);
    const struct s_act *a = s_last(&rec, A_REJECTED);
    cr_assert_eq(a->why, FL_REJECT_SIGNATURE);
    cr_assert_str_eq(a->text, "bad signature");
    cr_assert_eq(a->branch, 0);
    fl_round_destroy(&r);
}

/* ---- branches coming and going ---- */

Test(fl_round, a_hello_registers_once_and_is_welcomed_every_time)
{
    struct s_rec rec = {0};
    struct fl_round_rules rules = s_rules();
    rules.min_start = 9;
    fl_round_t *r = fl_round_new(&rules, 0, 9, &s_ops, &rec);
    s_hello(r, 0, false, 0);
    s_hello(r, 0, false, 10); /* again, no change: welcomed, not registered again */
    s_hello(r, 0, true, 20);  /* now with the base: registered (changed) */
    cr_assert_eq(s_count(&rec, 0, A_REGISTERED, NULL), 2);
    cr_assert_eq(s_count(&rec, 0, A_WELCOME, NULL), 3);
    cr_assert_eq(fl_round_nbranches(r), 1);
    const struct fl_round_branch *b = fl_round_find(r, s_key(0), FL_SIGN_PK_BYTES);
    cr_assert_not_null(b);
    cr_assert_str_eq(b->name, "b0");
    cr_assert(b->has_base);
    cr_assert_eq(b->last_seen, 20);
    cr_assert_eq(b->samples, 100);
    cr_assert_null(fl_round_find(r, s_key(1), FL_SIGN_PK_BYTES));
    fl_round_destroy(&r);
}

Test(fl_round, a_branch_that_says_hello_mid_round_gets_its_task_again_after_the_welcome)
{
    struct s_rec rec = {0};
    struct fl_round_rules rules = s_rules();
    fl_round_t *r = s_started(&rec, &rules, 2);
    int from = rec.n;
    s_hello(r, 0, true, 3000);
    cr_assert_eq(rec.n - from, 2);
    cr_assert_eq(rec.acts[from].kind, A_WELCOME);
    cr_assert_eq(rec.acts[from + 1].kind, A_TASK);
    cr_assert_eq(rec.acts[from + 1].deadline_ms, 7000, "what is left of the round");
    /* Once it answered, a Hello is only welcomed. */
    s_answer(r, 0, 1);
    from = rec.n;
    s_hello(r, 0, true, 3100);
    cr_assert_eq(s_count(&rec, from, A_TASK, NULL), 0);
    fl_round_destroy(&r);
}

Test(fl_round, silent_branches_are_forgotten_after_five_heartbeats_unless_busy)
{
    struct s_rec rec = {0};
    struct fl_round_rules rules = s_rules();
    rules.min_start = 3;
    fl_round_t *r = fl_round_new(&rules, 0, 3, &s_ops, &rec);
    s_hello(r, 0, true, 0);
    s_hello(r, 1, true, 0);
    fl_round_tick(r, 500); /* silent exactly 5 heartbeats: kept */
    cr_assert_eq(fl_round_nbranches(r), 2);
    fl_round_heard(r, s_key(1), FL_SIGN_PK_BYTES, 400);
    fl_round_tick(r, 501);
    cr_assert_eq(fl_round_nbranches(r), 1);
    cr_assert_eq(s_last(&rec, A_LOST)->branch, 0);
    /* A branch training for the open round is kept until the deadline. */
    s_hello(r, 0, true, 600);
    s_hello(r, 2, true, 600);
    fl_round_tick(r, 600);
    cr_assert_eq(fl_round_phase(r), FL_ROUND_RUNNING);
    for (int64_t t = 600; t < 10600; t += 1000)
        fl_round_tick(r, t);
    cr_assert_eq(fl_round_nbranches(r), 3);
    cr_assert(fl_round_busy(r, fl_round_branch_at(r, 0)));
    cr_assert_eq(fl_round_tick(r, 10600), 0); /* the deadline: forgotten, the round ends */
    cr_assert_eq(fl_round_nbranches(r), 0);
    cr_assert_eq(s_count(&rec, 0, A_LOST, NULL), 4);
    cr_assert_eq(s_count(&rec, 0, A_SHORT, NULL), 1);
    fl_round_destroy(&r);
}

Test(fl_round, bye_forgets_an_idle_branch_but_not_one_holding_a_task)
{
    struct s_rec rec = {0};
    struct fl_round_rules rules = s_rules();
    rules.clients_per_round = 1;
    fl_round_t *r = s_started(&rec, &rules, 2);
    int chosen = s_last(&rec, A_TASK)->branch;
    cr_assert_not(fl_round_bye(r, s_key(chosen)));
    cr_assert(fl_round_bye(r, s_key(1 - chosen)));
    cr_assert_eq(fl_round_nbranches(r), 1);
    cr_assert_not(fl_round_heard(r, s_key(1 - chosen), FL_SIGN_PK_BYTES, 5));
    fl_round_destroy(&r);
}

Test(fl_round, a_revoked_branch_is_forgotten_and_the_round_stops_waiting_for_it)
{
    struct s_rec rec = {0};
    struct fl_round_rules rules = s_rules();
    fl_round_t *r = s_started(&rec, &rules, 2);
    s_answer(r, 0, 1);
    fl_round_revoke(r, s_key(1));
    cr_assert_eq(fl_round_nbranches(r), 1);
    cr_assert_eq(fl_round_tick(r, 10), 0); /* every remaining selected branch answered */
    cr_assert_eq(s_last(&rec, A_COMMIT)->info.selected, 1);
    cr_assert_eq(fl_round_admit(r, s_key(1), FL_SIGN_PK_BYTES, true, false, 2),
                 FL_REJECT_UNKNOWN_KEY);
    fl_round_destroy(&r);
}

/* ---- the end ---- */

Test(fl_round, after_the_last_round_every_branch_with_the_base_gets_the_final_adapter)
{
    struct s_rec rec = {0};
    struct fl_round_rules rules = s_rules();
    rules.rounds = 2;
    fl_round_t *r = s_started(&rec, &rules, 2);
    s_hello(r, 2, false, 0); /* still downloading the base */
    for (uint32_t round = 1; round <= 2; round++) {
        s_answer(r, 0, round);
        s_answer(r, 1, round);
        fl_round_tick(r, round);
        fl_round_tick(r, round);
    }
    cr_assert_eq(fl_round_phase(r), FL_ROUND_DONE);
    cr_assert_eq(s_last(&rec, A_DONE)->round, 2);
    int who[8];
    cr_assert_eq(s_count(&rec, 0, A_FINAL, who), 2);
    cr_assert(fl_round_branch_at(r, 0)->final_sent);
    /* The late branch gets it once it holds the base; a later round never starts. */
    s_hello(r, 2, true, 5);
    cr_assert_eq(s_last(&rec, A_FINAL)->branch, 2);
    cr_assert_eq(fl_round_tick(r, 6), 0);
    cr_assert_eq(s_count(&rec, 0, A_BEGIN, NULL), 2);
    cr_assert_eq(fl_round_admit(r, s_key(0), FL_SIGN_PK_BYTES, true, true, 3), FL_REJECT_STALE);
    fl_round_destroy(&r);
}

Test(fl_round, a_coordinator_that_completed_every_round_is_done_at_once)
{
    struct s_rec rec = {0};
    struct fl_round_rules rules = s_rules();
    fl_round_t *r = fl_round_new(&rules, 3, 1, &s_ops, &rec);
    cr_assert_eq(fl_round_completed(r), 3);
    fl_round_tick(r, 0);
    cr_assert_eq(fl_round_phase(r), FL_ROUND_DONE);
    cr_assert_str_eq(fl_round_phase_name(fl_round_phase(r)), "done");
    s_hello(r, 0, true, 1);
    cr_assert_eq(s_count(&rec, 0, A_FINAL, NULL), 1);
    fl_round_destroy(&r);
}
