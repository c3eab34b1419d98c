/* fl_data: IDX and CSV dataset loaders (both read through zlib, so gzip is transparent), the
 * CSV writer, and the seeded selection, split, sampling and federated partition helpers. */
#include "fl_data.h"
#include "fl_error.h"
#include "fl_fs.h"
#include "fl_rng.h"
#include "fl_tensor.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* Attempts at a Dirichlet draw that gives every shard min_size records. */
#define S_DIRICHLET_TRIES 1000
/* Bytes read per gzread call when loading IDX data. */
#define S_IDX_CHUNK ((size_t)1 << 20)
/* Longest CSV line accepted. */
#define S_CSV_MAX_LINE ((size_t)1 << 30)

/* ---- shared helpers ---- */

static int s_cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

/* malloc that never returns NULL for a zero-sized request that succeeded. */
static void *s_malloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    return malloc(n && size ? n * size : 1);
}

/* Open path for reading through zlib (raw files are read as-is). */
static int s_gz_open(gzFile *f, const char *path)
{
    errno = 0;
    *f = gzopen(path, "rb");
    if (!*f)
        return fl_fail(FL_EIO, "%s: cannot open: %s", path,
                       errno ? strerror(errno) : "out of memory");
    gzbuffer(*f, 1 << 18);
    return 0;
}

/* Read up to len bytes into buf; *got < len only at end of file. */
static int s_gz_read(gzFile f, const char *path, void *buf, size_t len, size_t *got)
{
    *got = 0;
    while (*got < len) {
        size_t want = len - *got;
        if (want > (size_t)INT_MAX)
            want = (size_t)INT_MAX;
        int r = gzread(f, (char *)buf + *got, (unsigned)want);
        if (r < 0) {
            int zerr;
            const char *msg = gzerror(f, &zerr);
            return fl_fail(zerr == Z_ERRNO ? FL_EIO : FL_EFORMAT, "%s: read error: %s", path,
                           zerr == Z_ERRNO ? strerror(errno) : msg);
        }
        if (r == 0)
            break;
        *got += (size_t)r;
    }
    return 0;
}

/* ---- IDX ---- */

/* An IDX file being read: its stream and header. */
struct s_idx {
    gzFile f;         /* open stream, NULL when closed */
    const char *path; /* for messages */
    uint8_t type;     /* element type code (0x08 ... 0x0E) */
    size_t esize;     /* bytes per element */
    int ndims;        /* number of dimensions */
    size_t count;     /* first dimension: records */
    size_t rec_elems; /* elements per record: product of the other dimensions */
    uint32_t dims[3]; /* the first three dimensions (for image geometry) */
};

static size_t s_idx_esize(uint8_t type)
{
    switch (type) {
    case 0x08:
    case 0x09:
        return 1;
    case 0x0B:
        return 2;
    case 0x0C:
    case 0x0D:
        return 4;
    case 0x0E:
        return 8;
    default:
        return 0;
    }
}

static uint32_t s_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t s_be64(const uint8_t *p)
{
    return (uint64_t)s_be32(p) << 32 | s_be32(p + 4);
}

static void s_idx_close(struct s_idx *ix)
{
    if (ix->f)
        gzclose(ix->f);
    ix->f = NULL;
}

