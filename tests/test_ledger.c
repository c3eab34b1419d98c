/* The coordinator's state.json, rounds.jsonl and status reply, written through cJSON and read
 * back with it: every string escaped, every line one object, 64-bit counts exact. */
#include <criterion/criterion.h>

#include "fl_error.h"
#include "fl_ledger.h"
#include "fl_round.h"
#include "fl_status.h"
#include "fl_testutil.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char s_name[] = "fed \"q\" \\ back\nslash — Zürich 東京";

static double s_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsNumber(v), "no number %s", key);
    return v->valuedouble;
}

static const char *s_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsString(v), "no string %s", key);
    return v->valuestring;
}

Test(fl_ledger, a_round_line_is_one_json_object_with_every_string_escaped)
{
    char *dir = fl_test_tmpdir("ledger");
    fl_ledger_t *l = fl_ledger_new(dir, s_name);
    cr_assert_not_null(l);
    fl_ledger_begin(l);
    struct fl_ledger_update a = {.branch = "b\"1",
                                 .samples = (1ull << 60) + 1,
                                 .weight = 1000000,
                                 .train_loss = 0.123456f,
                                 .eval_accuracy = 0.5f,
                                 .eval_loss = NAN,
                                 .eval_samples = 10};
    cr_assert_eq(fl_ledger_accept(l, &a), 0);
    fl_ledger_reject(l, "0a1b2c3d4e5f", "tensor \"x\ny\" holds NaN or Inf");
    fl_ledger_traffic(l, 1000, 20);
    struct fl_ledger_round r = {.round = 4,
                                .aggregated = true,
                                .retry = 1,
                                .selected = 2,
                                .has_server_eval = true,
                                .server_accuracy = 0.9876543,
                                .server_loss = 0.5,
                                .duration_s = 1.23456};
    fl_ledger_write(l, &r);

    char path[1024];
    snprintf(path, sizeof path, "%s/rounds.jsonl", dir);
    cJSON *lines = fl_test_jsonl(path);
    cr_assert_not_null(lines);
    cr_assert_eq(cJSON_GetArraySize(lines), 1);
    const cJSON *line = cJSON_GetArrayItem(lines, 0);
    cr_assert_eq(s_num(line, "round"), 4);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(line, "aggregated")));
    cr_assert_eq(s_num(line, "retry"), 1);
    const cJSON *p = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(line, "participants"), 0);
    cr_assert_str_eq(s_str(p, "branch"), "b\"1");
    cr_assert_float_eq(s_num(p, "train_loss"), 0.12346, 1e-12, "cut to 5 decimals");
    const cJSON *rj = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(line, "rejected"), 0);
    cr_assert_str_eq(s_str(rj, "reason"), "tensor \"x\ny\" holds NaN or Inf");
    cr_assert_eq(s_num(line, "rejected_total"), 1);
    cr_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(line, "fed_eval_loss")),
              "a peer's NaN is written as null");
    cr_assert_float_eq(s_num(line, "server_eval_accuracy"), 0.98765, 1e-12);
    cr_assert_float_eq(s_num(line, "duration_s"), 1.235, 1e-12);
    cr_assert_eq(s_num(line, "bytes_in"), 1000);
    cr_assert_str_eq(s_str(line, "federation"), s_name);
    /* The sample count is written as its exact digits, beyond a double's 2^53. */
    char *text = fl_test_slurp(path);
    cr_assert_not_null(strstr(text, "\"samples\":1152921504606846977,"), "%s", text);
    free(text);
    /* The line is kept for the status reply. */
    cr_assert_eq(s_num(fl_ledger_last(l), "round"), 4);
    cJSON_Delete(lines);
    fl_ledger_destroy(&l);
    fl_ledger_destroy(&l);
    fl_test_rmtree(dir);
    free(dir);
}

Test(fl_ledger, state_json_names_the_round_the_federation_and_the_exact_seed)
{
    char *dir = fl_test_tmpdir("ledger");
    fl_ledger_t *l = fl_ledger_new(dir, s_name);
    uint8_t hash[FL_HASH_BYTES];
    memset(hash, 0xab, sizeof hash);
    struct fl_ledger_state st = {
        .round = 7, .rounds = 10, .strategy = "fedavg", .seed = UINT64_MAX, .base_hash = hash};
    fl_ledger_save_state(l, &st);
    char path[1024];
    snprintf(path, sizeof path, "%s/state.json", dir);
    cJSON *s = fl_test_json(path);
    cr_assert(cJSON_IsObject(s));
    cr_assert_eq(s_num(s, "round"), 7);
    cr_assert_eq(s_num(s, "rounds"), 10);
    cr_assert_str_eq(s_str(s, "federation"), s_name);
    cr_assert_str_eq(s_str(s, "strategy"), "fedavg");
    cr_assert_eq(strlen(s_str(s, "base")), 64);
    char *text = fl_test_slurp(path);
    cr_assert_not_null(strstr(text, "\"seed\":18446744073709551615,"), "%s", text);
    cr_assert_eq(text[strlen(text) - 1], '\n');
    free(text);
    cJSON_Delete(s);
    fl_ledger_destroy(&l);
    fl_test_rmtree(dir);
    free(dir);
}

