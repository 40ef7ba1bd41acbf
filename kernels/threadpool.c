/* threadpool.c - the persistent worker pool behind every parallel loop (threadpool.h).
 *
 * One job at a time is published through `generation`: the caller fills in fn, arg and
 * the task count, resets the task counter, then bumps the generation. Workers notice the
 * bump by spinning for a short while after their last job, or by being woken from the
 * condition variable if they went to sleep. Every worker takes tasks from the shared
 * counter until none are left, then checks out through `n_running`; the caller, which
 * takes tasks too, returns once every worker has checked out, so a job's arguments are
 * never touched after threadpool_run returns.
 *
 * A worker that sleeps re-checks the generation under the mutex and the caller bumps it
 * before taking the mutex to broadcast, so a wake-up is never lost; the same holds for
 * the caller's wait on `n_running` and the last worker's signal.
 */
#include "threadpool.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>

/* About 20-50 microseconds of spinning: longer than the gap between two loops of a
 * forward pass, short enough that a pool between calls sleeps almost at once. */
#define SPIN_ROUNDS 4000

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

struct threadpool {
    int n_threads;                 /* workers + the caller */
    pthread_t *workers;            /* [n_threads - 1] */
    pthread_mutex_t lock;
    pthread_cond_t wake;           /* a new generation, or stop */
    pthread_cond_t done;           /* n_running reached 0 */
    atomic_uint generation;
    atomic_int next_task;
    atomic_int n_running;          /* workers still inside the current job */
    int stop;                      /* under lock */
    /* the current job, written before generation is bumped */
    threadpool_fn fn;
    void *arg;
    int n_tasks;
};

typedef struct {
    threadpool *pool;
    int thread;
} worker_start;

static void run_tasks(threadpool *p, int thread) {
    for (;;) {
        int task = atomic_fetch_add_explicit(&p->next_task, 1, memory_order_relaxed);
        if (task >= p->n_tasks) break;
        p->fn(p->arg, task, thread);
    }
}

static void *worker_main(void *start_arg) {
    worker_start start = *(worker_start *)start_arg;
    free(start_arg);
    threadpool *p = start.pool;
    unsigned seen = 0;
    for (;;) {
        unsigned gen = atomic_load_explicit(&p->generation, memory_order_acquire);
        for (int spin = 0; gen == seen && spin < SPIN_ROUNDS; spin++) {
            cpu_relax();
            gen = atomic_load_explicit(&p->generation, memory_order_acquire);
        }
        if (gen == seen) {
            pthread_mutex_lock(&p->lock);
            while ((gen = atomic_load_explicit(&p->generation, memory_order_acquire)) == seen &&
                   !p->stop)
                pthread_cond_wait(&p->wake, &p->lock);
            int stop = p->stop;
            pthread_mutex_unlock(&p->lock);
            if (stop) return NULL;
        }
        seen = gen;
        run_tasks(p, start.thread);
        if (atomic_fetch_sub_explicit(&p->n_running, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->lock);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->lock);
        }
    }
}

threadpool *threadpool_new(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    threadpool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n_threads = 1;
    p->workers = calloc((size_t)n_threads, sizeof *p->workers);
    if (!p->workers) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->generation, 0);
    atomic_init(&p->next_task, 0);
    atomic_init(&p->n_running, 0);
    for (int t = 1; t < n_threads; t++) {
        worker_start *start = malloc(sizeof *start);
        if (!start) break;
        start->pool = p;
        start->thread = t;
        if (thread_start_quiet(&p->workers[t - 1], worker_main, start) != 0) {
            free(start);
            break;
        }
        p->n_threads++;
    }
    if (p->n_threads < n_threads) {          /* could not start them all: give up cleanly */
        threadpool_free(p);
        return NULL;
    }
    return p;
}

void threadpool_free(threadpool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    p->stop = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int t = 0; t < p->n_threads - 1; t++) pthread_join(p->workers[t], NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p->workers);
    free(p);
}

int threadpool_size(const threadpool *p) { return p ? p->n_threads : 1; }

void threadpool_run(threadpool *p, int n_tasks, threadpool_fn fn, void *arg) {
    if (n_tasks <= 0) return;
    if (!p || p->n_threads == 1 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++) fn(arg, t, 0);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n_tasks;
    atomic_store_explicit(&p->next_task, 0, memory_order_relaxed);
    atomic_store_explicit(&p->n_running, p->n_threads - 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_mutex_lock(&p->lock);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);

    run_tasks(p, 0);

    for (int spin = 0; spin < SPIN_ROUNDS; spin++) {
        if (atomic_load_explicit(&p->n_running, memory_order_acquire) == 0) return;
        cpu_relax();
    }
    pthread_mutex_lock(&p->lock);
    while (atomic_load_explicit(&p->n_running, memory_order_acquire) != 0)
        pthread_cond_wait(&p->done, &p->lock);
    pthread_mutex_unlock(&p->lock);
}

int thread_start_quiet(pthread_t *thread, void *(*fn)(void *), void *arg) {
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &saved);      /* the new thread inherits this mask */
    int rc = pthread_create(thread, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    return rc;
}
