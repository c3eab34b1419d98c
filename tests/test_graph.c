/* The graph engine's ops, one by one: each forward pass against a naive reference or a known
 * answer, each backward pass against central finite differences (input and parameters). */
#include "fl_graphcheck.h"

#include <criterion/criterion.h>

#include "fl_error.h"
#include "fl_graph.h"
#include "fl_graphdef.h"
#include "fl_pool.h"
#include "fl_rng.h"
#include "fl_zoo.h"

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

/* Output planes above 64 positions take the row-by-row depthwise kernel, smaller ones the
 * channels-last one (the case above). */
Test(fl_graph, conv_depthwise_large_plane_rows)
{
    struct s_conv_case k = {3, 12, 11, 3, 3, 3, 1, 1, {1, 0, 2, 1}, 1, 1, 3};
    s_check_conv(&k, 9);
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

/* Taps that only ever read padding are dropped from the GEMMs (1x1 planes: the centre tap
 * alone; 2x2 at stride 2: the first row and column never land inside). */
Test(fl_graph, conv_dead_taps_match_reference_and_gradients)
{
    struct s_conv_case one = {3, 1, 1, 4, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 1};
    struct s_conv_case two = {3, 2, 2, 4, 3, 3, 2, 2, {1, 1, 1, 1}, 1, 1, 1};
    s_check_conv(&one, 10);
    s_check_conv(&two, 11);
    /* A frozen weight: the backward pass drops the dead taps too. */
    struct fl_rng r;
    fl_rng_seed(&r, 12);
    fl_graph_t *g = fl_graph_new(NULL);
    int64_t in[3] = {3, 2, 2};
    cr_assert_eq(fl_graph_add_input(g, "x", 3, in), 0);
    s_param(g, "w", false, &r, 0.5, 4, 3, 3, 3);
    s_param(g, "b", true, &r, 0.5, 4, 0, 0, 0);
    struct fl_op_attrs a = fl_op_attrs_default();
    a.stride[0] = a.stride[1] = 2;
    a.pads[0] = a.pads[1] = a.pads[2] = a.pads[3] = 1;
    s_node(g, "conv", FL_OP_CONV, "x", "w", "b", "c", &a);
    s_node(g, "sig", FL_OP_SIGMOID, "c", NULL, NULL, "y", NULL);
    cr_assert_eq(fl_graph_set_output(g, "y"), 0);
    cr_assert_eq(fl_graph_plan(g, 3, true), 0, "%s", fl_error_msg());
    float x[3 * 12];
    s_fill(x, 36, &r, 1);
    s_gradcheck(g, x, 12, 3, 13);
    fl_graph_destroy(&g);
}

Test(fl_graph, conv_pointwise_without_im2col)
{
    struct s_conv_case k = {3, 4, 5, 5, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, 1};
    s_check_conv(&k, 6);
}

/* The gradients of L = <conv(x), r> by plain loops: dw and dx accumulate over one sample. */
static void s_conv_ref_grads(const struct s_conv_case *k, const float *x, const float *wt,
                             const float *r, int oh, int ow, double *dw, double *dx)
{
    int cg = k->c / k->group, mg = k->m / k->group;
    for (int o = 0; o < k->m; o++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                for (int ci = 0; ci < cg; ci++)
                    for (int ki = 0; ki < k->kh; ki++)
                        for (int kj = 0; kj < k->kw; kj++) {
                            int iy = oy * k->sh - k->pads[0] + ki * k->dh;
                            int ix = ox * k->sw - k->pads[1] + kj * k->dw;
                            if (iy < 0 || iy >= k->h || ix < 0 || ix >= k->w)
                                continue;
                            int xi = (((o / mg) * cg + ci) * k->h + iy) * k->w + ix;
                            int wi = ((o * cg + ci) * k->kh + ki) * k->kw + kj;
                            double d = r[(o * oh + oy) * ow + ox];
                            dw[wi] += d * x[xi];
                            dx[xi] += d * wt[wi];
                        }
}

/* Planes big enough that a worker's share of the batch runs as several chunks (one sample per
 * im2col GEMM), on a pool of two: values and gradients against plain loops. */
Test(fl_graph, conv_large_chunked_matches_reference)
{
    struct s_conv_case k = {16, 30, 28, 8, 3, 3, 1, 2, {1, 1, 1, 0}, 1, 1, 1};
    const int n = 5, oh = 30, ow = 14;
    struct fl_rng r;
    fl_rng_seed(&r, 7);
    fl_pool_t *pool = fl_pool_new(2);
    fl_graph_t *g = fl_graph_new(pool);
    int64_t in[3] = {k.c, k.h, k.w};
    cr_assert_eq(fl_graph_add_input(g, "x", 3, in), 0);
    s_param(g, "w", true, &r, 0.2, k.m, k.c, k.kh, k.kw);
    s_param(g, "b", true, &r, 0.2, k.m, 0, 0, 0);
    struct fl_op_attrs a = fl_op_attrs_default();
    a.stride[1] = 2;
    memcpy(a.pads, k.pads, sizeof a.pads);
    s_node(g, "conv", FL_OP_CONV, "x", "w", "b", "y", &a);
    cr_assert_eq(fl_graph_set_output(g, "y"), 0);
    cr_assert_eq(fl_graph_plan(g, n, true), 0, "%s", fl_error_msg());
    size_t nin = (size_t)k.c * k.h * k.w, nout = (size_t)k.m * oh * ow, nw = (size_t)k.m * k.c * 9;
    float *x = malloc(n * nin * sizeof *x), *ref = malloc(nout * sizeof *ref);
    float *dy = malloc(n * nout * sizeof *dy);
    double *dw = calloc(nw, sizeof *dw), *dx = calloc(n * nin, sizeof *dx);
    s_fill(x, n * nin, &r, 1);
    s_fill(dy, n * nout, &r, 1);
    cr_assert_eq(fl_graph_forward(g, x, n), 0);
    cr_assert_eq(fl_graph_backward(g, dy), 0);
    const float *w = fl_graph_param(g, "w", NULL), *y = fl_graph_output(g, NULL);
    for (int s = 0; s < n; s++) {
        s_conv_ref(&k, x + s * nin, w, fl_graph_param(g, "b", NULL), oh, ow, ref);
        for (size_t i = 0; i < nout; i++)
            cr_assert_float_eq(y[s * nout + i], ref[i], 1e-4, "sample %d [%zu]", s, i);
        s_conv_ref_grads(&k, x + s * nin, w, dy + s * nout, oh, ow, dw, dx + s * nin);
    }
    for (size_t i = 0; i < nw; i++)
        cr_assert_float_eq(fl_graph_grad(g, "w")[i], dw[i], 1e-3 * (1 + fabs(dw[i])), "dw[%zu]", i);
    for (size_t i = 0; i < n * nin; i++)
        cr_assert_float_eq(fl_graph_input_grad(g)[i], dx[i], 1e-4, "dx[%zu]", i);
    free(dx);
    free(dw);
    free(dy);
    free(ref);
    free(x);
    fl_graph_destroy(&g);
    fl_pool_destroy(&pool);
}

/* x -> conv (-> act, Relu or Clip -0.3..0.4, fused into the conv) -> y on pool, with the conv's
 * own kernel (fl_convk) allowed or not; the same parameters for the same seed. */
static fl_graph_t *s_conv_graph(const struct s_conv_case *k, fl_pool_t *pool, bool simd,
                                enum fl_op act, uint64_t seed, int max_batch)
{
    struct fl_rng r;
    fl_rng_seed(&r, seed);
    fl_graph_t *g = fl_graph_new(pool);
    fl_graph_use_simd(g, simd);
    int64_t in[3] = {k->c, k->h, k->w};
    cr_assert_eq(fl_graph_add_input(g, "x", 3, in), 0);
    s_param(g, "w", false, &r, 0.3, k->m, k->c / k->group, k->kh, k->kw);
    s_param(g, "b", false, &r, 0.3, k->m, 0, 0, 0);
    struct fl_op_attrs a = fl_op_attrs_default(), clip = fl_op_attrs_default();
    a.stride[0] = k->sh, a.stride[1] = k->sw;
    memcpy(a.pads, k->pads, sizeof a.pads);
    a.dilation[0] = k->dh, a.dilation[1] = k->dw;
    a.group = k->group;
    clip.min = -0.3f, clip.max = 0.4f;
    s_node(g, "conv", FL_OP_CONV, "x", "w", "b", act ? "c" : "y", &a);
    if (act)
        s_node(g, "act", act, "c", NULL, NULL, "y", act == FL_OP_CLIP ? &clip : NULL);
    cr_assert_eq(fl_graph_set_output(g, "y"), 0);
    cr_assert_eq(fl_graph_plan(g, max_batch, false), 0, "%s", fl_error_msg());
    return g;
}

/* The engine's kernels and the portable path give the same values (to tol, relative) for conv
 * k with activation act and parameters from seed, at batch 1 and 3 of x (case c, for
 * messages). */
static void s_expect_fast_as_portable(const struct s_conv_case *k, const float *x, enum fl_op act,
                                      uint64_t seed, size_t c, float tol)
{
    for (int n = 1; n <= 3; n += 2) {
        fl_graph_t *fast = s_conv_graph(k, NULL, true, act, seed, 3);
        fl_graph_t *slow = s_conv_graph(k, NULL, false, act, seed, 3);
        cr_assert_eq(fl_graph_forward(fast, x, n), 0);
        cr_assert_eq(fl_graph_forward(slow, x, n), 0);
        size_t per;
        const float *yf = fl_graph_output(fast, &per), *ys = fl_graph_output(slow, NULL);
        for (size_t i = 0; i < per * (size_t)n; i++)
            cr_assert_float_eq(yf[i], ys[i], tol * (1 + fabsf(ys[i])),
                               "case %zu batch %d [%zu]: %f vs %f", c, n, i, yf[i], ys[i]);
        fl_graph_destroy(&fast);
        fl_graph_destroy(&slow);
    }
}

/* Odd shapes around the kernels' register blocks (14 rows, or 6 with AVX2) and panel (32
 * columns, across samples), strides, asymmetric padding, dilation, 1x1, dead taps, a large
 * plane, depthwise convs (channels-last and by rows, a multiplier of 2), stride 2 along long
 * rows (the pack's even floats by vectors), a 7x7 stem (small W: panel by panel), convs on
 * output rows of 16 and 32 (with AVX2 from a padded copy: padding on all sides, on some,
 * dilated, none; stride 2, split by column phase, with a 7x7 stem): the AVX-512 or AVX2 kernels
 * (where the CPU has them) against the portable path, at batch 1 and 3, with the bias and each
 * fused activation (the narrow kernel's long products: the test below). */
Test(fl_graph, conv_simd_kernel_matches_portable_path)
{
    const struct s_conv_case cases[] = {
        {5, 9, 7, 17, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 1},
        {3, 11, 10, 29, 3, 3, 2, 2, {0, 1, 2, 1}, 1, 1, 1},
        {4, 9, 9, 15, 3, 3, 1, 1, {2, 2, 2, 2}, 2, 2, 1},
        {6, 5, 7, 16, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, 1},
        {7, 1, 1, 20, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 1},
        {9, 2, 3, 14, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 1},
        {2, 30, 31, 3, 5, 5, 1, 1, {2, 2, 2, 2}, 1, 1, 1},
        {8, 9, 9, 8, 3, 3, 2, 2, {1, 1, 1, 1}, 1, 1, 8},
        {6, 12, 12, 6, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 6},
        {20, 7, 6, 40, 3, 3, 1, 1, {1, 0, 1, 2}, 1, 1, 20},
        {3, 40, 37, 10, 3, 3, 2, 2, {1, 1, 1, 1}, 1, 1, 1},
        {3, 30, 30, 16, 7, 7, 2, 2, {3, 3, 3, 3}, 1, 1, 1},
        {5, 6, 16, 9, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 1},
        {3, 9, 32, 7, 5, 5, 1, 1, {2, 1, 0, 3}, 1, 1, 1},
        {4, 10, 16, 6, 3, 3, 1, 1, {2, 2, 2, 2}, 2, 2, 1},
        {3, 8, 18, 5, 3, 3, 1, 1, {0, 0, 0, 0}, 1, 1, 1},
        {3, 33, 32, 8, 3, 3, 2, 2, {1, 1, 1, 1}, 1, 1, 1},
        {3, 32, 32, 16, 7, 7, 2, 2, {3, 3, 3, 3}, 1, 1, 1},
        {2, 20, 33, 5, 3, 3, 2, 2, {0, 1, 1, 0}, 1, 1, 1},
    };
    const enum fl_op acts[3] = {0, FL_OP_RELU, FL_OP_CLIP};
    struct fl_rng r;
    fl_rng_seed(&r, 31);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const struct s_conv_case *k = &cases[c];
        size_t nin = (size_t)k->c * k->h * k->w;
        float *x = malloc(3 * nin * sizeof *x);
        s_fill(x, 3 * nin, &r, 1);
        s_expect_fast_as_portable(k, x, acts[c % 3], 40 + c, c, 1e-4f);
        free(x);
    }
}

/* 3x3 depthwise convs at stride 1 and 2 on output rows of 9 and more take their own kernel
 * (padded rows copied per plane, split by column parity at stride 2): rows that are and are not
 * whole vectors, asymmetric and double padding, none, a multiplier of 2, each fused activation,
 * against the portable path at batch 1 and 3; shared among 2 and 3 workers by output channels,
 * the same bits as one thread (rows of 4 and of 8 to 32 outputs, from rows as long or at stride
 * 2 twice as long, in registers: a multiplier of 2, no top padding, none at the right, rows of
 * 4 from tall planes with two rows of padding at the top or bottom; small
 * planes channels-last too: the last four; 2x2 planes take matrices from batch 4 on: the test
 * below, which also checks channels-last against plain loops, the portable path sharing its
 * code). */
Test(fl_graph, depthwise_3x3_kernel_matches_portable_path_and_splits)
{
    const struct s_conv_case cases[] = {
        {8, 16, 16, 8, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 8},
        {6, 32, 33, 6, 3, 3, 2, 2, {1, 1, 1, 1}, 1, 1, 6},
        {5, 19, 23, 5, 3, 3, 1, 1, {0, 2, 1, 0}, 1, 1, 5},
        {4, 20, 18, 8, 3, 3, 2, 2, {2, 0, 0, 1}, 1, 1, 4},
        {3, 12, 40, 3, 3, 3, 2, 2, {0, 0, 0, 0}, 1, 1, 3},
        {2, 9, 9, 2, 3, 3, 1, 1, {2, 2, 2, 2}, 1, 1, 2},
        {64, 16, 16, 64, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 64},
        {32, 24, 24, 64, 3, 3, 2, 2, {1, 1, 1, 1}, 1, 1, 32},
        {96, 8, 8, 96, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 96},
        {6, 8, 8, 12, 3, 3, 1, 1, {0, 1, 1, 1}, 1, 1, 6},
        {80, 16, 16, 80, 3, 3, 2, 2, {1, 1, 1, 1}, 1, 1, 80},
        {7, 16, 16, 7, 3, 3, 2, 2, {1, 1, 0, 0}, 1, 1, 7},
        {40, 32, 32, 40, 3, 3, 2, 2, {1, 1, 1, 1}, 1, 1, 40},
        {5, 20, 48, 5, 3, 3, 2, 2, {1, 1, 0, 0}, 1, 1, 5},
        {3, 12, 64, 6, 3, 3, 2, 2, {0, 1, 1, 0}, 1, 1, 3},
        {4, 10, 24, 4, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 4},
        {3, 6, 32, 6, 3, 3, 1, 1, {0, 1, 1, 1}, 1, 1, 3},
        {5, 5, 4, 10, 3, 3, 1, 1, {0, 1, 1, 1}, 1, 1, 5},
        {6, 20, 4, 6, 3, 3, 1, 1, {2, 1, 2, 1}, 1, 1, 6},
        {4, 24, 4, 8, 3, 3, 1, 1, {0, 1, 2, 1}, 1, 1, 4},
        {576, 4, 4, 576, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 576},
        {960, 3, 3, 960, 3, 3, 2, 2, {1, 0, 1, 1}, 1, 1, 960},
        {961, 2, 2, 961, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 961},
        {13, 2, 2, 13, 3, 3, 1, 1, {2, 2, 2, 2}, 2, 2, 13},
    };
    const enum fl_op acts[3] = {0, FL_OP_RELU, FL_OP_CLIP};
    fl_pool_t *pools[2] = {fl_pool_new(2), fl_pool_new(3)};
    struct fl_rng r;
    fl_rng_seed(&r, 35);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const struct s_conv_case *k = &cases[c];
        size_t nin = (size_t)k->c * k->h * k->w;
        float *x = malloc(3 * nin * sizeof *x);
        s_fill(x, 3 * nin, &r, 1);
        enum fl_op act = acts[c % 3];
        s_expect_fast_as_portable(k, x, act, 60 + c, c, 1e-5f);
        fl_graph_t *fast = s_conv_graph(k, NULL, true, act, 60 + c, 3);
        cr_assert_eq(fl_graph_forward(fast, x, 1), 0);
        size_t per;
        const float *y1 = fl_graph_output(fast, &per);
        for (int pi = 0; pi < 2; pi++) {
            fl_graph_t *g = s_conv_graph(k, pools[pi], true, act, 60 + c, 3);
            cr_assert_eq(fl_graph_forward(g, x, 1), 0);
            cr_assert(memcmp(fl_graph_output(g, NULL), y1, per * sizeof *y1) == 0,
                      "case %zu pool %d differs from one thread", c, pi + 2);
            fl_graph_destroy(&g);
        }
        fl_graph_destroy(&fast);
        free(x);
    }
    fl_pool_destroy(&pools[0]);
    fl_pool_destroy(&pools[1]);
}

