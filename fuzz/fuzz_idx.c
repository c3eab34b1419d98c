/* fuzz_idx: fl_dataset_load_idx on an images file and a labels file cut from the input:
 * bytes [0, 4) are the images part's length L (u32 little-endian, clamped to what is there),
 * [4, 4 + L) the images file, the rest the labels file. Either may be gzip-compressed.
 *
 * Known bug filter: fl_dataset_load_idx allocates (and zeroes) the whole feature matrix the
 * header claims, up to FL_DATA_MAX_BYTES, before reading a record, so a 16-byte input asks
 * for gigabytes (fuzz/regressions/idx/). Until the loader grows its arrays as records
 * arrive, inputs whose headers claim more than S_MAX_CLAIM bytes are skipped here; set
 * FEDTL_FUZZ_IDX_HUGE=1 to fuzz them anyway. */
#include "fl_data.h"
#include "fuzz_util.h"

#include <stdint.h>
#include <stdlib.h>
#include <zlib.h>

#define S_MAX_CLAIM ((double)(64u << 20)) /* bytes a header may claim before it is skipped */

static struct fuzz_file s_images = FUZZ_FILE_INIT, s_labels = FUZZ_FILE_INIT;

/* Bytes of floats an IDX file's header asks the loader to allocate (0 when unreadable). */
static double s_claim(const char *path)
{
    gzFile f = gzopen(path, "rb");
    if (!f)
        return 0;
    uint8_t h[4], d[4];
    double claim = 0;
    if (gzread(f, h, 4) == 4) {
        double esize = h[2] == 0x0E ? 8 : 4;
        claim = esize;
        for (int i = 0; i < h[3] && gzread(f, d, 4) == 4; i++)
            claim *=
                (double)((uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3]);
    }
    gzclose(f);
    return claim;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int huge = -1;
    if (huge < 0)
        huge = getenv("FEDTL_FUZZ_IDX_HUGE") != NULL;
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
    if (!huge && (s_claim(ipath) > S_MAX_CLAIM || s_claim(lpath) > S_MAX_CLAIM))
        return 0;
    struct fl_dataset ds;
    if (fl_dataset_load_idx(&ds, ipath, lpath) == 0) {
        static size_t counts[FL_DATA_MAX_LABEL + 1];
        fl_dataset_histogram(&ds, counts);
    }
    fl_dataset_free(&ds);
    return 0;
}
