/* bench_secagg: what a round costs with secure aggregation (SecAgg+) against the same round
 * without it, n branches with adapters of L float values, side by side in one run: the
 * coordinator's compute, one branch's (branches work in parallel on their own machines, so a
 * round costs one branch + the coordinator), a branch's bytes. Training is the same in both
 * modes and left out of both.
 *
 * Plain round, with the functions fedtl uses: a branch packs its adapter (fl_adapter_pack) into
 * an UpdateBody (fl_wire_encode_body), seals and signs it (fl_seal_update), encodes the frame
 * (fl_wire_encode_update); the coordinator does what fl_intake_take does after its registry
 * checks: fl_wire_decode, fl_verify_update, fl_open_update, fl_wire_decode_body,
 * fl_adapter_view_authenticated, fl_coord_check_adapter, fl_strategy_add (fedavg), the wipes,
 * and at the end fl_strategy_finish. It takes S_DISTINCT distinct updates in turn.
 *
 * Secure round: a branch packs its body the same way, then does what fl_branch_secagg_answer
 * does (decode, unpack the global and trained adapters, the change, fl_secagg_clip) and runs
 * fl_secagg_client; the coordinator runs fl_secagg_server and turns the sum into the round's
 * update as fl_coord_secagg.c does (fl_secagg_fixed_decode, fl_strategy_add), then
 * fl_strategy_finish. All in this process, over real encoded frames (fl_wire_encode /
 * fl_wire_decode), with no network. "30%" rounds lose 30% of the branches after their shares
 * (the coordinator then expands every dropped branch's pairwise masks); the plain round then
 * takes 70% of the updates.
 *
 * Both sides get a pool of --threads threads (fedtl-coordinator's and fedtl-client's --threads).
 * Medians over --repeats; each repeat runs plain, then secure, so a busy machine slows both
 * alike. A secure round the protocol aborts (a random neighbour graph left a dropped branch
 * fewer than t surviving neighbours) is run again on another graph and counted (aborted=).
 * The graph is fl_secagg_degree's for --dropout F, by default the case's drop (0 or 0.3).
 *
 *   build-bench/bench_secagg [--repeats 3] [--threads 2] [--dropout F] [--quick|--grid|--case N,L]
 *
 * --grid: 10, 100 and 500 branches with 30 KB and 4 MB adapters (7,680 and 1,048,576 values;
 * the 500 x 4 MB case holds about 4 GB). L is a multiple of 16 (a LoRA pair of rank 8). */
#include "bench_common.h"

#include "fl_codec.h"
#include "fl_intake.h"
#include "fl_pool.h"
#include "fl_seal.h"
#include "fl_secagg_client.h"
#include "fl_secagg_server.h"
#include "fl_strategy.h"
#include "fl_testutil.h"

#include <sodium.h>

#define S_RANK     8       /* the LoRA pair's rank */
#define S_DISTINCT 4       /* distinct plain updates (and branch keys) */
#define S_FED      "bench" /* federation bound into signatures */
#define S_REPEATS  31      /* most repeats kept for medians */
#define S_ABORTED  1       /* s_secure_round: the protocol aborted (too few answers) */

/* What one case shares between its rounds. */
struct s_env {
    uint32_t n;                              /* branches */
    size_t L;                                /* values per adapter */
    fl_pool_t *pool;                         /* the threads of each side */
    struct fl_identity *hq;                  /* the coordinator */
    struct fl_identity *br[S_DISTINCT];      /* plain branches' keys */
    uint8_t run_id[FL_RUN_ID_BYTES];         /* the run */
    uint8_t base_hash[FL_HASH_BYTES];        /* the base */
    struct fl_tensor global[2];              /* the global adapter's tensors */
    struct fl_adapter_file global_file;      /* and as a file (borrows them) */
    uint8_t *global_bytes;                   /* packed, as a task carries it */
    size_t global_len;                       /* its bytes */
    struct fl_tensor trained[S_DISTINCT][2]; /* trained adapters */
};

/* One round's figures. */
struct s_cost {
    double coord_s, branch_s;   /* the coordinator's compute, one branch's */
    double masked_s, unmask_s;  /* secure: of coord_s, taking the masked inputs, removing masks */
    double out_bytes, in_bytes; /* a branch's traffic */
};

