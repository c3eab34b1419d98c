/* The graph engine's ops, one by one: each forward pass against a naive reference or a known
 * answer, each backward pass against central finite differences (input and parameters). */
#include "fl_graphcheck.h"

#include <criterion/criterion.h>

#include "fl_error.h"
#include "fl_graph.h"
#include "fl_rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One convolution case: input c x h x w, m outputs, kernel kh x kw and the attributes. */
struct s_conv_case {
    int c, h, w, m, kh, kw;
    int sh, sw, pads[4], dh, dw, group;
};

/* Plain loops over NCHW: the definition of ONNX's Conv. */
static void s_conv_ref(const struct s_conv_case *k, const float *x, const float *wt, const float *b,
                       int oh, int ow, float *y)
{
    int cg = k->c / k->group, mg = k->m / k->group;
    for (int o = 0; o < k->m; o++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                double acc = b[o];
                for (int ci = 0; ci < cg; ci++)
                    for (int ki = 0; ki < k->kh; ki++)
                        for (int kj = 0; kj < k->kw; kj++) {
                            int iy = oy * k->sh - k->pads[0] + ki * k->dh;
                            int ix = ox * k->sw - k->pads[1] + kj * k->dw;
                            if (iy < 0 || iy >= k->h || ix < 0 || ix >= k->w)
                                continue;
                            int cin = (o / mg) * cg + ci;
                            acc += (double)x[(cin * k->h + iy) * k->w + ix] *
                                   wt[((o * cg + ci) * k->kh + ki) * k->kw + kj];
                        }
                y[(o * oh + oy) * ow + ox] = (float)acc;
            }
}

static void s_check_conv(const struct s_conv_case *k, uint64_t seed)
{
    struct fl_rng r;
    fl_rng_seed(&r, seed);
    fl_graph_t *g = fl_graph_new(NULL);
    int64_t in[3] = {k->c, k->h, k->w};
    cr_assert_eq(fl_graph_add_input(g, "x", 3, in), 0);
    s_param(g, "w", true, &r, 0.5, k->m, k->c / k->group, k->kh, k->kw);
    s_param(g, "b", true, &r, 0.5, k->m, 0, 0, 0);
    struct fl_op_attrs a = fl_op_attrs_default();
    a.stride[0] = k->sh, a.stride[1] = k->sw;
    memcpy(a.pads, k->pads, sizeof a.pads);
    a.dilation[0] = k->dh, a.dilation[1] = k->dw;
    a.group = k->group;
    s_node(g, "conv", FL_OP_CONV, "x", "w", "b", "y", &a);
    cr_assert_eq(fl_graph_set_output(g, "y"), 0);
    cr_assert_eq(fl_graph_plan(g, 2, true), 0, "%s", fl_error_msg());
    int64_t yd[4];
    cr_assert_eq(fl_graph_value_shape(g, "y", yd), 3);
    int oh = (k->h + k->pads[0] + k->pads[2] - k->dh * (k->kh - 1) - 1) / k->sh + 1;
    int ow = (k->w + k->pads[1] + k->pads[3] - k->dw * (k->kw - 1) - 1) / k->sw + 1;
    cr_assert(yd[0] == k->m && yd[1] == oh && yd[2] == ow);
    size_t nin = (size_t)k->c * k->h * k->w, nout = (size_t)k->m * oh * ow;
    float *x = malloc(2 * nin * sizeof *x), *ref = malloc(nout * sizeof *ref);
    s_fill(x, 2 * nin, &r, 1);
    cr_assert_eq(fl_graph_forward(g, x, 2), 0);
    const float *y = fl_graph_output(g, NULL);
    for (int s = 0; s < 2; s++) {
        s_conv_ref(k, x + s * nin, fl_graph_param(g, "w", NULL), fl_graph_param(g, "b", NULL), oh,
                   ow, ref);
        for (size_t i = 0; i < nout; i++)
            cr_assert_float_eq(y[s * nout + i], ref[i], 1e-4, "sample %d [%zu]", s, i);
    }
    s_gradcheck(g, x, nin, 2, seed + 1);
    free(ref);
    free(x);
    fl_graph_destroy(&g);
}

Test(fl_graph, conv_plain_padded_matches_reference_and_gradients)
{
    struct s_conv_case k = {3, 5, 6, 4, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 1};
    s_check_conv(&k, 1);
}

Test(fl_graph, conv_grouped_strided_asymmetric_padding)
{
    struct s_conv_case k = {4, 7, 6, 6, 3, 2, 2, 1, {0, 1, 2, 0}, 1, 1, 2};
    s_check_conv(&k, 2);
}

Test(fl_graph, conv_depthwise_strided_asymmetric_padding)
{
    struct s_conv_case k = {4, 7, 7, 4, 3, 3, 2, 2, {1, 2, 1, 0}, 1, 1, 4};
    s_check_conv(&k, 3);
}

Test(fl_graph, conv_depthwise_multiplier_dilated)
{
    struct s_conv_case k = {3, 6, 7, 6, 3, 3, 1, 1, {1, 0, 1, 2}, 1, 2, 3};
    s_check_conv(&k, 4);
}

Test(fl_graph, conv_grouped_dilated)
{
    struct s_conv_case k = {2, 7, 8, 4, 3, 3, 1, 1, {2, 2, 2, 2}, 2, 2, 2};
    s_check_conv(&k, 5);
}

