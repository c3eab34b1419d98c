/* fl_method: an adapter method's settings, resolved in one place. */
#include "fl_method.h"
#include "fl_error.h"
#include "fl_graphadapt.h"
#include "fl_model.h"

#include <string.h>

const struct fl_option_choice fl_method_choices[] = {{"lora", FL_ADAPTER_LORA},
                                                     {"ffa-lora", FL_ADAPTER_FFA_LORA},
                                                     {"head", FL_ADAPTER_HEAD},
                                                     {"bitfit", FL_ADAPTER_BITFIT},
                                                     {NULL, 0}};

/* Split a comma list into out's targets. */
static int s_targets(const char *list, struct fl_method *out)
{
    out->ntargets = 0;
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        const char *name = p, *end = p + n;
        while (name < end && (*name == ' ' || *name == '\t'))
            name++;
        while (end > name && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if (end > name) {
            if (out->ntargets >= FL_MAX_TARGETS)
                return fl_fail(FL_EINVAL, "targets: more than %d layers", FL_MAX_TARGETS);
            if ((size_t)(end - name) >= FL_TARGET_NAME_MAX)
                return fl_fail(FL_EINVAL, "targets: '%.*s...' is longer than %d characters",
                               FL_TARGET_NAME_MAX, name, FL_TARGET_NAME_MAX - 1);
            memcpy(out->targets[out->ntargets], name, (size_t)(end - name));
            out->targets[out->ntargets++][end - name] = '\0';
        }
        p += n + (p[n] == ',');
    }
    return 0;
}

/* The chain architecture's default targets (fl_arch_default_targets) of a graph built by
 * fedtl's zoo as cnn-small or mlp, whose nodes carry the chain's layer names: NULL for any
 * other graph, or one that lacks one of those nodes (an imported graph that took the name). */
static const char *s_builtin_graph_targets(const struct fl_arch *arch, enum fl_adapter_kind kind)
{
    if (strcmp(arch->name, "cnn-small") != 0 && strcmp(arch->name, "mlp") != 0)
        return NULL;
    const char *list = fl_arch_default_targets(arch, kind);
    char name[FL_TARGET_NAME_MAX];
    for (const char *p = list; *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ',')) {
        size_t n = strcspn(p, ",");
        if (n >= sizeof name)
            return NULL;
        memcpy(name, p, n);
        name[n] = '\0';
        int i = fl_graphdef_find(arch->graph, name);
        if (i < 0 || !fl_graphadapt_is_linear(arch->graph, i))
            return NULL;
    }
    return list;
}

int fl_method_resolve(const struct fl_arch *arch, enum fl_adapter_kind kind,
                      const struct fl_method_overrides *user, struct fl_method *out)
{
    static const struct fl_method_overrides none = {0};
    const struct fl_method_overrides *u = user ? user : &none;
    memset(out, 0, sizeof *out);
    if (kind < FL_ADAPTER_HEAD || kind > FL_ADAPTER_BITFIT)
        return fl_fail(FL_EINVAL, "unknown adapter method %d", (int)kind);
    if (u->rank < 0 || u->rank > FL_METHOD_RANK_MAX)
        return fl_fail(FL_EINVAL, "rank %d is not in [0, %d]", u->rank, FL_METHOD_RANK_MAX);
    if (!(u->alpha >= 0 && u->alpha <= FL_METHOD_ALPHA_MAX))
        return fl_fail(FL_EINVAL, "alpha %g is not in [0, %g]", u->alpha, FL_METHOD_ALPHA_MAX);
    if (!(u->lr >= 0 && u->lr <= FL_METHOD_LR_MAX))
        return fl_fail(FL_EINVAL, "learning rate %g is not in [0, %g]", u->lr, FL_METHOD_LR_MAX);
    if (u->epochs < 0 || u->epochs > FL_METHOD_EPOCHS_MAX)
        return fl_fail(FL_EINVAL, "epochs %d is not in [0, %d]", u->epochs, FL_METHOD_EPOCHS_MAX);
    int rank;
    float lr;
    fl_adapter_defaults(kind, &rank, &lr);
    out->kind = kind;
    if (kind == FL_ADAPTER_LORA || kind == FL_ADAPTER_FFA_LORA) {
        out->rank = u->rank > 0 ? u->rank : rank;
        out->alpha = u->alpha > 0 ? u->alpha : 2.0f * (float)out->rank;
    }
    out->lr = u->lr > 0 ? u->lr : lr;
    out->epochs = u->epochs > 0 ? u->epochs : FL_METHOD_EPOCHS;
    if (u->targets && u->targets[0])
        return s_targets(u->targets, out);
    const char *builtin = arch->graph ? s_builtin_graph_targets(arch, kind) : NULL;
    if (builtin)
        return s_targets(builtin, out);
    if (arch->graph) {
        out->ntargets =
            fl_graphadapt_default_targets(arch->graph, kind, out->targets, FL_MAX_TARGETS);
        return 0;
    }
    return s_targets(fl_arch_default_targets(arch, kind), out);
}

void fl_method_to_meta(const struct fl_method *m, struct fl_adapter_meta *am)
{
    am->kind = m->kind;
    am->rank = m->rank;
    am->alpha = m->alpha;
    am->ntargets = m->ntargets;
    memcpy(am->targets, m->targets, sizeof am->targets);
}