static void s_meta(const struct s_env *e, struct fl_adapter_meta *am)
{
    s_bench_adapter(am, FL_ADAPTER_LORA, S_RANK, 2.0f * S_RANK, "fc1", 5);
    memcpy(am->base_hash, e->base_hash, FL_HASH_BYTES);
    am->round = 0;
}

/* The branch's common last step: its trained adapter t as an UpdateBody. */
static int s_pack_body(const struct s_env *e, const struct fl_tensor *t, uint8_t **body,
                       size_t *len)
{
    struct fl_adapter_meta am;
    s_meta(e, &am);
    uint8_t *abuf = NULL;
    size_t alen = 0;
    int rc = fl_adapter_pack(&am, t, 2, &abuf, &alen);
    Fedtl__UpdateBody b = FEDTL__UPDATE_BODY__INIT;
    b.adapter = (ProtobufCBinaryData){alen, abuf};
    b.samples = 100;
    b.train_loss = 0.5f;
    b.eval_accuracy = 0.75f;
    b.eval_samples = 10;
    if (rc == 0)
        rc = fl_wire_encode_body(&b, body, len);
    free(abuf);
    return rc;
}

static int s_keys(struct s_env *e)
{
    char *dir = fl_test_tmpdir("secagg");
    char path[1200], name[16];
    int rc = dir ? 0 : FL_EIO;
    for (int i = -1; i < S_DISTINCT && rc == 0; i++) {
        snprintf(name, sizeof name, i < 0 ? "hq" : "b%d", i);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        if ((rc = fl_keygen(path, name)) != 0)
            break;
        snprintf(path, sizeof path, "%s/%s.key", dir, name);
        struct fl_identity *id = fl_identity_load(path);
        rc = id ? 0 : FL_EINVAL;
        *(i < 0 ? &e->hq : &e->br[i]) = id;
    }
    if (dir)
        fl_test_rmtree(dir);
    free(dir);
    return rc;
}

static int s_env_init(struct s_env *e, uint32_t n, size_t L, fl_pool_t *pool)
{
    *e = (struct s_env){.n = n, .L = L, .pool = pool};
    randombytes_buf(e->run_id, sizeof e->run_id);
    randombytes_buf(e->base_hash, sizeof e->base_hash);
    int64_t cols = (int64_t)(L / (2 * S_RANK));
    if (L % (2 * S_RANK) || s_keys(e) ||
        fl_tensor_init2(&e->global[0], "fc1.lora_A", S_RANK, cols) ||
        fl_tensor_init2(&e->global[1], "fc1.lora_B", cols, S_RANK))
        return FL_EINVAL;
    s_meta(e, &e->global_file.meta);
    e->global_file.tensors = e->global;
    e->global_file.ntensors = 2;
    struct fl_rng rng;
    fl_rng_seed(&rng, 42);
    for (int d = 0; d < S_DISTINCT; d++)
        for (int t = 0; t < 2; t++) {
            if (fl_tensor_copy(&e->trained[d][t], &e->global[t]))
                return FL_ENOMEM;
            for (size_t v = 0; v < fl_tensor_numel(&e->trained[d][t]); v++)
                e->trained[d][t].data[v] += (float)(fl_rng_uniform(&rng) - 0.5) * 0.02f;
        }
    struct fl_adapter_meta am;
    s_meta(e, &am);
    return fl_adapter_pack(&am, e->global, 2, &e->global_bytes, &e->global_len);
}

static void s_env_free(struct s_env *e)
{
    for (int t = 0; t < 2; t++) {
        fl_tensor_free(&e->global[t]);
        for (int d = 0; d < S_DISTINCT; d++)
            fl_tensor_free(&e->trained[d][t]);
    }
    for (int d = 0; d < S_DISTINCT; d++)
        fl_identity_destroy(&e->br[d]);
    fl_identity_destroy(&e->hq);
    free(e->global_bytes);
}

/* FedAvg from a copy of the global adapter (what the coordinator aggregates into). */
static fl_strategy_t *s_strategy(const struct s_env *e, struct fl_tensor g[2])
{
    struct fl_strategy_config sc;
    if (fl_tensor_copy(&g[0], &e->global[0]) || fl_tensor_copy(&g[1], &e->global[1]) ||
        fl_strategy_config_default(&sc, "fedavg"))
        return NULL;
    fl_strategy_t *s = fl_strategy_new(&sc);
    if (s)
        fl_strategy_set_pool(s, e->pool);
    if (s && fl_strategy_begin(s, g, 2))
        fl_strategy_destroy(&s);
    return s;
}

