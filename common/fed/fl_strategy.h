/* fl_strategy: how the coordinator turns a round's accepted updates into the next global
 * adapter. A strategy sees the updates one at a time (streaming: memory is O(model), never
 * O(branches x model)); FedAvg is the first, and FedProx, FedAdam, robust aggregators or secure
 * aggregation plug in behind the same calls. Tensors are matched by position: the caller has
 * checked names and shapes against the global adapter. */
#ifndef FL_STRATEGY_H
#define FL_STRATEGY_H

#include "fl_pool.h"
#include "fl_tensor.h"

#include <stddef.h>

typedef struct fl_strategy fl_strategy_t;

/* The operations a strategy implements. */
struct fl_strategy_ops {
    const char *name; /* as in the configuration */
    /* Start a round from the current global tensors (n of them). */
    int (*begin)(void *state, const struct fl_tensor *global, size_t n);
    /* Fold one accepted update in, with its weight (the branch's sample count); elementwise
     * work may be spread over pool (NULL: none), with results that do not depend on it. */
    int (*add)(void *state, const struct fl_tensor *update, size_t n, double weight,
               fl_pool_t *pool);
    /* Write the next global into `global` (same shapes). */
    int (*finish)(void *state, struct fl_tensor *global, size_t n);
    void (*destroy)(void *state);
};

/* A strategy by name ("fedavg"); NULL with a message for an unknown one. */
fl_strategy_t *fl_strategy_new(const char *name);
void fl_strategy_destroy(fl_strategy_t **self_p);
/* Threads for elementwise work (not owned; NULL: the caller's thread alone). */
void fl_strategy_set_pool(fl_strategy_t *s, fl_pool_t *pool);
const char *fl_strategy_name(const fl_strategy_t *s);
int fl_strategy_begin(fl_strategy_t *s, const struct fl_tensor *global, size_t n);
int fl_strategy_add(fl_strategy_t *s, const struct fl_tensor *update, size_t n, double weight);
/* Updates folded in since begin. */
size_t fl_strategy_count(const fl_strategy_t *s);
int fl_strategy_finish(fl_strategy_t *s, struct fl_tensor *global, size_t n);

#endif
