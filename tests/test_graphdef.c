/* fl_graphdef: a graph description built node by node, copied, searched, and turned into a
 * running graph whose outputs equal those of the same graph built directly; and the errors a
 * description can hold (a long name, a parameter nobody supplied). */
#include <criterion/criterion.h>

#include "fl_error.h"
#include "fl_graphdef.h"
#include "fl_rng.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* x [2,5,5] -> conv (3x3, pad 1) -> relu -> (+ x) -> gap -> flatten -> gemm [3]. */
static void s_def(struct fl_graphdef *d)
{
    fl_graphdef_init(d);
    snprintf(d->input, sizeof d->input, "x");
    d->in_ndim = 3;
    d->in_dims[0] = 2, d->in_dims[1] = 5, d->in_dims[2] = 5;
    snprintf(d->output, sizeof d->output, "logits");
    struct fl_op_attrs pad = fl_op_attrs_default(), fc = fl_op_attrs_default();
    pad.pads[0] = pad.pads[1] = pad.pads[2] = pad.pads[3] = 1;
    fc.trans_b = true;
    const char *conv[3] = {"x", "conv.weight", "conv.bias"}, *relu[1] = {"c"}, *add[2] = {"r", "x"},
               *gap[1] = {"s"}, *flat[1] = {"p"}, *gemm[3] = {"f", "fc.weight", "fc.bias"};
    cr_assert_eq(fl_graphdef_add(d, "conv", FL_OP_CONV, conv, 3, "c", &pad), 0);
    cr_assert_eq(fl_graphdef_add(d, "relu", FL_OP_RELU, relu, 1, "r", NULL), 0);
    cr_assert_eq(fl_graphdef_add(d, "add", FL_OP_ADD, add, 2, "s", NULL), 0);
    cr_assert_eq(fl_graphdef_add(d, "gap", FL_OP_GLOBALAVGPOOL, gap, 1, "p", NULL), 0);
    cr_assert_eq(fl_graphdef_add(d, "flat", FL_OP_FLATTEN, flat, 1, "f", NULL), 0);
    cr_assert_eq(fl_graphdef_add(d, "fc", FL_OP_GEMM, gemm, 3, "logits", &fc), 0);
}

static void s_params(struct fl_tensor t[4])
{
    struct fl_rng r;
    fl_rng_seed(&r, 7);
    int64_t cw[4] = {2, 2, 3, 3}, cb[1] = {2}, fw[2] = {3, 2}, fb[1] = {3};
    cr_assert_eq(fl_tensor_init(&t[0], "conv.weight", 4, cw), 0);
    cr_assert_eq(fl_tensor_init(&t[1], "conv.bias", 1, cb), 0);
    cr_assert_eq(fl_tensor_init(&t[2], "fc.weight", 2, fw), 0);
    cr_assert_eq(fl_tensor_init(&t[3], "fc.bias", 1, fb), 0);
    for (int i = 0; i < 4; i++)
        for (size_t k = 0; k < fl_tensor_numel(&t[i]); k++)
            t[i].data[k] = (float)fl_rng_normal(&r) * 0.5f;
}

Test(graphdef, add_find_copy)
{
    struct fl_graphdef d, c;
    s_def(&d);
    cr_assert_eq(d.nnodes, 6);
    cr_assert_eq(fl_graphdef_find(&d, "gap"), 3);
    cr_assert_eq(fl_graphdef_find(&d, "nope"), -1);
    cr_assert_eq(fl_graphdef_producer(&d, "s"), 2);
    cr_assert(fl_graphdef_is_param(&d, "fc.weight"));
    cr_assert_not(fl_graphdef_is_param(&d, "x"));
    cr_assert_not(fl_graphdef_is_param(&d, "r"));
    cr_assert_eq(fl_graphdef_copy(&c, &d), 0);
    fl_graphdef_free(&d);
    cr_assert_eq(c.nnodes, 6);
    cr_assert_str_eq(c.nodes[5].in[1], "fc.weight");
    cr_assert(c.nodes[5].a.trans_b);
    fl_graphdef_free(&c);
    fl_graphdef_free(&c); /* safe twice */
}

Test(graphdef, long_names_refused)
{
    struct fl_graphdef d;
    fl_graphdef_init(&d);
    char name[80];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    const char *in[1] = {"x"};
    cr_assert_eq(fl_graphdef_add(&d, name, FL_OP_RELU, in, 1, "y", NULL), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "longer than 63"), "%s", fl_error_msg());
    cr_assert_eq(fl_graphdef_add(&d, "r", FL_OP_RELU, in, 1, name, NULL), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "output name"), "%s", fl_error_msg());
    cr_assert_eq(d.nnodes, 0);
    fl_graphdef_free(&d);
}

