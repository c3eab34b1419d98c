/* The graph engine on whole networks: a residual block and a squeeze-and-excitation block
 * checked end to end against finite differences, validation errors and their messages, a pool
 * of two against the caller's thread, training on synthetic data, and cnn-small as a graph
 * against the chain engine (fl_model) with the same weights. */
#include "fl_graphcheck.h"

#include <criterion/criterion.h>

#include "fl_arch.h"
#include "fl_error.h"
#include "fl_graph.h"
#include "fl_model.h"
#include "fl_pool.h"
#include "fl_rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct fl_op_attrs s_pad1(void)
{
    struct fl_op_attrs a = fl_op_attrs_default();
    a.pads[0] = a.pads[1] = a.pads[2] = a.pads[3] = 1;
    return a;
}

/* x [4,6,6] -> conv -> bn -> relu -> conv -> (+ x) -> relu -> gap -> flatten -> gemm [3]. */
static fl_graph_t *s_residual(fl_pool_t *pool, int max_batch, bool input_grad)
{
    struct fl_rng r;
    fl_rng_seed(&r, 100);
    fl_graph_t *g = fl_graph_new(pool);
    int64_t in[3] = {4, 6, 6};
    cr_assert_eq(fl_graph_add_input(g, "x", 3, in), 0);
    s_param(g, "w1", true, &r, 0.3, 4, 4, 3, 3);
    s_param(g, "b1", true, &r, 0.3, 4, 0, 0, 0);
    s_param(g, "w2", true, &r, 0.3, 4, 4, 3, 3);
    s_param(g, "fc.w", true, &r, 0.5, 3, 4, 0, 0);
    s_param(g, "fc.b", true, &r, 0.5, 3, 0, 0, 0);
    const char *bn[4] = {"bn.scale", "bn.bias", "bn.mean", "bn.var"};
    for (int i = 0; i < 4; i++)
        s_param(g, bn[i], false, &r, 0.3, 4, 0, 0, 0);
    float *var = fl_graph_param(g, "bn.var", NULL), *sc = fl_graph_param(g, "bn.scale", NULL);
    for (int i = 0; i < 4; i++)
        var[i] = 1.0f + var[i] * var[i], sc[i] += 1.0f;
    struct fl_op_attrs p1 = s_pad1(), fc = fl_op_attrs_default();
    fc.trans_b = true;
    s_node(g, "conv1", FL_OP_CONV, "x", "w1", "b1", "c1", &p1);
    const char *bnin[5] = {"c1", "bn.scale", "bn.bias", "bn.mean", "bn.var"};
    cr_assert_eq(fl_graph_add_node(g, "bn1", FL_OP_BATCHNORM, bnin, 5, "n1", NULL), 0);
    s_node(g, "relu1", FL_OP_RELU, "n1", NULL, NULL, "r1", NULL);
    s_node(g, "conv2", FL_OP_CONV, "r1", "w2", NULL, "c2", &p1);
    s_node(g, "add", FL_OP_ADD, "c2", "x", NULL, "s", NULL);
    s_node(g, "relu2", FL_OP_RELU, "s", NULL, NULL, "r2", NULL);
    s_node(g, "gap", FL_OP_GLOBALAVGPOOL, "r2", NULL, NULL, "p", NULL);
    s_node(g, "flat", FL_OP_FLATTEN, "p", NULL, NULL, "f", NULL);
    s_node(g, "fc", FL_OP_GEMM, "f", "fc.w", "fc.b", "logits", &fc);
    cr_assert_eq(fl_graph_set_output(g, "logits"), 0);
    cr_assert_eq(fl_graph_plan(g, max_batch, input_grad), 0, "%s", fl_error_msg());
    return g;
}

Test(fl_graph, residual_block_gradients_end_to_end)
{
    fl_graph_t *g = s_residual(NULL, 2, true);
    cr_assert_null(fl_graph_grad(g, "bn.scale"), "frozen parameters get no gradient");
    struct fl_rng r;
    fl_rng_seed(&r, 101);
    float x[2 * 144];
    s_fill(x, 288, &r, 1);
    s_gradcheck(g, x, 144, 2, 102);
    fl_graph_destroy(&g);
}

/* MobileNetV3's block: pointwise conv -> hardswish -> depthwise stride 2 -> SE (gap, 1x1
 * reduce, relu, 1x1 expand, hardsigmoid, multiply) -> gap -> flatten -> gemm. */
