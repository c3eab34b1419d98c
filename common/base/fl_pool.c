/* fl_pool: worker threads woken by a generation counter under one mutex; between the jobs of
 * a burst (the nodes of a forward pass, tens of microseconds apart) they spin briefly on the
 * counter instead of going to sleep and being woken, which costs more than such a job.
 *
 * A job's tasks are claimed, not assigned: every thread, the caller first, takes the next
 * unclaimed task until none is left. On a machine where something else runs, a worker may
 * wake a scheduler slice (milliseconds) late; the caller then runs its task instead of waiting
 * for it (mobilenet_v2 at batch 1 on 2 threads beside one busy process: 135 images/s when each
 * task waited for its own thread). The claim word holds the job's generation beside the next
 * task, so a thread that read an earlier job cannot claim a task of the current one. */
#include "fl_pool.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define S_PAUSE() _mm_pause()
#else
#define S_PAUSE() ((void)0)
#endif

/* How long a thread spins for the next job or the end of the current one before it sleeps. */
#define S_SPIN_NS 50000

/* The claim word: a job's generation (its low bits) above the index of its next task. */
#define S_TASK_BITS     16
#define S_CLAIM(gen, t) (((unsigned long)(gen) << S_TASK_BITS) | (unsigned long)(t))
#define S_CLAIM_GEN(w)  ((w) >> S_TASK_BITS)
#define S_CLAIM_TASK(w) ((int)((w) & ((1UL << S_TASK_BITS) - 1)))
#define S_GEN_MASK      (~0UL >> S_TASK_BITS)
#define S_MAX_SIZE      1024 /* tasks at once: well within S_TASK_BITS */

struct s_worker {
    struct fl_pool *pool; /* back pointer */
    pthread_t thread;     /* the thread */
};

struct fl_pool {
    int size;                 /* tasks at once, caller included */
    pthread_mutex_t lock;     /* guards everything below */
    pthread_cond_t start;     /* a new job (or shutdown) */
    pthread_cond_t done;      /* the last task of a job finished */
    atomic_ulong generation;  /* job counter (written under lock, spun on without) */
    atomic_ulong claim;       /* S_CLAIM(generation, next task to run) */
    int ntasks;               /* tasks of the current job */
    atomic_int pending;       /* tasks not yet finished (signalled under lock) */
    fl_pool_fn *fn;           /* current job */
    void *arg;                /* its argument */
    bool stop;                /* shutting down */
    struct s_worker *workers; /* size - 1 threads */
    int nstarted;             /* threads actually started */
};

static long long s_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Spin up to S_SPIN_NS while *v == old: true when it changed. */
static bool s_spin_ulong(atomic_ulong *v, unsigned long old)
{
    long long end = s_ns() + S_SPIN_NS;
    for (int i = 1;; i++) {
        if (atomic_load_explicit(v, memory_order_acquire) != old)
            return true;
        S_PAUSE();
        if (i % 64 == 0 && s_ns() > end)
            return false;
    }
}

/* Claim and run the tasks of job `gen` (fn, arg, ntasks) until none is left; the last task
 * of the job to finish wakes a caller asleep on it. */
