/* fl_table: a CSV table with a header line read by column name: the label column (an integer
 * label), the feature columns, numbers only, and what to do with missing values (an empty
 * field, NA, N/A, NaN, null, ?): refuse them naming the file, line and column, fill them with
 * the column's mean, or drop their rows. Raw or gzip. */
#ifndef FL_TABLE_H
#define FL_TABLE_H

#include "fl_dataset.h"

/* What a missing value does. */
enum fl_missing {
    FL_MISSING_ERROR = 0, /* an error naming the file, line and column */
    FL_MISSING_MEAN = 1,  /* a feature takes its column's mean over the present values */
    FL_MISSING_DROP = 2   /* the row is left out */
};

/* Which columns, and the missing-value rule. */
struct fl_table_opts {
    const char *label_column; /* name of the label column; NULL: the first column */
    const char *columns;      /* comma-separated feature columns, in this order; NULL: every
                                 column but the label */
    enum fl_missing missing;  /* missing values */
};

/* Parse "error", "mean" or "drop". 0 or FL_EINVAL. */
int fl_missing_parse(const char *text, enum fl_missing *out);
/* Load the table at path. A value that is neither a number nor a missing marker is always an
 * error naming the file, line and column; so is a label that is not an integer in
 * 0..FL_DATA_MAX_LABEL (a missing label: an error, or its row dropped with FL_MISSING_DROP).
 * *ds zeroed on failure; *dropped (may be NULL) counts the rows dropped. */
int fl_table_load(struct fl_dataset *ds, const char *path, const struct fl_table_opts *o,
                  size_t *dropped);

#endif
