/* Distributed DP's accounting against hostile branches, with a real coordinator process
 * (fedtl-coordinator --secure-aggregation --dp-noise) and five branches of our own speaking
 * the protocol through the real protocol core (fl_secagg_client) over CurveZMQ, re-signing
 * what they spoil so that only the protocol's own checks can catch it:
 * - a branch writes weight 2^40 + 1 instead of 1 into its masked input (a total no inputs can
 *   have): the sum is still used, its weight the count of inputs in it, and charged once;
 * - a branch reveals a wrong share of a dropped branch's key, so that unmasking fails after
 *   the coordinator held the reveals it needed: that attempt is charged all the same, and the
 *   retry that commits reports the epsilon of two releases; with a budget for one release
 *   only, the retry does not start and the federation stops. */
#include "fl_dp.h"
#include "fl_hostile.h"
#include "fl_secagg_client.h"

#define S_NB 5 /* b1, b2, b3, b4, evil: degree 4, threshold 3, one may drop out */

/* One of our branches and its secure aggregation. */
struct s_peer {
    struct s_branch b;         /* the connection and identity */
    fl_secagg_client_t *cl;    /* the protocol core of the current attempt */
    struct fl_secagg_ctx ctx;  /* its context */
    Fedtl__Envelope *task;     /* a task that came while the last attempt ended, or NULL */
    Fedtl__Envelope *setup;    /* and the setup after it, or NULL */
    bool drop_masked;          /* drops out: its masked input never leaves */
    bool bad_weight;           /* writes weight 2^40 + 1 into its masked input */
    const uint8_t *bad_reveal; /* reveals a wrong share of this branch's key (or NULL) */
};

/* Sign body as p, kind, into env's signature field (restored by the caller). */
static void s_resign(struct s_peer *p, enum fl_secagg_kind kind, uint8_t *body, size_t len,
                     uint8_t sig[FL_SIG_BYTES])
{
    cr_assert_not_null(body);
    cr_assert_eq(fl_secagg_sign(p->b.id, &p->ctx, kind, body, len, sig), 0);
    free(body);
}

static int s_send(void *arg, Fedtl__Envelope *env)
{
    struct s_peer *p = arg;
    uint8_t sig[FL_SIG_BYTES], *body = NULL, *kept = NULL;
    size_t len = 0;
    ProtobufCBinaryData *field = NULL;
    if (env->body_case == FEDTL__ENVELOPE__BODY_SA_MASKED && p->drop_masked)
        return 0;
    if (env->body_case == FEDTL__ENVELOPE__BODY_SA_MASKED && p->bad_weight) {
        Fedtl__SecAggMasked *m = env->sa_masked;
        m->words[m->n_words - 1] += 1ull << 40; /* the weight word: 2^40 + 1 */
        cr_assert_eq(fl_secagg_body_words(m->words, m->n_words, &body, &len), 0);
        s_resign(p, FL_SECAGG_SIG_MASKED, body, len, sig);
        field = &m->signature;
    }
    if (env->body_case == FEDTL__ENVELOPE__BODY_SA_REVEAL && p->bad_reveal) {
        Fedtl__SecAggReveal *m = env->sa_reveal;
        int spoiled = 0;
        for (size_t s = 0; s < m->n_shares; s++)
            if (memcmp(m->shares[s]->owner.data, p->bad_reveal, FL_SIGN_PK_BYTES) == 0) {
                m->shares[s]->share.data[5] ^= 0x5a; /* not in the bits X25519 clamps */
                spoiled++;
            }
        cr_assert_eq(spoiled, 1, "it holds a share of the dropped branch's key");
        cr_assert_eq(fl_secagg_body_reveal(m->shares, m->n_shares, &body, &len), 0);
        s_resign(p, FL_SECAGG_SIG_REVEAL, body, len, sig);
        field = &m->signature;
    }
    if (field) {
        kept = field->data;
        field->data = sig;
    }
    int rc = fl_net_send(p->b.sock, NULL, 0, env, 0, NULL);
    if (field)
        field->data = kept;
    return rc;
}

