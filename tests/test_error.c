/* fl_error: error names and messages, and log values made safe from what peers and users
 * write. */
#include <criterion/criterion.h>

#include "fl_error.h"

#include <string.h>

Test(fl_error, fail_sets_the_message_and_returns_the_code)
{
    cr_assert_eq(fl_fail(FL_EFORMAT, "line %d: bad", 7), FL_EFORMAT);
    cr_assert_str_eq(fl_error_msg(), "line 7: bad");
    cr_assert_str_eq(fl_strerror(FL_ECRYPTO), "verification failed");
    cr_assert_str_eq(fl_strerror(-999), "unknown error");
}

Test(fl_error, log_str_leaves_plain_words_bare)
{
    char out[64];
    cr_assert_str_eq(fl_log_str("branch-01", out, sizeof out), "branch-01");
    cr_assert_str_eq(fl_log_str("Zürich東京", out, sizeof out), "Zürich東京");
    cr_assert_str_eq(fl_log_str("", out, sizeof out), "\"\"");
    cr_assert_str_eq(fl_log_str(NULL, out, sizeof out), "\"\"");
}

Test(fl_error, log_str_quotes_and_escapes_what_would_break_a_log_line)
{
    char out[128];
    cr_assert_str_eq(fl_log_str("two words", out, sizeof out), "\"two words\"");
    cr_assert_str_eq(fl_log_str("a=b", out, sizeof out), "\"a=b\"");
    cr_assert_str_eq(fl_log_str("fed \"q\" \\ back\nslash — Zürich 東京", out, sizeof out),
                     "\"fed \\\"q\\\" \\\\ back\\nslash — Zürich 東京\"");
    cr_assert_str_eq(fl_log_str("tab\there\r\x01\x7f", out, sizeof out),
                     "\"tab\\there\\r\\x01\\x7f\"");
    /* Bytes that are not UTF-8: a stray continuation, an overlong '/', a surrogate. */
    cr_assert_str_eq(fl_log_str("a\x80z\xc0\xaf\xed\xa0\x80", out, sizeof out),
                     "\"a\\x80z\\xc0\\xaf\\xed\\xa0\\x80\"");
    /* A character cut short by the end of the string. */
    cr_assert_str_eq(fl_log_str("ok\xe6\x9d", out, sizeof out), "\"ok\\xe6\\x9d\"");
}

Test(fl_error, log_str_cuts_between_characters_and_keeps_the_quotes)
{
    char out[8];
    cr_assert_str_eq(fl_log_str("abcdefghij", out, sizeof out), "\"abcde\"");
    cr_assert_str_eq(fl_log_str("a\"bcdefgh", out, sizeof out), "\"a\\\"bc\"");
    cr_assert_str_eq(fl_log_str("東京大阪", out, sizeof out), "\"東\"");
    cr_assert_str_eq(fl_log_str("a\nb", out, 4), "\"a\"");
    cr_assert_str_eq(fl_log_str("anything", out, 3), "\"\"");
    cr_assert_str_eq(fl_log_str("anything", out, 2), "");
}

/* A message that wraps the previous one (the usual "PATH: %s", fl_error_msg()) keeps all of
 * it: the new text is formatted aside, never over what it reads. */
Test(fl_error, a_message_may_wrap_the_previous_one)
{
    fl_fail(FL_EINVAL, "strategy: server-lr-decay %g is outside (0, 1]", 1.5);
    cr_assert_eq(fl_fail(FL_EINVAL, "strategy %s: %s", "trimmed-mean", fl_error_msg()), FL_EINVAL);
    cr_assert_str_eq(fl_error_msg(),
                     "strategy trimmed-mean: strategy: server-lr-decay 1.5 is outside (0, 1]");
    fl_error_set("%s, %s", fl_error_msg(), "again");
    cr_assert_str_eq(
        fl_error_msg(),
        "strategy trimmed-mean: strategy: server-lr-decay 1.5 is outside (0, 1], again");
}
