/* bench_strategy: what each aggregation strategy costs the coordinator per round, in time and
 * memory, against streaming FedAvg. For a 30 KB and a 4 MB adapter (two tensors, the LoRA A
 * and B halves) and 10 and 100 updates, each strategy runs whole rounds through fl_strategy
 * (begin, every add, finish) on updates made beforehand (distinct random deltas around a
 * random global, a tenth of them ten times larger), and the median of --repeats rounds is
 * reported: the round (wall clock, and CPU time of the process), the add per update (the non-finite
 * scan, the norm, then the fold or the copy) and the finish (bound, rule, optimiser). "held" is
 * fl_strategy_held_bytes before finish: 0 for streaming, n x adapter for the rules that hold every
 * update.
 *
 *   build-bench/bench_strategy [--repeats 5] [--threads 1] [--quick]
 *
 * --quick: the 30 KB adapter and 10 updates only. Prints `bench=strategy ...` lines, then a
 * table. */
#include "fl_error.h"
#include "fl_pool.h"
#include "fl_rng.h"
#include "fl_strategy.h"
#include "fl_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double s_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, s_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The contenders: a name's defaults, optionally with a bound. */
struct s_case {
    const char *label;   /* in the table */
    const char *name;    /* fl_strategy_config_default */
    enum fl_bound bound; /* stage 1 */
    double norm_bound;   /* its value */
};

static const struct s_case s_cases[] = {
    {"fedavg", "fedavg", FL_BOUND_NONE, 0},   {"fedavg+fixed", "fedavg", FL_BOUND_FIXED, 1.0},
    {"fedadam", "fedadam", FL_BOUND_NONE, 0}, {"fedavg+median", "fedavg", FL_BOUND_MEDIAN, 2.0},
    {"median", "median", FL_BOUND_NONE, 0},   {"trimmed-mean", "trimmed-mean", FL_BOUND_NONE, 0},
    {"krum", "krum", FL_BOUND_NONE, 0},       {"multi-krum", "multi-krum", FL_BOUND_NONE, 0},
};
#define S_NCASES (sizeof s_cases / sizeof s_cases[0])

/* One adapter size's round inputs. */
struct s_inputs {
    struct fl_tensor g[2]; /* the global at the start of every round */
    struct fl_tensor *u;   /* n updates x 2 tensors */
    int n;                 /* updates */
    size_t numel;          /* values per adapter */
};

static int s_make(struct s_inputs *in, size_t numel, int n, uint64_t seed)
{
    memset(in, 0, sizeof *in);
    int64_t half = (int64_t)(numel / 2);
    in->n = n;
    in->numel = numel;
    in->u = calloc((size_t)n * 2, sizeof *in->u);
    if (!in->u || fl_tensor_init2(&in->g[0], "fc.lora_A", half, 0) ||
        fl_tensor_init2(&in->g[1], "fc.lora_B", (int64_t)numel - half, 0))
        return FL_ENOMEM;
    struct fl_rng r;
    fl_rng_seed(&r, seed);
    for (int t = 0; t < 2; t++)
        for (size_t j = 0; j < fl_tensor_numel(&in->g[t]); j++)
            in->g[t].data[j] = (float)(0.1 * (fl_rng_uniform(&r) - 0.5));
    for (int k = 0; k < n; k++) {
        double mag = k % 10 == 9 ? 1e-2 : 1e-3;
        for (int t = 0; t < 2; t++) {
            struct fl_tensor *u = &in->u[2 * k + t];
            if (fl_tensor_init2(u, in->g[t].name, in->g[t].shape[0], 0))
                return FL_ENOMEM;
            for (size_t j = 0; j < fl_tensor_numel(u); j++)
                u->data[j] = in->g[t].data[j] + (float)(mag * (fl_rng_uniform(&r) - 0.5));
        }
    }
    return 0;
}

static void s_free(struct s_inputs *in)
{
    for (int k = 0; in->u && k < 2 * in->n; k++)
        fl_tensor_free(&in->u[k]);
    free(in->u);
    fl_tensor_free(&in->g[0]);
    fl_tensor_free(&in->g[1]);
}

/* CPU seconds of the whole process (all its threads): steadier than the wall clock on a
 * shared machine. */
static double s_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One round: seconds for the adds and the finish, CPU seconds of the round, bytes held
 * before finish. */
