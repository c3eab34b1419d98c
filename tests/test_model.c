/* fl_model: end-to-end gradient checks through the model for a fresh network and for every
 * adapter kind over a frozen base built in memory from a fresh model's tensors; the base stays
 * frozen; training is reproducible and the frozen-prefix cache changes nothing but the speed.
 * (Models built from base and adapter files are tested in test_modelfile.c.) */
#include <criterion/criterion.h>

#include "fl_error.h"
#include "fl_model.h"
#include "fl_pool.h"
#include "fl_rng.h"
#include "fl_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A small CNN with every layer kind: 6x6x2 -> conv3(4,pad1) relu pool2 -> conv3(5,pad1) relu
 * -> flatten -> dense(45->7) relu -> dense(7->3). */
static void s_tiny_arch(struct fl_arch *a)
{
    memset(a, 0, sizeof *a);
    strcpy(a->name, "tiny");
    a->in_h = 6, a->in_w = 6, a->in_c = 2, a->num_classes = 3;
    struct fl_layer_spec L[] = {
        {.kind = FL_LAYER_CONV2D,
         .name = "conv1",
         .in_ch = 2,
         .out_ch = 4,
         .kernel = 3,
         .stride = 1,
         .pad = 1},
        {.kind = FL_LAYER_RELU, .name = "relu1"},
        {.kind = FL_LAYER_MAXPOOL, .name = "pool1", .kernel = 2, .stride = 2},
        {.kind = FL_LAYER_CONV2D,
         .name = "conv2",
         .in_ch = 4,
         .out_ch = 5,
         .kernel = 3,
         .stride = 1,
         .pad = 1},
        {.kind = FL_LAYER_RELU, .name = "relu2"},
        {.kind = FL_LAYER_FLATTEN, .name = "flatten"},
        {.kind = FL_LAYER_DENSE, .name = "fc1", .in_features = 45, .out_features = 7},
        {.kind = FL_LAYER_RELU, .name = "relu3"},
        {.kind = FL_LAYER_DENSE, .name = "fc2", .in_features = 7, .out_features = 3},
    };
    a->nlayers = (int32_t)(sizeof L / sizeof L[0]);
    memcpy(a->layers, L, sizeof L);
}

static void s_random_batch(struct fl_rng *r, float *x, int32_t *y, int n, int dim, int k)
{
    for (int i = 0; i < n * dim; i++)
        x[i] = (float)fl_rng_normal(r);
    for (int i = 0; i < n; i++)
        y[i] = (int32_t)fl_rng_below(r, (uint64_t)k);
}

/* Compare every trainable tensor's gradient (a sample of entries) with finite differences. */
static void s_gradcheck(fl_model_t *m, uint64_t seed)
{
    enum { N = 4 };
    struct fl_rng r;
    fl_rng_seed(&r, seed);
    int dim = (int)fl_model_input_dim(m), k = fl_model_num_classes(m);
    float *x = malloc(sizeof(float) * N * dim);
    int32_t y[N];
    s_random_batch(&r, x, y, N, dim, k);
    double loss;
    int correct;
    cr_assert_eq(fl_model_train_step(m, 0, x, y, N, &loss, &correct), 0);
    size_t nt = fl_model_ntensors(m, FL_SET_TRAINABLE);
    cr_assert_gt(nt, 0);
    float **grads = calloc(nt, sizeof *grads);
    for (size_t t = 0; t < nt; t++) {
        size_t len = fl_tensor_numel(fl_model_tensor(m, FL_SET_TRAINABLE, t));
        grads[t] = malloc(sizeof(float) * len);
        memcpy(grads[t], fl_model_grad(m, t), sizeof(float) * len);
    }
    const float eps = 2e-3f;
    int checked = 0, bad = 0;
    for (size_t t = 0; t < nt; t++) {
        struct fl_tensor *p = fl_model_tensor(m, FL_SET_TRAINABLE, t);
        size_t len = fl_tensor_numel(p);
        for (int s = 0; s < 12; s++) {
            size_t i = (size_t)fl_rng_below(&r, len);
            float keep = p->data[i];
            double up, down;
            p->data[i] = keep + eps;
            fl_model_train_step(m, 0, x, y, N, &up, &correct);
            p->data[i] = keep - eps;
            fl_model_train_step(m, 0, x, y, N, &down, &correct);
            p->data[i] = keep;
            double num = (up - down) / (2 * eps), ana = grads[t][i];
            double tol = 3e-2 * fmax(fabs(num), fabs(ana)) + 1e-3;
            checked++;
            if (fabs(num - ana) > tol) {
                bad++;
                cr_log_warn("%s[%zu]: numeric %.6f analytic %.6f", p->name, i, num, ana);
            }
        }
        free(grads[t]);
    }
    free(grads);
    free(x);
    /* ReLU and max-pool kinks may spoil a rare sample; a wrong gradient spoils most. */
    cr_assert_leq(bad, checked / 50, "%d of %d gradient entries disagree", bad, checked);
}