static fl_graph_t *s_se(fl_pool_t *pool, int max_batch)
{
    struct fl_rng r;
    fl_rng_seed(&r, 110);
    fl_graph_t *g = fl_graph_new(pool);
    int64_t in[3] = {3, 5, 5};
    cr_assert_eq(fl_graph_add_input(g, "x", 3, in), 0);
    s_param(g, "pw", true, &r, 0.5, 4, 3, 1, 1);
    s_param(g, "dw", true, &r, 0.5, 4, 1, 3, 3);
    s_param(g, "se1.w", true, &r, 0.5, 2, 4, 1, 1);
    s_param(g, "se1.b", true, &r, 0.5, 2, 0, 0, 0);
    s_param(g, "se2.w", true, &r, 0.5, 4, 2, 1, 1);
    s_param(g, "se2.b", true, &r, 0.5, 4, 0, 0, 0);
    s_param(g, "fc.w", true, &r, 0.5, 4, 3, 0, 0);
    struct fl_op_attrs dw = s_pad1(), hs = fl_op_attrs_default();
    dw.stride[0] = dw.stride[1] = 2, dw.group = 4;
    hs.alpha = 0.2f, hs.beta = 0.5f;
    s_node(g, "pw", FL_OP_CONV, "x", "pw", NULL, "a", NULL);
    s_node(g, "hswish", FL_OP_HARDSWISH, "a", NULL, NULL, "h", NULL);
    s_node(g, "dw", FL_OP_CONV, "h", "dw", NULL, "d", &dw);
    s_node(g, "se.pool", FL_OP_GLOBALAVGPOOL, "d", NULL, NULL, "sq", NULL);
    s_node(g, "se.fc1", FL_OP_CONV, "sq", "se1.w", "se1.b", "e1", NULL);
    s_node(g, "se.relu", FL_OP_RELU, "e1", NULL, NULL, "e2", NULL);
    s_node(g, "se.fc2", FL_OP_CONV, "e2", "se2.w", "se2.b", "e3", NULL);
    s_node(g, "se.gate", FL_OP_HARDSIGMOID, "e3", NULL, NULL, "e4", &hs);
    s_node(g, "se.scale", FL_OP_MUL, "d", "e4", NULL, "m", NULL);
    s_node(g, "pool", FL_OP_GLOBALAVGPOOL, "m", NULL, NULL, "p", NULL);
    s_node(g, "flat", FL_OP_FLATTEN, "p", NULL, NULL, "f", NULL);
    s_node(g, "fc", FL_OP_MATMUL, "f", "fc.w", NULL, "logits", NULL);
    cr_assert_eq(fl_graph_set_output(g, "logits"), 0);
    cr_assert_eq(fl_graph_plan(g, max_batch, true), 0, "%s", fl_error_msg());
    return g;
}

Test(fl_graph, squeeze_excitation_block_gradients_end_to_end)
{
    fl_graph_t *g = s_se(NULL, 2);
    struct fl_rng r;
    fl_rng_seed(&r, 112);
    float x[2 * 75];
    s_fill(x, 150, &r, 1);
    s_gradcheck(g, x, 75, 2, 111);
    fl_graph_destroy(&g);
}

static fl_graph_t *s_small(void)
{
    fl_graph_t *g = fl_graph_new(NULL);
    int64_t in[3] = {2, 3, 4};
    cr_assert_eq(fl_graph_add_input(g, "x", 3, in), 0);
    return g;
}

static void s_plan_fails(fl_graph_t *g, int code, const char *msg)
{
    cr_assert_eq(fl_graph_plan(g, 1, false), code, "%s", fl_error_msg());
    cr_assert(strstr(fl_error_msg(), msg), "message '%s' lacks '%s'", fl_error_msg(), msg);
}

