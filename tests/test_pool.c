/* fl_pool: every task of a job runs exactly once, on distinct threads, job after job; no pool
 * runs the caller alone; a pool of 0 threads has one per core. */
#include <criterion/criterion.h>

#include "fl_pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

struct s_count {
    atomic_int hits[8]; /* runs per task index */
    pthread_t who[8];   /* thread that ran each task */
};

static void s_task(void *arg, int t)
{
    struct s_count *c = arg;
    atomic_fetch_add(&c->hits[t], 1);
    c->who[t] = pthread_self();
}

Test(fl_pool, runs_each_task_once_per_job_on_its_own_thread)
{
    fl_pool_t *p = fl_pool_new(4);
    cr_assert_not_null(p);
    cr_assert_eq(fl_pool_size(p), 4);
    struct s_count c = {0};
    for (int job = 0; job < 200; job++)
        fl_pool_run(p, 1 + job % 4, s_task, &c);
    /* Task t runs in jobs where 1 + job % 4 > t: 200, 150, 100, 50 times. */
    cr_assert_eq(atomic_load(&c.hits[0]), 200);
    cr_assert_eq(atomic_load(&c.hits[1]), 150);
    cr_assert_eq(atomic_load(&c.hits[2]), 100);
    cr_assert_eq(atomic_load(&c.hits[3]), 50);
    cr_assert(pthread_equal(c.who[0], pthread_self()), "task 0 runs on the caller");
    cr_assert_not(pthread_equal(c.who[1], c.who[2]));
    fl_pool_destroy(&p);
    cr_assert_null(p);
    fl_pool_destroy(&p);
}

Test(fl_pool, more_tasks_than_threads_are_clamped)
{
    fl_pool_t *p = fl_pool_new(2);
    struct s_count c = {0};
    fl_pool_run(p, 8, s_task, &c);
    cr_assert_eq(atomic_load(&c.hits[0]), 1);
    cr_assert_eq(atomic_load(&c.hits[1]), 1);
    cr_assert_eq(atomic_load(&c.hits[2]), 0);
    fl_pool_destroy(&p);
}

struct s_cover {
    atomic_int seen[1000]; /* how often each element was visited */
    int tasks_seen[8];     /* elements per task */
};

static void s_cover(void *arg, int t, size_t begin, size_t end)
{
    struct s_cover *c = arg;
    for (size_t i = begin; i < end; i++)
        atomic_fetch_add(&c->seen[i], 1);
    c->tasks_seen[t] = (int)(end - begin);
}

Test(fl_pool, for_covers_every_element_once_in_grain_sized_pieces)
{
    fl_pool_t *p = fl_pool_new(4);
    cr_assert_not_null(p);
    static struct s_cover c;
    /* 1000 elements, grain 100: four pieces of 250. */
    cr_assert_eq(fl_pool_for(p, 1000, 100, s_cover, &c), 4);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(atomic_load(&c.seen[i]), 1, "element %d", i);
    for (int t = 0; t < 4; t++)
        cr_assert_eq(c.tasks_seen[t], 250);
    /* 250 elements, grain 100: two pieces, never one under the grain. */
    memset(&c, 0, sizeof c);
    cr_assert_eq(fl_pool_for(p, 250, 100, s_cover, &c), 2);
    for (int i = 0; i < 250; i++)
        cr_assert_eq(atomic_load(&c.seen[i]), 1, "element %d", i);
    cr_assert_eq(atomic_load(&c.seen[250]), 0);
    /* Below the grain, or without a pool: the caller alone. */
    cr_assert_eq(fl_pool_for(p, 99, 100, s_cover, &c), 1);
    cr_assert_eq(fl_pool_for(NULL, 1000, 1, s_cover, &c), 1);
    cr_assert_eq(fl_pool_for(p, 0, 100, s_cover, &c), 1);
    fl_pool_destroy(&p);
}

Test(fl_pool, no_pool_means_the_callers_thread_alone)
{
    struct s_count c = {0};
    cr_assert_eq(fl_pool_size(NULL), 1);
    fl_pool_run(NULL, 4, s_task, &c);
    cr_assert_eq(atomic_load(&c.hits[0]), 1);
    cr_assert_eq(atomic_load(&c.hits[1]), 0);
    cr_assert(pthread_equal(c.who[0], pthread_self()));
    fl_pool_destroy(NULL);
}

Test(fl_pool, zero_threads_means_one_per_core)
{
    fl_pool_t *p = fl_pool_new(0);
    cr_assert_not_null(p);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    cr_assert_eq(fl_pool_size(p), cores > 0 ? (int)cores : 1);
    struct s_count c = {0};
    fl_pool_run(p, 1, s_task, &c);
    cr_assert_eq(atomic_load(&c.hits[0]), 1);
    fl_pool_destroy(&p);
    cr_assert_null(p);
}