Test(fl_model, fresh_model_gradients_match_finite_differences)
{
    struct fl_arch a;
    s_tiny_arch(&a);
    fl_model_t *m = fl_model_new(&a, 42, NULL);
    cr_assert_not_null(m, "%s", fl_error_msg());
    cr_assert_eq(fl_model_frozen_prefix(m), 0);
    s_gradcheck(m, 1);
    fl_model_destroy(&m);
    cr_assert_null(m);
    fl_model_destroy(&m);
}

/* A frozen base in memory: the base tensors of a fresh model, which frozen models borrow. */
struct s_base {
    struct fl_arch arch;         /* the tiny architecture */
    fl_model_t *owner;           /* the fresh model that owns the tensors */
    struct fl_tensor *tensors;   /* its base set, borrowing its data */
    size_t n;                    /* entries in tensors */
    uint8_t hash[FL_HASH_BYTES]; /* an identity for the base (any bytes will do) */
};

static void s_base_new(struct s_base *b)
{
    memset(b, 0, sizeof *b);
    s_tiny_arch(&b->arch);
    b->owner = fl_model_new(&b->arch, 7, NULL);
    cr_assert_not_null(b->owner, "%s", fl_error_msg());
    b->tensors = fl_model_tensors(b->owner, FL_SET_BASE, &b->n);
    cr_assert_not_null(b->tensors);
    for (int i = 0; i < FL_HASH_BYTES; i++)
        b->hash[i] = (uint8_t)(0xA0 + i);
}

static void s_base_free(struct s_base *b)
{
    free(b->tensors);
    fl_model_destroy(&b->owner);
}

static fl_model_t *s_adapted(const struct s_base *b, enum fl_adapter_kind kind, const char *t1,
                             const char *t2, fl_pool_t *pool)
{
    struct fl_adapter_meta am = {
        .kind = kind, .rank = 2, .alpha = 4.0f, .seed = 99, .num_classes = 4};
    if (t1)
        strcpy(am.targets[am.ntargets++], t1);
    if (t2)
        strcpy(am.targets[am.ntargets++], t2);
    fl_model_t *m = fl_model_new_frozen(&b->arch, b->tensors, b->n, b->hash, "base", &am, pool);
    cr_assert_not_null(m, "%s", fl_error_msg());
    cr_assert_eq(memcmp(fl_model_adapter_meta(m)->base_hash, b->hash, FL_HASH_BYTES), 0);
    return m;
}

/* B starts at zero (so dA = 0); give it values so A's gradient is exercised too. */
static void s_randomise_lora_b(fl_model_t *m)
{
    struct fl_rng r;
    fl_rng_seed(&r, 5);
    for (size_t i = 0; i < fl_model_ntensors(m, FL_SET_TRAINABLE); i++) {
        struct fl_tensor *t = fl_model_tensor(m, FL_SET_TRAINABLE, i);
        if (strstr(t->name, "lora_B"))
            for (size_t j = 0; j < fl_tensor_numel(t); j++)
                t->data[j] = (float)fl_rng_normal(&r) * 0.3f;
    }
}

