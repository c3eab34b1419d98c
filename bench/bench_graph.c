/* bench_graph: LoRA fine-tuning and inference throughput (images/s) of the graph engine on
 * resnet18 and mobilenet_v2 (fl_zoo), against PyTorch (bench/torch_graph.py) and, for
 * inference, ONNX Runtime (bench/ort_graph.js on an .onnx file). Per arch and input size, each
 * round runs fedtl at every thread count (a fresh graph on an fl_pool of that size), ONNX
 * Runtime right after it at the same count, then PyTorch, so that the contenders meet the same
 * machine load (it changes within minutes here); figures are medians over rounds. */
#include "bench_common.h"

#include "fl_graph.h"
#include "fl_graphdef.h"
#include "fl_pool.h"
#include "fl_zoo.h"

#include <math.h>

#define S_MAX_ROUNDS  16
#define S_MAX_THREADS 4
#define S_CLASSES     10

/* What one round measures, per thread count: train (batch), infer at batch 1 and at batch. */
enum { S_TRAIN, S_INFER1, S_INFERB, S_NFIG };
static const char *const s_fig_name[S_NFIG] = {"train", "infer", "infer"};

struct s_opts {
    const char *archs; /* comma list */
    const char *sizes; /* comma list of hw */
    int threads[S_MAX_THREADS], nthreads;
    int batch, steps, warmup, rounds, rank;
    const char *torch;    /* script, NULL: none */
    const char *ort;      /* ort_graph.js, NULL: none */
    const char *onnx_dir; /* where torch's exports go for ORT (or fedtl's, by name) */
    bool portable;        /* fedtl without its own kernels (fl_graph_use_simd false) */
    bool convs;           /* time single convs instead: fl_convk against OpenBLAS */
};

/* LoRA targets: resnet18's last stage, mobilenet_v2's last three blocks' 1x1 convs. */
static int s_targets(const char *arch, const char *out[8])
{
    static const char *const rn[] = {"layer4.0.conv1", "layer4.0.conv2", "layer4.1.conv1",
                                     "layer4.1.conv2"};
    static const char *const mb[] = {"features.15.conv.0.0", "features.15.conv.2",
                                     "features.16.conv.0.0", "features.16.conv.2",
                                     "features.17.conv.0.0", "features.17.conv.2"};
    bool r = strcmp(arch, "resnet18") == 0;
    int n = r ? 4 : 6;
    for (int i = 0; i < n; i++)
        out[i] = r ? rn[i] : mb[i];
    return n;
}

/* A planned graph of arch at hw on pool: with LoRA and a trainable head when train. */
static fl_graph_t *s_graph(const char *arch, int hw, bool train, int rank, int batch,
                           fl_pool_t *pool, bool portable)
{
    struct fl_graphdef def;
    struct fl_tensor *p = NULL;
    size_t n = 0;
    if (fl_zoo_build(arch, 3, hw, hw, S_CLASSES, 42, &def, &p, &n))
        return NULL;
    fl_graph_t *g = fl_graph_from_def(&def, p, n, pool);
    fl_zoo_free_params(p, n);
    if (g)
        fl_graph_use_simd(g, !portable);
    const char *tg[8];
    int nt = s_targets(arch, tg), rc = g ? 0 : FL_ENOMEM;
    bool rn = strcmp(arch, "resnet18") == 0;
    for (int i = 0; train && rc == 0 && i < nt; i++)
        rc = fl_graph_add_lora(g, tg[i], rank, 2.0f * (float)rank, 7 + (uint64_t)i, true);
    if (train && rc == 0)
        rc = fl_graph_set_trainable(g, rn ? "fc.weight" : "classifier.1.weight", true);
    if (train && rc == 0)
        rc = fl_graph_set_trainable(g, rn ? "fc.bias" : "classifier.1.bias", true);
    if (rc == 0)
        rc = fl_graph_plan(g, batch, false);
    if (rc) {
        fprintf(stderr, "bench_graph: %s: %s\n", arch, fl_error_msg());
        fl_graph_destroy(&g);
    }
    fl_graphdef_free(&def);
    return g;
}

