/* fl_pool: worker threads woken by a generation counter under one mutex; between the jobs of
 * a burst (the nodes of a forward pass, tens of microseconds apart) they spin briefly on the
 * counter instead of going to sleep and being woken, which costs more than such a job. */
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

struct s_worker {
    struct fl_pool *pool; /* back pointer */
    int index;            /* task number this thread runs (1..size-1) */
    pthread_t thread;     /* the thread */
};

struct fl_pool {
    int size;                 /* tasks at once, caller included */
    pthread_mutex_t lock;     /* guards everything below */
    pthread_cond_t start;     /* a new job (or shutdown) */
    pthread_cond_t done;      /* the last task of a job finished */
    atomic_ulong generation;  /* job counter (written under lock, spun on without) */
    int ntasks;               /* tasks of the current job */
    atomic_int pending;       /* worker tasks not yet finished (signalled under lock) */
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
        bool mine = w->index < pool->ntasks;
        pthread_mutex_unlock(&pool->lock);
        if (!mine)
            continue;
        fn(arg, w->index);
        if (atomic_fetch_sub(&pool->pending, 1) == 1) { /* the last: wake a sleeping caller */
            pthread_mutex_lock(&pool->lock);
            pthread_cond_signal(&pool->done);
            pthread_mutex_unlock(&pool->lock);
        }
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
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->start, NULL);
    pthread_cond_init(&p->done, NULL);
    if (p->size > 1 && !(p->workers = calloc((size_t)p->size - 1, sizeof *p->workers)))
        goto out_destroy;
    for (int i = 1; i < p->size; i++) {
        struct s_worker *w = &p->workers[i - 1];
        w->pool = p;
        w->index = i;
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
    atomic_store(&p->pending, ntasks - 1);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->lock);
    fn(arg, 0);
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
