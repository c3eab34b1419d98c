/* fl_modelfile: writing, mapping and validating base model and adapter files.
 * Reading checks the preamble, the header (fl_codec), the tensor layout and the content hash
 * before anything is handed out; the layout is described in fl_modelfile.h. */
#include "fl_modelfile.h"
#include "fl_filecodec.h"
#include "fl_error.h"
#include "fl_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "fedtl model files hold little-endian float32 blobs; big-endian hosts are not supported"
#endif
_Static_assert(FL_HASH_BYTES == crypto_generichash_BYTES, "content hash is BLAKE2b-256");
_Static_assert(sizeof(float) == 4, "tensor blobs are float32");

#define S_MAGIC_LEN         8
#define S_HASH_OFFSET       24 /* the hash covers [0, S_HASH_OFFSET) and [PREAMBLE, end) */
#define S_MAX_LAYOUT_PASSES 8
/* Adapters are read whole into memory; refuse anything larger than this. */
#define S_ADAPTER_MAX_BYTES ((size_t)(SIZE_MAX < 0x100000000ull ? SIZE_MAX : 0x100000000ull))

static const char s_base_magic[S_MAGIC_LEN] = {'F', 'E', 'D', 'T', 'L', 'B', 'M', '\n'};
static const char s_adapter_magic[S_MAGIC_LEN] = {'F', 'E', 'D', 'T', 'L', 'A', 'D', '\n'};
static const uint8_t s_zeros[FL_MODELFILE_ALIGN];

enum s_kind { S_BASE, S_ADAPTER };

/* Metadata on its way into or out of a file; which members are used depends on the kind. */
struct s_meta {
    enum s_kind kind;                /* base model or adapter */
    struct fl_arch *arch;            /* base only */
    struct fl_base_meta *base;       /* base only */
    struct fl_adapter_meta *adapter; /* adapter only */
};

/* A file about to be written: its preamble, header and tensor table. */
struct s_plan {
    uint8_t preamble[FL_MODELFILE_PREAMBLE]; /* magic, version, header length, hash */
    uint8_t *header;                         /* packed protobuf header */
    size_t hlen;                             /* its length */
    struct fl_tensor_entry *entries;         /* tensor table with offsets filled in */
    const struct fl_tensor *tensors;         /* the data, borrowed */
    size_t n;                                /* number of tensors */
    uint64_t total;                          /* file size */
};

/* Receives the bytes of a file after the preamble, in order. */
typedef int (*s_sink_fn)(void *ctx, const void *p, size_t len);

static void s_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void s_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t s_get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t s_get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static int s_sodium_ready(const char *origin)
{
    if (sodium_init() < 0)
        return fl_fail(FL_ECRYPTO, "%s: libsodium could not be initialised", origin);
    return 0;
}

/* Round up to the blob alignment; false on overflow. */
static bool s_align(uint64_t x, uint64_t *out)
{
    if (x > UINT64_MAX - (FL_MODELFILE_ALIGN - 1))
        return false;
    *out = (x + FL_MODELFILE_ALIGN - 1) & ~(uint64_t)(FL_MODELFILE_ALIGN - 1);
    return true;
}

/* The content hash of complete file bytes (len >= FL_MODELFILE_PREAMBLE). */
static void s_content_hash(const uint8_t *buf, size_t len, uint8_t out[FL_HASH_BYTES])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, FL_HASH_BYTES);
    crypto_generichash_update(&st, buf, S_HASH_OFFSET);
    crypto_generichash_update(&st, buf + FL_MODELFILE_PREAMBLE, len - FL_MODELFILE_PREAMBLE);
    crypto_generichash_final(&st, out, FL_HASH_BYTES);
}

/* ---- writing ---------------------------------------------------------------------------- */

