/* fl_table: the file read whole (through zlib), the header mapped to column indices, rows
 * parsed strictly with missing features kept as NaN until the missing-value rule settles them. */
#include "fl_table.h"
#include "fl_data.h"
#include "fl_error.h"
#include "fl_gzread.h"
#include "fl_mem.h"
#include "fl_tensor.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Most columns a table may have. */
#define S_MAX_COLS 65536

int fl_missing_parse(const char *text, enum fl_missing *out)
{
    if (strcmp(text, "error") == 0)
        *out = FL_MISSING_ERROR;
    else if (strcmp(text, "mean") == 0)
        *out = FL_MISSING_MEAN;
    else if (strcmp(text, "drop") == 0)
        *out = FL_MISSING_DROP;
    else
        return fl_fail(FL_EINVAL, "--missing '%s': want error, mean or drop", text);
    return 0;
}

/* The whole file (gzip or raw), NUL-terminated, in a malloc'd *buf. */
static int s_read_all(const char *path, char **buf, size_t *len)
{
    gzFile f;
    int rc = fl_gz_open(&f, path);
    if (rc)
        return rc;
    size_t cap = 1 << 16, n = 0, got = 0;
    char *b = malloc(cap);
    while (b && rc == 0) {
        if (cap - n < 2) {
            char *nb = cap < FL_DATA_MAX_BYTES ? realloc(b, cap * 2) : NULL;
            if (!nb) {
                rc = fl_fail(FL_ERANGE, "%s: too large to read", path);
                break;
            }
            b = nb, cap *= 2;
        }
        if ((rc = fl_gz_read(f, path, b + n, cap - n - 1, &got)) != 0 || got == 0)
            break;
        n += got;
    }
    gzclose(f);
    if (!b)
        return fl_fail(FL_ENOMEM, "%s: out of memory", path);
    if (rc) {
        free(b);
        return rc;
    }
    b[n] = '\0';
    *buf = b, *len = n;
    return 0;
}

/* Split line in place at commas: fields trimmed of blanks and of one pair of double quotes. */
static int s_split(char *line, char **fields, size_t *n)
{
    size_t k = 0;
    for (char *p = line;; p++) {
        char *end = strchr(p, ',');
        if (end)
            *end = '\0';
        while (*p == ' ' || *p == '\t')
            p++;
        size_t l = strlen(p);
        while (l && (p[l - 1] == ' ' || p[l - 1] == '\t'))
            p[--l] = '\0';
        if (l >= 2 && p[0] == '"' && p[l - 1] == '"')
            p[l - 1] = '\0', p++;
        if (k == S_MAX_COLS)
            return FL_ERANGE;
        fields[k++] = p;
        if (!end)
            break;
        p = end;
    }
    *n = k;
    return 0;
}

static bool s_is_missing(const char *f)
{
    static const char *const marks[] = {"", "NA", "N/A", "NaN", "null", "?"};
    for (size_t i = 0; i < sizeof marks / sizeof *marks; i++)
        if (strcasecmp(f, marks[i]) == 0)
            return true;
    return false;
}

/* Index of the column called name, or -1. */
static long s_column(char **names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return (long)i;
    return -1;
}

/* The table being read. */
struct s_table {
    const char *path;    /* for messages */
    char **head;         /* header names, [ncol] (into the file's buffer) */
    size_t ncol;         /* columns */
    long label;          /* label column */
    long *feat;          /* feature columns, [dim] */
    size_t dim;          /* features */
    float *x;            /* [cap, dim]; NaN marks a missing value */
    int32_t *y;          /* [cap] */
    size_t n, cap;       /* rows kept, room */
    size_t dropped;      /* rows left out */
    enum fl_missing how; /* the rule */
};

