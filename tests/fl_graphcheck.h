/* Helpers for the graph engine's tests: random parameters and the finite-difference check of
 * a planned graph's backward pass (for its input and every trainable parameter). */
#ifndef FL_GRAPHCHECK_H
#define FL_GRAPHCHECK_H

#include <criterion/criterion.h>

#include "fl_error.h"
#include "fl_graph.h"
#include "fl_rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static inline void s_fill(float *x, size_t n, struct fl_rng *r, double scale)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(fl_rng_normal(r) * scale);
}

/* A parameter of up to 4 axes (unused trailing axes 0) with normal(0, scale) values. */
static inline void s_param(fl_graph_t *g, const char *name, bool trainable, struct fl_rng *r,
                           double scale, int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
    int64_t dims[4] = {d0, d1, d2, d3};
    int nd = d3 ? 4 : d2 ? 3 : d1 ? 2 : 1;
    size_t n = (size_t)d0 * (d1 ? d1 : 1) * (d2 ? d2 : 1) * (d3 ? d3 : 1);
    float *v = malloc(n * sizeof *v);
    s_fill(v, n, r, scale);
    cr_assert_eq(fl_graph_add_param(g, name, nd, dims, v, trainable), 0, "%s", fl_error_msg());
    free(v);
}

static inline void s_node(fl_graph_t *g, const char *name, enum fl_op op, const char *in0,
                          const char *in1, const char *in2, const char *out,
                          const struct fl_op_attrs *a)
{
    const char *in[3] = {in0, in1, in2};
    int n = in2 ? 3 : in1 ? 2 : 1;
    cr_assert_eq(fl_graph_add_node(g, name, op, in, n, out, a), 0, "%s", fl_error_msg());
}

/* L = <output, r>. */
static inline double s_loss(fl_graph_t *g, const float *x, int n, const float *r)
{
    cr_assert_eq(fl_graph_forward(g, x, n), 0, "%s", fl_error_msg());
    size_t per;
    const float *y = fl_graph_output(g, &per);
    double s = 0;
    for (size_t i = 0; i < per * (size_t)n; i++)
        s += (double)y[i] * r[i];
    return s;
}

static inline void s_close(double num, double ana, const char *what, size_t i)
{
    double tol = 2e-2 * fmax(fabs(num), fabs(ana)) + 3e-3;
    cr_assert(fabs(num - ana) <= tol, "%s[%zu]: numeric %.6f vs analytic %.6f", what, i, num, ana);
}

/* Central differences of L = <output, r> against the backward pass, for every input element
 * (the graph must be planned with input_grad) and every trainable parameter. */
static inline void s_gradcheck(fl_graph_t *g, const float *x0, size_t in_per, int n, uint64_t seed)
{
    const double eps = 3e-3;
    struct fl_rng rng;
    fl_rng_seed(&rng, seed);
    size_t per, nx = in_per * (size_t)n;
    cr_assert_eq(fl_graph_forward(g, x0, n), 0, "%s", fl_error_msg());
    fl_graph_output(g, &per);
    float *r = malloc(per * (size_t)n * sizeof *r), *x = malloc(nx * sizeof *x);
    s_fill(r, per * (size_t)n, &rng, 1);
    memcpy(x, x0, nx * sizeof *x);
    cr_assert_eq(fl_graph_backward(g, r), 0, "%s", fl_error_msg());
    const float *gx = fl_graph_input_grad(g);
    cr_assert_not_null(gx);
    float *dx = malloc(nx * sizeof *dx);
    memcpy(dx, gx, nx * sizeof *dx);
    for (size_t i = 0; i < nx; i++) {
        x[i] = x0[i] + (float)eps;
        double lp = s_loss(g, x, n, r);
        x[i] = x0[i] - (float)eps;
        double lm = s_loss(g, x, n, r);
        x[i] = x0[i];
        s_close((lp - lm) / (2 * eps), dx[i], "input", i);
    }
    for (int p = 0; p < fl_graph_nparams(g); p++) {
        const char *name = fl_graph_param_name(g, p);
        const float *gp = fl_graph_grad(g, name);
        if (!gp)
            continue;
        size_t np;
        float *w = fl_graph_param(g, name, &np);
        float *dw = malloc(np * sizeof *dw);
        memcpy(dw, gp, np * sizeof *dw);
        for (size_t i = 0; i < np; i++) {
            float keep = w[i];
            w[i] = keep + (float)eps;
            double lp = s_loss(g, x, n, r);
            w[i] = keep - (float)eps;
            double lm = s_loss(g, x, n, r);
            w[i] = keep;
            s_close((lp - lm) / (2 * eps), dw[i], name, i);
        }
        free(dw);
    }
    free(dx);
    free(x);
    free(r);
}

#endif