/* SGD on every parameter that has a gradient. */
static void s_sgd(fl_graph_t *g, float lr)
{
    for (int k = 0; k < fl_graph_nparams(g); k++) {
        const char *name = fl_graph_param_name(g, k);
        const float *gr = fl_graph_grad(g, name);
        size_t n;
        float *v = fl_graph_param(g, name, &n);
        for (size_t i = 0; gr && i < n; i++)
            v[i] -= lr * gr[i];
    }
}

/* Median images/s of fedtl at t threads; fig[S_TRAIN..S_INFERB]; check: the first training
 * loss and the sum of the batch's inference logits (identical whatever the BLAS kernels, to
 * rounding). */
static int s_fedtl(const struct s_opts *o, const char *arch, int hw, int t, double fig[S_NFIG],
                   double check[2])
{
    fl_pool_t *pool = t > 1 ? fl_pool_new(t) : NULL;
    size_t dim = (size_t)3 * hw * hw;
    float *x = fl_falloc(dim * (size_t)o->batch);
    int32_t *y = malloc(sizeof *y * (size_t)o->batch);
    double *times = malloc(sizeof *times * (size_t)(4 * o->steps));
    fl_graph_t *g = NULL;
    int rc = FL_ENOMEM;
    if ((t > 1 && !pool) || !x || !y || !times)
        goto out;
    struct fl_rng r;
    fl_rng_seed(&r, 3);
    for (size_t i = 0; i < dim * (size_t)o->batch; i++)
        x[i] = (float)fl_rng_uniform(&r);
    for (int i = 0; i < o->batch; i++)
        y[i] = (int32_t)fl_rng_below(&r, S_CLASSES);
    if (!(g = s_graph(arch, hw, true, o->rank, o->batch, pool, o->portable)))
        goto out;
    for (int s = 0; s < o->warmup + o->steps; s++) {
        double t0 = fl_now_s(), loss;
        if ((rc = fl_graph_train_step(g, x, y, o->batch, &loss, NULL)))
            goto out;
        s_sgd(g, 1e-3f);
        if (s == 0)
            check[0] = loss;
        if (s >= o->warmup)
            times[s - o->warmup] = fl_now_s() - t0;
    }
    fig[S_TRAIN] = o->batch / s_bench_median(times, o->steps);
    fl_graph_destroy(&g);
    rc = FL_ENOMEM;
    if (!(g = s_graph(arch, hw, false, o->rank, o->batch, pool, o->portable)))
        goto out;
    for (int f = S_INFER1; f <= S_INFERB; f++) {
        int n = f == S_INFER1 ? 1 : o->batch, steps = f == S_INFER1 ? 4 * o->steps : o->steps;
        for (int s = 0; s < o->warmup + steps; s++) {
            double t0 = fl_now_s();
            if ((rc = fl_graph_forward(g, x, n)))
                goto out;
            if (s >= o->warmup)
                times[s - o->warmup] = fl_now_s() - t0;
        }
        fig[f] = n / s_bench_median(times, steps);
    }
    size_t per;
    const float *logits = fl_graph_output(g, &per);
    check[1] = 0;
    for (size_t i = 0; i < per * (size_t)o->batch; i++)
        check[1] += logits[i];
    rc = 0;
out:
    fl_graph_destroy(&g);
    fl_pool_destroy(&pool);
    free(times);
    free(y);
    free(x);
    return rc;
}

/* Run a peer command; parse its "bench=graph impl=I ... mode=M threads=T batch=B
 * images_per_s=X" lines into fig[thread index][figure]. */
