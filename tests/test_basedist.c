/* The base distribution's flow control without sockets: requests at fake times, and a
 * recording send callback standing in for the ROUTER. */
#include <criterion/criterion.h>

#include "fl_basedist.h"
#include "fl_error.h"

#include <string.h>

#define S_SIZE  10000 /* bytes of the fake base */
#define S_CHUNK 100   /* bytes per chunk */

/* What was sent. */
struct s_sent {
    uint64_t offset[64]; /* each chunk's offset */
    size_t len[64];      /* and length */
    int n;               /* chunks sent */
    int refuse_after;    /* the queue is full after this many (-1: never) */
};

static int s_send(void *arg, const uint8_t key[FL_SIGN_PK_BYTES], uint64_t offset,
                  const uint8_t *data, size_t len)
{
    struct s_sent *s = arg;
    if (s->refuse_after >= 0 && s->n >= s->refuse_after)
        return FL_EIO;
    cr_assert_lt(s->n, 64);
    cr_assert_eq(data[0], (uint8_t)(offset % 251), "the chunk's bytes are the base's");
    s->offset[s->n] = offset;
    s->len[s->n++] = len;
    return 0;
}

static uint8_t s_base[S_SIZE];
static const uint8_t s_key_a[FL_SIGN_PK_BYTES] = {1};
static const uint8_t s_key_b[FL_SIGN_PK_BYTES] = {2};

static fl_basedist_t *s_new(void)
{
    for (size_t i = 0; i < S_SIZE; i++)
        s_base[i] = (uint8_t)(i % 251);
    fl_basedist_t *d = fl_basedist_new(s_base, S_SIZE, S_CHUNK, 200); /* stall: 1 s */
    cr_assert_not_null(d);
    return d;
}

static int s_request(fl_basedist_t *d, const uint8_t *key, uint64_t offset, uint32_t credit,
                     int64_t now, struct s_sent *s)
{
    memset(s, 0, sizeof *s);
    s->refuse_after = -1;
    return fl_basedist_request(d, key, offset, credit, now, s_send, s);
}

Test(fl_basedist, a_request_gets_its_credit_in_chunks_at_most_16)
{
    fl_basedist_t *d = s_new();
    struct s_sent s;
    cr_assert_eq(s_request(d, s_key_a, 0, 8, 0, &s), 0);
    cr_assert_eq(s.n, 8);
    cr_assert_eq(s.offset[7], 700);
    cr_assert_eq(s_request(d, s_key_a, 800, 64, 0, &s), 0);
    cr_assert_eq(s.n, 16, "credit is capped at 16 chunks");
    cr_assert_eq(s.offset[0], 800);
    fl_basedist_destroy(&d);
    cr_assert_null(d);
    fl_basedist_destroy(&d);
}

Test(fl_basedist, the_last_chunk_holds_the_rest_and_offsets_beyond_the_base_are_refused)
{
    fl_basedist_t *d = s_new();
    struct s_sent s;
    cr_assert_eq(s_request(d, s_key_a, 9950, 4, 0, &s), 0);
    cr_assert_eq(s.n, 1);
    cr_assert_eq(s.len[0], 50);
    cr_assert_eq(s_request(d, s_key_a, S_SIZE, 4, 0, &s), FL_ERANGE);
    cr_assert_eq(s.n, 0);
    fl_basedist_destroy(&d);
}

Test(fl_basedist, going_back_is_served_once_per_stall_period)
{
    fl_basedist_t *d = s_new();
    struct s_sent s;
    s_request(d, s_key_a, 0, 4, 0, &s); /* 0..399 sent */
    cr_assert_eq(s_request(d, s_key_a, 100, 4, 10, &s), 0);
    cr_assert_eq(s.n, 4, "the first rewind (a lost chunk) is served");
    cr_assert_eq(s_request(d, s_key_a, 100, 4, 500, &s), 0);
    cr_assert_eq(s.n, 0, "a second within the stall period is not");
    cr_assert_eq(s_request(d, s_key_a, 500, 4, 600, &s), 0);
    cr_assert_eq(s.n, 4, "continuing is always served");
    cr_assert_eq(s_request(d, s_key_a, 0, 4, 1010, &s), 0);
    cr_assert_eq(s.n, 4, "after the stall period, one more rewind");
    /* Another branch's download is its own. */
    cr_assert_eq(s_request(d, s_key_b, 0, 2, 1020, &s), 0);
    cr_assert_eq(s.n, 2);
    fl_basedist_destroy(&d);
}

