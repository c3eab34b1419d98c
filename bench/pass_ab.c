/* pass_ab: two builds of fedtl's libraries in one process, their inference passes alternated.
 * Each build is a shared object (bench/pass_ab.sh links one from a PIC build tree) opened with
 * RTLD_LOCAL | RTLD_DEEPBIND, so each keeps its own copy of every function. Both build the same
 * zoo graph from the same seed and run it on the same batch, A then B then B then A...; each
 * pair of passes meets the same load, tens of milliseconds apart, where separate processes
 * meet a shared host's load seconds apart. Prints the medians and the median of the paired
 * B/A time ratios with their quartiles, one line of key=value pairs.
 * Usage: pass_ab A.so B.so ARCH HW BATCH THREADS PASSES */
#ifndef _GNU_SOURCE /* dlopen's RTLD_DEEPBIND (the build defines it too) */
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* The entry points used, as the libraries declare them (their structs opaque here). */
typedef int (*zoo_fn)(const char *, int, int, int, int, uint64_t, void *, void **, size_t *);
typedef void *(*pool_fn)(int);
typedef void *(*from_def_fn)(const void *, const void *, size_t, void *);
typedef int (*plan_fn)(void *, int, bool);
typedef int (*forward_fn)(void *, const float *, int);

struct build {
    void *so;
    void *graph;
    forward_fn forward;
};

#define DEF_BYTES (1 << 20) /* room for a struct fl_graphdef, whatever its size */

static void *s_sym(void *so, const char *path, const char *name)
{
    void *f = dlsym(so, name);
    if (!f) {
        fprintf(stderr, "pass_ab: %s has no %s\n", path, name);
        exit(1);
    }
    return f;
}

static void s_open(struct build *b, const char *path, const char *arch, int hw, int batch,
                   int threads)
{
    if (!(b->so = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND))) {
        fprintf(stderr, "pass_ab: %s\n", dlerror());
        exit(1);
    }
    void *def = calloc(1, DEF_BYTES), *params = NULL;
    size_t n = 0;
    zoo_fn zoo = (zoo_fn)s_sym(b->so, path, "fl_zoo_build");
    if (!def || zoo(arch, 3, hw, hw, 10, 42, def, &params, &n)) {
        fprintf(stderr, "pass_ab: %s: no graph %s at %dx%d\n", path, arch, hw, hw);
        exit(1);
    }
    void *pool = threads > 1 ? ((pool_fn)s_sym(b->so, path, "fl_pool_new"))(threads) : NULL;
    b->graph = ((from_def_fn)s_sym(b->so, path, "fl_graph_from_def"))(def, params, n, pool);
    if (!b->graph || ((plan_fn)s_sym(b->so, path, "fl_graph_plan"))(b->graph, batch, false)) {
        fprintf(stderr, "pass_ab: %s: cannot plan %s for batch %d\n", path, arch, batch);
        exit(1);
    }
    b->forward = (forward_fn)s_sym(b->so, path, "fl_graph_forward");
}

static double s_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double s_pass(const struct build *b, const float *x, int batch)
{
    double t0 = s_now();
    if (b->forward(b->graph, x, batch)) {
        fprintf(stderr, "pass_ab: forward failed\n");
        exit(1);
    }
    return s_now() - t0;
}

static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: pass_ab A.so B.so ARCH HW BATCH THREADS PASSES\n");
        return 2;
    }
    const char *arch = argv[3];
    int hw = atoi(argv[4]), batch = atoi(argv[5]), threads = atoi(argv[6]), n = atoi(argv[7]);
    if (hw < 1 || batch < 1 || threads < 1 || n < 4) {
        fprintf(stderr, "pass_ab: HW, BATCH, THREADS at least 1, PASSES at least 4\n");
        return 2;
    }
    struct build a, b;
    s_open(&a, argv[1], arch, hw, batch, threads);
    s_open(&b, argv[2], arch, hw, batch, threads);
    size_t dim = (size_t)3 * hw * hw * batch;
    float *x = malloc(dim * sizeof *x);
    double *ta = malloc((size_t)n * sizeof *ta), *tb = malloc((size_t)n * sizeof *tb);
    double *r = malloc((size_t)n * sizeof *r);
    if (!x || !ta || !tb || !r)
        return 1;
    for (size_t i = 0; i < dim; i++)
        x[i] = (float)(i % 97) / 97.0f;
    for (int i = 0; i < 3; i++) /* warm up both */
        s_pass(&a, x, batch), s_pass(&b, x, batch);
    for (int i = 0; i < n; i++) { /* A B, then B A: neither always goes first */
        if (i & 1) {
            tb[i] = s_pass(&b, x, batch);
            ta[i] = s_pass(&a, x, batch);
        } else {
            ta[i] = s_pass(&a, x, batch);
            tb[i] = s_pass(&b, x, batch);
        }
        r[i] = tb[i] / ta[i];
    }
    qsort(ta, (size_t)n, sizeof *ta, s_cmp);
    qsort(tb, (size_t)n, sizeof *tb, s_cmp);
    qsort(r, (size_t)n, sizeof *r, s_cmp);
    printf("bench=pass_ab arch=%s hw=%d batch=%d threads=%d passes=%d a_ms=%.2f b_ms=%.2f "
           "b_over_a_time=%.3f q1=%.3f q3=%.3f speedup_b=%.3f\n",
           arch, hw, batch, threads, n, ta[n / 2] * 1e3, tb[n / 2] * 1e3, r[n / 2], r[n / 4],
           r[3 * n / 4], 1.0 / r[n / 2]);
    return 0;
}
