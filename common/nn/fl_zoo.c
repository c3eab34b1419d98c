/* fl_zoo: fedtl's own cnn-small and mlp, and resnet18 and mobilenet_v2 as torchvision builds
 * them, BatchNorm folded away. */
#include "fl_zoo.h"

#include "fl_error.h"
#include "fl_rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A builder: the description, the parameters so far and the random generator. */
struct s_zb {
    struct fl_graphdef *def; /* nodes appended here */
    struct fl_tensor *p;     /* parameters */
    size_t n, cap;           /* used / allocated in p */
    struct fl_rng rng;       /* initialisation */
    int rc;                  /* first error (later calls do nothing) */
};

static struct fl_tensor *s_new_param(struct s_zb *b, const char *node, const char *suffix, int ndim,
                                     const int64_t *shape)
{
    if (b->rc)
        return NULL;
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        struct fl_tensor *p = realloc(b->p, cap * sizeof *p);
        if (!p) {
            b->rc = fl_fail(FL_ENOMEM, "zoo: out of memory");
            return NULL;
        }
        b->p = p, b->cap = cap;
    }
    char name[FL_NAME_MAX];
    snprintf(name, sizeof name, "%.50s.%s", node, suffix);
    struct fl_tensor *t = &b->p[b->n];
    if ((b->rc = fl_tensor_init(t, name, ndim, shape)) != 0)
        return NULL;
    b->n++;
    return t;
}

static void s_add(struct s_zb *b, const char *name, enum fl_op op, const char *const *in, int nin,
                  const char *out, const struct fl_op_attrs *a)
{
    if (b->rc == 0)
        b->rc = fl_graphdef_add(b->def, name, op, in, nin, out ? out : name, a);
}

/* Conv `name` (value of the same name): weight [cout, cin/group, k, k] He-normal over its fan
 * in, bias [cout] zero (where the folded BatchNorm's shift goes). */
static void s_conv(struct s_zb *b, const char *name, const char *in, int cin, int cout, int k,
                   int stride, int group)
{
    int64_t ws[4] = {cout, cin / group, k, k}, bs[1] = {cout};
    struct fl_tensor *w = s_new_param(b, name, "weight", 4, ws);
    if (!w || !s_new_param(b, name, "bias", 1, bs))
        return;
    size_t nw = fl_tensor_numel(w);
    double std = sqrt(2.0 / (double)(nw / (size_t)cout));
    for (size_t i = 0; i < nw; i++)
        w->data[i] = (float)(fl_rng_normal(&b->rng) * std);
    struct fl_op_attrs a = fl_op_attrs_default();
    a.stride[0] = a.stride[1] = stride;
    a.pads[0] = a.pads[1] = a.pads[2] = a.pads[3] = k / 2;
    a.group = group;
    char wn[FL_NAME_MAX], bn[FL_NAME_MAX];
    snprintf(wn, sizeof wn, "%.50s.weight", name);
    snprintf(bn, sizeof bn, "%.50s.bias", name);
    const char *ins[3] = {in, wn, bn};
    s_add(b, name, FL_OP_CONV, ins, 3, NULL, &a);
}

static void s_unary(struct s_zb *b, const char *name, enum fl_op op, const char *in)
{
    struct fl_op_attrs a = fl_op_attrs_default();
    if (op == FL_OP_CLIP) /* ReLU6 */
        a.min = 0.0f, a.max = 6.0f;
    s_add(b, name, op, &in, 1, NULL, &a);
}

static void s_sum(struct s_zb *b, const char *name, const char *x, const char *y)
{
    const char *in[2] = {x, y};
    s_add(b, name, FL_OP_ADD, in, 2, NULL, NULL);
}

/* GlobalAveragePool "avgpool", Flatten "flatten", [Dropout dropout], Gemm `fc` -> "logits". */
static void s_head(struct s_zb *b, const char *in, int features, int classes, const char *dropout,
                   const char *fc)
{
    s_unary(b, "avgpool", FL_OP_GLOBALAVGPOOL, in);
    s_unary(b, "flatten", FL_OP_FLATTEN, "avgpool");
    const char *x = "flatten";
    if (dropout) {
        s_unary(b, dropout, FL_OP_DROPOUT, x);
        x = dropout;
    }
    int64_t ws[2] = {classes, features}, bs[1] = {classes};
    struct fl_tensor *w = s_new_param(b, fc, "weight", 2, ws);
    struct fl_tensor *bias = s_new_param(b, fc, "bias", 1, bs);
    if (!w || !bias)
        return;
    double lim = 1.0 / sqrt((double)features);
    for (size_t i = 0; i < fl_tensor_numel(w); i++)
        w->data[i] = (float)((2.0 * fl_rng_uniform(&b->rng) - 1.0) * lim);
    for (int i = 0; i < classes; i++)
        bias->data[i] = (float)((2.0 * fl_rng_uniform(&b->rng) - 1.0) * lim);
    struct fl_op_attrs a = fl_op_attrs_default();
    a.trans_b = true;
    char wn[FL_NAME_MAX], bn[FL_NAME_MAX];
    snprintf(wn, sizeof wn, "%.50s.weight", fc);
    snprintf(bn, sizeof bn, "%.50s.bias", fc);
    const char *ins[3] = {x, wn, bn};
    s_add(b, fc, FL_OP_GEMM, ins, 3, "logits", &a);
}

