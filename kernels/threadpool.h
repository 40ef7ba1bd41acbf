/* threadpool.h - a persistent pool of worker threads running parallel-for loops.
 *
 * A pool is made once (per clip_context) and reused for every parallel loop of every
 * forward pass: threadpool_run(pool, n_tasks, fn, arg) calls fn(arg, task, thread) once
 * for each task in [0, n_tasks), spread over the workers and the calling thread, and
 * returns when all are done. Tasks are handed out one at a time from a shared counter,
 * so uneven tasks balance themselves. Nothing is allocated per call.
 *
 * Idle workers spin briefly (the next loop of a forward pass usually follows within
 * microseconds), then sleep on a condition variable so an idle pool costs no CPU.
 */
#ifndef CLIP_THREADPOOL_H
#define CLIP_THREADPOOL_H

#include <pthread.h>

typedef struct threadpool threadpool;

/* fn runs task `task`; `thread` in [0, threadpool_size) names the thread running it
 * (0 is the caller), e.g. to pick a per-thread scratch buffer. */
typedef void (*threadpool_fn)(void *arg, int task, int thread);

/* n_threads counts the caller: n_threads - 1 workers are started. NULL if out of memory
 * or threads cannot be created. */
threadpool *threadpool_new(int n_threads);
void threadpool_free(threadpool *pool);
int threadpool_size(const threadpool *pool);

/* Run fn for every task; a NULL pool runs them all on the caller. Not reentrant: call
 * from one thread at a time, never from inside fn. */
void threadpool_run(threadpool *pool, int n_tasks, threadpool_fn fn, void *arg);

/* pthread_create for a helper thread that takes no signals (every thread of the pool is
 * started this way): a Ctrl-C or kill always reaches the main thread, which can then keep
 * it away from a short critical step by blocking it there (io/atomic.c does, while its
 * temp file comes into being). 0, or pthread_create's error. */
int thread_start_quiet(pthread_t *thread, void *(*fn)(void *), void *arg);

#endif
