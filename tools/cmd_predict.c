/* fedtl predict: the predicted class of each record; for images, each file with its class name
 * and probability (text or --json). */
#include "fedtl.h"
#include "fl_csv.h"
#include "fl_data.h"
#include "fl_error.h"
#include "fl_imagefolder.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Records given to the model at once. */
#define S_CHUNK 256

static const struct fl_option s_predict_options[] = {
    TOOL_OPT_BASE(FL_OPTION_REQUIRED),
    TOOL_OPT_ADAPTER,
    TOOL_PATH("data", data, 0, "D",
              "data: a folder of images (or of class folders), an image, a manifest, a CSV "
              "file or IDX images; more image FILEs may follow the options"),
    TOOL_OPT_LABELS,
    TOOL_OPT_SKIP_BAD,
    TOOL_SWITCH("unlabeled", unlabeled, "the CSV has features only (no label column)"),
    TOOL_OPT_THREADS,
    TOOL_OPT_JSON,
};

const struct fl_options_spec tool_predict_spec = {
    .program = "fedtl predict",
    .about = "For images (--data DIR, a manifest, or image FILEs): one line per file, \"file\\t"
             "class\\tprobability\",\nthe class by its name when the base records class names "
             "(pretrained on class folders),\nelse by its label; --json prints one array of "
             "{file, label, class, probability}.\nFor a CSV or IDX: one predicted label per "
             "record (the original class label, in record\norder); a CSV's label column and "
             "IDX labels are read but not used.\n",
    .options = s_predict_options,
    .noptions = sizeof s_predict_options / sizeof s_predict_options[0],
    .positional = "FILE",
    .min_positional = 0,
    .max_positional = FL_OPTIONS_MAX_POSITIONAL,
    .siblings = tool_specs,
};

/* The name of original label y: the base's recorded name, else the number. */
static const char *s_class_name(const struct tool_model *l, int32_t y, char *buf, size_t len)
{
    if (y >= 0 && y < l->base.meta.nlabel_names && l->base.meta.label_names[y][0])
        return l->base.meta.label_names[y];
    snprintf(buf, len, "%d", (int)y);
    return buf;
}

/* Class and probability (softmax of the logits) of each record. */
static int s_classify(fl_model_t *m, const struct fl_dataset *ds, int k, int32_t *pred, float *prob)
{
    float *logits = malloc(sizeof(float) * S_CHUNK * (size_t)k);
    if (!logits)
        return fl_fail(FL_ENOMEM, "out of memory");
    int rc = 0;
    for (size_t i = 0; i < ds->n && rc == 0; i += S_CHUNK) {
        size_t n = ds->n - i < S_CHUNK ? ds->n - i : S_CHUNK;
        if ((rc = fl_model_forward(m, ds->x + i * ds->dim, n, logits)) != 0)
            break;
        for (size_t r = 0; r < n; r++) {
            const float *z = logits + r * (size_t)k;
            int best = 0;
            for (int c = 1; c < k; c++)
                best = z[c] > z[best] ? c : best;
            double sum = 0;
            for (int c = 0; c < k; c++)
                sum += exp((double)z[c] - z[best]);
            pred[i + r] = best;
            prob[i + r] = (float)(1.0 / sum);
        }
    }
    free(logits);
    return rc;
}

static int s_print_images(const struct tool_model *l, const struct fl_data_info *info,
                          const int32_t *pred, const float *prob, bool json)
{
    char num[16];
    if (!json) {
        for (size_t i = 0; i < info->nfiles; i++) {
            int32_t y = l->class_ids[pred[i]];
            printf("%s\t%s\t%.4f\n", info->files[i], s_class_name(l, y, num, sizeof num),
                   (double)prob[i]);
        }
        return 0;
    }
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < info->nfiles; i++) {
        int32_t y = l->class_ids[pred[i]];
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(arr, o) ||
            !cJSON_AddStringToObject(o, "file", info->files[i]) ||
            !cJSON_AddNumberToObject(o, "label", y) ||
            !cJSON_AddStringToObject(o, "class", s_class_name(l, y, num, sizeof num)) ||
            !cJSON_AddNumberToObject(o, "probability", round(prob[i] * 1e6) / 1e6)) {
            cJSON_Delete(arr);
            arr = NULL;
        }
    }
    char *text = arr ? cJSON_PrintUnformatted(arr) : NULL;
    cJSON_Delete(arr);
    if (!text)
        return tool_error(FL_ENOMEM, "--json");
    printf("%s\n", text);
    cJSON_free(text);
    return 0;
}