/* Open an IDX file and read its header; labels files must be 1-d and integer. */
static int s_idx_open(struct s_idx *ix, const char *path, bool labels)
{
    uint8_t hdr[4];
    size_t got;
    memset(ix, 0, sizeof *ix);
    ix->path = path;
    int rc = s_gz_open(&ix->f, path);
    if (rc)
        return rc;
    if ((rc = s_gz_read(ix->f, path, hdr, 4, &got)))
        return rc;
    if (got < 4)
        return fl_fail(FL_ETRUNC, "%s: truncated IDX header", path);
    if (hdr[0] || hdr[1])
        return fl_fail(FL_EFORMAT, "%s: bad magic %02x%02x%02x%02x: not an IDX file", path, hdr[0],
                       hdr[1], hdr[2], hdr[3]);
    ix->type = hdr[2];
    ix->esize = s_idx_esize(ix->type);
    ix->ndims = hdr[3];
    if (!ix->esize)
        return fl_fail(FL_EFORMAT, "%s: unsupported IDX element type 0x%02x", path, ix->type);
    if (ix->ndims == 0)
        return fl_fail(FL_EFORMAT, "%s: IDX file has 0 dimensions", path);
    if (labels && ix->ndims != 1)
        return fl_fail(FL_EFORMAT, "%s: labels file has %d dimensions, expected 1", path,
                       ix->ndims);
    if (labels && (ix->type == 0x0D || ix->type == 0x0E))
        return fl_fail(FL_EFORMAT, "%s: labels must be integers, not type 0x%02x", path, ix->type);
    /* Elements per record, capped so that count x record as floats stays allocatable. */
    size_t elem = ix->esize > sizeof(float) ? ix->esize : sizeof(float);
    size_t limit = FL_DATA_MAX_BYTES / elem;
    ix->rec_elems = 1;
    for (int i = 0; i < ix->ndims; i++) {
        uint8_t b[4];
        if ((rc = s_gz_read(ix->f, path, b, 4, &got)))
            return rc;
        if (got < 4)
            return fl_fail(FL_ETRUNC, "%s: truncated IDX header (dimension %d)", path, i);
        uint32_t d = s_be32(b);
        if (i < 3)
            ix->dims[i] = d;
        if (i == 0) {
            ix->count = d;
            continue;
        }
        if (d == 0)
            return fl_fail(FL_EFORMAT, "%s: dimension %d is 0", path, i);
        if (ix->rec_elems > limit / d)
            return fl_fail(FL_ERANGE, "%s: IDX dimensions overflow (record larger than %zu bytes)",
                           path, FL_DATA_MAX_BYTES);
        ix->rec_elems *= d;
    }
    if (ix->count == 0)
        return fl_fail(FL_EFORMAT, "%s: no records", path);
    if (ix->count > limit / ix->rec_elems)
        return fl_fail(FL_ERANGE, "%s: %zu records of %zu values exceed %zu bytes", path, ix->count,
                       ix->rec_elems, FL_DATA_MAX_BYTES);
    return 0;
}

/* Decode n big-endian elements of the given IDX type into floats. */
static void s_idx_decode_f(uint8_t type, const uint8_t *src, size_t n, float *dst)
{
    switch (type) {
    case 0x08:
        for (size_t i = 0; i < n; i++)
            dst[i] = (float)src[i];
        break;
    case 0x09:
        for (size_t i = 0; i < n; i++)
            dst[i] = (float)(int8_t)src[i];
        break;
    case 0x0B:
        for (size_t i = 0; i < n; i++)
            dst[i] = (float)(int16_t)((uint16_t)src[2 * i] << 8 | src[2 * i + 1]);
        break;
    case 0x0C:
        for (size_t i = 0; i < n; i++)
            dst[i] = (float)(int32_t)s_be32(src + 4 * i);
        break;
    case 0x0D:
        for (size_t i = 0; i < n; i++) {
            uint32_t u = s_be32(src + 4 * i);
            memcpy(&dst[i], &u, sizeof u);
        }
        break;
    case 0x0E:
        for (size_t i = 0; i < n; i++) {
            uint64_t u = s_be64(src + 8 * i);
            double d;
            memcpy(&d, &u, sizeof d);
            dst[i] = (float)d;
        }
        break;
    }
}

/* One big-endian integer element (labels: types 0x08, 0x09, 0x0B, 0x0C). */
static int64_t s_idx_decode_i(uint8_t type, const uint8_t *p)
{
    switch (type) {
    case 0x08:
        return p[0];
    case 0x09:
        return (int8_t)p[0];
    case 0x0B:
        return (int16_t)((uint16_t)p[0] << 8 | p[1]);
    default:
        return (int32_t)s_be32(p);
    }
}

/* Read all records of an open IDX file. Images decode into x; labels (x == NULL) are
 * checked and stored in y, with the largest in *max_label. Trailing bytes are an error. */