/* Convs on small planes at batch 16, where a panel's columns span several samples: padded ones
 * by tap classes (the AVX2 kernel; the other kernels the full product), 1x1 ones packed panel by
 * panel. Plain loops' values, each sample the same bits as alone at batch 1 (where that runs
 * panels: 16 positions and more; narrow products sum in another order), and the same bits on
 * pools of 2 and 3 (8 and 6 samples a worker): 2x2, 4x4 and 8x8 planes, stride 2 with
 * asymmetric padding, dilation, padding wider than the window (positions reading nothing but
 * padding); 1x1 convs on 1x1, 2x2, 2x3, 3x3 and 4x4 planes (samples across panels' edges, lane
 * by lane and by runs; with AVX2, 4x4, 8x8 and 16x16 planes read in place); depthwise
 * convs on 2x2 planes by matrices (an odd number of channels, dilated) and channels-last (44
 * channels: blocks of 32, 8 and one by one); 3x3 convs on 4x16 and (stride 2) 5x16 planes
 * (from a padded copy with AVX2), whose first sample alone on the pools is shared by output
 * panels; each fused activation. */
Test(fl_graph, small_plane_convs_match_loops_and_single_samples)
{
    const struct s_conv_case cases[] = {
        {16, 4, 4, 20, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 1},
        {24, 2, 2, 7, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 1},
        {12, 8, 8, 9, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 1},
        {8, 7, 5, 13, 3, 3, 2, 2, {1, 0, 2, 1}, 1, 1, 1},
        {10, 5, 6, 6, 3, 3, 1, 1, {2, 2, 2, 2}, 2, 2, 1},
        {8, 2, 2, 5, 3, 3, 1, 1, {3, 3, 3, 3}, 1, 1, 1},
        {70, 1, 1, 13, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, 1},
        {33, 2, 2, 7, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, 1},
        {20, 2, 3, 9, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, 1},
        {24, 4, 4, 10, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, 1},
        {19, 3, 3, 11, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, 1},
        {20, 8, 8, 13, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, 1},
        {9, 16, 16, 7, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, 1},
        {961, 2, 2, 961, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 961},
        {13, 2, 2, 13, 3, 3, 1, 1, {2, 2, 2, 2}, 2, 2, 13},
        {44, 6, 6, 44, 3, 3, 2, 2, {1, 1, 1, 1}, 1, 1, 44},
        {16, 4, 16, 24, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 1},
        {5, 9, 32, 20, 3, 3, 2, 2, {1, 1, 1, 1}, 1, 1, 1},
    };
    const enum fl_op acts[3] = {FL_OP_RELU, FL_OP_CLIP, 0};
    enum { N = 16 };
    fl_pool_t *pools[2] = {fl_pool_new(2), fl_pool_new(3)};
    struct fl_rng r;
    fl_rng_seed(&r, 36);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const struct s_conv_case *k = &cases[c];
        enum fl_op act = acts[c % 3];
        size_t nin = (size_t)k->c * k->h * k->w, per;
        float *x = malloc(N * nin * sizeof *x);
        s_fill(x, N * nin, &r, 1);
        fl_graph_t *g = s_conv_graph(k, NULL, true, act, 70 + c, N);
        cr_assert_eq(fl_graph_forward(g, x, N), 0);
        const float *y = fl_graph_output(g, &per);
        float *yn = malloc(N * per * sizeof *yn), *ref = malloc(per * sizeof *ref);
        memcpy(yn, y, N * per * sizeof *yn);
        int oh = (k->h + k->pads[0] + k->pads[2] - k->dh * (k->kh - 1) - 1) / k->sh + 1;
        int ow = (k->w + k->pads[1] + k->pads[3] - k->dw * (k->kw - 1) - 1) / k->sw + 1;
        for (int s = 0; s < N; s++) {
            s_conv_ref(k, x + (size_t)s * nin, fl_graph_value(g, "w", NULL),
                       fl_graph_value(g, "b", NULL), oh, ow, ref);
            for (size_t i = 0; i < per; i++) {
                float v = act == FL_OP_RELU   ? fmaxf(ref[i], 0.0f)
                          : act == FL_OP_CLIP ? fminf(fmaxf(ref[i], -0.3f), 0.4f)
                                              : ref[i];
                cr_assert_float_eq(yn[(size_t)s * per + i], v, 1e-4 * (1 + fabsf(v)),
                                   "case %zu sample %d [%zu]", c, s, i);
            }
            if (oh * ow < 16)
                continue;
            cr_assert_eq(fl_graph_forward(g, x + (size_t)s * nin, 1), 0);
            cr_assert(memcmp(fl_graph_output(g, NULL), yn + (size_t)s * per, per * sizeof *yn) == 0,
                      "case %zu sample %d alone differs from batch %d", c, s, N);
        }
        for (int pi = 0; pi < 2; pi++) {
            fl_graph_t *gp = s_conv_graph(k, pools[pi], true, act, 70 + c, N);
            cr_assert_eq(fl_graph_forward(gp, x, N), 0);
            cr_assert(memcmp(fl_graph_output(gp, NULL), yn, N * per * sizeof *yn) == 0,
                      "case %zu pool %d differs from one thread", c, pi + 2);
            if (oh * ow >= 16) { /* one sample, fewer than workers: a conv's parts */
                cr_assert_eq(fl_graph_forward(gp, x, 1), 0);
                cr_assert(memcmp(fl_graph_output(gp, NULL), yn, per * sizeof *yn) == 0,
                          "case %zu pool %d alone differs", c, pi + 2);
            }
            fl_graph_destroy(&gp);
        }
        fl_graph_destroy(&g);
        free(ref);
        free(yn);
        free(x);
    }
    fl_pool_destroy(&pools[0]);
    fl_pool_destroy(&pools[1]);
}