Test(fl_graph, validation_refuses_cycles_unknown_values_and_bad_shapes)
{
    fl_graph_t *g = s_small();
    s_node(g, "r1", FL_OP_RELU, "b", NULL, NULL, "a", NULL);
    s_node(g, "r2", FL_OP_RELU, "a", NULL, NULL, "b", NULL);
    fl_graph_set_output(g, "b");
    s_plan_fails(g, FL_EINVAL, "cycle through node 'r1'");
    fl_graph_destroy(&g);

    g = s_small();
    s_node(g, "r1", FL_OP_RELU, "nope", NULL, NULL, "a", NULL);
    fl_graph_set_output(g, "a");
    s_plan_fails(g, FL_ENOTFOUND, "node 'r1' reads unknown value 'nope'");
    fl_graph_destroy(&g);

    g = s_small();
    int64_t wd[2] = {4, 7};
    struct fl_op_attrs tb = fl_op_attrs_default();
    tb.trans_b = true;
    cr_assert_eq(fl_graph_add_param(g, "w", 2, wd, NULL, false), 0);
    s_node(g, "flat", FL_OP_FLATTEN, "x", NULL, NULL, "f", NULL);
    s_node(g, "fc", FL_OP_GEMM, "f", "w", NULL, "y", &tb);
    fl_graph_set_output(g, "y");
    s_plan_fails(g, FL_EMISMATCH,
                 "node 'fc' (Gemm): weight 'w' 4x7 (transposed) does not fit "
                 "input 24");
    fl_graph_destroy(&g);

    g = s_small();
    int64_t cw[4] = {5, 3, 3, 3};
    cr_assert_eq(fl_graph_add_param(g, "w", 4, cw, NULL, false), 0);
    s_node(g, "conv", FL_OP_CONV, "x", "w", NULL, "y", NULL);
    fl_graph_set_output(g, "y");
    s_plan_fails(g, FL_EMISMATCH,
                 "node 'conv' (Conv): weight 5x3x3x3 with 1 groups does not "
                 "fit input 2x3x4");
    fl_graph_destroy(&g);

    g = s_small();
    int64_t pd = 3;
    cr_assert_eq(fl_graph_add_param(g, "p", 1, &pd, NULL, false), 0);
    s_node(g, "add", FL_OP_ADD, "x", "p", NULL, "y", NULL);
    fl_graph_set_output(g, "y");
    s_plan_fails(g, FL_EMISMATCH, "node 'add' (Add): shapes 2x3x4 and 3 do not broadcast");
    fl_graph_destroy(&g);

    g = s_small();
    s_node(g, "r1", FL_OP_RELU, "x", NULL, NULL, "a", NULL);
    fl_graph_set_output(g, "b");
    s_plan_fails(g, FL_ENOTFOUND, "output 'b' is not a value");
    fl_graph_set_output(g, "a");
    cr_assert_eq(fl_graph_plan(g, 1, false), 0, "a corrected graph plans: %s", fl_error_msg());
    cr_assert_eq(fl_graph_forward(g, (float[24]){0}, 2), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "batch of 2 (planned for 1 to 1)"));
    fl_graph_destroy(&g);

    g = s_small();
    s_node(g, "r1", FL_OP_RELU, "x", NULL, NULL, "a", NULL);
    const char *in[1] = {"x"};
    cr_assert_eq(fl_graph_add_node(g, "r2", FL_OP_RELU, in, 1, "a", NULL), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "value 'a' defined twice"));
    cr_assert_eq(fl_graph_add_node(g, "r1", FL_OP_RELU, in, 1, "b", NULL), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "node 'r1' defined twice"));
    fl_graph_destroy(&g);
}

/* One training step of g1 and g2 on the same batch gives the same loss, logits and gradients. */
static void s_same_step(fl_graph_t *g1, fl_graph_t *g2, size_t in_per, uint64_t seed)
{
    struct fl_rng r;
    fl_rng_seed(&r, seed);
    float *x = malloc(5 * in_per * sizeof *x);
    int32_t y[5] = {0, 1, 2, 1, 0};
    s_fill(x, 5 * in_per, &r, 1);
    double l1, l2;
    cr_assert_eq(fl_graph_train_step(g1, x, y, 5, &l1, NULL), 0, "%s", fl_error_msg());
    cr_assert_eq(fl_graph_train_step(g2, x, y, 5, &l2, NULL), 0, "%s", fl_error_msg());
    cr_assert_float_eq(l1, l2, 1e-6);
    const float *o1 = fl_graph_output(g1, NULL), *o2 = fl_graph_output(g2, NULL);
    for (int i = 0; i < 15; i++)
        cr_assert_float_eq(o1[i], o2[i], 1e-6);
    for (int p = 0; p < fl_graph_nparams(g1); p++) {
        const char *name = fl_graph_param_name(g1, p);
        const float *d1 = fl_graph_grad(g1, name), *d2 = fl_graph_grad(g2, name);
        size_t n;
        fl_graph_param(g1, name, &n);
        cr_assert_eq(d1 == NULL, d2 == NULL);
        for (size_t i = 0; d1 && i < n; i++)
            cr_assert_float_eq(d1[i], d2[i], 1e-5, "%s[%zu]", name, i);
    }
    const float *gx1 = fl_graph_input_grad(g1), *gx2 = fl_graph_input_grad(g2);
    for (size_t i = 0; i < 5 * in_per; i++)
        cr_assert_float_eq(gx1[i], gx2[i], 1e-6);
    free(x);
}

Test(fl_graph, pool_of_two_matches_callers_thread)
{
    fl_pool_t *pool = fl_pool_new(2);
    cr_assert_not_null(pool);
    fl_graph_t *g1 = s_residual(NULL, 5, true), *g2 = s_residual(pool, 5, true);
    s_same_step(g1, g2, 144, 120);
    fl_graph_destroy(&g1);
    fl_graph_destroy(&g2);
    g1 = s_se(NULL, 5), g2 = s_se(pool, 5);
    s_same_step(g1, g2, 75, 121);
    fl_graph_destroy(&g1);
    fl_graph_destroy(&g2);
    fl_pool_destroy(&pool);
}