/* The coordinator takes one plain update frame, as fl_intake_take does after its registry
 * checks. */
static int s_ingest(const struct s_env *e, fl_strategy_t *s, struct fl_plain *plain,
                    const uint8_t *buf, size_t len, uint32_t idx)
{
    Fedtl__Envelope *env = NULL;
    Fedtl__UpdateBody *body = NULL;
    struct fl_adapter_file af = {0};
    struct fl_sealed sealed;
    char id[FL_KEY_ID_LEN], uid[48];
    int rc = fl_wire_decode(buf, len, &env);
    if (rc == 0 && env->body_case != FEDTL__ENVELOPE__BODY_UPDATE)
        rc = FL_EFORMAT;
    const Fedtl__SealedUpdate *u = rc == 0 ? env->update : NULL;
    if (rc == 0 && memcmp(u->base_hash.data, e->base_hash, FL_HASH_BYTES) != 0)
        rc = FL_EMISMATCH;
    if (rc == 0 && (rc = fl_wire_sealed_get(u, &sealed)) == 0)
        rc = fl_verify_update(&sealed, u->branch_key.data, S_FED, e->run_id);
    if (rc == 0)
        rc = fl_open_update(e->hq, &sealed, u->branch_key.data, S_FED, e->run_id, e->pool, plain);
    if (rc == 0)
        rc = fl_wire_decode_body(plain->data, plain->len, &body);
    if (rc == 0) {
        fl_key_id(u->branch_key.data, id);
        rc = fl_adapter_view_authenticated(body->adapter.data, body->adapter.len, id, &af);
    }
    if (rc == 0)
        rc = fl_coord_check_adapter(&e->global_file, e->base_hash, &af, e->pool, NULL);
    snprintf(uid, sizeof uid, "update-%u", idx);
    if (rc == 0)
        rc = fl_strategy_add(s, af.tensors, af.ntensors, (double)body->samples, uid);
    for (size_t i = 0; i < af.ntensors; i++) /* the coordinator's wipes */
        if (af.tensors[i].owned)
            fl_wipe(af.tensors[i].data, fl_tensor_numel(&af.tensors[i]) * sizeof(float), e->pool);
    if (body && body->adapter.data)
        fl_wipe(body->adapter.data, body->adapter.len, e->pool);
    fl_adapter_close(&af);
    fl_wire_free_body(&body);
    fl_plain_wipe(plain, e->pool);
    fl_wire_free(&env);
    return rc;
}

/* A plain round in which `answer` of the n branches send their update. */
static int s_plain_round(const struct s_env *e, uint32_t answer, struct s_cost *c)
{
    uint8_t *frame[S_DISTINCT] = {0};
    size_t flen[S_DISTINCT] = {0};
    struct fl_tensor g[2] = {0};
    struct fl_plain plain = {0};
    memset(c, 0, sizeof *c);
    int rc = 0;
    for (int d = 0; d < S_DISTINCT && rc == 0; d++) {
        uint8_t *body = NULL;
        size_t len = 0;
        struct fl_sealed sealed = {0};
        double t0 = fl_now_s();
        rc = s_pack_body(e, e->trained[d], &body, &len);
        if (rc == 0)
            rc = fl_seal_update(e->br[d], e->hq->box_pk, S_FED, e->run_id, 1, e->base_hash, body,
                                len, &sealed);
        if (rc == 0)
            rc = fl_wire_encode_update(&sealed, &frame[d], &flen[d]);
        c->branch_s += (fl_now_s() - t0) / S_DISTINCT;
        c->out_bytes = (double)flen[d];
        fl_sealed_free(&sealed);
        free(body);
    }
    fl_strategy_t *s = rc == 0 ? s_strategy(e, g) : NULL;
    rc = s ? rc : FL_ENOMEM;
    double t0 = fl_now_s();
    for (uint32_t i = 0; i < answer && rc == 0; i++)
        rc = s_ingest(e, s, &plain, frame[i % S_DISTINCT], flen[i % S_DISTINCT], i);
    if (rc == 0)
        rc = fl_strategy_finish(s, g, 2);
    c->coord_s = fl_now_s() - t0;
    fl_strategy_destroy(&s);
    fl_plain_free(&plain);
    for (int d = 0; d < S_DISTINCT; d++)
        free(frame[d]);
    fl_tensor_free(&g[0]);
    fl_tensor_free(&g[1]);
    return rc;
}

