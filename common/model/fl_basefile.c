/* fl_basefile: the base model file (fl_modelfile.h): written atomically from the engine's
 * tensors, read through a read-only mapping that its tensors borrow once it has validated. */
#include "fl_error.h"
#include "fl_fs.h"
#include "fl_layout.h"
#include "fl_modelfile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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

int fl_base_write(const char *path, const struct fl_arch *arch, const struct fl_base_meta *meta,
                  const struct fl_tensor *tensors, size_t n, uint8_t hash_out[FL_HASH_BYTES])
{
    int rc = fl_layout_sodium_ready(path);
    if (rc != 0)
        return rc;
    struct fl_layout_meta m = {.kind = FL_LAYOUT_BASE,
                               .arch = (struct fl_arch *)arch,
                               .base = (struct fl_base_meta *)meta};
    struct fl_layout_plan plan;
    rc = fl_layout_plan_build(&plan, &m, tensors, n, path);
    if (rc != 0)
        return rc;
    fl_layout_plan_hash(&plan);

    struct fl_atomic_file af;
    rc = fl_atomic_open(&af, path, 0644);
    if (rc != 0)
        goto out_free_plan;
    struct s_file_out out = {.f = af.f, .path = path};
    rc = s_file_sink(&out, plan.preamble, sizeof plan.preamble);
    if (rc == 0)
        rc = fl_layout_plan_emit(&plan, s_file_sink, &out);
    if (rc != 0) {
        fl_atomic_abort(&af);
        goto out_free_plan;
    }
    rc = fl_atomic_commit(&af);
    if (rc == 0 && hash_out)
        memcpy(hash_out, plan.preamble + FL_LAYOUT_HASH_OFFSET, FL_HASH_BYTES);

out_free_plan:
    fl_layout_plan_free(&plan);
    return rc;
}

int fl_base_read(const char *path, struct fl_base_file *out)
{
    memset(out, 0, sizeof *out);
    int rc = fl_layout_sodium_ready(path);
    if (rc != 0)
        return rc;
    int fd;
    struct stat st;
    if ((rc = fl_fs_open_regular(path, &fd, &st)) != 0)
        return rc;
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

    struct fl_layout_meta m = {
        .kind = FL_LAYOUT_BASE, .arch = &f.arch, .graph = &f.graph, .base = &f.meta};
    struct fl_tensor_entry *entries;
    size_t n;
    rc = fl_layout_parse(f.map, f.map_len, path, &m, true, &entries, &n, f.hash);
    if (rc != 0)
        goto out_close;
    f.tensors = calloc(n ? n : 1, sizeof *f.tensors);
    if (!f.tensors) {
        rc = fl_fail(FL_ENOMEM, "%s: out of memory", path);
        goto out_free_entries;
    }
    for (size_t i = 0; i < n; i++)
        fl_layout_view(&entries[i], f.map, &f.tensors[i]);
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
    if (f->graph)
        fl_graphdef_free(f->graph);
    free(f->graph);
    memset(f, 0, sizeof *f);
}

const struct fl_tensor *fl_base_tensor(const struct fl_base_file *f, const char *name)
{
    return f ? fl_tensor_find(f->tensors, f->ntensors, name) : NULL;
}
