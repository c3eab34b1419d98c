/* fl_model on a graph base (fl_model_graph.c, fl_graphadapt, fl_graph_cut) and graph base
 * files (fl_graphcodec): the head replaced, LoRA / FFA-LoRA / BitFit on a small residual
 * network with a depthwise convolution, default targets, adapters through fl_adapter_pack and
 * back, the frozen-prefix cache giving the gradients of the raw input, and base files keeping
 * the graph and refusing a damaged one by name. */
#include "fl_graphbase.h"

#include <criterion/criterion.h>
#include <sodium.h>

#include "fedtl_model.pb-c.h"
#include "fl_error.h"
#include "fl_fs.h"
#include "fl_method.h"
#include "fl_model.h"
#include "fl_modelfile.h"
#include "fl_modelio.h"
#include "fl_testutil.h"
#include "fl_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define S_IN (3 * 16 * 16)

static char *s_dir;
static char *s_base_path;
static struct fl_base_file s_base;

static void s_setup(void)
{
    s_dir = fl_test_tmpdir("gmodel");
    s_base_path = fl_test_path(s_dir, "g.ftm");
    gb_write(s_base_path, 3, 7, 0, NULL);
    cr_assert_eq(fl_base_read(s_base_path, &s_base), 0, "%s", fl_error_msg());
}

static void s_teardown(void)
{
    fl_base_close(&s_base);
    fl_test_rmtree(s_dir);
    free(s_base_path);
    free(s_dir);
}

TestSuite(fl_graph_model, .init = s_setup, .fini = s_teardown);

static struct fl_adapter_meta s_meta(enum fl_adapter_kind kind, const char *targets, int classes)
{
    struct fl_adapter_meta am;
    memset(&am, 0, sizeof am);
    struct fl_method mp;
    struct fl_method_overrides mo = {.rank = 2, .targets = targets};
    cr_assert_eq(fl_method_resolve(&s_base.arch, kind, &mo, &mp), 0, "%s", fl_error_msg());
    fl_method_to_meta(&mp, &am);
    am.seed = 11;
    am.num_classes = classes;
    for (int i = 0; i < classes; i++)
        am.class_ids[i] = i;
    return am;
}

static fl_model_t *s_model(enum fl_adapter_kind kind, const char *targets, int classes)
{
    struct fl_adapter_meta am = s_meta(kind, targets, classes);
    fl_model_t *m = fl_model_from_base(&s_base, "g.ftm", &am, NULL);
    cr_assert_not_null(m, "%s", fl_error_msg());
    return m;
}

static void s_random(float *x, size_t n, uint64_t seed)
{
    struct fl_rng r;
    fl_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)fl_rng_normal(&r);
}

/* Names of a set, comma-joined. */
static const char *s_names(fl_model_t *m, enum fl_tensor_set set)
{
    static char buf[1024];
    buf[0] = '\0';
    for (size_t i = 0; i < fl_model_ntensors(m, set); i++)
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", i ? "," : "",
                 fl_model_tensor(m, set, i)->name);
    return buf;
}

static struct fl_tensor *s_tensor(fl_model_t *m, enum fl_tensor_set set, const char *name)
{
    for (size_t i = 0; i < fl_model_ntensors(m, set); i++)
        if (strcmp(fl_model_tensor(m, set, i)->name, name) == 0)
            return fl_model_tensor(m, set, i);
    return NULL;
}