/* An inference pass takes mobilenet_v2's first blocks (light weights, large planes) a few
 * samples at a time through all of them, then the rest node by node: the same bits as every
 * node over the whole batch, on one thread and on pools of 2 and 3, at batches of 6 and 9.
 * These graphs train nothing, so their activations share memory by lifetimes: the same bits
 * again as a graph that keeps every value (one trainable bias), whose intermediate values stay
 * readable where the others' are reused. */
Test(fl_graph, depth_first_inference_gives_the_same_bits)
{
    struct fl_graphdef def;
    struct fl_tensor *params = NULL;
    size_t np = 0, nin = 3 * 32 * 32;
    fl_graphdef_init(&def);
    cr_assert_eq(fl_zoo_build("mobilenet_v2", 3, 32, 32, 10, 7, &def, &params, &np), 0, "%s",
                 fl_error_msg());
    fl_pool_t *pools[3] = {NULL, fl_pool_new(2), fl_pool_new(3)};
    float *x = malloc(9 * nin * sizeof *x);
    struct fl_rng r;
    fl_rng_seed(&r, 37);
    s_fill(x, 9 * nin, &r, 1);
    for (int pi = 0; pi < 3; pi++)
        for (int n = 6; n <= 9; n += 3) {
            fl_graph_t *g[3]; /* whole batch, depth-first, depth-first keeping every value */
            const float *y[3];
            size_t per;
            for (int v = 0; v < 3; v++) {
                g[v] = fl_graph_from_def(&def, params, np, pools[pi]);
                cr_assert_not_null(g[v], "%s", fl_error_msg());
                fl_graph_use_depth_first(g[v], v > 0);
                if (v == 2)
                    cr_assert_eq(fl_graph_set_trainable(g[v], "classifier.1.bias", true), 0);
                cr_assert_eq(fl_graph_plan(g[v], 9, false), 0, "%s", fl_error_msg());
                cr_assert_eq(fl_graph_forward(g[v], x, n), 0, "%s", fl_error_msg());
                y[v] = fl_graph_output(g[v], &per);
            }
            cr_assert(memcmp(y[0], y[1], (size_t)n * per * sizeof *y[0]) == 0,
                      "pool %d batch %d: depth-first differs", pi + 1, n);
            cr_assert(memcmp(y[1], y[2], (size_t)n * per * sizeof *y[0]) == 0,
                      "pool %d batch %d: shared activations differ", pi + 1, n);
            cr_assert_null(fl_graph_value(g[0], "features.1.conv.1", NULL));
            cr_assert_not_null(fl_graph_value(g[2], "features.1.conv.1", NULL));
            for (int v = 0; v < 3; v++)
                fl_graph_destroy(&g[v]);
        }
    free(x);
    fl_pool_destroy(&pools[1]);
    fl_pool_destroy(&pools[2]);
    fl_zoo_free_params(params, np);
    fl_graphdef_free(&def);
}

