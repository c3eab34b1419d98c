/* fl_partition: a dataset cut into the shards of simulated federated clients, IID or with
 * Dirichlet label skew, seeded and reproducible. */
#ifndef FL_PARTITION_H
#define FL_PARTITION_H

#include "fl_dataset.h"

#include <stddef.h>
#include <stdint.h>

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