/* Class 0 lights the top half of a 4x4 image, class 1 the bottom half. */
Test(fl_graph, tiny_graph_trains_on_synthetic_data)
{
    struct fl_rng r;
    fl_rng_seed(&r, 130);
    fl_graph_t *g = fl_graph_new(NULL);
    int64_t in[3] = {1, 4, 4};
    cr_assert_eq(fl_graph_add_input(g, "x", 3, in), 0);
    s_param(g, "w", true, &r, 0.5, 4, 1, 3, 3);
    s_param(g, "b", true, &r, 0.1, 4, 0, 0, 0);
    s_param(g, "fc.w", true, &r, 0.5, 2, 16, 0, 0);
    s_param(g, "fc.b", true, &r, 0.1, 2, 0, 0, 0);
    struct fl_op_attrs p1 = s_pad1(), pool = fl_op_attrs_default(), fc = fl_op_attrs_default();
    pool.kernel[0] = pool.kernel[1] = 2, pool.stride[0] = pool.stride[1] = 2;
    fc.trans_b = true;
    s_node(g, "conv", FL_OP_CONV, "x", "w", "b", "c", &p1);
    s_node(g, "sig", FL_OP_SIGMOID, "c", NULL, NULL, "h", NULL);
    s_node(g, "pool", FL_OP_MAXPOOL, "h", NULL, NULL, "p", &pool);
    s_node(g, "flat", FL_OP_FLATTEN, "p", NULL, NULL, "f", NULL);
    s_node(g, "fc", FL_OP_GEMM, "f", "fc.w", "fc.b", "logits", &fc);
    cr_assert_eq(fl_graph_set_output(g, "logits"), 0);
    cr_assert_eq(fl_graph_plan(g, 16, false), 0, "%s", fl_error_msg());
    float x[16 * 16];
    int32_t y[16];
    double first = 0, last = 0;
    for (int step = 0; step < 60; step++) {
        for (int s = 0; s < 16; s++) {
            y[s] = (int32_t)fl_rng_below(&r, 2);
            for (int i = 0; i < 16; i++)
                x[s * 16 + i] = (float)(((i / 8) == y[s]) + 0.3 * fl_rng_normal(&r));
        }
        double loss;
        cr_assert_eq(fl_graph_train_step(g, x, y, 16, &loss, NULL), 0, "%s", fl_error_msg());
        if (step == 0)
            first = loss;
        last = loss;
        for (int p = 0; p < fl_graph_nparams(g); p++) {
            const char *name = fl_graph_param_name(g, p);
            size_t n;
            float *w = fl_graph_param(g, name, &n);
            const float *d = fl_graph_grad(g, name);
            for (size_t i = 0; i < n; i++)
                w[i] -= 0.3f * d[i];
        }
    }
    cr_assert(last < 0.5 * first && last < 0.2, "loss %.4f -> %.4f", first, last);
    fl_graph_destroy(&g);
}

/* conv weight [out, kh, kw, in] (the chain engine's) -> [out, in, kh, kw] (ONNX's). */
static void s_conv_to_oihw(const struct fl_tensor *t, float *dst)
{
    int64_t o = t->shape[0], kh = t->shape[1], kw = t->shape[2], c = t->shape[3];
    for (int64_t a = 0; a < o; a++)
        for (int64_t i = 0; i < kh; i++)
            for (int64_t j = 0; j < kw; j++)
                for (int64_t k = 0; k < c; k++)
                    dst[((a * c + k) * kh + i) * kw + j] = t->data[((a * kh + i) * kw + j) * c + k];
}

static void s_add_tensor(fl_graph_t *g, const struct fl_tensor *t, bool conv, bool nhwc_cols)
{
    size_t n = fl_tensor_numel(t);
    float *v = malloc(n * sizeof *v);
    int64_t dims[4];
    memcpy(dims, t->shape, sizeof dims);
    if (conv) {
        s_conv_to_oihw(t, v);
        dims[1] = t->shape[3], dims[2] = t->shape[1], dims[3] = t->shape[2];
    } else if (nhwc_cols) {
        /* fc1 after Flatten: columns (h, w, c) in the chain engine, (c, h, w) in the graph. */
        for (int64_t o = 0; o < t->shape[0]; o++)
            for (int c = 0; c < 32; c++)
                for (int hw = 0; hw < 49; hw++)
                    v[o * 1568 + c * 49 + hw] = t->data[o * 1568 + hw * 32 + c];
    } else {
        memcpy(v, t->data, n * sizeof *v);
    }
    cr_assert_eq(fl_graph_add_param(g, t->name, t->ndim, dims, v, false), 0, "%s", fl_error_msg());
    free(v);
}

