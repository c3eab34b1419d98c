/* bench_secagg: what secure aggregation (SecAgg+) adds to a round, in compute and bytes, for n
 * branches and adapters of L values: every branch and the coordinator run in this process
 * (fl_secagg_client, fl_secagg_server) and exchange real encoded frames (fl_wire_encode /
 * fl_wire_decode), with no network. For each case it reports the time the coordinator spends
 * (setup, forwarding, summing the masked inputs, rebuilding secrets and removing masks), the
 * mean time one branch spends (keys, shares, masking its input, revealing), the bytes a branch
 * sends and receives, and against that the plain sum of n float updates the coordinator does
 * without secure aggregation. "drop" rounds lose 30% of the branches after their shares (the
 * costly case: the coordinator expands every dropped branch's pairwise masks).
 *
 *   build-bench/bench_secagg [--repeats 3] [--quick | --grid]
 *
 * --grid runs 10, 100 and 500 branches with 30 KB and 4 MB adapters (7,680 and 1,048,576
 * float values) instead of the default cases; the 500 x 4 MB case holds about 4 GB.
 *
 * Prints `bench=secagg ...` lines, then a table. */
#include "fl_codec.h"
#include "fl_error.h"
#include "fl_secagg_client.h"
#include "fl_secagg_server.h"
#include "fl_time.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct s_frame {
    bool to_server; /* direction */
    uint32_t who;   /* the branch */
    uint8_t *buf;   /* the frame */
    size_t len;     /* its bytes */
};

struct s_run {
    uint32_t n;                         /* branches */
    struct s_frame *q;                  /* frames in flight */
    size_t head, tail, cap;             /* FIFO */
    fl_secagg_server_t *srv;            /* the coordinator */
    fl_secagg_client_t **cl;            /* the branches */
    bool *drop;                         /* dropped after its shares */
    double srv_s, cl_s;                 /* seconds spent in the server, in all clients */
    uint64_t cl_bytes_out, cl_bytes_in; /* branch traffic, all branches */
};

struct s_arg {
    struct s_run *run; /* the round */
    uint32_t i;        /* the branch */
};

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void s_push(struct s_run *r, bool to_server, uint32_t who, const uint8_t *buf, size_t len)
{
    if (r->tail == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 1024;
        r->q = realloc(r->q, r->cap * sizeof *r->q);
    }
    struct s_frame *f = &r->q[r->tail++];
    *f = (struct s_frame){to_server, who, malloc(len), len};
    memcpy(f->buf, buf, len);
    if (to_server)
        r->cl_bytes_out += len;
    else
        r->cl_bytes_in += len;
}

static void s_srv_send(void *arg, uint32_t branch, Fedtl__Envelope *env)
{
    uint8_t *buf;
    size_t len;
    if (fl_wire_encode(env, &buf, &len) == 0) {
        s_push(arg, false, branch, buf, len);
        free(buf);
    }
}

static int s_cl_send(void *arg, Fedtl__Envelope *env)
{
    struct s_arg *a = arg;
    uint8_t *buf;
    size_t len;
    int rc = fl_wire_encode(env, &buf, &len);
    if (rc == 0) {
        s_push(a->run, true, a->i, buf, len);
        free(buf);
    }
    return rc;
}

/* One round of n branches with L values each; returns 0 when it ends with the sum. */
static int s_round(uint32_t n, size_t L, bool drop, struct s_run *r)
{
    memset(r, 0, sizeof *r);
    r->n = n;
    struct fl_secagg_ctx ctx = {.federation = "bench", .round = 1};
    randombytes_buf(ctx.run_id, sizeof ctx.run_id);
    struct fl_secagg_params p = {.n = n, .fixed = FL_SECAGG_FIXED_DEFAULT, .length = L};
    p.branches = malloc((size_t)n * FL_SIGN_PK_BYTES);
    randombytes_buf(p.graph_seed, sizeof p.graph_seed);
    p.degree = fl_secagg_degree(n);
    p.threshold = fl_secagg_threshold(p.degree);
    struct fl_identity **id = calloc(n, sizeof *id);
    struct s_arg *args = calloc(n, sizeof *args);
    float *x = malloc(L * sizeof *x);
    r->cl = calloc(n, sizeof *r->cl);
    r->drop = calloc(n, sizeof *r->drop);
    for (size_t v = 0; v < L; v++)
        x[v] = (float)v * 1e-6f;
    for (uint32_t i = 0; i < n; i++) {
        id[i] = sodium_malloc(sizeof *id[i]);
        crypto_sign_keypair(id[i]->sign_pk, id[i]->sign_sk);
        memcpy(p.branches[i], id[i]->sign_pk, FL_SIGN_PK_BYTES);
        r->drop[i] = drop && i % 10 < 3;
    }
    struct fl_secagg_server_ops sops = {.send = s_srv_send};
    struct fl_secagg_client_ops cops = {.send = s_cl_send};
    double t0 = s_now();
    r->srv = fl_secagg_server_new(&ctx, &p, &sops, r);
    if (!r->srv || fl_secagg_server_start(r->srv))
        return FL_EINVAL;
    r->srv_s += s_now() - t0;
    for (uint32_t i = 0; i < n; i++) {
        args[i] = (struct s_arg){r, i};
        t0 = s_now();
        r->cl[i] = fl_secagg_client_new(id[i], &ctx, &cops, &args[i]);
        fl_secagg_client_input(r->cl[i], x, L, 100 + i);
        r->cl_s += s_now() - t0;
    }
    for (int guard = 0; guard < 10; guard++) {
        while (r->head < r->tail) {
            struct s_frame *f = &r->q[r->head++];
            Fedtl__Envelope *env = NULL;
            bool to_gone = !f->to_server && r->drop[f->who] &&
                           fl_secagg_client_phase(r->cl[f->who]) >= FL_SECAGG_PHASE_MASKED;
            t0 = s_now();
            if (!to_gone && fl_wire_decode(f->buf, f->len, &env) == 0) {
                if (f->to_server)
                    fl_secagg_server_recv(r->srv, f->who, env);
                else
                    fl_secagg_client_recv(r->cl[f->who], env);
            }
            double dt = s_now() - t0;
            if (f->to_server)
                r->srv_s += dt;
            else
                r->cl_s += dt;
            fl_wire_free(&env);
            free(f->buf);
        }
        enum fl_secagg_phase ph = fl_secagg_server_phase(r->srv);
        if (ph >= FL_SECAGG_PHASE_DONE)
            break;
        t0 = s_now();
        fl_secagg_server_timeout(r->srv);
        r->srv_s += s_now() - t0;
    }
    int rc = fl_secagg_server_sum(r->srv) ? 0 : FL_EINVAL;
    fl_secagg_server_destroy(&r->srv);
    for (uint32_t i = 0; i < n; i++) {
        fl_secagg_client_destroy(&r->cl[i]);
        sodium_free(id[i]);
    }
    free(r->cl);
    free(r->drop);
    free(r->q);
    free(id);
    free(args);
    free(x);
    free(p.branches);
    return rc;
}

