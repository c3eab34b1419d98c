/* fl_ops_conv_pack: a conv's input packed as fl_convk reads it (fl_convk.h): in panels of
 * FL_CONVK_NR columns, or column by column for the narrow kernel, straight from the NCHW planes. */
#include "fl_ops_conv_impl.h"

#include "fl_convk.h"

#include <string.h>

/* len values src[0], src[sw], ... (zeros when src is NULL) into a packed row from column cc
 * on: runs within a panel (NR floats at rowb + panel * kstride) are contiguous. */
static void s_put(float *rowb, size_t kstride, size_t cc, const float *src, int sw, size_t len)
{
    const size_t nr = FL_CONVK_NR;
    while (len > 0) {
        size_t lane = cc % nr, take = nr - lane < len ? nr - lane : len;
        float *restrict dst = rowb + cc / nr * kstride + lane;
        if (!src)
            memset(dst, 0, take * sizeof *dst);
        else if (sw == 1)
            for (size_t i = 0; i < take; i++)
                dst[i] = src[i];
        else
            for (size_t i = 0; i < take; i++)
                dst[i] = src[i * (size_t)sw];
        if (src)
            src += take * (size_t)sw;
        cc += take, len -= take;
    }
}

/* Columns [j0, j1) of a chunk's col matrix (sample s's position i in column
 * (s - first) * p + i) packed in fl_convk's panels: bp holds panel j / NR at (j / NR) * k * NR,
 * row r of it NR floats at r * NR. x: the sample's input, col0 its first column. */
void fl_cv_pack_sample(const struct fl_wgeom *q, const struct fl_cv_taps *T, const float *x,
                       float *bp, size_t k, size_t col0, int i0, int i1)
{
    const size_t nr = FL_CONVK_NR, kstride = k * nr;
    if (q->direct) { /* 1x1: each channel's plane is a row of col */
        for (int c = 0; c < q->c; c++)
            s_put(bp + (size_t)c * nr, kstride, col0 + (size_t)i0, x + (size_t)c * q->h * q->w + i0,
                  1, (size_t)(i1 - i0));
        return;
    }
    int oy0 = i0 / q->ow, oy1 = (i1 - 1) / q->ow;
    for (int c = 0; c < q->c; c++)
        for (int l = 0; l < T->n; l++) {
            int tap = T->pruned ? T->idx[l] : l, ki = tap / q->kw, kj = tap % q->kw;
            float *rowb = bp + ((size_t)c * T->n + l) * nr;
            const float *plane = x + (size_t)c * q->h * q->w;
            int o0, o1, off = kj * q->dw - q->pl;
            fl_cv_valid_cols(q, kj, &o0, &o1);
            for (int oy = oy0; oy <= oy1; oy++) {
                int xa = oy == oy0 ? i0 - oy * q->ow : 0, xb = oy == oy1 ? i1 - oy * q->ow : q->ow;
                int iy = oy * q->sh - q->pt + ki * q->dh;
                size_t col = col0 + (size_t)oy * q->ow;
                int va = xa > o0 ? xa : o0, vb = xb < o1 ? xb : o1;
                if (iy < 0 || iy >= q->h)
                    va = vb = xb;
                if (vb < va)
                    vb = va;
                const float *src = plane + (size_t)(iy < 0 ? 0 : iy) * q->w;
                s_put(rowb, kstride, col + xa, NULL, 0, (size_t)(va - xa));
                if (vb > va)
                    s_put(rowb, kstride, col + va, src + va * q->sw + off, q->sw,
                          (size_t)(vb - va));
                s_put(rowb, kstride, col + vb, NULL, 0, (size_t)(xb - vb));
            }
        }
}

/* Columns [c0, c1) of a 1x1 conv's chunk (its first sample's input at x0, samples xs floats
 * apart) packed in panels, for planes of fewer positions than a panel holds (a panel's columns
 * span several samples): planes of 8 positions and more by runs of a sample's positions (each
 * run a few vectors a channel), smaller ones lane by lane, each lane's sample and position found
 * once a panel. */
