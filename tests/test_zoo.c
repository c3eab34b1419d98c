/* fl_zoo: resnet18 and mobilenet_v2 have torchvision's parameter counts (BatchNorm folded into
 * conv biases), torchvision's names, and the shapes torchvision gives at 32x32 and 64x64;
 * cnn-small and mlp the chain architectures' topology and names; they plan, run and train as
 * graphs. */
#include <criterion/criterion.h>

#include "fl_error.h"
#include "fl_graph.h"
#include "fl_graphdef.h"
#include "fl_zoo.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static size_t s_count(const struct fl_tensor *p, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += fl_tensor_numel(&p[i]);
    return total;
}

static fl_graph_t *s_planned(const char *arch, int hw, int batch, struct fl_graphdef *def)
{
    struct fl_tensor *p = NULL;
    size_t n = 0;
    cr_assert_eq(fl_zoo_build(arch, 3, hw, hw, 10, 1, def, &p, &n), 0, "%s", fl_error_msg());
    fl_graph_t *g = fl_graph_from_def(def, p, n, NULL);
    cr_assert_not_null(g, "%s", fl_error_msg());
    fl_zoo_free_params(p, n);
    cr_assert_eq(fl_graph_plan(g, batch, false), 0, "%s", fl_error_msg());
    return g;
}

static void s_shape_is(fl_graph_t *g, const char *value, int64_t c, int64_t h, int64_t w)
{
    int64_t d[FL_GRAPH_MAX_DIMS];
    cr_assert_eq(fl_graph_value_shape(g, value, d), 3, "%s", value);
    cr_assert(d[0] == c && d[1] == h && d[2] == w, "%s: %lldx%lldx%lld, expected %lldx%lldx%lld",
              value, (long long)d[0], (long long)d[1], (long long)d[2], (long long)c, (long long)h,
              (long long)w);
}

/* torchvision.models.resnet18(num_classes=10): 11,181,642 parameters, of which its 20
 * BatchNorms hold 2 x 4,800 (64 + 4x64 + 5x128 + 5x256 + 5x512 channels). Folded, each
 * BatchNorm leaves a conv bias of its channels: 11,181,642 - 9,600 + 4,800 = 11,176,842
 * (the same arithmetic in PyTorch 1.13 / torchvision 0.14 gives that number). */
Test(fl_zoo, resnet18_counts_and_names)
{
    struct fl_graphdef def;
    struct fl_tensor *p = NULL;
    size_t n = 0;
    cr_assert_eq(fl_zoo_build("resnet18", 3, 32, 32, 10, 1, &def, &p, &n), 0, "%s", fl_error_msg());
    cr_assert_eq(s_count(p, n), 11176842);
    cr_assert_eq(n, 2 * 20 + 2, "20 convs with bias and fc");
    const struct fl_tensor *w = fl_tensor_find(p, n, "layer4.1.conv2.weight");
    cr_assert_not_null(w);
    cr_assert(w->shape[0] == 512 && w->shape[1] == 512 && w->shape[2] == 3 && w->shape[3] == 3);
    cr_assert_not_null(fl_tensor_find(p, n, "layer2.0.downsample.0.bias"));
    cr_assert_null(fl_tensor_find(p, n, "layer1.0.downsample.0.weight"));
    cr_assert_not_null(fl_tensor_find(p, n, "fc.weight"));
    cr_assert_geq(fl_graphdef_find(&def, "layer4.1.conv2"), 0);
    cr_assert_str_eq(def.output, "logits");
    fl_graphdef_free(&def);
    fl_zoo_free_params(p, n);
}

/* torchvision.models.mobilenet_v2(num_classes=10): 2,236,682 parameters, BatchNorms 2 x
 * 17,056 channels: 2,236,682 - 34,112 + 17,056 = 2,219,626. */
Test(fl_zoo, mobilenet_v2_counts_and_names)
{
    struct fl_graphdef def;
    struct fl_tensor *p = NULL;
    size_t n = 0;
    cr_assert_eq(fl_zoo_build("mobilenet_v2", 3, 32, 32, 10, 1, &def, &p, &n), 0, "%s",
                 fl_error_msg());
    cr_assert_eq(s_count(p, n), 2219626);
    cr_assert_eq(n, 2 * 52 + 2, "52 convs with bias and the classifier");
    const struct fl_tensor *dw = fl_tensor_find(p, n, "features.17.conv.1.0.weight");
    cr_assert_not_null(dw);
    cr_assert(dw->shape[0] == 960 && dw->shape[1] == 1 && dw->shape[2] == 3);
    cr_assert_not_null(fl_tensor_find(p, n, "features.1.conv.1.weight"), "t=1: dw then project");
    cr_assert_not_null(fl_tensor_find(p, n, "features.18.0.weight"));
    cr_assert_not_null(fl_tensor_find(p, n, "classifier.1.weight"));
    fl_graphdef_free(&def);
    fl_zoo_free_params(p, n);
}