static int s_idx_read(struct s_idx *ix, float *x, int32_t *y, int32_t *max_label)
{
    size_t rec_bytes = ix->rec_elems * ix->esize;
    size_t per_chunk = S_IDX_CHUNK / rec_bytes ? S_IDX_CHUNK / rec_bytes : 1;
    uint8_t *buf = s_malloc(per_chunk, rec_bytes);
    if (!buf)
        return fl_fail(FL_ENOMEM, "%s: out of memory", ix->path);
    int rc = 0;
    size_t got;
    for (size_t r = 0; r < ix->count; r += per_chunk) {
        size_t k = ix->count - r < per_chunk ? ix->count - r : per_chunk;
        if ((rc = s_gz_read(ix->f, ix->path, buf, k * rec_bytes, &got)))
            goto out_free_buf;
        if (got < k * rec_bytes) {
            rc = fl_fail(FL_ETRUNC, "%s: truncated at record %zu (header says %zu)", ix->path,
                         r + got / rec_bytes, ix->count);
            goto out_free_buf;
        }
        if (x) {
            s_idx_decode_f(ix->type, buf, k * ix->rec_elems, x + r * ix->rec_elems);
            continue;
        }
        for (size_t i = 0; i < k; i++) {
            int64_t v = s_idx_decode_i(ix->type, buf + i * ix->esize);
            if (v < 0 || v > FL_DATA_MAX_LABEL) {
                rc = fl_fail(FL_ERANGE, "%s: record %zu: label %lld %s", ix->path, r + i,
                             (long long)v, v < 0 ? "is negative" : "is out of range");
                goto out_free_buf;
            }
            y[r + i] = (int32_t)v;
            if (v > *max_label)
                *max_label = (int32_t)v;
        }
    }
    uint8_t extra;
    if ((rc = s_gz_read(ix->f, ix->path, &extra, 1, &got)))
        goto out_free_buf;
    if (got)
        rc = fl_fail(FL_EFORMAT, "%s: trailing bytes after record %zu", ix->path, ix->count);
out_free_buf:
    free(buf);
    return rc;
}

/* Could the file hold what its header claims? A raw file must be that long; deflate expands
 * at most about 1032:1, so a gzip file of S bytes holds at most ~1032 S. Checked before
 * allocating, so a 20-byte file cannot make us allocate gigabytes. */
static int s_idx_plausible(const struct s_idx *ix)
{
    struct stat st;
    if (stat(ix->path, &st) != 0)
        return fl_fail(FL_EIO, "%s: %s", ix->path, strerror(errno));
    double claimed = (double)ix->count * (double)ix->rec_elems * (double)ix->esize;
    double room = gzdirect(ix->f) ? (double)st.st_size : 1040.0 * (double)st.st_size + 4096.0;
    if (S_ISREG(st.st_mode) && claimed > room)
        return fl_fail(FL_ETRUNC,
                       "%s: the header claims %zu records (%.0f bytes), more than a "
                       "%lld-byte file can hold",
                       ix->path, ix->count, claimed, (long long)st.st_size);
    return 0;
}

int fl_dataset_load_idx(struct fl_dataset *ds, const char *images_path, const char *labels_path)
{
    struct s_idx im = {0}, lb = {0};
    struct fl_dataset d = {0};
    int32_t max_label = 0;
    memset(ds, 0, sizeof *ds);
    int rc = s_idx_open(&im, images_path, false);
    if (rc)
        goto out_close;
    if ((rc = s_idx_open(&lb, labels_path, true)))
        goto out_close;
    if (im.count != lb.count) {
        rc = fl_fail(FL_EMISMATCH, "images file %s has %zu records but labels file %s has %zu",
                     images_path, im.count, labels_path, lb.count);
        goto out_close;
    }
    if ((rc = s_idx_plausible(&im)) || (rc = s_idx_plausible(&lb)))
        goto out_close;
    d.n = im.count;
    d.dim = im.rec_elems;
    if (im.ndims == 3) {
        d.rows = im.dims[1];
        d.cols = im.dims[2];
    }
    d.x = fl_falloc(d.n * d.dim);
    d.y = s_malloc(d.n, sizeof *d.y);
    if (!d.x || !d.y) {
        rc = fl_fail(FL_ENOMEM, "%s: out of memory for %zu records", images_path, d.n);
        goto out_close;
    }
    if ((rc = s_idx_read(&im, d.x, NULL, NULL)) || (rc = s_idx_read(&lb, NULL, d.y, &max_label)))
        goto out_close;
    d.num_classes = max_label + 1;
    *ds = d;
    memset(&d, 0, sizeof d);
out_close:
    s_idx_close(&im);
    s_idx_close(&lb);
    fl_dataset_free(&d);
    return rc;
}

/* ---- CSV ---- */

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
        int rc = s_gz_read(lr->f, lr->path, lr->buf + lr->end, lr->cap - lr->end - 1, &got);
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
    int rc = s_gz_open(&lr.f, path);
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