Test(fl_model, every_adapter_kind_gradients_match_finite_differences)
{
    struct s_base b;
    s_base_new(&b);
    struct {
        enum fl_adapter_kind kind;
        const char *t1, *t2;
        size_t trainable_tensors;
    } cases[] = {
        {FL_ADAPTER_HEAD, NULL, NULL, 2},
        {FL_ADAPTER_LORA, "conv1", "fc1", 6},
        {FL_ADAPTER_FFA_LORA, "conv2", "fc1", 4},
        {FL_ADAPTER_BITFIT, "conv1", "fc1", 4},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        fl_model_t *m = s_adapted(&b, cases[c].kind, cases[c].t1, cases[c].t2, NULL);
        cr_assert_eq(fl_model_ntensors(m, FL_SET_TRAINABLE), cases[c].trainable_tensors, "%s",
                     fl_adapter_kind_name(cases[c].kind));
        cr_assert_eq(fl_model_num_classes(m), 4);
        s_randomise_lora_b(m);
        s_gradcheck(m, 10 + c);
        fl_model_destroy(&m);
    }
    s_base_free(&b);
}

Test(fl_model, ffa_lora_keeps_a_out_of_the_adapter_and_rebuilds_it_from_the_seed)
{
    struct s_base b;
    s_base_new(&b);
    fl_model_t *m1 = s_adapted(&b, FL_ADAPTER_FFA_LORA, "fc1", NULL, NULL);
    fl_model_t *m2 = s_adapted(&b, FL_ADAPTER_FFA_LORA, "fc1", NULL, NULL);
    for (size_t i = 0; i < fl_model_ntensors(m1, FL_SET_ADAPTER); i++)
        cr_assert_null(strstr(fl_model_tensor(m1, FL_SET_ADAPTER, i)->name, "lora_A"));
    /* Same seed: identical logits (A identical, B zero, head identical). */
    float x[72], z1[4], z2[4];
    for (int i = 0; i < 72; i++)
        x[i] = (float)i / 72.0f;
    cr_assert_eq(fl_model_forward(m1, x, 1, z1), 0);
    cr_assert_eq(fl_model_forward(m2, x, 1, z2), 0);
    cr_assert_arr_eq(z1, z2, sizeof z1);
    fl_model_destroy(&m1);
    fl_model_destroy(&m2);
    s_base_free(&b);
}

Test(fl_model, unknown_or_head_target_is_refused)
{
    struct s_base b;
    s_base_new(&b);
    struct fl_adapter_meta am = {
        .kind = FL_ADAPTER_LORA, .rank = 2, .alpha = 2, .seed = 1, .num_classes = 3, .ntargets = 1};
    strcpy(am.targets[0], "nope");
    cr_assert_null(fl_model_new_frozen(&b.arch, b.tensors, b.n, b.hash, "base", &am, NULL));
    cr_assert(strstr(fl_error_msg(), "nope"), "%s", fl_error_msg());
    strcpy(am.targets[0], "relu1");
    cr_assert_null(fl_model_new_frozen(&b.arch, b.tensors, b.n, b.hash, "base", &am, NULL));
    strcpy(am.targets[0], "fc2");
    cr_assert_null(fl_model_new_frozen(&b.arch, b.tensors, b.n, b.hash, "base", &am, NULL));
    s_base_free(&b);
}

/* A learnable synthetic task: the class is which quadrant of the image is brightest. */
static void s_quadrant_data(struct fl_dataset *ds, size_t n, uint64_t seed)
{
    struct fl_rng r;
    fl_rng_seed(&r, seed);
    memset(ds, 0, sizeof *ds);
    ds->n = n;
    ds->dim = 72;
    ds->num_classes = 4;
    ds->x = fl_falloc(n * 72);
    ds->y = calloc(n, sizeof(int32_t));
    for (size_t i = 0; i < n; i++) {
        int k = (int)fl_rng_below(&r, 4);
        ds->y[i] = k;
        for (int h = 0; h < 6; h++)
            for (int w = 0; w < 6; w++)
                for (int c = 0; c < 2; c++) {
                    int q = (h >= 3) * 2 + (w >= 3);
                    ds->x[i * 72 + (h * 6 + w) * 2 + c] =
                        (float)(fl_rng_normal(&r) * 0.5 + (q == k ? 1.5 : 0.0));
                }
    }
}