struct s_frame {
    bool to_server; /* direction */
    uint32_t who;   /* the branch */
    uint8_t *buf;   /* the frame */
    size_t len;     /* its bytes */
};

struct s_run {
    struct s_frame *q;                  /* frames in flight */
    size_t head, tail, cap;             /* FIFO */
    fl_secagg_server_t *srv;            /* the coordinator */
    fl_secagg_client_t **cl;            /* the branches */
    bool *drop;                         /* dropped after its shares */
    double cl_s;                        /* seconds spent in all clients */
    uint64_t cl_bytes_out, cl_bytes_in; /* branch traffic, all branches */
    int failed;                         /* a frame could not be queued */
};

struct s_arg {
    struct s_run *run; /* the round */
    uint32_t i;        /* the branch */
};

/* Queue an encoded frame (takes ownership of buf). */
static void s_push(struct s_run *r, bool to_server, uint32_t who, uint8_t *buf, size_t len)
{
    if (r->tail == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 1024;
        struct s_frame *q = realloc(r->q, cap * sizeof *q);
        if (!q) {
            free(buf);
            r->failed = 1;
            return;
        }
        r->q = q;
        r->cap = cap;
    }
    r->q[r->tail++] = (struct s_frame){to_server, who, buf, len};
    if (to_server)
        r->cl_bytes_out += len;
    else
        r->cl_bytes_in += len;
}

static void s_srv_send(void *arg, uint32_t branch, Fedtl__Envelope *env)
{
    uint8_t *buf;
    size_t len;
    if (fl_wire_encode(env, &buf, &len) == 0)
        s_push(arg, false, branch, buf, len);
}

static int s_cl_send(void *arg, Fedtl__Envelope *env)
{
    struct s_arg *a = arg;
    uint8_t *buf;
    size_t len;
    int rc = fl_wire_encode(env, &buf, &len);
    if (rc == 0)
        s_push(a->run, true, a->i, buf, len);
    return rc;
}

/* What fl_branch_secagg_answer does with the trained body: the change from the global adapter,
 * clipped, into a malloc'd *delta. */
static int s_delta(const struct s_env *e, const uint8_t *body, size_t len, float **delta)
{
    Fedtl__UpdateBody *b = NULL;
    struct fl_adapter_file g = {0}, a = {0};
    int rc = fl_wire_decode_body(body, len, &b);
    if (rc == 0)
        rc = fl_adapter_unpack(e->global_bytes, e->global_len, "global adapter", &g);
    if (rc == 0)
        rc = fl_adapter_unpack(b->adapter.data, b->adapter.len, "trained adapter", &a);
    if (rc == 0 && !(*delta = malloc(e->L * sizeof **delta)))
        rc = FL_ENOMEM;
    for (size_t t = 0, off = 0; rc == 0 && t < g.ntensors; t++) {
        size_t m = fl_tensor_numel(&g.tensors[t]);
        for (size_t v = 0; v < m; v++)
            (*delta)[off + v] = a.tensors[t].data[v] - g.tensors[t].data[v];
        off += m;
    }
    if (rc == 0)
        fl_secagg_clip(*delta, e->L, 10.0);
    fl_adapter_close(&a);
    fl_adapter_close(&g);
    fl_wire_free_body(&b);
    return rc;
}

/* The coordinator's use of the sum, as fl_coord_secagg.c's: the weighted mean change added to
 * the global adapter is the round's one update; then the aggregate. */
static int s_use_sum(const struct s_env *e, const struct fl_secagg_params *p, const uint64_t *sum)
{
    struct fl_tensor g[2] = {0}, upd[2] = {0};
    float *mean = malloc(e->L * sizeof *mean);
    uint64_t total = 0;
    fl_strategy_t *s = s_strategy(e, g);
    int rc = mean && s && sum ? 0 : FL_ENOMEM;
    if (rc == 0)
        rc = fl_secagg_fixed_decode(&p->fixed, sum, e->L, mean, &total);
    for (size_t t = 0, off = 0; rc == 0 && t < 2; t++) {
        if ((rc = fl_tensor_copy(&upd[t], &e->global[t])) != 0)
            break;
        for (size_t v = 0; v < fl_tensor_numel(&upd[t]); v++)
            upd[t].data[v] += mean[off + v];
        off += fl_tensor_numel(&upd[t]);
    }
    if (rc == 0 && (rc = fl_strategy_add(s, upd, 2, (double)total, "secure-aggregate")) == 0)
        rc = fl_strategy_finish(s, g, 2);
    fl_strategy_destroy(&s);
    for (int t = 0; t < 2; t++) {
        fl_tensor_free(&upd[t]);
        fl_tensor_free(&g[t]);
    }
    free(mean);
    return rc;
}

