/* Gradient checks for every layer and the loss: the analytic backward pass against central
 * finite differences, and the BLAS path against the naive reference. */
#include <criterion/criterion.h>

#include "fl_convk.h"
#include "fl_layers.h"
#include "fl_linalg.h"
#include "fl_rng.h"
#include "fl_tensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void s_fill(float *x, size_t n, struct fl_rng *r, double scale)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(fl_rng_normal(r) * scale);
}

static double s_dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

static void s_close(double num, double ana, const char *what, size_t i)
{
    double tol = 2e-2 * fmax(fabs(num), fabs(ana)) + 2e-3;
    cr_assert(fabs(num - ana) <= tol, "%s[%zu]: numeric %.6f vs analytic %.6f", what, i, num, ana);
}

Test(fl_linalg, gemm_matches_reference_for_every_transpose)
{
    struct fl_rng r;
    fl_rng_seed(&r, 7);
    const int m = 13, n = 7, k = 11;
    float a[13 * 11], b[11 * 7], c1[13 * 7], c2[13 * 7];
    for (int ta = 0; ta < 2; ta++) {
        for (int tb = 0; tb < 2; tb++) {
            s_fill(a, sizeof a / 4, &r, 1);
            s_fill(b, sizeof b / 4, &r, 1);
            s_fill(c1, sizeof c1 / 4, &r, 1);
            memcpy(c2, c1, sizeof c1);
            int lda = ta ? m : k, ldb = tb ? k : n;
            fl_gemm(ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 0.25f, c1, n);
            fl_gemm_ref(ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 0.25f, c2, n);
            for (int i = 0; i < m * n; i++)
                cr_assert_float_eq(c1[i], c2[i], 1e-4, "ta=%d tb=%d i=%d", ta, tb, i);
        }
    }
}

/* One column (n = 1, a matrix-vector product) inside wider matrices: strided B and C. */
Test(fl_linalg, gemm_single_column_matches_reference)
{
    struct fl_rng r;
    fl_rng_seed(&r, 8);
    const int m = 9, k = 6, ld = 4;
    float a[9 * 9], b[9 * 4], c1[9 * 4], c2[9 * 4];
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int zero = 0; zero < 2; zero++) {
                s_fill(a, sizeof a / 4, &r, 1);
                s_fill(b, sizeof b / 4, &r, 1);
                s_fill(c1, sizeof c1 / 4, &r, 1);
                if (zero)
                    c1[0] = NAN;
                memcpy(c2, c1, sizeof c1);
                int lda = ta ? m : k, ldb = tb ? k : ld;
                float beta = zero ? 0.0f : 0.25f;
                fl_gemm(ta, tb, m, 1, k, 0.5f, a, lda, b, ldb, beta, c1, ld);
                fl_gemm_ref(ta, tb, m, 1, k, 0.5f, a, lda, b, ldb, beta, c2, ld);
                for (int i = 0; i < m * ld; i++)
                    cr_assert(c1[i] == c2[i] || fabsf(c1[i] - c2[i]) < 1e-4f,
                              "ta=%d tb=%d beta0=%d i=%d: %f vs %f", ta, tb, zero, i, c1[i], c2[i]);
            }
}

/* What fl_convk must store: OpenBLAS's W B, then the bias and the activation, at column j's
 * place in the output planes (sample j / p, position j % p). */
static void s_convk_expected(const struct fl_convk_job *j, const float *b, float *y)
{
    float *c = malloc((size_t)j->m * j->ncols * sizeof *c);
    fl_gemm(false, false, j->m, j->ncols, j->k, 1.0f, j->w, j->ldw, b, j->ncols, 0.0f, c, j->ncols);
    for (int o = 0; o < j->m; o++)
        for (int col = 0; col < j->ncols; col++) {
            float v = c[(size_t)o * j->ncols + col] + (j->bias ? j->bias[o] : 0.0f);
            if (j->act == FL_CONVK_RELU)
                v = v > 0 ? v : 0;
            else if (j->act == FL_CONVK_CLIP)
                v = v < j->lo ? j->lo : v > j->hi ? j->hi : v;
            y[(size_t)(col / j->p) * j->ystride + (size_t)o * j->p + col % j->p] = v;
        }
    free(c);
}

/* fl_convk (AVX-512, or AVX2 where the CPU has no AVX-512) against OpenBLAS on odd sizes: rows
 * around the register blocks (14 rows; 6), columns around the panel and its halves and across
 * samples, k from 1 (tails of a vector and whole ones), each activation; the job cut into row and
 * panel ranges in two ways gives the same bits. On a CPU with neither there is nothing to check
 * (the engine never calls it). */