/* Image files (--data and the positional FILEs): prepared as the base says, no labels. */
static int s_load_images(const struct tool_opts *o, const struct tool_model *l, int argc,
                         char **argv, struct fl_dataset *ds, struct fl_data_info *info)
{
    struct fl_image_target image;
    fl_image_target_for_base(&image, &l->base.arch, &l->base.meta);
    struct fl_data_opts dopts = {
        .image = &image, .skip_bad = o->skip_bad, .unlabeled = true, .pool = l->pool};
    struct fl_options_args args;
    const char *files[FL_OPTIONS_MAX_POSITIONAL + 1];
    size_t n = 0;
    int rc;
    /* tool_parse keeps only the first positional argument: parse again for all of them. */
    struct tool_opts scratch;
    memset(&scratch, 0, sizeof scratch);
    fl_options_reset(&tool_predict_spec, &scratch);
    if (fl_options_parse(&tool_predict_spec, &scratch, argc, argv, &args) != 0)
        return tool_usage_error(&tool_predict_spec, fl_error_msg());
    if (o->data && args.npositional == 0)
        rc = fl_imagefolder_load(ds, o->data, &dopts, info);
    else {
        if (o->data)
            files[n++] = o->data;
        for (int i = 0; i < args.npositional; i++)
            files[n++] = args.positional[i];
        rc = fl_imagefolder_load_files(ds, files, n, &dopts, info);
    }
    if (rc)
        return tool_error(rc, "cannot load the images");
    if (info->skipped)
        fprintf(stderr, "fedtl: %zu bad images skipped\n", info->skipped);
    return 0;
}

/* CSV or IDX: one original label per record, as before images were read. */
static int s_predict_table(struct tool_opts *o, const struct tool_model *l)
{
    struct fl_dataset ds;
    int32_t ids[FL_MAX_CLASSES];
    int n = 0, rc;
    if (o->unlabeled) {
        if (o->labels) {
            fprintf(stderr, "fedtl predict: --unlabeled reads a CSV; --labels does not apply\n");
            return 2;
        }
        if ((rc = fl_dataset_load_csv_features(&ds, o->data)) != 0)
            return tool_error(rc, "cannot load data");
    } else if (tool_load_data(o, &ds, ids, &n, NULL) != 0) {
        return 1;
    }
    int32_t *pred = malloc(sizeof(int32_t) * (ds.n ? ds.n : 1));
    if (!pred || (rc = fl_predict(l->m, ds.x, ds.n, pred)) != 0) {
        rc = tool_error(pred ? rc : FL_ENOMEM, o->data);
    } else {
        for (size_t i = 0; i < ds.n; i++)
            printf("%d\n", l->class_ids[pred[i]]);
    }
    free(pred);
    fl_dataset_free(&ds);
    return rc;
}

int cmd_predict(int argc, char **argv)
{
    struct tool_opts o;
    int rc = tool_parse(&tool_predict_spec, argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : 2;
    if (!o.data && !o.file)
        return tool_usage_error(&tool_predict_spec, "--data (or image FILEs) is required");
    bool images = o.file || (!o.labels && !o.unlabeled && fl_data_is_images(o.data));
    struct tool_model l;
    if (tool_model_load(&o, &l) != 0)
        return 1;
    if (!images) {
        rc = s_predict_table(&o, &l);
        tool_model_unload(&l);
        return rc;
    }
    struct fl_dataset ds;
    struct fl_data_info info;
    int32_t *pred = NULL;
    float *prob = NULL;
    if ((rc = s_load_images(&o, &l, argc, argv, &ds, &info)) != 0)
        goto out_unload;
    pred = malloc(sizeof *pred * ds.n);
    prob = malloc(sizeof *prob * ds.n);
    if (!pred || !prob)
        rc = tool_error(FL_ENOMEM, "predict");
    else if ((rc = s_classify(l.m, &ds, l.nclasses, pred, prob)) != 0)
        rc = tool_error(rc, "predict");
    else
        rc = s_print_images(&l, &info, pred, prob, o.json);
    free(pred);
    free(prob);
    fl_dataset_free(&ds);
    fl_data_info_free(&info);
out_unload:
    tool_model_unload(&l);
    return rc;
}
