/* fl_dataset: labelled records, in memory or streamed from a source. */
#include "fl_dataset.h"
#include "fl_error.h"

#include <stdlib.h>
#include <string.h>

struct fl_source *fl_source_ref(struct fl_source *src)
{
    if (src)
        src->refs++;
    return src;
}

void fl_source_unref(struct fl_source **src_p)
{
    if (!src_p || !*src_p)
        return;
    struct fl_source *src = *src_p;
    *src_p = NULL;
    if (--src->refs <= 0)
        src->destroy(src);
}

void fl_dataset_free(struct fl_dataset *ds)
{
    if (!ds)
        return;
    free(ds->x);
    free(ds->y);
    free(ds->ref);
    fl_source_unref(&ds->src);
    memset(ds, 0, sizeof *ds);
}

bool fl_dataset_streamed(const struct fl_dataset *ds)
{
    return ds->src != NULL;
}

/* Source records per fetch when gathering: bounds the index buffer on the stack. */
#define S_GATHER 256

int fl_dataset_gather(const struct fl_dataset *ds, const size_t *idx, size_t n, float *out)
{
    if (!ds->src) {
        for (size_t i = 0; i < n; i++)
            memcpy(out + i * ds->dim, ds->x + idx[i] * ds->dim, sizeof(float) * ds->dim);
        return 0;
    }
    size_t refs[S_GATHER];
    for (size_t done = 0; done < n; done += S_GATHER) {
        size_t b = n - done < S_GATHER ? n - done : S_GATHER;
        for (size_t i = 0; i < b; i++)
            refs[i] = ds->ref[idx[done + i]];
        int rc = ds->src->fetch(ds->src, refs, b, out + done * ds->dim);
        if (rc)
            return rc;
    }
    return 0;
}

int fl_dataset_read(const struct fl_dataset *ds, size_t first, size_t n, float *out)
{
    if (first > ds->n || n > ds->n - first)
        return fl_fail(FL_ERANGE, "records %zu..%zu of %zu", first, first + n, ds->n);
    if (!ds->src) {
        memcpy(out, ds->x + first * ds->dim, sizeof(float) * ds->dim * n);
        return 0;
    }
    size_t idx[S_GATHER];
    for (size_t done = 0; done < n; done += S_GATHER) {
        size_t b = n - done < S_GATHER ? n - done : S_GATHER;
        for (size_t i = 0; i < b; i++)
            idx[i] = first + done + i;
        int rc = fl_dataset_gather(ds, idx, b, out + done * ds->dim);
        if (rc)
            return rc;
    }
    return 0;
}
