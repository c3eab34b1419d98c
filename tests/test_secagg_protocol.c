/* Tests of secure aggregation's protocol cores (fl_secagg_server, fl_secagg_client): n branches
 * and the coordinator exchange real encoded frames in process, through every phase, with
 * dropouts at each phase, the abort below the threshold, a lying coordinator caught by the
 * consistency round, and tampered shares, keys and inputs refused. */
#include "fl_codec.h"
#include "fl_error.h"
#include "fl_secagg_client.h"
#include "fl_secagg_server.h"

#include <criterion/criterion.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define S_MAXB    32
#define S_MAXQ    4096
#define S_LENGTH  1000
#define S_NPH     5  /* phases that collect answers */
#define S_NB_SEEN 10 /* branches of the test of what the coordinator sees */

/* A frame in flight: to the server from `who`, or to client `who`. */
struct s_frame {
    bool to_server; /* direction */
    uint32_t who;   /* the client */
    uint8_t *buf;   /* the encoded Envelope */
    size_t len;     /* its bytes */
};

struct s_net;
/* Called on every decoded frame to a client; returns the envelope to deliver (env, or a
 * replacement that lives until the next call), or NULL to drop it. */
typedef Fedtl__Envelope *(s_tamper_fn)(struct s_net *net, uint32_t to, Fedtl__Envelope *env);
/* The same for frames to the server. */
typedef Fedtl__Envelope *(s_tamper_srv_fn)(struct s_net *net, uint32_t from, Fedtl__Envelope *env);

struct s_net {
    uint32_t n;                     /* branches */
    struct fl_secagg_params p;      /* the round */
    struct fl_secagg_ctx ctx;       /* its context */
    fl_secagg_server_t *srv;        /* the coordinator's side */
    fl_secagg_client_t *cl[S_MAXB]; /* the branches' */
    struct fl_identity *id[S_MAXB]; /* their identities */
    float x[S_MAXB][S_LENGTH];      /* their inputs */
    uint64_t samples[S_MAXB];       /* and weights */
    int stop[S_MAXB];               /* the phase from which a branch sends nothing (-1: none) */
    struct s_frame q[S_MAXQ];       /* frames in flight (a FIFO) */
    size_t head, tail;              /* its ends */
    int sent[S_MAXB][S_NPH];        /* frames each branch got to the server, per phase */
    int refused_srv;                /* frames the server refused */
    uint8_t *seen;                  /* every byte the server was given, when recording */
    size_t seen_len, seen_cap;      /* their count, and room */
    int refused_cl[S_MAXB];         /* frames each client refused */
    s_tamper_fn *tamper;            /* optional */
    s_tamper_srv_fn *tamper_srv;    /* optional */
    uint8_t *saved[8];              /* frames a test keeps (tamper hooks) */
    size_t saved_len[8];            /* their lengths */
    uint32_t min_inputs;            /* fl_secagg_server_min_inputs (0: not called) */
};

static void s_push(struct s_net *net, bool to_server, uint32_t who, const uint8_t *buf, size_t len)
{
    cr_assert_lt(net->tail, S_MAXQ, "too many frames");
    struct s_frame *f = &net->q[net->tail++];
    f->to_server = to_server;
    f->who = who;
    f->buf = malloc(len);
    memcpy(f->buf, buf, len);
    f->len = len;
}

/* The branch index whose callback argument is ctx: the clients get &net->cl[i]. */
struct s_client_arg {
    struct s_net *net; /* the network */
    uint32_t i;        /* the branch */
};
static struct s_client_arg s_args[S_MAXB];

/* Frames go through the codec, as the programs send them. */
static void s_srv_send(void *arg, uint32_t branch, Fedtl__Envelope *env)
{
    uint8_t *buf;
    size_t len;
    cr_assert_eq(fl_wire_encode(env, &buf, &len), 0);
    s_push(arg, false, branch, buf, len);
    free(buf);
}

static int s_cl_send(void *arg, Fedtl__Envelope *env)
{
    struct s_client_arg *a = arg;
    uint8_t *buf;
    size_t len;
    cr_assert_eq(fl_wire_encode(env, &buf, &len), 0);
    s_push(a->net, true, a->i, buf, len);
    free(buf);
    return 0;
}