static void s_peer(const struct s_opts *o, const char *cmd, double fig[S_MAX_THREADS][S_NFIG])
{
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    if (!p) {
        printf("# cannot run %s\n", cmd);
        return;
    }
    char line[512], mode[16];
    while (fgets(line, sizeof line, p)) {
        fputs(line, stdout);
        const char *s = strstr(line, "mode=");
        int t, b;
        double ips;
        if (strncmp(line, "bench=graph", 11) != 0 || !s ||
            sscanf(s, "mode=%15s threads=%d batch=%d images_per_s=%lf", mode, &t, &b, &ips) != 4)
            continue;
        int f = strcmp(mode, "train") == 0 ? S_TRAIN : b == 1 ? S_INFER1 : S_INFERB;
        for (int i = 0; i < o->nthreads; i++)
            if (o->threads[i] == t)
                fig[i][f] = ips;
    }
    if (pclose(p) != 0)
        printf("# %s failed\n", cmd);
}

static void s_list(char *buf, size_t len, const int *v, int n)
{
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, i ? ",%d" : "%d", v[i]);
}

/* fedtl, PyTorch and ONNX Runtime on one (arch, hw), o->rounds rounds; prints the medians. */
static int s_config(const struct s_opts *o, const char *arch, int hw)
{
    /* fig[round][impl: 0 fedtl, 1 torch, 2 ort][thread][figure] */
    static double fig[S_MAX_ROUNDS][3][S_MAX_THREADS][S_NFIG];
    memset(fig, 0, sizeof fig);
    char tl[64], cmd[1400], onnx[600] = "";
    s_list(tl, sizeof tl, o->threads, o->nthreads);
    if (o->ort && o->onnx_dir) {
        snprintf(onnx, sizeof onnx, "%s/%s-%d.onnx", o->onnx_dir, arch, hw);
        if (access(onnx, R_OK) != 0 && o->torch) {
            snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' --arch %s --hw %d --export-onnx '%s'",
                     o->torch, arch, hw, onnx);
            if (system(cmd) != 0)
                onnx[0] = '\0';
        }
    }
    for (int r = 0; r < o->rounds; r++) {
        for (int i = 0; i < o->nthreads; i++) {
            double check[2] = {0, 0};
            int rc = s_fedtl(o, arch, hw, o->threads[i], fig[r][0][i], check);
            if (rc)
                return rc;
            for (int f = 0; f < S_NFIG; f++)
                printf("bench=graph impl=fedtl arch=%s hw=%d mode=%s threads=%d batch=%d "
                       "images_per_s=%.1f round=%d\n",
                       arch, hw, s_fig_name[f], o->threads[i], f == S_INFER1 ? 1 : o->batch,
                       fig[r][0][i][f], r);
            printf("bench=graph-check arch=%s hw=%d threads=%d first_loss=%.6f "
                   "logit_sum=%.6f\n",
                   arch, hw, o->threads[i], check[0], check[1]);
            if (onnx[0]) { /* right after fedtl at the same thread count */
                snprintf(cmd, sizeof cmd,
                         "node '%s' '%s' --arch %s --hw %d --threads %d --batches 1,%d --steps %d",
                         o->ort, onnx, arch, hw, o->threads[i], o->batch, o->steps);
                s_peer(o, cmd, fig[r][2]);
            }
        }
        if (o->torch) {
            snprintf(cmd, sizeof cmd,
                     "/usr/bin/python3 '%s' --arch %s --hw %d --threads %s --steps %d "
                     "--warmup %d --batch %d --rank %d --alpha %d",
                     o->torch, arch, hw, tl, o->steps, o->warmup, o->batch, o->rank, 2 * o->rank);
            s_peer(o, cmd, fig[r][1]);
        }
    }
    static const char *const impl[3] = {"fedtl", "torch", "ort"};
    printf("\n%-13s %3s %-6s %5s | %-6s %9s %9s | best: %9s %6s\n", "arch", "hw", "figure", "batch",
           "impl", "1 thread", "2 threads", "images/s", "ratio");
    for (int f = 0; f < S_NFIG; f++) {
        double best[3] = {0, 0, 0};
        for (int k = 0; k < 3; k++) {
            double med[S_MAX_THREADS];
            for (int i = 0; i < o->nthreads; i++) {
                double v[S_MAX_ROUNDS];
                for (int r = 0; r < o->rounds; r++)
                    v[r] = fig[r][k][i][f];
                med[i] = s_bench_median(v, o->rounds);
                best[k] = fmax(best[k], med[i]);
            }
            if (best[k] <= 0)
                continue;
            printf("%-13s %3d %-6s %5d | %-6s %9.1f %9.1f | %9.1f %6.2f\n", arch, hw, s_fig_name[f],
                   f == S_INFER1 ? 1 : o->batch, impl[k], med[0], o->nthreads > 1 ? med[1] : 0.0,
                   best[k], best[0] / best[k]);
            if (k > 0)
                printf("bench=graph-ratio arch=%s hw=%d mode=%s batch=%d vs=%s ratio=%.3f\n", arch,
                       hw, s_fig_name[f], f == S_INFER1 ? 1 : o->batch, impl[k], best[0] / best[k]);
        }
    }
    printf("\n");
    return 0;
}

