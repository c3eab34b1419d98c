/* fl_session: which connection is which branch, as a core without I/O: a connection counts as
 * a branch's only once it proved the key, the newest proof wins, and pending connections are
 * bounded. */
#include "fl_error.h"
#include "fl_session.h"

#include <criterion/criterion.h>
#include <string.h>

static const uint8_t s_route_a[5] = {0, 0, 0, 0, 1}; /* ROUTER-assigned routing ids */
static const uint8_t s_route_b[5] = {0, 0, 0, 0, 2};
static const uint8_t s_nonce[FL_HELLO_NONCE_BYTES] = {42};

static void s_key(uint8_t key[FL_SIGN_PK_BYTES], uint8_t v)
{
    memset(key, v, FL_SIGN_PK_BYTES);
}

Test(fl_session, a_connection_is_a_branch_only_once_it_proved_the_key)
{
    fl_session_t *s = fl_session_new();
    cr_assert_not_null(s);
    uint8_t k1[FL_SIGN_PK_BYTES];
    s_key(k1, 1);
    size_t len = 0;
    cr_assert_null(fl_session_nonce(s, s_route_a, 5));
    cr_assert_eq(fl_session_bind(s, s_route_a, 5, k1), FL_ENOTFOUND, "never challenged");
    cr_assert_eq(fl_session_challenge(s, s_route_a, 5, s_nonce, 0), 0);
    cr_assert_eq(memcmp(fl_session_nonce(s, s_route_a, 5), s_nonce, sizeof s_nonce), 0);
    cr_assert_null(fl_session_key(s, s_route_a, 5), "challenged is not proven");
    cr_assert_null(fl_session_route(s, k1, &len));
    cr_assert_eq(fl_session_bind(s, s_route_a, 5, k1), 0);
    cr_assert_eq(memcmp(fl_session_key(s, s_route_a, 5), k1, sizeof k1), 0);
    const uint8_t *route = fl_session_route(s, k1, &len);
    cr_assert_not_null(route);
    cr_assert_eq(len, 5);
    cr_assert_eq(memcmp(route, s_route_a, 5), 0);
    fl_session_destroy(&s);
    fl_session_destroy(&s);
    cr_assert_null(s);
}

Test(fl_session, the_newest_proof_of_a_key_takes_its_place)
{
    fl_session_t *s = fl_session_new();
    uint8_t k1[FL_SIGN_PK_BYTES];
    s_key(k1, 1);
    size_t len = 0;
    fl_session_challenge(s, s_route_a, 5, s_nonce, 0);
    fl_session_bind(s, s_route_a, 5, k1);
    /* The branch reconnects: its new connection proves the key, the old one is forgotten. */
    fl_session_challenge(s, s_route_b, 5, s_nonce, 1);
    cr_assert_eq(memcmp(fl_session_route(s, k1, &len), s_route_a, 5), 0,
                 "a challenge alone takes nothing over");
    fl_session_bind(s, s_route_b, 5, k1);
    cr_assert_eq(memcmp(fl_session_route(s, k1, &len), s_route_b, 5), 0);
    cr_assert_null(fl_session_key(s, s_route_a, 5));
    cr_assert_eq(fl_session_size(s), 1);
    fl_session_destroy(&s);
}

Test(fl_session, a_bye_or_a_lost_branch_ends_its_connection_only)
{
    fl_session_t *s = fl_session_new();
    uint8_t k1[FL_SIGN_PK_BYTES], k2[FL_SIGN_PK_BYTES];
    s_key(k1, 1);
    s_key(k2, 2);
    size_t len = 0;
    fl_session_challenge(s, s_route_a, 5, s_nonce, 0);
    fl_session_bind(s, s_route_a, 5, k1);
    fl_session_challenge(s, s_route_b, 5, s_nonce, 0);
    fl_session_bind(s, s_route_b, 5, k2);
    fl_session_drop(s, s_route_b, 5);
    cr_assert_null(fl_session_route(s, k2, &len));
    cr_assert_not_null(fl_session_route(s, k1, &len));
    fl_session_forget(s, k1);
    cr_assert_null(fl_session_key(s, s_route_a, 5));
    cr_assert_eq(fl_session_size(s), 0);
    fl_session_destroy(&s);
}

Test(fl_session, pending_connections_are_bounded_and_proven_ones_kept)
{
    fl_session_t *s = fl_session_new();
    uint8_t k1[FL_SIGN_PK_BYTES];
    s_key(k1, 1);
    fl_session_challenge(s, s_route_a, 5, s_nonce, 0);
    fl_session_bind(s, s_route_a, 5, k1);
    for (uint32_t i = 0; i < 3 * FL_SESSION_PENDING; i++) {
        uint8_t route[8] = {1};
        memcpy(route + 1, &i, sizeof i);
        cr_assert_eq(fl_session_challenge(s, route, sizeof route, s_nonce, 1 + (int64_t)i), 0);
    }
    cr_assert_eq(fl_session_size(s), FL_SESSION_PENDING + 1);
    cr_assert_not_null(fl_session_key(s, s_route_a, 5), "a proven connection stays");
    uint8_t oldest[8] = {1}, newest[8] = {1};
    uint32_t last = 3 * FL_SESSION_PENDING - 1;
    memcpy(newest + 1, &last, sizeof last);
    cr_assert_null(fl_session_nonce(s, oldest, sizeof oldest), "the oldest pending went");
    cr_assert_not_null(fl_session_nonce(s, newest, sizeof newest));
    cr_assert_eq(fl_session_challenge(s, s_route_a, 0, s_nonce, 0), FL_EINVAL);
    fl_session_destroy(&s);
}