/* The coordinator's plain FedAvg sum of n float updates of L values (in double). */
static double s_plain(uint32_t n, size_t L)
{
    float *u = malloc(L * sizeof *u);
    double *acc = calloc(L, sizeof *acc);
    for (size_t v = 0; v < L; v++)
        u[v] = (float)v * 1e-6f;
    double t0 = s_now();
    for (uint32_t i = 0; i < n; i++)
        for (size_t v = 0; v < L; v++)
            acc[v] += (double)(100 + i) * u[v];
    double dt = s_now() - t0;
    volatile double sink = acc[L / 2];
    (void)sink;
    free(u);
    free(acc);
    return dt;
}

int main(int argc, char **argv)
{
    int repeats = 3;
    bool quick = false, grid = false;
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--repeats") == 0 && a + 1 < argc)
            repeats = atoi(argv[++a]);
        else if (strcmp(argv[a], "--quick") == 0)
            quick = true;
        else if (strcmp(argv[a], "--grid") == 0)
            grid = true;
        else {
            fprintf(stderr, "usage: bench_secagg [--repeats N] [--quick | --grid]\n");
            return 2;
        }
    }
    if (sodium_init() < 0 || repeats < 1)
        return 1;
    struct s_case {
        uint32_t n;
        size_t L;
    };
    static const struct s_case s_default[] = {
        {10, 8133}, {10, 100000}, {30, 100000}, {100, 100000}, {10, 1000000}};
    static const struct s_case s_grid[] = {{10, 7680},    {100, 7680},    {500, 7680},
                                           {10, 1048576}, {100, 1048576}, {500, 1048576}};
    const struct s_case *cases = grid ? s_grid : s_default;
    size_t ncases = grid    ? sizeof s_grid / sizeof s_grid[0]
                    : quick ? 2
                            : sizeof s_default / sizeof s_default[0];
    printf("%-5s %-9s %-5s %-4s %-3s %12s %12s %12s %12s %12s\n", "n", "values", "drop", "k", "t",
           "coord_s", "branch_s", "plain_sum_s", "branch_out", "branch_in");
    for (size_t c = 0; c < ncases; c++)
        for (int drop = 0; drop < 2; drop++) {
            uint32_t n = cases[c].n;
            size_t L = cases[c].L;
            double srv = 1e30, cl = 1e30, plain = 1e30;
            uint64_t out = 0, in = 0;
            for (int rep = 0; rep < repeats; rep++) {
                struct s_run r;
                if (s_round(n, L, drop, &r) != 0) {
                    fprintf(stderr, "bench_secagg: the round failed: %s\n", fl_error_msg());
                    return 1;
                }
                srv = r.srv_s < srv ? r.srv_s : srv; /* best of: the machine is shared */
                cl = r.cl_s / n < cl ? r.cl_s / n : cl;
                out = r.cl_bytes_out / n;
                in = r.cl_bytes_in / n;
                double pl = s_plain(n, L);
                plain = pl < plain ? pl : plain;
            }
            uint32_t k = fl_secagg_degree(n);
            printf("bench=secagg n=%u values=%zu drop=%d degree=%u threshold=%u coord_s=%.4f "
                   "branch_s=%.4f plain_sum_s=%.5f branch_bytes_out=%llu branch_bytes_in=%llu\n",
                   n, L, drop ? 30 : 0, k, fl_secagg_threshold(k), srv, cl, plain,
                   (unsigned long long)out, (unsigned long long)in);
            printf("%-5u %-9zu %-5s %-4u %-3u %12.4f %12.4f %12.5f %12llu %12llu\n", n, L,
                   drop ? "30%" : "0", k, fl_secagg_threshold(k), srv, cl, plain,
                   (unsigned long long)out, (unsigned long long)in);
            fflush(stdout);
        }
    return 0;
}