/* The phase a branch message belongs to. */
static int s_phase_of(const Fedtl__Envelope *env)
{
    switch (env->body_case) {
    case FEDTL__ENVELOPE__BODY_SA_KEYS:
        return FL_SECAGG_PHASE_KEYS;
    case FEDTL__ENVELOPE__BODY_SA_SHARES:
        return FL_SECAGG_PHASE_SHARES;
    case FEDTL__ENVELOPE__BODY_SA_MASKED:
        return FL_SECAGG_PHASE_MASKED;
    case FEDTL__ENVELOPE__BODY_SA_CONSISTENCY:
        return FL_SECAGG_PHASE_CONSISTENCY;
    case FEDTL__ENVELOPE__BODY_SA_REVEAL:
        return FL_SECAGG_PHASE_REVEAL;
    default:
        cr_assert_fail("a branch sent message type %d", (int)env->body_case);
        return -1;
    }
}

/* Deliver one frame: decoded through the codec, as the programs do. */
static void s_deliver(struct s_net *net, struct s_frame *f)
{
    Fedtl__Envelope *env = NULL;
    cr_assert_eq(fl_wire_decode(f->buf, f->len, &env), 0, "%s", fl_error_msg());
    if (f->to_server) {
        int ph = s_phase_of(env);
        if (net->stop[f->who] >= 0 && ph >= net->stop[f->who])
            goto out_free; /* the branch dropped before sending it */
        net->sent[f->who][ph]++;
        if (net->seen) {
            cr_assert_leq(net->seen_len + f->len, net->seen_cap);
            memcpy(net->seen + net->seen_len, f->buf, f->len);
            net->seen_len += f->len;
        }
        Fedtl__Envelope *e = net->tamper_srv ? net->tamper_srv(net, f->who, env) : env;
        if (e && fl_secagg_server_recv(net->srv, f->who, e) != 0)
            net->refused_srv++;
    } else {
        if (net->stop[f->who] >= 0 &&
            (int)fl_secagg_client_phase(net->cl[f->who]) >= net->stop[f->who])
            goto out_free; /* gone */
        Fedtl__Envelope *e = net->tamper ? net->tamper(net, f->who, env) : env;
        if (e && fl_secagg_client_recv(net->cl[f->who], e) != 0)
            net->refused_cl[f->who]++;
    }
out_free:
    fl_wire_free(&env);
    free(f->buf);
    f->buf = NULL;
}

/* A round of n branches, inputs random, the degree and threshold fedtl's for no dropout (4 log2 n:
 * a sparse graph from 20 branches up). */
static void s_net_init(struct s_net *net, uint32_t n)
{
    cr_assert_geq(sodium_init(), 0);
    memset(net, 0, sizeof *net);
    net->n = n;
    net->ctx = (struct fl_secagg_ctx){.federation = "hospitals-eu", .round = 3};
    randombytes_buf(net->ctx.run_id, sizeof net->ctx.run_id);
    net->p.n = n;
    net->p.branches = malloc((size_t)n * FL_SIGN_PK_BYTES);
    randombytes_buf(net->p.graph_seed, sizeof net->p.graph_seed);
    net->p.degree = fl_secagg_degree(n, 0);
    net->p.threshold = fl_secagg_threshold(net->p.degree);
    net->p.fixed = FL_SECAGG_FIXED_DEFAULT;
    net->p.length = S_LENGTH;
    for (uint32_t i = 0; i < n; i++) {
        struct fl_identity *id = sodium_malloc(sizeof *id);
        crypto_sign_keypair(id->sign_pk, id->sign_sk);
        memcpy(net->p.branches[i], id->sign_pk, FL_SIGN_PK_BYTES);
        net->id[i] = id;
        net->stop[i] = -1;
        net->samples[i] = 1 + randombytes_uniform(3000);
        for (int v = 0; v < S_LENGTH; v++)
            net->x[i][v] = (float)(randombytes_uniform(2000001) / 1e6 - 1.0) * 0.05f;
    }
}

/* Start the round and run it: deliver frames until none are left; then the phase's time is up
 * (the branches that did not answer dropped); until the server is done or aborted. */
static void s_net_run(struct s_net *net)
{
    struct fl_secagg_server_ops sops = {.send = s_srv_send};
    net->srv = fl_secagg_server_new(&net->ctx, &net->p, &sops, net);
    cr_assert_not_null(net->srv, "%s", fl_error_msg());
    if (net->min_inputs)
        fl_secagg_server_min_inputs(net->srv, net->min_inputs);
    struct fl_secagg_client_ops cops = {.send = s_cl_send};
    for (uint32_t i = 0; i < net->n; i++) {
        s_args[i] = (struct s_client_arg){net, i};
        net->cl[i] = fl_secagg_client_new(net->id[i], &net->ctx, &cops, &s_args[i]);
        cr_assert_not_null(net->cl[i]);
        cr_assert_eq(fl_secagg_client_input(net->cl[i], net->x[i], S_LENGTH, net->samples[i]), 0);
    }
    cr_assert_eq(fl_secagg_server_start(net->srv), 0);
    for (int guard = 0; guard < 20; guard++) {
        while (net->head < net->tail)
            s_deliver(net, &net->q[net->head++]);
        enum fl_secagg_phase ph = fl_secagg_server_phase(net->srv);
        if (ph == FL_SECAGG_PHASE_DONE || ph == FL_SECAGG_PHASE_ABORTED)
            return;
        cr_assert_eq(fl_secagg_server_timeout(net->srv), 0);
    }
    cr_assert_fail("the round did not end");
}

