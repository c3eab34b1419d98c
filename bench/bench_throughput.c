/* bench_throughput: training throughput of a LoRA fine-tuning step of cnn-small (rank 4,
 * alpha 8, LoRA on conv2 and fc1, new 5-class head, batch 64, Adam), side by side with the
 * same step in PyTorch (bench/torch_step.py), and the model-FLOP utilisation against the
 * SGEMM throughput measured through fl_gemm in the same run.
 *
 * Prints machine-readable lines (bench=throughput ...) and a table. See bench/README.md. */
#include "bench_common.h"
#include "fl_modelio.h"
#include "fl_linalg.h"

#include <libgen.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>

#define S_MAX_THREADS 8
#define S_MAX_EPOCHS  32
#define S_BATCH       64

#define S_MAX_ROUNDS 8

struct s_opts {
    int rounds;     /* repetitions of the whole fedtl + torch comparison */
    int epochs;     /* fl_train epochs per thread count and round */
    int steps;      /* single timed fedtl steps per thread count and round */
    size_t records; /* random training records */
    int threads[S_MAX_THREADS];
    int nthreads;
    double gemm_seconds; /* time budget per GEMM shape and thread count */
    int torch_steps;     /* timed PyTorch steps per thread count */
    const char *torch;   /* path of torch_step.py, NULL = skip */
};

/* ---- GEMM throughput ---- */

/* The engine splits a batch over its workers and keeps every OpenBLAS call single-threaded
 * inside them (fl_linalg_init), so its SGEMM peak at t threads is t concurrent single-threaded
 * fl_gemm calls; that is what is measured here. The products are the ones fl_layers does for
 * this model with nb = 64 / t records per worker, plus a square reference. */
struct s_shape {
    char name[32];
    bool ta, tb;
    int m, n, k;
};

static int s_shapes(int nb, struct s_shape *s)
{
    const struct s_shape all[] = {
        {"square-1024", false, false, 1024, 1024, 1024},
        {"conv1.fwd", false, true, nb * 28 * 28, 16, 9},
        {"conv2.fwd", false, true, nb * 14 * 14, 32, 144},
        {"conv2.dW", true, false, 32, 144, nb * 14 * 14},
        {"fc1.fwd", false, true, nb, 128, 1568},
        {"fc1.dW", true, false, 128, 1568, nb},
        {"fc1.dX", false, false, nb, 1568, 128},
        {"fc1.lora_merge", false, false, 128, 1568, 4},
    };
    int n = (int)(sizeof all / sizeof all[0]);
    memcpy(s, all, sizeof all);
    return n;
}
#define S_NSHAPES 8

struct s_gemm_job {
    const struct s_shape *s;
    int reps;
    float *a, *b, *c;
};

static void *s_gemm_worker(void *arg)
{
    struct s_gemm_job *j = arg;
    const struct s_shape *s = j->s;
    int lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
    for (int r = 0; r < j->reps; r++)
        fl_gemm(s->ta, s->tb, s->m, s->n, s->k, 1.0f, j->a, lda, j->b, ldb, 0.0f, j->c, s->n);
    return NULL;
}

/* Wall time of `reps` calls on each of t threads at once. */
static double s_gemm_batch(struct s_gemm_job *jobs, int t, int reps)
{
    pthread_t tid[S_MAX_THREADS];
    double t0 = fl_now_s();
    for (int i = 0; i < t; i++) {
        jobs[i].reps = reps;
        if (i > 0 && pthread_create(&tid[i], NULL, s_gemm_worker, &jobs[i]) != 0)
            return -1.0;
    }
    s_gemm_worker(&jobs[0]);
    for (int i = 1; i < t; i++)
        pthread_join(tid[i], NULL);
    return fl_now_s() - t0;
}

static double s_bench_gemm_once(struct s_gemm_job *jobs, int t)
{
    s_gemm_batch(jobs, t, 1); /* warm-up: page faults, OpenBLAS buffers */
    return s_gemm_batch(jobs, t, 1);
}

