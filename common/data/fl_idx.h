/* fl_idx: datasets in the IDX format (MNIST's): an images file of records and a 1-d file of
 * integer labels, each raw or gzip-compressed. */
#ifndef FL_IDX_H
#define FL_IDX_H

#include "fl_dataset.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Load an IDX images file and its 1-d integer labels file (raw or gzip). *ds is overwritten
 * (not freed) and left zeroed on failure. */
int fl_dataset_load_idx(struct fl_dataset *ds, const char *images_path, const char *labels_path);
/* Do the first len bytes of a file start like IDX (two zero bytes, a known type code)? No CSV
 * file can. */
bool fl_idx_sniff(const uint8_t *head, size_t len);

#endif