static int s_round(fl_strategy_t *s, const struct s_inputs *in, struct fl_tensor *g, double *add_s,
                   double *fin_s, double *cpu_s, size_t *held)
{
    for (int t = 0; t < 2; t++)
        memcpy(g[t].data, in->g[t].data, fl_tensor_numel(&g[t]) * sizeof(float));
    double c0 = s_cpu_s(), t0 = fl_now_s();
    int rc = fl_strategy_begin(s, g, 2);
    for (int k = 0; k < in->n && rc == 0; k++) {
        char id[24];
        snprintf(id, sizeof id, "branch%03d", k);
        rc = fl_strategy_add(s, &in->u[2 * k], 2, 100.0 + k, id);
    }
    double t1 = fl_now_s();
    *held = fl_strategy_held_bytes(s);
    if (rc == 0)
        rc = fl_strategy_finish(s, g, 2);
    *add_s = t1 - t0;
    *fin_s = fl_now_s() - t1;
    *cpu_s = s_cpu_s() - c0;
    return rc;
}

int main(int argc, char **argv)
{
    int repeats = 5, threads = 1, quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--repeats") && i + 1 < argc)
            repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else {
            fprintf(stderr, "usage: bench_strategy [--repeats N] [--threads T] [--quick]\n");
            return 2;
        }
    }
    if (repeats < 1 || repeats > 1000 || threads < 1 || threads > 64) {
        fprintf(stderr, "bench_strategy: --repeats 1..1000, --threads 1..64\n");
        return 2;
    }
    fl_pool_t *pool = threads > 1 ? fl_pool_new(threads) : NULL;
    const size_t sizes[] = {30 * 1024 / 4, 4 * 1024 * 1024 / 4}; /* floats: 30 KB, 4 MB */
    const int counts[] = {10, 100};
    double *round_s = malloc(sizeof(double) * (size_t)repeats);
    double *add_s = malloc(sizeof(double) * (size_t)repeats);
    double *fin_s = malloc(sizeof(double) * (size_t)repeats);
    double *cpu_s = malloc(sizeof(double) * (size_t)repeats);
    char table[S_NCASES * 4][160];
    int rows = 0;
    for (int zi = 0; zi < (quick ? 1 : 2); zi++)
        for (int ni = 0; ni < (quick ? 1 : 2); ni++) {
            struct s_inputs in;
            struct fl_tensor g[2];
            if (s_make(&in, sizes[zi], counts[ni], 42) ||
                fl_tensor_init2(&g[0], "fc.lora_A", in.g[0].shape[0], 0) ||
                fl_tensor_init2(&g[1], "fc.lora_B", in.g[1].shape[0], 0)) {
                fprintf(stderr, "bench_strategy: out of memory\n");
                return 1;
            }
            for (size_t c = 0; c < S_NCASES; c++) {
                struct fl_strategy_config cfg;
                fl_strategy_config_default(&cfg, s_cases[c].name);
                cfg.bound = s_cases[c].bound;
                cfg.norm_bound = s_cases[c].norm_bound;
                fl_strategy_t *s = fl_strategy_new(&cfg);
                if (!s) {
                    fprintf(stderr, "bench_strategy: %s\n", fl_error_msg());
                    return 1;
                }
                fl_strategy_set_pool(s, pool);
                size_t held = 0;
                for (int r = 0; r < repeats; r++) {
                    if (s_round(s, &in, g, &add_s[r], &fin_s[r], &cpu_s[r], &held) != 0) {
                        fprintf(stderr, "bench_strategy: %s: %s\n", s_cases[c].label,
                                fl_error_msg());
                        return 1;
                    }
                    round_s[r] = add_s[r] + fin_s[r];
                }
                double rm = s_median(round_s, repeats) * 1e3;
                double am = s_median(add_s, repeats) * 1e3 / in.n;
                double fm = s_median(fin_s, repeats) * 1e3;
                double cm = s_median(cpu_s, repeats) * 1e3;
                double kb = (double)in.numel * 4 / 1024, held_mb = (double)held / (1 << 20);
                printf("bench=strategy strategy=%s adapter_kb=%.0f updates=%d threads=%d "
                       "round_ms=%.3f cpu_ms=%.3f add_ms_per_update=%.4f finish_ms=%.3f "
                       "held_mb=%.1f\n",
                       s_cases[c].label, kb, in.n, threads, rm, cm, am, fm, held_mb);
                fflush(stdout);
                snprintf(table[rows++], sizeof table[0],
                         "| %-13s | %6.0f KB | %3d | %10.3f | %10.3f | %10.4f | %10.3f | %8.1f |",
                         s_cases[c].label, kb, in.n, rm, cm, am, fm, held_mb);
                fl_strategy_destroy(&s);
            }
            fl_tensor_free(&g[0]);
            fl_tensor_free(&g[1]);
            s_free(&in);
        }
    printf("\nmedian of %d rounds, %d thread%s\n\n", repeats, threads, threads > 1 ? "s" : "");
    printf("| strategy | adapter | n | round (ms) | CPU (ms) | add/update (ms) | finish (ms) | "
           "held (MB) |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < rows; i++)
        printf("%s\n", table[i]);
    free(round_s);
    free(add_s);
    free(fin_s);
    free(cpu_s);
    fl_pool_destroy(&pool);
    return 0;
}