/* Median (and best) aggregate GFLOP/s of shape s on t threads, batches of >= 20 ms. */
static double s_gemm_gflops(const struct s_shape *s, int t, double budget, double *best)
{
    struct s_gemm_job jobs[S_MAX_THREADS];
    size_t an = (size_t)s->m * s->k, bn = (size_t)s->k * s->n, cn = (size_t)s->m * s->n;
    double med = 0.0, rates[256];
    int nr = 0, ok = 1;
    *best = 0.0;
    memset(jobs, 0, sizeof jobs);
    for (int i = 0; i < t && ok; i++) {
        jobs[i].s = s;
        jobs[i].a = fl_falloc(an), jobs[i].b = fl_falloc(bn), jobs[i].c = fl_falloc(cn);
        ok = jobs[i].a && jobs[i].b && jobs[i].c;
        for (size_t q = 0; ok && q < an; q++)
            jobs[i].a[q] = (float)((q * 7919) % 1000) * 1e-3f;
        for (size_t q = 0; ok && q < bn; q++)
            jobs[i].b[q] = (float)((q * 104729) % 1000) * 1e-3f;
    }
    if (!ok)
        goto out_free;
    double flop = 2.0 * s->m * s->n * s->k * t;
    double one = s_bench_gemm_once(jobs, t);
    int reps = one > 0.02 ? 1 : (int)(0.02 / (one > 1e-7 ? one : 1e-7)) + 1;
    double t_end = fl_now_s() + budget;
    while (nr < 256 && (nr < 3 || fl_now_s() < t_end)) {
        double dt = s_gemm_batch(jobs, t, reps);
        if (dt <= 0)
            break;
        rates[nr++] = flop * reps / dt * 1e-9;
    }
    med = s_bench_median(rates, nr);
    *best = nr ? rates[nr - 1] : 0.0;
out_free:
    for (int i = 0; i < t; i++)
        free(jobs[i].a), free(jobs[i].b), free(jobs[i].c);
    return med;
}

/* ---- FLOPs of one training step, as fl_model does it ---- */

struct s_flops {
    double fwd, bwd, lora; /* per batch */
};

/* Walk the arch: forward of every layer (the cache is off), backward from the first trainable
 * layer: dW for each trainable weight (the head), dX for each layer above the first trainable
 * one, and for a LoRA target the merge W + s B A once per batch and the factor gradients
 * straight from dY (X A^T, dY^T XA, dY B, (dY B)^T X: no full dW). */
static struct s_flops s_step_flops(const struct fl_arch *a, int first, const bool *lora, int r,
                                   int n)
{
    struct s_flops f = {0};
    int h = a->in_h, w = a->in_w, c = a->in_c;
    for (int l = 0; l < a->nlayers; l++) {
        const struct fl_layer_spec *s = &a->layers[l];
        double mnk = 0, out = 0, in = 0;
        if (s->kind == FL_LAYER_CONV2D) {
            int oh = (h + 2 * s->pad - s->kernel) / s->stride + 1;
            int ow = (w + 2 * s->pad - s->kernel) / s->stride + 1;
            out = s->out_ch;
            in = (double)s->kernel * s->kernel * c;
            mnk = (double)n * oh * ow * out * in;
            h = oh, w = ow, c = s->out_ch;
        } else if (s->kind == FL_LAYER_DENSE) {
            out = s->out_features;
            in = s->in_features;
            mnk = (double)n * out * in;
            h = w = 1, c = s->out_features;
        } else if (s->kind == FL_LAYER_MAXPOOL) {
            h /= s->stride, w /= s->stride;
        } else if (s->kind == FL_LAYER_FLATTEN) {
            c = h * w * c, h = w = 1;
        }
        if (mnk == 0)
            continue;
        f.fwd += 2 * mnk;
        double rows = mnk / (out * in);
        if (l >= first && !lora[l])
            f.bwd += 2 * mnk; /* dW */
        if (l > first)
            f.bwd += 2 * mnk; /* dX */
        if (lora[l])
            f.lora += 2 * out * in * r + 4 * rows * r * (in + out); /* merge + 4 GEMMs */
    }
    return f;
}

/* ---- fedtl training ---- */

struct s_epochs {
    int n;
    double sps[S_MAX_EPOCHS];
};

static void s_on_epoch(const struct fl_epoch_stats *s, void *arg)
{
    struct s_epochs *e = arg;
    if (e->n < S_MAX_EPOCHS)
        e->sps[e->n++] = s->samples_per_s;
}

