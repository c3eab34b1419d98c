/* fl_modelio: models and their files. Builds the engine's model from a base file and an
 * adapter file, and writes a model's base or adapter out, each in one call; the engine
 * (nn/fl_model) itself never sees a file. */
#ifndef FL_MODELIO_H
#define FL_MODELIO_H

#include "fl_model.h"
#include "fl_modelfile.h"

/* A frozen base from an opened base file (which must outlive the model) with, when adapter is
 * not NULL, a fresh adapter, running on pool (borrowed, may be NULL; see fl_model.h). origin
 * names the base in messages. NULL on error. */
fl_model_t *fl_model_from_base(const struct fl_base_file *base, const char *origin,
                               const struct fl_adapter_meta *adapter, fl_pool_t *pool);
/* Load an adapter file's values into a model built for the same configuration (see
 * fl_model_load_adapter). Nothing changes on error. */
int fl_model_set_adapter(fl_model_t *m, const struct fl_adapter_file *a, const char *origin);

/* The model's adapter as adapter file bytes, with meta.round set to round, in a malloc'd *buf
 * of *len bytes (caller frees). */
int fl_model_pack_adapter(fl_model_t *m, uint32_t round, uint8_t **buf, size_t *len);
/* Write the model's adapter (meta.round as the model has it) to path atomically; the content
 * hash goes to hash_out unless NULL. */
int fl_model_write_adapter(fl_model_t *m, const char *path, uint8_t hash_out[FL_HASH_BYTES]);
/* Write the model's base tensors (FL_SET_BASE) with meta to path atomically. */
int fl_model_write_base(fl_model_t *m, const struct fl_base_meta *meta, const char *path,
                        uint8_t hash_out[FL_HASH_BYTES]);

#endif