int fl_dataset_load(struct fl_dataset *ds, const char *data_path, const char *labels_path)
{
    if (labels_path)
        return fl_dataset_load_idx(ds, data_path, labels_path);
    /* An IDX file starts with two zero bytes and a known type, which no CSV can. */
    gzFile f;
    uint8_t hdr[3];
    size_t got = 0;
    memset(ds, 0, sizeof *ds);
    int rc = s_gz_open(&f, data_path);
    if (rc)
        return rc;
    rc = s_gz_read(f, data_path, hdr, sizeof hdr, &got);
    gzclose(f);
    if (rc)
        return rc;
    if (got == 3 && hdr[0] == 0 && hdr[1] == 0 && s_idx_esize(hdr[2]))
        return fl_fail(FL_EINVAL, "%s is an IDX file: its labels file is needed too (--labels)",
                       data_path);
    return fl_dataset_load_csv(ds, data_path);
}

int fl_dataset_write_csv(const struct fl_dataset *ds, const char *path)
{
    struct fl_atomic_file af;
    /* Longest field: "%.9g" of a float is at most 16 characters, plus the comma. */
    char *line = s_malloc(ds->dim + 1, 24);
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
    int32_t *map = s_malloc((size_t)width, sizeof *map);
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
        if (i != j)
            memcpy(ds->x + j * ds->dim, ds->x + i * ds->dim, ds->dim * sizeof(float));
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
    d.x = fl_falloc(n * ds->dim);
    d.y = s_malloc(n, sizeof *d.y);
    if (!d.x || !d.y) {
        fl_dataset_free(&d);
        return fl_fail(FL_ENOMEM, "subset: out of memory for %zu records", n);
    }
    for (size_t i = 0; i < n; i++) {
        memcpy(d.x + i * ds->dim, ds->x + idx[i] * ds->dim, ds->dim * sizeof(float));
        d.y[i] = ds->y[idx[i]];
    }
    *out = d;
    return 0;
}

/* Record indices grouped by class: (*order)[start[c] .. start[c+1]) are class c's records in
 * ascending order; *start has num_classes + 1 entries. */
