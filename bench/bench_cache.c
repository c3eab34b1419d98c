/* bench_cache: the frozen-prefix cache. LoRA (rank 4, alpha 8) on fc1 only, so conv1..pool2
 * are frozen and their output can be kept per record; the same fine-tuning runs with a 1 GiB
 * cache and with the cache off, side by side, and the epoch times are compared (the first
 * epoch fills the cache, the later ones should only run fc1 and the head).
 * Data: Fashion-MNIST classes 5-9 of the training set when it is installed, else random. */
#include "bench_common.h"
#include "fl_data.h"
#include "fl_idx.h"
#include "fl_modelio.h"

#include <stdbool.h>

#define S_MAX_EPOCHS 32
#define S_MAX_ROUNDS 9
#define S_FMNIST     "/usr/share/datasets/fashion-mnist/"

struct s_run {
    int n;
    double seconds[S_MAX_EPOCHS];
    double loss[S_MAX_EPOCHS];
    size_t cached[S_MAX_EPOCHS];
};

static void s_on_epoch(const struct fl_epoch_stats *s, void *arg)
{
    struct s_run *r = arg;
    if (r->n < S_MAX_EPOCHS) {
        r->seconds[r->n] = s->seconds;
        r->loss[r->n] = s->loss;
        r->cached[r->n++] = s->cached;
    }
}

/* Median epoch time after the first (the cache is filled in epoch 1). */
static double s_median_after_first(const struct s_run *r)
{
    double v[S_MAX_EPOCHS];
    int n = 0;
    for (int e = 1; e < r->n; e++)
        v[n++] = r->seconds[e];
    return s_bench_median(v, n);
}

static int s_load(struct fl_dataset *ds, size_t records, const char **desc)
{
    struct fl_dataset all;
    int32_t classes[] = {5, 6, 7, 8, 9};
    if (access(S_FMNIST "train-images-idx3-ubyte.gz", R_OK) == 0 &&
        fl_dataset_load_idx(&all, S_FMNIST "train-images-idx3-ubyte.gz",
                            S_FMNIST "train-labels-idx1-ubyte.gz") == 0) {
        int rc = fl_dataset_select_classes(&all, classes, 5);
        if (rc == 0)
            rc = fl_dataset_take(ds, &all, records, 1);
        fl_dataset_free(&all);
        *desc = "Fashion-MNIST train, classes 5-9";
        return rc;
    }
    *desc = "random (Fashion-MNIST not found)";
    return s_bench_random_data(ds, records, 784, 5, 3);
}