static void s_net_free(struct s_net *net)
{
    fl_secagg_server_destroy(&net->srv);
    for (uint32_t i = 0; i < net->n; i++) {
        fl_secagg_client_destroy(&net->cl[i]);
        sodium_free(net->id[i]);
    }
    for (size_t i = net->head; i < net->tail; i++)
        free(net->q[i].buf);
    for (int i = 0; i < 8; i++)
        free(net->saved[i]);
    free(net->seen);
    free(net->p.branches);
}

/* The server's sum equals, word for word in Z_2^64, the sum of the encoded inputs of the
 * branches whose masked input it took; and it decodes to their weighted mean within half a
 * fixed-point unit. Returns how many inputs the sum holds. */
static uint32_t s_check_sum(struct s_net *net)
{
    const uint64_t *sum = fl_secagg_server_sum(net->srv);
    cr_assert_not_null(sum, "the round %s", fl_secagg_phase_name(fl_secagg_server_phase(net->srv)));
    static uint64_t want[S_LENGTH + 1], enc[S_LENGTH + 1];
    static double mean[S_LENGTH];
    memset(want, 0, sizeof want);
    memset(mean, 0, sizeof mean);
    uint32_t in = 0;
    uint64_t wsum = 0;
    for (uint32_t i = 0; i < net->n; i++) {
        if (!fl_secagg_server_survived(net->srv, i))
            continue;
        in++;
        uint32_t w = fl_secagg_fixed_weight(&net->p.fixed, net->samples[i]);
        wsum += w;
        cr_assert_eq(fl_secagg_fixed_encode(&net->p.fixed, net->x[i], S_LENGTH, w, enc), 0);
        for (int v = 0; v <= S_LENGTH; v++)
            want[v] += enc[v];
        for (int v = 0; v < S_LENGTH; v++)
            mean[v] += (double)w * net->x[i][v];
    }
    for (int v = 0; v <= S_LENGTH; v++)
        cr_assert_eq(sum[v], want[v], "word %d of the sum", v);
    static float got[S_LENGTH];
    uint64_t total;
    cr_assert_eq(fl_secagg_fixed_decode(&net->p.fixed, sum, S_LENGTH, got, &total), 0);
    cr_assert_eq(total, wsum);
    for (int v = 0; v < S_LENGTH; v++) {
        double m = mean[v] / (double)wsum;
        cr_assert_leq(fabs(got[v] - m), 0x1p-25 + fabs(m) * 0x1p-24, "value %d", v);
    }
    return in;
}

static int s_count_sent(const struct s_net *net, int phase)
{
    int c = 0;
    for (uint32_t i = 0; i < net->n; i++)
        c += net->sent[i][phase];
    return c;
}

static struct s_net s_n;

Test(fl_secagg_protocol, everyone_survives_and_only_the_sum_is_learned)
{
    struct s_net *net = &s_n;
    s_net_init(net, 10); /* everyone is everyone's neighbour: degree 9, threshold 5 */
    s_net_run(net);
    cr_assert_eq(s_check_sum(net), 10);
    cr_expect_eq(net->refused_srv, 0);
    cr_expect_eq(s_count_sent(net, FL_SECAGG_PHASE_REVEAL), 10);
    for (uint32_t i = 0; i < net->n; i++)
        cr_expect_eq(fl_secagg_client_phase(net->cl[i]), FL_SECAGG_PHASE_DONE);
    s_net_free(net);
}

Test(fl_secagg_protocol, thirty_percent_drop_after_their_masked_input)
{
    struct s_net *net = &s_n;
    s_net_init(net, 20); /* degree 18, threshold 10 */
    cr_assert_eq(net->p.degree, 18);
    for (uint32_t i = 0; i < 6; i++)
        net->stop[i * 3] = FL_SECAGG_PHASE_CONSISTENCY;
    s_net_run(net);
    /* their inputs arrived, so they are in the sum: their self-masks were rebuilt */
    cr_assert_eq(s_check_sum(net), 20);
    cr_expect_eq(fl_secagg_server_answered(net->srv, FL_SECAGG_PHASE_REVEAL), 14);
    s_net_free(net);
}

