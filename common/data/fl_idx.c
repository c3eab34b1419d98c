/* fl_idx: the IDX reader. Headers are checked against the file's size before anything is
 * allocated; elements of every IDX type become float features or int32 labels. */
#include "fl_idx.h"
#include "fl_data.h"
#include "fl_error.h"
#include "fl_gzread.h"
#include "fl_mem.h"
#include "fl_tensor.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Bytes read per gzread call when loading IDX data. */
#define S_IDX_CHUNK ((size_t)1 << 20)

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
    int rc = fl_gz_open(&ix->f, path);
    if (rc)
        return rc;
    if ((rc = fl_gz_read(ix->f, path, hdr, 4, &got)))
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
        if ((rc = fl_gz_read(ix->f, path, b, 4, &got)))
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
    uint8_t *buf = fl_malloc_array(per_chunk, rec_bytes);
    if (!buf)
        return fl_fail(FL_ENOMEM, "%s: out of memory", ix->path);
    int rc = 0;
    size_t got;
    for (size_t r = 0; r < ix->count; r += per_chunk) {
        size_t k = ix->count - r < per_chunk ? ix->count - r : per_chunk;
        if ((rc = fl_gz_read(ix->f, ix->path, buf, k * rec_bytes, &got)))
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
    if ((rc = fl_gz_read(ix->f, ix->path, &extra, 1, &got)))
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
    d.y = fl_malloc_array(d.n, sizeof *d.y);
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

bool fl_idx_sniff(const uint8_t *head, size_t len)
{
    return len >= 3 && head[0] == 0 && head[1] == 0 && s_idx_esize(head[2]) != 0;
}
