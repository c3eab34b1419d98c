/* fuzz_csv: fl_dataset_load_csv on a file holding the input (a memfd); may be gzip. */
#include "fl_csv.h"
#include "fl_data.h"
#include "fuzz_util.h"

#include <stdint.h>

static struct fuzz_file s_file = FUZZ_FILE_INIT;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fl_dataset ds;
    if (fl_dataset_load_csv(&ds, fuzz_file_set(&s_file, "csv", data, size)) == 0) {
        static size_t counts[FL_DATA_MAX_LABEL + 1];
        fl_dataset_histogram(&ds, counts);
    }
    fl_dataset_free(&ds);
    return 0;
}
