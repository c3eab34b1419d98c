/* fl_ops_pool: the graph's pooling ops on NCHW values: MaxPool (with the winner of each window
 * kept for the backward pass), AveragePool (padding counted or not) and GlobalAveragePool. */
#include "fl_ops_window.h"

#include "fl_error.h"

#include <float.h>
#include <string.h>

/* Visit each output element of a pool: fn gets the plane, the output index and the window. */
#define S_WINDOW_LOOP(q, ...)                                                                      \
    for (int c = 0; c < (q).c; c++)                                                                \
        for (int oy = 0; oy < (q).oh; oy++)                                                        \
            for (int ox = 0; ox < (q).ow; ox++) {                                                  \
                size_t o = ((size_t)c * (q).oh + oy) * (q).ow + ox;                                \
                size_t base = (size_t)c * (q).h * (q).w;                                           \
                int y0 = oy * (q).sh - (q).pt, x0 = ox * (q).sw - (q).pl;                          \
                int ya = y0 < 0 ? 0 : y0, xa = x0 < 0 ? 0 : x0;                                    \
                int yb = y0 + (q).kh > (q).h ? (q).h : y0 + (q).kh;                                \
                int xb = x0 + (q).kw > (q).w ? (q).w : x0 + (q).kw;                                \
                __VA_ARGS__                                                                        \
            }

/* Widest input row s_maxpool_rows takes (its column maxima live on the stack). */
#define S_ROWS_MAX_W 1024

/* One sample's max pool without the winners (no backward pass wanted), in two steps an output
 * row: the maxima of the window's input rows column by column (the inner loop along the row,
 * vectorised), then of each window's columns of those. */
static void s_maxpool_rows(const struct fl_wgeom *q, const float *x, float *y)
{
    float vm[S_ROWS_MAX_W];
    for (int c = 0; c < q->c; c++) {
        const float *xc = x + (size_t)c * q->h * q->w;
        for (int oy = 0; oy < q->oh; oy++) {
            float *restrict yr = y + ((size_t)c * q->oh + oy) * q->ow;
            int y0 = oy * q->sh - q->pt, ya = y0 < 0 ? 0 : y0;
            int yb = y0 + q->kh > q->h ? q->h : y0 + q->kh;
            for (int ix = 0; ix < q->w; ix++)
                vm[ix] = ya < yb ? xc[(size_t)ya * q->w + ix] : -FLT_MAX;
            for (int iy = ya + 1; iy < yb; iy++) {
                const float *restrict xr = xc + (size_t)iy * q->w;
                for (int ix = 0; ix < q->w; ix++)
                    vm[ix] = xr[ix] > vm[ix] ? xr[ix] : vm[ix];
            }
            for (int ox = 0; ox < q->ow; ox++) {
                int x0 = ox * q->sw - q->pl, xa = x0 < 0 ? 0 : x0;
                int xb = x0 + q->kw > q->w ? q->w : x0 + q->kw;
                float best = -FLT_MAX;
                for (int ix = xa; ix < xb; ix++)
                    best = vm[ix] > best ? vm[ix] : best;
                yr[ox] = best;
            }
        }
    }
}

void fl_maxpool_fwd(fl_graph_t *g, const struct fl_gnode *nd, int t, size_t b0, size_t b1)
{
    struct fl_wgeom q;
    fl_wgeom_of(g, nd, &q);
    size_t per = g->values[nd->out].numel;
    bool keep = g->values[nd->out].needs_grad; /* the winners, for a backward pass */
    for (size_t s = b0; s < b1; s++) {
        const float *x = fl_gv_data(g, nd->in[0], s);
        float *y = fl_gv_data(g, nd->out, s);
        if (!keep && q.w <= S_ROWS_MAX_W) {
            s_maxpool_rows(&q, x, y);
            continue;
        }
        int32_t *arg = keep ? nd->argmax + s * per : NULL;
        S_WINDOW_LOOP(q, {
            float best = -FLT_MAX;
            int32_t at = (int32_t)(base + (size_t)ya * q.w + xa);
            for (int iy = ya; iy < yb; iy++)
                for (int ix = xa; ix < xb; ix++)
                    if (x[base + (size_t)iy * q.w + ix] > best) {
                        best = x[base + (size_t)iy * q.w + ix];
                        at = (int32_t)(base + (size_t)iy * q.w + ix);
                    }
            y[o] = best;
            if (arg)
                arg[o] = at;
        })
    }
}