Test(fl_secagg_protocol, dropouts_at_every_phase)
{
    struct s_net *net = &s_n;
    s_net_init(net, 20);
    net->stop[1] = FL_SECAGG_PHASE_KEYS;         /* never advertised keys */
    net->stop[4] = FL_SECAGG_PHASE_SHARES;       /* advertised keys, never dealt shares */
    net->stop[7] = FL_SECAGG_PHASE_MASKED;       /* dealt shares, no masked input */
    net->stop[8] = FL_SECAGG_PHASE_MASKED;       /* (their pairwise masks are removed) */
    net->stop[11] = FL_SECAGG_PHASE_CONSISTENCY; /* masked input, then gone */
    net->stop[15] = FL_SECAGG_PHASE_REVEAL;      /* signed the survivors, revealed nothing */
    s_net_run(net);
    cr_assert_eq(s_check_sum(net), 16); /* 1, 4, 7, 8 sent no masked input */
    cr_expect_not(fl_secagg_server_survived(net->srv, 7));
    cr_expect(fl_secagg_server_survived(net->srv, 11));
    cr_expect_eq(fl_secagg_server_answered(net->srv, FL_SECAGG_PHASE_KEYS), 19);
    cr_expect_eq(fl_secagg_server_answered(net->srv, FL_SECAGG_PHASE_SHARES), 18);
    cr_expect_eq(fl_secagg_server_answered(net->srv, FL_SECAGG_PHASE_MASKED), 16);
    cr_expect_eq(fl_secagg_server_answered(net->srv, FL_SECAGG_PHASE_CONSISTENCY), 15);
    cr_expect_eq(fl_secagg_server_answered(net->srv, FL_SECAGG_PHASE_REVEAL), 14);
    s_net_free(net);
}

Test(fl_secagg_protocol, fewer_than_t_masked_inputs_abort_before_anything_is_revealed)
{
    struct s_net *net = &s_n;
    s_net_init(net, 10); /* threshold 5 */
    for (uint32_t i = 0; i < 6; i++)
        net->stop[i] = FL_SECAGG_PHASE_MASKED;
    s_net_run(net);
    cr_assert_eq(fl_secagg_server_phase(net->srv), FL_SECAGG_PHASE_ABORTED);
    cr_expect_eq(fl_secagg_server_abort_code(net->srv),
                 FEDTL__SEC_AGG_ABORT_CODE__SECAGG_ABORT_TOO_FEW);
    cr_expect_null(fl_secagg_server_sum(net->srv));
    cr_expect_eq(s_count_sent(net, FL_SECAGG_PHASE_REVEAL), 0, "no share was revealed");
    for (uint32_t i = 6; i < 10; i++)
        cr_expect_eq(fl_secagg_client_phase(net->cl[i]), FL_SECAGG_PHASE_ABORTED,
                     "branch %u heard of the abort", i);
    s_net_free(net);
}

/* The coordinator's floor on the inputs of a sum (min_clients, and distributed DP's noise
 * shares) above the threshold: 7 masked inputs of 10 are enough for threshold 5 but not for 8,
 * and the round then aborts before any share is revealed; with a floor of 7 it completes. */
Test(fl_secagg_protocol, fewer_masked_inputs_than_the_floor_abort_before_anything_is_revealed)
{
    struct s_net *net = &s_n;
    for (uint32_t least = 8; least >= 7; least--) {
        s_net_init(net, 10); /* threshold 5 */
        net->min_inputs = least;
        for (uint32_t i = 0; i < 3; i++)
            net->stop[i] = FL_SECAGG_PHASE_MASKED;
        s_net_run(net);
        cr_expect_eq(fl_secagg_server_answered(net->srv, FL_SECAGG_PHASE_MASKED), 7);
        if (least == 8) {
            cr_assert_eq(fl_secagg_server_phase(net->srv), FL_SECAGG_PHASE_ABORTED);
            cr_expect_eq(fl_secagg_server_abort_code(net->srv),
                         FEDTL__SEC_AGG_ABORT_CODE__SECAGG_ABORT_TOO_FEW);
            cr_expect_null(fl_secagg_server_sum(net->srv));
            cr_expect_eq(s_count_sent(net, FL_SECAGG_PHASE_REVEAL), 0, "no share was revealed");
        } else {
            cr_assert_eq(s_check_sum(net), 7);
        }
        s_net_free(net);
    }
}

