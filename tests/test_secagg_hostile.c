/* Secure aggregation against a hostile branch, with a real coordinator process
 * (fedtl-coordinator --secure-aggregation) and four branches of our own speaking the protocol
 * through the real protocol core (fl_secagg_client) over CurveZMQ: the enrolled branch "evil"
 * sends a masked input that is not the one it signed, and a key advertisement in another
 * branch's name. The coordinator refuses both, and the round's global adapter is the task's
 * plus the weighted mean change of the three honest branches only. */
#include "fl_hostile.h"
#include "fl_secagg_client.h"

#define S_NB 4 /* b1, b2, b3, evil */

/* One of our branches and its secure aggregation. */
struct s_peer {
    struct s_branch b;        /* the connection and identity */
    fl_secagg_client_t *cl;   /* the protocol core */
    bool evil;                /* spoils its masked input, and names another's key */
    const uint8_t *other_key; /* the key evil names */
    int refused;              /* messages its core refused */
};

static int s_send(void *arg, Fedtl__Envelope *env)
{
    struct s_peer *p = arg;
    if (p->evil && env->body_case == FEDTL__ENVELOPE__BODY_SA_MASKED)
        env->sa_masked->words[3] += 1000; /* after signing: the signature no longer holds */
    if (p->evil && env->body_case == FEDTL__ENVELOPE__BODY_SA_KEYS) {
        /* first the same keys claiming to be another branch (its own connection says who it
         * is), then its own */
        uint8_t key[FL_SIGN_PK_BYTES];
        memcpy(key, env->sa_keys->branch_key.data, sizeof key);
        memcpy(env->sa_keys->branch_key.data, p->other_key, sizeof key);
        fl_net_send(p->b.sock, NULL, 0, env, 0, NULL);
        memcpy(env->sa_keys->branch_key.data, key, sizeof key);
    }
    int rc = fl_net_send(p->b.sock, NULL, 0, env, 0, NULL);
    return rc;
}

Test(secagg_hostile, a_forged_masked_input_and_a_borrowed_key_are_refused, .timeout = 240)
{
    struct s_fed f;
    s_fed_setup(&f, "--secure-aggregation --rounds 1 --min-start 4 --min-clients 3 "
                    "--deadline 20 --threads 1");
    s_fed_enrol(&f, "b3", "b3.pub evil.pub"); /* b3 and evil are enrolled now */

    static const char *const names[S_NB] = {"b1", "b2", "b3", "evil"};
    static const uint64_t samples[S_NB] = {100, 200, 300, 400};
    struct s_peer p[S_NB];
    memset(p, 0, sizeof p);
    for (int i = 0; i < S_NB; i++) {
        s_branch_open(&p[i].b, &f, names[i]);
        s_hello_samples(&p[i].b, &f, samples[i]);
    }
    p[3].evil = true;
    p[3].other_key = p[0].b.id->sign_pk;

    /* each trains nothing: its task's adapter plus its own change is its update */
    struct fl_adapter_file task;
    size_t length = 0;
    uint32_t round = 0;
    for (int i = 0; i < S_NB; i++) {
        Fedtl__Envelope *t = s_expect(&p[i].b, FEDTL__ENVELOPE__BODY_TASK, 30);
        cr_assert_not_null(t, "%s got no task", names[i]);
        cr_assert(t->task->secure_aggregation, "the task asks for secure aggregation");
        if (i == 0) {
            cr_assert_eq(
                fl_adapter_unpack(t->task->adapter.data, t->task->adapter.len, "task", &task), 0);
            for (size_t k = 0; k < task.ntensors; k++)
                length += fl_tensor_numel(&task.tensors[k]);
        }
        round = t->task->round;
        fl_wire_free(&t);
        struct fl_secagg_ctx ctx = {.federation = f.federation, .round = round};
        memcpy(ctx.run_id, p[i].b.run_id, FL_RUN_ID_BYTES);
        struct fl_secagg_client_ops ops = {.send = s_send};
        p[i].cl = fl_secagg_client_new(p[i].b.id, &ctx, &ops, &p[i]);
        cr_assert_not_null(p[i].cl);
        float *x = malloc(length * sizeof *x);
        for (size_t v = 0; v < length; v++)
            x[v] = s_ramp(i, v);
        cr_assert_eq(fl_secagg_client_input(p[i].cl, x, length, samples[i]), 0);
        free(x);
    }

    /* the protocol: until the honest three are done */
    for (int spin = 0; spin < 3000; spin++) {
        int done = 0;
        for (int i = 0; i < S_NB; i++) {
            Fedtl__Envelope *env = NULL;
            while (fl_net_recv(p[i].b.sock, false, NULL, NULL, &env, NULL) == 0) {
                if (env->body_case >= FEDTL__ENVELOPE__BODY_SA_SETUP &&
                    env->body_case <= FEDTL__ENVELOPE__BODY_SA_ABORT &&
                    fl_secagg_client_recv(p[i].cl, env) != 0)
                    p[i].refused++;
                fl_wire_free(&env);
            }
            done += i < 3 && fl_secagg_client_phase(p[i].cl) == FL_SECAGG_PHASE_DONE;
        }
        if (done == 3)
            break;
        usleep(10000);
    }
    for (int i = 0; i < 3; i++)
        cr_assert_eq(fl_secagg_client_phase(p[i].cl), FL_SECAGG_PHASE_DONE, "%s: phase %s",
                     names[i], fl_secagg_phase_name(fl_secagg_client_phase(p[i].cl)));
    s_log_await(&f, "event=round_done", 200);
    char *log = fl_test_slurp(f.path[F_LOG]);
    cr_assert(strstr(log, "event=round_done round=1 accepted=3"), "%s", log);
    cr_expect_eq(fl_test_count(f.path[F_LOG], "event=secagg_refused"), 2, "%s", log);
    cr_expect(strstr(log, "another branch's key"), "%s", log);
    cr_expect(strstr(log, "bad signature"), "%s", log);
    free(log);

    /* the global adapter: the task's plus the mean change of b1, b2, b3 weighted 1:2:3 */
    struct fl_adapter_file g;
    cr_assert_eq(fl_adapter_read(f.path[F_GLOBAL], &g), 0);
    const double w[3] = {(double)samples[0], (double)samples[1], (double)samples[2]};
    double worst = s_ramp_gap(&g, &task, w, 3);
    cr_log_info("global adapter vs the honest branches' FedAvg: max |difference| %.3g", worst);
    cr_expect_leq(worst, 1e-6, "the evil branch's input is not in the sum");
    fl_adapter_close(&g);
    fl_adapter_close(&task);
    for (int i = 0; i < S_NB; i++) {
        fl_secagg_client_destroy(&p[i].cl);
        s_branch_close(&p[i].b);
    }
    s_fed_teardown(&f);
}
