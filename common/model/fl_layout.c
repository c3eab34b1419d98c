/* fl_layout: writing and checking the model files' shared layout: the preamble, the header
 * (through fl_filecodec), the aligned tensor blobs and the content hash. */
#include "fl_layout.h"
#include "fl_error.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "fedtl model files hold little-endian float32 blobs; big-endian hosts are not supported"
#endif
_Static_assert(FL_HASH_BYTES == crypto_generichash_BYTES, "content hash is BLAKE2b-256");
_Static_assert(sizeof(float) == 4, "tensor blobs are float32");

#define S_MAX_LAYOUT_PASSES 8

static const char s_base_magic[FL_LAYOUT_MAGIC_LEN] = {'F', 'E', 'D', 'T', 'L', 'B', 'M', '\n'};
static const char s_adapter_magic[FL_LAYOUT_MAGIC_LEN] = {'F', 'E', 'D', 'T', 'L', 'A', 'D', '\n'};
static const uint8_t s_zeros[FL_MODELFILE_ALIGN];

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

int fl_layout_sodium_ready(const char *origin)
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
void fl_layout_hash(const uint8_t *buf, size_t len, uint8_t out[FL_HASH_BYTES])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, FL_HASH_BYTES);
    crypto_generichash_update(&st, buf, FL_LAYOUT_HASH_OFFSET);
    crypto_generichash_update(&st, buf + FL_MODELFILE_PREAMBLE, len - FL_MODELFILE_PREAMBLE);
    crypto_generichash_final(&st, out, FL_HASH_BYTES);
}

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

static int s_pack_header(const struct fl_layout_meta *m, const struct fl_layout_plan *p,
                         const char *origin, uint8_t **buf, size_t *len)
{
    if (m->kind == FL_LAYOUT_BASE)
        return fl_codec_pack_base_header(m->arch, m->base, p->entries, p->n, origin, buf, len);
    return fl_codec_pack_adapter_header(m->adapter, p->entries, p->n, origin, buf, len);
}

void fl_layout_plan_free(struct fl_layout_plan *p)
{
    free(p->header);
    free(p->entries);
    memset(p, 0, sizeof *p);
}

/* Lay out a file: the header holds absolute blob offsets, and the first blob goes after the
 * header, so pack until the header fits in front of the offsets it records (varints only grow
 * with the offsets, so this settles in a pass or two). */
int fl_layout_plan_build(struct fl_layout_plan *p, const struct fl_layout_meta *m,
                         const struct fl_tensor *tensors, size_t n, const char *origin)
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
    memcpy(p->preamble, m->kind == FL_LAYOUT_BASE ? s_base_magic : s_adapter_magic,
           FL_LAYOUT_MAGIC_LEN);
    s_put_u32(p->preamble + 8, FL_MODELFILE_VERSION);
    s_put_u32(p->preamble + 12, 0);
    s_put_u64(p->preamble + 16, p->hlen);
    return 0;

out_free_plan:
    fl_layout_plan_free(p);
    return rc;
}

/* Feed the bytes after the preamble (header, padding, blobs) to sink. */
int fl_layout_plan_emit(const struct fl_layout_plan *p, fl_layout_sink_fn sink, void *ctx)
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
void fl_layout_plan_hash(struct fl_layout_plan *p)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, FL_HASH_BYTES);
    crypto_generichash_update(&st, p->preamble, FL_LAYOUT_HASH_OFFSET);
    fl_layout_plan_emit(p, s_hash_sink, &st);
    crypto_generichash_final(&st, p->preamble + FL_LAYOUT_HASH_OFFSET, FL_HASH_BYTES);
}

/* Magic, version and header length; *hlen is the header length, known to fit in len. */
static int s_check_preamble(const uint8_t *buf, size_t len, const char *origin,
                            enum fl_layout_kind kind, size_t *hlen)
{
    const char *want = kind == FL_LAYOUT_BASE ? s_base_magic : s_adapter_magic;
    const char *other = kind == FL_LAYOUT_BASE ? s_adapter_magic : s_base_magic;
    const char *what = kind == FL_LAYOUT_BASE ? "base model" : "adapter";
    if (len < FL_LAYOUT_MAGIC_LEN)
        return fl_fail(FL_ETRUNC, "%s: truncated (file is %zu bytes, too short for a fedtl %s)",
                       origin, len, what);
    if (memcmp(buf, want, FL_LAYOUT_MAGIC_LEN) != 0) {
        if (memcmp(buf, other, FL_LAYOUT_MAGIC_LEN) == 0)
            return fl_fail(FL_EFORMAT, "%s: is %s file, not %s", origin,
                           kind == FL_LAYOUT_BASE ? "an adapter" : "a base model",
                           kind == FL_LAYOUT_BASE ? "a base model" : "an adapter");
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
int fl_layout_parse(const uint8_t *buf, size_t len, const char *origin,
                    const struct fl_layout_meta *m, bool check_hash,
                    struct fl_tensor_entry **entries, size_t *n, uint8_t hash[FL_HASH_BYTES])
{
    *entries = NULL;
    *n = 0;
    size_t hlen = 0;
    int rc = s_check_preamble(buf, len, origin, m->kind, &hlen);
    if (rc != 0)
        return rc;
    bool hash_ok = true;
    if (check_hash) {
        fl_layout_hash(buf, len, hash);
        hash_ok = sodium_memcmp(hash, buf + FL_LAYOUT_HASH_OFFSET, FL_HASH_BYTES) == 0;
    } else {
        memcpy(hash, buf + FL_LAYOUT_HASH_OFFSET, FL_HASH_BYTES);
    }
    const uint8_t *hdr = buf + FL_MODELFILE_PREAMBLE;
    if (m->kind == FL_LAYOUT_BASE)
        rc = fl_codec_unpack_base_header(hdr, hlen, origin, m->arch, m->graph, m->base, entries, n);
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

void fl_layout_view(const struct fl_tensor_entry *e, const uint8_t *file, struct fl_tensor *t)
{
    memset(t, 0, sizeof *t);
    memcpy(t->name, e->name, sizeof t->name);
    t->ndim = e->ndim;
    memcpy(t->shape, e->shape, sizeof t->shape);
    t->data = (float *)(uintptr_t)(file + e->offset);
    t->owned = false;
}

void fl_hash_hex(const uint8_t hash[FL_HASH_BYTES], char out[2 * FL_HASH_BYTES + 1])
{
    sodium_bin2hex(out, 2 * FL_HASH_BYTES + 1, hash, FL_HASH_BYTES);
}