/* One conv x [c, hw, hw] -> y with a k x k weight (stride, padding k/2, group groups: c for a
 * depthwise one) and a bias, then Relu, planned for batch on one thread, with or without the
 * engine's own kernels. */
static fl_graph_t *s_conv_graph(const int *sh, int batch, bool simd)
{
    int c = sh[0], hw = sh[1], m = sh[2], k = sh[3], stride = sh[4], group = sh[5];
    fl_graph_t *g = fl_graph_new(NULL);
    int64_t in[3] = {c, hw, hw}, wd[4] = {m, c / group, k, k}, bd[1] = {m};
    size_t nw = (size_t)m * (c / group) * k * k;
    float *w = malloc(nw * sizeof *w);
    struct fl_rng r;
    fl_rng_seed(&r, 5);
    for (size_t i = 0; w && i < nw; i++)
        w[i] = (float)(fl_rng_uniform(&r) - 0.5) * 0.1f;
    struct fl_op_attrs a = fl_op_attrs_default();
    a.stride[0] = a.stride[1] = stride;
    a.pads[0] = a.pads[1] = a.pads[2] = a.pads[3] = k / 2;
    a.group = group;
    const char *ins[3] = {"x", "w", "b"}, *act[1] = {"c"};
    int rc = !g || !w || fl_graph_add_input(g, "x", 3, in) ||
             fl_graph_add_param(g, "w", 4, wd, w, false) ||
             fl_graph_add_param(g, "b", 1, bd, NULL, false) ||
             fl_graph_add_node(g, "conv", FL_OP_CONV, ins, 3, "c", &a) ||
             fl_graph_add_node(g, "relu", FL_OP_RELU, act, 1, "y", NULL) ||
             fl_graph_set_output(g, "y");
    free(w);
    if (!rc) {
        fl_graph_use_simd(g, simd);
        rc = fl_graph_plan(g, batch, false);
    }
    if (rc)
        fl_graph_destroy(&g);
    return g;
}

/* The hot convs of resnet18 and mobilenet_v2 at 32x32 and 64x64 inputs, batch 1 and o->batch,
 * one thread: the engine with its own kernels (fl_convk, AVX-512 or AVX2, where the CPU has it
 * and fl_convk_pays picks it; depthwise ones compiled for the CPU) against the portable path
 * (im2col and OpenBLAS), the two run alternately; median GFLOP/s each and their ratio. */
