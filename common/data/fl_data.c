/* fl_data: a dataset loaded whatever its format, and the seeded ways of cutting one up: class
 * selection, subsets, the stratified split and sample. */
#include "fl_data.h"
#include "fl_csv.h"
#include "fl_error.h"
#include "fl_gzread.h"
#include "fl_idx.h"
#include "fl_imagefolder.h"
#include "fl_mem.h"
#include "fl_rng.h"
#include "fl_tensor.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void fl_data_info_free(struct fl_data_info *info)
{
    if (!info)
        return;
    for (int i = 0; i < info->nnames; i++)
        free(info->names[i]);
    free(info->names);
    for (size_t i = 0; i < info->nfiles; i++)
        free(info->files[i]);
    free(info->files);
    memset(info, 0, sizeof *info);
}

bool fl_data_is_images(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return false;
    if (S_ISDIR(st.st_mode))
        return true;
    uint8_t hdr[8];
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    size_t got = fread(hdr, 1, sizeof hdr, f);
    fclose(f);
    return fl_image_sniff(hdr, got) || fl_imagefolder_is_manifest(path);
}

int fl_dataset_load_ex(struct fl_dataset *ds, const char *data_path, const char *labels_path,
                       const struct fl_data_opts *opts, struct fl_data_info *info)
{
    static const struct fl_data_opts s_defaults = {0};
    if (info)
        memset(info, 0, sizeof *info);
    if (!labels_path && fl_data_is_images(data_path))
        return fl_imagefolder_load(ds, data_path, opts ? opts : &s_defaults, info);
    if (!labels_path && opts && opts->table)
        return fl_table_load(ds, data_path, opts->table, info ? &info->dropped : NULL);
    return fl_dataset_load(ds, data_path, labels_path);
}

int fl_dataset_load(struct fl_dataset *ds, const char *data_path, const char *labels_path)
{
    if (!labels_path && fl_data_is_images(data_path))
        return fl_dataset_load_ex(ds, data_path, NULL, NULL, NULL);
    if (labels_path)
        return fl_dataset_load_idx(ds, data_path, labels_path);
    gzFile f;
    uint8_t hdr[3];
    size_t got = 0;
    memset(ds, 0, sizeof *ds);
    int rc = fl_gz_open(&f, data_path);
    if (rc)
        return rc;
    rc = fl_gz_read(f, data_path, hdr, sizeof hdr, &got);
    gzclose(f);
    if (rc)
        return rc;
    if (fl_idx_sniff(hdr, got))
        return fl_fail(FL_EINVAL, "%s is an IDX file: its labels file is needed too (--labels)",
                       data_path);
    return fl_dataset_load_csv(ds, data_path);
}

/* ---- classes ---- */

/* Parse one class number at *p (after spaces), advancing *p past it and trailing spaces. */
static int s_class_number(const char *spec, const char **p, long *v)
{
    const char *s = *p;
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '-')
        return fl_fail(FL_EINVAL, "classes '%s': negative class at '%s'", spec, s);
    if (*s < '0' || *s > '9')
        return fl_fail(FL_EINVAL, "classes '%s': expected a class number at '%s'", spec, s);
    char *end;
    errno = 0;
    *v = strtol(s, &end, 10);
    if (errno == ERANGE || *v > FL_DATA_MAX_LABEL)
        return fl_fail(FL_EINVAL, "classes '%s': class at '%s' is larger than %d", spec, s,
                       FL_DATA_MAX_LABEL);
    while (*end == ' ' || *end == '\t')
        end++;
    *p = end;
    return 0;
}

int fl_classes_parse(const char *spec, int32_t *classes, int max, int *count)
{
    static const size_t nbits = FL_DATA_MAX_LABEL + 1;
    uint8_t seen[(FL_DATA_MAX_LABEL + 1) / 8] = {0};
    *count = 0;
    if (!spec || !*spec)
        return fl_fail(FL_EINVAL, "classes: empty list");
    const char *p = spec;
    int n = 0;
    for (;;) {
        long a, b;
        int rc = s_class_number(spec, &p, &a);
        if (rc)
            return rc;
        b = a;
        if (*p == '-') {
            p++;
            if ((rc = s_class_number(spec, &p, &b)))
                return rc;
            if (b < a)
                return fl_fail(FL_EINVAL, "classes '%s': range %ld-%ld is backwards", spec, a, b);
        }
        for (long v = a; v <= b; v++) {
            if ((size_t)v >= nbits || (seen[v / 8] & (1u << (v % 8))))
                return fl_fail(FL_EINVAL, "classes '%s': class %ld listed twice", spec, v);
            if (n >= max)
                return fl_fail(FL_ERANGE, "classes '%s': more than %d classes", spec, max);
            seen[v / 8] |= (uint8_t)(1u << (v % 8));
            classes[n++] = (int32_t)v;
        }
        if (*p == '\0')
            break;
        if (*p != ',')
            return fl_fail(FL_EINVAL, "classes '%s': unexpected '%c'", spec, *p);
        p++;
    }
    *count = n;
    return 0;
}