/* Columns from the header and the options. */
static int s_columns(struct s_table *t, const struct fl_table_opts *o)
{
    t->label = o->label_column ? s_column(t->head, t->ncol, o->label_column) : 0;
    if (t->label < 0)
        return fl_fail(FL_EINVAL, "%s: no column '%s' for the label (the header has %s%s)", t->path,
                       o->label_column, t->head[0], t->ncol > 1 ? ", ..." : "");
    if (!(t->feat = fl_malloc_array(t->ncol, sizeof *t->feat)))
        return fl_fail(FL_ENOMEM, "out of memory");
    if (!o->columns) {
        for (size_t i = 0; i < t->ncol; i++)
            if ((long)i != t->label)
                t->feat[t->dim++] = (long)i;
        return t->dim ? 0 : fl_fail(FL_EINVAL, "%s: no feature column", t->path);
    }
    char *list = strdup(o->columns), *save = NULL;
    if (!list)
        return fl_fail(FL_ENOMEM, "out of memory");
    int rc = 0;
    for (char *c = strtok_r(list, ",", &save); c && rc == 0; c = strtok_r(NULL, ",", &save)) {
        long i = s_column(t->head, t->ncol, c);
        if (i < 0)
            rc = fl_fail(FL_EINVAL, "%s: --columns names '%s', which the header lacks", t->path, c);
        else if (i == t->label)
            rc = fl_fail(FL_EINVAL, "%s: --columns names '%s', the label column", t->path, c);
        else if (t->dim == t->ncol)
            rc = fl_fail(FL_EINVAL, "%s: --columns names a column twice", t->path);
        else
            t->feat[t->dim++] = i;
    }
    free(list);
    if (rc == 0 && t->dim == 0)
        rc = fl_fail(FL_EINVAL, "%s: --columns is empty", t->path);
    return rc;
}

static int s_grow(struct s_table *t)
{
    if (t->n < t->cap)
        return 0;
    size_t cap = t->cap ? 2 * t->cap : 1024;
    if (cap > FL_DATA_MAX_BYTES / sizeof(float) / t->dim)
        return fl_fail(FL_ERANGE, "%s: more than %zu bytes of features", t->path,
                       FL_DATA_MAX_BYTES);
    float *x = realloc(t->x, cap * t->dim * sizeof *x);
    if (x)
        t->x = x;
    int32_t *y = realloc(t->y, cap * sizeof *y);
    if (y)
        t->y = y;
    if (!x || !y)
        return fl_fail(FL_ENOMEM, "%s: out of memory", t->path);
    t->cap = cap;
    return 0;
}

/* One data row (fields f[0..nf)), line number ln. */
static int s_row(struct s_table *t, char **f, size_t nf, size_t ln)
{
    if (nf != t->ncol)
        return fl_fail(FL_EFORMAT, "%s: line %zu: %zu fields, the header has %zu", t->path, ln, nf,
                       t->ncol);
    const char *lf = f[t->label];
    if (s_is_missing(lf)) {
        if (t->how == FL_MISSING_DROP)
            return t->dropped++, 0;
        return fl_fail(FL_EFORMAT, "%s: line %zu, column %ld ('%s'): missing label", t->path, ln,
                       t->label + 1, t->head[t->label]);
    }
    char *end;
    errno = 0;
    long lab = strtol(lf, &end, 10);
    if (*end || end == lf || errno || lab < 0 || lab > FL_DATA_MAX_LABEL)
        return fl_fail(FL_EFORMAT,
                       "%s: line %zu, column %ld ('%s'): label '%.40s' is not an "
                       "integer in 0..%d",
                       t->path, ln, t->label + 1, t->head[t->label], lf, FL_DATA_MAX_LABEL);
    int rc = s_grow(t);
    if (rc)
        return rc;
    float *x = t->x + t->n * t->dim;
    bool missing = false;
    for (size_t j = 0; j < t->dim; j++) {
        long c = t->feat[j];
        if (s_is_missing(f[c])) {
            if (t->how == FL_MISSING_ERROR)
                return fl_fail(FL_EFORMAT,
                               "%s: line %zu, column %ld ('%s'): missing value "
                               "(--missing mean or drop accepts it)",
                               t->path, ln, c + 1, t->head[c]);
            x[j] = NAN, missing = true;
            continue;
        }
        errno = 0;
        float v = strtof(f[c], &end);
        if (*end || end == f[c] || !isfinite(v))
            return fl_fail(FL_EFORMAT, "%s: line %zu, column %ld ('%s'): '%.40s' is not a number",
                           t->path, ln, c + 1, t->head[c], f[c]);
        x[j] = v;
    }
    if (missing && t->how == FL_MISSING_DROP)
        return t->dropped++, 0;
    t->y[t->n++] = (int32_t)lab;
    return 0;
}

