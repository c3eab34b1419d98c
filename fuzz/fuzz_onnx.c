/* fuzz_onnx: fl_onnx_import_mem on the input as an ONNX model (no folder: external data is
 * refused), once with the shapes in the file and once with a per-sample input shape given.
 * A model that imports is built into a graph (fl_graph_from_def) and, when small, planned and
 * run forward on zeros, which checks the importer's shapes against the engine's. */
#include "fl_error.h"
#include "fl_graph.h"
#include "fl_graphdef.h"
#include "fl_onnx.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    return 0;
}

static void s_use(const struct fl_graphdef *def, const struct fl_tensor *params, size_t np)
{
    size_t per = 1, weights = 0;
    for (int d = 0; d < def->in_ndim; d++)
        per *= (size_t)def->in_dims[d];
    for (size_t i = 0; i < np; i++)
        weights += fl_tensor_numel(&params[i]);
    fl_graph_t *g = fl_graph_from_def(def, params, np, NULL);
    if (g && per <= 4096 && weights <= ((size_t)1 << 20) && def->nnodes <= 64 &&
        fl_graph_plan(g, 1, false) == 0) {
        float *x = calloc(per, sizeof *x);
        if (!x)
            abort();
        fl_graph_forward(g, x, 1);
        free(x);
    }
    fl_graph_destroy(&g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct fl_onnx_opts opts[2] = {{0, {0, 0, 0}}, {3, {1, 8, 8}}};
    for (int k = 0; k < 2; k++) {
        struct fl_graphdef def;
        struct fl_tensor *params;
        size_t np;
        if (fl_onnx_import_mem(data, size, "fuzz", NULL, &opts[k], &def, &params, &np) == 0)
            s_use(&def, params, np);
        else if (params || def.nnodes || !fl_error_msg()[0])
            abort(); /* a failure leaves nothing behind and always says why */
        fl_onnx_free_params(&params, np);
        fl_graphdef_free(&def);
    }
    return 0;
}