/* torchvision's BasicBlock `pre` ("layer2.0"): conv1-relu-conv2, plus the input or its 1x1
 * downsample, then relu. Writes its output's value name into out. */
static void s_basic_block(struct s_zb *b, const char *pre, const char *in, int cin, int cout,
                          int stride, char out[FL_GRAPH_NAME_MAX])
{
    char c1[FL_GRAPH_NAME_MAX], r1[FL_GRAPH_NAME_MAX], c2[FL_GRAPH_NAME_MAX];
    char ds[FL_GRAPH_NAME_MAX], add[FL_GRAPH_NAME_MAX];
    snprintf(c1, sizeof c1, "%.40s.conv1", pre);
    snprintf(r1, sizeof r1, "%.40s.relu", pre);
    snprintf(c2, sizeof c2, "%.40s.conv2", pre);
    snprintf(ds, sizeof ds, "%.40s.downsample.0", pre);
    snprintf(add, sizeof add, "%.40s.add", pre);
    s_conv(b, c1, in, cin, cout, 3, stride, 1);
    s_unary(b, r1, FL_OP_RELU, c1);
    s_conv(b, c2, r1, cout, cout, 3, 1, 1);
    const char *skip = in;
    if (stride != 1 || cin != cout) {
        s_conv(b, ds, in, cin, cout, 1, stride, 1);
        skip = ds;
    }
    s_sum(b, add, c2, skip);
    snprintf(out, FL_GRAPH_NAME_MAX, "%.40s.relu_1", pre);
    s_unary(b, out, FL_OP_RELU, add);
}

static void s_resnet18(struct s_zb *b, int c, int classes)
{
    s_conv(b, "conv1", "input", c, 64, 7, 2, 1);
    s_unary(b, "relu", FL_OP_RELU, "conv1");
    struct fl_op_attrs mp = fl_op_attrs_default();
    mp.kernel[0] = mp.kernel[1] = 3;
    mp.stride[0] = mp.stride[1] = 2;
    mp.pads[0] = mp.pads[1] = mp.pads[2] = mp.pads[3] = 1;
    const char *rl = "relu";
    s_add(b, "maxpool", FL_OP_MAXPOOL, &rl, 1, NULL, &mp);
    char x[FL_GRAPH_NAME_MAX] = "maxpool", pre[FL_GRAPH_NAME_MAX];
    int cin = 64;
    for (int stage = 0; stage < 4; stage++) {
        int cout = 64 << stage;
        for (int blk = 0; blk < 2; blk++) {
            snprintf(pre, sizeof pre, "layer%d.%d", stage + 1, blk);
            char in[FL_GRAPH_NAME_MAX];
            memcpy(in, x, sizeof in);
            s_basic_block(b, pre, in, cin, cout, stage > 0 && blk == 0 ? 2 : 1, x);
            cin = cout;
        }
    }
    s_head(b, x, 512, classes, NULL, "fc");
}

/* Conv + ReLU6 as torchvision's Conv2dNormActivation `pre` ("features.0"): the conv is
 * "<pre>.0", the activation "<pre>.2" (".1" was the BatchNorm). */
static void s_conv_relu6(struct s_zb *b, const char *pre, const char *in, int cin, int cout, int k,
                         int stride, int group, char out[FL_GRAPH_NAME_MAX])
{
    char conv[FL_GRAPH_NAME_MAX];
    snprintf(conv, sizeof conv, "%.40s.0", pre);
    snprintf(out, FL_GRAPH_NAME_MAX, "%.40s.2", pre);
    s_conv(b, conv, in, cin, cout, k, stride, group);
    s_unary(b, out, FL_OP_CLIP, conv);
}