Test(fl_graph_model, base_file_keeps_the_graph_and_its_hash_covers_it)
{
    cr_assert_not_null(s_base.graph);
    cr_assert_eq(s_base.arch.graph, s_base.graph);
    cr_assert_str_eq(s_base.arch.name, "tiny-resnet");
    cr_assert_eq(s_base.arch.in_c, 3);
    cr_assert_eq(s_base.arch.in_h, 16);
    cr_assert_eq(s_base.arch.num_classes, 3);
    struct fl_graphdef d;
    gb_def(&d);
    cr_assert_eq(s_base.graph->nnodes, d.nnodes);
    cr_assert_str_eq(s_base.graph->input, "x");
    cr_assert_str_eq(s_base.graph->output, "logits");
    for (int i = 0; i < d.nnodes; i++) {
        const struct fl_gdef_node *a = &d.nodes[i], *b = &s_base.graph->nodes[i];
        cr_assert_str_eq(a->name, b->name);
        cr_assert_eq(a->op, b->op);
        cr_assert_eq(a->nin, b->nin);
        for (int k = 0; k < a->nin; k++)
            cr_assert_str_eq(a->in[k], b->in[k]);
        cr_assert_str_eq(a->out, b->out);
        cr_assert_eq(memcmp(&a->a, &b->a, sizeof a->a), 0, "attributes of %s", a->name);
    }
    fl_graphdef_free(&d);
    /* The same tensors under another graph (a stride changed) make another base. */
    uint8_t h1[FL_HASH_BYTES];
    char *p2 = fl_test_path(s_dir, "g2.ftm");
    struct fl_graphdef d2;
    fl_graphdef_copy(&d2, s_base.graph);
    d2.nodes[fl_graphdef_find(&d2, "conv3")].a.stride[0] = 2;
    struct fl_arch a2 = s_base.arch;
    a2.graph = &d2;
    cr_assert_eq(fl_base_write(p2, &a2, &s_base.meta, s_base.tensors, s_base.ntensors, h1), 0, "%s",
                 fl_error_msg());
    cr_assert_neq(memcmp(h1, s_base.hash, FL_HASH_BYTES), 0);
    fl_graphdef_free(&d2);
    free(p2);
}

/* Rewrite the graph base with its header's graph changed by fn, a valid hash and no tensors:
 * only the graph's validation can refuse it. */
typedef void(s_damage_fn)(Fedtl__Graph *g, char *scratch);

static char *s_forge(const char *name, s_damage_fn *fn)
{
    uint8_t *buf;
    size_t len;
    cr_assert_eq(fl_fs_read_file(s_base_path, (size_t)1 << 24, &buf, &len), 0);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | buf[16 + i];
    Fedtl__BaseHeader *h = fedtl__base_header__unpack(NULL, hlen, buf + 56);
    cr_assert_not_null(h);
    cr_assert_not_null(h->graph);
    Fedtl__Graph saved = *h->graph;
    Fedtl__GraphNode node0 = *h->graph->nodes[0];
    char *input0 = node0.inputs[0];
    size_t ntensors = h->n_tensors;
    h->n_tensors = 0;
    char scratch[256];
    fn(h->graph, scratch);
    size_t n = fedtl__base_header__get_packed_size(h);
    uint8_t *out = calloc(1, 56 + n);
    memcpy(out, buf, 24);
    for (int i = 0; i < 8; i++)
        out[16 + i] = (uint8_t)((uint64_t)n >> (8 * i));
    fedtl__base_header__pack(h, out + 56);
    *h->graph->nodes[0] = node0;
    node0.inputs[0] = input0;
    *h->graph = saved;
    h->n_tensors = ntensors;
    fedtl__base_header__free_unpacked(h, NULL);
    cr_assert_geq(sodium_init(), 0);
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, FL_HASH_BYTES);
    crypto_generichash_update(&st, out, 24);
    crypto_generichash_update(&st, out + 56, n);
    crypto_generichash_final(&st, out + 24, FL_HASH_BYTES);
    char *path = fl_test_path(s_dir, name);
    cr_assert_eq(fl_fs_write_file(path, out, 56 + n, 0644), 0);
    free(out);
    free(buf);
    return path;
}

static void s_nothing(Fedtl__Graph *g, char *s) {}
static void s_bad_op(Fedtl__Graph *g, char *s)
{
    g->nodes[0]->op = (Fedtl__Op)99;
}
static void s_long_name(Fedtl__Graph *g, char *s)
{
    memset(s, 'n', 80);
    s[80] = '\0';
    g->nodes[0]->name = s;
}
static void s_zero_stride(Fedtl__Graph *g, char *s)
{
    g->nodes[0]->stride[1] = 0;
}
static void s_nan_alpha(Fedtl__Graph *g, char *s)
{
    g->nodes[0]->alpha = NAN;
}
static void s_twice(Fedtl__Graph *g, char *s)
{
    g->nodes[0]->name = g->nodes[1]->name;
}
static void s_no_input_dims(Fedtl__Graph *g, char *s)
{
    g->n_input_dims = 0;
}
static void s_huge_input(Fedtl__Graph *g, char *s)
{
    g->input_dims[1] = (int64_t)1 << 40;
}
static void s_few_pads(Fedtl__Graph *g, char *s)
{
    g->nodes[0]->n_pads = 2;
}
static void s_empty_input_name(Fedtl__Graph *g, char *s)
{
    s[0] = '\0';
    g->nodes[0]->inputs[0] = s;
}

