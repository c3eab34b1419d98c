/* fedtl-coordinator as a real process against an enrolled branch that sends well-formed,
 * signed updates with hostile contents: a sample count that would make its update the whole
 * global adapter, finite but huge values, metrics no training run produces, and a tensor name
 * that would forge a log line. Each is bounded or rejected with a reason, by default, and the
 * honest branch is still served. */
#include "fl_hostile.h"

#include <float.h>
#include <stdint.h>

/* Every value of an adapter is `want` (within tol). */
static void s_expect_values(const struct fl_adapter_file *a, float want, float tol)
{
    for (size_t i = 0; i < a->ntensors; i++)
        for (size_t j = 0; j < fl_tensor_numel(&a->tensors[i]); j++)
            cr_assert_float_eq(a->tensors[i].data[j], want, tol, "%s[%zu] = %g, expected %g",
                               a->tensors[i].name, j, a->tensors[i].data[j], want);
}

/* The largest magnitude in an adapter. */
static float s_max_abs(const struct fl_adapter_file *a)
{
    float m = 0;
    for (size_t i = 0; i < a->ntensors; i++)
        for (size_t j = 0; j < fl_tensor_numel(&a->tensors[i]); j++)
            m = fmaxf(m, fabsf(a->tensors[i].data[j]));
    return m;
}

/* The participant of a ledger line called `branch`. */
static const cJSON *s_participant(const cJSON *line, const char *branch)
{
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(line, "participants"))
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(p, "branch");
        if (cJSON_IsString(name) && strcmp(name->valuestring, branch) == 0)
            return p;
    }
    return NULL;
}

static double s_num(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    cr_assert(cJSON_IsNumber(v), "no number %s", key);
    return v->valuedouble;
}