Test(fl_ledger, mending_drops_a_partial_line_and_recovers_saved_rounds)
{
    char *dir = fl_test_tmpdir("ledger");
    char path[1024], tmp[1024];
    snprintf(path, sizeof path, "%s/rounds.jsonl", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"round\":1,\"aggregated\":true}\n{\"round\":2,\"aggregated\":false}\n"
          "{\"round\":2,\"aggreg",
          f);
    fclose(f);
    snprintf(tmp, sizeof tmp, "%s/state.json.tmp.XyZ123", dir);
    f = fopen(tmp, "w");
    fclose(f);
    fl_ledger_t *l = fl_ledger_new(dir, s_name);
    fl_ledger_sweep(l);
    cr_assert_neq(access(tmp, F_OK), 0, "temporary file left");
    fl_ledger_mend(l, 3); /* the state holds round 3: rounds 2 and 3 lack their lines */
    cJSON *lines = fl_test_jsonl(path);
    cr_assert_not_null(lines, "a line is not JSON");
    cr_assert_eq(cJSON_GetArraySize(lines), 4);
    const cJSON *last;
    cr_assert_eq(fl_test_ledger_lines(lines, 2, 1, &last), 1);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(last, "recovered")));
    cr_assert_str_eq(s_str(last, "federation"), s_name);
    cr_assert_eq(fl_test_ledger_lines(lines, 3, 1, NULL), 1);
    cJSON_Delete(lines);
    /* Mending again finds nothing to do. */
    fl_ledger_mend(l, 3);
    lines = fl_test_jsonl(path);
    cr_assert_eq(cJSON_GetArraySize(lines), 4);
    cJSON_Delete(lines);
    fl_ledger_destroy(&l);
    fl_test_rmtree(dir);
    free(dir);
}

Test(fl_status, the_status_names_the_federation_its_branches_and_the_last_line)
{
    struct fl_round_rules rules = {.rounds = 2,
                                   .fraction = 1,
                                   .min_clients = 1,
                                   .min_start = 5,
                                   .deadline_s = 10,
                                   .heartbeat_ms = 100};
    fl_round_t *r = fl_round_new(&rules, 1, 5, NULL, NULL);
    uint8_t key[FL_SIGN_PK_BYTES] = {7};
    cr_assert_eq(fl_round_hello(r, key, "br\"anch", UINT64_MAX, true, 1000), 0);
    char *text = fl_status_json(r, s_name, "fedadam rule=median", 2, NULL, 1250);
    cJSON *s = cJSON_Parse(text);
    cr_assert(cJSON_IsObject(s), "%s", text);
    cr_assert_str_eq(s_str(s, "federation"), s_name);
    cr_assert_str_eq(s_str(s, "strategy"), "fedadam rule=median");
    cr_assert_str_eq(s_str(s, "phase"), "waiting");
    cr_assert_eq(s_num(s, "round"), 1);
    const cJSON *b = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(s, "branches"), 0);
    cr_assert_str_eq(s_str(b, "name"), "br\"anch");
    cr_assert_eq(s_num(b, "idle_ms"), 250);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(b, "has_base")));
    cr_assert(strstr(text, "\"samples\":18446744073709551615"), "%s", text);
    cr_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(s, "last")));
    cJSON_Delete(s);
    cJSON_free(text);

    cJSON *last = cJSON_Parse("{\"round\":1,\"aggregated\":true,\"note\":\"a \\\"b\\\"\"}");
    text = fl_status_json(r, s_name, NULL, 2, last, 1250);
    s = cJSON_Parse(text);
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(s, "last");
    cr_assert_eq(s_num(l, "round"), 1, "%s", text);
    cr_assert_str_eq(s_str(l, "note"), "a \"b\"");
    cJSON_Delete(s);
    cJSON_free(text);
    cJSON_Delete(last); /* the reply only referred to it */
    fl_round_destroy(&r);
}