static void s_train_lora(const struct s_base *b, const struct fl_dataset *ds, size_t cache,
                         float *out_b, size_t *out_n, double *acc)
{
    fl_model_t *m = s_adapted(b, FL_ADAPTER_LORA, "fc1", NULL, NULL);
    struct fl_train_opts o;
    fl_train_opts_default(&o);
    o.epochs = 8;
    o.batch = 16;
    o.lr = 1e-2f;
    o.seed = 3;
    o.cache_bytes = cache;
    cr_assert_eq(fl_train(m, ds, &o, NULL, NULL, NULL), 0, "%s", fl_error_msg());
    struct fl_eval ev;
    cr_assert_eq(fl_evaluate(m, ds, &ev), 0);
    *acc = ev.accuracy;
    size_t k = 0;
    for (size_t i = 0; i < fl_model_ntensors(m, FL_SET_ADAPTER); i++) {
        struct fl_tensor *t = fl_model_tensor(m, FL_SET_ADAPTER, i);
        memcpy(out_b + k, t->data, sizeof(float) * fl_tensor_numel(t));
        k += fl_tensor_numel(t);
    }
    *out_n = k;
    fl_model_destroy(&m);
}

Test(fl_model, finetuning_learns_leaves_base_frozen_and_is_reproducible_with_or_without_cache)
{
    struct s_base b;
    s_base_new(&b);
    float **before = calloc(b.n, sizeof *before);
    for (size_t i = 0; i < b.n; i++) {
        size_t len = fl_tensor_numel(&b.tensors[i]);
        before[i] = malloc(sizeof(float) * len);
        memcpy(before[i], b.tensors[i].data, sizeof(float) * len);
    }
    struct fl_dataset ds;
    s_quadrant_data(&ds, 400, 1);
    static float a1[8192], a2[8192], a3[8192];
    size_t n1, n2, n3;
    double acc1, acc2, acc3;
    s_train_lora(&b, &ds, (size_t)1 << 20, a1, &n1, &acc1);
    s_train_lora(&b, &ds, (size_t)1 << 20, a2, &n2, &acc2);
    s_train_lora(&b, &ds, 0, a3, &n3, &acc3);
    cr_assert_gt(acc1, 0.9, "LoRA fine-tuning reached only %.3f", acc1);
    cr_assert_eq(n1, n2);
    cr_assert_arr_eq(a1, a2, n1 * sizeof(float), "same seed, different adapters");
    cr_assert_eq(n1, n3);
    for (size_t i = 0; i < n1; i++)
        cr_assert_float_eq(a1[i], a3[i], 1e-3, "cache changed the result at %zu", i);
    for (size_t i = 0; i < b.n; i++) {
        cr_assert_eq(
            memcmp(before[i], b.tensors[i].data, sizeof(float) * fl_tensor_numel(&b.tensors[i])), 0,
            "the base tensor %s changed", b.tensors[i].name);
        free(before[i]);
    }
    free(before);
    fl_dataset_free(&ds);
    s_base_free(&b);
}

Test(fl_model, frozen_prefix_starts_at_first_adapted_layer)
{
    struct s_base b;
    s_base_new(&b);
    fl_model_t *m = s_adapted(&b, FL_ADAPTER_LORA, "fc1", NULL, NULL);
    cr_assert_eq(fl_model_frozen_prefix(m), 6);
    cr_assert_eq(fl_model_act_dim(m, 6), 45);
    fl_model_destroy(&m);
    m = s_adapted(&b, FL_ADAPTER_HEAD, NULL, NULL, NULL);
    cr_assert_eq(fl_model_frozen_prefix(m), 8);
    /* Trainable count: head 7*4+4. */
    cr_assert_eq(fl_model_param_count(m, true), 32);
    fl_model_destroy(&m);
    s_base_free(&b);
}

