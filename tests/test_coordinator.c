/* fedtl-coordinator as a real process, driven by in-test branches speaking the protocol over
 * real CurveZMQ sockets with real keys: every kind of bad update is rejected with a reason and
 * never reaches the aggregate, the coordinator keeps serving, and the global adapter is the
 * sample-weighted mean of what the branches sent. */
#include "fl_hostile.h"

Test(fedtl_coordinator, rejects_every_bad_update_and_averages_the_good_ones, .timeout = 120)
{
    struct s_fed f;
    /* Constant adapters of 4.0 lie about 120 from the initial global adapter, beyond the
     * default bound on an update's distance (test_hostile_updates tests that bound). */
    s_fed_setup(&f, "--rounds 3 --clients-per-round 2 --min-start 2 --min-clients 1 "
                    "--deadline 30 --round-retries 5 --exit-when-done --max-update-norm 1000");
    struct s_branch b1, b2;
    s_branch_open(&b1, &f, "b1");
    s_branch_open(&b2, &f, "b2");
    s_hello(&b1, &f);
    s_hello(&b2, &f);
    struct fl_adapter_file t1, t2;
    uint32_t r = s_task(&b1, &t1);
    cr_assert_eq(s_task(&b2, &t2), r);
    cr_assert_eq(r, 1);

    /* Frames that do not even parse: logged, never answered, nothing breaks. */
    s_send_raw(&b1, "\\xff\\xff garbage", 10);
    static const uint8_t unknown_type[] = {0x08, FL_PROTOCOL_VERSION, 0xa2, 0x06,
                                           0x00}; /* field 100 */
    s_send_raw(&b1, unknown_type, sizeof unknown_type);
    /* Each of these is rejected before it can count as the branch's answer. */
    s_send_update(&b1, &f, &b2, &t1, r, 1, 10, S_TAMPER, NULL, NULL);
    s_expect_receipt(&b1, false, "cannot decrypt");
    s_send_update(&b1, &f, &b2, &t1, r, 1, 10, S_TAMPER_TAG, NULL, NULL);
    s_expect_receipt(&b1, false, "bad signature");
    s_send_update(&b1, &f, &b2, &t1, r, 1, 10, S_OTHER_SIGNER, NULL, NULL);
    s_expect_receipt(&b1, false, "bad signature");
    s_send_update(&b1, &f, &b2, &t1, r, 1, 10, S_FUTURE, NULL, NULL);
    s_expect_receipt(&b1, false, "future round");
    s_send_update(&b1, &f, &b2, &t1, r, 1, 10, S_WRONG_BASE, NULL, NULL);
    s_expect_receipt(&b1, false, "wrong base");
    /* Signed but unusable: rejected, and the branch has had its say for this round. */
    s_send_update(&b1, &f, &b2, &t1, r, 1, 10, S_NAN, NULL, NULL);
    s_expect_receipt(&b1, false, "NaN");
    s_send_update(&b1, &f, &b2, &t1, r, 1, 10, S_GOOD, NULL, NULL);
    s_expect_receipt(&b1, false, "duplicate");
    s_send_update(&b2, &f, &b1, &t2, r, 1, 10, S_SHAPE, NULL, NULL);
    s_expect_receipt(&b2, false, "expected");
    fl_adapter_close(&t1);
    fl_adapter_close(&t2);

    /* Nothing was accepted: round 1 is retried, and this time both answer well. */
    cr_assert_eq(s_task(&b1, &t1), 1);
    cr_assert_eq(s_task(&b2, &t2), 1);
    uint8_t *replay;
    size_t replay_len;
    s_send_update(&b1, &f, &b2, &t1, 1, 2.0f, 30, S_GOOD, &replay, &replay_len);
    s_expect_receipt(&b1, true, NULL);
    s_send_update(&b2, &f, &b1, &t2, 1, 4.0f, 10, S_GOOD, NULL, NULL);
    s_expect_receipt(&b2, true, NULL);
    fl_adapter_close(&t1);
    fl_adapter_close(&t2);

    /* Round 2: a replay of round 1's update is stale. */
    cr_assert_eq(s_task(&b1, &t1), 2);
    cr_assert_eq(s_task(&b2, &t2), 2);
    /* The global adapter the task carries is round 1's weighted mean: (30*2 + 10*4)/40. */
    for (size_t i = 0; i < t1.ntensors; i++)
        for (size_t j = 0; j < fl_tensor_numel(&t1.tensors[i]); j++)
            cr_assert_float_eq(t1.tensors[i].data[j], 2.5f, 1e-6);
    s_send_raw(&b1, replay, replay_len);
    s_expect_receipt(&b1, false, "stale");
    free(replay);
    s_send_update(&b1, &f, &b2, &t1, 2, -1.0f, 5, S_GOOD, NULL, NULL);
    s_expect_receipt(&b1, true, NULL);
    s_send_update(&b2, &f, &b1, &t2, 2, 3.0f, 15, S_GOOD, NULL, NULL);
    s_expect_receipt(&b2, true, NULL);
    fl_adapter_close(&t1);
    fl_adapter_close(&t2);

    /* Round 3 with uneven weights; then the final adapter reaches both. */
    cr_assert_eq(s_task(&b1, &t1), 3);
    cr_assert_eq(s_task(&b2, &t2), 3);
    s_send_update(&b1, &f, &b2, &t1, 3, 0.25f, 70, S_GOOD, NULL, NULL);
    s_expect_receipt(&b1, true, NULL);
    s_send_update(&b2, &f, &b1, &t2, 3, 1.25f, 30, S_GOOD, NULL, NULL);
    s_expect_receipt(&b2, true, NULL);
    fl_adapter_close(&t1);
    fl_adapter_close(&t2);
    Fedtl__Envelope *fin = s_expect(&b1, FEDTL__ENVELOPE__BODY_FINAL, 10);
    cr_assert_not_null(fin, "no final adapter");
    struct fl_adapter_file final;
    cr_assert_eq(
        fl_adapter_unpack(fin->final->adapter.data, fin->final->adapter.len, "final", &final), 0);
    fl_wire_free(&fin);
    float want = (70 * 0.25f + 30 * 1.25f) / 100.0f;
    for (size_t i = 0; i < final.ntensors; i++)
        for (size_t j = 0; j < fl_tensor_numel(&final.tensors[i]); j++)
            cr_assert_float_eq(final.tensors[i].data[j], want, 1e-6);
    cr_assert_eq(final.meta.round, 3);
    fl_adapter_close(&final);

    cr_assert_eq(fl_test_wait(f.coord, 20), 0, "coordinator did not exit cleanly");
    f.coord = 0;
    /* Ledger: the short round and three aggregated ones, with the rejections and reasons. */
    cJSON *ledger = fl_test_jsonl(f.path[F_LEDGER]);
    cr_assert_not_null(ledger, "rounds.jsonl holds a line that is not JSON");
    cr_assert_eq(fl_test_ledger_lines(ledger, -1, 1, NULL), 3);
    const cJSON *short_round;
    cr_assert_eq(fl_test_ledger_lines(ledger, 1, 0, &short_round), 1);
    cr_assert_eq(s_rejections(short_round, "bad signature"), 2);
    cr_assert_eq(s_rejections(short_round, "cannot decrypt"), 1);
    cr_assert_eq(s_rejections(short_round, "future round"), 1);
    cr_assert_eq(s_rejections(short_round, "duplicate update"), 1);
    cr_assert_eq(cJSON_GetObjectItemCaseSensitive(short_round, "rejected_total")->valuedouble, 8);
    const cJSON *round2;
    cr_assert_eq(fl_test_ledger_lines(ledger, 2, 1, &round2), 1);
    cr_assert_eq(s_rejections(round2, "stale round"), 1);
    cJSON_Delete(ledger);
    cr_assert_eq(fl_test_count(f.path[F_LOG], "malformed protobuf"), 1);
    cr_assert_eq(fl_test_count(f.path[F_LOG], "no message body"), 1);
    /* The state on disk is the final global adapter. */
    struct fl_adapter_file saved;
    cr_assert_eq(fl_adapter_read(f.path[F_GLOBAL], &saved), 0);
    cr_assert_eq(saved.meta.round, 3);
    cr_assert_float_eq(saved.tensors[0].data[0], want, 1e-6);
    fl_adapter_close(&saved);
    s_branch_close(&b1);
    s_branch_close(&b2);
    s_fed_teardown(&f);
}