Test(fl_basedist, a_hello_restarts_the_download_and_a_forgotten_branch_starts_afresh)
{
    fl_basedist_t *d = s_new();
    struct s_sent s;
    s_request(d, s_key_a, 0, 4, 0, &s);
    s_request(d, s_key_a, 0, 4, 10, &s); /* its rewind */
    fl_basedist_restart(d, s_key_a);
    cr_assert_eq(s_request(d, s_key_a, 0, 4, 20, &s), 0);
    cr_assert_eq(s.n, 4, "from 0 again after a Hello");
    cr_assert_eq(s_request(d, s_key_a, 0, 4, 30, &s), 0);
    cr_assert_eq(s.n, 0, "a Hello does not buy another rewind");
    fl_basedist_forget(d, s_key_a);
    s_request(d, s_key_a, 0, 4, 40, &s);
    cr_assert_eq(s_request(d, s_key_a, 0, 4, 50, &s), 0);
    cr_assert_eq(s.n, 4, "a branch registered anew may go back once");
    fl_basedist_destroy(&d);
}

Test(fl_basedist, a_full_queue_stops_the_request_where_it_is)
{
    fl_basedist_t *d = s_new();
    struct s_sent s = {.refuse_after = 3};
    cr_assert_eq(fl_basedist_request(d, s_key_a, 0, 8, 0, s_send, &s), 0);
    cr_assert_eq(s.n, 3);
    struct s_sent next;
    cr_assert_eq(s_request(d, s_key_a, 300, 8, 0, &next), 0);
    cr_assert_eq(next.n, 8, "the branch continues after the last chunk that left");
    fl_basedist_destroy(&d);
}

Test(fl_basedist, a_keys_budget_holds_across_hellos_and_reconnects_and_refills_with_time)
{
    fl_basedist_t *d = s_new();
    struct s_sent s;
    /* A Hello (or a reconnect) and a request from 0, over and over: at most twice the base
     * per window, however many sessions. */
    size_t sent = 0;
    for (int i = 0; i < 100; i++) {
        if (i % 2)
            fl_basedist_restart(d, s_key_a);
        else
            fl_basedist_forget(d, s_key_a);
        cr_assert_eq(s_request(d, s_key_a, 0, 16, i, &s), 0);
        for (int j = 0; j < s.n; j++)
            sent += s.len[j];
    }
    cr_assert_leq(sent, FL_BASEDIST_BUDGET_FACTOR * S_SIZE);
    cr_assert_geq(sent, FL_BASEDIST_BUDGET_FACTOR * S_SIZE, "an honest download fits");
    cr_assert_gt(fl_basedist_refused(d), 0);
    /* Another key has a budget of its own. */
    cr_assert_eq(s_request(d, s_key_b, 0, 16, 100, &s), 0);
    cr_assert_eq(s.n, 16);
    /* Half a window later, half the budget is back; a whole window, all of it. */
    fl_basedist_restart(d, s_key_a);
    cr_assert_eq(s_request(d, s_key_a, 0, 16, 100 + FL_BASEDIST_WINDOW_MS / 2, &s), 0);
    cr_assert_eq(s.n, 16);
    sent = 0;
    for (int i = 0; i < 20; i++) {
        fl_basedist_restart(d, s_key_a);
        cr_assert_eq(s_request(d, s_key_a, 0, 16, 200 + FL_BASEDIST_WINDOW_MS / 2, &s), 0);
        for (int j = 0; j < s.n; j++)
            sent += s.len[j];
    }
    cr_assert_leq(sent + 16 * S_CHUNK, S_SIZE + S_CHUNK, "refilled in proportion");
    fl_basedist_destroy(&d);
}
