/* fuzz_image: fl_image_decode on PNG or JPEG bytes (libpng and libjpeg-turbo behind their
 * setjmp error handlers), then what every loader does with a decoded image: fl_image_prepare
 * to an RGB 8x8 input after a resize of the shorter side to 10, and to the image's own size
 * in RGB with ToTensor's scaling. A failure must leave nothing allocated and say why; sizes
 * beyond FL_IMAGE_MAX_PIXELS are refused from the header, so the fuzzer never waits on a
 * huge allocation. */
#include "fl_error.h"
#include "fl_image.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fl_image img;
    if (fl_image_decode(data, size, "input", &img) != 0) {
        if (img.p || !fl_error_msg()[0])
            abort(); /* a failure keeps nothing and explains itself */
        return 0;
    }
    if (img.w < 1 || img.h < 1 || (img.c != 1 && img.c != 3) || !img.p)
        abort();
    struct fl_image copy = {
        .w = img.w, .h = img.h, .c = img.c, .p = malloc((size_t)img.w * img.h * img.c)};
    if (copy.p) {
        for (size_t i = 0; i < (size_t)img.w * img.h * img.c; i++)
            copy.p[i] = img.p[i];
        float rgb8[3 * 64]; /* resampled in RGB: the three-channel (SIMD) path */
        struct fl_image_target t = {.channels = 3, .height = 8, .width = 8, .resize = 10};
        (void)fl_image_prepare(&copy, &t, "input", rgb8, 3 * 64);
        fl_image_free(&copy);
    }
    if ((size_t)img.w * img.h <= 4096) {
        float *rgb = malloc(sizeof(float) * 3 * (size_t)img.w * img.h);
        struct fl_image_target t = {.channels = 3, .pixel_max = 1};
        if (rgb && fl_image_prepare(&img, &t, "input", rgb, 3 * (size_t)img.w * img.h) != 0)
            abort(); /* the image's own size always fits */
        free(rgb);
    }
    fl_image_free(&img);
    return 0;
}