Test(fedtl_coordinator, oversized_frames_and_unknown_keys_are_refused_while_others_are_served,
     .timeout = 60)
{
    struct s_fed f;
    /* b1 stays quiet for seconds while the others try their luck: heartbeats of 2 s keep the
     * coordinator from forgetting it for silence (5 beats) on a slow, loaded machine. */
    s_fed_setup(&f, "--rounds 1 --min-start 2 --heartbeat-ms 2000");
    struct s_branch b1, evil;
    s_branch_open(&b1, &f, "b1");
    s_hello(&b1, &f);
    /* An unenrolled key never completes the CURVE handshake: no Welcome. */
    s_branch_open(&evil, &f, "evil");
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__Hello h = FEDTL__HELLO__INIT;
    h.branch_key = (ProtobufCBinaryData){32, evil.id->sign_pk};
    h.name = "evil";
    env.body_case = FEDTL__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    fl_net_send(evil.sock, NULL, 0, &env, ZMQ_DONTWAIT, NULL);
    cr_assert_null(s_expect(&evil, FEDTL__ENVELOPE__BODY_WELCOME, 2));
    cr_assert_gt(fl_test_count(f.path[F_LOG], "handshake_refused"), 0);
    /* A frame over the frame limit (FL_WIRE_MAX_MSG) is dropped by the transport. */
    size_t big = (64u << 20) + 1024;
    char *blob = calloc(1, big);
    zmq_send(b1.sock, blob, big, 0);
    free(blob);
    /* The coordinator still answers its control socket and a re-registering branch. */
    char cmd[4096], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s/fedtl status --state-dir %s", FEDTL_BIN_DIR, f.path[F_STATE]);
    cr_assert_eq(fl_test_run(cmd, &out), 0);
    cJSON *status = cJSON_Parse(out);
    const cJSON *phase = cJSON_GetObjectItemCaseSensitive(status, "phase");
    cr_assert(cJSON_IsString(phase) && strcmp(phase->valuestring, "waiting") == 0, "%s", out);
    cr_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(status, "last")), "%s", out);
    cJSON_Delete(status);
    free(out);
    s_hello(&b1, &f);
    /* b2 may not speak as b1: its CurveZMQ key opens the connection, b1's key is the routing
     * id it picks and the Hello's key. It is challenged, cannot sign as b1, is never welcomed,
     * and b1 keeps its connection. */
    struct s_branch b2;
    s_branch_open(&b2, &f, "b2");
    void *mask = zmq_socket(b2.ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(mask, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(mask, ZMQ_ROUTING_ID, b1.id->sign_pk, 32);
    zmq_setsockopt(mask, ZMQ_CURVE_SERVERKEY, f.hq->box_pk, 32);
    zmq_setsockopt(mask, ZMQ_CURVE_PUBLICKEY, b2.id->box_pk, 32);
    zmq_setsockopt(mask, ZMQ_CURVE_SECRETKEY, b2.id->box_sk, 32);
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", f.port);
    cr_assert_eq(zmq_connect(mask, ep), 0);
    Fedtl__Envelope henv = FEDTL__ENVELOPE__INIT;
    Fedtl__Hello hh = FEDTL__HELLO__INIT;
    hh.branch_key = (ProtobufCBinaryData){32, b1.id->sign_pk};
    hh.name = "b1";
    henv.body_case = FEDTL__ENVELOPE__BODY_HELLO;
    henv.hello = &hh;
    cr_assert_eq(fl_net_send(mask, NULL, 0, &henv, 0, NULL), 0);
    struct s_branch masked = {.id = b2.id, .ctx = b2.ctx, .sock = mask};
    Fedtl__Envelope *c = s_expect(&masked, FEDTL__ENVELOPE__BODY_CHALLENGE, 10);
    cr_assert_not_null(c, "no Challenge");
    uint8_t sig[FL_SIG_BYTES];
    cr_assert_eq(fl_sign_hello(b2.id, f.federation, c->challenge->nonce.data, sig), 0);
    fl_wire_free(&c);
    s_hello_as(&masked, b1.id->sign_pk, &f, sig); /* b2's signature, b1's key */
    cr_assert_null(s_expect(&masked, FEDTL__ENVELOPE__BODY_WELCOME, 1));
    Fedtl__Envelope beat = FEDTL__ENVELOPE__INIT;
    Fedtl__Heartbeat hb = FEDTL__HEARTBEAT__INIT;
    beat.body_case = FEDTL__ENVELOPE__BODY_HEARTBEAT;
    beat.heartbeat = &hb;
    cr_assert_eq(fl_net_send(b1.sock, NULL, 0, &beat, 0, NULL), 0);
    Fedtl__Envelope *echo = s_expect(&b1, FEDTL__ENVELOPE__BODY_HEARTBEAT, 10);
    cr_assert_not_null(echo, "b1 lost its connection");
    fl_wire_free(&echo);
    zmq_close(mask);
    s_branch_close(&b2);
    s_branch_close(&evil);
    s_branch_close(&b1);
    s_fed_teardown(&f);
}

Test(fedtl_coordinator, a_corrupted_state_directory_stops_start_up_with_a_clear_error,
     .timeout = 60)
{
    struct s_fed f;
    s_fed_setup(&f, "--rounds 1 --min-start 2");
    for (int i = 0; i < 200 && fl_test_count(f.path[F_LOG], "coordinator_start") == 0; i++)
        usleep(25000);
    kill(f.coord, SIGTERM);
    cr_assert_eq(fl_test_wait(f.coord, 10), 0);
    /* A state file that is not an adapter, then one for another base. */
    FILE *fp = fopen(f.path[F_GLOBAL], "w");
    cr_assert_not_null(fp);
    fputs("not an adapter", fp);
    fclose(fp);
    f.coord = fl_test_spawn(f.cmd, f.path[F_LOG]);
    cr_assert_eq(fl_test_wait(f.coord, 20), 1, "must refuse to start");
    f.coord = 0;
    cr_assert_gt(fl_test_count(f.path[F_LOG], "global.fta cannot be resumed"), 0);
    cr_assert_gt(fl_test_count(f.path[F_LOG], "move it away to start over"), 0);
    s_fed_teardown(&f);
}

Test(fedtl_coordinator, start_up_mends_the_ledger_and_sweeps_interrupted_writes, .timeout = 60)
{
    struct s_fed f;
    s_fed_setup(&f, "--rounds 5 --min-start 2");
    for (int i = 0; i < 200 && fl_test_count(f.path[F_LOG], "coordinator_start") == 0; i++)
        usleep(25000);
    kill(f.coord, SIGTERM);
    cr_assert_eq(fl_test_wait(f.coord, 10), 0);
    /* As a SIGKILL can leave it: round 2 saved, the ledger's line for it missing, a partial
     * line at the end of the ledger, a temporary file of an interrupted write. */
    struct fl_adapter_meta am = {.kind = FL_ADAPTER_LORA,
                                 .rank = 2,
                                 .alpha = 4,
                                 .seed = 1,
                                 .num_classes = 3,
                                 .class_ids = {0, 1, 2},
                                 .ntargets = 1,
                                 .round = 2};
    strcpy(am.targets[0], "fc1");
    fl_model_t *m = fl_model_from_base(&f.base, "base", &am, NULL);
    cr_assert_not_null(m);
    cr_assert_eq(fl_model_adapter_meta(m)->round, 2); /* the global after two rounds */
    cr_assert_eq(fl_model_write_adapter(m, f.path[F_GLOBAL], NULL), 0, "%s", fl_error_msg());
    fl_model_destroy(&m);
    FILE *fp = fopen(f.path[F_LEDGER], "w");
    fputs("{\"round\":1,\"aggregated\":true,\"selected\":2}\n{\"round\":2,\"aggreg", fp);
    fclose(fp);
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s/global.fta.tmp.AbC123", f.path[F_STATE]);
    fp = fopen(tmp, "w");
    fputs("half", fp);
    fclose(fp);
    f.coord = fl_test_spawn(f.cmd, f.path[F_LOG]);
    for (int i = 0; i < 200 && fl_test_count(f.path[F_LOG], "resumed_round=2") == 0; i++)
        usleep(25000);
    cr_assert_eq(fl_test_count(f.path[F_LOG], "resumed_round=2"), 1);
    /* Every line parses (the partial one is gone); round 1's is kept, round 2's written. */
    cJSON *ledger = fl_test_jsonl(f.path[F_LEDGER]);
    cr_assert_not_null(ledger, "a line that is not JSON was kept");
    cr_assert_eq(cJSON_GetArraySize(ledger), 2);
    const cJSON *r1 = cJSON_GetArrayItem(ledger, 0), *r2 = cJSON_GetArrayItem(ledger, 1);
    cr_assert_eq(fl_test_ledger_lines(ledger, 1, 1, NULL), 1);
    cr_assert_eq(cJSON_GetObjectItemCaseSensitive(r1, "selected")->valuedouble, 2);
    cr_assert_eq(fl_test_ledger_lines(ledger, 2, 1, NULL), 1);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r2, "recovered")));
    cJSON_Delete(ledger);
    cr_assert_neq(access(tmp, F_OK), 0, "temporary file not swept");
    cr_assert_gt(fl_test_count(f.path[F_LOG], "event=state_swept"), 0);
    s_fed_teardown(&f);
}

