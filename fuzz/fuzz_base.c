/* fuzz_base: fl_base_read on a file holding the input (a memfd), as a branch reads its cached
 * base and `fedtl eval` a local one. Bytes that fail only their content hash are read again
 * with the hash fixed. A base that reads has every tensor touched and is built into a model
 * (fl_model_from_base, with and without a head adapter), which checks the architecture (or
 * the graph) against the tensors; a graph base also gets its default BitFit adapter. */
#include "fl_error.h"
#include "fl_graphadapt.h"
#include "fl_model.h"
#include "fl_modelfile.h"
#include "fl_modelio.h"
#include "fuzz_util.h"

#include <stdlib.h>
#include <string.h>

static struct fuzz_file s_file = FUZZ_FILE_INIT;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    return 0;
}

/* Read every value (a tensor table pointing outside the mapping faults here). */
static float s_touch(const struct fl_base_file *bf)
{
    float sum = 0.0f;
    for (size_t i = 0; i < bf->ntensors; i++) {
        const struct fl_tensor *t = &bf->tensors[i];
        size_t n = fl_tensor_numel(t);
        for (size_t j = 0; j < n; j++)
            sum += t->data[j];
    }
    return sum;
}

static void s_use(const struct fl_base_file *bf)
{
    volatile float sink = s_touch(bf);
    (void)sink;
    fl_model_t *m = fl_model_from_base(bf, "fuzz", NULL, NULL); /* no pool: one thread */
    fl_model_destroy(&m);
    struct fl_adapter_meta am;
    memset(&am, 0, sizeof am);
    am.kind = FL_ADAPTER_HEAD;
    am.num_classes = 2;
    am.class_ids[1] = 1;
    m = fl_model_from_base(bf, "fuzz", &am, NULL);
    fl_model_destroy(&m);
    if (!bf->graph)
        return;
    am.kind = FL_ADAPTER_BITFIT;
    am.ntargets = fl_graphadapt_default_targets(bf->graph, am.kind, am.targets, FL_MAX_TARGETS);
    m = fl_model_from_base(bf, "fuzz", &am, NULL);
    fl_model_destroy(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fl_base_file bf;
    int rc = fl_base_read(fuzz_file_set(&s_file, "base", data, size), &bf);
    if (rc == 0)
        s_use(&bf);
    fl_base_close(&bf);
    if (rc != FL_EHASH)
        return 0;
    uint8_t *copy = malloc(size);
    if (!copy)
        abort();
    memcpy(copy, data, size);
    fuzz_fix_hash(copy, size);
    if (fl_base_read(fuzz_file_set(&s_file, "base", copy, size), &bf) == 0)
        s_use(&bf);
    fl_base_close(&bf);
    free(copy);
    return 0;
}
