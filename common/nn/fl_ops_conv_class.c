/* fl_ops_conv_class: a padded conv's forward pass on small planes without the padding's
 * products. On a 4x4 plane a 3x3 conv's corner positions read 4 of their 9 taps inside the
 * input, the edges 6; on 2x2 every position reads 4: 31% and 56% of an im2col GEMM's
 * multiply-adds are by zeros. Here the output positions are grouped by the set of taps they
 * read inside the input (at most kh x kw classes), and each class is one product over the batch:
 * its columns are (position, sample) pairs, its rows only the channels of its taps, which
 * fl_convk reads from W's columns through a map. Only the zero terms are left out, and the
 * kernel sums each element's remaining terms in the order the full product would, so the result
 * is the full product's, bit for bit. AVX2 kernel only (fl_convk.h: km, cmap). */
#include "fl_ops_conv_impl.h"

#include "fl_convk.h"

#include <stdint.h>

/* Classes pay when they drop at least this share of the multiply-adds and this many per output
 * element (which they store one float at a time, after turning the input: resnet18's 7x7 stem
 * on a 32x32 input drops 10%, 15 an element, and took 1.35x longer), at batches of at least
 * S_MIN_BATCH (a corner class has one column a sample: 16 samples fill half a panel). */
#define S_MIN_DROP    0.05
#define S_MIN_DROPPED 32
#define S_MIN_BATCH   8

/* Bit l: kept tap l of T (fl_cv_taps_of) reads inside the input at output position (oy, ox). */
static uint64_t s_taps_at(const struct fl_wgeom *q, const struct fl_cv_taps *T, int oy, int ox)
{
    uint64_t m = 0;
    for (int l = 0; l < T->n; l++) {
        int tap = T->pruned ? T->idx[l] : l, ki = tap / q->kw, kj = tap % q->kw;
        int iy = oy * q->sh - q->pt + ki * q->dh, ix = ox * q->sw - q->pl + kj * q->dw;
        if (iy >= 0 && iy < q->h && ix >= 0 && ix < q->w)
            m |= (uint64_t)1 << l;
    }
    return m;
}

/* The class of taps m among cls [*n]: its index, a new one when absent, or -1 when cls already
 * holds FL_CV_MAX_TAPS classes. */
static int s_class(uint64_t *cls, int *n, uint64_t m)
{
    int c = 0;
    while (c < *n && cls[c] != m)
        c++;
    if (c < *n)
        return c;
    if (c == FL_CV_MAX_TAPS)
        return -1;
    cls[(*n)++] = m;
    return c;
}

bool fl_cv_classes_fit(const struct fl_wgeom *q)
{
    if (q->depthwise || q->direct || q->groups != 1)
        return false;
    struct fl_cv_taps T;
    fl_cv_taps_of(q, true, &T);
    if (T.n > 64)
        return false;
    size_t used = 0, p = (size_t)q->oh * q->ow;
    uint64_t cls[FL_CV_MAX_TAPS];
    int n = 0;
    for (int oy = 0; oy < q->oh; oy++)
        for (int ox = 0; ox < q->ow; ox++) {
            uint64_t m = s_taps_at(q, &T, oy, ox);
            if (s_class(cls, &n, m) < 0)
                return false; /* more classes than s_classes keeps */
            used += (size_t)__builtin_popcountll(m);
        }
    size_t all = p * (size_t)T.n, dropped = (all - used) * (size_t)q->c;
    return (double)used <= (1.0 - S_MIN_DROP) * (double)all && dropped >= S_MIN_DROPPED * p;
}

bool fl_cv_classes_pay(const fl_graph_t *g, const struct fl_gnode *nd)
{
    return nd->classes_fit && g->simd && !fl_convk_wide() && g->batch >= S_MIN_BATCH &&
           !fl_lora_of(g, nd);
}

/* The classes (as many as fl_cv_classes_pay found room for): cls[i] the taps of class i, pos[]
 * the positions grouped by class (class i's from start[i] to start[i + 1]). Returns the class
 * count. */