static void s_run_claimed(struct fl_pool *pool, unsigned long gen, fl_pool_fn *fn, void *arg,
                          int ntasks)
{
    unsigned long w = atomic_load_explicit(&pool->claim, memory_order_acquire);
    for (;;) {
        if (S_CLAIM_GEN(w) != (gen & S_GEN_MASK) || S_CLAIM_TASK(w) >= ntasks)
            return;
        if (!atomic_compare_exchange_weak_explicit(&pool->claim, &w, w + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue; /* w now holds the word another thread left */
        fn(arg, S_CLAIM_TASK(w));
        if (atomic_fetch_sub(&pool->pending, 1) == 1) {
            pthread_mutex_lock(&pool->lock);
            pthread_cond_signal(&pool->done);
            pthread_mutex_unlock(&pool->lock);
        }
        w = atomic_load_explicit(&pool->claim, memory_order_acquire);
    }
}

static void *s_worker_main(void *p)
{
    struct s_worker *w = p;
    struct fl_pool *pool = w->pool;
    unsigned long seen = 0;
    for (;;) {
        s_spin_ulong(&pool->generation, seen);
        pthread_mutex_lock(&pool->lock);
        while (!pool->stop && atomic_load(&pool->generation) == seen)
            pthread_cond_wait(&pool->start, &pool->lock);
        if (pool->stop) {
            pthread_mutex_unlock(&pool->lock);
            return NULL;
        }
        seen = atomic_load(&pool->generation);
        fl_pool_fn *fn = pool->fn;
        void *arg = pool->arg;
        int ntasks = pool->ntasks;
        pthread_mutex_unlock(&pool->lock);
        s_run_claimed(pool, seen, fn, arg, ntasks);
    }
}

/* One task per online core (at least one). */
static int s_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

fl_pool_t *fl_pool_new(int nthreads)
{
    fl_pool_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->size = nthreads > 0 ? nthreads : s_cores();
    if (p->size > S_MAX_SIZE)
        p->size = S_MAX_SIZE;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->start, NULL);
    pthread_cond_init(&p->done, NULL);
    if (p->size > 1 && !(p->workers = calloc((size_t)p->size - 1, sizeof *p->workers)))
        goto out_destroy;
    for (int i = 1; i < p->size; i++) {
        struct s_worker *w = &p->workers[i - 1];
        w->pool = p;
        if (pthread_create(&w->thread, NULL, s_worker_main, w) != 0)
            goto out_destroy;
        p->nstarted++;
    }
    return p;
out_destroy:
    fl_pool_destroy(&p);
    return NULL;
}

void fl_pool_destroy(fl_pool_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fl_pool_t *p = *self_p;
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->nstarted; i++)
        pthread_join(p->workers[i].thread, NULL);
    pthread_cond_destroy(&p->start);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->lock);
    free(p->workers);
    free(p);
    *self_p = NULL;
}

int fl_pool_size(const fl_pool_t *p)
{
    return p ? p->size : 1;
}

void fl_pool_run(fl_pool_t *p, int ntasks, fl_pool_fn *fn, void *arg)
{
    if (!p || ntasks > p->nstarted + 1)
        ntasks = p ? p->nstarted + 1 : 1;
    if (ntasks <= 1) {
        fn(arg, 0);
        return;
    }
    pthread_mutex_lock(&p->lock);
    assert(atomic_load(&p->pending) == 0 && "fl_pool: one caller at a time");
    p->fn = fn;
    p->arg = arg;
    p->ntasks = ntasks;
    atomic_store(&p->pending, ntasks);
    unsigned long gen = atomic_load(&p->generation) + 1;
    atomic_store_explicit(&p->claim, S_CLAIM(gen & S_GEN_MASK, 0), memory_order_release);
    atomic_store_explicit(&p->generation, gen, memory_order_release);
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->lock);
    s_run_claimed(p, gen, fn, arg, ntasks);
    long long end = s_ns() + S_SPIN_NS;
    for (int i = 1; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; i++) {
        S_PAUSE();
        if (i % 64 == 0 && s_ns() > end)
            break;
    }
    pthread_mutex_lock(&p->lock);
    while (atomic_load(&p->pending) > 0)
        pthread_cond_wait(&p->done, &p->lock);
    pthread_mutex_unlock(&p->lock);
}

struct s_for {
    fl_pool_range_fn *fn; /* what to run */
    void *arg;            /* its argument */
    size_t n;             /* range length */
    int ntasks;           /* pieces */
};

static void s_for_task(void *arg, int t)
{
    const struct s_for *f = arg;
    size_t begin = f->n * (size_t)t / (size_t)f->ntasks;
    size_t end = f->n * ((size_t)t + 1) / (size_t)f->ntasks;
    f->fn(f->arg, t, begin, end);
}

int fl_pool_for(fl_pool_t *p, size_t n, size_t grain, fl_pool_range_fn *fn, void *arg)
{
    size_t pieces = grain ? n / grain : n;
    int ntasks = p ? p->nstarted + 1 : 1;
    if ((size_t)ntasks > pieces)
        ntasks = pieces > 1 ? (int)pieces : 1;
    if (ntasks == 1) {
        fn(arg, 0, 0, n);
        return 1;
    }
    struct s_for f = {fn, arg, n, ntasks};
    fl_pool_run(p, ntasks, s_for_task, &f);
    return ntasks;
}