/* Every line of the coordinator's log is one event. */
static void s_expect_one_event_per_line(const char *log_path)
{
    char *log = fl_test_slurp(log_path);
    cr_assert_not_null(log);
    for (char *save = NULL, *l = strtok_r(log, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
        cr_assert(strncmp(l, "ts=", 3) == 0 && strncmp(l, "ts=2026-01-01T00:00:00Z", 23) != 0,
                  "a log line forged or broken by a peer's string: %s", l);
    free(log);
}

#define S_FED_ARGS                                                                                 \
    "--rounds 2 --clients-per-round 2 --min-start 2 --min-clients 1 --deadline 30 "                \
    "--round-retries 5 --exit-when-done"

Test(fedtl_hostile_updates, a_huge_sample_count_is_cut_to_a_bounded_weight_and_logged,
     .timeout = 120)
{
    struct s_fed f;
    s_fed_setup(&f, S_FED_ARGS);
    struct s_branch b1, b2;
    s_branch_open(&b1, &f, "b1");
    s_branch_open(&b2, &f, "b2");
    /* b1 declares 2^64-1 records in its Hello too: only the round's median bounds it. */
    s_hello_samples(&b1, &f, UINT64_MAX);
    s_hello_samples(&b2, &f, 100);
    struct fl_adapter_file t1, t2;
    cr_assert_eq(s_task(&b1, &t1), 1);
    cr_assert_eq(s_task(&b2, &t2), 1);
    s_send_update(&b1, &f, NULL, &t1, 1, 1.0f, UINT64_MAX, S_GOOD, NULL, NULL);
    s_expect_receipt(&b1, true, NULL);
    s_send_update(&b2, &f, NULL, &t2, 1, 3.0f, 100, S_GOOD, NULL, NULL);
    s_expect_receipt(&b2, true, NULL);
    fl_adapter_close(&t1);
    fl_adapter_close(&t2);
    /* Round 1's global: b1 weighs 10 x the median declared count (100), not 2^64-1:
     * (1000 * 1 + 100 * 3) / 1100; the whole of b1's update would be 1.0. */
    cr_assert_eq(s_task(&b1, &t1), 2);
    cr_assert_eq(s_task(&b2, &t2), 2);
    s_expect_values(&t1, (1000 * 1.0f + 100 * 3.0f) / 1100, 1e-5f);
    fl_adapter_close(&t1);
    /* Round 2: a claim of 2^40 beyond its Hello's 100 records is cut to them. */
    s_hello_samples(&b1, &f, 100);
    cr_assert_eq(s_task(&b1, &t1), 2); /* the Hello gives it its task again */
    s_send_update(&b1, &f, NULL, &t1, 2, 1.0f, 1ull << 40, S_GOOD, NULL, NULL);
    s_expect_receipt(&b1, true, NULL);
    s_send_update(&b2, &f, NULL, &t2, 2, 3.0f, 100, S_GOOD, NULL, NULL);
    s_expect_receipt(&b2, true, NULL);
    fl_adapter_close(&t1);
    fl_adapter_close(&t2);
    Fedtl__Envelope *fin = s_expect(&b2, FEDTL__ENVELOPE__BODY_FINAL, 10);
    cr_assert_not_null(fin, "no final adapter");
    struct fl_adapter_file final;
    cr_assert_eq(
        fl_adapter_unpack(fin->final->adapter.data, fin->final->adapter.len, "final", &final), 0);
    fl_wire_free(&fin);
    s_expect_values(&final, 2.0f, 1e-5f); /* (100 * 1 + 100 * 3) / 200 */
    fl_adapter_close(&final);
    cr_assert_eq(fl_test_wait(f.coord, 20), 0, "coordinator did not exit cleanly");
    f.coord = 0;

    /* The log says whose claim was cut, from what to what; the ledger keeps both. */
    cr_assert_eq(fl_test_count(f.path[F_LOG], "event=update_weight_capped"), 2);
    cr_assert_eq(fl_test_count(f.path[F_LOG], "branch=b1 round=1 claimed=18446744073709551615 "
                                              "used=1000 "),
                 1);
    cr_assert_eq(fl_test_count(f.path[F_LOG], "branch=b1 round=2 claimed=1099511627776 used=100 "),
                 1);
    cJSON *ledger = fl_test_jsonl(f.path[F_LEDGER]);
    cr_assert_not_null(ledger);
    const cJSON *line;
    cr_assert_eq(fl_test_ledger_lines(ledger, 1, 1, &line), 1);
    const cJSON *p = s_participant(line, "b1");
    cr_assert_not_null(p);
    cr_assert_eq(s_num(p, "weight"), 1000);
    cr_assert_eq(s_num(line, "samples"), 1100, "the line sums the weights used");
    cJSON_Delete(ledger);
    cr_assert_eq(fl_test_count(f.path[F_LEDGER], "\"samples\":18446744073709551615,"), 1,
                 "the claim is recorded as it came");
    s_branch_close(&b1);
    s_branch_close(&b2);
    s_fed_teardown(&f);
}

Test(fedtl_hostile_updates, an_update_far_from_the_global_adapter_is_rejected_by_default,
     .timeout = 120)
{
    struct s_fed f;
    s_fed_setup(&f, S_FED_ARGS); /* no bound configured: the default applies */
    struct s_branch b1, b2;
    s_branch_open(&b1, &f, "b1");
    s_branch_open(&b2, &f, "b2");
    s_hello(&b1, &f);
    s_hello(&b2, &f);
    struct fl_adapter_file t1, t2;
    cr_assert_eq(s_task(&b1, &t1), 1);
    cr_assert_eq(s_task(&b2, &t2), 1);
    /* Finite, and 1e30 in every value: once averaged, every branch's model is ruined. */
    s_send_update(&b1, &f, NULL, &t1, 1, 1e30f, 100, S_GOOD, NULL, NULL);
    s_expect_receipt(&b1, false, "too far from the global adapter");
    /* An honest step: the global adapter plus 0.01 in every value. */
    s_send_update(&b2, &f, NULL, &t2, 1, 0.01f, 100, S_DELTA, NULL, NULL);
    s_expect_receipt(&b2, true, NULL);
    fl_adapter_close(&t1);
    fl_adapter_close(&t2);
    cr_assert_eq(s_task(&b1, &t1), 2);
    cr_assert_eq(s_task(&b2, &t2), 2);
    cr_assert_lt(s_max_abs(&t1), 100.0f, "the huge update reached the global adapter");
    /* Round 2: FLT_MAX in every value is turned away as well. */
    s_send_update(&b1, &f, NULL, &t1, 2, FLT_MAX, 100, S_DELTA, NULL, NULL);
    s_expect_receipt(&b1, false, "exceeds max_update_norm");
    s_send_update(&b2, &f, NULL, &t2, 2, 0.01f, 100, S_DELTA, NULL, NULL);
    s_expect_receipt(&b2, true, NULL);
    fl_adapter_close(&t1);
    fl_adapter_close(&t2);
    Fedtl__Envelope *fin = s_expect(&b2, FEDTL__ENVELOPE__BODY_FINAL, 10);
    cr_assert_not_null(fin, "no final adapter");
    fl_wire_free(&fin);
    cr_assert_eq(fl_test_wait(f.coord, 20), 0, "coordinator did not exit cleanly");
    f.coord = 0;
    cJSON *ledger = fl_test_jsonl(f.path[F_LEDGER]);
    cr_assert_not_null(ledger);
    const cJSON *line;
    cr_assert_eq(fl_test_ledger_lines(ledger, 1, 1, &line), 1);
    cr_assert_eq(s_rejections(line, "exceeds max_update_norm"), 1);
    const cJSON *p = s_participant(line, "b2");
    cr_assert_not_null(p);
    cr_assert_lt(s_num(p, "distance"), 1.0, "an honest step's distance is recorded");
    cr_assert_eq(fl_test_ledger_lines(ledger, 2, 1, &line), 1);
    cr_assert_eq(s_rejections(line, "exceeds max_update_norm"), 1);
    cJSON_Delete(ledger);
    cr_assert_eq(fl_test_count(f.path[F_LOG], "event=update_rejected"), 2);
    s_branch_close(&b1);
    s_branch_close(&b2);
    s_fed_teardown(&f);
}

/* Send an update reporting rep and expect it rejected for `reason`. */
static void s_send_bad_report(struct s_branch *b, struct s_fed *f, const struct fl_adapter_file *t,
                              uint32_t round, const struct s_report *rep, const char *reason)
{
    s_send_report(b, f, NULL, t, round, 0.5f, rep, S_GOOD, NULL, NULL);
    s_expect_receipt(b, false, reason);
}

Test(fedtl_hostile_updates, implausible_metrics_are_rejected_with_a_reason, .timeout = 120)
{
    struct s_fed f;
    s_fed_setup(&f, S_FED_ARGS);
    struct s_branch b1, b2;
    s_branch_open(&b1, &f, "b1");
    s_branch_open(&b2, &f, "b2");
    s_hello(&b1, &f);
    s_hello(&b2, &f);
    const struct s_report good = {.samples = 50,
                                  .train_loss = 0.4f,
                                  .eval_loss = 0.5f,
                                  .eval_accuracy = 0.8f,
                                  .eval_samples = 12};
    struct s_report acc = good, tloss = good, eloss = good, evals = good;
    acc.eval_accuracy = 7.0f;
    tloss.train_loss = -1e30f;
    eloss.eval_loss = -0.5f;
    evals.eval_samples = 51;
    struct fl_adapter_file t1, t2;
    cr_assert_eq(s_task(&b1, &t1), 1);
    cr_assert_eq(s_task(&b2, &t2), 1);
    s_send_bad_report(&b1, &f, &t1, 1, &acc, "eval_accuracy 7 is outside [0, 1]");
    s_send_bad_report(&b2, &f, &t2, 1, &tloss, "train_loss -1e+30 is not a loss");
    fl_adapter_close(&t1);
    fl_adapter_close(&t2);
    /* Round 1 fell short (both rejected) and is tried again. */
    cr_assert_eq(s_task(&b1, &t1), 1);
    cr_assert_eq(s_task(&b2, &t2), 1);
    s_send_bad_report(&b1, &f, &t1, 1, &eloss, "eval_loss -0.5 is not a loss");
    s_send_bad_report(&b2, &f, &t2, 1, &evals, "eval_samples 51 exceeds the 50 training records");
    fl_adapter_close(&t1);
    fl_adapter_close(&t2);
    /* Then honest reports are taken, and the federation ends. */
    for (uint32_t r = 1; r <= 2; r++) {
        cr_assert_eq(s_task(&b1, &t1), r);
        cr_assert_eq(s_task(&b2, &t2), r);
        s_send_report(&b1, &f, NULL, &t1, r, 0.5f, &good, S_GOOD, NULL, NULL);
        s_expect_receipt(&b1, true, NULL);
        s_send_report(&b2, &f, NULL, &t2, r, 0.5f, &good, S_GOOD, NULL, NULL);
        s_expect_receipt(&b2, true, NULL);
        fl_adapter_close(&t1);
        fl_adapter_close(&t2);
    }
    Fedtl__Envelope *fin = s_expect(&b1, FEDTL__ENVELOPE__BODY_FINAL, 10);
    cr_assert_not_null(fin, "no final adapter");
    fl_wire_free(&fin);
    cr_assert_eq(fl_test_wait(f.coord, 20), 0, "coordinator did not exit cleanly");
    f.coord = 0;

    /* The ledger: the two short attempts with the four reasons, and only plausible metrics. */
    cJSON *ledger = fl_test_jsonl(f.path[F_LEDGER]);
    cr_assert_not_null(ledger);
    cr_assert_eq(fl_test_ledger_lines(ledger, 1, 0, NULL), 2);
    cr_assert_eq(fl_test_ledger_lines(ledger, -1, 1, NULL), 2);
    int reasons = 0;
    const cJSON *line;
    cJSON_ArrayForEach(line, ledger)
    {
        reasons += s_rejections(line, "implausible metrics: ");
        double a = s_num(line, "fed_eval_accuracy"), l = s_num(line, "train_loss");
        cr_assert(a >= 0 && a <= 1 && l >= 0, "ledger took accuracy %g, loss %g", a, l);
    }
    cr_assert_eq(reasons, 4);
    cJSON_Delete(ledger);
    cr_assert_eq(fl_test_count(f.path[F_LOG], "reason=\"implausible metrics: "), 4);
    s_branch_close(&b1);
    s_branch_close(&b2);
    s_fed_teardown(&f);
}

Test(fedtl_hostile_updates, a_tensor_name_cannot_forge_a_line_of_the_coordinator_log,
     .timeout = 120)
{
    struct s_fed f;
    s_fed_setup(&f, "--rounds 1 --clients-per-round 2 --min-start 2 --min-clients 1 "
                    "--deadline 30 --exit-when-done");
    struct s_branch b1, b2;
    s_branch_open(&b1, &f, "b1");
    s_branch_open(&b2, &f, "b2");
    s_hello(&b1, &f);
    s_hello(&b2, &f);
    struct fl_adapter_file t1, t2;
    cr_assert_eq(s_task(&b1, &t1), 1);
    cr_assert_eq(s_task(&b2, &t2), 1);
    s_send_update(&b1, &f, NULL, &t1, 1, 0.5f, 10, S_NAME, NULL, NULL);
    s_expect_receipt(&b1, false, S_FORGED_NAME); /* the receipt and ledger keep it as it is */
    s_send_update(&b2, &f, NULL, &t2, 1, 0.5f, 10, S_GOOD, NULL, NULL);
    s_expect_receipt(&b2, true, NULL);
    fl_adapter_close(&t1);
    fl_adapter_close(&t2);
    Fedtl__Envelope *fin = s_expect(&b2, FEDTL__ENVELOPE__BODY_FINAL, 10);
    cr_assert_not_null(fin, "no final adapter");
    fl_wire_free(&fin);
    cr_assert_eq(fl_test_wait(f.coord, 20), 0, "coordinator did not exit cleanly");
    f.coord = 0;
    s_expect_one_event_per_line(f.path[F_LOG]);
    cr_assert_eq(fl_test_count(f.path[F_LOG], "event=forged"), 1); /* inside the quoted reason */
    cr_assert_eq(fl_test_count(f.path[F_LOG], "reason=\"tensor 0 is x\\nts=2026-01-01T00:00:00Z"),
                 1);
    cJSON *ledger = fl_test_jsonl(f.path[F_LEDGER]);
    cr_assert_not_null(ledger);
    const cJSON *line;
    cr_assert_eq(fl_test_ledger_lines(ledger, 1, 1, &line), 1);
    cr_assert_eq(s_rejections(line, S_FORGED_NAME), 1);
    cJSON_Delete(ledger);
    s_branch_close(&b1);
    s_branch_close(&b2);
    s_fed_teardown(&f);
}
