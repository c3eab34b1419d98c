/* fuzz_config: the coordinator's INI configuration (coordinator/fl_coord_config.c, compiled
 * into this target): defaults, fl_coord_config_load on a file holding the input (a memfd),
 * then fl_coord_config_check and fl_coord_config_print of whatever was loaded. */
#include "fl_coord.h"
#include "fuzz_util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static struct fuzz_file s_file = FUZZ_FILE_INIT;
static FILE *s_null;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (!(s_null = fopen("/dev/null", "w")))
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fl_coord_config c;
    fl_coord_config_default(&c);
    (void)fl_coord_config_load(&c, fuzz_file_set(&s_file, "config", data, size));
    (void)fl_coord_config_check(&c);
    fl_coord_config_print(&c, s_null);
    return 0;
}
