/* fl_ops_conv_pad: a kxk conv's forward pass from a padded copy of each sample's input
 * instead of packed panels. An im2col panel repeats each input float kh x kw / (sh x sw)
 * times, and a conv with few output channels (resnet18's stem and first stages: 64, 128)
 * spends a good part of its time writing and reading it: here fl_convk reads B's row (channel,
 * tap) of 16 outputs of one output row as 16 consecutive floats of the padded plane, through a
 * table of row offsets. At a stride of 2 or more, the plane's columns are split by phase
 * (column j of phase f: padded column sw * j + f), so that the 16 outputs' inputs are
 * consecutive again. The sums are the packed path's, term by term in the same order (the
 * padding's products are zeros), so the bits do not change. AVX2 kernel only; output rows of
 * whole half panels. Measured one node at a time, one thread, the median of 5 alternations of
 * best of 20 runs against the packed path: resnet18's 3x3 convs on 32x32 planes (64 channels,
 * batch 8) 1.33x faster, on 16x16 (128 channels, batch 8) 1.26x, on 16x16 (64 channels, batch
 * 32) 1.13x; its 7x7 stem at stride 2 (64x64 input) 1.40x at batch 32 and 1.47x at batch 1,
 * (32x32 input, batch 32) 2.44x; mobilenet_v2's 3x3 stem at stride 2 1.03-1.16x. */
#include "fl_ops_conv_impl.h"

#include "fl_convk.h"

#include <stdint.h>
#include <string.h>

/* The padded input's planes: rows and columns the window reads (output plus reach), the
 * columns split by phase for a stride of sw (column j of phase f: padded column sw * j + f),
 * so that each tap reads 16 consecutive outputs' inputs as 16 consecutive floats. */
struct s_geo {
    size_t rows, cols; /* of a phase's plane */
    size_t phases;     /* sw */
};

static void s_geo(const struct fl_wgeom *q, struct s_geo *e)
{
    size_t cols = (size_t)q->sw * (size_t)(q->ow - 1) + (size_t)q->dw * (size_t)(q->kw - 1) + 1;
    e->rows = (size_t)q->sh * (size_t)(q->oh - 1) + (size_t)q->dh * (size_t)(q->kh - 1) + 1;
    e->phases = (size_t)q->sw;
    e->cols = (cols + e->phases - 1) / e->phases;
}

size_t fl_cv_pad_scratch(const struct fl_wgeom *q)
{
    struct s_geo e;
    s_geo(q, &e);
    size_t k = (size_t)q->c * q->kh * q->kw; /* planes, table, alignment */
    return e.phases * (size_t)q->c * e.rows * e.cols + k + FL_CONVK_BOFF_PAD + 1;
}

bool fl_cv_pad_fits(const fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q)
{
    return g->simd && !fl_convk_wide() && !q->depthwise && q->groups == 1 && q->kh * q->kw > 1 &&
           q->ow % 16 == 0 && !fl_lora_of(g, nd) &&
           fl_cv_pad_scratch(q) <= INT32_MAX; /* the table's offsets are int32 */
}

/* xs [phase][c][rows][cols] = sample x [c][h][w] placed at (pt, pl) in the padded plane, zeros
 * around it. */
static void s_pad(const struct fl_wgeom *q, const struct s_geo *e, const float *x, float *xs)
{
    size_t plane = e->rows * e->cols;
    for (int c = 0; c < q->c; c++)
        for (size_t r = 0; r < e->rows; r++) {
            int iy = (int)r - q->pt;
            bool in = iy >= 0 && iy < q->h;
            const float *src = in ? x + ((size_t)c * q->h + (size_t)iy) * q->w : NULL;
            if (e->phases > 1) { /* phase f's column j: input column phases * j + f - pl */
                for (size_t f = 0; f < e->phases; f++) {
                    float *d = xs + (f * (size_t)q->c + (size_t)c) * plane + r * e->cols;
                    for (size_t jc = 0; jc < e->cols; jc++) {
                        long ix = (long)(jc * e->phases + f) - q->pl;
                        d[jc] = in && ix >= 0 && ix < q->w ? src[ix] : 0.0f;
                    }
                }
                continue;
            }
            float *d = xs + (size_t)c * plane + r * e->cols;
            int x0 = q->pl > 0 ? 0 : -q->pl, x1 = q->w; /* input columns that land in the row */
            if ((size_t)(x1 + q->pl) > e->cols)
                x1 = (int)e->cols - q->pl;
            if (!in || x1 <= x0) {
                memset(d, 0, e->cols * sizeof *d);
                continue;
            }
            size_t lead = (size_t)(x0 + q->pl), n = (size_t)(x1 - x0);
            memset(d, 0, lead * sizeof *d);
            memcpy(d + lead, src + x0, n * sizeof *d);
            memset(d + lead + n, 0, (e->cols - lead - n) * sizeof *d);
        }
}

void fl_cv_fwd_pad(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q, int t,
                   size_t b0, size_t b1, int part, int nparts)
{
    struct s_geo e;
    s_geo(q, &e);
    size_t p = (size_t)q->oh * q->ow, npan = (p + FL_CONVK_NR - 1) / FL_CONVK_NR;
    size_t pa = npan * (size_t)part / (size_t)nparts, pb = npan * ((size_t)part + 1) / nparts;
    if (pa == pb)
        return;
    struct fl_cv_ctx x;
    fl_cv_ctx_init(g, nd, q, t, false, 0, q->mg, &x);
    float *xs = x.work;
    int32_t *boff = (int32_t *)(xs + e.phases * (size_t)q->c * e.rows * e.cols);
    int r = 0;
    for (int c = 0; c < q->c; c++)
        for (int ki = 0; ki < q->kh; ki++)
            for (int kj = 0; kj < q->kw; kj++) {
                size_t col = (size_t)(kj * q->dw), f = col % e.phases;
                boff[r++] =
                    (int32_t)(((f * (size_t)q->c + (size_t)c) * e.rows + (size_t)(ki * q->dh)) *
                                  e.cols +
                              col / e.phases);
            }
    for (int i = 0; i < FL_CONVK_BOFF_PAD; i++)
        boff[r + i] = boff[r - 1];
    struct fl_convk_job j = fl_cv_job(g, nd, q, x.w, x.k, false);
    j.ncols = (int)p;
    j.bx = xs;
    j.boff = boff;
    j.xp = (int)p;
    j.xow = q->ow;
    j.xrow = (int)((size_t)q->sh * e.cols);
    for (size_t s = b0; s < b1; s++) {
        s_pad(q, &e, fl_gv_data(g, nd->in[0], s), xs);
        j.y = fl_gv_data(g, nd->out, s);
        j.res = fl_cv_res(g, nd, s);
        fl_convk_run(&j, 0, q->mg, (int)pa, (int)pb);
    }
}