int fl_class_names_parse(const char *spec, char (*names)[FL_LABEL_NAME_MAX], int max, int *count)
{
    *count = 0;
    if (!spec || !*spec)
        return fl_fail(FL_EINVAL, "class names: empty list");
    int n = 0;
    for (const char *p = spec;; p++) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0)
            return fl_fail(FL_EINVAL, "class names: name %d is empty", n + 1);
        if (len >= FL_LABEL_NAME_MAX)
            return fl_fail(FL_ERANGE, "class names: name %d is %zu bytes, at most %d allowed",
                           n + 1, len, FL_LABEL_NAME_MAX - 1);
        if (n >= max)
            return fl_fail(FL_ERANGE, "class names: more than %d names", max);
        memcpy(names[n], p, len);
        names[n][len] = '\0';
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
                return fl_fail(FL_EINVAL, "class names: name %d holds a control character", n + 1);
        if (!fl_utf8_valid(names[n]))
            return fl_fail(FL_EINVAL, "class names: name %d is not UTF-8 text", n + 1);
        if (p[0] == ' ' || p[len - 1] == ' ')
            return fl_fail(FL_EINVAL, "class names: name %d ('%s') starts or ends with a space",
                           n + 1, names[n]);
        for (int k = 0; k < n; k++)
            if (strcmp(names[k], names[n]) == 0)
                return fl_fail(FL_EINVAL, "class names: '%s' is named twice", names[n]);
        n++;
        if (!end)
            break;
        p = end;
    }
    *count = n;
    return 0;
}

int fl_dataset_select_classes(struct fl_dataset *ds, const int32_t *classes, int count)
{
    if (count <= 0)
        return fl_fail(FL_EINVAL, "select classes: empty class list");
    /* A class the data happens not to hold (a branch's shard may lack one) is no error: it
     * keeps its number and simply has no records. */
    int32_t width = ds->num_classes;
    for (int i = 0; i < count; i++) {
        if (classes[i] < 0 || classes[i] > FL_DATA_MAX_LABEL)
            return fl_fail(FL_ERANGE, "select classes: class %d is out of range (0..%d)",
                           (int)classes[i], FL_DATA_MAX_LABEL);
        if (classes[i] >= width)
            width = classes[i] + 1;
    }
    int32_t *map = fl_malloc_array((size_t)width, sizeof *map);
    if (!map)
        return fl_fail(FL_ENOMEM, "select classes: out of memory");
    int rc = 0;
    for (int32_t c = 0; c < width; c++)
        map[c] = -1;
    for (int i = 0; i < count; i++) {
        int32_t c = classes[i];
        if (map[c] >= 0) {
            rc = fl_fail(FL_EINVAL, "select classes: class %d listed twice", (int)c);
            goto out_free_map;
        }
        map[c] = i;
    }
    size_t kept = 0;
    for (size_t i = 0; i < ds->n; i++)
        kept += ds->y[i] >= 0 && ds->y[i] < ds->num_classes && map[ds->y[i]] >= 0;
    if (kept == 0) {
        rc = fl_fail(FL_ENOTFOUND, "select classes: no records have the selected classes");
        goto out_free_map;
    }
    size_t j = 0;
    for (size_t i = 0; i < ds->n; i++) {
        int32_t y = ds->y[i];
        if (y < 0 || y >= ds->num_classes || map[y] < 0)
            continue;
        if (i != j && ds->x)
            memcpy(ds->x + j * ds->dim, ds->x + i * ds->dim, ds->dim * sizeof(float));
        if (ds->ref) /* streamed: the record keeps its place in the source */
            ds->ref[j] = ds->ref[i];
        ds->y[j++] = map[y];
    }
    ds->n = j;
    ds->num_classes = count;
out_free_map:
    free(map);
    return rc;
}