Test(graphdef, builds_the_graph_it_describes)
{
    struct fl_graphdef d;
    struct fl_tensor t[4] = {0};
    s_def(&d);
    s_params(t);
    fl_graph_t *g = fl_graph_from_def(&d, t, 4, NULL);
    cr_assert_not_null(g, "%s", fl_error_msg());
    cr_assert_eq(fl_graph_plan(g, 2, false), 0, "%s", fl_error_msg());
    float x[2 * 50];
    for (int i = 0; i < 100; i++)
        x[i] = (float)((i * 37) % 11) / 11.0f - 0.4f;
    cr_assert_eq(fl_graph_forward(g, x, 2), 0);
    size_t per;
    const float *y = fl_graph_output(g, &per);
    cr_assert_eq(per, 3);
    /* By hand: conv 3x3 pad 1 (2->2), relu, + x, mean over 5x5, fc. */
    for (int s = 0; s < 2; s++) {
        double pooled[2] = {0, 0};
        for (int o = 0; o < 2; o++)
            for (int i = 0; i < 5; i++)
                for (int j = 0; j < 5; j++) {
                    double acc = t[1].data[o];
                    for (int c = 0; c < 2; c++)
                        for (int ki = 0; ki < 3; ki++)
                            for (int kj = 0; kj < 3; kj++) {
                                int ii = i + ki - 1, jj = j + kj - 1;
                                if (ii < 0 || jj < 0 || ii >= 5 || jj >= 5)
                                    continue;
                                acc += t[0].data[((o * 2 + c) * 3 + ki) * 3 + kj] *
                                       x[s * 50 + c * 25 + ii * 5 + jj];
                            }
                    pooled[o] += (acc > 0 ? acc : 0) + x[s * 50 + o * 25 + i * 5 + j];
                }
        for (int k = 0; k < 3; k++) {
            double want = t[3].data[k] + t[2].data[k * 2] * pooled[0] / 25 +
                          t[2].data[k * 2 + 1] * pooled[1] / 25;
            cr_assert(fabs(y[s * 3 + k] - want) < 1e-5, "sample %d logit %d: %g, want %g", s, k,
                      y[s * 3 + k], want);
        }
    }
    /* The graph copied the parameters: the tensors may go. */
    for (int i = 0; i < 4; i++)
        fl_tensor_free(&t[i]);
    cr_assert_eq(fl_graph_forward(g, x, 2), 0);
    fl_graph_destroy(&g);
    fl_graphdef_free(&d);
}

Test(graphdef, missing_parameter_named)
{
    struct fl_graphdef d;
    struct fl_tensor t[4] = {0};
    s_def(&d);
    s_params(t);
    fl_graph_t *g = fl_graph_from_def(&d, t, 3, NULL); /* fc.bias left out */
    cr_assert_null(g);
    cr_assert(strstr(fl_error_msg(), "'fc'") && strstr(fl_error_msg(), "'fc.bias'"), "%s",
              fl_error_msg());
    for (int i = 0; i < 4; i++)
        fl_tensor_free(&t[i]);
    fl_graphdef_free(&d);
}

/* A file sets a Conv's kernel through its weight's shape and its dilation and stride through
 * attributes: a kernel of 2^20 taps with a dilation of 4096 must be refused at planning, not
 * overflow the window arithmetic into reads far outside the buffers. */
Test(graphdef, an_absurd_convolution_window_is_refused)
{
    struct fl_graphdef d;
    fl_graphdef_init(&d);
    snprintf(d.input, sizeof d.input, "x");
    d.in_ndim = 3;
    d.in_dims[0] = d.in_dims[1] = d.in_dims[2] = 1;
    snprintf(d.output, sizeof d.output, "y");
    struct fl_op_attrs a = fl_op_attrs_default();
    a.dilation[1] = 4096;
    a.stride[1] = 4096;
    const char *in[2] = {"x", "w"};
    cr_assert_eq(fl_graphdef_add(&d, "conv", FL_OP_CONV, in, 2, "y", &a), 0);
    struct fl_tensor w = {0};
    int64_t shape[4] = {1, 1, 1, 1 << 20};
    cr_assert_eq(fl_tensor_init(&w, "w", 4, shape), 0);
    fl_graph_t *g = fl_graph_from_def(&d, &w, 1, NULL);
    cr_assert_not_null(g, "%s", fl_error_msg());
    cr_assert_neq(fl_graph_plan(g, 1, false), 0);
    cr_assert(strstr(fl_error_msg(), "'conv'") && strstr(fl_error_msg(), "kernel"), "%s",
              fl_error_msg());
    fl_graph_destroy(&g);
    fl_tensor_free(&w);
    fl_graphdef_free(&d);
}
