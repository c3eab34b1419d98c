/* A residual Add (and the Relu or Clip after it) fused into the conv before it: the conv's
 * kernel adds the other operand after the bias and clamps as it writes. The same graph with an
 * Identity between the conv and the Add fuses nothing; both must give the same bits on every
 * path a conv's product takes (the AVX2 kernel storing straight into the planes, reading its
 * input in place, from a padded copy, through a tile, from the registers on small planes, by
 * tap classes, the narrow kernel, and the portable path), on one thread and on pools, and the
 * same gradients. */
#include "fl_graphcheck.h"

#include <criterion/criterion.h>

#include "fl_convk.h"
#include "fl_error.h"
#include "fl_graph.h"
#include "fl_pool.h"
#include "fl_rng.h"

#include <stdlib.h>
#include <string.h>

/* x [c, h, w] -> conv a (bias ba) -> ra; x -> conv b (bias bb) -> cb; s = ra + cb; y = act(s) (or y
 * = s). Both convs k x k, the given stride and padding on every side, m outputs. */
struct s_case {
    int c, m, h, w, k, stride, pad, batch;
    enum fl_op act;   /* FL_OP_RELU, FL_OP_CLIP or 0 */
    const char *path; /* what it is meant to exercise, for the messages */
};

/* The graph of case k; split: an Identity between conv b and the Add (nothing fuses). */
static fl_graph_t *s_graph(const struct s_case *k, bool split, bool simd, fl_pool_t *pool,
                           bool train)
{
    fl_graph_t *g = fl_graph_new(pool);
    int64_t in[3] = {k->c, k->h, k->w};
    cr_assert_eq(fl_graph_add_input(g, "x", 3, in), 0);
    struct fl_rng r;
    fl_rng_seed(&r, 61);
    s_param(g, "wa", train, &r, 0.5, k->m, k->c, k->k, k->k);
    s_param(g, "wb", train, &r, 0.5, k->m, k->c, k->k, k->k);
    s_param(g, "bb", train, &r, 0.5, k->m, 0, 0, 0);
    s_param(g, "ba", train, &r, 0.5, k->m, 0, 0, 0); /* where conv b reads only padding too */
    struct fl_op_attrs a = fl_op_attrs_default(), clip = fl_op_attrs_default();
    a.stride[0] = a.stride[1] = k->stride;
    a.pads[0] = a.pads[1] = a.pads[2] = a.pads[3] = k->pad;
    clip.min = -0.25f, clip.max = 0.5f;
    s_node(g, "conv_a", FL_OP_CONV, "x", "wa", "ba", "ra", &a);
    s_node(g, "conv_b", FL_OP_CONV, "x", "wb", "bb", split ? "cb0" : "cb", &a);
    if (split)
        s_node(g, "id", FL_OP_IDENTITY, "cb0", NULL, NULL, "cb", NULL);
    s_node(g, "add", FL_OP_ADD, "ra", "cb", NULL, "s", NULL);
    if (k->act)
        s_node(g, "act", k->act, "s", NULL, NULL, "y", k->act == FL_OP_CLIP ? &clip : NULL);
    cr_assert_eq(fl_graph_set_output(g, k->act ? "y" : "s"), 0);
    fl_graph_use_simd(g, simd);
    cr_assert_eq(fl_graph_plan(g, k->batch, train), 0, "%s", fl_error_msg());
    return g;
}

static const struct s_case s_cases[] = {
    {8, 8, 16, 16, 1, 1, 0, 2, 0, "1x1 read in place"},
    {4, 8, 4, 4, 1, 1, 0, 2, FL_OP_RELU, "1x1 stored straight into planes of 16"},
    {4, 8, 2, 2, 1, 1, 0, 8, FL_OP_CLIP, "2x2 planes stored from the registers"},
    {4, 8, 2, 4, 1, 1, 0, 4, FL_OP_RELU, "2x4 planes stored from the registers"},
    {4, 8, 2, 2, 1, 1, 0, 5, 0, "2x2 planes, the last columns through the tile"},
    {64, 8, 2, 2, 1, 1, 0, 1, FL_OP_RELU, "the narrow kernel"},
    {3, 8, 16, 16, 3, 1, 1, 2, FL_OP_RELU, "3x3 from a padded copy"},
    {4, 8, 6, 6, 3, 1, 1, 8, FL_OP_CLIP, "3x3 on 6x6 planes, gathered"},
    {8, 8, 1, 1, 1, 1, 0, 20, 0, "1x1 planes through the tile"},
    {4, 8, 4, 4, 1, 1, 1, 8, FL_OP_RELU, "1x1 padded: the border the bias alone (tap classes)"},
    {8, 8, 3, 3, 3, 1, 3, 8, FL_OP_CLIP, "3x3 padded by 3: the bias alone (tap classes)"},
    {3, 6, 8, 8, 3, 2, 1, 4, FL_OP_RELU, "3x3 stride 2 gathered"},
};
#define S_NCASES (sizeof s_cases / sizeof s_cases[0])

