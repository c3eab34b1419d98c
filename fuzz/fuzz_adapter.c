/* fuzz_adapter: fl_adapter_unpack on adapter file bytes (what arrives in a RoundTask,
 * FinalModel or UpdateBody, and what fl_adapter_read hands over). Bytes that fail only their
 * content hash are unpacked again with the hash fixed, to reach the layout and copy code. An
 * adapter that unpacks must pack again and unpack to the same tensors. The same bytes also go
 * through fl_adapter_view_authenticated (the coordinator's path for an opened update), which
 * must agree with fl_adapter_unpack. */
#include "fl_error.h"
#include "fl_modelfile.h"
#include "fuzz_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Pack what was unpacked; the result must unpack to the same tensors. */
static void s_roundtrip(const struct fl_adapter_file *a)
{
    uint8_t *buf;
    size_t len;
    if (fl_adapter_pack(&a->meta, a->tensors, a->ntensors, &buf, &len) != 0) {
        fprintf(stderr, "fuzz_adapter: an unpacked adapter does not pack: %s\n", fl_error_msg());
        abort();
    }
    struct fl_adapter_file b;
    if (fl_adapter_unpack(buf, len, "repacked", &b) != 0) {
        fprintf(stderr, "fuzz_adapter: a repacked adapter does not unpack: %s\n", fl_error_msg());
        abort();
    }
    if (b.ntensors != a->ntensors)
        abort();
    for (size_t i = 0; i < b.ntensors; i++)
        if (!fl_tensor_same_shape(&a->tensors[i], &b.tensors[i]) ||
            strcmp(a->tensors[i].name, b.tensors[i].name) != 0 ||
            memcmp(a->tensors[i].data, b.tensors[i].data,
                   fl_tensor_numel(&a->tensors[i]) * sizeof(float)) != 0)
            abort();
    fl_adapter_close(&b);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fl_adapter_file a;
    int rc = fl_adapter_unpack(data, size, "fuzz", &a);
    if (rc == 0)
        s_roundtrip(&a);
    fl_adapter_close(&a);
    int fixed_rc = rc;
    if (rc == FL_EHASH) {
        uint8_t *copy = malloc(size);
        if (!copy)
            abort();
        memcpy(copy, data, size);
        fuzz_fix_hash(copy, size);
        if ((fixed_rc = fl_adapter_unpack(copy, size, "fuzz", &a)) == 0) {
            s_roundtrip(&a);
            (void)fl_adapter_tensor(&a, "head.weight");
        }
        fl_adapter_close(&a);
        free(copy);
    }
    /* The coordinator's path for an update that opened: no hash check, tensors borrowed from
     * the bytes. It must accept exactly what fl_adapter_unpack accepts once the hash is right. */
    int view_rc = fl_adapter_view_authenticated(data, size, "fuzz-view", &a);
    if ((view_rc == 0) != (fixed_rc == 0)) {
        fprintf(stderr, "fuzz_adapter: view %d, unpack with the hash fixed %d\n", view_rc,
                fixed_rc);
        abort();
    }
    if (view_rc == 0)
        s_roundtrip(&a);
    fl_adapter_close(&a);
    return 0;
}
