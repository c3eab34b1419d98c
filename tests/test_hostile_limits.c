/* Hostile peers against a real fedtl-coordinator process: frames built to cost the
 * coordinator memory and time, and branches that say Hello over and over to be sent the base
 * again. Honest branches must keep being served, and what the coordinator spends must stay
 * bounded. */
#include "fl_hostile.h"

#define S_BOMB_BYTES (46u << 20) /* under the frame limit: the transport lets it through */

/* Send one frame and wait until the coordinator has logged refusing it. */
static void s_bomb(struct s_branch *evil, struct s_fed *f, int body, int *refused)
{
    size_t len;
    uint8_t *buf = fl_test_bomb_frame(body, S_BOMB_BYTES, &len);
    cr_assert_not_null(buf);
    s_send_raw(evil, buf, len);
    free(buf);
    ++*refused;
    for (int i = 0; i < 3000 && fl_test_count(f->path[F_LOG], "message_rejected") < *refused; i++)
        usleep(20000);
    cr_assert_eq(fl_test_count(f->path[F_LOG], "message_rejected"), *refused,
                 "bomb frame (body %d) not refused", body);
}

Test(fedtl_hostile_limits, bomb_frames_are_refused_without_the_memory_to_parse_them, .timeout = 240)
{
#ifdef __SANITIZE_ADDRESS__
    /* AddressSanitizer keeps freed memory in quarantine (256 MiB): measure what is held. */
    char opts[1024];
    const char *was = getenv("ASAN_OPTIONS");
    snprintf(opts, sizeof opts, "%s%squarantine_size_mb=4", was ? was : "", was ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
#endif
    struct s_fed f;
    /* --insecure: any host, with no key, can send these. */
    s_fed_setup(&f, "--rounds 1 --min-start 1 --insecure");
    struct s_branch b1, evil;
    s_branch_open_plain(&b1, &f, "b1");
    s_hello(&b1, &f);
    struct fl_adapter_file task;
    uint32_t round = s_task(&b1, &task);
    long before = s_coord_hwm_kb(&f);
    s_branch_open_plain(&evil, &f, "evil");
    /* Unknown fields only (no body), a Hello of 46 MiB, an update's body of unknown fields,
     * twice over. */
    const int bodies[] = {0, FEDTL__ENVELOPE__BODY_HELLO, FEDTL__ENVELOPE__BODY_UPDATE};
    int refused = 0;
    for (int rep = 0; rep < 2; rep++)
        for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
            s_bomb(&evil, &f, bodies[i], &refused);
    long after = s_coord_hwm_kb(&f);
    /* Parsing one such frame took protobuf-c over a gigabyte. Reading it takes its size. */
    cr_assert_lt(after - before, 160 << 10, "peak RSS grew by %ld KiB (from %ld KiB)",
                 after - before, before);
    cr_assert_eq(fl_test_count(f.path[F_LOG], "more than 64 fields"), 4);
    cr_assert_gt(fl_test_count(f.path[F_LOG], "its limit is"), 0);
    /* And the honest branch is served: its update is taken, the federation finishes. */
    s_send_update(&b1, &f, NULL, &task, round, 0.25f, 100, S_GOOD, NULL, NULL);
    s_expect_receipt(&b1, true, NULL);
    Fedtl__Envelope *fin = s_expect(&b1, FEDTL__ENVELOPE__BODY_FINAL, 30);
    cr_assert_not_null(fin, "no final model");
    fl_wire_free(&fin);
    fl_adapter_close(&task);
    s_branch_close(&evil);
    s_branch_close(&b1);
    s_fed_teardown(&f);
}

Test(fedtl_hostile_limits, hellos_and_reconnects_do_not_buy_more_of_the_base_than_its_budget,
     .timeout = 120)
{
    struct s_fed f;
    s_fed_setup(&f, "--rounds 1 --min-start 2 --chunk-size 4096");
    size_t base = f.base.map_len;
    struct s_branch b1;
    s_branch_open(&b1, &f, "b1");
    /* The whole base from 0 after every Hello, and now and then from a new connection. */
    size_t got = 0;
    for (int i = 0; i < 12; i++) {
        if (i % 4 == 3) {
            s_branch_close(&b1);
            s_branch_open(&b1, &f, "b1");
        }
        s_hello(&b1, &f);
        got += s_base_fetch(&b1, &f, 0, 16, 0.5);
        if (i == 0)
            cr_assert_eq(got, base < 16 * 4096 ? base : 16 * 4096, "the first request is served");
    }
    /* Twice the base per 10 minutes (a download and one lost), plus what refills while the
     * test runs: 1/4 of the base would take over 30 s. Without the budget: 12 bases. */
    cr_assert_leq(got, 2 * base + base / 4, "%zu bytes of a %zu-byte base sent to one key", got,
                  base);
    /* Another branch has a budget of its own. */
    struct s_branch b2;
    s_branch_open(&b2, &f, "b2");
    s_hello(&b2, &f);
    cr_assert_eq(s_base_fetch(&b2, &f, 0, 16, 0.5), base < 16 * 4096 ? base : 16 * 4096);
    s_branch_close(&b2);
    s_branch_close(&b1);
    s_fed_teardown(&f);
}