Test(fl_model, pretraining_a_fresh_model_learns)
{
    struct fl_arch a;
    s_tiny_arch(&a);
    a.layers[8].out_features = 4;
    a.num_classes = 4;
    fl_model_t *m = fl_model_new(&a, 1, NULL);
    cr_assert_not_null(m);
    struct fl_dataset ds;
    s_quadrant_data(&ds, 400, 2);
    struct fl_train_opts o;
    fl_train_opts_default(&o);
    o.epochs = 6;
    o.batch = 16;
    o.lr = 3e-3f;
    struct fl_epoch_stats last;
    cr_assert_eq(fl_train(m, &ds, &o, NULL, NULL, &last), 0, "%s", fl_error_msg());
    cr_assert_gt(last.accuracy, 0.9);
    /* SGD with momentum and weight decay learns too. */
    fl_model_t *m2 = fl_model_new(&a, 1, NULL);
    o.optimizer = FL_OPT_SGD;
    o.lr = 2e-2f;
    o.weight_decay = 1e-4f;
    cr_assert_eq(fl_train(m2, &ds, &o, NULL, NULL, &last), 0);
    cr_assert_gt(last.accuracy, 0.9);
    fl_model_destroy(&m2);
    fl_dataset_free(&ds);
    fl_model_destroy(&m);
}

/* One step and one forward pass of two models built alike, one alone and one on a pool, on a
 * batch large enough to be split (four workers of 24): the same loss, hits, gradients and
 * logits, up to the order in which the workers' gradients are summed. */
static void s_assert_pool_agrees(fl_model_t *alone, fl_model_t *pooled, uint64_t seed)
{
    enum { N = 96 };
    struct fl_rng r;
    fl_rng_seed(&r, seed);
    int dim = (int)fl_model_input_dim(alone), k = fl_model_num_classes(alone);
    float *x = malloc(sizeof(float) * N * dim), *z1 = malloc(sizeof(float) * N * k),
          *z2 = malloc(sizeof(float) * N * k);
    int32_t y[N];
    s_random_batch(&r, x, y, N, dim, k);
    double loss1, loss2;
    int hits1, hits2;
    cr_assert_eq(fl_model_train_step(alone, 0, x, y, N, &loss1, &hits1), 0);
    cr_assert_eq(fl_model_train_step(pooled, 0, x, y, N, &loss2, &hits2), 0);
    cr_assert_float_eq(loss1, loss2, 1e-5 * fabs(loss1) + 1e-6);
    cr_assert_eq(hits1, hits2);
    size_t nt = fl_model_ntensors(alone, FL_SET_TRAINABLE);
    cr_assert_eq(nt, fl_model_ntensors(pooled, FL_SET_TRAINABLE));
    for (size_t t = 0; t < nt; t++) {
        const float *g1 = fl_model_grad(alone, t), *g2 = fl_model_grad(pooled, t);
        size_t len = fl_tensor_numel(fl_model_tensor(alone, FL_SET_TRAINABLE, t));
        for (size_t i = 0; i < len; i++)
            cr_assert_float_eq(g1[i], g2[i], 1e-6 + 1e-4 * fabsf(g1[i]), "%s[%zu]",
                               fl_model_tensor(alone, FL_SET_TRAINABLE, t)->name, i);
    }
    cr_assert_eq(fl_model_forward(alone, x, N, z1), 0);
    cr_assert_eq(fl_model_forward(pooled, x, N, z2), 0);
    for (int i = 0; i < N * k; i++)
        cr_assert_float_eq(z1[i], z2[i], 1e-5 + 1e-5 * fabsf(z1[i]), "logit %d", i);
    free(x);
    free(z1);
    free(z2);
}

Test(fl_model, a_pool_changes_the_speed_not_the_result)
{
    fl_pool_t *pool = fl_pool_new(4);
    cr_assert_not_null(pool);
    struct fl_arch a;
    s_tiny_arch(&a);
    fl_model_t *alone = fl_model_new(&a, 42, NULL), *pooled = fl_model_new(&a, 42, pool);
    cr_assert(alone && pooled, "%s", fl_error_msg());
    s_assert_pool_agrees(alone, pooled, 3);
    fl_model_destroy(&alone);
    fl_model_destroy(&pooled);

    struct s_base b;
    s_base_new(&b);
    alone = s_adapted(&b, FL_ADAPTER_LORA, "conv1", "fc1", NULL);
    pooled = s_adapted(&b, FL_ADAPTER_LORA, "conv1", "fc1", pool);
    s_randomise_lora_b(alone);
    s_randomise_lora_b(pooled);
    s_assert_pool_agrees(alone, pooled, 4);
    fl_model_destroy(&alone);
    fl_model_destroy(&pooled);
    s_base_free(&b);
    fl_pool_destroy(&pool);
}