Test(fl_graph, conv_pointwise_without_im2col)
{
    struct s_conv_case k = {3, 4, 5, 5, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, 1};
    s_check_conv(&k, 6);
}

/* A graph x [in...] -> op -> y with the given parameters already added by build. */
static fl_graph_t *s_unary_graph(enum fl_op op, const struct fl_op_attrs *a, int ndim,
                                 const int64_t *dims)
{
    fl_graph_t *g = fl_graph_new(NULL);
    cr_assert_eq(fl_graph_add_input(g, "x", ndim, dims), 0);
    s_node(g, "op", op, "x", NULL, NULL, "y", a);
    cr_assert_eq(fl_graph_set_output(g, "y"), 0);
    cr_assert_eq(fl_graph_plan(g, 3, true), 0, "%s", fl_error_msg());
    return g;
}

Test(fl_graph, activations_known_answers_and_gradients)
{
    const float x[6] = {-4.0f, -1.0f, -0.25f, 0.5f, 2.0f, 7.0f};
    struct fl_op_attrs relu6 = fl_op_attrs_default(), hsig = fl_op_attrs_default();
    relu6.min = 0, relu6.max = 6;
    hsig.alpha = 0.2f, hsig.beta = 0.5f;
    struct {
        enum fl_op op;
        const struct fl_op_attrs *a;
        float want[6];
    } cases[] = {
        {FL_OP_RELU, NULL, {0, 0, 0, 0.5f, 2, 7}},
        {FL_OP_CLIP, &relu6, {0, 0, 0, 0.5f, 2, 6}},
        {FL_OP_SIGMOID,
         NULL,
         {0.0179862f, 0.2689414f, 0.4378235f, 0.6224593f, 0.8807971f, 0.9990889f}},
        {FL_OP_HARDSIGMOID, &hsig, {0, 0.3f, 0.45f, 0.6f, 0.9f, 1}},
        {FL_OP_HARDSWISH,
         NULL,
         {0, -1.0f / 3, -0.25f * 2.75f / 6, 0.5f * 3.5f / 6, 2 * 5.0f / 6, 7}},
        {FL_OP_IDENTITY, NULL, {-4, -1, -0.25f, 0.5f, 2, 7}},
        {FL_OP_DROPOUT, NULL, {-4, -1, -0.25f, 0.5f, 2, 7}},
    };
    struct fl_rng r;
    fl_rng_seed(&r, 9);
    float rx[3 * 24];
    s_fill(rx, 3 * 24, &r, 2.5);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t d1 = 6, d3[3] = {2, 3, 4};
        fl_graph_t *g = s_unary_graph(cases[c].op, cases[c].a, 1, &d1);
        cr_assert_eq(fl_graph_forward(g, x, 1), 0);
        const float *y = fl_graph_output(g, NULL);
        for (int i = 0; i < 6; i++)
            cr_assert_float_eq(y[i], cases[c].want[i], 1e-5, "%s [%d]: %f", fl_op_name(cases[c].op),
                               i, y[i]);
        fl_graph_destroy(&g);
        g = s_unary_graph(cases[c].op, cases[c].a, 3, d3);
        s_gradcheck(g, rx, 24, 3, 10 + c);
        fl_graph_destroy(&g);
    }
}

Test(fl_graph, gemm_and_matmul_match_reference_and_gradients)
{
    struct fl_rng r;
    fl_rng_seed(&r, 12);
    for (int variant = 0; variant < 3; variant++) {
        fl_graph_t *g = fl_graph_new(NULL);
        int64_t in = 5;
        cr_assert_eq(fl_graph_add_input(g, "x", 1, &in), 0);
        struct fl_op_attrs a = fl_op_attrs_default();
        a.trans_b = variant == 0;
        a.alpha = variant == 1 ? 0.5f : 1.0f;
        a.beta = variant == 1 ? 2.0f : 1.0f;
        if (variant == 0)
            s_param(g, "w", true, &r, 1, 4, 5, 0, 0);
        else
            s_param(g, "w", true, &r, 1, 5, 4, 0, 0);
        s_param(g, "c", true, &r, 1, variant == 1 ? 1 : 4, 0, 0, 0);
        if (variant == 2)
            s_node(g, "mm", FL_OP_MATMUL, "x", "w", NULL, "y", NULL);
        else
            s_node(g, "fc", FL_OP_GEMM, "x", "w", "c", "y", &a);
        cr_assert_eq(fl_graph_set_output(g, "y"), 0);
        cr_assert_eq(fl_graph_plan(g, 3, true), 0, "%s", fl_error_msg());
        float x[15];
        s_fill(x, 15, &r, 1);
        cr_assert_eq(fl_graph_forward(g, x, 3), 0);
        const float *y = fl_graph_output(g, NULL), *w = fl_graph_param(g, "w", NULL);
        const float *c = fl_graph_param(g, "c", NULL);
        for (int s = 0; s < 3; s++)
            for (int o = 0; o < 4; o++) {
                double acc = 0;
                for (int i = 0; i < 5; i++)
                    acc += (double)x[s * 5 + i] * (variant == 0 ? w[o * 5 + i] : w[i * 4 + o]);
                acc *= a.alpha;
                if (variant == 0)
                    acc += c[o];
                if (variant == 1)
                    acc += 2.0 * c[0];
                cr_assert_float_eq(y[s * 4 + o], (float)acc, 1e-4, "variant %d", variant);
            }
        s_gradcheck(g, x, 5, 3, 20 + variant);
        fl_graph_destroy(&g);
    }
}