static void s_beat(struct s_peer *p)
{
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__Heartbeat hb = FEDTL__HEARTBEAT__INIT;
    env.body_case = FEDTL__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    fl_net_send(p->b.sock, NULL, 0, &env, 0, NULL);
}

/* The coordinator with extra options, and our five branches registered, b3, b4 and evil
 * enrolled through a reload of the allow-list. */
static void s_start(struct s_fed *f, struct s_peer *p, const char *extra)
{
    s_fed_setup(f, extra);
    s_fed_enrol(f, "b3 b4", "b3.pub b4.pub evil.pub");
    static const char *const names[S_NB] = {"b1", "b2", "b3", "b4", "evil"};
    memset(p, 0, S_NB * sizeof *p);
    for (int i = 0; i < S_NB; i++) {
        s_branch_open(&p[i].b, f, names[i]);
        s_hello(&p[i].b, f);
    }
}

/* One attempt: every branch takes its task (the first one's adapter into *task when not
 * NULL), gives its change with weight 1 as DP-FedAvg does, and speaks the protocol until the
 * coordinator logged `ends` secure-aggregation ends in all. */
static void s_attempt(struct s_fed *f, struct s_peer *p, int ends, struct fl_adapter_file *task)
{
    size_t length = 0;
    for (int i = 0; i < S_NB; i++) {
        Fedtl__Envelope *t =
            p[i].task ? p[i].task : s_expect(&p[i].b, FEDTL__ENVELOPE__BODY_TASK, 30);
        p[i].task = NULL;
        cr_assert_not_null(t, "branch %d got no task", i);
        cr_assert(t->task->secure_aggregation && t->task->dp_noise_multiplier == 1);
        struct fl_adapter_file a;
        cr_assert_eq(fl_adapter_unpack(t->task->adapter.data, t->task->adapter.len, "task", &a), 0);
        length = 0;
        for (size_t k = 0; k < a.ntensors; k++)
            length += fl_tensor_numel(&a.tensors[k]);
        if (i == 0 && task)
            *task = a;
        else
            fl_adapter_close(&a);
        p[i].ctx = (struct fl_secagg_ctx){.federation = f->federation, .round = t->task->round};
        memcpy(p[i].ctx.run_id, p[i].b.run_id, FL_RUN_ID_BYTES);
        fl_wire_free(&t);
        struct fl_secagg_client_ops ops = {.send = s_send};
        p[i].cl = fl_secagg_client_new(p[i].b.id, &p[i].ctx, &ops, &p[i]);
        cr_assert_not_null(p[i].cl);
        float *x = malloc(length * sizeof *x);
        for (size_t v = 0; v < length; v++)
            x[v] = s_ramp(i, v);
        cr_assert_eq(fl_secagg_client_input(p[i].cl, x, length, 1), 0);
        free(x);
        if (p[i].setup)
            cr_assert_eq(fl_secagg_client_recv(p[i].cl, p[i].setup), 0);
        fl_wire_free(&p[i].setup);
    }
    int spin = 0;
    for (; spin < 3000; spin++) {
        for (int i = 0; i < S_NB; i++) {
            Fedtl__Envelope *env = NULL;
            while (fl_net_recv(p[i].b.sock, false, NULL, NULL, &env, NULL) == 0) {
                if (p[i].task && env->body_case == FEDTL__ENVELOPE__BODY_SA_SETUP) {
                    fl_wire_free(&p[i].setup); /* the next attempt's */
                    p[i].setup = env;
                    env = NULL;
                } else if (env->body_case == FEDTL__ENVELOPE__BODY_TASK) {
                    fl_wire_free(&p[i].task);
                    p[i].task = env;
                    env = NULL;
                } else if (env->body_case >= FEDTL__ENVELOPE__BODY_SA_SETUP &&
                           env->body_case <= FEDTL__ENVELOPE__BODY_SA_ABORT) {
                    fl_secagg_client_recv(p[i].cl, env);
                }
                fl_wire_free(&env);
            }
            if (spin % 10 == 0)
                s_beat(&p[i]);
        }
        if (spin % 10 == 0 && fl_test_count(f->path[F_LOG], "event=secagg_end") >= ends)
            break;
        usleep(10000);
    }
    cr_assert_lt(spin, 3000, "the attempt did not end");
    for (int i = 0; i < S_NB; i++)
        fl_secagg_client_destroy(&p[i].cl);
}

