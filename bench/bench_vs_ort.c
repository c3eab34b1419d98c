/* bench_vs_ort: fedtl's inference against ONNX Runtime's, turn by turn. ONNX Runtime stays
 * loaded in a child process (bench/ort_serve.js, through two pipes); fedtl's graph (fl_zoo, the
 * same architecture) in this one. Each round gives each engine a turn of PASSES passes, in
 * alternating order, and takes the ratio of their median pass times; the rounds' ratios give a
 * median and quartiles. A turn is a fraction of a second, so the two figures of a ratio meet
 * the same load on a shared host, where bench_graph's engines run seconds apart.
 * Usage: bench_vs_ort --onnx FILE --arch A --hw H [--batch 32] [--threads 1] [--rounds 30]
 *        [--passes 3] (at least; more when a turn would last less than 0.15 s)
 * Prints: bench=vs_ort arch=A hw=H batch=B threads=T rounds=R fedtl_ms=.. ort_ms=..
 *         fedtl_speedup=.. q1=.. q3=..   (speed-up: ONNX Runtime's time over fedtl's) */
#include "bench_common.h"

#include "fl_graph.h"
#include "fl_graphdef.h"
#include "fl_pool.h"
#include "fl_zoo.h"

#include <signal.h>
#include <sys/wait.h>

#define S_MAX_ROUNDS 400
#define S_TURN_S     0.15 /* seconds a turn lasts at least */
#define S_MAX_PASSES 1000

struct s_peer {
    pid_t pid;
    FILE *to, *from;
};

