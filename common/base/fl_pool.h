/* fl_pool: a small pool of compute threads that sleep until given work, for splitting a
 * batch across cores. After a job, threads spin for up to 50 microseconds for the next one
 * (and the caller for the end of the current one): the nodes of a forward pass come faster
 * than a sleeping thread wakes. Then they block on a condition variable, so an idle pool
 * costs nothing on a shared machine. A program makes one pool in main, from its
 * --threads option, and lends it to what computes (models, the coordinator, a strategy).
 *
 * Thread-safety: a pool serves one caller at a time. fl_pool_run / fl_pool_for return only
 * when the job is done, and the pool must not be given a second job from another thread (or
 * from inside a task) meanwhile. So everything that borrows one pool must be driven from one
 * thread, one call at a time, or each driving thread needs a pool of its own. Wherever a pool
 * is taken, NULL means the caller's thread alone. */
#ifndef FL_POOL_H
#define FL_POOL_H

#include <stddef.h>

typedef struct fl_pool fl_pool_t;

/* The function a pool runs: task t of the current job, with the caller's argument. */
typedef void(fl_pool_fn)(void *arg, int t);

/* A pool running up to nthreads tasks at once (the caller counts as one, so nthreads - 1
 * threads are started); nthreads <= 0 means one per online core. NULL on failure. */
fl_pool_t *fl_pool_new(int nthreads);
void fl_pool_destroy(fl_pool_t **self_p);
/* Number of tasks the pool runs at once (1 for a NULL pool). */
int fl_pool_size(const fl_pool_t *p);
/* Run fn(arg, t) for t = 0..ntasks-1 (ntasks is clamped to the size) and return when all have
 * finished. Each task runs once, on whichever thread claims it first: the caller takes task 0
 * and then any task no worker has started yet, so tasks must not wait for one another (two
 * may run one after the other on one thread), and t, not the thread, names a task's scratch.
 * p may be NULL: task 0 alone, on the caller. */
void fl_pool_run(fl_pool_t *p, int ntasks, fl_pool_fn *fn, void *arg);

/* The function fl_pool_for runs: elements [begin, end) of the range, as task t. */
typedef void(fl_pool_range_fn)(void *arg, int t, size_t begin, size_t end);

/* Run fn over [0, n) cut into one contiguous piece per task, each at least `grain` elements
 * (so small ranges run on the caller alone); p may be NULL (the caller does it all). Returns
 * the number of tasks used (fn's t runs 0..tasks-1). */
int fl_pool_for(fl_pool_t *p, size_t n, size_t grain, fl_pool_range_fn *fn, void *arg);

#endif