Test(fl_secagg_protocol, fewer_than_t_consistency_signatures_abort_too)
{
    struct s_net *net = &s_n;
    s_net_init(net, 10);
    for (uint32_t i = 0; i < 6; i++)
        net->stop[i] = FL_SECAGG_PHASE_CONSISTENCY;
    s_net_run(net);
    cr_assert_eq(fl_secagg_server_phase(net->srv), FL_SECAGG_PHASE_ABORTED);
    cr_expect_eq(s_count_sent(net, FL_SECAGG_PHASE_REVEAL), 0);
    cr_expect_null(fl_secagg_server_sum(net->srv));
    s_net_free(net);
}

/* ---- a lying coordinator ------------------------------------------------------------------ */

static Fedtl__Envelope s_fake_env;
static Fedtl__SecAggSurvivors s_fake_surv;
static ProtobufCBinaryData s_fake_keys[S_MAXB];
static Fedtl__SecAggSignature s_fake_sig[S_MAXB], *s_fake_sigp[S_MAXB];

/* s_fake_env: the survivor list of m without `gone`, with no signatures. */
static Fedtl__Envelope *s_forge_without(const Fedtl__SecAggSurvivors *m, const uint8_t *gone)
{
    fedtl__envelope__init(&s_fake_env);
    fedtl__sec_agg_survivors__init(&s_fake_surv);
    s_fake_surv.round = m->round;
    s_fake_surv.branches = s_fake_keys;
    for (size_t i = 0; i < m->n_branches; i++)
        if (memcmp(m->branches[i].data, gone, FL_SIGN_PK_BYTES) != 0)
            s_fake_keys[s_fake_surv.n_branches++] = m->branches[i];
    s_fake_env.body_case = FEDTL__ENVELOPE__BODY_SA_SURVIVORS;
    s_fake_env.sa_survivors = &s_fake_surv;
    return &s_fake_env;
}

static void s_save(struct s_net *net, int slot, Fedtl__Envelope *env)
{
    free(net->saved[slot]);
    cr_assert_eq(fl_wire_encode(env, &net->saved[slot], &net->saved_len[slot]), 0);
}

/* Tell branches 0 and 1 that branch 9 dropped (it did not), to get its mask key's shares from
 * them while the others reveal its self-mask seed's: keep the honest signed list. */
static Fedtl__Envelope *s_lie(struct s_net *net, uint32_t to, Fedtl__Envelope *env)
{
    if (env->body_case != FEDTL__ENVELOPE__BODY_SA_SURVIVORS)
        return env;
    if (env->sa_survivors->n_signatures > 0) {
        if (!net->saved[0])
            s_save(net, 0, env);
        return env;
    }
    return to <= 1 ? s_forge_without(env->sa_survivors, net->p.branches[9]) : env;
}

/* Keep the consistency signatures of branches 0 and 1 (over the forged list). */
static Fedtl__Envelope *s_keep_sigs(struct s_net *net, uint32_t from, Fedtl__Envelope *env)
{
    if (env->body_case == FEDTL__ENVELOPE__BODY_SA_CONSISTENCY && from <= 1)
        s_save(net, 1 + (int)from, env);
    return env;
}

Test(fl_secagg_protocol, a_coordinator_claiming_different_survivors_is_caught)
{
    struct s_net *net = &s_n;
    s_net_init(net, 10);
    net->stop[5] = FL_SECAGG_PHASE_MASKED; /* one real dropout */
    net->tamper = s_lie;
    net->tamper_srv = s_keep_sigs;
    s_net_run(net);
    /* the honest server code refuses their signatures over another list; the others finish */
    cr_expect_eq(net->refused_srv, 2);
    cr_assert_eq(s_check_sum(net), 9);
    cr_assert_not_null(net->saved[0]);
    cr_assert(net->saved[1] && net->saved[2]);
    size_t before = net->tail;

    /* branch 0 is shown the list the others signed: not the one it signed */
    Fedtl__Envelope *honest = NULL;
    cr_assert_eq(fl_wire_decode(net->saved[0], net->saved_len[0], &honest), 0);
    cr_expect_eq(fl_secagg_client_recv(net->cl[0], honest), FL_ECRYPTO);
    cr_expect_eq(fl_secagg_client_phase(net->cl[0]), FL_SECAGG_PHASE_ABORTED);

    /* branch 1 is shown its own list with the only signatures over it there are: too few */
    Fedtl__Envelope *sig0 = NULL, *sig1 = NULL;
    cr_assert_eq(fl_wire_decode(net->saved[1], net->saved_len[1], &sig0), 0);
    cr_assert_eq(fl_wire_decode(net->saved[2], net->saved_len[2], &sig1), 0);
    Fedtl__Envelope *forged = s_forge_without(honest->sa_survivors, net->p.branches[9]);
    Fedtl__SecAggConsistency *c[2] = {sig0->sa_consistency, sig1->sa_consistency};
    for (int i = 0; i < 2; i++) {
        fedtl__sec_agg_signature__init(&s_fake_sig[i]);
        s_fake_sig[i].branch_key = c[i]->branch_key;
        s_fake_sig[i].signature = c[i]->signature;
        s_fake_sigp[i] = &s_fake_sig[i];
    }
    s_fake_surv.n_signatures = 2;
    s_fake_surv.signatures = s_fake_sigp;
    cr_expect_eq(fl_secagg_client_recv(net->cl[1], forged), FL_ERANGE);
    cr_expect_eq(fl_secagg_client_phase(net->cl[1]), FL_SECAGG_PHASE_ABORTED);

    /* nor do the honest signatures pass for the forged list */
    s_fake_surv.n_signatures = honest->sa_survivors->n_signatures;
    s_fake_surv.signatures = honest->sa_survivors->signatures;
    cr_expect_neq(fl_secagg_client_recv(net->cl[1], forged), 0);
    cr_expect_eq(net->tail, before, "neither revealed a share");
    fl_wire_free(&honest);
    fl_wire_free(&sig0);
    fl_wire_free(&sig1);
    s_net_free(net);
}

