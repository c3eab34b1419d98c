/* fl_csv: datasets as CSV text (raw or gzip when read): one record per line, the integer
 * label first, then the features; an optional header line. */
#ifndef FL_CSV_H
#define FL_CSV_H

#include "fl_dataset.h"

/* Load a CSV file: integer label, then features; optional header line. *ds is overwritten
 * (not freed) and left zeroed on failure. */
int fl_dataset_load_csv(struct fl_dataset *ds, const char *path);
/* A CSV of features only (no label column; optional header), for prediction: labels are 0. */
int fl_dataset_load_csv_features(struct fl_dataset *ds, const char *path);
/* Write ds atomically as CSV: label, then features; integral values printed as integers,
 * others with %.9g (exact float round trip); no header. */
int fl_dataset_write_csv(const struct fl_dataset *ds, const char *path);

#endif
