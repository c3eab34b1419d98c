/* fl_arch: names of adapter methods and layer look-up. */
#include "fl_arch.h"
#include "fl_error.h"

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
