/* fl_data: labelled datasets read from IDX (MNIST-style, raw or gzip) or CSV files, and the
 * seeded ways fedtl cuts them up: class selection, train/test split, stratified sampling and
 * the IID / Dirichlet label-skew partition over federated clients. */
#ifndef FL_DATA_H
#define FL_DATA_H

#include "fl_dataset.h"

#include <stddef.h>
#include <stdint.h>

/* Largest label accepted from a file; keeps num_classes-sized tables small. */
#define FL_DATA_MAX_LABEL 65535

/* Largest feature matrix a loader will allocate, in bytes (16 GiB). */
#define FL_DATA_MAX_BYTES ((size_t)1 << 34)

/* Load a dataset. labels_path != NULL: an IDX images/labels pair; NULL: a CSV file. Either may
 * be gzip-compressed. *ds is overwritten (not freed) and left zeroed on failure. */
int fl_dataset_load(struct fl_dataset *ds, const char *data_path, const char *labels_path);
/* Load an IDX images file and its 1-d integer labels file (raw or gzip). */
int fl_dataset_load_idx(struct fl_dataset *ds, const char *images_path, const char *labels_path);
/* Load a CSV file (raw or gzip): integer label, then features; optional header line. */
int fl_dataset_load_csv(struct fl_dataset *ds, const char *path);
/* A CSV of features only (no label column; optional header), for prediction: labels are 0. */
int fl_dataset_load_csv_features(struct fl_dataset *ds, const char *path);

/* Parse a class list such as "5-9", "0,3,7" or "2-4,9" into classes[0..*count), in the order
 * written. Fails with FL_EINVAL on junk, negatives, duplicates or an empty list, and
 * FL_ERANGE when more than max classes are listed. */
int fl_classes_parse(const char *spec, int32_t *classes, int max, int *count);
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
/* Write ds atomically as CSV: label, then features; integral values printed as integers,
 * others with %.9g (exact float round trip); no header. */
int fl_dataset_write_csv(const struct fl_dataset *ds, const char *path);
/* counts[0..num_classes) = records per class. */
void fl_dataset_histogram(const struct fl_dataset *ds, size_t *counts);

/* Partition ds over nclients shards. alpha <= 0: IID (shuffle, sizes differ by at most one).
 * alpha > 0: Dirichlet(alpha) label skew per class, redrawn (up to 1000 times) until every
 * shard has >= min_size records, else FL_ERANGE. Seeded and reproducible. On success
 * shard_idx[c] is a malloc'd, ascending array of shard_n[c] record indices (both arrays have
 * nclients entries, supplied by the caller); release with fl_partition_free. */
int fl_partition(const struct fl_dataset *ds, int nclients, double alpha, uint64_t seed,
                 size_t min_size, size_t **shard_idx, size_t *shard_n);
/* Free the shards made by fl_partition and set them to NULL; safe to call twice. */
void fl_partition_free(size_t **shard_idx, int nclients);

#endif