Test(fl_graph, cnn_small_as_a_graph_matches_the_chain_engine)
{
    struct fl_arch arch;
    cr_assert_eq(fl_arch_builtin("cnn-small", 784, 10, &arch), 0);
    fl_model_t *m = fl_model_new(&arch, 7, NULL);
    cr_assert_not_null(m);
    struct fl_rng r;
    fl_rng_seed(&r, 140);
    fl_graph_t *g = fl_graph_new(NULL);
    int64_t in[3] = {1, 28, 28};
    cr_assert_eq(fl_graph_add_input(g, "x", 3, in), 0);
    for (size_t i = 0; i < fl_model_ntensors(m, FL_SET_BASE); i++) {
        struct fl_tensor *t = fl_model_tensor(m, FL_SET_BASE, i);
        if (strncmp(t->name, "norm.", 5) == 0)
            continue;
        if (strstr(t->name, ".bias"))
            s_fill(t->data, fl_tensor_numel(t), &r, 0.1);
        s_add_tensor(g, t, strncmp(t->name, "conv", 4) == 0 && t->ndim == 4,
                     strcmp(t->name, "fc1.weight") == 0);
    }
    struct fl_op_attrs p1 = s_pad1(), pool = fl_op_attrs_default(), fc = fl_op_attrs_default();
    pool.kernel[0] = pool.kernel[1] = 2, pool.stride[0] = pool.stride[1] = 2;
    fc.trans_b = true;
    s_node(g, "conv1", FL_OP_CONV, "x", "conv1.weight", "conv1.bias", "c1", &p1);
    s_node(g, "relu1", FL_OP_RELU, "c1", NULL, NULL, "r1", NULL);
    s_node(g, "pool1", FL_OP_MAXPOOL, "r1", NULL, NULL, "p1", &pool);
    s_node(g, "conv2", FL_OP_CONV, "p1", "conv2.weight", "conv2.bias", "c2", &p1);
    s_node(g, "relu2", FL_OP_RELU, "c2", NULL, NULL, "r2", NULL);
    s_node(g, "pool2", FL_OP_MAXPOOL, "r2", NULL, NULL, "p2", &pool);
    s_node(g, "flatten", FL_OP_FLATTEN, "p2", NULL, NULL, "f", NULL);
    s_node(g, "fc1", FL_OP_GEMM, "f", "fc1.weight", "fc1.bias", "h", &fc);
    s_node(g, "relu3", FL_OP_RELU, "h", NULL, NULL, "r3", NULL);
    s_node(g, "fc2", FL_OP_GEMM, "r3", "fc2.weight", "fc2.bias", "logits", &fc);
    cr_assert_eq(fl_graph_set_output(g, "logits"), 0);
    cr_assert_eq(fl_graph_plan(g, 3, false), 0, "%s", fl_error_msg());
    float x[3 * 784], want[3 * 10];
    for (int i = 0; i < 3 * 784; i++)
        x[i] = (float)fl_rng_uniform(&r);
    cr_assert_eq(fl_model_forward(m, x, 3, want), 0, "%s", fl_error_msg());
    cr_assert_eq(fl_graph_forward(g, x, 3), 0, "%s", fl_error_msg());
    const float *got = fl_graph_output(g, NULL);
    for (int i = 0; i < 30; i++)
        cr_assert_float_eq(got[i], want[i], 1e-4 * (1 + fabsf(want[i])), "logit %d: %f vs %f", i,
                           got[i], want[i]);
    fl_graph_destroy(&g);
    fl_model_destroy(&m);
}

/* x [4,6,6] -> conv (2 groups, stride 2, asymmetric padding) -> sigmoid (smooth, for the finite
 * differences) -> flatten -> gemm [3], every weight frozen; LoRA on both when lora. */
static fl_graph_t *s_lora_net(bool lora, bool train_a)
{
    struct fl_rng r;
    fl_rng_seed(&r, 150);
    fl_graph_t *g = fl_graph_new(NULL);
    int64_t in[3] = {4, 6, 6};
    cr_assert_eq(fl_graph_add_input(g, "x", 3, in), 0);
    s_param(g, "cw", false, &r, 0.4, 6, 2, 3, 3);
    s_param(g, "cb", false, &r, 0.4, 6, 0, 0, 0);
    s_param(g, "fw", false, &r, 0.4, 3, 54, 0, 0);
    struct fl_op_attrs c = fl_op_attrs_default(), fc = fl_op_attrs_default();
    c.group = 2, c.stride[0] = c.stride[1] = 2, c.pads[0] = 1, c.pads[3] = 1;
    fc.trans_b = true;
    s_node(g, "conv", FL_OP_CONV, "x", "cw", "cb", "c", &c);
    s_node(g, "sig", FL_OP_SIGMOID, "c", NULL, NULL, "h", NULL);
    s_node(g, "flat", FL_OP_FLATTEN, "h", NULL, NULL, "f", NULL);
    s_node(g, "fc", FL_OP_GEMM, "f", "fw", NULL, "y", &fc);
    cr_assert_eq(fl_graph_set_output(g, "y"), 0);
    if (lora) {
        cr_assert_eq(fl_graph_add_lora(g, "conv", 2, 4.0f, 1, train_a), 0, "%s", fl_error_msg());
        cr_assert_eq(fl_graph_add_lora(g, "fc", 3, 3.0f, 2, train_a), 0, "%s", fl_error_msg());
    }
    cr_assert_eq(fl_graph_plan(g, 2, true), 0, "%s", fl_error_msg());
    return g;
}

