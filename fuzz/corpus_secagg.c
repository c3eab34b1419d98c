/* corpus_secagg: the wire corpus's secure-aggregation frames (fuzz/README.md), one of every
 * message, taken from real rounds of the fixture (fuzz_secagg_params) run in process with the
 * protocol cores: one where every branch finishes, one where two of three stop after their
 * shares (the abort). Reproducible under make_corpus's seeded generator. */
#include "fl_codec.h"
#include "fl_secagg_client.h"
#include "fl_secagg_server.h"
#include "fuzz_util.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_fail(const char *what)
{
    fprintf(stderr, "fuzz_make_corpus: %s\n", what);
    exit(1);
}

#define S_SA_MAXQ 64

struct s_sa_frame {
    bool to_server; /* direction */
    int who;        /* the branch */
    uint8_t *buf;   /* the frame */
    size_t len;     /* its bytes */
};

struct s_sa_net {
    struct s_sa_frame q[S_SA_MAXQ]; /* frames in flight */
    int head, tail;                 /* FIFO */
    int stop_from;                  /* branches >= this send nothing once they dealt shares */
    bool written[64];               /* body types already written */
};

struct s_sa_arg {
    struct s_sa_net *net; /* the round */
    int i;                /* the branch */
};

static void s_sa_push(struct s_sa_net *net, bool to_server, int who, const uint8_t *buf, size_t len)
{
    if (net->tail == S_SA_MAXQ)
        s_fail("secagg corpus: too many frames");
    struct s_sa_frame *f = &net->q[net->tail++];
    *f = (struct s_sa_frame){to_server, who, malloc(len), len};
    if (!f->buf)
        s_fail("secagg corpus: out of memory");
    memcpy(f->buf, buf, len);
}

static void s_sa_srv_send(void *arg, uint32_t branch, Fedtl__Envelope *env)
{
    uint8_t *buf;
    size_t len;
    if (fl_wire_encode(env, &buf, &len) != 0)
        s_fail("secagg corpus: encode");
    s_sa_push(arg, false, (int)branch, buf, len);
    free(buf);
}

static int s_sa_cl_send(void *arg, Fedtl__Envelope *env)
{
    struct s_sa_arg *a = arg;
    uint8_t *buf;
    size_t len;
    if (fl_wire_encode(env, &buf, &len) != 0)
        s_fail("secagg corpus: encode");
    s_sa_push(a->net, true, a->i, buf, len);
    free(buf);
    return 0;
}

/* A round of the fixture; branches from stop_from on stop after dealing their shares. */
static void s_sa_round(corpus_write_fn *write, int stop_from)
{
    static const char *const names[] = {
        [FEDTL__ENVELOPE__BODY_SA_SETUP] = "sa_setup",
        [FEDTL__ENVELOPE__BODY_SA_KEYS] = "sa_keys",
        [FEDTL__ENVELOPE__BODY_SA_KEY_SET] = "sa_key_set",
        [FEDTL__ENVELOPE__BODY_SA_SHARES] = "sa_shares",
        [FEDTL__ENVELOPE__BODY_SA_SHARE_SET] = "sa_share_set",
        [FEDTL__ENVELOPE__BODY_SA_MASKED] = "sa_masked",
        [FEDTL__ENVELOPE__BODY_SA_SURVIVORS] = "sa_survivors",
        [FEDTL__ENVELOPE__BODY_SA_CONSISTENCY] = "sa_consistency",
        [FEDTL__ENVELOPE__BODY_SA_REVEAL] = "sa_reveal",
        [FEDTL__ENVELOPE__BODY_SA_ABORT] = "sa_abort",
    };
    static struct s_sa_net net;
    memset(&net, 0, sizeof net);
    net.stop_from = stop_from;
    uint8_t keys[FUZZ_SECAGG_N][FL_SIGN_PK_BYTES];
    struct fl_secagg_params p;
    struct fl_secagg_ctx ctx;
    struct fl_identity id[FUZZ_SECAGG_N];
    struct s_sa_arg args[FUZZ_SECAGG_N];
    fl_secagg_client_t *cl[FUZZ_SECAGG_N];
    fuzz_secagg_params(&p, keys);
    fuzz_secagg_ctx(&ctx);
    struct fl_secagg_server_ops sops = {.send = s_sa_srv_send};
    struct fl_secagg_client_ops cops = {.send = s_sa_cl_send};
    fl_secagg_server_t *srv = fl_secagg_server_new(&ctx, &p, &sops, &net);
    if (!srv || fl_secagg_server_start(srv) != 0)
        s_fail("secagg corpus: server");
    const float x[FUZZ_SECAGG_LENGTH] = {0.25f, -0.5f, 1.0f, 0.0f};
    for (int i = 0; i < FUZZ_SECAGG_N; i++) {
        fuzz_secagg_identity(&id[i], i);
        args[i] = (struct s_sa_arg){&net, i};
        if (!(cl[i] = fl_secagg_client_new(&id[i], &ctx, &cops, &args[i])) ||
            fl_secagg_client_input(cl[i], x, FUZZ_SECAGG_LENGTH, 10u + (unsigned)i) != 0)
            s_fail("secagg corpus: client");
    }
    for (int guard = 0;
         guard < 8 && (net.head < net.tail || fl_secagg_server_phase(srv) < FL_SECAGG_PHASE_DONE);
         guard++) {
        while (net.head < net.tail) {
            struct s_sa_frame *f = &net.q[net.head++];
            Fedtl__Envelope *env;
            if (fl_wire_decode(f->buf, f->len, &env) != 0)
                s_fail("secagg corpus: a frame does not decode");
            int body = (int)env->body_case;
            bool gone = f->who >= net.stop_from &&
                        fl_secagg_client_phase(cl[f->who]) >= FL_SECAGG_PHASE_MASKED;
            if (body < 64 && names[body] && !net.written[body]) {
                write("wire", names[body], f->buf, f->len);
                net.written[body] = true;
            }
            if (!gone && f->to_server)
                (void)fl_secagg_server_recv(srv, (uint32_t)f->who, env);
            else if (!gone)
                (void)fl_secagg_client_recv(cl[f->who], env);
            fl_wire_free(&env);
            free(f->buf);
        }
        if (fl_secagg_server_phase(srv) < FL_SECAGG_PHASE_DONE)
            (void)fl_secagg_server_timeout(srv);
    }
    for (int i = 0; i < FUZZ_SECAGG_N; i++)
        fl_secagg_client_destroy(&cl[i]);
    fl_secagg_server_destroy(&srv);
}

void corpus_secagg(corpus_write_fn *write)
{
    s_sa_round(write, FUZZ_SECAGG_N); /* everyone finishes: every message but the abort */
    s_sa_round(write, 1);             /* two of three stop: below the threshold, the abort */
}