/* Start node on ort_serve.js; 0 when it said "ready", 1 when it skipped, -1 on failure. */
static int s_peer_start(struct s_peer *p, const char *script, const char *onnx, int hw, int batch,
                        int threads)
{
    int in[2], out[2];
    if (pipe(in) || pipe(out))
        return -1;
    char a[3][16];
    snprintf(a[0], sizeof a[0], "%d", hw);
    snprintf(a[1], sizeof a[1], "%d", batch);
    snprintf(a[2], sizeof a[2], "%d", threads);
    if ((p->pid = fork()) < 0)
        return -1;
    if (p->pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        execlp("node", "node", script, onnx, a[0], a[1], a[2], (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    p->to = fdopen(in[1], "w");
    p->from = fdopen(out[0], "r");
    char line[256];
    if (!p->to || !p->from || !fgets(line, sizeof line, p->from))
        return -1;
    return strncmp(line, "ready", 5) == 0 ? 0 : strncmp(line, "skipped", 7) == 0 ? 1 : -1;
}

static void s_peer_stop(struct s_peer *p)
{
    if (p->to)
        fclose(p->to); /* end of its stdin: it exits */
    if (p->from)
        fclose(p->from);
    if (p->pid > 0)
        waitpid(p->pid, NULL, 0);
}

/* Before each turn: the other engine's threads, which spin for a while after their last
 * pass before they sleep (ONNX Runtime's by default, fedtl's pool 50 us), have stopped. */
#define S_GAP_NS 20000000L

static void s_gap(void)
{
    struct timespec ts = {0, S_GAP_NS};
    nanosleep(&ts, NULL);
}

/* ONNX Runtime's median of n passes (seconds), or -1. */
static double s_peer_turn(struct s_peer *p, int n)
{
    char line[64];
    s_gap();
    fprintf(p->to, "%d\n", n);
    fflush(p->to);
    return fgets(line, sizeof line, p->from) ? atof(line) : -1.0;
}

/* fedtl's median of n passes (seconds), or -1. */
static double s_fedtl_turn(fl_graph_t *g, const float *x, int batch, int n, double *times)
{
    s_gap();
    for (int i = 0; i < n; i++) {
        double t0 = fl_now_s();
        if (fl_graph_forward(g, x, batch))
            return -1.0;
        times[i] = fl_now_s() - t0;
    }
    return s_bench_median(times, n);
}

int main(int argc, char **argv)
{
    const char *onnx = NULL, *arch = NULL, *script = "bench/ort_serve.js";
    int hw = 0, batch = 32, threads = 1, rounds = 30, passes = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--onnx") == 0)
            onnx = v;
        else if (strcmp(k, "--arch") == 0)
            arch = v;
        else if (strcmp(k, "--script") == 0)
            script = v;
        else if (strcmp(k, "--hw") == 0)
            hw = atoi(v);
        else if (strcmp(k, "--batch") == 0)
            batch = atoi(v);
        else if (strcmp(k, "--threads") == 0)
            threads = atoi(v);
        else if (strcmp(k, "--rounds") == 0)
            rounds = atoi(v);
        else if (strcmp(k, "--passes") == 0)
            passes = atoi(v);
        else {
            fprintf(stderr, "bench_vs_ort: unknown option %s\n", k);
            return 2;
        }
    }
    if (!onnx || !arch || hw < 1 || batch < 1 || threads < 1 || rounds < 1 ||
        rounds > S_MAX_ROUNDS || passes < 1) {
        fprintf(stderr, "usage: bench_vs_ort --onnx FILE --arch A --hw H [--batch 32] "
                        "[--threads 1] [--rounds 30 (at most 400)] [--passes 3]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct fl_graphdef def;
    struct fl_tensor *params = NULL;
    size_t np = 0;
    if (fl_zoo_build(arch, 3, hw, hw, 10, 42, &def, &params, &np)) {
        fprintf(stderr, "bench_vs_ort: %s\n", fl_error_msg());
        return 1;
    }
    fl_pool_t *pool = threads > 1 ? fl_pool_new(threads) : NULL;
    fl_graph_t *g = fl_graph_from_def(&def, params, np, pool);
    fl_zoo_free_params(params, np);
    fl_graphdef_free(&def);
    size_t dim = (size_t)3 * hw * hw * batch;
    float *x = malloc(dim * sizeof *x);
    double *times = malloc((size_t)passes * sizeof *times), r[S_MAX_ROUNDS];
    double tf[S_MAX_ROUNDS], to[S_MAX_ROUNDS];
    struct s_peer peer = {0};
    int rc = 1;
    if (!g || !x || !times || fl_graph_plan(g, batch, false)) {
        fprintf(stderr, "bench_vs_ort: %s\n", fl_error_msg());
        goto out;
    }
    for (size_t i = 0; i < dim; i++)
        x[i] = (float)(i % 97) / 97.0f;
    int st = s_peer_start(&peer, script, onnx, hw, batch, threads);
    if (st != 0) {
        printf("# bench_vs_ort: ONNX Runtime %s\n",
               st > 0 ? "skipped (not installed)" : "did not start (node, the model?)");
        rc = st > 0 ? 0 : 1;
        goto out;
    }
    /* warm up, as the peer did; then passes enough for a turn of at least S_TURN_S (a turn of
     * fewer, shorter passes ran slower on both engines after the other's turn: batch 1 on 2
     * threads, 20 passes of 0.5 ms, came out 0.91 where 100 passes came out 1.24) */
    double est = s_fedtl_turn(g, x, batch, 3, times);
    if (est > 0 && passes < S_TURN_S / est)
        passes = (int)(S_TURN_S / est) + 1;
    if (passes > S_MAX_PASSES)
        passes = S_MAX_PASSES;
    double *more = realloc(times, (size_t)passes * sizeof *times);
    if (!more)
        goto out;
    times = more;
    fprintf(stderr, "bench_vs_ort: %s %dx%d batch %d, %d threads: %d rounds of %d passes each\n",
            arch, hw, hw, batch, threads, rounds, passes);
    for (int i = 0; i < rounds; i++) { /* fedtl first in even rounds, ONNX Runtime in odd */
        if (i % 2)
            to[i] = s_peer_turn(&peer, passes);
        tf[i] = s_fedtl_turn(g, x, batch, passes, times);
        if (i % 2 == 0)
            to[i] = s_peer_turn(&peer, passes);
        if (tf[i] <= 0 || to[i] <= 0) {
            fprintf(stderr, "bench_vs_ort: round %d failed\n", i);
            goto out;
        }
        r[i] = to[i] / tf[i];
    }
    double mf = s_bench_median(tf, rounds), mo = s_bench_median(to, rounds);
    double mr = s_bench_median(r, rounds); /* sorts r */
    printf("bench=vs_ort arch=%s hw=%d batch=%d threads=%d rounds=%d passes=%d fedtl_ms=%.2f "
           "ort_ms=%.2f fedtl_speedup=%.3f q1=%.3f q3=%.3f\n",
           arch, hw, batch, threads, rounds, passes, mf * 1e3, mo * 1e3, mr, r[rounds / 4],
           r[3 * rounds / 4]);
    rc = 0;
out:
    s_peer_stop(&peer);
    fl_graph_destroy(&g);
    fl_pool_destroy(&pool);
    free(times);
    free(x);
    return rc;
}
