/* fl_attack: a malicious branch's update and data, for FEDTL_TESTING builds only. */
#include "fl_attack.h"
#include "fl_error.h"
#include "fl_modelfile.h"
#include "fl_rng.h"

#include <math.h>
#include <stdio.h>

const char *fl_attack_name(enum fl_attack_kind kind)
{
    switch (kind) {
    case FL_ATTACK_SCALE:
        return "scale";
    case FL_ATTACK_SIGNFLIP:
        return "signflip";
    case FL_ATTACK_NOISE:
        return "noise";
    case FL_ATTACK_NAN:
        return "nan";
    case FL_ATTACK_LABELFLIP:
        return "labelflip";
    case FL_ATTACK_NONE:
        break;
    }
    return "none";
}

double fl_attack_factor(const struct fl_attack *a)
{
    if (a->factor > 0)
        return a->factor;
    return a->kind == FL_ATTACK_SCALE ? 100.0 : 1.0;
}

void fl_attack_labels(const struct fl_attack *a, struct fl_dataset *ds)
{
    if (!a || a->kind != FL_ATTACK_LABELFLIP)
        return;
    int32_t c = ds->num_classes;
    for (size_t i = 0; i < ds->n; i++)
        ds->y[i] = c - 1 - ds->y[i];
    fl_log(FL_LOG_WARN, "test_attack", "kind=labelflip records=%zu classes=%d", ds->n, (int)c);
}

/* The trained values t (global values g) as the attack sends them. */
static void s_attack_tensor(const struct fl_attack *a, double f, float *t, const float *g, size_t n,
                            struct fl_rng *rng)
{
    for (size_t i = 0; i < n; i++) {
        switch (a->kind) {
        case FL_ATTACK_SCALE:
            t[i] = (float)(g[i] + f * ((double)t[i] - g[i]));
            break;
        case FL_ATTACK_SIGNFLIP:
            t[i] = (float)(g[i] - f * ((double)t[i] - g[i]));
            break;
        case FL_ATTACK_NOISE:
            t[i] = (float)(t[i] + f * fl_rng_normal(rng));
            break;
        default:
            break;
        }
    }
}

int fl_attack_update(const struct fl_attack *a, fl_model_t *model, const uint8_t *global,
                     size_t global_len, uint32_t round, uint64_t seed)
{
    if (!a || a->kind == FL_ATTACK_NONE || a->kind == FL_ATTACK_LABELFLIP)
        return 0;
    size_t n = fl_model_ntensors(model, FL_SET_ADAPTER);
    double f = fl_attack_factor(a);
    fl_log(FL_LOG_WARN, "test_attack", "round=%u kind=%s factor=%g tensors=%zu", round,
           fl_attack_name(a->kind), f, n);
    if (a->kind == FL_ATTACK_NAN) {
        struct fl_tensor *t = n ? fl_model_tensor(model, FL_SET_ADAPTER, 0) : NULL;
        if (t && fl_tensor_numel(t) > 0)
            t->data[0] = NAN;
        return 0;
    }
    char origin[64];
    snprintf(origin, sizeof origin, "global adapter of round %u", round);
    struct fl_adapter_file g;
    int rc = fl_adapter_unpack(global, global_len, origin, &g);
    if (rc)
        return rc;
    struct fl_rng rng;
    fl_rng_seed(&rng, seed ^ 0x61747461636b2121ull); /* "attack!!": apart from the shuffling */
    for (size_t i = 0; i < n; i++) {
        struct fl_tensor *t = fl_model_tensor(model, FL_SET_ADAPTER, i);
        const struct fl_tensor *gt = fl_tensor_find(g.tensors, g.ntensors, t->name);
        size_t numel = fl_tensor_numel(t);
        if (!gt || fl_tensor_numel(gt) != numel) {
            rc = fl_fail(FL_EMISMATCH, "%s: no tensor %s of %zu values", origin, t->name, numel);
            break;
        }
        s_attack_tensor(a, f, t->data, gt->data, numel, &rng);
    }
    fl_adapter_close(&g);
    return rc;
}