Test(fl_convk, matches_openblas_on_odd_shapes)
{
    if (!fl_convk_supported())
        cr_skip_test("no AVX-512 or AVX2 on this CPU");
    struct fl_rng r;
    fl_rng_seed(&r, 21);
    const int ms[] = {1, 5, 13, 14, 15, 29}, ks[] = {1, 7, 33, 160};
    const int ns[] = {1, 3, 4, 5, 9, 16, 17, 33, 70};
    const int ps[] = {1, 4, 9, 70};
    for (size_t a = 0; a < 6; a++)
        for (size_t b = 0; b < 4; b++)
            for (size_t c = 0; c < 9; c++)
                for (size_t d = 0; d < 4; d++) {
                    int m = ms[a], k = ks[b], n = ns[c], p = ps[d], np = (n + 31) / 32;
                    int nsamp = (n + p - 1) / p, act = (int)((a + c + d) % 3);
                    float *w = malloc((size_t)m * (k + 2) * sizeof *w);
                    float *bm = malloc((size_t)k * n * sizeof *bm), *bias = malloc(m * 4);
                    float *bp = calloc((size_t)np * 32 * k, sizeof *bp);
                    float *bt = malloc((size_t)k * n * sizeof *bt);
                    size_t ny = (size_t)nsamp * (m * p + 3);
                    float *y1 = calloc(ny, 4), *y2 = calloc(ny, 4), *y3 = calloc(ny, 4);
                    float *ye = calloc(ny, 4);
                    s_fill(w, (size_t)m * (k + 2), &r, 1);
                    s_fill(bm, (size_t)k * n, &r, 1);
                    s_fill(bias, (size_t)m, &r, 1);
                    for (int i = 0; i < k; i++)
                        for (int j = 0; j < n; j++) {
                            bp[(size_t)(j / 32) * 32 * k + (size_t)i * 32 + j % 32] = bm[i * n + j];
                            bt[(size_t)j * k + i] = bm[i * n + j];
                        }
                    struct fl_convk_job job = {.m = m,
                                               .k = k,
                                               .w = w,
                                               .ldw = k + 2,
                                               .bp = bp,
                                               .ncols = n,
                                               .y = ye,
                                               .p = p,
                                               .ystride = (size_t)m * p + 3,
                                               .bias = c % 2 ? bias : NULL,
                                               .act = (enum fl_convk_act)act,
                                               .lo = -0.5f,
                                               .hi = 0.75f};
                    /* the expected values with ldw: W's rows are k + 2 apart */
                    float *wc = malloc((size_t)m * k * sizeof *wc);
                    for (int i = 0; i < m; i++)
                        memcpy(wc + (size_t)i * k, w + (size_t)i * (k + 2), (size_t)k * 4);
                    struct fl_convk_job ref = job;
                    ref.w = wc, ref.ldw = k;
                    s_convk_expected(&ref, bm, ye);
                    job.y = y1;
                    fl_convk_run(&job, 0, m, 0, np);
                    job.y = y2;
                    fl_convk_run(&job, 0, m / 2, 0, np);
                    fl_convk_run(&job, m / 2, m, 0, np / 2);
                    fl_convk_run(&job, m / 2, m, np / 2, np);
                    job.y = y3, job.bp = bt;
                    fl_convk_run_narrow(&job, 0, m / 3);
                    fl_convk_run_narrow(&job, m / 3, m);
                    for (size_t i = 0; i < ny; i++) {
                        cr_assert_float_eq(y1[i], ye[i], 1e-4 * (1 + fabsf(ye[i])),
                                           "m=%d k=%d n=%d p=%d act=%d [%zu]", m, k, n, p, act, i);
                        cr_assert_eq(y2[i], y1[i], "split rows/panels differ at %zu", i);
                        cr_assert_float_eq(y3[i], ye[i], 1e-4 * (1 + fabsf(ye[i])),
                                           "narrow m=%d k=%d n=%d p=%d [%zu]", m, k, n, p, i);
                    }
                    free(wc);
                    free(ye);
                    free(y3);
                    free(y2);
                    free(y1);
                    free(bt);
                    free(bp);
                    free(bias);
                    free(bm);
                    free(w);
                }
}