/* Table rows for the tensors to write (offsets still 0). */
static int s_entries_from_tensors(const struct fl_tensor *t, size_t n, const char *origin,
                                  struct fl_tensor_entry **out)
{
    *out = NULL;
    struct fl_tensor_entry *e = calloc(n ? n : 1, sizeof *e);
    if (!e)
        return fl_fail(FL_ENOMEM, "%s: out of memory", origin);
    for (size_t i = 0; i < n; i++) {
        if (!t[i].data || t[i].ndim < 1 || t[i].ndim > FL_TENSOR_MAX_DIMS) {
            free(e);
            return fl_fail(FL_EINVAL, "%s: tensor %zu ('%.*s') has no data or a bad shape", origin,
                           i, FL_NAME_MAX - 1, t[i].name);
        }
        uint64_t bytes = sizeof(float);
        for (int d = 0; d < t[i].ndim; d++) {
            if (t[i].shape[d] <= 0 || (uint64_t)t[i].shape[d] > SIZE_MAX / bytes) {
                free(e);
                return fl_fail(FL_EINVAL, "%s: tensor '%.*s' has a bad shape", origin,
                               FL_NAME_MAX - 1, t[i].name);
            }
            bytes *= (uint64_t)t[i].shape[d];
        }
        memcpy(e[i].name, t[i].name, sizeof e[i].name);
        e[i].ndim = t[i].ndim;
        memcpy(e[i].shape, t[i].shape, sizeof e[i].shape);
        e[i].nbytes = bytes;
    }
    *out = e;
    return 0;
}

/* Place the blobs from `start` on, each aligned; *end is where the last one ends. */
static bool s_layout(struct fl_tensor_entry *e, size_t n, uint64_t start, uint64_t *end)
{
    uint64_t off = start;
    for (size_t i = 0; i < n; i++) {
        if (!s_align(off, &off) || e[i].nbytes > UINT64_MAX - off)
            return false;
        e[i].offset = off;
        off += e[i].nbytes;
    }
    *end = off;
    return true;
}

static int s_pack_header(const struct s_meta *m, const struct s_plan *p, const char *origin,
                         uint8_t **buf, size_t *len)
{
    if (m->kind == S_BASE)
        return fl_codec_pack_base_header(m->arch, m->base, p->entries, p->n, origin, buf, len);
    return fl_codec_pack_adapter_header(m->adapter, p->entries, p->n, origin, buf, len);
}

static void s_plan_free(struct s_plan *p)
{
    free(p->header);
    free(p->entries);
    memset(p, 0, sizeof *p);
}

/* Lay out a file: the header holds absolute blob offsets, and the first blob goes after the
 * header, so pack until the header fits in front of the offsets it records (varints only grow
 * with the offsets, so this settles in a pass or two). */
static int s_plan_build(struct s_plan *p, const struct s_meta *m, const struct fl_tensor *tensors,
                        size_t n, const char *origin)
{
    memset(p, 0, sizeof *p);
    p->tensors = tensors;
    p->n = n;
    int rc = s_entries_from_tensors(tensors, n, origin, &p->entries);
    if (rc != 0)
        return rc;
    uint64_t start = FL_MODELFILE_ALIGN, end = 0;
    for (int pass = 0;; pass++) {
        if (pass == S_MAX_LAYOUT_PASSES || !s_layout(p->entries, n, start, &end)) {
            rc = fl_fail(FL_ERANGE, "%s: tensors too large to lay out", origin);
            goto out_free_plan;
        }
        rc = s_pack_header(m, p, origin, &p->header, &p->hlen);
        if (rc != 0)
            goto out_free_plan;
        if (p->hlen > UINT64_MAX / 2) {
            rc = fl_fail(FL_ERANGE, "%s: header too large", origin);
            goto out_free_plan;
        }
        uint64_t header_end = FL_MODELFILE_PREAMBLE + (uint64_t)p->hlen;
        if (header_end <= start) {
            p->total = n ? end : header_end;
            break;
        }
        free(p->header);
        p->header = NULL;
        s_align(header_end, &start);
    }
    memcpy(p->preamble, m->kind == S_BASE ? s_base_magic : s_adapter_magic, S_MAGIC_LEN);
    s_put_u32(p->preamble + 8, FL_MODELFILE_VERSION);
    s_put_u32(p->preamble + 12, 0);
    s_put_u64(p->preamble + 16, p->hlen);
    return 0;

out_free_plan:
    s_plan_free(p);
    return rc;
}