/* fl_train for `epochs` over ds with the cache off; per-epoch samples/s into ep. */
static int s_fedtl_epochs(fl_model_t *m, const struct fl_dataset *ds, int epochs,
                          struct s_epochs *ep)
{
    struct fl_train_opts o;
    fl_train_opts_default(&o);
    o.epochs = epochs;
    o.batch = S_BATCH;
    o.cache_bytes = 0;
    o.label = "bench";
    memset(ep, 0, sizeof *ep);
    return fl_train(m, ds, &o, s_on_epoch, ep, NULL);
}

/* Per-step figure comparable to torch_step.py's median step: `steps` calls of fl_train on a
 * one-batch view of ds (one epoch = gather + forward + backward + Adam), median step time. */
static int s_fedtl_steps(fl_model_t *m, const struct fl_dataset *ds, int steps, double *sps)
{
    double t[512];
    int ns = steps < 512 ? steps : 512, rc = 0;
    size_t nb = ds->n / S_BATCH;
    for (int i = -5; i < ns && rc == 0; i++) {
        size_t off = (size_t)(i + 5) % nb * S_BATCH;
        struct fl_dataset b = *ds;
        b.n = S_BATCH;
        b.x = ds->x + off * ds->dim;
        b.y = ds->y + off;
        struct s_epochs ep;
        struct fl_train_opts o;
        fl_train_opts_default(&o);
        o.epochs = 1;
        o.batch = S_BATCH;
        o.cache_bytes = 0;
        memset(&ep, 0, sizeof ep);
        rc = fl_train(m, &b, &o, s_on_epoch, &ep, NULL);
        if (i >= 0 && rc == 0)
            t[i] = S_BATCH / ep.sps[0];
    }
    *sps = rc == 0 ? S_BATCH / s_bench_median(t, ns) : 0.0;
    return rc;
}

/* ---- PyTorch side ---- */

struct s_torch {
    int n;
    int threads[S_MAX_THREADS];
    double sps[S_MAX_THREADS];  /* from the median step */
    double mean[S_MAX_THREADS]; /* steps * batch / total time */
};

static void s_run_torch(const struct s_opts *o, struct s_torch *tr)
{
    memset(tr, 0, sizeof *tr);
    if (!o->torch || access("/usr/bin/python3", X_OK) != 0 || access(o->torch, R_OK) != 0) {
        printf("# torch: skipped (no /usr/bin/python3 or %s)\n", o->torch ? o->torch : "script");
        return;
    }
    char cmd[1400], list[64] = "";
    size_t off = 0;
    for (int i = 0; i < o->nthreads; i++)
        off += (size_t)snprintf(list + off, sizeof list - off, i ? ",%d" : "%d", o->threads[i]);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' --threads %s --steps %d --batch %d", o->torch,
             list, o->torch_steps, S_BATCH);
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    if (!p) {
        printf("# torch: cannot run %s\n", cmd);
        return;
    }
    char line[512];
    while (fgets(line, sizeof line, p)) {
        fputs(line, stdout);
        int t;
        double sps, best, mean;
        if (tr->n < S_MAX_THREADS &&
            sscanf(line,
                   "bench=throughput impl=torch threads=%d samples_per_s=%lf "
                   "best_samples_per_s=%lf mean_samples_per_s=%lf",
                   &t, &sps, &best, &mean) == 4) {
            tr->threads[tr->n] = t;
            tr->sps[tr->n] = sps;
            tr->mean[tr->n++] = mean;
        }
    }
    int st = pclose(p);
    if (st != 0)
        printf("# torch: %s exited with status %d\n", cmd, st);
}

/* ---- main ---- */

static void s_usage(void)
{
    fprintf(stderr, "usage: bench_throughput [--rounds R] [--epochs N] [--steps N] [--records N]\n"
                    "                        [--threads 1,2] [--gemm-seconds S] [--torch-steps N]\n"
                    "                        [--torch SCRIPT | --no-torch]\n");
}