Test(fl_graph_model, damaged_graph_headers_are_refused_naming_the_file)
{
    static const struct {
        const char *file;
        s_damage_fn *fn;
        const char *says;
    } cases[] = {
        {"op.ftm", s_bad_op, "unknown op 99"},
        {"name.ftm", s_long_name, "longer than 63"},
        {"stride.ftm", s_zero_stride, "out of range"},
        {"nan.ftm", s_nan_alpha, "non-finite"},
        {"twice.ftm", s_twice, "appears twice"},
        {"dims.ftm", s_no_input_dims, "0 axes"},
        {"huge.ftm", s_huge_input, "axis 1"},
        {"pads.ftm", s_few_pads, "number of inputs or of attribute"},
        {"empty.ftm", s_empty_input_name, "input 0 has no valid name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *path = s_forge(cases[i].file, cases[i].fn);
        struct fl_base_file bf;
        cr_assert_eq(fl_base_read(path, &bf), FL_EFORMAT, "%s: %s", cases[i].file, fl_error_msg());
        cr_assert(strstr(fl_error_msg(), path), "%s", fl_error_msg());
        cr_assert(strstr(fl_error_msg(), cases[i].says), "%s: %s", cases[i].says, fl_error_msg());
        cr_assert_null(bf.graph);
        fl_base_close(&bf);
        free(path);
    }
    /* Undamaged, the same forgery reads; the model misses the tensors and says which. */
    char *path = s_forge("fine.ftm", s_nothing);
    struct fl_base_file bf;
    cr_assert_eq(fl_base_read(path, &bf), 0, "%s", fl_error_msg());
    cr_assert_eq(bf.graph->nnodes, s_base.graph->nnodes);
    cr_assert_null(fl_model_from_base(&bf, path, NULL, NULL));
    cr_assert(strstr(fl_error_msg(), "missing"), "%s", fl_error_msg());
    fl_base_close(&bf);
    free(path);
}

Test(fl_graph_model, default_targets_follow_the_documented_rule)
{
    struct fl_method mp;
    cr_assert_eq(fl_method_resolve(&s_base.arch, FL_ADAPTER_LORA, NULL, &mp), 0);
    cr_assert_eq(mp.ntargets, 2);
    cr_assert_str_eq(mp.targets[0], "pw"); /* "dw" is depthwise: never a LoRA default */
    cr_assert_str_eq(mp.targets[1], "conv3");
    cr_assert_eq(fl_method_resolve(&s_base.arch, FL_ADAPTER_BITFIT, NULL, &mp), 0);
    cr_assert_eq(mp.ntargets, 4); /* from the stem's stride-2 convolution on */
    cr_assert_str_eq(mp.targets[0], "stem");
    cr_assert_str_eq(mp.targets[3], "conv3");
    cr_assert_eq(fl_method_resolve(&s_base.arch, FL_ADAPTER_HEAD, NULL, &mp), 0);
    cr_assert_eq(mp.ntargets, 0);
    cr_assert_eq(fl_graphadapt_head(s_base.graph), fl_graphdef_find(s_base.graph, "fc"));
}

Test(fl_graph_model, frozen_base_runs_and_a_head_replaces_the_last_gemm)
{
    fl_model_t *base = fl_model_from_base(&s_base, "g.ftm", NULL, NULL);
    cr_assert_not_null(base, "%s", fl_error_msg());
    cr_assert_eq(fl_model_num_classes(base), 3);
    cr_assert_eq(fl_model_input_dim(base), S_IN);
    cr_assert_eq(fl_model_ntensors(base, FL_SET_TRAINABLE), 0);
    cr_assert_eq(fl_model_frozen_prefix(base), 0);
    float x[4 * S_IN], want[4 * 3], got[4 * 3];
    s_random(x, 4 * S_IN, 1);
    cr_assert_eq(fl_model_forward(base, x, 4, want), 0, "%s", fl_error_msg());

    fl_model_t *m = s_model(FL_ADAPTER_HEAD, NULL, 3);
    cr_assert_str_eq(s_names(m, FL_SET_ADAPTER), "head.weight,head.bias");
    cr_assert_str_eq(s_names(m, FL_SET_TRAINABLE), "head.weight,head.bias");
    cr_assert_eq(fl_model_param_count(m, true), 3 * 16 + 3);
    cr_assert_eq(fl_model_param_count(m, false), fl_model_param_count(base, false));
    /* The new head given the old head's values computes the base's logits. */
    memcpy(s_tensor(m, FL_SET_ADAPTER, "head.weight")->data, fl_base_tensor(&s_base, "fc.w")->data,
           sizeof(float) * 48);
    memcpy(s_tensor(m, FL_SET_ADAPTER, "head.bias")->data, fl_base_tensor(&s_base, "fc.b")->data,
           sizeof(float) * 3);
    cr_assert_eq(fl_model_forward(m, x, 4, got), 0);
    for (int i = 0; i < 12; i++)
        cr_assert_float_eq(got[i], want[i], 1e-5, "logit %d", i);
    /* Only the head trains: the prefix up to it is cached. */
    cr_assert_eq(fl_model_frozen_prefix(m), 1);
    cr_assert_eq(fl_model_act_dim(m, 1), 16);
    fl_model_destroy(&m);
    m = s_model(FL_ADAPTER_HEAD, NULL, 5);
    cr_assert_eq(fl_model_num_classes(m), 5);
    cr_assert_eq(s_tensor(m, FL_SET_ADAPTER, "head.weight")->shape[0], 5);
    fl_model_destroy(&m);
    fl_model_destroy(&base);
}

Test(fl_graph_model, lora_ffa_and_bitfit_adapt_graph_nodes)
{
    fl_model_t *m = s_model(FL_ADAPTER_LORA, "pw,conv3", 4);
    cr_assert_str_eq(s_names(m, FL_SET_ADAPTER),
                     "head.weight,head.bias,pw.lora_A,pw.lora_B,conv3.lora_A,conv3.lora_B");
    cr_assert_eq(s_tensor(m, FL_SET_ADAPTER, "conv3.lora_A")->shape[1], 8 * 9);
    cr_assert_eq(s_tensor(m, FL_SET_ADAPTER, "conv3.lora_B")->shape[0], 16);
    cr_assert_eq(fl_model_param_count(m, true), 4 * 16 + 4 + 2 * 8 + 8 * 2 + 2 * 72 + 16 * 2);
    fl_model_destroy(&m);

    m = s_model(FL_ADAPTER_FFA_LORA, "pw", 4);
    cr_assert_str_eq(s_names(m, FL_SET_ADAPTER), "head.weight,head.bias,pw.lora_B");
    cr_assert_str_eq(s_names(m, FL_SET_TRAINABLE), "head.weight,head.bias,pw.lora_B");
    fl_model_destroy(&m);

    m = s_model(FL_ADAPTER_BITFIT, "stem,dw,pw", 4);
    cr_assert_str_eq(s_names(m, FL_SET_ADAPTER), "head.weight,head.bias,stem.bias,dw.bias,pw.bias");
    const struct fl_tensor *b = s_tensor(m, FL_SET_ADAPTER, "stem.bias");
    cr_assert_eq(memcmp(b->data, fl_base_tensor(&s_base, "stem.b")->data, 8 * sizeof(float)), 0,
                 "BitFit starts from the base's bias");
    b = s_tensor(m, FL_SET_ADAPTER, "pw.bias");
    for (int i = 0; i < 8; i++)
        cr_assert_eq(b->data[i], 0.0f, "a convolution without bias gets a zero one");
    cr_assert_eq(fl_model_frozen_prefix(m), 0, "BitFit on the stem leaves nothing frozen");
    fl_model_destroy(&m);

    struct fl_adapter_meta am = s_meta(FL_ADAPTER_LORA, "dw", 4);
    cr_assert_null(fl_model_from_base(&s_base, "g.ftm", &am, NULL));
    cr_assert(strstr(fl_error_msg(), "depthwise takes BitFit only"), "%s", fl_error_msg());
    static const char *const bad[] = {"nope", "fc", "skip", "pw,pw"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        am = s_meta(FL_ADAPTER_LORA, bad[i], 4);
        cr_assert_null(fl_model_from_base(&s_base, "g.ftm", &am, NULL), "%s", bad[i]);
    }
}

/* Train a few steps and check the loss falls on a learnable task (class = sign pattern). */
Test(fl_graph_model, training_a_graph_adapter_lowers_the_loss)
{
    fl_model_t *m = s_model(FL_ADAPTER_LORA, "pw,conv3", 2);
    struct fl_dataset ds = {0};
    ds.n = 96;
    ds.dim = S_IN;
    ds.num_classes = 2;
    ds.x = fl_falloc(ds.n * ds.dim);
    ds.y = calloc(ds.n, sizeof *ds.y);
    s_random(ds.x, ds.n * ds.dim, 5);
    for (size_t i = 0; i < ds.n; i++) {
        ds.y[i] = (int32_t)(i % 2);
        for (size_t j = 0; j < 256; j++)
            ds.x[i * ds.dim + j] += ds.y[i] ? 1.5f : -1.5f;
    }
    struct fl_train_opts o;
    fl_train_opts_default(&o);
    o.epochs = 1;
    o.batch = 32;
    o.lr = 1e-2f;
    struct fl_epoch_stats first, last;
    cr_assert_eq(fl_train(m, &ds, &o, NULL, NULL, &first), 0, "%s", fl_error_msg());
    o.epochs = 6;
    cr_assert_eq(fl_train(m, &ds, &o, NULL, NULL, &last), 0, "%s", fl_error_msg());
    cr_assert_lt(last.loss, first.loss, "%g then %g", first.loss, last.loss);
    cr_assert_gt(last.cached, 0, "the frozen prefix was cached");
    free(ds.x);
    free(ds.y);
    fl_model_destroy(&m);
}

/* Randomise an adapter's tensors (so that LoRA's B is not zero and every path matters). */
static void s_shake(fl_model_t *m, uint64_t seed)
{
    for (size_t i = 0; i < fl_model_ntensors(m, FL_SET_ADAPTER); i++) {
        struct fl_tensor *t = fl_model_tensor(m, FL_SET_ADAPTER, i);
        s_random(t->data, fl_tensor_numel(t), seed + i);
        for (size_t j = 0; j < fl_tensor_numel(t); j++)
            t->data[j] *= 0.2f;
    }
}

static void s_round_trip(enum fl_adapter_kind kind, const char *targets)
{
    fl_model_t *m = s_model(kind, targets, 4);
    s_shake(m, 40);
    uint8_t *buf;
    size_t len;
    cr_assert_eq(fl_model_pack_adapter(m, 3, &buf, &len), 0, "%s", fl_error_msg());
    struct fl_adapter_file af;
    cr_assert_eq(fl_adapter_unpack(buf, len, "round trip", &af), 0, "%s", fl_error_msg());
    cr_assert_eq(af.meta.round, 3);
    cr_assert_eq(fl_adapter_check_base(&af, "a", s_base.hash, "g.ftm"), 0);
    fl_model_t *m2 = fl_model_from_base(&s_base, "g.ftm", &af.meta, NULL);
    cr_assert_not_null(m2, "%s", fl_error_msg());
    cr_assert_eq(fl_model_set_adapter(m2, &af, "round trip"), 0, "%s", fl_error_msg());
    float x[3 * S_IN], a[12], b[12];
    s_random(x, 3 * S_IN, 9);
    cr_assert_eq(fl_model_forward(m, x, 3, a), 0);
    cr_assert_eq(fl_model_forward(m2, x, 3, b), 0);
    for (int i = 0; i < 12; i++)
        cr_assert_float_eq(a[i], b[i], 1e-6, "%s logit %d", fl_adapter_kind_name(kind), i);
    /* Another configuration does not load. */
    fl_model_t *other = s_model(kind, kind == FL_ADAPTER_HEAD ? NULL : "conv3", 4);
    if (kind != FL_ADAPTER_HEAD && strcmp(targets, "conv3") != 0)
        cr_assert_eq(fl_model_set_adapter(other, &af, "other"), FL_EMISMATCH);
    fl_model_destroy(&other);
    fl_adapter_close(&af);
    free(buf);
    fl_model_destroy(&m2);
    fl_model_destroy(&m);
}

Test(fl_graph_model, adapters_round_trip_through_their_bytes)
{
    s_round_trip(FL_ADAPTER_HEAD, NULL);
    s_round_trip(FL_ADAPTER_LORA, "pw,conv3");
    s_round_trip(FL_ADAPTER_FFA_LORA, "stem,pw"); /* A rebuilt from the seed */
    s_round_trip(FL_ADAPTER_BITFIT, "dw,conv3");
}

/* A training step from cached frontiers gives the gradients of the step from raw records. */
static void s_cache_equivalence(enum fl_adapter_kind kind, const char *targets, size_t front)
{
    fl_model_t *m = s_model(kind, targets, 3);
    s_shake(m, 60);
    cr_assert_eq(fl_model_frozen_prefix(m), 1, "%s", targets);
    cr_assert_eq(fl_model_act_dim(m, 1), front, "%s", targets);
    enum { N = 70 }; /* more than a graph runs at once */
    float *x = malloc(sizeof(float) * N * S_IN), *cache = malloc(sizeof(float) * N * front);
    int32_t y[N];
    s_random(x, (size_t)N * S_IN, 61);
    for (int i = 0; i < N; i++)
        y[i] = i % 3;
    double l0, l1;
    int c0, c1;
    cr_assert_eq(fl_model_train_step(m, 0, x, y, N, &l0, &c0), 0, "%s", fl_error_msg());
    size_t nt = fl_model_ntensors(m, FL_SET_TRAINABLE), total = 0;
    float *g0[16];
    for (size_t i = 0; i < nt; i++) {
        size_t len = fl_tensor_numel(fl_model_tensor(m, FL_SET_TRAINABLE, i));
        g0[i] = malloc(sizeof(float) * len);
        memcpy(g0[i], fl_model_grad(m, i), sizeof(float) * len);
    }
    cr_assert_eq(fl_model_forward_prefix(m, x, N, 1, cache), 0, "%s", fl_error_msg());
    cr_assert_eq(fl_model_train_step(m, 1, cache, y, N, &l1, &c1), 0, "%s", fl_error_msg());
    cr_assert_float_eq(l0, l1, 1e-6);
    cr_assert_eq(c0, c1);
    for (size_t i = 0; i < nt; i++) {
        const struct fl_tensor *t = fl_model_tensor(m, FL_SET_TRAINABLE, i);
        double norm = 0;
        for (size_t j = 0; j < fl_tensor_numel(t); j++) {
            cr_assert_float_eq(fl_model_grad(m, i)[j], g0[i][j], 1e-5, "%s[%zu]", t->name, j);
            norm += fabs(g0[i][j]);
        }
        cr_assert_gt(norm, 0, "%s has a gradient", t->name);
        total += fl_tensor_numel(t);
        free(g0[i]);
    }
    cr_assert_gt(total, 0);
    free(x);
    free(cache);
    fl_model_destroy(&m);
}

Test(fl_graph_model, training_from_the_cache_gives_the_gradients_of_raw_input)
{
    /* LoRA on the pointwise conv: the skip connection crosses the cut, two values cached. */
    s_cache_equivalence(FL_ADAPTER_LORA, "pw", 2 * 8 * 8 * 8);
    s_cache_equivalence(FL_ADAPTER_FFA_LORA, "conv3", 8 * 8 * 8);
    s_cache_equivalence(FL_ADAPTER_BITFIT, "conv3", 8 * 8 * 8);
}

Test(fl_graph_model, normalisation_per_channel_is_applied)
{
    char *path = fl_test_path(s_dir, "norm.ftm");
    gb_write(path, 3, 7, 3, NULL); /* same weights, mean 0.1 c, std 1 + 0.5 c per channel */
    struct fl_base_file bf;
    cr_assert_eq(fl_base_read(path, &bf), 0, "%s", fl_error_msg());
    fl_model_t *m = fl_model_from_base(&bf, path, NULL, NULL);
    fl_model_t *plain = fl_model_from_base(&s_base, "g.ftm", NULL, NULL);
    cr_assert_not_null(m, "%s", fl_error_msg());
    float x[S_IN], xn[S_IN], a[3], b[3];
    s_random(x, S_IN, 3);
    for (int i = 0; i < S_IN; i++) {
        int c = i / 256;
        xn[i] = (x[i] - 0.1f * (float)c) / (1.0f + 0.5f * (float)c);
    }
    cr_assert_eq(fl_model_forward(m, x, 1, a), 0);
    cr_assert_eq(fl_model_forward(plain, xn, 1, b), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_float_eq(a[i], b[i], 1e-5);
    cr_assert_eq(fl_model_set_norm(plain, x, x, 5), FL_EINVAL);
    fl_model_destroy(&m);
    fl_model_destroy(&plain);
    fl_base_close(&bf);
    gb_write(path, 3, 7, 5, NULL);
    cr_assert_eq(fl_base_read(path, &bf), 0);
    cr_assert_null(fl_model_from_base(&bf, path, NULL, NULL));
    cr_assert(strstr(fl_error_msg(), "norm.mean"), "%s", fl_error_msg());
    fl_base_close(&bf);
    free(path);
}

/* Mean loss of the batch at the model's current values. */
static double s_loss(fl_model_t *m, const float *x, const int32_t *y, int n)
{
    double loss;
    int hits;
    cr_assert_eq(fl_model_train_step(m, 0, x, y, n, &loss, &hits), 0, "%s", fl_error_msg());
    return loss;
}

Test(fl_graph_model, lora_on_a_grouped_convolution_has_the_finite_difference_gradient)
{
    struct fl_graphdef d;
    fl_graphdef_init(&d);
    snprintf(d.input, sizeof d.input, "in");
    snprintf(d.output, sizeof d.output, "out");
    d.in_ndim = 3;
    d.in_dims[0] = 4, d.in_dims[1] = d.in_dims[2] = 6;
    struct fl_op_attrs g2 = fl_op_attrs_default(), fc = fl_op_attrs_default();
    g2.group = 2;
    g2.pads[0] = g2.pads[1] = g2.pads[2] = g2.pads[3] = 1;
    fc.trans_b = true;
    gb_node(&d, "grouped", FL_OP_CONV, "in", "g.w", NULL, "c", &g2);
    gb_node(&d, "relu", FL_OP_RELU, "c", NULL, NULL, "r", NULL);
    gb_node(&d, "gap", FL_OP_GLOBALAVGPOOL, "r", NULL, NULL, "p", NULL);
    gb_node(&d, "flat", FL_OP_FLATTEN, "p", NULL, NULL, "f", NULL);
    gb_node(&d, "fc", FL_OP_MATMUL, "f", "fc.w", NULL, "out", &fc);
    struct fl_tensor t[2];
    int64_t ws[4] = {4, 2, 3, 3}, fs[2] = {4, 2};
    cr_assert_eq(fl_tensor_init(&t[0], "g.w", 4, ws), 0);
    cr_assert_eq(fl_tensor_init(&t[1], "fc.w", 2, fs), 0);
    s_random(t[0].data, 72, 30);
    s_random(t[1].data, 8, 31);
    struct fl_arch arch;
    cr_assert_eq(fl_arch_from_graph(&d, "grouped", 2, &arch), 0);
    uint8_t hash[FL_HASH_BYTES] = {0};
    struct fl_adapter_meta am;
    memset(&am, 0, sizeof am);
    am.kind = FL_ADAPTER_LORA;
    am.rank = 2;
    am.alpha = 4;
    am.ntargets = 1;
    snprintf(am.targets[0], sizeof am.targets[0], "grouped");
    am.num_classes = 3; /* the MatMul head [4, 2] becomes a Gemm [3, 4] */
    fl_model_t *m = fl_model_new_frozen(&arch, t, 2, hash, "grouped", &am, NULL);
    cr_assert_not_null(m, "%s", fl_error_msg());
    cr_assert_eq(s_tensor(m, FL_SET_ADAPTER, "grouped.lora_A")->shape[1], 2 * 9);
    cr_assert_eq(s_tensor(m, FL_SET_ADAPTER, "grouped.lora_B")->shape[0], 4);
    s_shake(m, 32);
    enum { N = 5 };
    float x[N * 144];
    int32_t y[N] = {0, 1, 2, 1, 0};
    s_random(x, N * 144, 33);
    s_loss(m, x, y, N);
    for (size_t i = 0; i < fl_model_ntensors(m, FL_SET_TRAINABLE); i++) {
        struct fl_tensor *p = fl_model_tensor(m, FL_SET_TRAINABLE, i);
        for (size_t j = 0; j < fl_tensor_numel(p); j += 3) {
            s_loss(m, x, y, N);
            double g = fl_model_grad(m, i)[j];
            float keep = p->data[j];
            p->data[j] = keep + 1e-2f;
            double up = s_loss(m, x, y, N);
            p->data[j] = keep - 1e-2f;
            double down = s_loss(m, x, y, N);
            p->data[j] = keep;
            double fd = (up - down) / 2e-2;
            cr_assert(fabs(fd - g) < 2e-3 + 2e-2 * fabs(fd), "%s[%zu]: %g vs %g", p->name, j, g,
                      fd);
        }
    }
    fl_model_destroy(&m);
    fl_tensor_free(&t[0]);
    fl_tensor_free(&t[1]);
    fl_graphdef_free(&d);
}

Test(fl_graph_model, the_cut_names_the_values_that_cross_it)
{
    fl_graph_t *g = fl_graph_from_def(s_base.graph, s_base.tensors, s_base.ntensors, NULL);
    cr_assert_not_null(g, "%s", fl_error_msg());
    cr_assert_eq(fl_graph_set_trainable(g, "pw.w", true), 0);
    cr_assert_eq(fl_graph_plan(g, 4, false), 0, "%s", fl_error_msg());
    fl_graph_cut_t *c = fl_graph_cut_new(g);
    cr_assert_not_null(c);
    cr_assert_eq(fl_graph_cut_nvalues(c), 2);
    cr_assert_str_eq(fl_graph_cut_value(c, 0), "sr"); /* the skip connection's */
    cr_assert_str_eq(fl_graph_cut_value(c, 1), "dr"); /* the pointwise conv's input */
    cr_assert_null(fl_graph_cut_value(c, 2));
    cr_assert_eq(fl_graph_cut_dim(c), 2 * 8 * 8 * 8);
    float x[2 * S_IN], packed[2 * 1024], direct[6], cached[6];
    s_random(x, 2 * S_IN, 70);
    cr_assert_eq(fl_graph_forward(g, x, 2), 0);
    memcpy(direct, fl_graph_output(g, NULL), sizeof direct);
    cr_assert_eq(fl_graph_cut_forward_prefix(c, x, 2, packed), 0);
    cr_assert_eq(fl_graph_cut_forward_rest(c, packed, 2), 0);
    memcpy(cached, fl_graph_output(g, NULL), sizeof cached);
    for (int i = 0; i < 6; i++)
        cr_assert_float_eq(cached[i], direct[i], 1e-6);
    cr_assert_eq(fl_graph_cut_forward_rest(c, packed, 5), FL_EINVAL, "more than planned");
    fl_graph_cut_destroy(&c);
    fl_graph_cut_destroy(&c);
    fl_graph_destroy(&g);
    /* The input itself crossing the cut (the stem trained) leaves nothing to cache. */
    g = fl_graph_from_def(s_base.graph, s_base.tensors, s_base.ntensors, NULL);
    cr_assert_eq(fl_graph_set_trainable(g, "stem.w", true), 0);
    cr_assert_eq(fl_graph_plan(g, 4, false), 0);
    c = fl_graph_cut_new(g);
    cr_assert_eq(fl_graph_cut_dim(c), 0);
    cr_assert_eq(fl_graph_cut_forward_prefix(c, x, 1, packed), FL_EINVAL);
    fl_graph_cut_destroy(&c);
    fl_graph_destroy(&g);
}

Test(fl_graph_model, bitfit_on_a_depthwise_convolution_has_the_finite_difference_gradient)
{
    fl_model_t *m = s_model(FL_ADAPTER_BITFIT, "dw,pw", 3);
    s_shake(m, 80);
    enum { N = 4 };
    float x[N * S_IN];
    int32_t y[N] = {0, 1, 2, 1};
    s_random(x, N * S_IN, 81);
    for (size_t i = 0; i < fl_model_ntensors(m, FL_SET_TRAINABLE); i++) {
        struct fl_tensor *p = fl_model_tensor(m, FL_SET_TRAINABLE, i);
        if (strcmp(p->name, "dw.bias") != 0 && strcmp(p->name, "pw.bias") != 0)
            continue;
        for (size_t j = 0; j < fl_tensor_numel(p); j++) {
            s_loss(m, x, y, N);
            double g = fl_model_grad(m, i)[j];
            float keep = p->data[j];
            p->data[j] = keep + 1e-2f;
            double up = s_loss(m, x, y, N);
            p->data[j] = keep - 1e-2f;
            double down = s_loss(m, x, y, N);
            p->data[j] = keep;
            double fd = (up - down) / 2e-2;
            cr_assert(fabs(fd - g) < 2e-3 + 2e-2 * fabs(fd), "%s[%zu]: %g vs %g", p->name, j, g,
                      fd);
        }
    }
    fl_model_destroy(&m);
}