/* fl_convk_transpose against plain loops, for shapes around its blocks (8 and 16). */
Test(fl_convk, transpose_matches_loops)
{
    if (!fl_convk_supported())
        cr_skip_test("no AVX-512 or AVX2 on this CPU");
    const size_t sizes[] = {1, 3, 8, 9, 16, 17, 33};
    for (size_t a = 0; a < 7; a++)
        for (size_t b = 0; b < 7; b++) {
            size_t rows = sizes[a], cols = sizes[b];
            float *src = malloc(rows * cols * sizeof *src), *dst = malloc(rows * cols * 4);
            for (size_t i = 0; i < rows * cols; i++)
                src[i] = (float)i;
            fl_convk_transpose(src, dst, rows, cols);
            for (size_t r = 0; r < rows; r++)
                for (size_t c = 0; c < cols; c++)
                    cr_assert_eq(dst[c * rows + r], src[r * cols + c], "%zux%zu at %zu,%zu", rows,
                                 cols, r, c);
            free(dst);
            free(src);
        }
}

Test(fl_linalg, colsum_adds_each_column)
{
    float a[6] = {1, 2, 3, 4, 5, 6}, y[3] = {1, 1, 1};
    fl_colsum(2, 3, 2.0f, a, y);
    cr_assert_float_eq(y[0], 11.0f, 1e-6);
    cr_assert_float_eq(y[1], 15.0f, 1e-6);
    cr_assert_float_eq(y[2], 19.0f, 1e-6);
}

/* Loss used by the checks: L = <conv(x), r> for a fixed random r; dL/dy = r. */
static double s_conv_loss(const struct fl_conv_geom *g, const float *x, const float *w,
                          const float *b, const float *r, float *col, float *y)
{
    fl_conv2d_forward(g, x, w, b, col, y);
    return s_dot(y, r, (size_t)g->n * g->oh * g->ow * g->out_c);
}

static void s_check_conv(int stride, int pad)
{
    struct fl_rng rng;
    fl_rng_seed(&rng, 11 + stride * 3 + pad);
    struct fl_conv_geom g = {
        .n = 2, .h = 5, .w = 6, .c = 3, .k = 3, .stride = stride, .pad = pad, .out_c = 4};
    cr_assert_eq(fl_conv_geom_init(&g), 0);
    size_t nx = (size_t)g.n * g.h * g.w * g.c, nw = (size_t)g.out_c * 9 * g.c;
    size_t ny = (size_t)g.n * g.oh * g.ow * g.out_c, ncol = (size_t)g.n * g.oh * g.ow * 9 * g.c;
    float *x = fl_falloc(nx), *w = fl_falloc(nw), *b = fl_falloc(g.out_c), *r = fl_falloc(ny);
    float *y = fl_falloc(ny), *col = fl_falloc(ncol), *dcol = fl_falloc(ncol);
    float *dx = fl_falloc(nx), *dw = fl_falloc(nw), *db = fl_falloc(g.out_c);
    s_fill(x, nx, &rng, 1);
    s_fill(w, nw, &rng, 0.5);
    s_fill(b, g.out_c, &rng, 0.5);
    s_fill(r, ny, &rng, 1);
    s_conv_loss(&g, x, w, b, r, col, y);
    fl_conv2d_backward(&g, col, w, r, dw, db, dcol, dx);
    const float eps = 1e-2f;
    struct {
        float *p, *d;
        size_t n;
        const char *name;
    } sets[] = {{x, dx, nx, "dx"}, {w, dw, nw, "dw"}, {b, db, (size_t)g.out_c, "db"}};
    for (int s = 0; s < 3; s++) {
        for (size_t i = 0; i < sets[s].n; i++) {
            float keep = sets[s].p[i];
            sets[s].p[i] = keep + eps;
            double up = s_conv_loss(&g, x, w, b, r, col, y);
            sets[s].p[i] = keep - eps;
            double down = s_conv_loss(&g, x, w, b, r, col, y);
            sets[s].p[i] = keep;
            s_close((up - down) / (2 * eps), sets[s].d[i], sets[s].name, i);
        }
    }
    free(x), free(w), free(b), free(r), free(y), free(col), free(dcol), free(dx), free(dw),
        free(db);
}

Test(fl_layers, conv2d_gradients_match_finite_differences)
{
    s_check_conv(1, 1);
    s_check_conv(2, 0);
    s_check_conv(2, 1);
}