static int s_parse(int argc, char **argv, struct s_opts *o)
{
    static char script[1100];
    char src[1024];
    snprintf(src, sizeof src, "%s", __FILE__);
    snprintf(script, sizeof script, "%s/torch_step.py", dirname(src));
    if (access(script, R_OK) != 0)
        snprintf(script, sizeof script, "bench/torch_step.py");
    *o = (struct s_opts){.rounds = 3,
                         .epochs = 2,
                         .steps = 50,
                         .records = 6400,
                         .threads = {1, 2},
                         .nthreads = 2,
                         .gemm_seconds = 0.5,
                         .torch_steps = 50,
                         .torch = script};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--no-torch") == 0) {
            o->torch = NULL;
            continue;
        }
        if (!v) {
            s_usage();
            return 2;
        }
        i++;
        if (strcmp(a, "--rounds") == 0)
            o->rounds = atoi(v);
        else if (strcmp(a, "--epochs") == 0)
            o->epochs = atoi(v);
        else if (strcmp(a, "--steps") == 0)
            o->steps = atoi(v);
        else if (strcmp(a, "--records") == 0)
            o->records = (size_t)atol(v);
        else if (strcmp(a, "--gemm-seconds") == 0)
            o->gemm_seconds = atof(v);
        else if (strcmp(a, "--torch-steps") == 0)
            o->torch_steps = atoi(v);
        else if (strcmp(a, "--torch") == 0)
            o->torch = v;
        else if (strcmp(a, "--threads") == 0) {
            char buf[128];
            snprintf(buf, sizeof buf, "%s", v);
            o->nthreads = 0;
            for (char *sv = NULL, *t = strtok_r(buf, ",", &sv); t && o->nthreads < S_MAX_THREADS;
                 t = strtok_r(NULL, ",", &sv))
                o->threads[o->nthreads++] = atoi(t);
        } else {
            s_usage();
            return 2;
        }
    }
    if (o->rounds < 1 || o->rounds > S_MAX_ROUNDS || o->epochs < 1 ||
        o->epochs * o->rounds > S_MAX_EPOCHS || o->steps < 1 || o->records < 2 * S_BATCH ||
        o->nthreads < 1 || o->torch_steps < 1) {
        s_usage();
        return 2;
    }
    return 0;
}

/* SGEMM GFLOP/s of every shape at every thread count; peak[t] = best median over shapes. */
static void s_gemm_all(const struct s_opts *o, double *peak)
{
    fl_linalg_init(); /* OpenBLAS single-threaded, as inside the engine */
    for (int ti = 0; ti < o->nthreads; ti++) {
        int t = o->threads[ti];
        struct s_shape sh[S_NSHAPES];
        int ns = s_shapes((S_BATCH + t - 1) / t, sh);
        peak[ti] = 0.0;
        for (int si = 0; si < ns; si++) {
            const struct s_shape *s = &sh[si];
            double best, med = s_gemm_gflops(s, t, o->gemm_seconds, &best);
            printf("bench=gemm threads=%d shape=%s m=%d n=%d k=%d trans=%c%c gflops=%.2f "
                   "best_gflops=%.2f\n",
                   t, s->name, s->m, s->n, s->k, s->ta ? 'T' : 'N', s->tb ? 'T' : 'N', med, best);
            if (med > peak[ti])
                peak[ti] = med;
        }
        fflush(stdout);
    }
}

/* Figures of one implementation at one thread count, over the rounds. */
struct s_series {
    int n;
    double v[S_MAX_EPOCHS];
};

static void s_push(struct s_series *s, double v)
{
    if (s->n < S_MAX_EPOCHS)
        s->v[s->n++] = v;
}

static double s_med(const struct s_series *s)
{
    double v[S_MAX_EPOCHS];
    memcpy(v, s->v, sizeof v);
    return s_bench_median(v, s->n);
}

static double s_max(const struct s_series *s)
{
    double m = 0.0;
    for (int i = 0; i < s->n; i++)
        m = s->v[i] > m ? s->v[i] : m;
    return m;
}

struct s_results {
    struct s_series f_epoch[S_MAX_THREADS]; /* fedtl samples/s per epoch */
    struct s_series f_step[S_MAX_THREADS];  /* fedtl samples/s from the median step, per round */
    struct s_series t_step[S_MAX_THREADS];  /* torch samples/s from the median step, per round */
    struct s_series t_mean[S_MAX_THREADS];  /* torch steps*batch/total, per round */
    struct s_series ratio;                  /* per round: best fedtl step / best torch step */
};

/* One round: fedtl at each thread count (epochs, then single steps, on a model given a pool of
 * that size: the thread count is what this bench varies), then torch. */