/* Feed the bytes after the preamble (header, padding, blobs) to sink. */
static int s_plan_emit(const struct s_plan *p, s_sink_fn sink, void *ctx)
{
    int rc = sink(ctx, p->header, p->hlen);
    uint64_t pos = FL_MODELFILE_PREAMBLE + (uint64_t)p->hlen;
    for (size_t i = 0; i < p->n && rc == 0; i++) {
        for (uint64_t pad = p->entries[i].offset - pos; pad > 0 && rc == 0;) {
            size_t k = pad < sizeof s_zeros ? (size_t)pad : sizeof s_zeros;
            rc = sink(ctx, s_zeros, k);
            pad -= k;
        }
        if (rc == 0)
            rc = sink(ctx, p->tensors[i].data, (size_t)p->entries[i].nbytes);
        pos = p->entries[i].offset + p->entries[i].nbytes;
    }
    return rc;
}

static int s_hash_sink(void *ctx, const void *p, size_t len)
{
    crypto_generichash_update(ctx, p, len);
    return 0;
}

/* Compute the content hash from the in-memory data and store it in the preamble. */
static void s_plan_hash(struct s_plan *p)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, FL_HASH_BYTES);
    crypto_generichash_update(&st, p->preamble, S_HASH_OFFSET);
    s_plan_emit(p, s_hash_sink, &st);
    crypto_generichash_final(&st, p->preamble + S_HASH_OFFSET, FL_HASH_BYTES);
}

/* Where s_file_sink writes. */
struct s_file_out {
    FILE *f;          /* the temporary file */
    const char *path; /* the final path, for messages */
};

static int s_file_sink(void *ctx, const void *p, size_t len)
{
    struct s_file_out *out = ctx;
    if (len && fwrite(p, 1, len, out->f) != len)
        return fl_fail(FL_EIO, "%s: write failed: %s", out->path, strerror(errno));
    return 0;
}

/* Where s_mem_sink copies. */
struct s_mem_out {
    uint8_t *buf; /* the whole file */
    size_t pos;   /* next byte to fill */
};

static int s_mem_sink(void *ctx, const void *p, size_t len)
{
    struct s_mem_out *out = ctx;
    if (len)
        memcpy(out->buf + out->pos, p, len);
    out->pos += len;
    return 0;
}

int fl_base_write(const char *path, const struct fl_arch *arch, const struct fl_base_meta *meta,
                  const struct fl_tensor *tensors, size_t n, uint8_t hash_out[FL_HASH_BYTES])
{
    int rc = s_sodium_ready(path);
    if (rc != 0)
        return rc;
    struct s_meta m = {
        .kind = S_BASE, .arch = (struct fl_arch *)arch, .base = (struct fl_base_meta *)meta};
    struct s_plan plan;
    rc = s_plan_build(&plan, &m, tensors, n, path);
    if (rc != 0)
        return rc;
    s_plan_hash(&plan);

    struct fl_atomic_file af;
    rc = fl_atomic_open(&af, path, 0644);
    if (rc != 0)
        goto out_free_plan;
    struct s_file_out out = {.f = af.f, .path = path};
    rc = s_file_sink(&out, plan.preamble, sizeof plan.preamble);
    if (rc == 0)
        rc = s_plan_emit(&plan, s_file_sink, &out);
    if (rc != 0) {
        fl_atomic_abort(&af);
        goto out_free_plan;
    }
    rc = fl_atomic_commit(&af);
    if (rc == 0 && hash_out)
        memcpy(hash_out, plan.preamble + S_HASH_OFFSET, FL_HASH_BYTES);

out_free_plan:
    s_plan_free(&plan);
    return rc;
}