Test(fl_graph, lora_on_conv_and_gemm_gradients)
{
    fl_graph_t *g = s_lora_net(true, true);
    struct fl_rng r;
    fl_rng_seed(&r, 151);
    size_t n;
    float *b = fl_graph_param(g, "conv.lora_B", &n);
    cr_assert_eq(n, 6 * 2);
    s_fill(b, n, &r, 0.5);
    b = fl_graph_param(g, "fc.lora_B", &n);
    cr_assert_eq(n, 3 * 3);
    s_fill(b, n, &r, 0.5);
    cr_assert_null(fl_graph_grad(g, "cw"));
    cr_assert_null(fl_graph_param(g, "conv.lora_W", NULL), "the merged weight is internal");
    float x[2 * 144];
    s_fill(x, 288, &r, 1);
    s_gradcheck(g, x, 144, 2, 152);
    cr_assert_not_null(fl_graph_grad(g, "conv.lora_A"));
    fl_graph_destroy(&g);

    g = s_lora_net(true, false);
    cr_assert_null(fl_graph_grad(g, "fc.lora_A"), "A frozen (FFA-LoRA)");
    cr_assert_not_null(fl_graph_grad(g, "fc.lora_B"));
    fl_graph_destroy(&g);
}

/* With B = 0 a LoRA changes nothing; with B set, the graph computes with W + (alpha/r) B A. */
Test(fl_graph, lora_starts_neutral_and_merges)
{
    fl_graph_t *plain = s_lora_net(false, true), *g = s_lora_net(true, true);
    struct fl_rng r;
    fl_rng_seed(&r, 160);
    float x[2 * 144];
    s_fill(x, 288, &r, 1);
    cr_assert_eq(fl_graph_forward(plain, x, 2), 0);
    cr_assert_eq(fl_graph_forward(g, x, 2), 0);
    for (int i = 0; i < 6; i++)
        cr_assert_float_eq(fl_graph_output(g, NULL)[i], fl_graph_output(plain, NULL)[i], 1e-6);
    const char *node[2] = {"conv", "fc"}, *w[2] = {"cw", "fw"};
    const int rank[2] = {2, 3};
    const float alpha[2] = {4.0f, 3.0f};
    for (int k = 0; k < 2; k++) {
        char an[64], bn[64];
        snprintf(an, sizeof an, "%s.lora_A", node[k]);
        snprintf(bn, sizeof bn, "%s.lora_B", node[k]);
        size_t nb, nw;
        float *b = fl_graph_param(g, bn, &nb), *wp = fl_graph_param(plain, w[k], &nw);
        const float *a = fl_graph_param(g, an, NULL);
        s_fill(b, nb, &r, 0.5);
        size_t rows = nb / (size_t)rank[k], cols = nw / rows;
        for (size_t i = 0; i < rows; i++)
            for (size_t j = 0; j < cols; j++)
                for (int q = 0; q < rank[k]; q++)
                    wp[i * cols + j] += alpha[k] / (float)rank[k] * b[i * (size_t)rank[k] + q] *
                                        a[(size_t)q * cols + j];
    }
    cr_assert_eq(fl_graph_forward(plain, x, 2), 0);
    cr_assert_eq(fl_graph_forward(g, x, 2), 0);
    for (int i = 0; i < 6; i++)
        cr_assert_float_eq(fl_graph_output(g, NULL)[i], fl_graph_output(plain, NULL)[i], 1e-4);
    fl_graph_destroy(&plain);
    fl_graph_destroy(&g);
}

/* BitFit: the biases alone trainable; frozen weights get no gradient buffer, biases are right. */
Test(fl_graph, bitfit_trains_only_the_biases)
{
    struct fl_rng r;
    fl_rng_seed(&r, 170);
    fl_graph_t *g = fl_graph_new(NULL);
    int64_t in[3] = {2, 5, 5};
    cr_assert_eq(fl_graph_add_input(g, "x", 3, in), 0);
    s_param(g, "w", true, &r, 0.5, 3, 2, 3, 3);
    s_param(g, "b", false, &r, 0.5, 3, 0, 0, 0);
    s_param(g, "fc.w", true, &r, 0.5, 4, 12, 0, 0);
    s_param(g, "fc.b", false, &r, 0.5, 4, 0, 0, 0);
    struct fl_op_attrs st = fl_op_attrs_default(), fc = fl_op_attrs_default();
    st.stride[0] = st.stride[1] = 2;
    fc.trans_b = true;
    s_node(g, "conv", FL_OP_CONV, "x", "w", "b", "c", &st);
    s_node(g, "act", FL_OP_HARDSWISH, "c", NULL, NULL, "h", NULL);
    s_node(g, "flat", FL_OP_FLATTEN, "h", NULL, NULL, "f", NULL);
    s_node(g, "fc", FL_OP_GEMM, "f", "fc.w", "fc.b", "y", &fc);
    cr_assert_eq(fl_graph_set_output(g, "y"), 0);
    const char *weights[2] = {"w", "fc.w"}, *biases[2] = {"b", "fc.b"};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(fl_graph_set_trainable(g, weights[i], false), 0);
        cr_assert_eq(fl_graph_set_trainable(g, biases[i], true), 0);
    }
    cr_assert_eq(fl_graph_set_trainable(g, "nope", true), FL_ENOTFOUND);
    cr_assert_eq(fl_graph_plan(g, 2, true), 0, "%s", fl_error_msg());
    cr_assert_eq(fl_graph_set_trainable(g, "w", true), FL_EINVAL);
    cr_assert_null(fl_graph_grad(g, "w"));
    cr_assert_null(fl_graph_grad(g, "fc.w"));
    float x[100];
    s_fill(x, 100, &r, 1);
    s_gradcheck(g, x, 50, 2, 171);
    cr_assert_not_null(fl_graph_grad(g, "b"));
    fl_graph_destroy(&g);
}