static int s_round(const struct s_opts *o, int round, const struct fl_base_file *bf,
                   const char *path, const struct fl_adapter_meta *am, const struct fl_dataset *ds,
                   const double *peak, double flop_sample, struct s_results *r)
{
    double fbest = 0.0, tbest = 0.0;
    for (int ti = 0; ti < o->nthreads; ti++) {
        fl_pool_t *pool = fl_pool_new(o->threads[ti]);
        fl_model_t *m = pool ? fl_model_from_base(bf, path, am, pool) : NULL;
        struct s_epochs ep;
        double sps = 0.0;
        int rc = m ? s_fedtl_epochs(m, ds, o->epochs, &ep) : FL_ENOMEM;
        if (rc == 0)
            rc = s_fedtl_steps(m, ds, o->steps, &sps);
        fl_model_destroy(&m);
        fl_pool_destroy(&pool);
        if (rc) {
            fprintf(stderr, "bench_throughput: fl_train: %s: %s\n", fl_strerror(rc),
                    fl_error_msg());
            return rc;
        }
        printf("bench=throughput impl=fedtl round=%d threads=%d samples_per_s=%.1f "
               "epoch_samples_per_s=",
               round, o->threads[ti], sps);
        for (int e = 0; e < ep.n; e++) {
            printf("%s%.0f", e ? "," : "", ep.sps[e]);
            s_push(&r->f_epoch[ti], ep.sps[e]);
        }
        printf(" gflops=%.2f mfu=%.3f\n", sps * flop_sample * 1e-9,
               sps * flop_sample * 1e-9 / peak[ti]);
        s_push(&r->f_step[ti], sps);
        fbest = sps > fbest ? sps : fbest;
        fflush(stdout);
    }
    struct s_torch tr;
    s_run_torch(o, &tr);
    for (int i = 0; i < tr.n; i++) {
        for (int ti = 0; ti < o->nthreads; ti++) {
            if (o->threads[ti] == tr.threads[i]) {
                s_push(&r->t_step[ti], tr.sps[i]);
                s_push(&r->t_mean[ti], tr.mean[i]);
            }
        }
        tbest = tr.sps[i] > tbest ? tr.sps[i] : tbest;
    }
    if (tbest > 0.0) {
        s_push(&r->ratio, fbest / tbest);
        printf("bench=throughput_ratio round=%d ratio=%.3f\n", round, fbest / tbest);
    }
    return 0;
}

static void s_report(const struct s_opts *o, const struct s_results *r, const double *peak,
                     double flop_sample)
{
    printf("\n%-6s %-7s %10s %10s %10s %10s %9s %9s %7s\n", "impl", "threads", "step med",
           "step best", "epoch med", "epoch max", "GFLOP/s", "SGEMM pk", "MFU");
    int fb = 0, tb = -1;
    for (int ti = 0; ti < o->nthreads; ti++) {
        double sps = s_med(&r->f_step[ti]), gf = sps * flop_sample * 1e-9;
        printf("%-6s %-7d %10.0f %10.0f %10.0f %10.0f %9.2f %9.2f %6.1f%%\n", "fedtl",
               o->threads[ti], sps, s_max(&r->f_step[ti]), s_med(&r->f_epoch[ti]),
               s_max(&r->f_epoch[ti]), gf, peak[ti], 100.0 * gf / peak[ti]);
        if (sps > s_med(&r->f_step[fb]))
            fb = ti;
    }
    for (int ti = 0; ti < o->nthreads; ti++) {
        if (r->t_step[ti].n == 0)
            continue;
        double sps = s_med(&r->t_step[ti]), gf = sps * flop_sample * 1e-9;
        printf("%-6s %-7d %10.0f %10.0f %10.0f %10.0f %9.2f %9.2f %6.1f%%\n", "torch",
               o->threads[ti], sps, s_max(&r->t_step[ti]), s_med(&r->t_mean[ti]),
               s_max(&r->t_mean[ti]), gf, peak[ti], 100.0 * gf / peak[ti]);
        if (tb < 0 || sps > s_med(&r->t_step[tb]))
            tb = ti;
    }
    printf("step med/best: samples/s from the median step time of each round, median/best over "
           "%d rounds;\nepoch med/max: fedtl per-epoch samples/s (torch: steps*batch/total time); "
           "FLOPs/sample %.3f M\n(fedtl's GEMMs); SGEMM pk: best median fl_gemm GFLOP/s over the "
           "shapes at that thread count.\n\n",
           o->rounds, flop_sample * 1e-6);
    double fs = s_med(&r->f_step[fb]);
    double mfu = fs * flop_sample * 1e-9 / peak[fb];
    printf("bench=throughput_summary impl=fedtl best_threads=%d samples_per_s=%.1f mfu=%.3f "
           "mfu_target=0.30 %s\n",
           o->threads[fb], fs, mfu, mfu >= 0.30 ? "PASS" : "FAIL");
    if (tb >= 0) {
        double ts = s_med(&r->t_step[tb]), ratio = s_med(&r->ratio);
        printf("bench=throughput_summary impl=torch best_threads=%d samples_per_s=%.1f\n",
               o->threads[tb], ts);
        printf("bench=throughput_summary ratio_fedtl_over_torch=%.3f (median over rounds of "
               "best-vs-best; of medians: %.3f) target=2.0 %s\n",
               ratio, fs / ts, ratio >= 2.0 ? "PASS" : "FAIL");
    }
}