/* torchvision's InvertedResidual "features.<i>": [expand 1x1 + ReLU6,] depthwise 3x3 + ReLU6,
 * project 1x1 (linear), plus the input when the shapes allow. */
static void s_inverted(struct s_zb *b, int i, const char *in, int cin, int cout, int stride, int t,
                       char out[FL_GRAPH_NAME_MAX])
{
    char pre[FL_GRAPH_NAME_MAX], x[FL_GRAPH_NAME_MAX], proj[FL_GRAPH_NAME_MAX];
    int hid = cin * t, k = 0;
    snprintf(x, sizeof x, "%s", in);
    if (t != 1) {
        snprintf(pre, sizeof pre, "features.%d.conv.%d", i, k++);
        s_conv_relu6(b, pre, in, cin, hid, 1, 1, 1, x);
    }
    snprintf(pre, sizeof pre, "features.%d.conv.%d", i, k++);
    char dwin[FL_GRAPH_NAME_MAX];
    memcpy(dwin, x, sizeof dwin);
    s_conv_relu6(b, pre, dwin, hid, hid, 3, stride, hid, x);
    snprintf(proj, sizeof proj, "features.%d.conv.%d", i, k);
    s_conv(b, proj, x, hid, cout, 1, 1, 1);
    if (stride == 1 && cin == cout) {
        snprintf(out, FL_GRAPH_NAME_MAX, "features.%d.add", i);
        s_sum(b, out, in, proj);
    } else {
        snprintf(out, FL_GRAPH_NAME_MAX, "%s", proj);
    }
}

