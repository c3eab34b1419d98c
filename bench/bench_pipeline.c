/* bench_pipeline: training on an image folder larger than the memory budget. The folder is
 * loaded as fedtl finetune loads it (fl_dataset_load_ex with a budget: over it, the records
 * stream, each decoded again on the thread pool when read, but for those the budget keeps once
 * decoded), then one or more epochs run in the seeded shuffled order, a batch at a time, and
 * the program prints the peak resident set (getrusage ru_maxrss) and the throughput.
 * bench/pipeline.sh makes the folder and runs it. bench_pipeline --data DIR [--size 224] [--budget
 * 1G] [--threads 2] [--batch 64]
 *                  [--mode feed|finetune] [--arch mobilenet_v2] [--augment crop,flip]
 *                  [--samples N] [--epochs 1]
 *     feed: the records of every batch gathered (decoded, prepared) as fl_train gathers them,
 *       nothing computed on them; finetune: fl_train, epochs of a new head over a frozen
 *       zoo network (random weights) at 3 x size x size, whose frozen prefix is cached.
 *   (the figures are the last epoch's)
 *   prints "bench=pipeline mode=... records=... decoded_gib=... budget_gib=... streamed=...
 *     load_s=... epoch_s=... records_per_s=... rss_after_load_mb=... peak_rss_mb=..." */
#include "fl_data.h"
#include "fl_error.h"
#include "fl_graphadapt.h"
#include "fl_graphdef.h"
#include "fl_image.h"
#include "fl_model.h"
#include "fl_options.h"
#include "fl_pool.h"
#include "fl_rng.h"
#include "fl_time.h"
#include "fl_train.h"
#include "fl_zoo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* What the command line asks. */
struct s_args {
    const char *data;    /* the image folder */
    const char *mode;    /* feed or finetune */
    const char *arch;    /* finetune: the zoo network */
    const char *augment; /* crop,flip or NULL */
    size_t budget;       /* decoded bytes held in memory */
    int size;            /* input side */
    int threads;         /* pool size */
    int batch;           /* records per batch */
    size_t samples;      /* records used (0: all) */
    int epochs;          /* epochs run; the figures are the last one's */
};

#define A(f) FL_OPTION_FIELD(struct s_args, f)
#define ARG  .where = FL_OPTION_FLAG_ONLY, .store = FL_OPTION_BORROWED
static const struct fl_option s_options[] = {
    {"data", .type = FL_OPTION_PATH, ARG, A(data), .flags = FL_OPTION_REQUIRED,
     .help = "image class folders"},
    {"mode", .type = FL_OPTION_STRING, ARG, A(mode), .help = "feed (default) or finetune"},
    {"arch", .type = FL_OPTION_STRING, ARG, A(arch), .help = "finetune: zoo network"},
    {"augment", .type = FL_OPTION_STRING, ARG, A(augment), .validate = fl_augment_validate,
     .help = "crop,flip"},
    {"budget", .type = FL_OPTION_SIZE, .where = FL_OPTION_FLAG_ONLY, A(budget),
     .range.u = {1, (unsigned long long)1 << 50}, .def = "1G", .help = "memory budget"},
    {"size", .type = FL_OPTION_INT, .where = FL_OPTION_FLAG_ONLY, A(size), .range.i = {8, 4096},
     .def = "224", .help = "input side"},
    {"threads", .type = FL_OPTION_INT, .where = FL_OPTION_FLAG_ONLY, A(threads),
     .range.i = {0, 4096}, .def = "2", .help = "threads"},
    {"batch", .type = FL_OPTION_INT, .where = FL_OPTION_FLAG_ONLY, A(batch), .range.i = {1, 4096},
     .def = "64", .help = "batch"},
    {"epochs", .type = FL_OPTION_INT, .where = FL_OPTION_FLAG_ONLY, A(epochs), .range.i = {1, 1000},
     .def = "1", .help = "epochs (the last one is reported)"},
    {"samples", .type = FL_OPTION_UINT, .where = FL_OPTION_FLAG_ONLY, A(samples),
     .range.u = {0, SIZE_MAX}, .def = "0", .help = "records used (0: all)"},
};
static const struct fl_options_spec s_spec = {
    .program = "bench_pipeline", .options = s_options, .noptions = 10};

static double s_peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* Linux: KiB */
}

/* Epochs of gathering: what fl_train reads, nothing computed; *last the last epoch's
 * seconds. Returns a checksum of the last epoch in *sum. */
static int s_feed(const struct fl_dataset *ds, int batch, int epochs, double *sum, double *last)
{
    size_t *perm = malloc(ds->n * sizeof *perm);
    float *buf = fl_falloc((size_t)batch * ds->dim);
    if (!perm || !buf)
        return FL_ENOMEM;
    for (size_t i = 0; i < ds->n; i++)
        perm[i] = i;
    struct fl_rng r;
    fl_rng_seed(&r, 1);
    int rc = 0;
    for (int e = 0; e < epochs && rc == 0; e++) {
        double t0 = fl_now_s();
        *sum = 0;
        fl_rng_shuffle(&r, perm, ds->n);
        for (size_t done = 0; done < ds->n && rc == 0; done += (size_t)batch) {
            size_t n = ds->n - done < (size_t)batch ? ds->n - done : (size_t)batch;
            if ((rc = fl_dataset_gather(ds, perm + done, n, buf)) == 0)
                for (size_t k = 0; k < n * ds->dim; k += 97)
                    *sum += buf[k];
        }
        *last = fl_now_s() - t0;
        fprintf(stderr, "bench feed epoch %d/%d %.1fs\n", e + 1, epochs, *last);
    }
    free(perm);
    free(buf);
    return rc;
}