/* ---- subsets, splits, samples ---- */

int fl_dataset_subset(struct fl_dataset *out, const struct fl_dataset *ds, const size_t *idx,
                      size_t n)
{
    struct fl_dataset d = {
        .n = n, .dim = ds->dim, .rows = ds->rows, .cols = ds->cols, .num_classes = ds->num_classes};
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < n; i++)
        if (idx[i] >= ds->n)
            return fl_fail(FL_ERANGE, "subset: index %zu is %zu, dataset has %zu records", i,
                           idx[i], ds->n);
    if (ds->dim && n > SIZE_MAX / ds->dim)
        return fl_fail(FL_ERANGE, "subset: %zu records too many", n);
    if (ds->src) { /* streamed: the subset shares the source, records by reference */
        d.src = fl_source_ref(ds->src);
        d.ref = fl_malloc_array(n, sizeof *d.ref);
    } else
        d.x = fl_falloc(n * ds->dim);
    d.y = fl_malloc_array(n, sizeof *d.y);
    if ((!d.x && !d.ref) || !d.y) {
        fl_dataset_free(&d);
        return fl_fail(FL_ENOMEM, "subset: out of memory for %zu records", n);
    }
    for (size_t i = 0; i < n; i++) {
        if (d.ref)
            d.ref[i] = ds->ref[idx[i]];
        else
            memcpy(d.x + i * ds->dim, ds->x + idx[i] * ds->dim, ds->dim * sizeof(float));
        d.y[i] = ds->y[idx[i]];
    }
    *out = d;
    return 0;
}

int fl_dataset_by_class(const struct fl_dataset *ds, size_t **order, size_t **start)
{
    size_t k = ds->num_classes > 0 ? (size_t)ds->num_classes : 0;
    *order = fl_malloc_array(ds->n, sizeof **order);
    *start = calloc(k + 1, sizeof **start);
    if (!*order || !*start) {
        free(*order);
        free(*start);
        *order = *start = NULL;
        return fl_fail(FL_ENOMEM, "dataset: out of memory");
    }
    for (size_t i = 0; i < ds->n; i++) {
        if (ds->y[i] < 0 || (size_t)ds->y[i] >= k) {
            free(*order);
            free(*start);
            *order = *start = NULL;
            return fl_fail(FL_EINVAL, "dataset: record %zu has label %d outside 0..%d", i,
                           (int)ds->y[i], (int)k - 1);
        }
        (*start)[ds->y[i] + 1]++;
    }
    for (size_t c = 0; c < k; c++)
        (*start)[c + 1] += (*start)[c];
    size_t *fill = fl_malloc_array(k, sizeof *fill);
    if (!fill) {
        free(*order);
        free(*start);
        *order = *start = NULL;
        return fl_fail(FL_ENOMEM, "dataset: out of memory");
    }
    memcpy(fill, *start, k * sizeof *fill);
    for (size_t i = 0; i < ds->n; i++)
        (*order)[fill[ds->y[i]]++] = i;
    free(fill);
    return 0;
}

/* *idx = the indices i with mark[i] == want, ascending; *n their count. */
static int s_collect(const uint8_t *mark, size_t total, uint8_t want, size_t **idx, size_t *n)
{
    *n = 0;
    for (size_t i = 0; i < total; i++)
        *n += mark[i] == want;
    *idx = fl_malloc_array(*n, sizeof **idx);
    if (!*idx)
        return fl_fail(FL_ENOMEM, "dataset: out of memory");
    size_t j = 0;
    for (size_t i = 0; i < total; i++)
        if (mark[i] == want)
            (*idx)[j++] = i;
    return 0;
}

