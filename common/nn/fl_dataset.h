/* fl_dataset: labelled records, what the engine trains and evaluates on: held in memory, or
 * streamed: fetched on demand from a source (the data layer's image files, decoded again) when
 * the decoded set would exceed the memory budget. Loading them from files and cutting them up
 * is the data layer's (data/fl_data.h). */
#ifndef FL_DATASET_H
#define FL_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Records not held in memory, fetched on demand. Shared by the datasets cut from one load
 * (reference-counted: fl_source_ref / fl_source_unref); driven from one thread at a time. */
struct fl_source {
    /* Write records idx[0..n) (the source's own numbering) as raw features into out [n, dim];
     * 0, or a negative FL_E* code with the message naming the record's file. */
    int (*fetch)(struct fl_source *self, const size_t *idx, size_t n, float *out);
    void (*destroy)(struct fl_source *self); /* free the source (its last reference went) */
    int refs;                                /* datasets holding it */
};

/* Take a reference to src (may be NULL); returns src. */
struct fl_source *fl_source_ref(struct fl_source *src);
/* Drop a reference; the last destroys the source. Sets *src_p to NULL; accepts NULL. */
void fl_source_unref(struct fl_source **src_p);

struct fl_dataset {
    size_t n;              /* records */
    size_t dim;            /* features per record */
    uint32_t rows, cols;   /* image geometry when read from 3-d IDX, else 0 */
    float *x;              /* [n, dim] row-major raw feature values, fl_falloc'd; NULL when the
                              records stream from src */
    int32_t *y;            /* [n] labels, each in [0, num_classes) */
    int32_t num_classes;   /* 1 + largest label (or k after fl_dataset_select_classes) */
    struct fl_source *src; /* streamed records' source (a reference held); NULL: in x */
    size_t *ref;           /* [n] streamed: record i is the source's record ref[i] */
};

/* Free the arrays, drop the source and zero *ds; safe on a zeroed or already-freed dataset. */
void fl_dataset_free(struct fl_dataset *ds);
/* Are ds's records streamed from a source rather than held in x? */
bool fl_dataset_streamed(const struct fl_dataset *ds);
/* Raw features of records idx[0..n) of ds into out [n, dim]: copied from memory, or fetched
 * from the source. 0, or the source's error. */
int fl_dataset_gather(const struct fl_dataset *ds, const size_t *idx, size_t n, float *out);
/* Raw features of records [first, first + n) into out [n, dim]. */
int fl_dataset_read(const struct fl_dataset *ds, size_t first, size_t n, float *out);

#endif