static int s_by_class(const struct fl_dataset *ds, size_t **order, size_t **start)
{
    size_t k = ds->num_classes > 0 ? (size_t)ds->num_classes : 0;
    *order = s_malloc(ds->n, sizeof **order);
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
    size_t *fill = s_malloc(k, sizeof *fill);
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
    *idx = s_malloc(*n, sizeof **idx);
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
    int rc = s_by_class(ds, &order, &start);
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
    int rc = s_by_class(ds, &order, &start);
    if (rc)
        return rc;
    size_t k = (size_t)ds->num_classes;
    quota = s_malloc(k, sizeof *quota);
    q = s_malloc(k, sizeof *q);
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

/* ---- federated partition ---- */

void fl_partition_free(size_t **shard_idx, int nclients)
{
    if (!shard_idx)
        return;
    for (int c = 0; c < nclients; c++) {
        free(shard_idx[c]);
        shard_idx[c] = NULL;
    }
}

/* IID: one shuffled permutation cut into near-equal consecutive pieces. */
static int s_partition_iid(const struct fl_dataset *ds, int nclients, struct fl_rng *rng,
                           size_t **shard_idx, size_t *shard_n)
{
    size_t *perm = s_malloc(ds->n, sizeof *perm);
    if (!perm)
        return fl_fail(FL_ENOMEM, "partition: out of memory");
    for (size_t i = 0; i < ds->n; i++)
        perm[i] = i;
    fl_rng_shuffle(rng, perm, ds->n);
    size_t base = ds->n / (size_t)nclients, extra = ds->n % (size_t)nclients, at = 0;
    for (int c = 0; c < nclients; c++) {
        shard_n[c] = base + ((size_t)c < extra);
        if (!(shard_idx[c] = s_malloc(shard_n[c], sizeof(size_t)))) {
            free(perm);
            return fl_fail(FL_ENOMEM, "partition: out of memory");
        }
        memcpy(shard_idx[c], perm + at, shard_n[c] * sizeof(size_t));
        at += shard_n[c];
    }
    free(perm);
    return 0;
}

/* Split cnt records over nclients by one Dirichlet(alpha) draw; adds to take[] and total[]. */
static void s_dirichlet_counts(struct fl_rng *rng, double alpha, int nclients, size_t cnt,
                               double *p, size_t *take, size_t *total)
{
    double sum = 0;
    for (int k = 0; k < nclients; k++)
        sum += p[k] = fl_rng_gamma(rng, alpha);
    if (!(sum > 0)) { /* every draw underflowed: all mass on one client */
        memset(p, 0, (size_t)nclients * sizeof *p);
        p[fl_rng_below(rng, (uint64_t)nclients)] = sum = 1;
    }
    double cum = 0;
    size_t prev = 0;
    for (int k = 0; k < nclients; k++) {
        cum += p[k];
        size_t cut = k == nclients - 1 ? cnt : (size_t)llround(cum / sum * (double)cnt);
        if (cut > cnt)
            cut = cnt;
        if (cut < prev)
            cut = prev;
        take[k] = cut - prev;
        total[k] += take[k];
        prev = cut;
    }
}

/* Dirichlet label skew: per-class proportions over clients, redrawn until every client has
 * min_size records. */
static int s_partition_dirichlet(const struct fl_dataset *ds, int nclients, double alpha,
                                 struct fl_rng *rng, size_t min_size, size_t **shard_idx,
                                 size_t *shard_n)
{
    size_t *order = NULL, *start = NULL, *take = NULL, *fill = NULL;
    double *p = NULL;
    size_t k = (size_t)ds->num_classes, nc = (size_t)nclients;
    int rc = s_by_class(ds, &order, &start);
    if (rc)
        return rc;
    take = k && nc > SIZE_MAX / k ? NULL : s_malloc(k * nc, sizeof *take);
    fill = s_malloc(nc, sizeof *fill);
    p = s_malloc(nc, sizeof *p);
    if (!take || !fill || !p) {
        rc = fl_fail(FL_ENOMEM, "partition: out of memory");
        goto out_free;
    }
    for (size_t c = 0; c < k; c++)
        fl_rng_shuffle(rng, order + start[c], start[c + 1] - start[c]);
    bool ok = false;
    for (int t = 0; t < S_DIRICHLET_TRIES && !ok; t++) {
        memset(shard_n, 0, nc * sizeof *shard_n);
        for (size_t c = 0; c < k; c++)
            s_dirichlet_counts(rng, alpha, nclients, start[c + 1] - start[c], p, take + c * nc,
                               shard_n);
        ok = true;
        for (size_t j = 0; j < nc; j++)
            ok = ok && shard_n[j] >= min_size;
    }
    if (!ok) {
        rc = fl_fail(FL_ERANGE,
                     "partition: min_size %zu is too large for %zu records over %d clients "
                     "(%zu each on average) with alpha %g: no draw in %d tries fits",
                     min_size, ds->n, nclients, ds->n / nc, alpha, S_DIRICHLET_TRIES);
        goto out_free;
    }
    for (size_t j = 0; j < nc; j++) {
        fill[j] = 0;
        if (!(shard_idx[j] = s_malloc(shard_n[j], sizeof(size_t)))) {
            rc = fl_fail(FL_ENOMEM, "partition: out of memory");
            goto out_free;
        }
    }
    for (size_t c = 0; c < k; c++) {
        size_t at = start[c];
        for (size_t j = 0; j < nc; j++)
            for (size_t i = 0; i < take[c * nc + j]; i++)
                shard_idx[j][fill[j]++] = order[at++];
    }
out_free:
    free(order);
    free(start);
    free(take);
    free(fill);
    free(p);
    return rc;
}

int fl_partition(const struct fl_dataset *ds, int nclients, double alpha, uint64_t seed,
                 size_t min_size, size_t **shard_idx, size_t *shard_n)
{
    struct fl_rng rng;
    if (nclients < 1)
        return fl_fail(FL_EINVAL, "partition: %d clients (need at least 1)", nclients);
    for (int c = 0; c < nclients; c++) {
        shard_idx[c] = NULL;
        shard_n[c] = 0;
    }
    if (min_size > ds->n / (size_t)nclients)
        return fl_fail(FL_ERANGE,
                       "partition: min_size %zu is too large for %zu records over %d clients "
                       "(%zu each)",
                       min_size, ds->n, nclients, ds->n / (size_t)nclients);
    fl_rng_seed(&rng, seed);
    int rc = alpha > 0
                 ? s_partition_dirichlet(ds, nclients, alpha, &rng, min_size, shard_idx, shard_n)
                 : s_partition_iid(ds, nclients, &rng, shard_idx, shard_n);
    if (rc) {
        fl_partition_free(shard_idx, nclients);
        memset(shard_n, 0, (size_t)nclients * sizeof *shard_n);
        return rc;
    }
    for (int c = 0; c < nclients; c++)
        qsort(shard_idx[c], shard_n[c], sizeof(size_t), s_cmp_size);
    return 0;
}
