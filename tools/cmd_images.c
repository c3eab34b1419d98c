/* fedtl export-images: a data set (IDX, CSV, or images) written as a folder of class folders
 * of PNG or JPEG files, which --data reads back: the demo's and the benchmark's image data. */
#include "fedtl.h"
#include "fl_error.h"
#include "fl_fs.h"
#include "fl_image.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct fl_option s_options[] = {
    TOOL_OPT_DATA,
    TOOL_OPT_LABELS,
    TOOL_OPT_TABLE,
    TOOL_OPT_CLASSES,
    TOOL_OPT_SAMPLES,
    TOOL_OPT_SEED,
    TOOL_PATH("out", out_dir, FL_OPTION_REQUIRED, "DIR", "the folder to write (made if missing)"),
    TOOL_TEXT("format", format, 0, "png|jpeg", "image format (default png)"),
    TOOL_OPT_QUIET,
};

const struct fl_options_spec tool_export_images_spec = TOOL_SPEC(
    "export-images",
    "Write each record as an image file DIR/<class>/<record>.png (or .jpg): grey when a record\n"
    "is one image plane (IDX images, or a square number of CSV features), RGB when three.\n"
    "Class folders are named by the original label, zero-padded so that their sorted order\n"
    "is the label order; --data DIR reads them back with the same labels.\n",
    s_options);

/* The record's geometry: channels, height, width. */
static int s_geometry(const struct fl_dataset *ds, int *c, int *h, int *w)
{
    if (ds->rows && ds->cols && ds->dim % ((size_t)ds->rows * ds->cols) == 0) {
        *h = (int)ds->rows, *w = (int)ds->cols;
        *c = (int)(ds->dim / ((size_t)ds->rows * ds->cols));
    } else {
        size_t s = (size_t)llround(sqrt((double)ds->dim));
        *c = 1, *h = *w = (int)s;
        if (s * s != ds->dim)
            return fl_fail(FL_EINVAL, "records of %zu features are not square images", ds->dim);
    }
    return *c == 1 || *c == 3 ? 0 : fl_fail(FL_EINVAL, "records of %d image planes", *c);
}

/* Record i as 8-bit pixels (values rounded, clamped to 0..255), CHW to interleaved. */
static void s_pixels(const struct fl_dataset *ds, size_t i, struct fl_image *img)
{
    size_t plane = (size_t)img->w * img->h;
    const float *x = ds->x + i * ds->dim;
    for (int ch = 0; ch < img->c; ch++)
        for (size_t j = 0; j < plane; j++) {
            float v = roundf(x[ch * plane + j]);
            img->p[j * img->c + ch] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
}

int cmd_export_images(int argc, char **argv)
{
    struct tool_opts o;
    int rc = tool_parse(&tool_export_images_spec, argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : 2;
    bool jpeg = o.format && (strcmp(o.format, "jpeg") == 0 || strcmp(o.format, "jpg") == 0);
    if (o.format && !jpeg && strcmp(o.format, "png") != 0)
        return tool_usage_error(&tool_export_images_spec, "--format is png or jpeg");
    struct fl_dataset ds;
    int32_t ids[FL_MAX_CLASSES];
    int k = 0;
    if (tool_load_data(&o, &ds, ids, &k, NULL) != 0)
        return 1;
    struct fl_image img = {0};
    if (k > FL_MAX_CLASSES) {
        rc = tool_error(FL_ERANGE, "export-images: more than 256 classes");
        goto out_free;
    }
    if ((rc = s_geometry(&ds, &img.c, &img.h, &img.w)) != 0) {
        rc = tool_error(rc, o.data);
        goto out_free;
    }
    int width = 1; /* digits of the largest label, so the folders sort in label order */
    for (int i = 0; i < k; i++)
        if (snprintf(NULL, 0, "%d", (int)ids[i]) > width)
            width = snprintf(NULL, 0, "%d", (int)ids[i]);
    if (!(img.p = malloc((size_t)img.w * img.h * img.c))) {
        rc = tool_error(FL_ENOMEM, "export-images");
        goto out_free;
    }
    char path[4096];
    size_t counts[FL_MAX_CLASSES];
    fl_dataset_histogram(&ds, counts);
    for (int i = 0; i < k; i++) { /* a class without records gets no (empty) folder */
        snprintf(path, sizeof path, "%s/%0*d", o.out_dir, width, (int)ids[i]);
        if (counts[i] && (rc = fl_fs_mkdirs(path, 0755)) != 0) {
            rc = tool_error(rc, path);
            goto out_free;
        }
    }
    for (size_t i = 0; i < ds.n; i++) {
        s_pixels(&ds, i, &img);
        snprintf(path, sizeof path, "%s/%0*d/%06zu.%s", o.out_dir, width, (int)ids[ds.y[i]], i,
                 jpeg ? "jpg" : "png");
        if ((rc = fl_image_write(path, &img, 90)) != 0) {
            rc = tool_error(rc, "cannot write an image");
            goto out_free;
        }
    }
    if (!o.quiet)
        printf("wrote %zu %s images of %d x %d x %d in class folders under %s\n", ds.n,
               jpeg ? "JPEG" : "PNG", img.c, img.h, img.w, o.out_dir);
out_free:
    free(img.p);
    fl_dataset_free(&ds);
    return rc;
}