/* ---- tampering ------------------------------------------------------------------------------ */

static Fedtl__Envelope *s_flip_share(struct s_net *net, uint32_t to, Fedtl__Envelope *env)
{
    if (to == 3 && env->body_case == FEDTL__ENVELOPE__BODY_SA_SHARE_SET)
        env->sa_share_set->shares[0]->ciphertext.data[40] ^= 0x01;
    return env;
}

Test(fl_secagg_protocol, a_tampered_share_is_refused_and_its_receiver_drops_out)
{
    struct s_net *net = &s_n;
    s_net_init(net, 10);
    net->tamper = s_flip_share;
    s_net_run(net);
    cr_expect_eq(net->refused_cl[3], 1);
    cr_expect_eq(fl_secagg_client_phase(net->cl[3]), FL_SECAGG_PHASE_ABORTED);
    cr_expect_eq(net->sent[3][FL_SECAGG_PHASE_MASKED], 0, "it sent no masked input");
    cr_assert_eq(s_check_sum(net), 9, "its pairwise masks were removed from the others'");
    s_net_free(net);
}

static Fedtl__Envelope *s_flip_key(struct s_net *net, uint32_t to, Fedtl__Envelope *env)
{
    if (to == 4 && env->body_case == FEDTL__ENVELOPE__BODY_SA_KEY_SET)
        env->sa_key_set->keys[2]->s_pk.data[0] ^= 0x80;
    return env;
}

Test(fl_secagg_protocol, a_neighbour_key_not_signed_for_the_setup_is_refused)
{
    struct s_net *net = &s_n;
    s_net_init(net, 10);
    net->tamper = s_flip_key;
    s_net_run(net);
    cr_expect_eq(net->refused_cl[4], 1);
    cr_expect_eq(net->sent[4][FL_SECAGG_PHASE_SHARES], 0, "it dealt no shares");
    cr_assert_eq(s_check_sum(net), 9);
    s_net_free(net);
}

static Fedtl__Envelope *s_bad_inputs(struct s_net *net, uint32_t from, Fedtl__Envelope *env)
{
    if (from == 6 && env->body_case == FEDTL__ENVELOPE__BODY_SA_MASKED)
        env->sa_masked->words[17] ^= 1; /* breaks its signature */
    if (from == 2 && env->body_case == FEDTL__ENVELOPE__BODY_SA_KEYS)
        memcpy(env->sa_keys->branch_key.data, net->p.branches[3], FL_SIGN_PK_BYTES);
    return env;
}

Test(fl_secagg_protocol, the_coordinator_refuses_forged_inputs_and_keys)
{
    struct s_net *net = &s_n;
    s_net_init(net, 10);
    net->tamper_srv = s_bad_inputs;
    s_net_run(net);
    cr_expect_eq(net->refused_srv, 2);
    cr_expect_not(fl_secagg_server_survived(net->srv, 6));
    cr_expect_not(fl_secagg_server_survived(net->srv, 2));
    cr_assert_eq(s_check_sum(net), 8);
    s_net_free(net);
}

/* ---- what the coordinator sees -------------------------------------------------------------- */

static uint64_t s_seen[S_NB_SEEN][S_LENGTH + 1];
static Fedtl__Envelope *s_record(struct s_net *net, uint32_t from, Fedtl__Envelope *env)
{
    if (env->body_case == FEDTL__ENVELOPE__BODY_SA_MASKED)
        memcpy(s_seen[from], env->sa_masked->words, sizeof s_seen[from]);
    return env;
}