static int s_adapter_pack(const struct fl_adapter_meta *meta, const struct fl_tensor *tensors,
                          size_t n, const char *origin, uint8_t **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    int rc = s_sodium_ready(origin);
    if (rc != 0)
        return rc;
    struct s_meta m = {.kind = S_ADAPTER, .adapter = (struct fl_adapter_meta *)meta};
    struct s_plan plan;
    rc = s_plan_build(&plan, &m, tensors, n, origin);
    if (rc != 0)
        return rc;
    if (plan.total > S_ADAPTER_MAX_BYTES) {
        rc = fl_fail(FL_ERANGE, "%s: adapter of %llu bytes is larger than the %zu allowed", origin,
                     (unsigned long long)plan.total, S_ADAPTER_MAX_BYTES);
        goto out_free_plan;
    }
    struct s_mem_out out = {.buf = malloc((size_t)plan.total), .pos = FL_MODELFILE_PREAMBLE};
    if (!out.buf) {
        rc = fl_fail(FL_ENOMEM, "%s: out of memory", origin);
        goto out_free_plan;
    }
    memcpy(out.buf, plan.preamble, sizeof plan.preamble);
    s_plan_emit(&plan, s_mem_sink, &out);
    s_content_hash(out.buf, out.pos, out.buf + S_HASH_OFFSET);
    *buf = out.buf;
    *len = out.pos;

out_free_plan:
    s_plan_free(&plan);
    return rc;
}

int fl_adapter_pack(const struct fl_adapter_meta *meta, const struct fl_tensor *tensors, size_t n,
                    uint8_t **buf, size_t *len)
{
    return s_adapter_pack(meta, tensors, n, "adapter", buf, len);
}

int fl_adapter_write(const char *path, const struct fl_adapter_meta *meta,
                     const struct fl_tensor *tensors, size_t n, uint8_t hash_out[FL_HASH_BYTES])
{
    uint8_t *buf;
    size_t len;
    int rc = s_adapter_pack(meta, tensors, n, path, &buf, &len);
    if (rc != 0)
        return rc;
    rc = fl_fs_write_file(path, buf, len, 0644);
    if (rc == 0 && hash_out)
        memcpy(hash_out, buf + S_HASH_OFFSET, FL_HASH_BYTES);
    free(buf);
    return rc;
}

/* ---- reading ---------------------------------------------------------------------------- */

/* Magic, version and header length; *hlen is the header length, known to fit in len. */
static int s_check_preamble(const uint8_t *buf, size_t len, const char *origin, enum s_kind kind,
                            size_t *hlen)
{
    const char *want = kind == S_BASE ? s_base_magic : s_adapter_magic;
    const char *other = kind == S_BASE ? s_adapter_magic : s_base_magic;
    const char *what = kind == S_BASE ? "base model" : "adapter";
    if (len < S_MAGIC_LEN)
        return fl_fail(FL_ETRUNC, "%s: truncated (file is %zu bytes, too short for a fedtl %s)",
                       origin, len, what);
    if (memcmp(buf, want, S_MAGIC_LEN) != 0) {
        if (memcmp(buf, other, S_MAGIC_LEN) == 0)
            return fl_fail(FL_EFORMAT, "%s: is %s file, not %s", origin,
                           kind == S_BASE ? "an adapter" : "a base model",
                           kind == S_BASE ? "a base model" : "an adapter");
        return fl_fail(FL_EFORMAT, "%s: not a fedtl %s (bad magic)", origin, what);
    }
    if (len < FL_MODELFILE_PREAMBLE)
        return fl_fail(FL_ETRUNC, "%s: truncated (file is %zu bytes, the preamble alone is %d)",
                       origin, len, FL_MODELFILE_PREAMBLE);
    uint32_t version = s_get_u32(buf + 8);
    if (version != FL_MODELFILE_VERSION)
        return fl_fail(FL_EVERSION, "%s: format version %u, this fedtl reads version %d", origin,
                       (unsigned)version, FL_MODELFILE_VERSION);
    uint32_t reserved = s_get_u32(buf + 12);
    if (reserved != 0)
        return fl_fail(FL_EFORMAT, "%s: reserved preamble field is %u, expected 0", origin,
                       (unsigned)reserved);
    uint64_t h = s_get_u64(buf + 16);
    if (h > len - FL_MODELFILE_PREAMBLE) {
        unsigned long long says =
            h > UINT64_MAX - FL_MODELFILE_PREAMBLE ? UINT64_MAX : h + FL_MODELFILE_PREAMBLE;
        return fl_fail(FL_ETRUNC, "%s: truncated (file is %zu bytes, header says %llu)", origin,
                       len, says);
    }
    *hlen = (size_t)h;
    return 0;
}