Test(fl_zoo, resnet18_shapes)
{
    for (int hw = 32; hw <= 64; hw *= 2) {
        struct fl_graphdef def;
        fl_graph_t *g = s_planned("resnet18", hw, 2, &def);
        int s = hw / 32;
        s_shape_is(g, "conv1", 64, 16 * s, 16 * s);
        s_shape_is(g, "maxpool", 64, 8 * s, 8 * s);
        s_shape_is(g, "layer1.1.relu_1", 64, 8 * s, 8 * s);
        s_shape_is(g, "layer2.0.downsample.0", 128, 4 * s, 4 * s);
        s_shape_is(g, "layer3.1.relu_1", 256, 2 * s, 2 * s);
        s_shape_is(g, "layer4.1.conv2", 512, s, s);
        s_shape_is(g, "avgpool", 512, 1, 1);
        int64_t d[FL_GRAPH_MAX_DIMS];
        cr_assert_eq(fl_graph_value_shape(g, "logits", d), 1);
        cr_assert_eq(d[0], 10);
        fl_graph_destroy(&g);
        fl_graphdef_free(&def);
    }
}

Test(fl_zoo, mobilenet_v2_shapes)
{
    for (int hw = 32; hw <= 64; hw *= 2) {
        struct fl_graphdef def;
        fl_graph_t *g = s_planned("mobilenet_v2", hw, 2, &def);
        int s = hw / 32;
        s_shape_is(g, "features.0.2", 32, 16 * s, 16 * s);
        s_shape_is(g, "features.1.conv.1", 16, 16 * s, 16 * s);
        s_shape_is(g, "features.3.add", 24, 8 * s, 8 * s);
        s_shape_is(g, "features.13.conv.2", 96, 2 * s, 2 * s);
        s_shape_is(g, "features.17.conv.0.2", 960, s, s);
        s_shape_is(g, "features.17.conv.2", 320, s, s);
        s_shape_is(g, "features.18.2", 1280, s, s);
        int64_t d[FL_GRAPH_MAX_DIMS];
        cr_assert_eq(fl_graph_value_shape(g, "logits", d), 1);
        cr_assert_eq(d[0], 10);
        fl_graph_destroy(&g);
        fl_graphdef_free(&def);
    }
}

/* LoRA on the last stage and a new head: a few steps on a fixed batch lower the loss, and
 * every output is finite. */
Test(fl_zoo, lora_fine_tuning_learns)
{
    const char *archs[2] = {"resnet18", "mobilenet_v2"};
    const char *lora[2][2] = {{"layer4.1.conv1", "layer4.1.conv2"},
                              {"features.17.conv.0.0", "features.17.conv.2"}};
    const char *head[2][2] = {{"fc.weight", "fc.bias"},
                              {"classifier.1.weight", "classifier.1.bias"}};
    for (int a = 0; a < 2; a++) {
        struct fl_graphdef def;
        struct fl_tensor *p = NULL;
        size_t n = 0;
        cr_assert_eq(fl_zoo_build(archs[a], 3, 32, 32, 4, 3, &def, &p, &n), 0);
        fl_graph_t *g = fl_graph_from_def(&def, p, n, NULL);
        cr_assert_not_null(g, "%s", fl_error_msg());
        for (int i = 0; i < 2; i++) {
            cr_assert_eq(fl_graph_add_lora(g, lora[a][i], 8, 16.0f, 5 + i, true), 0, "%s",
                         fl_error_msg());
            cr_assert_eq(fl_graph_set_trainable(g, head[a][i], true), 0);
        }
        cr_assert_eq(fl_graph_plan(g, 4, false), 0, "%s", fl_error_msg());
        float *x = malloc(4 * 3 * 32 * 32 * sizeof *x);
        for (int i = 0; i < 4 * 3 * 32 * 32; i++)
            x[i] = (float)((i * 7919) % 255) / 255.0f - 0.5f;
        int32_t y[4] = {0, 1, 2, 3};
        double first = 0, loss = 0;
        for (int step = 0; step < 8; step++) {
            cr_assert_eq(fl_graph_train_step(g, x, y, 4, &loss, NULL), 0, "%s", fl_error_msg());
            cr_assert(isfinite(loss));
            if (step == 0)
                first = loss;
            for (int k = 0; k < fl_graph_nparams(g); k++) {
                const char *pn = fl_graph_param_name(g, k);
                const float *gr = fl_graph_grad(g, pn);
                size_t len;
                float *v = fl_graph_param(g, pn, &len);
                for (size_t i = 0; gr && i < len; i++)
                    v[i] -= 0.002f * gr[i];
            }
        }
        cr_assert_lt(loss, first, "%s: loss %f after 8 steps, %f first", archs[a], loss, first);
        free(x);
        fl_graph_destroy(&g);
        fl_graphdef_free(&def);
        fl_zoo_free_params(p, n);
    }
}