static int s_classes(const struct fl_wgeom *q, const struct fl_cv_taps *T, uint64_t *cls,
                     int *start, int32_t *pos)
{
    int p = q->oh * q->ow, n = 0;
    for (int i = 0; i < p; i++)
        s_class(cls, &n, s_taps_at(q, T, i / q->ow, i % q->ow));
    int at = 0;
    for (int c = 0; c < n; c++) {
        start[c] = at;
        for (int i = 0; i < p; i++)
            if (s_taps_at(q, T, i / q->ow, i % q->ow) == cls[c])
                pos[at++] = i;
    }
    start[n] = at;
    return n;
}

/* Class columns [j0, j1) (column j: position pos[j / ns], sample j % ns) packed in fl_convk's
 * panels from column j0 on, over the class's rows (channel, then tap), from xt: the chunk's
 * input with the samples innermost, [channel][input position][sample]. */
static void s_pack(const struct fl_wgeom *q, const struct fl_cv_taps *T, uint64_t taps,
                   const int32_t *pos, size_t j0, size_t j1, const float *xt, size_t ns, int kc,
                   float *bp)
{
    const size_t nr = FL_CONVK_NR, plane = (size_t)q->h * q->w;
    int ntc = __builtin_popcountll(taps);
    size_t off[FL_CV_MAX_TAPS];
    for (size_t j = j0; j < j1;) { /* runs of one position within a panel */
        size_t pi = j / ns, lane = (j - j0) % nr, end = (pi + 1) * ns < j1 ? (pi + 1) * ns : j1;
        size_t len = nr - lane < end - j ? nr - lane : end - j;
        int oy = pos[pi] / q->ow, ox = pos[pi] % q->ow, r = 0;
        for (int l = 0; l < T->n; l++) {
            int tap = T->pruned ? T->idx[l] : l, ki = tap / q->kw, kj = tap % q->kw;
            if (taps >> l & 1)
                off[r++] = (size_t)(oy * q->sh - q->pt + ki * q->dh) * q->w +
                           (size_t)(ox * q->sw - q->pl + kj * q->dw);
        }
        const float *src = xt + (j - pi * ns);
        float *dst = bp + (j - j0) / nr * (size_t)kc * nr + lane;
        for (int c = 0; c < q->c; c++)
            for (int l = 0; l < ntc; l++) {
                const float *restrict sv = src + ((size_t)c * plane + off[l]) * ns;
                float *restrict dv = dst + ((size_t)c * ntc + l) * nr;
                for (size_t i = 0; i < len; i++)
                    dv[i] = sv[i];
            }
        j += len;
    }
}

/* Output y (a position of a sample, channels p apart) where no tap reads inside the input: the
 * bias alone (and the residual res, laid out as y, when not NULL) through the activation, as
 * the full product stores it. */
static void s_bias_only(const struct fl_gnode *nd, const struct fl_wgeom *q, const float *bias,
                        const float *res, float *y)
{
    size_t p = (size_t)q->oh * q->ow;
    for (int o = 0; o < q->mg; o++) {
        float v = 0.0f + (bias ? bias[o] : 0.0f);
        if (res)
            v += res[(size_t)o * p];
        fl_act_apply(nd, &v, 1);
        y[(size_t)o * p] = v;
    }
}

/* Columns a class's product takes at a time (8 panels: W's rows are read again for each). */
#define S_BLOCK_COLS (8 * FL_CONVK_NR)

/* Floats of the scratch after the weight's copy for ns samples a chunk: the tables (positions,
 * W's columns, column offsets), the input turned, a block of packed columns. */
static size_t s_room(const struct fl_wgeom *q, int k, size_t ns)
{
    size_t p = (size_t)q->oh * q->ow, xin = (size_t)q->c * q->h * q->w;
    return p + (size_t)k + 2 + 2 * S_BLOCK_COLS + xin * ns + (size_t)k * S_BLOCK_COLS;
}

/* Samples a chunk at most: 32 fill a panel with a corner's one position. */
#define S_MAX_CHUNK 32

