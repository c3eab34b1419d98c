/* fuzz_idx: fl_dataset_load_idx on an images file and a labels file cut from the input:
 * bytes [0, 4) are the images part's length L (u32 little-endian, clamped to what is there),
 * [4, 4 + L) the images file, the rest the labels file. Either may be gzip-compressed.
 * The loader refuses headers claiming more than the file can hold before allocating (it
 * once allocated whatever the header said: fuzz/regressions/idx/). */
#include "fl_data.h"
#include "fl_idx.h"
#include "fuzz_util.h"

#include <stdint.h>
#include <stdlib.h>

static struct fuzz_file s_images = FUZZ_FILE_INIT, s_labels = FUZZ_FILE_INIT;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    size_t ilen =
        (size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16 | (size_t)data[3] << 24;
    data += 4;
    size -= 4;
    if (ilen > size)
        ilen = size;
    const char *ipath = fuzz_file_set(&s_images, "images", data, ilen);
    const char *lpath = fuzz_file_set(&s_labels, "labels", data + ilen, size - ilen);
    struct fl_dataset ds;
    if (fl_dataset_load_idx(&ds, ipath, lpath) == 0) {
        static size_t counts[FL_DATA_MAX_LABEL + 1];
        fl_dataset_histogram(&ds, counts);
    }
    fl_dataset_free(&ds);
    return 0;
}