Test(fl_layers, conv2d_matches_direct_convolution)
{
    /* One known answer: 1 channel, 3x3 all-ones kernel, pad 1, on a 3x3 image 1..9. */
    struct fl_conv_geom g = {
        .n = 1, .h = 3, .w = 3, .c = 1, .k = 3, .stride = 1, .pad = 1, .out_c = 1};
    cr_assert_eq(fl_conv_geom_init(&g), 0);
    float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w[9], b[1] = {0.5f}, col[81], y[9];
    for (int i = 0; i < 9; i++)
        w[i] = 1.0f;
    fl_conv2d_forward(&g, x, w, b, col, y);
    float want[9] = {12, 21, 16, 27, 45, 33, 24, 39, 28};
    for (int i = 0; i < 9; i++)
        cr_assert_float_eq(y[i], want[i] + 0.5f, 1e-5, "y[%d]", i);
}

Test(fl_layers, dense_gradients_match_finite_differences)
{
    struct fl_rng rng;
    fl_rng_seed(&rng, 3);
    enum { N = 3, IN = 5, OUT = 4 };
    float x[N * IN], w[OUT * IN], b[OUT], r[N * OUT], y[N * OUT];
    float dx[N * IN], dw[OUT * IN], db[OUT];
    s_fill(x, N * IN, &rng, 1);
    s_fill(w, OUT * IN, &rng, 1);
    s_fill(b, OUT, &rng, 1);
    s_fill(r, N * OUT, &rng, 1);
    fl_dense_backward(N, IN, OUT, x, w, r, dw, db, dx);
    const float eps = 1e-2f;
    float *ps[3] = {x, w, b}, *ds[3] = {dx, dw, db};
    size_t ns[3] = {N * IN, OUT * IN, OUT};
    for (int s = 0; s < 3; s++) {
        for (size_t i = 0; i < ns[s]; i++) {
            float keep = ps[s][i];
            ps[s][i] = keep + eps;
            fl_dense_forward(N, IN, OUT, x, w, b, y);
            double up = s_dot(y, r, N * OUT);
            ps[s][i] = keep - eps;
            fl_dense_forward(N, IN, OUT, x, w, b, y);
            double down = s_dot(y, r, N * OUT);
            ps[s][i] = keep;
            s_close((up - down) / (2 * eps), ds[s][i], "dense", i);
        }
    }
}

Test(fl_layers, relu_gradient_masks_negative_inputs)
{
    float x[6] = {-2, -0.5f, 0.3f, 1, 2, -1}, y[6], r[6] = {1, 2, 3, 4, 5, 6}, dx[6];
    fl_relu_forward(6, x, y);
    fl_relu_backward(6, y, r, dx);
    const float eps = 1e-3f;
    for (int i = 0; i < 6; i++) {
        float keep = x[i];
        x[i] = keep + eps;
        fl_relu_forward(6, x, y);
        double up = s_dot(y, r, 6);
        x[i] = keep - eps;
        fl_relu_forward(6, x, y);
        double down = s_dot(y, r, 6);
        x[i] = keep;
        s_close((up - down) / (2 * eps), dx[i], "relu", (size_t)i);
    }
    cr_assert_eq(dx[0], 0.0f);
    cr_assert_eq(dx[3], 4.0f);
}

Test(fl_layers, maxpool_gradients_match_finite_differences)
{
    struct fl_rng rng;
    fl_rng_seed(&rng, 5);
    struct fl_conv_geom g = {
        .n = 2, .h = 5, .w = 4, .c = 3, .k = 2, .stride = 2, .pad = 0, .out_c = 3};
    cr_assert_eq(fl_conv_geom_init(&g), 0);
    cr_assert_eq(g.oh, 2);
    cr_assert_eq(g.ow, 2);
    enum { NX = 2 * 5 * 4 * 3, NY = 2 * 2 * 2 * 3 };
    float x[NX], y[NY], r[NY], dx[NX];
    int32_t arg[NY];
    /* Distinct values so no window has a tie (a kink for finite differences). */
    for (int i = 0; i < NX; i++)
        x[i] = (float)((i * 37) % NX) * 0.1f;
    s_fill(r, NY, &rng, 1);
    fl_maxpool_forward(&g, x, y, arg);
    fl_maxpool_backward(&g, arg, r, dx);
    const float eps = 1e-3f;
    for (int i = 0; i < NX; i++) {
        float keep = x[i];
        x[i] = keep + eps;
        fl_maxpool_forward(&g, x, y, arg);
        double up = s_dot(y, r, NY);
        x[i] = keep - eps;
        fl_maxpool_forward(&g, x, y, arg);
        double down = s_dot(y, r, NY);
        x[i] = keep;
        s_close((up - down) / (2 * eps), dx[i], "maxpool", (size_t)i);
    }
}