int fl_dataset_split(const struct fl_dataset *ds, double holdout, uint64_t seed,
                     struct fl_dataset *train, struct fl_dataset *test)
{
    size_t *order = NULL, *start = NULL, *tr_idx = NULL, *te_idx = NULL, tr_n, te_n;
    uint8_t *is_test = NULL;
    struct fl_rng rng;
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    if (!(holdout >= 0.0 && holdout < 1.0))
        return fl_fail(FL_EINVAL, "split: holdout %g is not in [0, 1)", holdout);
    int rc = fl_dataset_by_class(ds, &order, &start);
    if (rc)
        return rc;
    if (!(is_test = calloc(ds->n ? ds->n : 1, 1))) {
        rc = fl_fail(FL_ENOMEM, "split: out of memory");
        goto out_free;
    }
    fl_rng_seed(&rng, seed);
    for (int32_t c = 0; c < ds->num_classes; c++) {
        size_t cnt = start[c + 1] - start[c];
        size_t k = (size_t)llround(holdout * (double)cnt);
        if (k >= cnt && cnt > 0)
            k = cnt - 1; /* every class keeps a training record */
        fl_rng_shuffle(&rng, order + start[c], cnt);
        for (size_t i = 0; i < k; i++)
            is_test[order[start[c] + i]] = 1;
    }
    if ((rc = s_collect(is_test, ds->n, 0, &tr_idx, &tr_n)) ||
        (rc = s_collect(is_test, ds->n, 1, &te_idx, &te_n)))
        goto out_free;
    if ((rc = fl_dataset_subset(train, ds, tr_idx, tr_n)))
        goto out_free;
    if ((rc = fl_dataset_subset(test, ds, te_idx, te_n)))
        fl_dataset_free(train);
out_free:
    free(order);
    free(start);
    free(is_test);
    free(tr_idx);
    free(te_idx);
    return rc;
}

/* Class quotas for take(): largest remainder, ties to the lower class. */
struct s_quota {
    uint64_t rem; /* remainder of n * count / total */
    int32_t cls;  /* class */
};

static int s_cmp_quota(const void *a, const void *b)
{
    const struct s_quota *x = a, *y = b;
    if (x->rem != y->rem)
        return x->rem < y->rem ? 1 : -1;
    return (x->cls > y->cls) - (x->cls < y->cls);
}

int fl_dataset_take(struct fl_dataset *out, const struct fl_dataset *ds, size_t n, uint64_t seed)
{
    size_t *order = NULL, *start = NULL, *quota = NULL, *idx = NULL, got;
    struct s_quota *q = NULL;
    uint8_t *chosen = NULL;
    struct fl_rng rng;
    memset(out, 0, sizeof *out);
    if (n >= ds->n)
        n = ds->n;
    if ((uint64_t)ds->n > UINT32_MAX)
        return fl_fail(FL_ERANGE, "take: %zu records is too many", ds->n);
    int rc = fl_dataset_by_class(ds, &order, &start);
    if (rc)
        return rc;
    size_t k = (size_t)ds->num_classes;
    quota = fl_malloc_array(k, sizeof *quota);
    q = fl_malloc_array(k, sizeof *q);
    chosen = calloc(ds->n ? ds->n : 1, 1);
    if (!quota || !q || !chosen) {
        rc = fl_fail(FL_ENOMEM, "take: out of memory");
        goto out_free;
    }
    size_t given = 0;
    for (size_t c = 0; c < k; c++) {
        uint64_t prod = (uint64_t)n * (start[c + 1] - start[c]);
        quota[c] = ds->n ? (size_t)(prod / ds->n) : 0;
        q[c] = (struct s_quota){.rem = ds->n ? prod % ds->n : 0, .cls = (int32_t)c};
        given += quota[c];
    }
    qsort(q, k, sizeof *q, s_cmp_quota);
    for (size_t i = 0; given < n && i < k; i++, given++)
        quota[q[i].cls]++;
    fl_rng_seed(&rng, seed);
    for (size_t c = 0; c < k; c++) {
        fl_rng_shuffle(&rng, order + start[c], start[c + 1] - start[c]);
        for (size_t i = 0; i < quota[c]; i++)
            chosen[order[start[c] + i]] = 1;
    }
    if ((rc = s_collect(chosen, ds->n, 1, &idx, &got)))
        goto out_free;
    rc = fl_dataset_subset(out, ds, idx, got);
out_free:
    free(order);
    free(start);
    free(quota);
    free(q);
    free(chosen);
    free(idx);
    return rc;
}

void fl_dataset_histogram(const struct fl_dataset *ds, size_t *counts)
{
    for (int32_t c = 0; c < ds->num_classes; c++)
        counts[c] = 0;
    for (size_t i = 0; i < ds->n; i++)
        if (ds->y[i] >= 0 && ds->y[i] < ds->num_classes)
            counts[ds->y[i]]++;
}
