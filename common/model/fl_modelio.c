/* fl_modelio: models and their files. */
#include "fl_modelio.h"
#include "fl_error.h"

#include <stdlib.h>

fl_model_t *fl_model_from_base(const struct fl_base_file *base, const char *origin,
                               const struct fl_adapter_meta *adapter, fl_pool_t *pool)
{
    return fl_model_new_frozen(&base->arch, base->tensors, base->ntensors, base->hash, origin,
                               adapter, pool);
}

int fl_model_set_adapter(fl_model_t *m, const struct fl_adapter_file *a, const char *origin)
{
    return fl_model_load_adapter(m, &a->meta, a->tensors, a->ntensors, origin);
}

int fl_model_pack_adapter(fl_model_t *m, uint32_t round, uint8_t **buf, size_t *len)
{
    if (!fl_model_adapter_meta(m))
        return fl_fail(FL_EINVAL, "the model has no adapter to pack");
    size_t n;
    struct fl_tensor *ts = fl_model_tensors(m, FL_SET_ADAPTER, &n);
    if (!ts)
        return fl_fail(FL_ENOMEM, "out of memory");
    struct fl_adapter_meta meta = *fl_model_adapter_meta(m);
    meta.round = round;
    int rc = fl_adapter_pack(&meta, ts, n, buf, len);
    free(ts);
    return rc;
}

int fl_model_write_adapter(fl_model_t *m, const char *path, uint8_t hash_out[FL_HASH_BYTES])
{
    if (!fl_model_adapter_meta(m))
        return fl_fail(FL_EINVAL, "%s: the model has no adapter to write", path);
    size_t n;
    struct fl_tensor *ts = fl_model_tensors(m, FL_SET_ADAPTER, &n);
    if (!ts)
        return fl_fail(FL_ENOMEM, "out of memory");
    int rc = fl_adapter_write(path, fl_model_adapter_meta(m), ts, n, hash_out);
    free(ts);
    return rc;
}

int fl_model_write_base(fl_model_t *m, const struct fl_base_meta *meta, const char *path,
                        uint8_t hash_out[FL_HASH_BYTES])
{
    size_t n;
    struct fl_tensor *ts = fl_model_tensors(m, FL_SET_BASE, &n);
    if (!ts)
        return fl_fail(FL_ENOMEM, "out of memory");
    int rc = fl_base_write(path, fl_model_arch(m), meta, ts, n, hash_out);
    free(ts);
    return rc;
}
