/* fl_pool: a small pool of compute threads that sleep until given work, for splitting a
 * batch across cores. Waiting threads block on a condition variable (they never spin), so an
 * idle pool costs nothing on a shared machine. One caller at a time. */
#ifndef FL_POOL_H
#define FL_POOL_H

#include <stddef.h>

typedef struct fl_pool fl_pool_t;

/* The function a pool runs: task t of the current job, with the caller's argument. */
typedef void(fl_pool_fn)(void *arg, int t);

/* A pool running up to nthreads tasks at once (the caller counts as one); NULL on failure. */
fl_pool_t *fl_pool_new(int nthreads);
void fl_pool_destroy(fl_pool_t **self_p);
/* Number of tasks the pool runs at once. */
int fl_pool_size(const fl_pool_t *p);
/* Run fn(arg, t) for t = 0..ntasks-1 (ntasks <= size; task 0 on the calling thread) and
 * return when all have finished. */
void fl_pool_run(fl_pool_t *p, int ntasks, fl_pool_fn *fn, void *arg);

/* The function fl_pool_for runs: elements [begin, end) of the range, as task t. */
typedef void(fl_pool_range_fn)(void *arg, int t, size_t begin, size_t end);

/* Run fn over [0, n) cut into one contiguous piece per task, each at least `grain` elements
 * (so small ranges run on the caller alone); p may be NULL (the caller does it all). Returns
 * the number of tasks used (fn's t runs 0..tasks-1). */
int fl_pool_for(fl_pool_t *p, size_t n, size_t grain, fl_pool_range_fn *fn, void *arg);

#endif