Test(fl_zoo, refuses_unknown_and_bad_sizes)
{
    struct fl_graphdef def;
    struct fl_tensor *p = NULL;
    size_t n = 0;
    cr_assert_eq(fl_zoo_build("resnet50", 3, 32, 32, 10, 1, &def, &p, &n), FL_ENOTFOUND);
    cr_assert_eq(fl_zoo_build("resnet18", 0, 32, 32, 10, 1, &def, &p, &n), FL_EINVAL);
    cr_assert_eq(fl_zoo_build("mobilenet_v2", 3, 32, 32, 0, 1, &def, &p, &n), FL_EINVAL);
    cr_assert_eq(fl_zoo_build("cnn-small", 1, 32, 32, 10, 1, &def, &p, &n), FL_EINVAL);
    cr_assert_eq(fl_zoo_build("cnn-small", 3, 28, 28, 10, 1, &def, &p, &n), FL_EINVAL);
    cr_assert(fl_zoo_known("resnet18") && fl_zoo_known("mobilenet_v2"));
    cr_assert(fl_zoo_known("cnn-small") && fl_zoo_known("mlp"));
    cr_assert(!fl_zoo_known("vgg16") && !fl_zoo_known(NULL));
    cr_assert_str_eq(fl_zoo_names()[0], "cnn-small");
    cr_assert_str_eq(fl_zoo_names()[3], "mobilenet_v2");
    cr_assert_null(fl_zoo_names()[4]);
}

/* fedtl's own cnn-small and mlp: the chain architectures' topology, layer names and parameter
 * counts (cnn-small, 5 classes: 160 + 4,640 + 200,832 + 645; mlp on 784 features, 10 classes:
 * 200,960 + 32,896 + 1,290), every weight He-normal, every bias zero. */
Test(fl_zoo, builtin_chains_as_graphs)
{
    struct fl_graphdef def;
    struct fl_tensor *p = NULL;
    size_t n = 0;
    cr_assert_eq(fl_zoo_build("cnn-small", 1, 28, 28, 5, 1, &def, &p, &n), 0, "%s", fl_error_msg());
    cr_assert_eq(s_count(p, n), 206277);
    const char *nodes[] = {"conv1", "relu1",   "pool1", "conv2", "relu2",
                           "pool2", "flatten", "fc1",   "relu3", "fc2"};
    cr_assert_eq(def.nnodes, 10);
    for (int i = 0; i < 10; i++)
        cr_assert_str_eq(def.nodes[i].name, nodes[i]);
    const struct fl_tensor *b = fl_tensor_find(p, n, "fc1.bias");
    cr_assert(b && b->data[0] == 0.0f && b->data[127] == 0.0f);
    fl_graph_t *g = fl_graph_from_def(&def, p, n, NULL);
    cr_assert_not_null(g, "%s", fl_error_msg());
    cr_assert_eq(fl_graph_plan(g, 2, false), 0, "%s", fl_error_msg());
    s_shape_is(g, "pool1", 16, 14, 14);
    s_shape_is(g, "pool2", 32, 7, 7);
    int64_t d[FL_GRAPH_MAX_DIMS];
    cr_assert_eq(fl_graph_value_shape(g, "fc1", d), 1);
    cr_assert_eq(d[0], 128);
    fl_graph_destroy(&g);
    fl_graphdef_free(&def);
    fl_zoo_free_params(p, n);

    cr_assert_eq(fl_zoo_build("mlp", 784, 1, 1, 10, 1, &def, &p, &n), 0, "%s", fl_error_msg());
    cr_assert_eq(s_count(p, n), 235146);
    cr_assert(def.in_ndim == 1 && def.in_dims[0] == 784);
    cr_assert_geq(fl_graphdef_find(&def, "fc3"), 0);
    cr_assert_str_eq(def.output, "logits");
    g = fl_graph_from_def(&def, p, n, NULL);
    cr_assert_not_null(g, "%s", fl_error_msg());
    cr_assert_eq(fl_graph_plan(g, 3, false), 0, "%s", fl_error_msg());
    float x[3 * 784];
    for (int i = 0; i < 3 * 784; i++)
        x[i] = (float)(i % 17) / 17.0f;
    cr_assert_eq(fl_graph_forward(g, x, 3), 0, "%s", fl_error_msg());
    size_t per = 0;
    const float *out = fl_graph_output(g, &per);
    cr_assert_eq(per, 10);
    for (int i = 0; i < 30; i++)
        cr_assert(isfinite(out[i]));
    fl_graph_destroy(&g);
    fl_graphdef_free(&def);
    fl_zoo_free_params(p, n);
}