/* Pearson correlation of two vectors of n words read as two's complement. */
static double s_corr(const uint64_t *x, const uint64_t *y, size_t n)
{
    double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
    for (size_t v = 0; v < n; v++) {
        double a = (double)(int64_t)x[v], b = (double)(int64_t)y[v];
        sx += a, sy += b, sxx += a * a, syy += b * b, sxy += a * b;
    }
    double m = (double)n;
    return (sxy - sx * sy / m) / sqrt((sxx - sx * sx / m) * (syy - sy * sy / m));
}

/* Every byte the coordinator is given in a round (keys, sealed shares, masked inputs,
 * signatures, reveals): no branch's encoded input is in it, each masked input is uncorrelated
 * with its branch's input, and still the unmasked sum is exact. */
Test(fl_secagg_protocol, nothing_the_coordinator_sees_reveals_an_input)
{
    struct s_net *net = &s_n;
    s_net_init(net, S_NB_SEEN);
    for (int i = 0; i < S_NB_SEEN; i++) /* recognisable inputs: ramps */
        for (int v = 0; v < S_LENGTH; v++)
            net->x[i][v] = (float)(v - S_LENGTH / 2) * 1e-3f * (float)(i + 1);
    net->seen_cap = 1u << 22;
    net->seen = malloc(net->seen_cap);
    net->tamper_srv = s_record;
    s_net_run(net);
    cr_assert_eq(s_check_sum(net), S_NB_SEEN);
    cr_log_info("the coordinator was given %zu bytes", net->seen_len);
    double worst = 0;
    for (int i = 0; i < S_NB_SEEN; i++) {
        uint64_t enc[S_LENGTH + 1];
        uint32_t w = fl_secagg_fixed_weight(&net->p.fixed, net->samples[i]);
        cr_assert_eq(fl_secagg_fixed_encode(&net->p.fixed, net->x[i], S_LENGTH, w, enc), 0);
        double r = s_corr(enc, s_seen[i], S_LENGTH);
        worst = fmax(worst, fabs(r));
        cr_expect_lt(fabs(r), 0.15, "branch %d: r = %.4f", i, r);
        cr_expect_neq(s_seen[i][S_LENGTH], enc[S_LENGTH], "the weight is masked too");
        int found = 0;
        for (int v = 0; v < S_LENGTH; v++) {
            uint8_t le[8];
            for (int b = 0; b < 8; b++)
                le[b] = (uint8_t)(enc[v] >> (8 * b));
            found += v != S_LENGTH / 2 && memmem(net->seen, net->seen_len, le, 8) != NULL;
        }
        cr_expect_eq(found, 0, "%d of branch %d's encoded values are in the bytes", found, i);
    }
    cr_log_info("largest |correlation| of a masked input with its input: %.4f", worst);
    s_net_free(net);
}

/* ---- the codec's limits on the new messages ---------------------------------------------------
 */

