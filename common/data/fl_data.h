/* fl_data: labelled datasets loaded from whatever fedtl reads (image folders and manifests in
 * fl_imagefolder.h, IDX in fl_idx.h, CSV in fl_csv.h), and the seeded ways fedtl cuts them up:
 * class selection, subsets, the stratified train/test split and sample (the federated
 * partition is fl_partition.h). */
#ifndef FL_DATA_H
#define FL_DATA_H

#include "fl_dataset.h"
#include "fl_image.h"
#include "fl_pool.h"
#include "fl_table.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest label accepted from a file; keeps num_classes-sized tables small. */
#define FL_DATA_MAX_LABEL 65535

/* Largest feature matrix a loader will allocate, in bytes (16 GiB). */
#define FL_DATA_MAX_BYTES ((size_t)1 << 34)

/* How a dataset is read, beyond its path. A zeroed struct reads as fl_dataset_load does. */
struct fl_data_opts {
    const struct fl_image_target *image; /* images: how they become features (the base's
                                            preparation); NULL: as the files are, raw bytes */
    bool skip_bad;   /* skip unreadable images (counted in the info) instead of failing */
    bool unlabeled;  /* images for prediction: a folder of images or image files, no classes */
    fl_pool_t *pool; /* decoding threads, borrowed; NULL: a pool of every core for the load */
    const struct fl_table_opts *table; /* a CSV with a header read by column name (fl_table.h);
                                          NULL: the plain CSV reader (fl_csv.h) */
    size_t budget; /* images: bytes of decoded records held in memory; a set that would take
                      more streams instead (fl_dataset.h: each record decoded again when read,
                      on pool, which must then outlive the records, but for the first ones of
                      the listing, which are kept once read while the budget lasts). 0: no
                      limit */
};

/* What a load found besides the records; free with fl_data_info_free. */
struct fl_data_info {
    size_t skipped; /* bad images skipped (skip_bad) */
    size_t dropped; /* table rows dropped for a missing value (FL_MISSING_DROP) */
    size_t ignored; /* files in image folders without a .png/.jpg/.jpeg name, ignored */
    int nnames;     /* class names known (image folders, named manifest labels) */
    char **names;   /* [nnames]: name of label i, malloc'd; NULL when none */
    char **files;   /* [records]: each record's image file, malloc'd; NULL for tables */
    size_t nfiles;  /* entries in files */
};

/* Free the info's arrays and zero it; safe on a zeroed info. */
void fl_data_info_free(struct fl_data_info *info);
/* Is path image data: a directory, an image file, or a manifest CSV (first line "path,label"
 * or naming a .png/.jpg/.jpeg file)? */
bool fl_data_is_images(const char *path);
/* fl_dataset_load with options; info (may be NULL) receives the names, files and counts. */
int fl_dataset_load_ex(struct fl_dataset *ds, const char *data_path, const char *labels_path,
                       const struct fl_data_opts *opts, struct fl_data_info *info);

/* Load a dataset. data_path may be image data (fl_data_is_images), read as the files are.
 * labels_path != NULL: an IDX images/labels pair (fl_idx.h); NULL: a CSV
 * file (fl_csv.h), unless the file is IDX, which is refused with a hint. Either may be
 * gzip-compressed. *ds is overwritten (not freed) and left zeroed on failure. */
int fl_dataset_load(struct fl_dataset *ds, const char *data_path, const char *labels_path);

/* Parse a class list such as "5-9", "0,3,7" or "2-4,9" into classes[0..*count), in the order
 * written. Fails with FL_EINVAL on junk, negatives, duplicates or an empty list, and
 * FL_ERANGE when more than max classes are listed. */
int fl_classes_parse(const char *spec, int32_t *classes, int max, int *count);
/* Parse a class name list such as "cat,dog,bird" into names[0..*count), in the order
 * written: each name non-empty, UTF-8, without control characters or spaces at its ends, at
 * most FL_LABEL_NAME_MAX - 1 bytes, none twice (commas separate names, so no name holds
 * one). FL_EINVAL naming the bad entry, FL_ERANGE for a name too long or more than max. */
int fl_class_names_parse(const char *spec, char (*names)[FL_LABEL_NAME_MAX], int max, int *count);
/* Keep only records whose label is in classes, relabelled to its position in classes (so
 * "7,5" maps 7 -> 0, 5 -> 1); num_classes becomes count. In place; *ds unchanged on error. */
int fl_dataset_select_classes(struct fl_dataset *ds, const int32_t *classes, int count);
/* *out = a copy of records idx[0..n) of ds, in that order (n may be 0). */
int fl_dataset_subset(struct fl_dataset *out, const struct fl_dataset *ds, const size_t *idx,
                      size_t n);
/* Seeded, per-class stratified split: about holdout (in [0, 1)) of each class goes to *test,
 * the rest to *train; both keep the original record order. */
int fl_dataset_split(const struct fl_dataset *ds, double holdout, uint64_t seed,
                     struct fl_dataset *train, struct fl_dataset *test);
/* *out = n records chosen at random (seeded), class counts proportional to ds (largest
 * remainder rounding), original order kept; n >= ds->n copies everything. */
int fl_dataset_take(struct fl_dataset *out, const struct fl_dataset *ds, size_t n, uint64_t seed);
/* counts[0..num_classes) = records per class. */
void fl_dataset_histogram(const struct fl_dataset *ds, size_t *counts);
/* Record indices grouped by class: (*order)[(*start)[c] .. (*start)[c+1]) are class c's
 * records in ascending order; *start has num_classes + 1 entries. Both malloc'd (caller
 * frees); FL_EINVAL when a label lies outside [0, num_classes). */
int fl_dataset_by_class(const struct fl_dataset *ds, size_t **order, size_t **start);

#endif