Test(fl_graph, building_errors_name_the_problem)
{
    fl_graph_t *g = s_small();
    const char *two[2] = {"x", "x"};
    cr_assert_eq(fl_graph_add_node(g, "r", FL_OP_RELU, two, 2, "y", NULL), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "node 'r' (Relu) takes 1 to 1 inputs, given 2"));
    cr_assert_eq(fl_graph_add_node(g, "q", (enum fl_op)99, two, 1, "y", NULL), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "node 'q' has unknown op 99"));
    int64_t d = 3;
    cr_assert_eq(fl_graph_add_input(g, "x2", 1, &d), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "one input per graph"));

    /* BatchNorm folding needs a Conv whose output only the BatchNorm reads. */
    struct fl_rng r;
    fl_rng_seed(&r, 180);
    s_param(g, "w", false, &r, 1, 2, 2, 1, 1);
    const char *bn[4] = {"s", "b", "m", "v"};
    for (int i = 0; i < 4; i++)
        s_param(g, bn[i], false, &r, 1, 2, 0, 0, 0);
    s_node(g, "conv", FL_OP_CONV, "x", "w", NULL, "c", NULL);
    const char *in1[5] = {"x", "s", "b", "m", "v"}, *in2[5] = {"c", "s", "b", "m", "v"};
    cr_assert_eq(fl_graph_add_node(g, "bn1", FL_OP_BATCHNORM, in1, 5, "n1", NULL), 0);
    cr_assert_eq(fl_graph_add_node(g, "bn2", FL_OP_BATCHNORM, in2, 5, "n2", NULL), 0);
    s_node(g, "add", FL_OP_ADD, "n2", "c", NULL, "y", NULL);
    cr_assert_eq(fl_graph_fold_batchnorm(g, "bn1"), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "'bn1' does not follow a Conv"));
    cr_assert_eq(fl_graph_fold_batchnorm(g, "bn2"), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "the output of 'conv' is read by more than 'bn2'"));
    cr_assert_eq(fl_graph_fold_batchnorm(g, "add"), FL_ENOTFOUND);
    cr_assert_eq(fl_graph_add_lora(g, "add", 1, 1.0f, 1, true), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "LoRA on 'add' (Add): only Conv, Gemm and MatMul"));
    cr_assert_eq(fl_graph_add_lora(g, "conv", 3, 1.0f, 1, true), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "rank 3 for a 2x2 weight"));
    fl_graph_destroy(&g);
}

/* The conv of s_factored_net: input c x h x w (c 3 when 0), m outputs (5 when 0), kh x kw,
 * stride, padding. */
struct s_fcase {
    int h, w, kh, kw, stride, pads[4], c, m;
};

/* x [c,h,w] -> conv (one group) -> sigmoid -> gap -> flatten -> gemm [2]; LoRA on the conv,
 * whose frozen weight lets the kernel keep the factors apart (W x + s B (A x)) instead of
 * merging them. wdelta is added to the conv's weight. */
static fl_graph_t *s_factored_net(const struct s_fcase *fc_, fl_pool_t *pool, const float *wdelta,
                                  bool lora)
{
    struct fl_rng r;
    fl_rng_seed(&r, 180);
    fl_graph_t *g = fl_graph_new(pool);
    int ch = fc_->c ? fc_->c : 3, m = fc_->m ? fc_->m : 5;
    int64_t in[3] = {ch, fc_->h, fc_->w};
    int kw = ch * fc_->kh * fc_->kw;
    cr_assert_eq(fl_graph_add_input(g, "x", 3, in), 0);
    s_param(g, "cw", false, &r, 0.4, m, ch, fc_->kh, fc_->kw);
    s_param(g, "cb", false, &r, 0.4, m, 0, 0, 0);
    s_param(g, "fw", true, &r, 0.4, 2, m, 0, 0);
    float *w = fl_graph_param(g, "cw", NULL);
    for (int i = 0; wdelta && i < m * kw; i++)
        w[i] += wdelta[i];
    struct fl_op_attrs c = fl_op_attrs_default(), fc = fl_op_attrs_default();
    c.stride[0] = c.stride[1] = fc_->stride;
    memcpy(c.pads, fc_->pads, sizeof c.pads);
    fc.trans_b = true;
    s_node(g, "conv", FL_OP_CONV, "x", "cw", "cb", "c", &c);
    s_node(g, "sig", FL_OP_SIGMOID, "c", NULL, NULL, "h", NULL);
    s_node(g, "gap", FL_OP_GLOBALAVGPOOL, "h", NULL, NULL, "p", NULL);
    s_node(g, "flat", FL_OP_FLATTEN, "p", NULL, NULL, "f", NULL);
    s_node(g, "fc", FL_OP_GEMM, "f", "fw", NULL, "y", &fc);
    cr_assert_eq(fl_graph_set_output(g, "y"), 0);
    if (lora) {
        cr_assert_eq(fl_graph_add_lora(g, "conv", 2, 3.0f, 4, true), 0, "%s", fl_error_msg());
        float *b = fl_graph_param(g, "conv.lora_B", NULL);
        fl_rng_seed(&r, 181);
        s_fill(b, 2 * (size_t)m, &r, 0.5);
    }
    cr_assert_eq(fl_graph_plan(g, 5, true), 0, "%s", fl_error_msg());
    return g;
}

