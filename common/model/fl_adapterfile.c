/* fl_adapterfile: the adapter file (fl_modelfile.h): packed in memory (what goes over the
 * network), written atomically, and unpacked from bytes, copying its tensors or viewing them. */
#include "fl_error.h"
#include "fl_fs.h"
#include "fl_layout.h"
#include "fl_modelfile.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* Adapters are read whole into memory; refuse anything larger than this. */
#define S_ADAPTER_MAX_BYTES ((size_t)(SIZE_MAX < 0x100000000ull ? SIZE_MAX : 0x100000000ull))

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

static int s_adapter_pack(const struct fl_adapter_meta *meta, const struct fl_tensor *tensors,
                          size_t n, const char *origin, uint8_t **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    int rc = fl_layout_sodium_ready(origin);
    if (rc != 0)
        return rc;
    struct fl_layout_meta m = {.kind = FL_LAYOUT_ADAPTER,
                               .adapter = (struct fl_adapter_meta *)meta};
    struct fl_layout_plan plan;
    rc = fl_layout_plan_build(&plan, &m, tensors, n, origin);
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
    fl_layout_plan_emit(&plan, s_mem_sink, &out);
    fl_layout_hash(out.buf, out.pos, out.buf + FL_LAYOUT_HASH_OFFSET);
    *buf = out.buf;
    *len = out.pos;

out_free_plan:
    fl_layout_plan_free(&plan);
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
        memcpy(hash_out, buf + FL_LAYOUT_HASH_OFFSET, FL_HASH_BYTES);
    free(buf);
    return rc;
}

/* Parse adapter bytes; check_hash: verify the content hash; view: let aligned tensors borrow
 * their data from buf instead of copying it. */
static int s_adapter_unpack(const uint8_t *buf, size_t len, const char *origin, bool check_hash,
                            bool view, struct fl_adapter_file *out)
{
    memset(out, 0, sizeof *out);
    int rc = fl_layout_sodium_ready(origin);
    if (rc != 0)
        return rc;
    struct fl_adapter_file a;
    memset(&a, 0, sizeof a);
    struct fl_layout_meta m = {.kind = FL_LAYOUT_ADAPTER, .adapter = &a.meta};
    struct fl_tensor_entry *entries;
    size_t n;
    rc = fl_layout_parse(buf, len, origin, &m, check_hash, &entries, &n, a.hash);
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
            fl_layout_view(&entries[i], buf, &a.tensors[i]);
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