/* y against plain loops on the graph's current parameters (Relu applied), batch n of x. */
static void s_expect_conv(fl_graph_t *g, const struct s_conv_case *k, const float *x, int n)
{
    size_t per, nin = (size_t)k->c * k->h * k->w;
    cr_assert_eq(fl_graph_forward(g, x, n), 0, "%s", fl_error_msg());
    const float *y = fl_graph_output(g, &per);
    float *ref = malloc(per * sizeof *ref);
    int oh = (k->h + k->pads[0] + k->pads[2] - k->kh) / k->sh + 1;
    int ow = (k->w + k->pads[1] + k->pads[3] - k->kw) / k->sw + 1;
    for (int s = 0; s < n; s++) {
        s_conv_ref(k, x + (size_t)s * nin, fl_graph_value(g, "w", NULL),
                   fl_graph_value(g, "b", NULL), oh, ow, ref); /* read only: no touch */
        for (size_t i = 0; i < per; i++)
            cr_assert_float_eq(y[(size_t)s * per + i], ref[i] > 0 ? ref[i] : 0,
                               1e-4 * (1 + fabsf(ref[i])), "sample %d [%zu]", s, i);
    }
    free(ref);
}

/* A frozen weight whose conv drops taps (3x3 on 1x1 and 2x2 planes) has its live columns kept
 * between forward passes; a write through fl_graph_param, or through a pointer kept from it
 * followed by fl_graph_touch, shows in the next pass, at batch 1 (narrow) and 3. */
