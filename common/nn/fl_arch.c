/* fl_arch: names of adapter methods, layer look-up, the built-in architectures and each
 * method's defaults. */
#include "fl_arch.h"
#include "fl_error.h"

#include <stdio.h>
#include <string.h>

static const char *s_kind_names[] = {"", "head", "lora", "ffa-lora", "bitfit"};

const char *fl_adapter_kind_name(enum fl_adapter_kind kind)
{
    if (kind < FL_ADAPTER_HEAD || kind > FL_ADAPTER_BITFIT)
        return "unknown";
    return s_kind_names[kind];
}

int fl_adapter_kind_parse(const char *name, enum fl_adapter_kind *kind)
{
    for (int k = FL_ADAPTER_HEAD; k <= FL_ADAPTER_BITFIT; k++) {
        if (strcmp(name, s_kind_names[k]) == 0) {
            *kind = (enum fl_adapter_kind)k;
            return 0;
        }
    }
    return fl_fail(FL_EINVAL, "unknown method '%s' (expected head, lora, ffa-lora or bitfit)",
                   name);
}

int fl_arch_find(const struct fl_arch *arch, const char *name)
{
    for (int i = 0; i < arch->nlayers; i++)
        if (strcmp(arch->layers[i].name, name) == 0)
            return i;
    return -1;
}

static void s_layer_set(struct fl_layer_spec *l, enum fl_layer_kind kind, const char *name)
{
    memset(l, 0, sizeof *l);
    l->kind = kind;
    snprintf(l->name, sizeof l->name, "%s", name);
}

static void s_conv(struct fl_arch *a, const char *name, int in, int out, int k, int pad)
{
    struct fl_layer_spec *l = &a->layers[a->nlayers++];
    s_layer_set(l, FL_LAYER_CONV2D, name);
    l->in_ch = in;
    l->out_ch = out;
    l->kernel = k;
    l->stride = 1;
    l->pad = pad;
}

static void s_simple(struct fl_arch *a, enum fl_layer_kind kind, const char *name)
{
    struct fl_layer_spec *l = &a->layers[a->nlayers++];
    s_layer_set(l, kind, name);
    if (kind == FL_LAYER_MAXPOOL) {
        l->kernel = 2;
        l->stride = 2;
    }
}

static void s_dense(struct fl_arch *a, const char *name, int in, int out)
{
    struct fl_layer_spec *l = &a->layers[a->nlayers++];
    s_layer_set(l, FL_LAYER_DENSE, name);
    l->in_features = in;
    l->out_features = out;
}

int fl_arch_builtin(const char *name, int in_dim, int classes, struct fl_arch *out)
{
    memset(out, 0, sizeof *out);
    if (classes < 2 || classes > FL_MAX_CLASSES)
        return fl_fail(FL_EINVAL, "%d classes: a model needs 2 to %d", classes, FL_MAX_CLASSES);
    out->num_classes = classes;
    snprintf(out->name, sizeof out->name, "%s", name);
    if (strcmp(name, "cnn-small") == 0) {
        if (in_dim != 28 * 28)
            return fl_fail(FL_EINVAL,
                           "cnn-small takes 28x28 single-channel images (784 "
                           "features), the data has %d features",
                           in_dim);
        out->in_h = 28, out->in_w = 28, out->in_c = 1;
        s_conv(out, "conv1", 1, 16, 3, 1);
        s_simple(out, FL_LAYER_RELU, "relu1");
        s_simple(out, FL_LAYER_MAXPOOL, "pool1");
        s_conv(out, "conv2", 16, 32, 3, 1);
        s_simple(out, FL_LAYER_RELU, "relu2");
        s_simple(out, FL_LAYER_MAXPOOL, "pool2");
        s_simple(out, FL_LAYER_FLATTEN, "flatten");
        s_dense(out, "fc1", 7 * 7 * 32, 128);
        s_simple(out, FL_LAYER_RELU, "relu3");
        s_dense(out, "fc2", 128, classes);
        return 0;
    }
    if (strcmp(name, "mlp") == 0) {
        if (in_dim < 1)
            return fl_fail(FL_EINVAL, "mlp needs at least one input feature");
        out->in_h = 1, out->in_w = 1, out->in_c = in_dim;
        s_dense(out, "fc1", in_dim, 256);
        s_simple(out, FL_LAYER_RELU, "relu1");
        s_dense(out, "fc2", 256, 128);
        s_simple(out, FL_LAYER_RELU, "relu2");
        s_dense(out, "fc3", 128, classes);
        return 0;
    }
    return fl_fail(FL_EINVAL, "unknown architecture '%s' (expected cnn-small or mlp)", name);
}

const char *fl_arch_default_targets(const struct fl_arch *arch, enum fl_adapter_kind kind)
{
    /* Measured on Fashion-MNIST 0-4 -> 5-9 (bench/README.md): LoRA on fc1 alone matches
     * conv2+fc1 and leaves both convolutions frozen (cacheable); FFA-LoRA, whose A is random,
     * needs conv2 as well. */
    if (kind == FL_ADAPTER_HEAD)
        return "";
    if (strcmp(arch->name, "cnn-small") == 0) {
        if (kind == FL_ADAPTER_BITFIT)
            return "conv1,conv2,fc1";
        return kind == FL_ADAPTER_FFA_LORA ? "conv2,fc1" : "fc1";
    }
    return "fc1,fc2";
}

void fl_adapter_defaults(enum fl_adapter_kind kind, int *rank, float *lr)
{
    switch (kind) {
    case FL_ADAPTER_LORA:
        *rank = 4, *lr = 2e-3f;
        break;
    case FL_ADAPTER_FFA_LORA:
        *rank = 16, *lr = 1e-2f;
        break;
    default:
        *rank = 0, *lr = 1e-2f;
        break;
    }
}