/* Every blob inside the file, after the header, aligned, in table order without overlap,
 * and the file ending with the last one. A table reaching past the end of the file means
 * truncation when the hash fails too, and a bad table when it does not. */
static int s_check_table(const struct fl_tensor_entry *e, size_t n, uint64_t data_start, size_t len,
                         bool hash_ok, const char *origin)
{
    uint64_t end = data_start;
    for (size_t i = 0; i < n; i++) {
        if (e[i].nbytes > UINT64_MAX - e[i].offset)
            return fl_fail(FL_EFORMAT, "%s: tensor '%s' lies beyond 2^64 bytes", origin, e[i].name);
        if (e[i].offset + e[i].nbytes > end)
            end = e[i].offset + e[i].nbytes;
    }
    if (end > len && !hash_ok)
        return fl_fail(FL_ETRUNC,
                       "%s: truncated or corrupted (file is %zu bytes, header says %llu; "
                       "content hash mismatch)",
                       origin, len, (unsigned long long)end);
    for (size_t i = 0; i < n; i++)
        if (e[i].offset + e[i].nbytes > len)
            return fl_fail(FL_EFORMAT,
                           "%s: tensor '%s' (bytes %llu to %llu) lies outside the "
                           "file of %zu bytes",
                           origin, e[i].name, (unsigned long long)e[i].offset,
                           (unsigned long long)(e[i].offset + e[i].nbytes), len);
    uint64_t pos = data_start;
    for (size_t i = 0; i < n; i++) {
        if (e[i].offset % FL_MODELFILE_ALIGN != 0)
            return fl_fail(FL_EFORMAT, "%s: tensor '%s' at offset %llu is not %d-byte aligned",
                           origin, e[i].name, (unsigned long long)e[i].offset, FL_MODELFILE_ALIGN);
        if (e[i].offset < pos)
            return fl_fail(FL_EFORMAT,
                           "%s: tensor '%s' at offset %llu overlaps the header or the tensor "
                           "before it",
                           origin, e[i].name, (unsigned long long)e[i].offset);
        pos = e[i].offset + e[i].nbytes;
    }
    if (pos != len)
        return fl_fail(FL_EFORMAT, "%s: %llu unexpected bytes after the last tensor", origin,
                       (unsigned long long)(len - pos));
    return 0;
}

/* Validate complete file bytes and decode the header into m, the table into *entries (malloc'd)
 * and the content hash into hash. Layout problems are reported as such (a truncated file says
 * so); any other damage shows up as a hash mismatch. */