/* The federation's name as state.json, a ledger line and fedtl status give it back. */
static void s_expect_name(const cJSON *obj, const char *what, const char *name)
{
    const cJSON *fed = cJSON_GetObjectItemCaseSensitive(obj, "federation");
    cr_assert(cJSON_IsString(fed), "%s: no federation string", what);
    cr_assert_eq(strlen(fed->valuestring), strlen(name), "%s: %s", what, fed->valuestring);
    cr_assert_eq(memcmp(fed->valuestring, name, strlen(name)), 0, "%s: %s", what, fed->valuestring);
}

Test(fedtl_coordinator, any_utf8_federation_name_round_trips_through_state_ledger_and_status,
     .timeout = 60)
{
    static const char name[] = "fed \"q\" \\ back\nslash — Zürich 東京";
    struct s_fed f;
    s_fed_setup_named(&f, name, "--rounds 1 --min-start 1 --min-clients 1 --deadline 30");
    struct s_branch b1;
    s_branch_open(&b1, &f, "b1");
    s_hello(&b1, &f); /* the Welcome names the federation byte for byte */
    struct fl_adapter_file task;
    cr_assert_eq(s_task(&b1, &task), 1);
    s_send_update(&b1, &f, NULL, &task, 1, 0.5f, 10, S_GOOD, NULL, NULL); /* signed over it */
    s_expect_receipt(&b1, true, NULL);
    fl_adapter_close(&task);
    Fedtl__Envelope *fin = s_expect(&b1, FEDTL__ENVELOPE__BODY_FINAL, 10);
    cr_assert_not_null(fin, "no final adapter");
    fl_wire_free(&fin);

    cJSON *state = fl_test_json(f.path[F_STATE_JSON]);
    cr_assert(cJSON_IsObject(state), "state.json is not a JSON object");
    s_expect_name(state, "state.json", name);
    cr_assert_eq(cJSON_GetObjectItemCaseSensitive(state, "round")->valuedouble, 1);
    cJSON_Delete(state);

    cJSON *ledger = fl_test_jsonl(f.path[F_LEDGER]);
    cr_assert_not_null(ledger, "rounds.jsonl holds a line that is not JSON");
    const cJSON *line;
    cr_assert_eq(fl_test_ledger_lines(ledger, 1, 1, &line), 1);
    s_expect_name(line, "rounds.jsonl", name);
    cJSON_Delete(ledger);

    char cmd[4096], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s/fedtl status --state-dir %s", FEDTL_BIN_DIR, f.path[F_STATE]);
    cr_assert_eq(fl_test_run(cmd, &out), 0, "%s", out ? out : "");
    cJSON *status = cJSON_Parse(out);
    cr_assert(cJSON_IsObject(status), "fedtl status: %s", out);
    s_expect_name(status, "fedtl status", name);
    s_expect_name(cJSON_GetObjectItemCaseSensitive(status, "last"), "fedtl status: last", name);
    cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(status, "phase")->valuestring, "done");
    cJSON_Delete(status);
    free(out);

    /* The log names it escaped, on one line: every line is an event. */
    cr_assert_eq(fl_test_count(f.path[F_LOG],
                               "federation=\"fed \\\"q\\\" \\\\ back\\nslash — Zürich 東京\" "),
                 1);
    char *log = fl_test_slurp(f.path[F_LOG]);
    for (char *save = NULL, *l = strtok_r(log, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
        cr_assert_eq(strncmp(l, "ts=", 3), 0, "a log line broken by the name: %s", l);
    free(log);
    s_branch_close(&b1);
    s_fed_teardown(&f);
}