static int s_convs(const struct s_opts *o)
{
    static const int shapes[][6] = {
        /* c, hw, m, k, stride, group */
        {3, 32, 64, 7, 2, 1},     {64, 8, 64, 3, 1, 1},     {128, 4, 128, 3, 1, 1},
        {256, 2, 256, 3, 1, 1},   {512, 1, 512, 3, 1, 1},   {3, 64, 64, 7, 2, 1},
        {64, 16, 64, 3, 1, 1},    {128, 8, 128, 3, 1, 1},   {256, 4, 256, 3, 1, 1},
        {512, 2, 512, 3, 1, 1},   {24, 16, 144, 1, 1, 1},   {64, 4, 384, 1, 1, 1},
        {320, 1, 1280, 1, 1, 1},  {32, 32, 192, 1, 1, 1},   {96, 8, 576, 1, 1, 1},
        {320, 2, 1280, 1, 1, 1},  {3, 32, 32, 3, 2, 1},     {24, 8, 144, 1, 1, 1},
        {144, 8, 32, 1, 1, 1},    {32, 4, 192, 1, 1, 1},    {64, 2, 384, 1, 1, 1},
        {384, 2, 96, 1, 1, 1},    {160, 1, 960, 1, 1, 1},   {960, 1, 320, 1, 1, 1},
        {144, 8, 144, 3, 1, 144}, {192, 4, 192, 3, 1, 192}, {384, 2, 384, 3, 1, 384},
        {960, 1, 960, 3, 1, 960},
    };
    int batches[2] = {1, o->batch};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int bi = 0; bi < 2; bi++) {
            const int *sh = shapes[i];
            int b = batches[bi], reps = 2 * o->steps + 1, oh = (sh[1] - 1) / sh[4] + 1;
            fl_graph_t *g[2] = {s_conv_graph(sh, b, false), s_conv_graph(sh, b, true)};
            size_t nx = (size_t)b * sh[0] * sh[1] * sh[1];
            float *x = fl_falloc(nx);
            double *t[2] = {malloc(sizeof(double) * reps), malloc(sizeof(double) * reps)};
            if (!g[0] || !g[1] || !x || !t[0] || !t[1]) {
                fprintf(stderr, "bench_graph: out of memory\n");
                return 1;
            }
            for (size_t j = 0; j < nx; j++)
                x[j] = (float)(j % 97) / 97.0f;
            for (int r = -o->warmup; r < reps; r++)
                for (int v = 0; v < 2; v++) {
                    double t0 = fl_now_s();
                    fl_graph_forward(g[v], x, b);
                    if (r >= 0)
                        t[v][r] = fl_now_s() - t0;
                }
            double flop = 2.0 * b * (sh[0] / sh[5]) * sh[2] * sh[3] * sh[3] * oh * oh;
            double gp = flop / s_bench_median(t[0], reps) * 1e-9;
            double gs = flop / s_bench_median(t[1], reps) * 1e-9;
            printf("bench=conv c=%d hw=%d m=%d k=%d stride=%d group=%d batch=%d "
                   "openblas_gflops=%.1f fl_convk_gflops=%.1f ratio=%.2f\n",
                   sh[0], sh[1], sh[2], sh[3], sh[4], sh[5], b, gp, gs, gs / gp);
            fflush(stdout);
            free(t[0]);
            free(t[1]);
            free(x);
            fl_graph_destroy(&g[0]);
            fl_graph_destroy(&g[1]);
        }
    return 0;
}

static void s_usage(void)
{
    fprintf(stderr,
            "usage: bench_graph [--arch resnet18,mobilenet_v2] [--hw 32,64] [--threads 1,2]\n"
            "                   [--batch 32] [--steps 10] [--warmup 2] [--rounds 3] [--rank 8]\n"
            "                   [--torch bench/torch_graph.py | --no-torch]\n"
            "                   [--ort bench/ort_graph.js --onnx-dir DIR | --no-ort]\n"
            "                   [--portable: fedtl without its own AVX kernels]\n"
            "       bench_graph --convs [--batch 32] [--steps 10] [--warmup 2]\n");
}

