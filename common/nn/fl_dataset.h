/* fl_dataset: labelled records in memory, what the engine trains and evaluates on. Loading
 * them from files and cutting them up is the data layer's (data/fl_data.h). */
#ifndef FL_DATASET_H
#define FL_DATASET_H

#include <stddef.h>
#include <stdint.h>

struct fl_dataset {
    size_t n;            /* records */
    size_t dim;          /* features per record */
    uint32_t rows, cols; /* image geometry when read from 3-d IDX, else 0 */
    float *x;            /* [n, dim] row-major raw feature values, fl_falloc'd */
    int32_t *y;          /* [n] labels, each in [0, num_classes) */
    int32_t num_classes; /* 1 + largest label (or k after fl_dataset_select_classes) */
};

/* Free the arrays and zero *ds; safe on a zeroed or already-freed dataset. */
void fl_dataset_free(struct fl_dataset *ds);

#endif