Test(fl_layers, softmax_xent_known_value_and_gradient)
{
    float z[6] = {1, 2, 3, 0.5f, -1, 0}, dz[6];
    int32_t y[2] = {2, 0};
    int correct = 0;
    double loss = fl_softmax_xent(2, 3, z, y, dz, &correct);
    double l0 = log(exp(1) + exp(2) + exp(3)) - 3;
    double l1 = log(exp(0.5) + exp(-1) + exp(0)) - 0.5;
    cr_assert_float_eq(loss, (l0 + l1) / 2, 1e-6);
    cr_assert_eq(correct, 2);
    const float eps = 1e-3f;
    for (int i = 0; i < 6; i++) {
        float keep = z[i];
        z[i] = keep + eps;
        double up = fl_softmax_xent(2, 3, z, y, NULL, NULL);
        z[i] = keep - eps;
        double down = fl_softmax_xent(2, 3, z, y, NULL, NULL);
        z[i] = keep;
        s_close((up - down) / (2 * eps), dz[i], "xent", (size_t)i);
    }
}

Test(fl_layers, lora_gradients_match_finite_differences)
{
    struct fl_rng rng;
    fl_rng_seed(&rng, 9);
    enum { OUT = 4, IN = 6, R = 2 };
    float w[OUT * IN], a[R * IN], b[OUT * R], weff[OUT * IN], rr[OUT * IN];
    float da[R * IN], db[OUT * R];
    s_fill(w, OUT * IN, &rng, 1);
    s_fill(a, R * IN, &rng, 1);
    s_fill(b, OUT * R, &rng, 1);
    s_fill(rr, OUT * IN, &rng, 1);
    const float scale = 1.5f;
    /* L = <w_eff, rr>: dL/dw_eff = rr. */
    fl_lora_backward(OUT, IN, R, scale, a, b, rr, da, db);
    fl_lora_merge(OUT, IN, R, scale, w, a, b, weff);
    for (int i = 0; i < OUT * IN; i++) {
        double want = w[i];
        for (int k = 0; k < R; k++)
            want += scale * b[(i / IN) * R + k] * a[k * IN + i % IN];
        cr_assert_float_eq(weff[i], want, 1e-5, "merge[%d]", i);
    }
    const float eps = 1e-2f;
    float *ps[2] = {a, b}, *ds[2] = {da, db};
    size_t ns[2] = {R * IN, OUT * R};
    for (int s = 0; s < 2; s++) {
        for (size_t i = 0; i < ns[s]; i++) {
            float keep = ps[s][i];
            ps[s][i] = keep + eps;
            fl_lora_merge(OUT, IN, R, scale, w, a, b, weff);
            double up = s_dot(weff, rr, OUT * IN);
            ps[s][i] = keep - eps;
            fl_lora_merge(OUT, IN, R, scale, w, a, b, weff);
            double down = s_dot(weff, rr, OUT * IN);
            ps[s][i] = keep;
            s_close((up - down) / (2 * eps), ds[s][i], s ? "lora_B" : "lora_A", i);
        }
    }
}

Test(fl_layers, im2col_col2im_are_adjoint)
{
    /* <im2col(x), c> == <x, col2im(c)> for any x, c: col2im is im2col's transpose. */
    struct fl_rng rng;
    fl_rng_seed(&rng, 13);
    struct fl_conv_geom g = {
        .n = 2, .h = 4, .w = 5, .c = 2, .k = 3, .stride = 2, .pad = 1, .out_c = 1};
    cr_assert_eq(fl_conv_geom_init(&g), 0);
    size_t nx = (size_t)g.n * g.h * g.w * g.c, nc = (size_t)g.n * g.oh * g.ow * 9 * g.c;
    float *x = fl_falloc(nx), *c = fl_falloc(nc), *col = fl_falloc(nc), *dx = fl_falloc(nx);
    s_fill(x, nx, &rng, 1);
    s_fill(c, nc, &rng, 1);
    fl_im2col(&g, x, col);
    fl_col2im(&g, c, dx);
    cr_assert_float_eq(s_dot(col, c, nc), s_dot(x, dx, nx), 1e-3);
    free(x), free(c), free(col), free(dx);
}