/* FL_MISSING_MEAN: each NaN becomes its column's mean over the present values. */
static int s_fill_means(struct s_table *t)
{
    for (size_t j = 0; j < t->dim; j++) {
        double sum = 0;
        size_t cnt = 0;
        for (size_t i = 0; i < t->n; i++)
            if (!isnan(t->x[i * t->dim + j]))
                sum += t->x[i * t->dim + j], cnt++;
        if (cnt == 0 && t->n)
            return fl_fail(FL_EFORMAT, "%s: column '%s' has no value to take a mean of", t->path,
                           t->head[t->feat[j]]);
        for (size_t i = 0; i < t->n; i++)
            if (isnan(t->x[i * t->dim + j]))
                t->x[i * t->dim + j] = (float)(sum / (double)cnt);
    }
    return 0;
}

int fl_table_load(struct fl_dataset *ds, const char *path, const struct fl_table_opts *o,
                  size_t *dropped)
{
    struct s_table t = {.path = path, .how = o->missing};
    char *buf = NULL, **f = NULL;
    size_t len, nf, ln = 0;
    memset(ds, 0, sizeof *ds);
    int rc = s_read_all(path, &buf, &len);
    if (rc)
        return rc;
    if (!(f = fl_malloc_array(S_MAX_COLS, sizeof *f)) ||
        !(t.head = fl_malloc_array(S_MAX_COLS, sizeof *t.head))) {
        rc = fl_fail(FL_ENOMEM, "out of memory");
        goto out_free;
    }
    char *nl = NULL;
    for (char *line = buf; line && rc == 0; line = nl ? nl + 1 : NULL) {
        if ((nl = strchr(line, '\n')) != NULL)
            *nl = '\0';
        ln++;
        line[strcspn(line, "\r")] = '\0';
        if (line[strspn(line, " \t")] == '\0')
            continue;
        if (!t.ncol) {
            if (s_split(line, t.head, &t.ncol) != 0)
                rc = fl_fail(FL_ERANGE, "%s: more than %d columns", path, S_MAX_COLS);
            else
                rc = s_columns(&t, o);
            continue;
        }
        rc = s_split(line, f, &nf) ? fl_fail(FL_ERANGE, "%s: line %zu: too many fields", path, ln)
                                   : s_row(&t, f, nf, ln);
    }
    if (rc == 0 && t.n == 0)
        rc = fl_fail(FL_ENOTFOUND, "%s: no data rows%s", path, t.dropped ? " left" : "");
    if (rc == 0 && t.how == FL_MISSING_MEAN)
        rc = s_fill_means(&t);
    if (rc)
        goto out_free;
    if (!(ds->x = fl_falloc(t.n * t.dim))) {
        rc = fl_fail(FL_ENOMEM, "%s: out of memory", path);
        goto out_free;
    }
    memcpy(ds->x, t.x, t.n * t.dim * sizeof(float));
    ds->y = t.y, t.y = NULL;
    ds->n = t.n, ds->dim = t.dim;
    for (size_t i = 0; i < t.n; i++)
        ds->num_classes = ds->y[i] + 1 > ds->num_classes ? ds->y[i] + 1 : ds->num_classes;
    if (dropped)
        *dropped = t.dropped;
out_free:
    free(t.x);
    free(t.y);
    free(t.feat);
    free(t.head);
    free(f);
    free(buf);
    return rc;
}