/* Deliver the queued frames; the time the server spends on each goes to c. */
static void s_deliver(struct s_run *r, struct s_cost *c)
{
    while (r->head < r->tail) {
        struct s_frame fr = r->q[r->head], *f = &fr; /* a copy: the queue may move meanwhile */
        r->q[r->head++].buf = NULL;
        Fedtl__Envelope *env = NULL;
        bool to_gone = !f->to_server && r->drop[f->who] &&
                       fl_secagg_client_phase(r->cl[f->who]) >= FL_SECAGG_PHASE_MASKED;
        double t0 = fl_now_s();
        if (!to_gone && fl_wire_decode(f->buf, f->len, &env) == 0) {
            if (f->to_server)
                fl_secagg_server_recv(r->srv, f->who, env);
            else
                fl_secagg_client_recv(r->cl[f->who], env);
        }
        double dt = fl_now_s() - t0;
        int kind = f->to_server && env ? (int)env->body_case : 0;
        *(f->to_server ? &c->coord_s : &r->cl_s) += dt;
        c->masked_s += kind == FEDTL__ENVELOPE__BODY_SA_MASKED ? dt : 0;
        c->unmask_s += kind == FEDTL__ENVELOPE__BODY_SA_REVEAL ? dt : 0; /* the last removes them */
        fl_wire_free(&env);
        free(f->buf);
    }
}

static double s_dropout = -1; /* --dropout (negative, the default: the case's drop fraction) */
#define S_GRAPH_DROPOUT(drop) (s_dropout >= 0 ? s_dropout : (drop) ? 0.3 : 0)
/* One secure round of the case's n branches; drop: 30% leave after their shares. */
static int s_secure_round(const struct s_env *e, bool drop, struct s_cost *c)
{
    uint32_t n = e->n;
    struct s_run run = {0}, *r = &run;
    memset(c, 0, sizeof *c);
    struct fl_secagg_ctx ctx = {.federation = S_FED, .round = 1};
    memcpy(ctx.run_id, e->run_id, FL_RUN_ID_BYTES);
    struct fl_secagg_params p = {.n = n, .fixed = FL_SECAGG_FIXED_DEFAULT, .length = e->L};
    p.branches = malloc((size_t)n * FL_SIGN_PK_BYTES);
    randombytes_buf(p.graph_seed, sizeof p.graph_seed);
    p.degree = fl_secagg_degree(n, S_GRAPH_DROPOUT(drop));
    p.threshold = fl_secagg_threshold(p.degree);
    struct fl_identity **id = calloc(n, sizeof *id);
    struct s_arg *args = calloc(n, sizeof *args);
    r->cl = calloc(n, sizeof *r->cl);
    r->drop = calloc(n, sizeof *r->drop);
    for (uint32_t i = 0; i < n; i++) {
        id[i] = sodium_malloc(sizeof *id[i]);
        crypto_sign_keypair(id[i]->sign_pk, id[i]->sign_sk);
        memcpy(p.branches[i], id[i]->sign_pk, FL_SIGN_PK_BYTES);
        r->drop[i] = drop && i % 10 < 3;
    }
    /* One branch's preparation, timed once: every branch does the same. */
    uint8_t *body = NULL;
    size_t body_len = 0;
    float *x = NULL;
    double t0 = fl_now_s();
    int rc = s_pack_body(e, e->trained[0], &body, &body_len);
    if (rc == 0)
        rc = s_delta(e, body, body_len, &x);
    double prep_s = fl_now_s() - t0;
    struct fl_secagg_server_ops sops = {.send = s_srv_send, .pool = e->pool};
    struct fl_secagg_client_ops cops = {.send = s_cl_send, .pool = e->pool};
    t0 = fl_now_s();
    r->srv = rc == 0 ? fl_secagg_server_new(&ctx, &p, &sops, r) : NULL;
    if (!r->srv || fl_secagg_server_start(r->srv))
        rc = FL_EINVAL;
    c->coord_s += fl_now_s() - t0;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        args[i] = (struct s_arg){r, i};
        t0 = fl_now_s();
        r->cl[i] = fl_secagg_client_new(id[i], &ctx, &cops, &args[i]);
        fl_secagg_client_input(r->cl[i], x, e->L, 100 + i);
        r->cl_s += fl_now_s() - t0;
    }
    for (int guard = 0; guard < 10 && rc == 0; guard++) {
        s_deliver(r, c);
        if (fl_secagg_server_phase(r->srv) >= FL_SECAGG_PHASE_DONE)
            break;
        t0 = fl_now_s();
        fl_secagg_server_timeout(r->srv);
        double dt = fl_now_s() - t0;
        c->coord_s += dt;
        if (fl_secagg_server_phase(r->srv) == FL_SECAGG_PHASE_DONE)
            c->unmask_s += dt;
    }
    if (rc == 0 && fl_secagg_server_phase(r->srv) == FL_SECAGG_PHASE_ABORTED)
        rc = S_ABORTED;
    t0 = fl_now_s();
    if (rc == 0)
        rc = s_use_sum(e, &p, fl_secagg_server_sum(r->srv));
    c->coord_s += fl_now_s() - t0;
    c->branch_s = r->cl_s / n + prep_s;
    c->out_bytes = (double)r->cl_bytes_out / n;
    c->in_bytes = (double)r->cl_bytes_in / n;
    rc = rc ? rc : r->failed ? FL_ENOMEM : 0;
    fl_secagg_server_destroy(&r->srv);
    for (uint32_t i = 0; i < n; i++) {
        fl_secagg_client_destroy(&r->cl[i]);
        sodium_free(id[i]);
    }
    for (size_t f = r->head; f < r->tail; f++)
        free(r->q[f].buf);
    free(body);
    free(x);
    free(r->cl);
    free(r->drop);
    free(r->q);
    free(id);
    free(args);
    free(p.branches);
    return rc;
}

