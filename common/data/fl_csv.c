/* fl_csv: the CSV reader (a buffered line reader over zlib, numbers parsed strictly, every
 * error naming the line) and the CSV writer. */
#include "fl_csv.h"
#include "fl_data.h"
#include "fl_error.h"
#include "fl_fs.h"
#include "fl_gzread.h"
#include "fl_mem.h"
#include "fl_tensor.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest CSV line accepted. */
#define S_CSV_MAX_LINE ((size_t)1 << 30)

/* Buffered line reader over a (possibly gzip) stream. */
struct s_lines {
    gzFile f;          /* source */
    const char *path;  /* for messages */
    char *buf;         /* buffered bytes [start, end) not yet returned */
    size_t cap;        /* size of buf */
    size_t start, end; /* unread window */
    bool eof;          /* source exhausted */
};

/* Next line, NUL-terminated in place without its '\n'. Returns 1, 0 at end, or an error. */
static int s_lines_next(struct s_lines *lr, char **line)
{
    for (;;) {
        char *nl = memchr(lr->buf + lr->start, '\n', lr->end - lr->start);
        if (nl) {
            *nl = '\0';
            *line = lr->buf + lr->start;
            lr->start = (size_t)(nl - lr->buf) + 1;
            return 1;
        }
        if (lr->eof) {
            if (lr->start == lr->end)
                return 0;
            lr->buf[lr->end] = '\0'; /* room kept by the read below */
            *line = lr->buf + lr->start;
            lr->start = lr->end;
            return 1;
        }
        if (lr->start > 0) {
            memmove(lr->buf, lr->buf + lr->start, lr->end - lr->start);
            lr->end -= lr->start;
            lr->start = 0;
        }
        if (lr->end + 1 >= lr->cap) {
            if (lr->cap >= S_CSV_MAX_LINE)
                return fl_fail(FL_ERANGE, "%s: line longer than %zu bytes", lr->path,
                               S_CSV_MAX_LINE);
            char *nb = realloc(lr->buf, lr->cap * 2);
            if (!nb)
                return fl_fail(FL_ENOMEM, "%s: out of memory", lr->path);
            lr->buf = nb;
            lr->cap *= 2;
        }
        size_t got;
        int rc = fl_gz_read(lr->f, lr->path, lr->buf + lr->end, lr->cap - lr->end - 1, &got);
        if (rc)
            return rc;
        lr->eof = got == 0;
        lr->end += got;
    }
}

/* CSV records parsed so far. */
struct s_csv {
    const char *path;  /* for messages */
    size_t n;          /* records parsed */
    size_t cap;        /* records x and y have room for */
    size_t dim;        /* features per record, fixed by the first data row */
    float *x;          /* [cap, dim] features (plain malloc; copied aligned at the end) */
    int32_t *y;        /* [cap] labels */
    int32_t max_label; /* largest label seen */
    bool unlabeled;    /* every column is a feature (labels left 0) */
};

