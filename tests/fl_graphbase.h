/* A small residual graph network written as a base file without ONNX, for the tests of graph
 * models: x [3,16,16] -> Conv "stem" 3x3 stride 2 (+bias) -> Relu -> Conv "dw" depthwise 3x3
 * (+bias) -> Relu -> Conv "pw" 1x1 (no bias) -> Add "skip" (+ the stem's Relu) -> Relu ->
 * Conv "conv3" 3x3 16 channels (+bias) -> Relu -> GlobalAveragePool -> Flatten -> Gemm "fc"
 * [classes, 16] (trans_b). Random weights from a seed; no normalisation tensors unless asked. */
#ifndef FL_GRAPHBASE_H
#define FL_GRAPHBASE_H

#include <criterion/criterion.h>

#include "fl_error.h"
#include "fl_graphadapt.h"
#include "fl_graphdef.h"
#include "fl_modelfile.h"
#include "fl_rng.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define GB_NTENSORS 9 /* tensors of the base (without norm.mean / norm.std) */

static inline void gb_node(struct fl_graphdef *d, const char *name, enum fl_op op, const char *in0,
                           const char *in1, const char *in2, const char *out,
                           const struct fl_op_attrs *a)
{
    const char *in[3] = {in0, in1, in2};
    int n = in2 ? 3 : in1 ? 2 : 1;
    cr_assert_eq(fl_graphdef_add(d, name, op, in, n, out, a), 0, "%s", fl_error_msg());
}

/* The description of the network (free with fl_graphdef_free). */
static inline void gb_def(struct fl_graphdef *d)
{
    fl_graphdef_init(d);
    snprintf(d->input, sizeof d->input, "x");
    d->in_ndim = 3;
    d->in_dims[0] = 3, d->in_dims[1] = 16, d->in_dims[2] = 16;
    snprintf(d->output, sizeof d->output, "logits");
    struct fl_op_attrs s2 = fl_op_attrs_default(), p1 = fl_op_attrs_default();
    s2.stride[0] = s2.stride[1] = 2;
    for (int i = 0; i < 4; i++)
        s2.pads[i] = p1.pads[i] = 1;
    struct fl_op_attrs dw = p1, fc = fl_op_attrs_default();
    dw.group = 8;
    fc.trans_b = true;
    gb_node(d, "stem", FL_OP_CONV, "x", "stem.w", "stem.b", "s", &s2);
    gb_node(d, "stem_relu", FL_OP_RELU, "s", NULL, NULL, "sr", NULL);
    gb_node(d, "dw", FL_OP_CONV, "sr", "dw.w", "dw.b", "d", &dw);
    gb_node(d, "dw_relu", FL_OP_RELU, "d", NULL, NULL, "dr", NULL);
    gb_node(d, "pw", FL_OP_CONV, "dr", "pw.w", NULL, "p", NULL);
    gb_node(d, "skip", FL_OP_ADD, "p", "sr", NULL, "a", NULL);
    gb_node(d, "skip_relu", FL_OP_RELU, "a", NULL, NULL, "ar", NULL);
    gb_node(d, "conv3", FL_OP_CONV, "ar", "conv3.w", "conv3.b", "c3", &p1);
    gb_node(d, "conv3_relu", FL_OP_RELU, "c3", NULL, NULL, "c3r", NULL);
    gb_node(d, "gap", FL_OP_GLOBALAVGPOOL, "c3r", NULL, NULL, "g", NULL);
    gb_node(d, "flat", FL_OP_FLATTEN, "g", NULL, NULL, "f", NULL);
    gb_node(d, "fc", FL_OP_GEMM, "f", "fc.w", "fc.b", "logits", &fc);
}

/* Its tensors, He-initialised from seed (free each with fl_tensor_free). */
static inline void gb_tensors(struct fl_tensor t[GB_NTENSORS], int classes, uint64_t seed)
{
    static const struct {
        const char *name;
        int ndim;
        int64_t shape[4];
    } spec[GB_NTENSORS] = {{"stem.w", 4, {8, 3, 3, 3}},
                           {"stem.b", 1, {8}},
                           {"dw.w", 4, {8, 1, 3, 3}},
                           {"dw.b", 1, {8}},
                           {"pw.w", 4, {8, 8, 1, 1}},
                           {"conv3.w", 4, {16, 8, 3, 3}},
                           {"conv3.b", 1, {16}},
                           {"fc.w", 2, {0, 16}},
                           {"fc.b", 1, {0}}};
    struct fl_rng r;
    fl_rng_seed(&r, seed);
    for (int i = 0; i < GB_NTENSORS; i++) {
        int64_t shape[4];
        memcpy(shape, spec[i].shape, sizeof shape);
        if (shape[0] == 0)
            shape[0] = classes;
        cr_assert_eq(fl_tensor_init(&t[i], spec[i].name, spec[i].ndim, shape), 0);
        size_t n = fl_tensor_numel(&t[i]), fan = n / (size_t)shape[0];
        for (size_t j = 0; j < n; j++)
            t[i].data[j] = (float)(fl_rng_normal(&r) * (spec[i].ndim == 1 ? 0.1 : sqrt(2.0 / fan)));
    }
}

/* Write the base to path (with norm.mean / norm.std of norm_len values when norm_len > 0);
 * its content hash into hash unless NULL. */
static inline void gb_write(const char *path, int classes, uint64_t seed, size_t norm_len,
                            uint8_t hash[FL_HASH_BYTES])
{
    struct fl_graphdef d;
    gb_def(&d);
    struct fl_tensor t[GB_NTENSORS + 2];
    gb_tensors(t, classes, seed);
    size_t n = GB_NTENSORS;
    if (norm_len > 0) {
        cr_assert_eq(fl_tensor_init2(&t[n++], "norm.mean", (int64_t)norm_len, 0), 0);
        cr_assert_eq(fl_tensor_init2(&t[n++], "norm.std", (int64_t)norm_len, 0), 0);
        for (size_t i = 0; i < norm_len; i++)
            t[n - 2].data[i] = 0.1f * (float)i, t[n - 1].data[i] = 1.0f + 0.5f * (float)i;
    }
    struct fl_arch arch;
    cr_assert_eq(fl_arch_from_graph(&d, "tiny-resnet", classes, &arch), 0, "%s", fl_error_msg());
    struct fl_base_meta meta;
    memset(&meta, 0, sizeof meta);
    snprintf(meta.data_desc, sizeof meta.data_desc, "random weights (test)");
    meta.created_unix = (int64_t)time(NULL);
    meta.nclasses = classes;
    for (int i = 0; i < classes; i++)
        meta.class_ids[i] = i;
    cr_assert_eq(fl_base_write(path, &arch, &meta, t, n, hash), 0, "%s", fl_error_msg());
    for (size_t i = 0; i < n; i++)
        fl_tensor_free(&t[i]);
    fl_graphdef_free(&d);
}

#endif