static int s_cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double s_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, s_cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The median of every field over the repeats. */
static struct s_cost s_med(const struct s_cost *c, int reps)
{
    double v[6][S_REPEATS];
    for (int i = 0; i < reps; i++) {
        const double f[6] = {c[i].coord_s,  c[i].branch_s,  c[i].masked_s,
                             c[i].unmask_s, c[i].out_bytes, c[i].in_bytes};
        for (int j = 0; j < 6; j++)
            v[j][i] = f[j];
    }
    return (struct s_cost){s_median(v[0], reps), s_median(v[1], reps), s_median(v[2], reps),
                           s_median(v[3], reps), s_median(v[4], reps), s_median(v[5], reps)};
}

/* Run one case; prints its two lines. */
static int s_case(uint32_t n, size_t L, int reps, fl_pool_t *pool, int threads)
{
    struct s_env e;
    if (s_env_init(&e, n, L, pool)) {
        fprintf(stderr, "bench_secagg: cannot set up %u x %zu: %s\n", n, L, fl_error_msg());
        s_env_free(&e);
        return 1;
    }
    struct s_cost pl[2][S_REPEATS], se[2][S_REPEATS];
    uint32_t dropped = n / 10 * 3 + (n % 10 < 3 ? n % 10 : 3); /* s_secure_round's i % 10 < 3 */
    int rc = 0, aborted[2] = {0, 0};
    for (int rep = 0; rep < reps && rc == 0; rep++)
        for (int drop = 0; drop < 2 && rc == 0; drop++) {
            if ((rc = s_plain_round(&e, drop ? n - dropped : n, &pl[drop][rep])) == 0)
                do /* a round the graph left with too few neighbours: another graph */
                    aborted[drop] += (rc = s_secure_round(&e, drop, &se[drop][rep])) == S_ABORTED;
                while (rc == S_ABORTED && aborted[drop] < 10);
            if (rc)
                fprintf(stderr, "bench_secagg: a %s round failed: %s\n", drop ? "30%" : "0%",
                        fl_error_msg());
        }
    for (int drop = 0; drop < 2 && rc == 0; drop++) {
        struct s_cost P = s_med(pl[drop], reps), S = s_med(se[drop], reps);
        double pr = P.coord_s + P.branch_s, sr = S.coord_s + S.branch_s;
        uint32_t k = fl_secagg_degree(n, S_GRAPH_DROPOUT(drop));
        printf("bench=secagg n=%u values=%zu drop=%d degree=%u threshold=%u threads=%d "
               "repeats=%d plain_coord_s=%.4f plain_branch_s=%.4f plain_round_s=%.4f "
               "plain_bytes=%.0f secure_coord_s=%.4f secure_branch_s=%.4f secure_round_s=%.4f "
               "coord_masked_s=%.4f coord_unmask_s=%.4f branch_bytes_out=%.0f "
               "branch_bytes_in=%.0f ratio=%.2f aborted=%d\n",
               n, L, drop ? 30 : 0, k, fl_secagg_threshold(k), threads, reps, P.coord_s, P.branch_s,
               pr, P.out_bytes, S.coord_s, S.branch_s, sr, S.masked_s, S.unmask_s, S.out_bytes,
               S.in_bytes, sr / pr, aborted[drop]);
        printf(
            "%-4u %-8zu %-4s | %8.3f %8.3f %8.3f %9.0f | %8.3f %8.3f %8.3f %9.0f %7.0f | %5.2f\n",
            n, L, drop ? "30%" : "0", P.coord_s, P.branch_s, pr, P.out_bytes, S.coord_s, S.branch_s,
            sr, S.out_bytes, S.in_bytes, sr / pr);
        fflush(stdout);
    }
    s_env_free(&e);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    int repeats = 3, threads = 2;
    bool quick = false, grid = false, have_one = false;
    struct s_case {
        uint32_t n;
        size_t L;
    } one = {0, 0};
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--repeats") == 0 && a + 1 < argc)
            repeats = atoi(argv[++a]);
        else if (strcmp(argv[a], "--threads") == 0 && a + 1 < argc)
            threads = atoi(argv[++a]);
        else if (strcmp(argv[a], "--dropout") == 0 && a + 1 < argc)
            s_dropout = atof(argv[++a]);
        else if (strcmp(argv[a], "--quick") == 0)
            quick = true;
        else if (strcmp(argv[a], "--grid") == 0)
            grid = true;
        else if (strcmp(argv[a], "--case") == 0 && a + 1 < argc &&
                 sscanf(argv[++a], "%u,%zu", &one.n, &one.L) == 2)
            have_one = true;
        else {
            fprintf(stderr, "usage: bench_secagg [--repeats N] [--threads T] [--dropout F] "
                            "[--quick | --grid | --case N,L]\n");
            return 2;
        }
    }
    if (sodium_init() < 0 || repeats < 1 || repeats > S_REPEATS || threads < 1 ||
        !(s_dropout < 0.5) ||
        (have_one && (one.n < 2 || one.n > FL_SECAGG_MAX_BRANCHES || one.L == 0)))
        return 2;
    static const struct s_case s_default[] = {
        {10, 8192}, {10, 100000}, {30, 100000}, {100, 100000}, {10, 1000000}};
    static const struct s_case s_grid[] = {{10, 7680},    {100, 7680},    {500, 7680},
                                           {10, 1048576}, {100, 1048576}, {500, 1048576}};
    const struct s_case *cases = have_one ? &one : grid ? s_grid : s_default;
    size_t ncases = have_one ? 1
                    : grid   ? sizeof s_grid / sizeof s_grid[0]
                    : quick  ? 2
                             : sizeof s_default / sizeof s_default[0];
    fl_pool_t *pool = fl_pool_new(threads);
    if (!pool)
        return 1;
    printf("%-4s %-8s %-4s | %8s %8s %8s %9s | %8s %8s %8s %9s %7s | %5s\n", "n", "values", "drop",
           "coord_s", "branch_s", "round_s", "bytes", "coord_s", "branch_s", "round_s", "out", "in",
           "ratio");
    printf("%-18s | %-35s | %-45s |\n", "", "plain round", "secure round");
    int rc = 0; /* one case after another while they succeed */
    for (size_t c = 0; c < ncases && rc == 0; c++)
        rc = s_case(cases[c].n, cases[c].L, repeats, pool, threads);
    fl_pool_destroy(&pool);
    return rc;
}
