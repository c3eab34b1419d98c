/* fl_pool: every task of a job runs exactly once, job after job, and none after its job; tasks
 * run at once on distinct threads; a worker held up does not hold up the job (the caller runs
 * its task); no pool runs the caller alone; a pool of 0 threads has one per core. */
#include <criterion/criterion.h>

#include "fl_pool.h"

#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
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

Test(fl_pool, runs_each_task_once_per_job_and_none_after_it)
{
    fl_pool_t *p = fl_pool_new(4);
    cr_assert_not_null(p);
    cr_assert_eq(fl_pool_size(p), 4);
    struct s_count c = {0};
    for (int job = 0; job < 2000; job++)
        fl_pool_run(p, 1 + job % 4, s_task, &c);
    /* Task t runs in jobs where 1 + job % 4 > t: 2000, 1500, 1000, 500 times. */
    int want[4] = {2000, 1500, 1000, 500};
    for (int t = 0; t < 4; t++)
        cr_assert_eq(atomic_load(&c.hits[t]), want[t], "task %d", t);
    usleep(20000); /* a late worker must not run a finished job's task again */
    for (int t = 0; t < 4; t++)
        cr_assert_eq(atomic_load(&c.hits[t]), want[t], "task %d after the jobs", t);
    fl_pool_destroy(&p);
    cr_assert_null(p);
    fl_pool_destroy(&p);
}

struct s_meet {
    atomic_int started; /* tasks begun */
    int ntasks;         /* of the job */
    pthread_t who[4];   /* thread of each task */
};

/* Waits (up to 2 s) for every task of the job to have begun: only threads running at once
 * get there. */
static void s_meet(void *arg, int t)
{
    struct s_meet *m = arg;
    m->who[t] = pthread_self();
    atomic_fetch_add(&m->started, 1);
    for (int i = 0; i < 2000 && atomic_load(&m->started) < m->ntasks; i++)
        usleep(1000);
}

Test(fl_pool, tasks_run_at_once_on_distinct_threads)
{
    fl_pool_t *p = fl_pool_new(3);
    struct s_meet m = {.ntasks = 3};
    fl_pool_run(p, 3, s_meet, &m);
    cr_assert_eq(atomic_load(&m.started), 3);
    cr_assert_not(pthread_equal(m.who[0], m.who[1]));
    cr_assert_not(pthread_equal(m.who[0], m.who[2]));
    cr_assert_not(pthread_equal(m.who[1], m.who[2]));
    fl_pool_destroy(&p);
}

static sem_t s_release;   /* lets a held worker go */
static atomic_int s_held; /* a worker is inside s_hold */

static void s_hold(int sig)
{
    (void)sig;
    atomic_store(&s_held, 1);
    while (sem_wait(&s_release) != 0) /* async-signal-safe */
        ;
}

Test(fl_pool, a_worker_held_up_does_not_hold_up_the_job, .timeout = 20)
{
    fl_pool_t *p = fl_pool_new(2);
    cr_assert_not_null(p);
    /* Find the worker's thread: the task of a meeting job not on the caller. */
    struct s_meet m = {.ntasks = 2};
    fl_pool_run(p, 2, s_meet, &m);
    pthread_t worker = pthread_equal(m.who[0], pthread_self()) ? m.who[1] : m.who[0];
    cr_assert_not(pthread_equal(worker, pthread_self()));
    /* Hold it in a signal handler, as a scheduler would by not running it. */
    cr_assert_eq(sem_init(&s_release, 0, 0), 0);
    struct sigaction sa = {.sa_handler = s_hold};
    sigemptyset(&sa.sa_mask);
    cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
    cr_assert_eq(pthread_kill(worker, SIGUSR1), 0);
    while (!atomic_load(&s_held))
        usleep(100);
    /* Both tasks run, on the caller, while the worker is held. */
    struct s_count c = {0};
    for (int job = 0; job < 3; job++)
        fl_pool_run(p, 2, s_task, &c);
    cr_assert_eq(atomic_load(&c.hits[0]), 3);
    cr_assert_eq(atomic_load(&c.hits[1]), 3);
    cr_assert(pthread_equal(c.who[0], pthread_self()));
    cr_assert(pthread_equal(c.who[1], pthread_self()));
    sem_post(&s_release);
    /* Released, it serves the next jobs again without running the old ones' tasks. */
    memset(&m, 0, sizeof m);
    m.ntasks = 2;
    fl_pool_run(p, 2, s_meet, &m);
    cr_assert_eq(atomic_load(&m.started), 2);
    cr_assert_eq(atomic_load(&c.hits[1]), 3);
    fl_pool_destroy(&p);
    sem_destroy(&s_release);
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