static int s_parse(const uint8_t *buf, size_t len, const char *origin, const struct s_meta *m,
                   bool check_hash, struct fl_tensor_entry **entries, size_t *n,
                   uint8_t hash[FL_HASH_BYTES])
{
    *entries = NULL;
    *n = 0;
    size_t hlen = 0;
    int rc = s_check_preamble(buf, len, origin, m->kind, &hlen);
    if (rc != 0)
        return rc;
    bool hash_ok = true;
    if (check_hash) {
        s_content_hash(buf, len, hash);
        hash_ok = sodium_memcmp(hash, buf + S_HASH_OFFSET, FL_HASH_BYTES) == 0;
    } else {
        memcpy(hash, buf + S_HASH_OFFSET, FL_HASH_BYTES);
    }
    const uint8_t *hdr = buf + FL_MODELFILE_PREAMBLE;
    if (m->kind == S_BASE)
        rc = fl_codec_unpack_base_header(hdr, hlen, origin, m->arch, m->base, entries, n);
    else
        rc = fl_codec_unpack_adapter_header(hdr, hlen, origin, m->adapter, entries, n);
    if (rc == 0)
        rc = s_check_table(*entries, *n, FL_MODELFILE_PREAMBLE + (uint64_t)hlen, len, hash_ok,
                           origin);
    if (!hash_ok && rc != FL_ETRUNC && rc != FL_ENOMEM)
        rc = fl_fail(FL_EHASH, "%s: content hash mismatch (file is corrupted)", origin);
    if (rc != 0) {
        free(*entries);
        *entries = NULL;
        *n = 0;
    }
    return rc;
}