size_t fl_cv_classes_scratch(const fl_graph_t *g, const struct fl_wgeom *q)
{
    if (!g->simd || fl_convk_wide() || q->depthwise || q->direct || q->groups != 1 ||
        g->max_batch < S_MIN_BATCH)
        return 0;
    struct fl_cv_taps T;
    fl_cv_taps_of(q, true, &T);
    size_t workers = g->nworkers > 0 ? (size_t)g->nworkers : 1;
    size_t share = ((size_t)g->max_batch + workers - 1) / workers;
    return s_room(q, q->c * T.n, share < S_MAX_CHUNK ? share : S_MAX_CHUNK);
}

void fl_cv_fwd_classes(fl_graph_t *g, const struct fl_gnode *nd, const struct fl_wgeom *q, int t,
                       size_t b0, size_t b1)
{
    const size_t nr = FL_CONVK_NR, p = (size_t)q->oh * q->ow;
    struct fl_cv_ctx x;
    fl_cv_ctx_init(g, nd, q, t, true, 0, q->mg, &x);
    float *region = x.work; /* what is left of the scratch after the weight's compacted copy */
    size_t room = nd->scratch - (size_t)(x.work - g->scratch[t]);
    uint64_t cls[FL_CV_MAX_TAPS]; /* the classes: taps, where their positions start */
    int start[FL_CV_MAX_TAPS + 1];
    int32_t *pos = (int32_t *)region, *km = pos + p;
    int ncls = s_classes(q, &x.taps, cls, start, pos);
    size_t *cmap = (size_t *)(((uintptr_t)(km + x.k) + 7) & ~(uintptr_t)7);
    size_t ns = b1 - b0 < S_MAX_CHUNK ? b1 - b0 : S_MAX_CHUNK, xin = (size_t)q->c * q->h * q->w;
    while (ns > 1 && s_room(q, x.k, ns) > room)
        ns--;
    float *xt = (float *)(cmap + S_BLOCK_COLS), *bp = xt + xin * ns;
    size_t ystride = g->values[nd->out].numel;
    struct fl_convk_job j = fl_cv_job(g, nd, q, x.w, x.k, false);
    j.bp = bp;
    j.km = km;
    j.cmap = cmap;
    for (size_t s0 = b0; s0 < b1; s0 += ns) {
        size_t n = b1 - s0 < ns ? b1 - s0 : ns;
        j.y = fl_gv_data(g, nd->out, s0);
        j.res = fl_cv_res(g, nd, s0);
        fl_convk_transpose(fl_gv_data(g, nd->in[0], s0), xt, n, xin);
        for (int c = 0; c < ncls; c++) {
            const int32_t *cp = pos + start[c];
            size_t cols = (size_t)(start[c + 1] - start[c]) * n;
            int ntc = __builtin_popcountll(cls[c]), r = 0;
            if (ntc == 0) { /* positions reading nothing but padding: the bias alone */
                for (size_t jj = 0; jj < cols; jj++)
                    s_bias_only(nd, q, j.bias,
                                j.res ? j.res + jj % n * ystride + (size_t)cp[jj / n] : NULL,
                                j.y + jj % n * ystride + (size_t)cp[jj / n]);
                continue;
            }
            for (int ch = 0; ch < q->c; ch++)
                for (int l = 0; l < x.taps.n; l++)
                    if (cls[c] >> l & 1)
                        km[r++] = ch * x.taps.n + l;
            j.k = q->c * ntc;
            for (size_t j0 = 0; j0 < cols; j0 += S_BLOCK_COLS) {
                size_t j1 = cols - j0 < S_BLOCK_COLS ? cols : j0 + S_BLOCK_COLS;
                for (size_t jj = j0; jj < j1; jj++)
                    cmap[jj - j0] = jj % n * ystride + (size_t)cp[jj / n];
                j.ncols = (int)(j1 - j0);
                s_pack(q, &x.taps, cls[c], cp, j0, j1, xt, n, j.k, bp);
                fl_convk_run(&j, 0, q->mg, 0, (j.ncols + (int)nr - 1) / (int)nr);
            }
        }
    }
}