Test(fl_secagg_protocol, codec_takes_the_largest_rosters_and_refuses_malformed_entries)
{
    static uint8_t keys[FL_SECAGG_MAX_BRANCHES][FL_SIGN_PK_BYTES], sigs[FL_SECAGG_MAX_BRANCHES][64];
    static ProtobufCBinaryData kb[FL_SECAGG_MAX_BRANCHES];
    static Fedtl__SecAggSignature sg[FL_SECAGG_MAX_BRANCHES], *sp[FL_SECAGG_MAX_BRANCHES];
    randombytes_buf(keys, sizeof keys);
    randombytes_buf(sigs, sizeof sigs);
    Fedtl__Envelope env = FEDTL__ENVELOPE__INIT;
    Fedtl__SecAggSurvivors m = FEDTL__SEC_AGG_SURVIVORS__INIT;
    for (int i = 0; i < FL_SECAGG_MAX_BRANCHES; i++) {
        kb[i] = (ProtobufCBinaryData){FL_SIGN_PK_BYTES, keys[i]};
        fedtl__sec_agg_signature__init(&sg[i]);
        sg[i].branch_key = kb[i];
        sg[i].signature = (ProtobufCBinaryData){64, sigs[i]};
        sp[i] = &sg[i];
    }
    m.round = 4;
    m.n_branches = m.n_signatures = FL_SECAGG_MAX_BRANCHES;
    m.branches = kb;
    m.signatures = sp;
    env.body_case = FEDTL__ENVELOPE__BODY_SA_SURVIVORS;
    env.sa_survivors = &m;
    uint8_t *buf;
    size_t len;
    Fedtl__Envelope *out = NULL;
    cr_assert_eq(fl_wire_encode(&env, &buf, &len), 0);
    cr_expect_eq(fl_wire_decode(buf, len, &out), 0, "%zu bytes: %s", len, fl_error_msg());
    cr_expect(out && out->sa_survivors->n_signatures == FL_SECAGG_MAX_BRANCHES);
    fl_wire_free(&out);
    free(buf);
    m.n_signatures = 1;
    sg[0].signature.len = 63; /* a short signature */
    cr_assert_eq(fl_wire_encode(&env, &buf, &len), 0);
    cr_expect_eq(fl_wire_decode(buf, len, &out), FL_EFORMAT);
    free(buf);

    Fedtl__SecAggShareSet s = FEDTL__SEC_AGG_SHARE_SET__INIT;
    Fedtl__SecAggShare sh = FEDTL__SEC_AGG_SHARE__INIT, *shp = &sh;
    uint8_t ct[FL_SECAGG_SHARE_BYTES + FL_SECAGG_SEAL_OVERHEAD] = {0};
    sh.peer = kb[0];
    sh.ciphertext = (ProtobufCBinaryData){sizeof ct - 1, ct}; /* one byte short */
    s.round = 4;
    s.n_shares = 1;
    s.shares = &shp;
    env.body_case = FEDTL__ENVELOPE__BODY_SA_SHARE_SET;
    env.sa_share_set = &s;
    cr_assert_eq(fl_wire_encode(&env, &buf, &len), 0);
    cr_expect_eq(fl_wire_decode(buf, len, &out), FL_EFORMAT);
    free(buf);
    sh.ciphertext.len = sizeof ct;
    cr_assert_eq(fl_wire_encode(&env, &buf, &len), 0);
    cr_expect_eq(fl_wire_decode(buf, len, &out), 0);
    fl_wire_free(&out);
    free(buf);

    Fedtl__SecAggMasked mk = FEDTL__SEC_AGG_MASKED__INIT; /* no words at all */
    mk.round = 4;
    mk.branch_key = kb[0];
    mk.signature = sg[1].signature;
    env.body_case = FEDTL__ENVELOPE__BODY_SA_MASKED;
    env.sa_masked = &mk;
    cr_assert_eq(fl_wire_encode(&env, &buf, &len), 0);
    cr_expect_eq(fl_wire_decode(buf, len, &out), FL_EFORMAT);
    free(buf);
}

/* ---- strategies -------------------------------------------------------------------------------
 */

Test(fl_secagg_protocol, strategies_that_need_individual_updates_are_refused)
{
    static const char *const ok[] = {"fedavg",  "fedavgm", "fedadagrad",
                                     "fedadam", "fedyogi", "fedprox"};
    static const char *const refused[] = {"median", "trimmed-mean", "krum", "multi-krum"};
    struct fl_strategy_config c;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        cr_assert_eq(fl_strategy_config_default(&c, ok[i]), 0);
        cr_expect_eq(fl_secagg_strategy_check(&c), 0, "%s: %s", ok[i], fl_error_msg());
        c.bound = FL_BOUND_FIXED;
        c.norm_bound = 2.0;
        cr_expect_eq(fl_secagg_strategy_check(&c), 0, "%s with a fixed bound", ok[i]);
        c.bound = FL_BOUND_MEDIAN;
        cr_expect_eq(fl_secagg_strategy_check(&c), FL_EINVAL, "%s with the median bound", ok[i]);
        cr_expect(strstr(fl_error_msg(), "median norm bound"), "%s", fl_error_msg());
    }
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        cr_assert_eq(fl_strategy_config_default(&c, refused[i]), 0);
        cr_expect_eq(fl_secagg_strategy_check(&c), FL_EINVAL, "%s", refused[i]);
        cr_expect(strstr(fl_error_msg(), "must see every branch's update"), "%s", fl_error_msg());
    }
}

Test(fl_secagg_protocol, a_branch_clips_its_own_update_to_a_fixed_bound)
{
    float d[4] = {3, 4, 0, 0};                 /* norm 5 */
    double scale = fl_secagg_clip(d, 4, 10.0); /* (criterion's macros evaluate twice) */
    cr_expect_float_eq(scale, 1.0, 1e-12);
    cr_expect_eq(d[0], 3.0f);
    scale = fl_secagg_clip(d, 4, 2.5);
    cr_expect_float_eq(scale, 0.5, 1e-12);
    cr_expect_float_eq(d[0], 1.5f, 1e-6);
    cr_expect_float_eq(d[1], 2.0f, 1e-6);
    scale = fl_secagg_clip(d, 4, 0);
    cr_expect_float_eq(scale, 1.0, 1e-12);
    cr_expect_float_eq(d[0], 1.5f, 1e-6);
}