Test(fl_graph_fuse, residual_add_fused_gives_the_same_bits_on_every_path)
{
    fl_pool_t *pool = fl_pool_new(2);
    cr_assert_not_null(pool);
    for (size_t c = 0; c < S_NCASES; c++) {
        const struct s_case *k = &s_cases[c];
        size_t nin = (size_t)k->c * k->h * k->w * k->batch;
        float *x = malloc(nin * sizeof *x);
        struct fl_rng r;
        fl_rng_seed(&r, 62 + c);
        s_fill(x, nin, &r, 1);
        for (int simd = 0; simd < 2; simd++)
            for (int pl = 0; pl < 2; pl++) {
                fl_graph_t *ref = s_graph(k, true, simd, pl ? pool : NULL, false);
                fl_graph_t *g = s_graph(k, false, simd, pl ? pool : NULL, false);
                /* fused: the Add's sum is the conv's output, no buffer of its own */
                bool fuses = !fl_convk_wide();
                cr_assert_eq(fl_graph_value(g, "s", NULL) == fl_graph_value(g, "cb", NULL), fuses,
                             "%s: the Add %s fused", k->path, fuses ? "is not" : "is");
                cr_assert(fl_graph_value(ref, "s", NULL) != fl_graph_value(ref, "cb", NULL));
                for (int n = 1; n <= k->batch; n += k->batch > 2 ? k->batch - 1 : 1) {
                    cr_assert_eq(fl_graph_forward(ref, x, n), 0, "%s", fl_error_msg());
                    cr_assert_eq(fl_graph_forward(g, x, n), 0, "%s", fl_error_msg());
                    size_t per;
                    const float *y = fl_graph_output(g, &per), *y0 = fl_graph_output(ref, NULL);
                    cr_assert(memcmp(y, y0, per * (size_t)n * sizeof *y) == 0,
                              "%s (simd %d, pool %d, batch %d): fused output differs", k->path,
                              simd, pl, n);
                    size_t neg = 0, act = 0;
                    for (size_t i = 0; i < per * (size_t)n; i++) {
                        neg += y0[i] < 0.0f;
                        act += y0[i] == 0.0f || y0[i] == 0.5f || y0[i] == -0.25f;
                    }
                    cr_assert(k->act || neg > 0, "%s: no negative sums to tell act from none",
                              k->path);
                    cr_assert(!k->act || act > 0, "%s: the activation never clamps", k->path);
                }
                fl_graph_destroy(&g);
                fl_graph_destroy(&ref);
            }
        free(x);
    }
    fl_pool_destroy(&pool);
}

/* Training through a fused Add: the gradients of both convs' weights, both biases and the
 * input are those of the graph that fuses nothing (the Add's backward reads no data; the conv's
 * never reads its output; a fused Relu's reads the clamped sum). */