static char *s_skip_space(char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Copy the field starting at p (up to ',') into out, shortened if long, for messages. */
static const char *s_field_text(const char *p, char *out, size_t len)
{
    size_t i = 0;
    while (p[i] && p[i] != ',' && i + 1 < len) {
        out[i] = p[i];
        i++;
    }
    out[i] = '\0';
    return out;
}

/* True when the text starts like a number (so a header is never mistaken for data). */
static bool s_looks_numeric(const char *p)
{
    if (*p == '+' || *p == '-')
        p++;
    if (*p == '.')
        p++;
    return *p >= '0' && *p <= '9';
}

/* Outcome of parsing one CSV feature. */
enum s_num { S_NUM_OK, S_NUM_NONE, S_NUM_INF };

/* Parse one number at p; *end is left after it. Plain digit runs take a fast path. */
static enum s_num s_parse_float(char *p, float *v, char **end)
{
    p = s_skip_space(p);
    uint32_t acc = 0;
    int nd = 0;
    while (nd < 9 && p[nd] >= '0' && p[nd] <= '9')
        acc = acc * 10 + (uint32_t)(p[nd++] - '0');
    char c = p[nd];
    if (nd > 0 && (c == ',' || c == '\0' || c == ' ' || c == '\t')) {
        *v = (float)acc;
        *end = p + nd;
        return S_NUM_OK;
    }
    *v = strtof(p, end);
    if (*end == p)
        return S_NUM_NONE;
    return isfinite(*v) ? S_NUM_OK : S_NUM_INF;
}

/* Make room for one more record; the first call allocates. */
static int s_csv_grow(struct s_csv *c)
{
    if (c->n < c->cap)
        return 0;
    size_t cap = c->cap ? c->cap * 2 : 1024;
    if (cap > FL_DATA_MAX_BYTES / sizeof(float) / c->dim)
        cap = FL_DATA_MAX_BYTES / sizeof(float) / c->dim;
    if (cap <= c->n)
        return fl_fail(FL_ERANGE, "%s: more than %zu bytes of features", c->path,
                       FL_DATA_MAX_BYTES);
    float *nx = realloc(c->x, cap * c->dim * sizeof(float));
    if (!nx)
        return fl_fail(FL_ENOMEM, "%s: out of memory at record %zu", c->path, c->n);
    c->x = nx;
    int32_t *ny = realloc(c->y, cap * sizeof(int32_t));
    if (!ny)
        return fl_fail(FL_ENOMEM, "%s: out of memory at record %zu", c->path, c->n);
    c->y = ny;
    c->cap = cap;
    return 0;
}

/* Parse the label at the start of line into *label; *rest is left after its ','.
 * Returns 1 when the line is a header (only allowed when may_be_header). */
static int s_csv_label(struct s_csv *c, char *line, size_t line_no, bool may_be_header,
                       int32_t *label, char **rest)
{
    char tmp[48];
    char *p = s_skip_space(line), *end;
    errno = 0;
    long long v = strtoll(p, &end, 10);
    char *q = s_skip_space(end);
    if (end == p || (*q != ',' && *q != '\0')) {
        if (may_be_header && !s_looks_numeric(p))
            return 1;
        return fl_fail(FL_EFORMAT, "%s: line %zu, column 1: label '%s' is not an integer", c->path,
                       line_no, s_field_text(p, tmp, sizeof tmp));
    }
    if (v < 0)
        return fl_fail(FL_ERANGE, "%s: line %zu: label %lld is negative", c->path, line_no, v);
    if (errno == ERANGE || v > FL_DATA_MAX_LABEL)
        return fl_fail(FL_ERANGE, "%s: line %zu: label %s is out of range (max %d)", c->path,
                       line_no, s_field_text(p, tmp, sizeof tmp), FL_DATA_MAX_LABEL);
    if (*q == '\0')
        return fl_fail(FL_EFORMAT, "%s: line %zu: no features after the label", c->path, line_no);
    *label = (int32_t)v;
    *rest = q + 1;
    return 0;
}

/* Parse the features of one row into record c->n. */
static int s_csv_features(struct s_csv *c, char *p, size_t line_no)
{
    char tmp[48];
    float *row = c->x + c->n * c->dim;
    size_t j = 0;
    for (;;) {
        if (j == c->dim) {
            size_t more = 1;
            for (char *s = p; (s = strchr(s, ',')); s++)
                more++;
            return fl_fail(FL_EMISMATCH, "%s: line %zu: %zu features, expected %zu", c->path,
                           line_no, j + more, c->dim);
        }
        char *end;
        enum s_num st = s_parse_float(p, &row[j], &end);
        char *q = s_skip_space(end);
        if (st != S_NUM_OK || (*q != ',' && *q != '\0'))
            return fl_fail(FL_EFORMAT, "%s: line %zu, column %zu: '%s' is not a %snumber", c->path,
                           line_no, j + 2, s_field_text(s_skip_space(p), tmp, sizeof tmp),
                           st == S_NUM_INF && (*q == ',' || *q == '\0') ? "finite " : "");
        j++;
        if (*q == '\0')
            break;
        p = q + 1;
    }
    if (j != c->dim)
        return fl_fail(FL_EMISMATCH, "%s: line %zu: %zu features, expected %zu", c->path, line_no,
                       j, c->dim);
    return 0;
}

/* Parse one non-blank line. Returns 1 when it was skipped as a header. */
static int s_csv_row(struct s_csv *c, char *line, size_t line_no, bool may_be_header)
{
    int32_t label = 0;
    char *rest = line;
    int rc = 0;
    if (c->unlabeled) {
        if (may_be_header && !s_looks_numeric(s_skip_space(line)))
            return 1;
    } else if ((rc = s_csv_label(c, line, line_no, may_be_header, &label, &rest)) != 0) {
        return rc;
    }
    if (c->dim == 0) {
        c->dim = 1;
        for (char *s = rest; (s = strchr(s, ',')); s++)
            c->dim++;
    }
    if ((rc = s_csv_grow(c)) || (rc = s_csv_features(c, rest, line_no)))
        return rc;
    c->y[c->n++] = label;
    if (label > c->max_label)
        c->max_label = label;
    return 0;
}

static bool s_blank(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\r')
        s++;
    return *s == '\0';
}

/* Read every line of the open reader into c. */
static int s_csv_read(struct s_csv *c, struct s_lines *lr)
{
    char *line = NULL;
    size_t line_no = 0;
    bool seen = false;
    int rc;
    while ((rc = s_lines_next(lr, &line)) == 1) {
        line_no++;
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r')
            line[len - 1] = '\0';
        if (s_blank(line))
            continue;
        rc = s_csv_row(c, line, line_no, !seen);
        seen = true;
        if (rc < 0)
            return rc;
    }
    return rc;
}

static int s_load_csv(struct fl_dataset *ds, const char *path, bool unlabeled)
{
    struct s_csv c = {.path = path, .unlabeled = unlabeled};
    struct s_lines lr = {.path = path, .cap = (size_t)1 << 20};
    memset(ds, 0, sizeof *ds);
    int rc = fl_gz_open(&lr.f, path);
    if (rc)
        return rc;
    if (!(lr.buf = malloc(lr.cap))) {
        rc = fl_fail(FL_ENOMEM, "%s: out of memory", path);
        goto out_free;
    }
    if ((rc = s_csv_read(&c, &lr)))
        goto out_free;
    if (c.n == 0) {
        rc = fl_fail(FL_EFORMAT, "%s: no records", path);
        goto out_free;
    }
    /* Copy into an aligned buffer of the exact size. */
    ds->x = fl_falloc(c.n * c.dim);
    if (!ds->x) {
        rc = fl_fail(FL_ENOMEM, "%s: out of memory for %zu records", path, c.n);
        goto out_free;
    }
    memcpy(ds->x, c.x, c.n * c.dim * sizeof(float));
    ds->y = c.y;
    c.y = NULL;
    ds->n = c.n;
    ds->dim = c.dim;
    ds->num_classes = c.max_label + 1;
out_free:
    free(c.x);
    free(c.y);
    free(lr.buf);
    gzclose(lr.f);
    return rc;
}

int fl_dataset_load_csv(struct fl_dataset *ds, const char *path)
{
    return s_load_csv(ds, path, false);
}

int fl_dataset_load_csv_features(struct fl_dataset *ds, const char *path)
{
    return s_load_csv(ds, path, true);
}

int fl_dataset_write_csv(const struct fl_dataset *ds, const char *path)
{
    struct fl_atomic_file af;
    /* Longest field: "%.9g" of a float is at most 16 characters, plus the comma. */
    char *line = fl_malloc_array(ds->dim + 1, 24);
    if (!line)
        return fl_fail(FL_ENOMEM, "%s: out of memory", path);
    int rc = fl_atomic_open(&af, path, 0644);
    if (rc)
        goto out_free_line;
    for (size_t i = 0; i < ds->n; i++) {
        const float *row = ds->x + i * ds->dim;
        size_t pos = (size_t)sprintf(line, "%d", (int)ds->y[i]);
        for (size_t j = 0; j < ds->dim; j++) {
            float v = row[j];
            line[pos++] = ',';
            if (v == truncf(v) && fabsf(v) < 1e15f && !(v == 0 && signbit(v)))
                pos += (size_t)sprintf(line + pos, "%lld", (long long)v);
            else
                pos += (size_t)sprintf(line + pos, "%.9g", (double)v);
        }
        line[pos++] = '\n';
        if (fwrite(line, 1, pos, af.f) != pos)
            break;
    }
    if (ferror(af.f)) {
        rc = fl_fail(FL_EIO, "%s: write failed: %s", path, strerror(errno));
        fl_atomic_abort(&af);
        goto out_free_line;
    }
    rc = fl_atomic_commit(&af);
out_free_line:
    free(line);
    return rc;
}