static void s_close_all(struct s_fed *f, struct s_peer *p)
{
    for (int i = 0; i < S_NB; i++) {
        fl_wire_free(&p[i].task);
        fl_wire_free(&p[i].setup);
        s_branch_close(&p[i].b);
    }
    s_fed_teardown(f);
}

/* The epsilon of r releases at rate 1, noise 1, delta 1e-5. */
static double s_eps(int r)
{
    struct fl_dp_account a;
    memset(&a, 0, sizeof a);
    for (int i = 0; i < r; i++)
        cr_assert_eq(fl_dp_account_spend(&a, 1.0, 1.0), 0);
    return fl_dp_account_epsilon(&a, 1e-5);
}

static double s_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsNumber(v), "no number %s", key);
    return v->valuedouble;
}

Test(ddp_hostile, a_weight_word_other_than_one_neither_spoils_the_sum_nor_escapes_the_charge,
     .timeout = 240)
{
    struct s_fed f;
    struct s_peer p[S_NB];
    s_start(&f, p,
            "--secure-aggregation --dp-clip 0.5 --dp-noise 1 --rounds 1 --min-start 5 "
            "--min-clients 3 --deadline 20 --threads 1");
    p[4].bad_weight = true;
    struct fl_adapter_file task;
    s_attempt(&f, p, 1, &task);
    s_log_await(&f, "event=round_done", 200);
    char *log = fl_test_slurp(f.path[F_LOG]);
    cr_expect(strstr(log, "event=round_done round=1 accepted=5"), "%s", log);
    cr_expect(
        strstr(log, "event=secagg_weight_mismatch round=1 inputs=5 weight_word=1099511627781 "),
        "%s", log);
    cr_expect_eq(fl_test_count(f.path[F_LOG], "event=secagg_sum_unusable"), 0);
    cr_expect_eq(fl_test_count(f.path[F_LOG], "event=privacy_release round=1 "), 1);
    free(log);

    cJSON *lines = fl_test_jsonl(f.path[F_LEDGER]);
    cr_assert_eq(cJSON_GetArraySize(lines), 1);
    const cJSON *line = cJSON_GetArrayItem(lines, 0);
    cr_expect(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(line, "aggregated")));
    cr_expect_lt(fabs(s_num(line, "dp_epsilon") - s_eps(1)), 1.5e-6, "charged once: %.6f",
                 s_num(line, "dp_epsilon"));
    cr_expect_eq(s_num(line, "dp_sampling_rate"), 1.0);
    cJSON_Delete(lines);

    /* the global adapter: the task's plus the five changes' sum over the five selected */
    struct fl_adapter_file g;
    cr_assert_eq(fl_adapter_read(f.path[F_GLOBAL], &g), 0);
    const double w[S_NB] = {1, 1, 1, 1, 1};
    double worst = s_ramp_gap(&g, &task, w, S_NB);
    cr_log_info("global adapter vs the task plus the sum over 5: max |difference| %.3g", worst);
    cr_expect_leq(worst, 1e-6);
    fl_adapter_close(&g);
    fl_adapter_close(&task);
    s_close_all(&f, p);
}

