/* bench_common: helpers shared by the bench programs (header only: CMake builds every
 * bench .c file into its own executable, so there is no bench library to link). A random
 * cnn-small base written to and read back from a real .ftm file, random data sets, timing. */
#ifndef FEDTL_BENCH_COMMON_H
#define FEDTL_BENCH_COMMON_H

#include "fl_error.h"
#include "fl_model.h"
#include "fl_modelfile.h"
#include "fl_modelio.h"
#include "fl_rng.h"
#include "fl_time.h"
#include "fl_train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int s_bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n) (v is sorted in place); 0 when n == 0. */
static inline double s_bench_median(double *v, int n)
{
    if (n <= 0)
        return 0.0;
    qsort(v, (size_t)n, sizeof *v, s_bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Write a freshly initialised (random) base of architecture `arch_name` to path, with the
 * normalisation (mean, std) given, and map it into *bf. Returns 0 or an FL_E* code. */
static inline int s_bench_random_base(const char *path, const char *arch_name, int in_dim,
                                      int classes, float mean, float std, struct fl_base_file *bf)
{
    struct fl_arch arch;
    int rc = fl_arch_builtin(arch_name, in_dim, classes, &arch);
    if (rc)
        return rc;
    fl_model_t *m = fl_model_new(&arch, 42, NULL); /* written, never run */
    if (!m)
        return FL_ENOMEM;
    if ((rc = fl_model_set_norm(m, &mean, &std, 1)) != 0)
        goto out_destroy;
    struct fl_base_meta meta;
    memset(&meta, 0, sizeof meta);
    snprintf(meta.data_desc, sizeof meta.data_desc, "bench: random weights");
    meta.nclasses = classes;
    for (int i = 0; i < classes; i++)
        meta.class_ids[i] = i;
    rc = fl_model_write_base(m, &meta, path, NULL);
    if (rc == 0)
        rc = fl_base_read(path, bf);
out_destroy:
    fl_model_destroy(&m);
    return rc;
}

/* n random records: features uniform in [0, 1), labels uniform in [0, classes). */
static inline int s_bench_random_data(struct fl_dataset *ds, size_t n, size_t dim, int classes,
                                      uint64_t seed)
{
    memset(ds, 0, sizeof *ds);
    ds->x = fl_falloc(n * dim);
    ds->y = malloc(sizeof(int32_t) * n);
    if (!ds->x || !ds->y) {
        fl_dataset_free(ds);
        return FL_ENOMEM;
    }
    struct fl_rng r;
    fl_rng_seed(&r, seed);
    for (size_t i = 0; i < n * dim; i++)
        ds->x[i] = (float)fl_rng_uniform(&r);
    for (size_t i = 0; i < n; i++)
        ds->y[i] = (int32_t)fl_rng_below(&r, (uint64_t)classes);
    ds->n = n;
    ds->dim = dim;
    ds->rows = ds->cols = 28;
    ds->num_classes = classes;
    return 0;
}

/* LoRA adapter configuration: method, rank, alpha, comma list of targets, new head classes. */
static inline void s_bench_adapter(struct fl_adapter_meta *am, enum fl_adapter_kind kind, int rank,
                                   float alpha, const char *targets, int classes)
{
    memset(am, 0, sizeof *am);
    am->kind = kind;
    am->rank = rank;
    am->alpha = alpha;
    am->seed = 7;
    am->num_classes = classes;
    for (int i = 0; i < classes; i++)
        am->class_ids[i] = 5 + i;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", targets);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t && am->ntargets < FL_MAX_TARGETS;
         t = strtok_r(NULL, ",", &save))
        snprintf(am->targets[am->ntargets++], FL_TARGET_NAME_MAX, "%s", t);
}

/* A temporary file name under $TMPDIR (or /tmp) for a bench base; "" on failure. */
static inline void s_bench_tmp_path(char *buf, size_t len, const char *stem)
{
    const char *dir = getenv("TMPDIR");
    snprintf(buf, len, "%s/%s-%ld.ftm", dir && *dir ? dir : "/tmp", stem, (long)getpid());
}

#endif