Test(fl_graph, frozen_conv_weight_cached_columns_follow_writes)
{
    const struct s_conv_case cases[] = {
        {96, 1, 1, 20, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 1},
        {40, 2, 2, 9, 3, 3, 2, 2, {1, 1, 1, 1}, 1, 1, 1},
    };
    struct fl_rng r;
    fl_rng_seed(&r, 33);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const struct s_conv_case *k = &cases[c];
        size_t nin = (size_t)k->c * k->h * k->w, nw;
        float x[3 * 160];
        s_fill(x, 3 * nin, &r, 1);
        fl_graph_t *g = s_conv_graph(k, NULL, true, FL_OP_RELU, 60 + c, 3);
        for (int n = 1; n <= 3; n += 2) {
            s_expect_conv(g, k, x, n);
            s_expect_conv(g, k, x, n); /* from the kept columns */
            float *w = fl_graph_param(g, "w", &nw);
            for (size_t i = 0; i < nw; i++)
                w[i] = -0.5f * w[i] + 0.01f * (float)(i % 7);
            s_expect_conv(g, k, x, n);
            for (size_t i = 0; i < nw; i++) /* the pointer kept across a pass */
                w[i] = 1.5f * w[i];
            fl_graph_touch(g);
            s_expect_conv(g, k, x, n);
        }
        fl_graph_destroy(&g);
    }
}

/* A batch smaller than the pool is shared out within each conv (by output columns, or by
 * output channels when the weight dominates, with the narrow kernel or panels, with dead taps):
 * the same bits as one thread, for pools of 2 and 3 and batches of 1 and 2, and the values of
 * plain loops. */
Test(fl_graph, conv_small_batch_split_over_pool_gives_the_same_bits)
{
    const struct s_conv_case cases[] = {
        {64, 16, 16, 64, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 1},
        {128, 2, 2, 256, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 1},
        {128, 1, 1, 512, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 1},
        {32, 8, 8, 300, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 1},
    };
    fl_pool_t *pools[2] = {fl_pool_new(2), fl_pool_new(3)};
    struct fl_rng r;
    fl_rng_seed(&r, 32);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const struct s_conv_case *k = &cases[c];
        size_t nin = (size_t)k->c * k->h * k->w;
        float *x = malloc(2 * nin * sizeof *x);
        s_fill(x, 2 * nin, &r, 1);
        fl_graph_t *one = s_conv_graph(k, NULL, true, FL_OP_RELU, 50 + c, 2);
        for (int n = 1; n <= 2; n++) {
            cr_assert_eq(fl_graph_forward(one, x, n), 0);
            size_t per;
            const float *y1 = fl_graph_output(one, &per);
            float *ref = malloc(per * sizeof *ref);
            s_conv_ref(k, x + (size_t)(n - 1) * nin, fl_graph_param(one, "w", NULL),
                       fl_graph_param(one, "b", NULL), k->h, k->w, ref);
            for (size_t i = 0; i < per; i++)
                cr_assert_float_eq(y1[(size_t)(n - 1) * per + i], ref[i] > 0 ? ref[i] : 0,
                                   1e-4 * (1 + fabsf(ref[i])), "case %zu [%zu]", c, i);
            for (int pi = 0; pi < 2; pi++) {
                fl_graph_t *g = s_conv_graph(k, pools[pi], true, FL_OP_RELU, 50 + c, 2);
                cr_assert_eq(fl_graph_forward(g, x, n), 0);
                cr_assert(memcmp(fl_graph_output(g, NULL), y1, per * (size_t)n * sizeof *y1) == 0,
                          "case %zu batch %d pool %d differs from one thread", c, n, pi + 2);
                fl_graph_destroy(&g);
            }
            free(ref);
        }
        fl_graph_destroy(&one);
        free(x);
    }
    fl_pool_destroy(&pools[0]);
    fl_pool_destroy(&pools[1]);
}

/* Relu and Clip fused into the convs they alone read: the values and gradients (parameters
 * and input) of the same graph with an Identity between each conv and its activation (nothing
 * fused; each op's gradients are checked by finite differences above), on both kernels; a
 * conv whose output two nodes read keeps its raw output. */
