/* fl_global: the global adapter the federation trains. Made from the configuration and the
 * method's defaults at the first start, resumed from STATE/global.fta after that; packed for
 * the tasks; committed to STATE/global.fta after each aggregated round (the commit point of a
 * round); evaluated on the server's own data when the configuration names some. */
#ifndef FL_GLOBAL_H
#define FL_GLOBAL_H

#include "fl_coord.h"
#include "fl_modelfile.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fl_global fl_global_t;

/* Resume STATE/global.fta when it exists (its base must be `base`), else make round 0's
 * adapter from cfg; load the evaluation data cfg names. base is borrowed and outlives the
 * global adapter. NULL with the message set. */
fl_global_t *fl_global_new(const struct fl_coord_config *cfg, const struct fl_base_file *base,
                           fl_pool_t *pool);
void fl_global_destroy(fl_global_t **self_p);

/* The adapter (its round: the rounds it holds). The aggregation writes its tensors in place;
 * fl_global_commit packs and saves them. */
struct fl_adapter_file *fl_global_adapter(fl_global_t *self);
/* Whether it was resumed from the state directory. */
bool fl_global_resumed(const fl_global_t *self);
/* Its packed file, as the tasks carry it (*len bytes; owned, valid until the next commit). */
const uint8_t *fl_global_bytes(const fl_global_t *self, size_t *len);
/* The branches' learning rate: the configuration's, or the method's default. */
float fl_global_lr(const fl_global_t *self);

/* Stamp the tensors as round `round`, pack them and write STATE/global.fta atomically. On
 * failure the adapter keeps its previous round and file. */
int fl_global_commit(fl_global_t *self, uint32_t round);
/* Evaluate the adapter on the server's data: false when there is none or it failed (logged). */
bool fl_global_evaluate(fl_global_t *self, double *accuracy, double *loss);

#endif
