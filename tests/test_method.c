/* fl_method: an adapter method's settings, resolved in one place from what the user set and
 * the method's and the architecture's defaults. */
#include <criterion/criterion.h>

#include "fl_error.h"
#include "fl_method.h"
#include "fl_model.h"

#include <math.h>
#include <string.h>

static struct fl_arch s_arch(const char *name)
{
    struct fl_arch a;
    cr_assert_eq(fl_arch_builtin(name, strcmp(name, "mlp") ? 784 : 20, 5, &a), 0, "%s",
                 fl_error_msg());
    return a;
}

/* m's targets, comma-joined. */
static const char *s_joined(const struct fl_method *m)
{
    static char buf[FL_MAX_TARGETS * FL_TARGET_NAME_MAX];
    buf[0] = '\0';
    for (int i = 0; i < m->ntargets; i++) {
        strcat(buf, i ? "," : "");
        strcat(buf, m->targets[i]);
    }
    return buf;
}

Test(fl_method, defaults_of_every_method)
{
    const struct {
        const char *arch;          /* architecture */
        enum fl_adapter_kind kind; /* method */
        int rank;                  /* expected rank */
        float alpha, lr;           /* expected alpha and learning rate */
        const char *targets;       /* expected targets */
    } cases[] = {
        {"cnn-small", FL_ADAPTER_LORA, 4, 8, 2e-3f, "fc1"},
        {"cnn-small", FL_ADAPTER_FFA_LORA, 16, 32, 1e-2f, "conv2,fc1"},
        {"cnn-small", FL_ADAPTER_HEAD, 0, 0, 1e-2f, ""},
        {"cnn-small", FL_ADAPTER_BITFIT, 0, 0, 1e-2f, "conv1,conv2,fc1"},
        {"mlp", FL_ADAPTER_LORA, 4, 8, 2e-3f, "fc1,fc2"},
        {"mlp", FL_ADAPTER_BITFIT, 0, 0, 1e-2f, "fc1,fc2"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct fl_arch a = s_arch(cases[i].arch);
        struct fl_method m;
        cr_assert_eq(fl_method_resolve(&a, cases[i].kind, NULL, &m), 0, "%s", fl_error_msg());
        cr_assert_eq(m.kind, cases[i].kind);
        cr_assert_eq(m.rank, cases[i].rank, "case %zu", i);
        cr_assert_float_eq(m.alpha, cases[i].alpha, 0, "case %zu", i);
        cr_assert_float_eq(m.lr, cases[i].lr, 0, "case %zu", i);
        cr_assert_eq(m.epochs, FL_METHOD_EPOCHS);
        cr_assert_str_eq(s_joined(&m), cases[i].targets, "case %zu", i);
        struct fl_method z;
        struct fl_method_overrides zeros = {.targets = ""};
        cr_assert_eq(fl_method_resolve(&a, cases[i].kind, &zeros, &z), 0);
        cr_assert_eq(memcmp(&m, &z, sizeof m), 0, "0 and \"\" mean the default");
    }
}

Test(fl_method, what_the_user_sets_wins)
{
    struct fl_arch a = s_arch("cnn-small");
    struct fl_method m;
    struct fl_method_overrides u = {
        .rank = 8, .lr = 0.05f, .epochs = 3, .targets = " conv2 ,, fc1,"};
    cr_assert_eq(fl_method_resolve(&a, FL_ADAPTER_LORA, &u, &m), 0, "%s", fl_error_msg());
    cr_assert_eq(m.rank, 8);
    cr_assert_float_eq(m.alpha, 16, 0, "alpha follows the rank");
    cr_assert_float_eq(m.lr, 0.05f, 0);
    cr_assert_eq(m.epochs, 3);
    cr_assert_str_eq(s_joined(&m), "conv2,fc1", "blanks and empty names dropped");
    u.alpha = 3;
    cr_assert_eq(fl_method_resolve(&a, FL_ADAPTER_FFA_LORA, &u, &m), 0);
    cr_assert_float_eq(m.alpha, 3, 0);
    cr_assert_eq(fl_method_resolve(&a, FL_ADAPTER_HEAD, &u, &m), 0);
    cr_assert(m.rank == 0 && m.alpha == 0, "no rank without LoRA");
    struct fl_adapter_meta am;
    memset(&am, 0xff, sizeof am);
    fl_method_to_meta(&m, &am);
    cr_assert(am.kind == FL_ADAPTER_HEAD && am.rank == 0 && am.alpha == 0 && am.ntargets == 2);
    cr_assert_str_eq(am.targets[1], "fc1");
}

Test(fl_method, out_of_bounds_overrides_are_refused)
{
    struct fl_arch a = s_arch("cnn-small");
    struct fl_method m;
    const struct fl_method_overrides bad[] = {
        {.rank = -1},
        {.rank = FL_METHOD_RANK_MAX + 1},
        {.alpha = -1},
        {.alpha = NAN},
        {.lr = -0.1f},
        {.lr = 11},
        {.lr = NAN},
        {.epochs = -1},
        {.epochs = FL_METHOD_EPOCHS_MAX + 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(fl_method_resolve(&a, FL_ADAPTER_LORA, &bad[i], &m), FL_EINVAL, "case %zu", i);
    cr_assert_eq(fl_method_resolve(&a, (enum fl_adapter_kind)0, NULL, &m), FL_EINVAL);
    cr_assert_eq(fl_method_resolve(&a, (enum fl_adapter_kind)9, NULL, &m), FL_EINVAL);
}

Test(fl_method, target_lists_are_checked_not_cut)
{
    struct fl_arch a = s_arch("cnn-small");
    struct fl_method m;
    char name[FL_TARGET_NAME_MAX + 1];
    memset(name, 'n', sizeof name);
    name[FL_TARGET_NAME_MAX - 1] = '\0';
    struct fl_method_overrides u = {.targets = name};
    cr_assert_eq(fl_method_resolve(&a, FL_ADAPTER_LORA, &u, &m), 0, "the longest name fits");
    cr_assert_str_eq(m.targets[0], name);
    name[FL_TARGET_NAME_MAX - 1] = 'n';
    name[FL_TARGET_NAME_MAX] = '\0';
    cr_assert_eq(fl_method_resolve(&a, FL_ADAPTER_LORA, &u, &m), FL_EINVAL, "one too long");
    cr_assert(strstr(fl_error_msg(), "targets"), "%s", fl_error_msg());

    char list[8 * (FL_MAX_TARGETS + 1) + 1] = "";
    for (int i = 0; i < FL_MAX_TARGETS; i++)
        sprintf(list + strlen(list), "%sl%d", i ? "," : "", i);
    u.targets = list;
    cr_assert_eq(fl_method_resolve(&a, FL_ADAPTER_BITFIT, &u, &m), 0, "%s", fl_error_msg());
    cr_assert_eq(m.ntargets, FL_MAX_TARGETS);
    strcat(list, ",one_more");
    cr_assert_eq(fl_method_resolve(&a, FL_ADAPTER_BITFIT, &u, &m), FL_EINVAL);
    cr_assert(strstr(fl_error_msg(), "more than"), "%s", fl_error_msg());

    /* A list longer than any buffer the callers once used (256, 512 bytes) is read whole. */
    char big[2000];
    memset(big, ',', sizeof big - 4);
    memcpy(big + sizeof big - 4, "fc1", 4);
    u.targets = big;
    cr_assert_eq(fl_method_resolve(&a, FL_ADAPTER_LORA, &u, &m), 0, "%s", fl_error_msg());
    cr_assert_str_eq(s_joined(&m), "fc1");
}
