/* fl_tensor: allocation and bookkeeping of float32 tensors. */
#include "fl_tensor.h"
#include "fl_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

float *fl_falloc(size_t n)
{
    if (n == 0)
        n = 1;
    if (n > (SIZE_MAX - 63) / sizeof(float))
        return NULL;
    size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    float *p = aligned_alloc(64, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

int fl_tensor_init(struct fl_tensor *t, const char *name, int ndim, const int64_t *shape)
{
    memset(t, 0, sizeof *t);
    if (ndim < 1 || ndim > FL_TENSOR_MAX_DIMS)
        return FL_EINVAL;
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0 || (size_t)shape[i] > SIZE_MAX / n)
            return FL_EINVAL;
        n *= (size_t)shape[i];
        t->shape[i] = shape[i];
    }
    t->ndim = ndim;
    snprintf(t->name, sizeof t->name, "%s", name ? name : "");
    t->data = fl_falloc(n);
    if (!t->data)
        return FL_ENOMEM;
    t->owned = true;
    return 0;
}

int fl_tensor_init2(struct fl_tensor *t, const char *name, int64_t rows, int64_t cols)
{
    int64_t shape[2] = {rows, cols};
    return fl_tensor_init(t, name, cols > 0 ? 2 : 1, shape);
}

int fl_tensor_copy(struct fl_tensor *dst, const struct fl_tensor *src)
{
    int rc = fl_tensor_init(dst, src->name, src->ndim, src->shape);
    if (rc == 0)
        memcpy(dst->data, src->data, fl_tensor_numel(src) * sizeof(float));
    return rc;
}

void fl_tensor_free(struct fl_tensor *t)
{
    if (t->owned)
        free(t->data);
    memset(t, 0, sizeof *t);
}

size_t fl_tensor_numel(const struct fl_tensor *t)
{
    if (t->ndim == 0)
        return 0;
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= (size_t)t->shape[i];
    return n;
}

bool fl_tensor_same_shape(const struct fl_tensor *a, const struct fl_tensor *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}

void fl_tensor_shape_str(const struct fl_tensor *t, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < t->ndim && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, i ? "x%lld" : "%lld", (long long)t->shape[i]);
}

const struct fl_tensor *fl_tensor_find(const struct fl_tensor *t, size_t n, const char *name)
{
    for (size_t i = 0; t && i < n; i++)
        if (strcmp(t[i].name, name) == 0)
            return &t[i];
    return NULL;
}