/* The factored LoRA against the same conv with W + s B A merged by hand: values, input
 * gradients, one worker against two, and finite differences. */
static void s_check_factored(const struct s_fcase *fc)
{
    fl_pool_t *pool = fl_pool_new(2);
    fl_graph_t *g = s_factored_net(fc, NULL, NULL, true),
               *g2 = s_factored_net(fc, pool, NULL, true);
    const float *a = fl_graph_param(g, "conv.lora_A", NULL);
    const float *b = fl_graph_param(g, "conv.lora_B", NULL);
    int c = fc->c ? fc->c : 3, m = fc->m ? fc->m : 5;
    int kw = c * fc->kh * fc->kw, nin = c * fc->h * fc->w;
    float delta[6 * 6 * 9];
    cr_assert_leq(m * kw, 6 * 6 * 9);
    cr_assert_leq(nin, 6 * 64);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < kw; j++)
            delta[i * kw + j] = 1.5f * (b[i * 2] * a[j] + b[i * 2 + 1] * a[kw + j]);
    fl_graph_t *plain = s_factored_net(fc, NULL, delta, false);
    struct fl_rng r;
    fl_rng_seed(&r, 182);
    float x[5 * 6 * 64], dout[10];
    s_fill(x, (size_t)5 * nin, &r, 1);
    s_fill(dout, 10, &r, 1);
    cr_assert_eq(fl_graph_forward(g, x, 5), 0);
    cr_assert_eq(fl_graph_forward(g2, x, 5), 0);
    cr_assert_eq(fl_graph_forward(plain, x, 5), 0);
    for (int i = 0; i < 10; i++) {
        cr_assert_float_eq(fl_graph_output(g, NULL)[i], fl_graph_output(plain, NULL)[i], 1e-5);
        cr_assert_float_eq(fl_graph_output(g2, NULL)[i], fl_graph_output(plain, NULL)[i], 1e-5);
    }
    cr_assert_eq(fl_graph_backward(g, dout), 0);
    cr_assert_eq(fl_graph_backward(g2, dout), 0);
    cr_assert_eq(fl_graph_backward(plain, dout), 0);
    for (int i = 0; i < 5 * nin; i++)
        cr_assert_float_eq(fl_graph_input_grad(g2)[i], fl_graph_input_grad(plain)[i], 1e-5);
    const char *pn[2] = {"conv.lora_A", "conv.lora_B"};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 2 * (k ? m : kw); i++)
            cr_assert_float_eq(fl_graph_grad(g, pn[k])[i], fl_graph_grad(g2, pn[k])[i], 1e-5,
                               "%s[%d], one worker vs two", pn[k], i);
    s_gradcheck(g, x, (size_t)nin, 3, 183);
    fl_graph_destroy(&plain);
    fl_graph_destroy(&g2);
    fl_graph_destroy(&g);
    fl_pool_destroy(&pool);
}

Test(fl_graph, lora_on_plain_conv_factored_values_and_gradients)
{
    struct s_fcase fc = {7, 6, 2, 3, 2, {1, 2, 0, 1}, 0, 0};
    struct s_fcase pointwise = {8, 8, 1, 1, 1, {0, 0, 0, 0}, 6, 4}; /* fewer outputs than inputs */
    s_check_factored(&fc);
    s_check_factored(&pointwise); /* with AVX2, its input read in place by A's product too */
}

/* A 3x3 padded conv on planes so small that some taps only ever read padding (1x1 input: the
 * centre alone; 2x2 input at stride 2: the first row and column never): those taps' columns
 * are dropped from the GEMMs, and A's gradient there stays zero. */
Test(fl_graph, lora_on_conv_with_dead_taps)
{
    struct s_fcase one = {1, 1, 3, 3, 1, {1, 1, 1, 1}, 0, 0},
                   two = {2, 2, 3, 3, 2, {1, 1, 1, 1}, 0, 0};
    s_check_factored(&one);
    s_check_factored(&two);
}