int main(int argc, char **argv)
{
    int epochs = 4, threads = 0, rounds = 3;
    size_t records = 5000, cache_mb = 1024;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--epochs") == 0)
            epochs = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--records") == 0)
            records = (size_t)atol(argv[i + 1]);
        else if (strcmp(argv[i], "--threads") == 0)
            threads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--rounds") == 0)
            rounds = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--cache-mb") == 0)
            cache_mb = (size_t)atol(argv[i + 1]);
        else
            break;
    }
    if (argc % 2 == 0 || epochs < 2 || epochs > S_MAX_EPOCHS || records < 64 || cache_mb == 0 ||
        rounds < 1 || rounds > S_MAX_ROUNDS) {
        fprintf(stderr, "usage: bench_cache [--epochs N>=2] [--records N] [--threads N] "
                        "[--rounds R] [--cache-mb MB]\n");
        return 2;
    }
    fl_pool_t *pool = fl_pool_new(threads); /* the process's one pool, lent to every model */
    if (!pool) {
        fprintf(stderr, "bench_cache: cannot start %d threads\n", threads);
        return 1;
    }

    struct fl_dataset ds;
    const char *desc;
    int rc = s_load(&ds, records, &desc);
    if (rc) {
        fprintf(stderr, "bench_cache: data: %s: %s\n", fl_strerror(rc), fl_error_msg());
        fl_pool_destroy(&pool);
        return 1;
    }
    float mean, std;
    fl_data_stats(&ds, true, &mean, &std);
    char path[512];
    s_bench_tmp_path(path, sizeof path, "fedtl-bench-cache");
    struct fl_base_file bf;
    memset(&bf, 0, sizeof bf);
    if ((rc = s_bench_random_base(path, "cnn-small", 784, 5, mean, std, &bf)) != 0) {
        fprintf(stderr, "bench_cache: base: %s: %s\n", fl_strerror(rc), fl_error_msg());
        fl_dataset_free(&ds);
        unlink(path);
        fl_pool_destroy(&pool);
        return 1;
    }
    struct fl_adapter_meta am;
    s_bench_adapter(&am, FL_ADAPTER_LORA, 4, 8.0f, "fc1", 5);
    printf("# bench_cache: cnn-small (random base), LoRA rank 4 alpha 8 on fc1, new head, batch "
           "64, Adam; %zu records (%s); %d epochs; %d threads; %d rounds of (on, off)\n",
           ds.n, desc, epochs, fl_pool_size(pool), rounds);

    /* Alternate the two configurations, round after round, so that machine noise hits both
     * alike; the speedup is the median over rounds of (off / on) median epoch after the first. */
    const size_t budgets[2] = {cache_mb << 20, 0};
    const char *names[2] = {"on", "off"};
    struct s_run run[2];
    double ratios[S_MAX_ROUNDS];
    int frozen = 0;
    size_t frozen_dim = 0;
    for (int r = 0; r < rounds && rc == 0; r++) {
        for (int c = 0; c < 2 && rc == 0; c++) {
            fl_model_t *m = fl_model_from_base(&bf, path, &am, pool);
            if (!m) {
                fprintf(stderr, "bench_cache: model: %s\n", fl_error_msg());
                rc = 1;
                break;
            }
            frozen = fl_model_frozen_prefix(m);
            frozen_dim = fl_model_act_dim(m, frozen);
            struct fl_train_opts o;
            fl_train_opts_default(&o);
            o.epochs = epochs;
            o.cache_bytes = budgets[c];
            o.label = names[c];
            memset(&run[c], 0, sizeof run[c]);
            double t0 = fl_now_s();
            rc = fl_train(m, &ds, &o, s_on_epoch, &run[c], NULL);
            double total = fl_now_s() - t0;
            fl_model_destroy(&m);
            if (rc) {
                fprintf(stderr, "bench_cache: fl_train: %s: %s\n", fl_strerror(rc), fl_error_msg());
                break;
            }
            printf("bench=cache round=%d cache=%s cache_bytes=%zu total_s=%.3f epoch_s=", r + 1,
                   names[c], budgets[c], total);
            for (int e = 0; e < run[c].n; e++)
                printf("%s%.3f", e ? "," : "", run[c].seconds[e]);
            printf(" cached=");
            for (int e = 0; e < run[c].n; e++)
                printf("%s%zu", e ? "," : "", run[c].cached[e]);
            printf(" median_after_first_s=%.4f final_loss=%.6f\n", s_median_after_first(&run[c]),
                   run[c].loss[run[c].n - 1]);
            fflush(stdout);
        }
        if (rc == 0)
            ratios[r] = s_median_after_first(&run[1]) / s_median_after_first(&run[0]);
    }
    if (rc == 0) {
        printf("\nfrozen prefix: layers [0, %d) cached (%zu floats per record); last round:\n",
               frozen, frozen_dim);
        printf("%-6s %10s %10s %14s %16s\n", "epoch", "cache on", "cache off", "on: cached",
               "loss on/off");
        for (int e = 0; e < run[0].n && e < run[1].n; e++)
            printf("%-6d %9.3fs %9.3fs %14zu %8.4f/%.4f\n", e + 1, run[0].seconds[e],
                   run[1].seconds[e], run[0].cached[e], run[0].loss[e], run[1].loss[e]);
        printf("per-round speedup (off/on, median epoch after the first):");
        for (int r = 0; r < rounds; r++)
            printf(" %.2f", ratios[r]);
        double ratio = s_bench_median(ratios, rounds);
        printf("\nbench=cache_summary speedup=%.2f first_epoch_on_s=%.3f first_epoch_off_s=%.3f "
               "target=3.0 %s\n",
               ratio, run[0].seconds[0], run[1].seconds[0], ratio >= 3.0 ? "PASS" : "FAIL");
    }
    fl_base_close(&bf);
    unlink(path);
    fl_dataset_free(&ds);
    fl_pool_destroy(&pool);
    return rc ? 1 : 0;
}