static int s_parse(int argc, char **argv, struct s_opts *o)
{
    *o = (struct s_opts){.archs = "resnet18,mobilenet_v2",
                         .sizes = "32,64",
                         .batch = 32,
                         .steps = 10,
                         .warmup = 2,
                         .rounds = 3,
                         .rank = 8,
                         .torch = "bench/torch_graph.py",
                         .ort = "bench/ort_graph.js",
                         .onnx_dir = "bench/out",
                         .threads = {1, 2},
                         .nthreads = 2};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool val = true;
        if (strcmp(a, "--no-torch") == 0)
            o->torch = NULL, val = false;
        else if (strcmp(a, "--no-ort") == 0)
            o->ort = NULL, val = false;
        else if (strcmp(a, "--portable") == 0)
            o->portable = true, val = false;
        else if (strcmp(a, "--convs") == 0)
            o->convs = true, val = false;
        else if (!v)
            return -1;
        else if (strcmp(a, "--arch") == 0)
            o->archs = v;
        else if (strcmp(a, "--hw") == 0)
            o->sizes = v;
        else if (strcmp(a, "--torch") == 0)
            o->torch = v;
        else if (strcmp(a, "--ort") == 0)
            o->ort = v;
        else if (strcmp(a, "--onnx-dir") == 0)
            o->onnx_dir = v;
        else if (strcmp(a, "--threads") == 0) {
            o->nthreads = 0;
            for (const char *s = v; *s && o->nthreads < S_MAX_THREADS;
                 s += strcspn(s, ","), s += *s == ',')
                o->threads[o->nthreads++] = atoi(s);
        } else {
            int n = atoi(v);
            int *dst = strcmp(a, "--batch") == 0    ? &o->batch
                       : strcmp(a, "--steps") == 0  ? &o->steps
                       : strcmp(a, "--warmup") == 0 ? &o->warmup
                       : strcmp(a, "--rounds") == 0 ? &o->rounds
                       : strcmp(a, "--rank") == 0   ? &o->rank
                                                    : NULL;
            if (!dst || n < 1)
                return -1;
            *dst = n;
        }
        i += val;
    }
    for (int i = 0; i < o->nthreads; i++)
        if (o->threads[i] < 1 || o->threads[i] > 64)
            return -1;
    return o->nthreads < 1 || o->rounds > S_MAX_ROUNDS || o->warmup > 1000 ? -1 : 0;
}

int main(int argc, char **argv)
{
    struct s_opts o;
    if (s_parse(argc, argv, &o)) {
        s_usage();
        return 2;
    }
    if (o.convs) {
        const char *ct = getenv("OPENBLAS_CORETYPE");
        printf("# convs: OPENBLAS_CORETYPE=%s, one thread\n", ct ? ct : "(unset)");
        return s_convs(&o);
    }
    if (o.torch && (access("/usr/bin/python3", X_OK) != 0 || access(o.torch, R_OK) != 0)) {
        printf("# torch: skipped (no /usr/bin/python3 or %s)\n", o.torch);
        o.torch = NULL;
    }
    if (o.ort && (access(o.ort, R_OK) != 0 || system("node --version >/dev/null 2>&1") != 0)) {
        printf("# ort: skipped (no node or %s)\n", o.ort);
        o.ort = NULL;
    }
    if (o.ort && o.onnx_dir) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "mkdir -p '%s'", o.onnx_dir);
        if (system(cmd) != 0)
            o.ort = NULL;
    }
    const char *ct = getenv("OPENBLAS_CORETYPE"), *l2 = getenv("OPENBLAS_L2_SIZE");
    printf("# OPENBLAS_CORETYPE=%s OPENBLAS_L2_SIZE=%s batch=%d steps=%d rounds=%d rank=%d\n",
           ct ? ct : "(unset)", l2 ? l2 : "(unset)", o.batch, o.steps, o.rounds, o.rank);
    char archs[256], sizes[64];
    snprintf(archs, sizeof archs, "%s", o.archs);
    for (char *sa = NULL, *a = strtok_r(archs, ",", &sa); a; a = strtok_r(NULL, ",", &sa)) {
        snprintf(sizes, sizeof sizes, "%s", o.sizes);
        for (char *sh = NULL, *h = strtok_r(sizes, ",", &sh); h; h = strtok_r(NULL, ",", &sh)) {
            if (!fl_zoo_known(a) || atoi(h) < 8) {
                fprintf(stderr, "bench_graph: no arch %s or size %s\n", a, h);
                return 2;
            }
            if (s_config(&o, a, atoi(h)))
                return 1;
        }
    }
    return 0;
}