Test(fl_graph, conv_activation_fused_values_and_gradients)
{
    struct fl_rng r;
    for (int simd = 0; simd < 2; simd++) {
        fl_rng_seed(&r, 33);
        fl_graph_t *g[2];
        for (int v = 0; v < 2; v++) {
            g[v] = fl_graph_new(NULL);
            int64_t in[3] = {3, 6, 5};
            cr_assert_eq(fl_graph_add_input(g[v], "x", 3, in), 0);
            struct fl_rng rp;
            fl_rng_seed(&rp, 34);
            s_param(g[v], "w1", true, &rp, 0.5, 4, 3, 3, 3);
            s_param(g[v], "b1", true, &rp, 0.5, 4, 0, 0, 0);
            s_param(g[v], "w2", true, &rp, 0.5, 5, 4, 3, 3);
            struct fl_op_attrs a = fl_op_attrs_default(), clip = fl_op_attrs_default();
            a.pads[0] = a.pads[1] = a.pads[2] = a.pads[3] = 1;
            clip.min = -0.3f, clip.max = 0.4f;
            bool direct = v == 0;
            s_node(g[v], "conv1", FL_OP_CONV, "x", "w1", "b1", direct ? "c1" : "c1r", &a);
            if (!direct)
                s_node(g[v], "id1", FL_OP_IDENTITY, "c1r", NULL, NULL, "c1", NULL);
            s_node(g[v], "relu", FL_OP_RELU, "c1", NULL, NULL, "h", NULL);
            s_node(g[v], "conv2", FL_OP_CONV, "h", "w2", NULL, direct ? "c2" : "c2r", &a);
            if (!direct)
                s_node(g[v], "id2", FL_OP_IDENTITY, "c2r", NULL, NULL, "c2", NULL);
            s_node(g[v], "clip", FL_OP_CLIP, "c2", NULL, NULL, "y", &clip);
            cr_assert_eq(fl_graph_set_output(g[v], "y"), 0);
            fl_graph_use_simd(g[v], simd == 1);
            cr_assert_eq(fl_graph_plan(g[v], 2, true), 0, "%s", fl_error_msg());
        }
        float x[2 * 90], dy[2 * 150];
        s_fill(x, 180, &r, 1);
        s_fill(dy, 300, &r, 1);
        for (int v = 0; v < 2; v++) {
            cr_assert_eq(fl_graph_forward(g[v], x, 2), 0);
            cr_assert_eq(fl_graph_backward(g[v], dy), 0);
        }
        const float *y0 = fl_graph_output(g[0], NULL), *y1 = fl_graph_output(g[1], NULL);
        for (int i = 0; i < 300; i++)
            cr_assert_float_eq(y0[i], y1[i], 1e-5, "y[%d]", i);
        const char *names[3] = {"w1", "b1", "w2"};
        size_t sizes[3] = {108, 4, 180};
        for (int p = 0; p < 3; p++)
            for (size_t i = 0; i < sizes[p]; i++)
                cr_assert_float_eq(fl_graph_grad(g[0], names[p])[i],
                                   fl_graph_grad(g[1], names[p])[i], 1e-4, "%s[%zu]", names[p], i);
        for (int i = 0; i < 180; i++)
            cr_assert_float_eq(fl_graph_input_grad(g[0])[i], fl_graph_input_grad(g[1])[i], 1e-4,
                               "dx[%d]", i);
        fl_graph_destroy(&g[0]);
        fl_graph_destroy(&g[1]);
    }
    /* Read twice: y = relu(c) + c needs c as the conv computed it. */
    fl_rng_seed(&r, 36);
    fl_graph_t *g = fl_graph_new(NULL);
    int64_t in[3] = {2, 4, 4};
    cr_assert_eq(fl_graph_add_input(g, "x", 3, in), 0);
    s_param(g, "w", false, &r, 0.5, 3, 2, 3, 3);
    struct fl_op_attrs a = fl_op_attrs_default();
    a.pads[0] = a.pads[1] = a.pads[2] = a.pads[3] = 1;
    s_node(g, "conv", FL_OP_CONV, "x", "w", NULL, "c", &a);
    s_node(g, "relu", FL_OP_RELU, "c", NULL, NULL, "h", NULL);
    s_node(g, "add", FL_OP_ADD, "h", "c", NULL, "y", NULL);
    cr_assert_eq(fl_graph_set_output(g, "y"), 0);
    cr_assert_eq(fl_graph_plan(g, 1, false), 0, "%s", fl_error_msg());
    float x[32];
    s_fill(x, 32, &r, 1);
    cr_assert_eq(fl_graph_forward(g, x, 1), 0);
    const float *c = fl_graph_value(g, "c", NULL), *y = fl_graph_output(g, NULL);
    int negative = 0;
    for (int i = 0; i < 48; i++) {
        negative += c[i] < 0;
        cr_assert_float_eq(y[i], (c[i] > 0 ? c[i] : 0) + c[i], 1e-6, "y[%d]", i);
    }
    cr_assert(negative > 0, "the conv's raw output has negative values");
    fl_graph_destroy(&g);
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

/* x + p (per channel), x - p, x * q (scalar), x / r (per column): C=2, H=1, W=3. */
Test(fl_graph, arithmetic_broadcasts_known_answers)
{
    const float x[6] = {1, 2, 3, 4, 5, 6}, p[2] = {10, 20}, q[1] = {3}, r[3] = {1, 2, 4};
    const float want[4][6] = {{11, 12, 13, 24, 25, 26},
                              {-9, -8, -7, -16, -15, -14},
                              {3, 6, 9, 12, 15, 18},
                              {1, 1, 0.75f, 4, 2.5f, 1.5f}};
    const enum fl_op ops[4] = {FL_OP_ADD, FL_OP_SUB, FL_OP_MUL, FL_OP_DIV};
    const char *operand[4] = {"p", "p", "q", "r"};
    for (int k = 0; k < 4; k++) {
        fl_graph_t *g = fl_graph_new(NULL);
        int64_t in[3] = {2, 1, 3}, pd[4] = {1, 2, 1, 1}, qd = 1, rd[2] = {1, 3};
        cr_assert_eq(fl_graph_add_input(g, "x", 3, in), 0);
        cr_assert_eq(fl_graph_add_param(g, "p", 4, pd, p, false), 0);
        cr_assert_eq(fl_graph_add_param(g, "q", 1, &qd, q, false), 0);
        cr_assert_eq(fl_graph_add_param(g, "r", 2, rd, r, false), 0);
        s_node(g, "op", ops[k], "x", operand[k], NULL, "y", NULL);
        cr_assert_eq(fl_graph_set_output(g, "y"), 0);
        cr_assert_eq(fl_graph_plan(g, 1, false), 0, "%s", fl_error_msg());
        int64_t yd[4];
        cr_assert_eq(fl_graph_value_shape(g, "y", yd), 3);
        cr_assert(yd[0] == 2 && yd[1] == 1 && yd[2] == 3);
        cr_assert_eq(fl_graph_forward(g, x, 1), 0);
        const float *y = fl_graph_output(g, NULL);
        for (int i = 0; i < 6; i++)
            cr_assert_float_eq(y[i], want[k][i], 1e-6, "%s [%d]", fl_op_name(ops[k]), i);
        fl_graph_destroy(&g);
    }
}

/* y = op(q, op(p, op(x, sigmoid(gap(x))))): activation against activation (per channel, as in
 * squeeze-and-excitation), a trainable per-channel parameter first, a trainable scalar. */
Test(fl_graph, arithmetic_broadcast_gradients)
{
    const enum fl_op ops[4] = {FL_OP_ADD, FL_OP_SUB, FL_OP_MUL, FL_OP_DIV};
    struct fl_rng r;
    fl_rng_seed(&r, 30);
    for (int k = 0; k < 4; k++) {
        fl_graph_t *g = fl_graph_new(NULL);
        int64_t in[3] = {2, 3, 4};
        cr_assert_eq(fl_graph_add_input(g, "x", 3, in), 0);
        s_param(g, "p", true, &r, 0.3, 2, 1, 1, 0);
        s_param(g, "q", true, &r, 0.3, 1, 0, 0, 0);
        s_node(g, "gap", FL_OP_GLOBALAVGPOOL, "x", NULL, NULL, "s", NULL);
        s_node(g, "sig", FL_OP_SIGMOID, "s", NULL, NULL, "sg", NULL);
        s_node(g, "a", ops[k], "x", "sg", NULL, "y1", NULL);
        s_node(g, "b", ops[k], "p", "y1", NULL, "y2", NULL);
        s_node(g, "c", ops[k], "y2", "q", NULL, "y3", NULL);
        cr_assert_eq(fl_graph_set_output(g, "y3"), 0);
        cr_assert_eq(fl_graph_plan(g, 2, true), 0, "%s", fl_error_msg());
        float *p = fl_graph_param(g, "p", NULL), *q = fl_graph_param(g, "q", NULL);
        p[0] += 1.5f, p[1] += 2.0f, q[0] += 1.5f; /* away from zero: they divide */
        float x[48];
        s_fill(x, 48, &r, 1);
        if (ops[k] == FL_OP_DIV) /* y1 divides p: keep it away from zero too */
            for (int i = 0; i < 48; i++)
                x[i] = x[i] >= 0 ? x[i] + 1.0f : x[i] - 1.0f;
        s_gradcheck(g, x, 24, 2, 31 + k);
        fl_graph_destroy(&g);
    }
}

Test(fl_graph, pools_known_answers)
{
    float x[16];
    for (int i = 0; i < 16; i++)
        x[i] = (float)i;
    int64_t d44[3] = {1, 4, 4}, d33[3] = {1, 3, 3};
    struct fl_op_attrs mp = fl_op_attrs_default(), ap = fl_op_attrs_default();
    mp.kernel[0] = mp.kernel[1] = 2, mp.stride[0] = mp.stride[1] = 2;
    fl_graph_t *g = s_unary_graph(FL_OP_MAXPOOL, &mp, 3, d44);
    cr_assert_eq(fl_graph_forward(g, x, 1), 0);
    const float *y = fl_graph_output(g, NULL);
    cr_assert(y[0] == 5 && y[1] == 7 && y[2] == 13 && y[3] == 15);
    fl_graph_destroy(&g);

    const float nine[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    ap.kernel[0] = ap.kernel[1] = 3;
    ap.pads[0] = ap.pads[1] = ap.pads[2] = ap.pads[3] = 1;
    for (int inc = 0; inc < 2; inc++) {
        ap.count_include_pad = inc;
        g = s_unary_graph(FL_OP_AVGPOOL, &ap, 3, d33);
        cr_assert_eq(fl_graph_forward(g, nine, 1), 0);
        y = fl_graph_output(g, NULL);
        cr_assert_float_eq(y[0], inc ? 12.0f / 9 : 3.0f, 1e-6);
        cr_assert_float_eq(y[4], 5.0f, 1e-6);
        cr_assert_float_eq(y[5], inc ? 33.0f / 9 : 33.0f / 6, 1e-6);
        fl_graph_destroy(&g);
    }
    g = s_unary_graph(FL_OP_GLOBALAVGPOOL, NULL, 3, d44);
    cr_assert_eq(fl_graph_forward(g, x, 1), 0);
    cr_assert_float_eq(fl_graph_output(g, NULL)[0], 7.5f, 1e-6);
    fl_graph_destroy(&g);
}

/* MaxPool planned without gradients takes the windows row by row and keeps no winners: the
 * same values as with them, over strides, odd planes and (asymmetric) padding. */
Test(fl_graph, maxpool_without_gradients_gives_the_same_values)
{
    const int geo[][8] = {
        /* h, w, kernel, stride, pads top, left, bottom, right */
        {9, 8, 3, 2, 1, 1, 1, 1}, {7, 7, 2, 2, 0, 0, 0, 0}, {5, 6, 3, 1, 1, 1, 1, 1},
        {6, 9, 3, 2, 0, 1, 1, 0}, {1, 1, 3, 1, 1, 1, 1, 1}, {16, 16, 3, 2, 1, 1, 1, 1},
    };
    struct fl_rng r;
    fl_rng_seed(&r, 34);
    for (size_t i = 0; i < sizeof geo / sizeof geo[0]; i++) {
        const int *q = geo[i];
        int64_t d[3] = {3, q[0], q[1]};
        struct fl_op_attrs mp = fl_op_attrs_default();
        mp.kernel[0] = mp.kernel[1] = q[2], mp.stride[0] = mp.stride[1] = q[3];
        memcpy(mp.pads, q + 4, sizeof mp.pads);
        float x[2 * 3 * 16 * 16];
        s_fill(x, (size_t)2 * 3 * q[0] * q[1], &r, 1);
        fl_graph_t *with = s_unary_graph(FL_OP_MAXPOOL, &mp, 3, d), *without = fl_graph_new(NULL);
        cr_assert_eq(fl_graph_add_input(without, "x", 3, d), 0);
        s_node(without, "op", FL_OP_MAXPOOL, "x", NULL, NULL, "y", &mp);
        cr_assert_eq(fl_graph_set_output(without, "y"), 0);
        cr_assert_eq(fl_graph_plan(without, 3, false), 0, "%s", fl_error_msg());
        cr_assert_eq(fl_graph_forward(with, x, 2), 0);
        cr_assert_eq(fl_graph_forward(without, x, 2), 0);
        size_t per;
        const float *a = fl_graph_output(with, &per), *b = fl_graph_output(without, NULL);
        cr_assert(memcmp(a, b, 2 * per * sizeof *a) == 0, "geometry %zu differs", i);
        fl_graph_destroy(&with);
        fl_graph_destroy(&without);
    }
}

Test(fl_graph, pool_gradients)
{
    struct fl_rng r;
    fl_rng_seed(&r, 40);
    float x[3 * 2 * 7 * 6];
    s_fill(x, sizeof x / sizeof x[0], &r, 1);
    int64_t d[3] = {2, 7, 6};
    struct fl_op_attrs a = fl_op_attrs_default();
    a.kernel[0] = 3, a.kernel[1] = 2, a.stride[0] = 2, a.stride[1] = 1;
    a.pads[0] = 1, a.pads[1] = 1, a.pads[2] = 0, a.pads[3] = 1;
    const enum fl_op ops[4] = {FL_OP_MAXPOOL, FL_OP_AVGPOOL, FL_OP_AVGPOOL, FL_OP_GLOBALAVGPOOL};
    for (int k = 0; k < 4; k++) {
        a.count_include_pad = k == 2;
        fl_graph_t *g = s_unary_graph(ops[k], &a, 3, d);
        s_gradcheck(g, x, 84, 3, 41 + k);
        fl_graph_destroy(&g);
    }
}

/* Concat(x, sigmoid(x)) along an axis, then Reshape and Flatten. */
static void s_check_concat(int axis, int64_t want0, int64_t want1, int64_t want2)
{
    struct fl_rng r;
    fl_rng_seed(&r, 50 + axis);
    fl_graph_t *g = fl_graph_new(NULL);
    int64_t in[3] = {2, 3, 4};
    cr_assert_eq(fl_graph_add_input(g, "x", 3, in), 0);
    struct fl_op_attrs cat = fl_op_attrs_default(), rs = fl_op_attrs_default();
    cat.axis = axis;
    rs.nshape = 3, rs.shape[0] = 0, rs.shape[1] = 6, rs.shape[2] = -1;
    s_node(g, "sig", FL_OP_SIGMOID, "x", NULL, NULL, "s", NULL);
    const char *in2[2] = {"x", "s"};
    cr_assert_eq(fl_graph_add_node(g, "cat", FL_OP_CONCAT, in2, 2, "c", &cat), 0);
    s_node(g, "rs", FL_OP_RESHAPE, "c", NULL, NULL, "r", &rs);
    s_node(g, "fl", FL_OP_FLATTEN, "r", NULL, NULL, "y", NULL);
    cr_assert_eq(fl_graph_set_output(g, "y"), 0);
    cr_assert_eq(fl_graph_plan(g, 2, true), 0, "%s", fl_error_msg());
    int64_t d[4];
    cr_assert_eq(fl_graph_value_shape(g, "c", d), 3);
    cr_assert(d[0] == want0 && d[1] == want1 && d[2] == want2, "axis %d: %lldx%lldx%lld", axis,
              (long long)d[0], (long long)d[1], (long long)d[2]);
    cr_assert_eq(fl_graph_value_shape(g, "r", d), 2);
    cr_assert(d[0] == 6 && d[1] == 8);
    float x[48];
    s_fill(x, 48, &r, 1);
    cr_assert_eq(fl_graph_forward(g, x, 2), 0);
    const float *y = fl_graph_output(g, NULL);
    for (int s = 0; s < 2; s++)
        for (int c = 0; c < want0; c++)
            for (int h = 0; h < want1; h++)
                for (int w = 0; w < want2; w++) {
                    int sc = c, sh = h, sw = w, second = 0;
                    if (axis == 1 && c >= 2)
                        sc -= 2, second = 1;
                    if (axis == 2 && h >= 3)
                        sh -= 3, second = 1;
                    if ((axis == 3 || axis == -1) && w >= 4)
                        sw -= 4, second = 1;
                    float v = x[s * 24 + (sc * 3 + sh) * 4 + sw];
                    float want = second ? 1.0f / (1.0f + expf(-v)) : v;
                    float got = y[s * 48 + (c * want1 + h) * want2 + w];
                    cr_assert_float_eq(got, want, 1e-6, "axis %d", axis);
                }
    s_gradcheck(g, x, 24, 2, 60 + axis);
    fl_graph_destroy(&g);
}

Test(fl_graph, concat_reshape_flatten_values_and_gradients)
{
    s_check_concat(1, 4, 3, 4);
    s_check_concat(2, 2, 6, 4);
    s_check_concat(3, 2, 3, 8);
    s_check_concat(-1, 2, 3, 8);
}

/* BatchNormalization x [3, 2, 2] with every statistic trainable (to check each gradient). */
Test(fl_graph, batchnorm_formula_and_gradients)
{
    struct fl_rng r;
    fl_rng_seed(&r, 70);
    fl_graph_t *g = fl_graph_new(NULL);
    int64_t in[3] = {3, 2, 2};
    cr_assert_eq(fl_graph_add_input(g, "x", 3, in), 0);
    const char *names[4] = {"scale", "bias", "mean", "var"};
    for (int i = 0; i < 4; i++)
        s_param(g, names[i], true, &r, 0.5, 3, 0, 0, 0);
    float *var = fl_graph_param(g, "var", NULL);
    for (int i = 0; i < 3; i++)
        var[i] = 0.5f + var[i] * var[i];
    const char *ins[5] = {"x", "scale", "bias", "mean", "var"};
    cr_assert_eq(fl_graph_add_node(g, "bn", FL_OP_BATCHNORM, ins, 5, "y", NULL), 0);
    cr_assert_eq(fl_graph_set_output(g, "y"), 0);
    cr_assert_eq(fl_graph_plan(g, 2, true), 0, "%s", fl_error_msg());
    float x[24];
    s_fill(x, 24, &r, 1);
    cr_assert_eq(fl_graph_forward(g, x, 2), 0);
    const float *y = fl_graph_output(g, NULL);
    const float *sc = fl_graph_param(g, "scale", NULL), *b = fl_graph_param(g, "bias", NULL);
    const float *mu = fl_graph_param(g, "mean", NULL);
    for (int i = 0; i < 24; i++) {
        int c = (i / 4) % 3;
        float want = (x[i] - mu[c]) / sqrtf(var[c] + 1e-5f) * sc[c] + b[c];
        cr_assert_float_eq(y[i], want, 1e-5);
    }
    s_gradcheck(g, x, 12, 2, 71);
    fl_graph_destroy(&g);
}

/* conv -> bn computes the same as the conv with bn folded into it. */
Test(fl_graph, batchnorm_folds_into_conv)
{
    float out[2][2 * 4 * 5 * 5];
    float x[2 * 3 * 5 * 5];
    for (int fold = 0; fold < 2; fold++) {
        struct fl_rng r;
        fl_rng_seed(&r, 80);
        fl_graph_t *g = fl_graph_new(NULL);
        int64_t in[3] = {3, 5, 5};
        cr_assert_eq(fl_graph_add_input(g, "x", 3, in), 0);
        s_param(g, "w", false, &r, 0.5, 4, 3, 3, 3);
        const char *names[4] = {"scale", "bias", "mean", "var"};
        for (int i = 0; i < 4; i++)
            s_param(g, names[i], false, &r, 0.5, 4, 0, 0, 0);
        float *var = fl_graph_param(g, "var", NULL);
        for (int i = 0; i < 4; i++)
            var[i] = 0.5f + var[i] * var[i];
        struct fl_op_attrs a = fl_op_attrs_default();
        a.pads[0] = a.pads[1] = a.pads[2] = a.pads[3] = 1;
        s_node(g, "conv", FL_OP_CONV, "x", "w", NULL, "c", &a);
        const char *ins[5] = {"c", "scale", "bias", "mean", "var"};
        cr_assert_eq(fl_graph_add_node(g, "bn", FL_OP_BATCHNORM, ins, 5, "y", NULL), 0);
        cr_assert_eq(fl_graph_set_output(g, "y"), 0);
        if (fold)
            cr_assert_eq(fl_graph_fold_batchnorm(g, "bn"), 0, "%s", fl_error_msg());
        cr_assert_eq(fl_graph_plan(g, 2, false), 0, "%s", fl_error_msg());
        s_fill(x, sizeof x / sizeof x[0], &r, 1);
        cr_assert_eq(fl_graph_forward(g, x, 2), 0);
        memcpy(out[fold], fl_graph_output(g, NULL), sizeof out[fold]);
        fl_graph_destroy(&g);
    }
    for (size_t i = 0; i < sizeof out[0] / sizeof out[0][0]; i++)
        cr_assert_float_eq(out[0][i], out[1][i], 1e-4, "[%zu]", i);
}
