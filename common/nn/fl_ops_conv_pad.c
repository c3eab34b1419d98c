/* fl_ops_conv_pad: a stride-1 kxk conv's forward pass from a padded copy of each sample's
 * input instead of packed panels. An im2col panel repeats each input float kh x kw times, and
 * a conv with few output channels (resnet18's first stages: 64, 128) spends a good part of its
 * time writing and reading it: here fl_convk reads B's row (channel, tap) of 16 outputs of one
 * output row as 16 consecutive floats of the padded plane, through a table of row offsets.
 * The sums are the packed path's, term by term in the same order (the padding's products are
 * zeros), so the bits do not change. AVX2 kernel only; output rows of whole half panels.
 * Measured one node at a time, one thread, the median of 5 alternations of best of 20 runs
 * against the packed path: resnet18's 3x3 convs on 32x32 planes (64 channels, batch 8) 1.33x
 * faster, on 16x16 (128 channels, batch 8) 1.26x, on 16x16 (64 channels, batch 32) 1.13x. */
#include "fl_ops_conv_impl.h"

#include "fl_convk.h"

#include <stdint.h>
#include <string.h>

/* The padded plane: rows and columns the window reads at stride 1 (output plus reach). */
static void s_padded(const struct fl_wgeom *q, size_t *rows, size_t *cols)
{
    *rows = (size_t)q->oh + (size_t)q->dh * (size_t)(q->kh - 1);
    *cols = (size_t)q->ow + (size_t)q->dw * (size_t)(q->kw - 1);
}

bool fl_cv_pad_fits(const fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q)
{
    return g->simd && !fl_convk_wide() && !q->depthwise && !q->direct && q->groups == 1 &&
           q->sh == 1 && q->sw == 1 && q->ow % 16 == 0 && !fl_lora_of(g, nd);
}

size_t fl_cv_pad_scratch(const struct fl_wgeom *q)
{
    size_t rows, cols, k = (size_t)q->c * q->kh * q->kw;
    s_padded(q, &rows, &cols);
    return (size_t)q->c * rows * cols + k + FL_CONVK_BOFF_PAD + 1; /* plane, table, alignment */
}

/* xp [c][rows][cols] = sample x [c][h][w] placed at (pt, pl), zeros around it. */
static void s_pad(const struct fl_wgeom *q, const float *x, float *xp)
{
    size_t rows, cols;
    s_padded(q, &rows, &cols);
    int x0 = q->pl > 0 ? 0 : -q->pl, x1 = q->w; /* input columns that land in the plane */
    if ((size_t)(x1 + q->pl) > cols)
        x1 = (int)cols - q->pl;
    for (int c = 0; c < q->c; c++)
        for (size_t r = 0; r < rows; r++) {
            float *d = xp + ((size_t)c * rows + r) * cols;
            int iy = (int)r - q->pt;
            if (iy < 0 || iy >= q->h || x1 <= x0) {
                memset(d, 0, cols * sizeof *d);
                continue;
            }
            const float *s = x + ((size_t)c * q->h + (size_t)iy) * q->w;
            size_t lead = (size_t)(x0 + q->pl), n = (size_t)(x1 - x0);
            memset(d, 0, lead * sizeof *d);
            memcpy(d + lead, s + x0, n * sizeof *d);
            memset(d + lead + n, 0, (cols - lead - n) * sizeof *d);
        }
}

void fl_cv_fwd_pad(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q, int t,
                   size_t b0, size_t b1, int part, int nparts)
{
    size_t rows, cols, p = (size_t)q->oh * q->ow, npan = (p + FL_CONVK_NR - 1) / FL_CONVK_NR;
    s_padded(q, &rows, &cols);
    size_t pa = npan * (size_t)part / (size_t)nparts, pb = npan * ((size_t)part + 1) / nparts;
    if (pa == pb)
        return;
    struct fl_cv_ctx x;
    fl_cv_ctx_init(g, nd, q, t, false, 0, q->mg, &x);
    float *xp = x.work;
    int32_t *boff = (int32_t *)(xp + (size_t)q->c * rows * cols);
    int r = 0;
    for (int c = 0; c < q->c; c++)
        for (int ki = 0; ki < q->kh; ki++)
            for (int kj = 0; kj < q->kw; kj++)
                boff[r++] = (int32_t)(((size_t)c * rows + (size_t)(ki * q->dh)) * cols +
                                      (size_t)(kj * q->dw));
    for (int e = 0; e < FL_CONVK_BOFF_PAD; e++)
        boff[r + e] = boff[r - 1];
    struct fl_convk_job j = {.m = q->mg,
                             .k = x.k,
                             .w = x.w,
                             .ldw = x.k,
                             .ncols = (int)p,
                             .p = (int)p,
                             .ystride = g->values[nd->out].numel,
                             .bias = nd->nin == 3 ? fl_gv_data(g, nd->in[2], 0) : NULL,
                             .act = nd->act == FL_OP_RELU   ? FL_CONVK_RELU
                                    : nd->act == FL_OP_CLIP ? FL_CONVK_CLIP
                                                            : FL_CONVK_NONE,
                             .lo = nd->act_min,
                             .hi = nd->act_max,
                             .bx = xp,
                             .boff = boff,
                             .xp = (int)p,
                             .xow = q->ow,
                             .xrow = (int)cols};
    for (size_t s = b0; s < b1; s++) {
        s_pad(q, fl_gv_data(g, nd->in[0], s), xp);
        j.y = fl_gv_data(g, nd->out, s);
        fl_convk_run(&j, 0, q->mg, (int)pa, (int)pb);
    }
}
