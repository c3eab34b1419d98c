/* fl_layers: forward and backward passes of the layers fedtl models are built from, on raw
 * NHWC float buffers (see fl_tensor.h for layouts). Stateless: the caller owns every buffer.
 * Backward functions overwrite their outputs (no accumulation); a NULL output is skipped. */
#ifndef FL_LAYERS_H
#define FL_LAYERS_H

#include <stddef.h>
#include <stdint.h>

/* Geometry of a conv2d or max-pool over a batch. */
struct fl_conv_geom {
    int n;              /* batch */
    int h, w, c;        /* input height, width, channels */
    int k, stride, pad; /* square window, stride, zero padding */
    int out_c;          /* output channels (max-pool: = c) */
    int oh, ow;         /* output height, width (filled by fl_conv_geom_init) */
};

/* Fill oh/ow; returns 0 or FL_EINVAL when the window does not fit. */
int fl_conv_geom_init(struct fl_conv_geom *g);

/* col [n*oh*ow, k*k*c]: one row per output position, the patch in (kh, kw, c) order. */
void fl_im2col(const struct fl_conv_geom *g, const float *x, float *col);
/* Scatter-add dcol back into dx [n,h,w,c] (dx is overwritten). */
void fl_col2im(const struct fl_conv_geom *g, const float *dcol, float *dx);

/* y [n,oh,ow,out_c] = conv(x, w [out_c,k,k,c]) + b; col is scratch of n*oh*ow*k*k*c floats
 * and keeps the patches for the backward pass. */
void fl_conv2d_forward(const struct fl_conv_geom *g, const float *x, const float *w, const float *b,
                       float *col, float *y);
/* From dy and the forward's col: dw, db, and dx (via dcol scratch of col's size). */
void fl_conv2d_backward(const struct fl_conv_geom *g, const float *col, const float *w,
                        const float *dy, float *dw, float *db, float *dcol, float *dx);

/* y [n,out] = x [n,in] w^T + b, w [out,in]. */
void fl_dense_forward(int n, int in, int out, const float *x, const float *w, const float *b,
                      float *y);
void fl_dense_backward(int n, int in, int out, const float *x, const float *w, const float *dy,
                       float *dw, float *db, float *dx);

void fl_relu_forward(size_t len, const float *x, float *y);
/* dx = dy where the forward output y was positive. */
void fl_relu_backward(size_t len, const float *y, const float *dy, float *dx);

/* Max-pool (g->out_c == g->c, pad 0); argmax [n*oh*ow*c] records the winning input index. */
void fl_maxpool_forward(const struct fl_conv_geom *g, const float *x, float *y, int32_t *argmax);
void fl_maxpool_backward(const struct fl_conv_geom *g, const int32_t *argmax, const float *dy,
                         float *dx);

/* Mean softmax cross-entropy of logits [n,k] against labels; dlogits (may be NULL) gets the
 * gradient of the mean; *correct (may be NULL) counts argmax hits. */
double fl_softmax_xent(int n, int k, const float *logits, const int32_t *labels, float *dlogits,
                       int *correct);

/* LoRA: w_eff [out,in] = w + scale * b [out,r] a [r,in]. */
void fl_lora_merge(int out, int in, int r, float scale, const float *w, const float *a,
                   const float *b, float *w_eff);
/* Gradients of a and b (either may be NULL) from the gradient of w_eff. */
void fl_lora_backward(int out, int in, int r, float scale, const float *a, const float *b,
                      const float *dw_eff, float *da, float *db);

#endif
