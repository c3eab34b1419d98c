/* fuzz_table: fl_table_load on a file holding the input after its first byte (a memfd; may be
 * gzip). The first byte chooses the options, so that every path is reached: the label column
 * (the first, "label" or "y"), the feature columns (every other, "a,b" or "c,a,x") and what a
 * missing value does (error, mean, drop). */
#include "fl_data.h"
#include "fl_table.h"
#include "fuzz_util.h"

#include <stdint.h>

static struct fuzz_file s_file = FUZZ_FILE_INIT;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const char *const labels[] = {NULL, "label", "y", NULL};
    static const char *const columns[] = {NULL, "a,b", "c,a,x", NULL};
    struct fl_table_opts o = {.label_column = labels[data[0] & 3],
                              .columns = columns[(data[0] >> 2) & 3],
                              .missing = (enum fl_missing)((data[0] >> 4) % 3)};
    struct fl_dataset ds;
    size_t dropped = 0;
    if (fl_table_load(&ds, fuzz_file_set(&s_file, "table", data + 1, size - 1), &o, &dropped) ==
        0) {
        static size_t counts[FL_DATA_MAX_LABEL + 1];
        fl_dataset_histogram(&ds, counts);
    }
    fl_dataset_free(&ds);
    return 0;
}