void fl_maxpool_bwd(fl_graph_t *g, const struct fl_gnode *nd, int t, size_t b0, size_t b1)
{
    size_t per = g->values[nd->out].numel;
    for (size_t s = b0; s < b1; s++) {
        const float *dy = fl_gv_grad(g, nd->out, t, s);
        float *dx = fl_gv_grad(g, nd->in[0], t, s);
        const int32_t *arg = nd->argmax + s * per;
        for (size_t o = 0; dx && o < per; o++)
            dx[arg[o]] += dy[o];
    }
}

/* Divisor of an average window: the whole window or the input cells it covers. */
static float s_avg_div(const struct fl_gnode *nd, const struct fl_wgeom *q, int ya, int yb, int xa,
                       int xb)
{
    return nd->a.count_include_pad ? (float)(q->kh * q->kw) : (float)((yb - ya) * (xb - xa));
}

void fl_avgpool_fwd(fl_graph_t *g, const struct fl_gnode *nd, int t, size_t b0, size_t b1)
{
    struct fl_wgeom q;
    fl_wgeom_of(g, nd, &q);
    for (size_t s = b0; s < b1; s++) {
        const float *x = fl_gv_data(g, nd->in[0], s);
        float *y = fl_gv_data(g, nd->out, s);
        S_WINDOW_LOOP(q, {
            float sum = 0;
            for (int iy = ya; iy < yb; iy++)
                for (int ix = xa; ix < xb; ix++)
                    sum += x[base + (size_t)iy * q.w + ix];
            y[o] = sum / s_avg_div(nd, &q, ya, yb, xa, xb);
        })
    }
}

void fl_avgpool_bwd(fl_graph_t *g, const struct fl_gnode *nd, int t, size_t b0, size_t b1)
{
    struct fl_wgeom q;
    fl_wgeom_of(g, nd, &q);
    for (size_t s = b0; s < b1; s++) {
        const float *dy = fl_gv_grad(g, nd->out, t, s);
        float *dx = fl_gv_grad(g, nd->in[0], t, s);
        if (!dx)
            continue;
        S_WINDOW_LOOP(q, {
            float d = dy[o] / s_avg_div(nd, &q, ya, yb, xa, xb);
            for (int iy = ya; iy < yb; iy++)
                for (int ix = xa; ix < xb; ix++)
                    dx[base + (size_t)iy * q.w + ix] += d;
        })
    }
}

int fl_gap_infer(fl_graph_t *g, struct fl_gnode *nd)
{
    struct fl_gvalue *x = &g->values[nd->in[0]], *y = &g->values[nd->out];
    char xs[64];
    if (x->ndim != 3)
        return fl_fail(FL_EMISMATCH, "graph: node '%s' (GlobalAveragePool) needs CxHxW, '%s' is %s",
                       nd->name, x->name, fl_gv_shape_str(x, xs, sizeof xs));
    y->ndim = 3;
    y->dims[0] = x->dims[0];
    y->dims[1] = y->dims[2] = 1;
    y->numel = (size_t)x->dims[0];
    return 0;
}

void fl_gap_fwd(fl_graph_t *g, const struct fl_gnode *nd, int t, size_t b0, size_t b1)
{
    const struct fl_gvalue *x = &g->values[nd->in[0]];
    size_t c = (size_t)x->dims[0], hw = (size_t)(x->dims[1] * x->dims[2]);
    for (size_t s = b0; s < b1; s++) {
        const float *xs = fl_gv_data(g, nd->in[0], s);
        float *y = fl_gv_data(g, nd->out, s);
        for (size_t i = 0; i < c; i++) {
            float sum = 0;
            for (size_t j = 0; j < hw; j++)
                sum += xs[i * hw + j];
            y[i] = sum / (float)hw;
        }
    }
}

void fl_gap_bwd(fl_graph_t *g, const struct fl_gnode *nd, int t, size_t b0, size_t b1)
{
    const struct fl_gvalue *x = &g->values[nd->in[0]];
    size_t c = (size_t)x->dims[0], hw = (size_t)(x->dims[1] * x->dims[2]);
    for (size_t s = b0; s < b1; s++) {
        const float *dy = fl_gv_grad(g, nd->out, t, s);
        float *dx = fl_gv_grad(g, nd->in[0], t, s);
        for (size_t i = 0; dx && i < c; i++)
            for (size_t j = 0; j < hw; j++)
                dx[i * hw + j] += dy[i] / (float)hw;
    }
}