Test(fl_graph_fuse, residual_add_fused_trains_as_unfused)
{
    const size_t pick[] = {1, 6, 7};
    for (size_t pi = 0; pi < sizeof pick / sizeof pick[0]; pi++) {
        const struct s_case *k = &s_cases[pick[pi]];
        size_t nin = (size_t)k->c * k->h * k->w * k->batch;
        for (int simd = 0; simd < 2; simd++) {
            fl_graph_t *ref = s_graph(k, true, simd, NULL, true);
            fl_graph_t *g = s_graph(k, false, simd, NULL, true);
            cr_assert_eq(fl_graph_value(g, "s", NULL) == fl_graph_value(g, "cb", NULL),
                         !fl_convk_wide());
            struct fl_rng r;
            fl_rng_seed(&r, 71 + pi);
            float *x = malloc(nin * sizeof *x);
            size_t per;
            s_fill(x, nin, &r, 1);
            cr_assert_eq(fl_graph_forward(ref, x, k->batch), 0);
            fl_graph_output(ref, &per);
            float *dy = malloc(per * (size_t)k->batch * sizeof *dy);
            s_fill(dy, per * (size_t)k->batch, &r, 1);
            cr_assert_eq(fl_graph_backward(ref, dy), 0, "%s", fl_error_msg());
            cr_assert_eq(fl_graph_forward(g, x, k->batch), 0);
            cr_assert_eq(fl_graph_backward(g, dy), 0, "%s", fl_error_msg());
            const char *names[4] = {"wa", "wb", "bb", "ba"};
            for (int p = 0; p < 4; p++) {
                size_t n;
                fl_graph_param(g, names[p], &n);
                const float *d0 = fl_graph_grad(ref, names[p]), *d1 = fl_graph_grad(g, names[p]);
                double mag = 0;
                for (size_t i = 0; i < n; i++) {
                    mag += fabsf(d0[i]);
                    cr_assert_float_eq(d1[i], d0[i], 1e-5 * (1 + fabsf(d0[i])),
                                       "%s (simd %d): d%s[%zu]", k->path, simd, names[p], i);
                }
                cr_assert(mag > 0, "%s: d%s is all zeros", k->path, names[p]);
            }
            const float *gx0 = fl_graph_input_grad(ref), *gx1 = fl_graph_input_grad(g);
            for (size_t i = 0; i < nin; i++)
                cr_assert_float_eq(gx1[i], gx0[i], 1e-5 * (1 + fabsf(gx0[i])), "%s: dx[%zu]",
                                   k->path, i);
            free(dy);
            free(x);
            fl_graph_destroy(&g);
            fl_graph_destroy(&ref);
        }
    }
}

/* What must not fuse: an Add whose other operand is computed after the conv (it would be read
 * before it is written: nodes run in the order they were added, inputs first), one that
 * broadcasts, and a conv whose output two nodes read. Each graph's values are checked against
 * the sums taken apart. */
Test(fl_graph_fuse, what_must_not_fuse_stays_apart)
{
    struct fl_rng r;
    fl_rng_seed(&r, 81);
    for (int form = 0; form < 3; form++) {
        fl_graph_t *g = fl_graph_new(NULL);
        int64_t in[3] = {2, 4, 4};
        cr_assert_eq(fl_graph_add_input(g, "x", 3, in), 0);
        s_param(g, "w", false, &r, 0.5, 2, 2, 1, 1);
        s_param(g, "w2", false, &r, 0.5, 2, 2, 1, 1);
        s_param(g, "bc", false, &r, 0.5, 2, 1, 1, 0); /* per channel: broadcasts */
        s_node(g, "conv", FL_OP_CONV, "x", "w", NULL, "c", NULL);
        if (form == 0) { /* the other operand: a conv on c, after it */
            s_node(g, "conv2", FL_OP_CONV, "x", "w2", NULL, "c2", NULL);
            s_node(g, "relu", FL_OP_RELU, "c2", NULL, NULL, "h", NULL);
            s_node(g, "add", FL_OP_ADD, "c", "h", NULL, "y", NULL);
        } else if (form == 1) {
            s_node(g, "add", FL_OP_ADD, "c", "bc", NULL, "y", NULL);
        } else {
            s_node(g, "neg", FL_OP_SUB, "x", "c", NULL, "h", NULL);
            s_node(g, "add", FL_OP_ADD, "h", "c", NULL, "y", NULL);
        }
        cr_assert_eq(fl_graph_set_output(g, "y"), 0);
        cr_assert_eq(fl_graph_plan(g, 2, false), 0, "%s", fl_error_msg());
        float x[64];
        s_fill(x, 64, &r, 1);
        cr_assert_eq(fl_graph_forward(g, x, 2), 0);
        const float *c = fl_graph_value(g, "c", NULL), *y = fl_graph_output(g, NULL);
        const float *bc = fl_graph_param(g, "bc", NULL), *h = fl_graph_value(g, "h", NULL);
        cr_assert(y != c, "form %d: the Add fused", form);
        for (int i = 0; i < 64; i++) {
            float other = form == 1 ? bc[i / 16 % 2] : h[i];
            cr_assert_float_eq(y[i], c[i] + other, 1e-6, "form %d: y[%d]", form, i);
        }
        fl_graph_destroy(&g);
    }
}