void fl_cv_pack_direct(const float *x0, size_t xs, size_t p, int nch, float *bp, size_t k,
                       size_t c0, size_t c1)
{
    const size_t nr = FL_CONVK_NR;
    for (size_t pn = c0 / nr; pn * nr < c1; pn++) {
        size_t la = pn * nr < c0 ? c0 - pn * nr : 0, lb = c1 - pn * nr < nr ? c1 - pn * nr : nr;
        float *restrict row = bp + pn * k * nr;
        if (p >= 8) { /* runs of a sample's positions, each a few vectors for every channel */
            for (size_t l = la; l < lb;) {
                size_t col = pn * nr + l, pos = col % p, len = p - pos < lb - l ? p - pos : lb - l;
                const float *restrict src = x0 + col / p * xs + pos;
                for (int c = 0; c < nch; c++)
                    for (size_t i = 0; i < len; i++)
                        row[(size_t)c * nr + l + i] = src[(size_t)c * p + i];
                l += len;
            }
            continue;
        }
        const float *src[FL_CONVK_NR]; /* lane by lane: every lane's sample and position */
        for (size_t l = la; l < lb; l++)
            src[l] = x0 + (pn * nr + l) / p * xs + (pn * nr + l) % p;
        for (int c = 0; c < nch; c++, row += nr)
            for (size_t l = la; l < lb; l++)
                row[l] = src[l][(size_t)c * p];
    }
}

/* Column j of a chunk's col matrix packed for fl_convk_run_narrow: its k values at bt + j * k.
 * x: a sample's input, col0 its first column. */
void fl_cv_pack_narrow(const struct fl_wgeom *q, const struct fl_cv_taps *T, const float *x,
                       float *bt, size_t k, size_t col0)
{
    if (q->direct) { /* 1x1: column j is position j of every channel plane */
        size_t p = (size_t)q->oh * q->ow;
        if (p == 1)
            memcpy(bt + col0 * k, x, k * sizeof *bt);
        else
            for (size_t c = 0; c < k; c++)
                for (size_t j = 0; j < p; j++)
                    bt[(col0 + j) * k + c] = x[c * p + j];
        return;
    }
    size_t plane = (size_t)q->h * q->w;
    for (int oy = 0; oy < q->oh; oy++)
        for (int ox = 0; ox < q->ow; ox++) {
            float *dst = bt + (col0 + (size_t)oy * q->ow + ox) * k;
            for (int l = 0; l < T->n; l++) { /* tap by tap: where it reads, then every channel */
                int tap = T->pruned ? T->idx[l] : l, ki = tap / q->kw, kj = tap % q->kw;
                int iy = oy * q->sh - q->pt + ki * q->dh, ix = ox * q->sw - q->pl + kj * q->dw;
                float *restrict d = dst + l;
                if (iy < 0 || iy >= q->h || ix < 0 || ix >= q->w) {
                    for (int c = 0; c < q->c; c++)
                        d[(size_t)c * T->n] = 0.0f;
                    continue;
                }
                const float *restrict src = x + (size_t)iy * q->w + ix;
                for (int c = 0; c < q->c; c++)
                    d[(size_t)c * T->n] = src[(size_t)c * plane];
            }
        }
}

/* idx [T->n][oh*ow]: for each kept tap and output position, the offset in an input plane
 * the tap reads, or -1 in the padding (fl_convk_pack's table). */
void fl_cv_tap_index(const struct fl_wgeom *q, const struct fl_cv_taps *T, int32_t *idx)
{
    for (int l = 0; l < T->n; l++) {
        int tap = T->pruned ? T->idx[l] : l, ki = tap / q->kw, kj = tap % q->kw, o0, o1;
        fl_cv_valid_cols(q, kj, &o0, &o1); /* a row's outputs whose column is inside */
        for (int oy = 0; oy < q->oh; oy++, idx += q->ow) {
            int iy = oy * q->sh - q->pt + ki * q->dh, at = iy * q->w + kj * q->dw - q->pl;
            int a = iy >= 0 && iy < q->h ? o0 : q->ow, b = a < o1 ? o1 : a;
            for (int ox = 0; ox < a; ox++)
                idx[ox] = -1;
            for (int ox = a; ox < b; ox++)
                idx[ox] = at + ox * q->sw;
            for (int ox = b; ox < q->ow; ox++)
                idx[ox] = -1;
        }
    }
}