Test(ddp_hostile, an_attempt_that_fails_after_the_reveals_is_charged_and_its_retry_too,
     .timeout = 240)
{
    struct s_fed f;
    struct s_peer p[S_NB];
    s_start(&f, p,
            "--secure-aggregation --dp-clip 0.5 --dp-noise 1 --rounds 1 --min-start 5 "
            "--min-clients 3 --deadline 20 --round-retries 1 --threads 1");
    p[2].drop_masked = true; /* b3 drops out after its shares */
    p[4].bad_reveal = p[2].b.id->sign_pk;
    s_attempt(&f, p, 1, NULL);
    s_log_await(&f, "event=round_short round=1 ", 200);
    char *log = fl_test_slurp(f.path[F_LOG]);
    char want[96];
    snprintf(want, sizeof want, "event=secagg_abort round=1 code=%d",
             FEDTL__SEC_AGG_ABORT_CODE__SECAGG_ABORT_RECONSTRUCT);
    cr_expect(strstr(log, want), "%s\n%s", want, log);
    cr_expect(strstr(log, "event=secagg_end round=1 phase=aborted selected=5 inputs=0 revealed=4"),
              "%s", log);
    free(log);
    cr_expect_eq(fl_test_count(f.path[F_LOG], "event=privacy_release round=1 "), 1);

    p[2].drop_masked = false; /* the retry: all honest */
    p[4].bad_reveal = NULL;
    s_attempt(&f, p, 2, NULL);
    s_log_await(&f, "event=round_done", 200);
    cr_expect_eq(fl_test_count(f.path[F_LOG], "event=privacy_release round=1 "), 2);
    cJSON *lines = fl_test_jsonl(f.path[F_LEDGER]);
    cr_assert_eq(cJSON_GetArraySize(lines), 2);
    for (int r = 0; r < 2; r++) {
        const cJSON *line = cJSON_GetArrayItem(lines, r);
        cr_expect_eq(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(line, "aggregated")), r == 1);
        cr_expect_eq(s_num(line, "retry"), r);
        double eps = s_num(line, "dp_epsilon");
        cr_expect_lt(fabs(eps - s_eps(r + 1)), 1.5e-6, "attempt %d: epsilon %.6f, want %.6f", r,
                     eps, s_eps(r + 1));
    }
    cJSON_Delete(lines);
    s_close_all(&f, p);
}

Test(ddp_hostile, a_retry_the_budget_cannot_pay_for_after_a_charged_attempt_does_not_start,
     .timeout = 240)
{
    struct s_fed f;
    struct s_peer p[S_NB];
    char extra[512];
    snprintf(extra, sizeof extra,
             "--secure-aggregation --dp-clip 0.5 --dp-noise 1 --dp-epsilon %.6f --rounds 1 "
             "--min-start 5 --min-clients 3 --deadline 20 --round-retries 3 --threads 1",
             (s_eps(1) + s_eps(2)) / 2);
    s_start(&f, p, extra);
    p[2].drop_masked = true;
    p[4].bad_reveal = p[2].b.id->sign_pk;
    s_attempt(&f, p, 1, NULL);
    s_log_await(&f, "event=federation_done rounds=0 ", 200);
    cr_expect_eq(fl_test_count(f.path[F_LOG], "event=privacy_release round=1 "), 1);
    cr_expect_eq(fl_test_count(f.path[F_LOG], "event=privacy_budget_spent round=1 "), 1);
    cr_expect_eq(fl_test_count(f.path[F_LOG], "event=round_start"), 1, "no retry");
    cJSON *lines = fl_test_jsonl(f.path[F_LEDGER]);
    cr_assert_eq(cJSON_GetArraySize(lines), 1);
    const cJSON *line = cJSON_GetArrayItem(lines, 0);
    cr_expect(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(line, "aggregated")));
    cr_expect_lt(fabs(s_num(line, "dp_epsilon") - s_eps(1)), 1.5e-6);
    cJSON_Delete(lines);
    s_close_all(&f, p);
}