int fl_base_read(const char *path, struct fl_base_file *out)
{
    memset(out, 0, sizeof *out);
    int rc = s_sodium_ready(path);
    if (rc != 0)
        return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fl_fail(FL_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return fl_fail(FL_EIO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return fl_fail(FL_ERANGE, "%s: file too large to map", path);
    }
    struct fl_base_file f;
    memset(&f, 0, sizeof f);
    f.map_len = (size_t)st.st_size;
    if (f.map_len > 0) {
        f.map = mmap(NULL, f.map_len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (f.map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return fl_fail(FL_EIO, "%s: cannot map: %s", path, strerror(e));
        }
    }
    close(fd);

    struct s_meta m = {.kind = S_BASE, .arch = &f.arch, .base = &f.meta};
    struct fl_tensor_entry *entries;
    size_t n;
    rc = s_parse(f.map, f.map_len, path, &m, true, &entries, &n, f.hash);
    if (rc != 0)
        goto out_close;
    f.tensors = calloc(n ? n : 1, sizeof *f.tensors);
    if (!f.tensors) {
        rc = fl_fail(FL_ENOMEM, "%s: out of memory", path);
        goto out_free_entries;
    }
    for (size_t i = 0; i < n; i++) {
        struct fl_tensor *t = &f.tensors[i];
        memcpy(t->name, entries[i].name, sizeof t->name);
        t->ndim = entries[i].ndim;
        memcpy(t->shape, entries[i].shape, sizeof t->shape);
        t->data = (float *)((uint8_t *)f.map + entries[i].offset);
        t->owned = false;
    }
    f.ntensors = n;
    free(entries);
    *out = f;
    return 0;

out_free_entries:
    free(entries);
out_close:
    fl_base_close(&f);
    return rc;
}

void fl_base_close(struct fl_base_file *f)
{
    if (!f)
        return;
    if (f->map && f->map_len)
        munmap(f->map, f->map_len);
    free(f->tensors);
    memset(f, 0, sizeof *f);
}

const struct fl_tensor *fl_base_tensor(const struct fl_base_file *f, const char *name)
{
    return f ? fl_tensor_find(f->tensors, f->ntensors, name) : NULL;
}

/* Parse adapter bytes; check_hash: verify the content hash; view: let aligned tensors borrow
 * their data from buf instead of copying it. */
static int s_adapter_unpack(const uint8_t *buf, size_t len, const char *origin, bool check_hash,
                            bool view, struct fl_adapter_file *out)
{
    memset(out, 0, sizeof *out);
    int rc = s_sodium_ready(origin);
    if (rc != 0)
        return rc;
    struct fl_adapter_file a;
    memset(&a, 0, sizeof a);
    struct s_meta m = {.kind = S_ADAPTER, .adapter = &a.meta};
    struct fl_tensor_entry *entries;
    size_t n;
    rc = s_parse(buf, len, origin, &m, check_hash, &entries, &n, a.hash);
    if (rc != 0)
        return rc;
    a.tensors = calloc(n ? n : 1, sizeof *a.tensors);
    if (!a.tensors) {
        rc = fl_fail(FL_ENOMEM, "%s: out of memory", origin);
        goto out_free_entries;
    }
    for (size_t i = 0; i < n; i++) {
        const uint8_t *src = buf + entries[i].offset;
        if (view && (uintptr_t)src % _Alignof(float) == 0) {
            struct fl_tensor *t = &a.tensors[i];
            snprintf(t->name, sizeof t->name, "%s", entries[i].name);
            t->ndim = entries[i].ndim;
            memcpy(t->shape, entries[i].shape, sizeof t->shape);
            t->data = (float *)(uintptr_t)src;
            t->owned = false;
            a.ntensors = i + 1;
            continue;
        }
        rc = fl_tensor_init(&a.tensors[i], entries[i].name, entries[i].ndim, entries[i].shape);
        if (rc != 0) {
            rc = fl_fail(FL_ENOMEM, "%s: out of memory", origin);
            goto out_close;
        }
        a.ntensors = i + 1;
        memcpy(a.tensors[i].data, buf + entries[i].offset, (size_t)entries[i].nbytes);
    }
    free(entries);
    *out = a;
    return 0;

out_close:
    fl_adapter_close(&a);
out_free_entries:
    free(entries);
    memset(&a, 0, sizeof a);
    return rc;
}

int fl_adapter_read(const char *path, struct fl_adapter_file *out)
{
    memset(out, 0, sizeof *out);
    unsigned char *buf;
    size_t len;
    int rc = fl_fs_read_file(path, S_ADAPTER_MAX_BYTES, &buf, &len);
    if (rc != 0)
        return rc;
    rc = fl_adapter_unpack(buf, len, path, out);
    free(buf);
    return rc;
}

void fl_adapter_close(struct fl_adapter_file *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->ntensors; i++)
        fl_tensor_free(&f->tensors[i]);
    free(f->tensors);
    memset(f, 0, sizeof *f);
}

const struct fl_tensor *fl_adapter_tensor(const struct fl_adapter_file *f, const char *name)
{
    return f ? fl_tensor_find(f->tensors, f->ntensors, name) : NULL;
}

int fl_adapter_check_base(const struct fl_adapter_file *a, const char *adapter_path,
                          const uint8_t base_hash[FL_HASH_BYTES], const char *base_path)
{
    if (sodium_memcmp(a->meta.base_hash, base_hash, FL_HASH_BYTES) == 0)
        return 0;
    char want[2 * FL_HASH_BYTES + 1], have[2 * FL_HASH_BYTES + 1];
    fl_hash_hex(a->meta.base_hash, want);
    fl_hash_hex(base_hash, have);
    return fl_fail(FL_EMISMATCH, "adapter %s was made for base %.12s..., but %s is base %.12s...",
                   adapter_path, want, base_path, have);
}

void fl_hash_hex(const uint8_t hash[FL_HASH_BYTES], char out[2 * FL_HASH_BYTES + 1])
{
    sodium_bin2hex(out, 2 * FL_HASH_BYTES + 1, hash, FL_HASH_BYTES);
}

int fl_adapter_unpack(const uint8_t *buf, size_t len, const char *origin,
                      struct fl_adapter_file *out)
{
    return s_adapter_unpack(buf, len, origin, true, false, out);
}

int fl_adapter_view_authenticated(const uint8_t *buf, size_t len, const char *origin,
                                  struct fl_adapter_file *out)
{
    return s_adapter_unpack(buf, len, origin, false, true, out);
}
