/* corpus_graph: the graph base of fuzz_base's seed corpus, for make_corpus. */
#include "fl_graphadapt.h"
#include "fl_modelfile.h"
#include "fuzz_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_gnode(struct fl_graphdef *d, const char *name, enum fl_op op, const char *in0,
                    const char *in1, const char *in2, const char *out, const struct fl_op_attrs *a)
{
    const char *in[3] = {in0, in1, in2};
    if (fl_graphdef_add(d, name, op, in, in2 ? 3 : in1 ? 2 : 1, out, a) != 0)
        abort();
}

/* A tiny graph base: x [1,6,6] -> Conv 3x3 (2 channels) -> Relu -> Add (+ x) ->
 * GlobalAveragePool -> Flatten -> Gemm [3, 2], with per-channel normalisation. */
int corpus_graph_base(const char *out_dir, int64_t created)
{
    struct fl_graphdef d;
    fl_graphdef_init(&d);
    snprintf(d.input, sizeof d.input, "x");
    snprintf(d.output, sizeof d.output, "logits");
    d.in_ndim = 3;
    d.in_dims[0] = 1, d.in_dims[1] = d.in_dims[2] = 6;
    struct fl_op_attrs p1 = fl_op_attrs_default(), fc = fl_op_attrs_default();
    p1.pads[0] = p1.pads[1] = p1.pads[2] = p1.pads[3] = 1;
    fc.trans_b = true;
    s_gnode(&d, "conv1", FL_OP_CONV, "x", "conv1.weight", "conv1.bias", "c", &p1);
    s_gnode(&d, "relu1", FL_OP_RELU, "c", NULL, NULL, "r", NULL);
    s_gnode(&d, "skip", FL_OP_ADD, "r", "x", NULL, "s", NULL);
    s_gnode(&d, "gap", FL_OP_GLOBALAVGPOOL, "s", NULL, NULL, "g", NULL);
    s_gnode(&d, "flat", FL_OP_FLATTEN, "g", NULL, NULL, "f", NULL);
    s_gnode(&d, "fc", FL_OP_GEMM, "f", "fc.weight", "fc.bias", "logits", &fc);
    static const int64_t shapes[6][4] = {{2, 1, 3, 3}, {2}, {3, 2}, {3}, {1}, {1}};
    static const int ndims[6] = {4, 1, 2, 1, 1, 1};
    static const char *names[6] = {"conv1.weight", "conv1.bias", "fc.weight",
                                   "fc.bias",      "norm.mean",  "norm.std"};
    struct fl_tensor t[6];
    for (int i = 0; i < 6; i++) {
        if (fl_tensor_init(&t[i], names[i], ndims[i], shapes[i]) != 0)
            abort();
        for (size_t j = 0; j < fl_tensor_numel(&t[i]); j++)
            t[i].data[j] = 0.25f * (float)((int)((j * 7 + (size_t)i) % 9) - 4);
    }
    t[5].data[0] = 1.0f;
    struct fl_arch arch;
    struct fl_base_meta meta;
    memset(&meta, 0, sizeof meta);
    snprintf(meta.data_desc, sizeof meta.data_desc, "fuzz seed: graph, classes 0-2");
    meta.created_unix = created;
    meta.nclasses = 3;
    for (int i = 0; i < 3; i++)
        meta.class_ids[i] = i;
    char path[1024];
    snprintf(path, sizeof path, "%s/base/graph-tiny.ftm", out_dir);
    int rc = fl_arch_from_graph(&d, "graph-tiny", 3, &arch);
    if (rc == 0)
        rc = fl_base_write(path, &arch, &meta, t, 6, NULL);
    for (int i = 0; i < 6; i++)
        fl_tensor_free(&t[i]);
    fl_graphdef_free(&d);
    return rc;
}
