/* fuzz_client_config: fedtl-client's INI configuration (client/fl_client_config.c, compiled
 * into this target): defaults, fl_client_config_load on a file holding the input (a memfd),
 * then fl_client_config_check, and every option set again through fl_client_config_set (the
 * command line's path) from what was loaded. */
#include "fl_client_config.h"
#include "fuzz_util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static struct fuzz_file s_file = FUZZ_FILE_INIT;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fl_client_config c, d;
    fl_client_config_default(&c);
    fl_client_config_default(&d);
    (void)fl_client_config_load(&c, fuzz_file_set(&s_file, "client", data, size));
    (void)fl_client_config_check(&c);
    /* What loaded must be accepted again as flags, with the same meaning. */
    const struct {
        const char *name;
        const char *value;
    } strs[] = {{"coordinator", c.coordinator},
                {"coordinator-key", c.coordinator_key},
                {"key", c.key},
                {"data", c.data},
                {"labels", c.labels},
                {"cache-dir", c.cache_dir},
                {"out", c.out},
                {"keep-updates", c.keep_updates}};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (strs[i].value && fl_client_config_set(&d, strs[i].name, strs[i].value, "again") != 0)
            abort();
    char num[64];
    snprintf(num, sizeof num, "%d", c.threads);
    if (fl_client_config_set(&d, "threads", num, "again") != 0 || d.threads != c.threads)
        abort();
    snprintf(num, sizeof num, "%.17g", c.holdout);
    if (fl_client_config_set(&d, "holdout", num, "again") != 0 || d.holdout != c.holdout)
        abort();
    fl_client_config_free(&c);
    fl_client_config_free(&d);
    return 0;
}