static void s_mobilenet_v2(struct s_zb *b, int c, int classes)
{
    static const int cfg[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                                  {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
    char x[FL_GRAPH_NAME_MAX], y[FL_GRAPH_NAME_MAX];
    s_conv_relu6(b, "features.0", "input", c, 32, 3, 2, 1, x);
    int cin = 32, i = 1;
    for (int s = 0; s < 7; s++)
        for (int r = 0; r < cfg[s][2]; r++, i++) {
            s_inverted(b, i, x, cin, cfg[s][1], r == 0 ? cfg[s][3] : 1, cfg[s][0], y);
            memcpy(x, y, sizeof x);
            cin = cfg[s][1];
        }
    s_conv_relu6(b, "features.18", x, cin, 1280, 1, 1, 1, y);
    s_head(b, y, 1280, classes, "classifier.0", "classifier.1");
}

/* Gemm `name` reading value `in` [batch, cin] into value `out`: weight [cout, cin] (trans_b)
 * He-normal over its fan in and bias [cout] zero, as a chain's dense layer starts. */
static void s_dense(struct s_zb *b, const char *name, const char *in, int cin, int cout,
                    const char *out)
{
    int64_t ws[2] = {cout, cin}, bs[1] = {cout};
    struct fl_tensor *w = s_new_param(b, name, "weight", 2, ws);
    if (!w || !s_new_param(b, name, "bias", 1, bs))
        return;
    double std = sqrt(2.0 / (double)cin);
    for (size_t i = 0; i < fl_tensor_numel(w); i++)
        w->data[i] = (float)(fl_rng_normal(&b->rng) * std);
    struct fl_op_attrs a = fl_op_attrs_default();
    a.trans_b = true;
    char wn[FL_NAME_MAX], bn[FL_NAME_MAX];
    snprintf(wn, sizeof wn, "%.50s.weight", name);
    snprintf(bn, sizeof bn, "%.50s.bias", name);
    const char *ins[3] = {in, wn, bn};
    s_add(b, name, FL_OP_GEMM, ins, 3, out, &a);
}

/* cnn-small on 1x28x28: conv1 (3x3, 16, pad 1), relu1, pool1 (2x2), conv2 (3x3, 32, pad 1),
 * relu2, pool2, flatten, fc1 (1568 -> 128), relu3, fc2 -> logits; nodes named as the chain
 * architecture names its layers (fl_arch_builtin). */
static void s_cnn_small(struct s_zb *b, int c, int h, int w, int classes)
{
    if (c != 1 || h != 28 || w != 28) {
        b->rc = fl_fail(FL_EINVAL, "zoo: cnn-small takes 1x28x28 images, not %dx%dx%d", c, h, w);
        return;
    }
    struct fl_op_attrs mp = fl_op_attrs_default();
    mp.kernel[0] = mp.kernel[1] = 2;
    mp.stride[0] = mp.stride[1] = 2;
    const char *r1 = "relu1", *r2 = "relu2";
    s_conv(b, "conv1", "input", 1, 16, 3, 1, 1);
    s_unary(b, "relu1", FL_OP_RELU, "conv1");
    s_add(b, "pool1", FL_OP_MAXPOOL, &r1, 1, NULL, &mp);
    s_conv(b, "conv2", "pool1", 16, 32, 3, 1, 1);
    s_unary(b, "relu2", FL_OP_RELU, "conv2");
    s_add(b, "pool2", FL_OP_MAXPOOL, &r2, 1, NULL, &mp);
    s_unary(b, "flatten", FL_OP_FLATTEN, "pool2");
    s_dense(b, "fc1", "flatten", 32 * 7 * 7, 128, NULL);
    s_unary(b, "relu3", FL_OP_RELU, "fc1");
    s_dense(b, "fc2", "relu3", 128, classes, "logits");
}

/* mlp on c*h*w features (a flat input): fc1 (-> 256), relu1, fc2 (-> 128), relu2, fc3 ->
 * logits, as the chain architecture names its layers. */
static void s_mlp(struct s_zb *b, int c, int h, int w, int classes)
{
    int64_t in = (int64_t)c * h * w;
    if (in > (1 << 24)) {
        b->rc = fl_fail(FL_EINVAL, "zoo: mlp on %lld features is too large", (long long)in);
        return;
    }
    b->def->in_ndim = 1;
    b->def->in_dims[0] = in, b->def->in_dims[1] = b->def->in_dims[2] = 0;
    s_dense(b, "fc1", "input", (int)in, 256, NULL);
    s_unary(b, "relu1", FL_OP_RELU, "fc1");
    s_dense(b, "fc2", "relu1", 256, 128, NULL);
    s_unary(b, "relu2", FL_OP_RELU, "fc2");
    s_dense(b, "fc3", "relu2", 128, classes, "logits");
}

static void s_resnet18_chw(struct s_zb *b, int c, int h, int w, int classes)
{
    (void)h, (void)w;
    s_resnet18(b, c, classes);
}

static void s_mobilenet_v2_chw(struct s_zb *b, int c, int h, int w, int classes)
{
    (void)h, (void)w;
    s_mobilenet_v2(b, c, classes);
}

struct s_arch {
    const char *name;                                         /* as given to fl_zoo_build */
    void (*build)(struct s_zb *, int c, int h, int w, int k); /* appends nodes and parameters */
};

static const struct s_arch s_archs[] = {{"cnn-small", s_cnn_small},
                                        {"mlp", s_mlp},
                                        {"resnet18", s_resnet18_chw},
                                        {"mobilenet_v2", s_mobilenet_v2_chw}};
static const char *const s_names[] = {"cnn-small", "mlp", "resnet18", "mobilenet_v2", NULL};

const char *const *fl_zoo_names(void)
{
    return s_names;
}

bool fl_zoo_known(const char *name)
{
    for (size_t i = 0; name && i < sizeof s_archs / sizeof s_archs[0]; i++)
        if (strcmp(s_archs[i].name, name) == 0)
            return true;
    return false;
}

void fl_zoo_free_params(struct fl_tensor *params, size_t n)
{
    for (size_t i = 0; params && i < n; i++)
        fl_tensor_free(&params[i]);
    free(params);
}

int fl_zoo_build(const char *name, int c, int h, int w, int classes, uint64_t seed,
                 struct fl_graphdef *def, struct fl_tensor **params, size_t *n)
{
    const struct s_arch *arch = NULL;
    for (size_t i = 0; name && i < sizeof s_archs / sizeof s_archs[0]; i++)
        if (strcmp(s_archs[i].name, name) == 0)
            arch = &s_archs[i];
    if (!arch)
        return fl_fail(FL_ENOTFOUND, "zoo: no architecture '%s'", name ? name : "(null)");
    if (c < 1 || c > 4096 || h < 1 || h > 8192 || w < 1 || w > 8192 || classes < 1 ||
        classes > 1000000)
        return fl_fail(FL_EINVAL, "zoo: %s for input %dx%dx%d and %d classes", name, c, h, w,
                       classes);
    struct s_zb b = {.def = def};
    fl_rng_seed(&b.rng, seed);
    fl_graphdef_init(def);
    snprintf(def->input, sizeof def->input, "input");
    snprintf(def->output, sizeof def->output, "logits");
    def->in_ndim = 3;
    def->in_dims[0] = c, def->in_dims[1] = h, def->in_dims[2] = w;
    arch->build(&b, c, h, w, classes);
    if (b.rc) {
        fl_graphdef_free(def);
        fl_zoo_free_params(b.p, b.n);
        return b.rc;
    }
    *params = b.p;
    *n = b.n;
    return 0;
}