/* Epochs of fine-tuning a new head over a frozen, randomly initialised zoo network. */
static int s_finetune(const struct s_args *a, const struct fl_dataset *ds, fl_pool_t *pool,
                      double *loss, double *seconds)
{
    struct fl_graphdef def;
    struct fl_arch arch;
    struct fl_tensor *params = NULL;
    size_t np = 0;
    fl_graphdef_init(&def);
    int rc = fl_zoo_build(a->arch, 3, a->size, a->size, ds->num_classes, 1, &def, &params, &np);
    if (rc == 0)
        rc = fl_arch_from_graph(&def, a->arch, ds->num_classes, &arch);
    fl_model_t *m = NULL;
    if (rc == 0) {
        struct fl_adapter_meta am = {
            .kind = FL_ADAPTER_HEAD, .num_classes = ds->num_classes, .seed = 1};
        uint8_t hash[FL_HASH_BYTES] = {0};
        m = fl_model_new_frozen(&arch, params, np, hash, "bench", &am, pool);
        rc = m ? 0 : FL_EINVAL;
    }
    struct fl_train_opts o;
    fl_train_opts_default(&o);
    o.epochs = a->epochs, o.batch = a->batch, o.progress = true, o.label = "bench";
    struct fl_epoch_stats st = {0};
    if (rc == 0 && a->augment)
        rc = fl_augment_parse(a->augment, &o.augment.ops);
    if (rc == 0)
        rc = fl_train(m, ds, &o, NULL, NULL, &st);
    *loss = st.loss;
    *seconds = st.seconds; /* the last epoch alone, not building the network */
    fl_model_destroy(&m);
    fl_zoo_free_params(params, np);
    fl_graphdef_free(&def);
    return rc;
}

int main(int argc, char **argv)
{
    struct s_args a = {0};
    struct fl_options_args args;
    fl_options_reset(&s_spec, &a);
    if (fl_options_parse(&s_spec, &a, argc, argv, &args) != 0 ||
        fl_options_check_required(&s_spec, &a) != 0) {
        fprintf(stderr, "bench_pipeline: %s\n", fl_error_msg());
        return 2;
    }
    const char *mode = a.mode ? a.mode : "feed";
    if (!a.arch)
        a.arch = "mobilenet_v2";
    fl_pool_t *pool = fl_pool_new(a.threads);
    struct fl_image_target t = {
        .channels = 3, .height = a.size, .width = a.size, .resize = a.size, .pixel_max = 1};
    struct fl_data_opts o = {.image = &t, .pool = pool, .budget = a.budget};
    struct fl_dataset all = {0}, ds = {0};
    double t0 = fl_now_s();
    int rc = fl_dataset_load_ex(&all, a.data, NULL, &o, NULL);
    if (rc == 0 && a.samples && a.samples < all.n)
        rc = fl_dataset_take(&ds, &all, a.samples, 1);
    else if (rc == 0)
        ds = all, all = (struct fl_dataset){0};
    fl_dataset_free(&all);
    double load_s = fl_now_s() - t0, rss_load = s_peak_rss_mb(), sum = 0, loss = 0, epoch_s = 0;
    if (rc == 0)
        rc = strcmp(mode, "finetune") == 0 ? s_finetune(&a, &ds, pool, &loss, &epoch_s)
                                           : s_feed(&ds, a.batch, a.epochs, &sum, &epoch_s);
    if (rc) {
        fprintf(stderr, "bench_pipeline: %s\n", fl_error_msg());
        fl_dataset_free(&ds);
        fl_pool_destroy(&pool);
        return 1;
    }
    double decoded = (double)ds.n * (double)ds.dim * sizeof(float);
    printf(
        "bench=pipeline mode=%s arch=%s augment=%s epochs=%d records=%zu size=%d decoded_gib=%.2f "
        "budget_gib=%.2f streamed=%s threads=%d batch=%d load_s=%.2f epoch_s=%.1f "
        "records_per_s=%.1f decoded_mb_per_s=%.0f rss_after_load_mb=%.0f peak_rss_mb=%.0f "
        "checksum=%.6g loss=%.4f\n",
        mode, strcmp(mode, "finetune") == 0 ? a.arch : "-", a.augment ? a.augment : "none",
        a.epochs, ds.n, a.size, decoded / (1 << 30), (double)a.budget / (1 << 30),
        fl_dataset_streamed(&ds) ? "yes" : "no", fl_pool_size(pool), a.batch, load_s, epoch_s,
        ds.n / epoch_s, decoded / 1e6 / epoch_s, rss_load, s_peak_rss_mb(), sum, loss);
    fl_dataset_free(&ds);
    fl_pool_destroy(&pool);
    return 0;
}