int main(int argc, char **argv)
{
    struct s_opts o;
    int rc = s_parse(argc, argv, &o);
    if (rc)
        return rc;
    printf("# bench_throughput: cnn-small, LoRA rank 4 alpha 8 on conv2,fc1, new 5-class head, "
           "batch %d, Adam lr 1e-3, %zu random records, cache off; %d rounds of (fedtl: %d epochs "
           "+ %d single steps per thread count; torch: %d steps); nproc=%ld\n",
           S_BATCH, o.records, o.rounds, o.epochs, o.steps, o.torch_steps,
           sysconf(_SC_NPROCESSORS_ONLN));

    double peak[S_MAX_THREADS];
    s_gemm_all(&o, peak);

    char path[512];
    s_bench_tmp_path(path, sizeof path, "fedtl-bench-throughput");
    struct fl_base_file bf;
    memset(&bf, 0, sizeof bf);
    if ((rc = s_bench_random_base(path, "cnn-small", 784, 5, 0.5f, 0.29f, &bf)) != 0) {
        fprintf(stderr, "bench_throughput: base: %s: %s\n", fl_strerror(rc), fl_error_msg());
        unlink(path);
        return 1;
    }
    struct fl_adapter_meta am;
    s_bench_adapter(&am, FL_ADAPTER_LORA, 4, 8.0f, "conv2,fc1", 5);
    struct fl_dataset ds;
    fl_model_t *m = NULL;
    if (s_bench_random_data(&ds, o.records, 784, 5, 3) != 0) {
        rc = 1;
        goto out_close;
    }
    if (!(m = fl_model_from_base(&bf, path, &am, NULL))) { /* for its shape: never run */
        fprintf(stderr, "bench_throughput: model: %s\n", fl_error_msg());
        rc = 1;
        goto out_free_data;
    }
    const struct fl_arch *arch = fl_model_arch(m);
    bool lora[FL_ARCH_MAX_LAYERS] = {false};
    for (int t = 0; t < am.ntargets; t++)
        lora[fl_arch_find(arch, am.targets[t])] = true;
    struct s_flops fl = s_step_flops(arch, fl_model_frozen_prefix(m), lora, am.rank, S_BATCH);
    double flop_sample = (fl.fwd + fl.bwd + fl.lora) / S_BATCH;
    printf("bench=flops per_sample=%.0f fwd=%.0f bwd=%.0f lora=%.0f trainable=%zu params=%zu "
           "first_trainable_layer=%d\n",
           flop_sample, fl.fwd / S_BATCH, fl.bwd / S_BATCH, fl.lora / S_BATCH,
           fl_model_param_count(m, true), fl_model_param_count(m, false),
           fl_model_frozen_prefix(m));
    fl_model_destroy(&m);

    struct s_results *r = calloc(1, sizeof *r);
    if (!r) {
        rc = 1;
        goto out_destroy;
    }
    for (int round = 1; round <= o.rounds; round++)
        if ((rc = s_round(&o, round, &bf, path, &am, &ds, peak, flop_sample, r)) != 0)
            break;
    if (rc == 0)
        s_report(&o, r, peak, flop_sample);
    rc = rc ? 1 : 0;
    free(r);
out_destroy:
    fl_model_destroy(&m);
out_free_data:
    fl_dataset_free(&ds);
out_close:
    fl_base_close(&bf);
    unlink(path);
    return rc;
}
