/* pool.c - a persistent pool of worker threads, owned by a dn_ctx.
 *
 * Creating and joining threads for every GEMM costs tens of microseconds and
 * lands on a core that has been idle (slow to wake); a training step makes
 * hundreds of GEMM calls. The pool's workers wait for work by spinning for a
 * short while (the next call of a step usually comes within microseconds),
 * then sleep on a condition variable, so an idle pool costs nothing.
 *
 * No global state: everything lives in the dn_pool the caller created. One
 * dispatch runs at a time per pool; a concurrent caller (another thread on
 * the same context) is told to do its work another way (dn_pool_run returns
 * nonzero), as is a caller in a process forked after the pool was made (its
 * workers do not exist there).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>
#include "internal.h"

/* Spin iterations (each a pause) before a waiting thread sleeps: about
 * 0.1-0.3 ms, longer than the gaps between the GEMMs of one step. */
#define SPIN_LIMIT 20000

struct dn_pool {
    int workers;                 /* threads besides the caller */
    pid_t pid;                   /* the process that created them */
    pthread_t *tid;
    pthread_mutex_t lock;        /* guards everything below */
    pthread_cond_t wake, done;
    pthread_mutex_t busy;        /* held during one dispatch */
    unsigned long gen;           /* job number; atomic reads while spinning */
    int pending;                 /* workers still on the current job (atomic) */
    int stop;
    int parts;
    dn_pool_fn fn;
    void *arg;
};

typedef struct worker_arg {
    dn_pool *pool;
    int part;
} worker_arg;

/* One spin of a waiting thread; every 64th gives the core away, so a pool
 * with more threads than free cores does not starve the thread that is
 * being waited for. */
static inline void spin_wait(int s)
{
    if ((s & 63) == 63) {
        sched_yield();
        return;
    }
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void *worker_main(void *p)
{
    worker_arg wa = *(worker_arg *)p;
    free(p);
    dn_pool *pool = wa.pool;
    unsigned long seen = 0;
    for (;;) {
        for (int s = 0; s < SPIN_LIMIT; s++) {
            if (__atomic_load_n(&pool->gen, __ATOMIC_ACQUIRE) != seen ||
                __atomic_load_n(&pool->stop, __ATOMIC_ACQUIRE))
                break;
            spin_wait(s);
        }
        pthread_mutex_lock(&pool->lock);
        while (pool->gen == seen && !pool->stop)
            pthread_cond_wait(&pool->wake, &pool->lock);
        if (pool->stop) {
            pthread_mutex_unlock(&pool->lock);
            return NULL;
        }
        seen = pool->gen;
        dn_pool_fn fn = pool->fn;
        void *arg = pool->arg;
        int run = wa.part < pool->parts;
        pthread_mutex_unlock(&pool->lock);

        if (run) fn(arg, wa.part);

        if (__atomic_sub_fetch(&pool->pending, 1, __ATOMIC_ACQ_REL) == 0) {
            pthread_mutex_lock(&pool->lock);
            pthread_cond_signal(&pool->done);
            pthread_mutex_unlock(&pool->lock);
        }
    }
}

int dn_pool_create(int threads, dn_pool **out)
{
    if (!out) return DN_ERR_ARG;
    *out = NULL;
    if (threads < 1 || threads > DN_MAX_THREADS) return DN_ERR_ARG;
    dn_pool *p = calloc(1, sizeof *p);
    if (!p) return DN_ERR_MEMORY;
    p->pid = getpid();
    p->tid = calloc((size_t)threads, sizeof *p->tid);
    if (!p->tid) { free(p); return DN_ERR_MEMORY; }
    pthread_mutex_init(&p->lock, NULL);
    pthread_mutex_init(&p->busy, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    for (int i = 0; i < threads - 1; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa) break;
        wa->pool = p;
        wa->part = i + 1;
        if (pthread_create(&p->tid[i], NULL, worker_main, wa) != 0) {
            free(wa);
            break;           /* fewer workers: dispatches use fewer parts */
        }
        p->workers++;
    }
    *out = p;
    return DN_OK;
}

void dn_pool_destroy(dn_pool *p)
{
    if (!p) return;
    if (p->pid == getpid()) {
        pthread_mutex_lock(&p->lock);
        __atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->lock);
        for (int i = 0; i < p->workers; i++) pthread_join(p->tid[i], NULL);
        pthread_mutex_destroy(&p->lock);
        pthread_mutex_destroy(&p->busy);
        pthread_cond_destroy(&p->wake);
        pthread_cond_destroy(&p->done);
    }
    free(p->tid);
    free(p);
}

int dn_pool_threads(const dn_pool *p)
{
    return p ? p->workers + 1 : 0;
}

int dn_pool_run(dn_pool *p, int parts, dn_pool_fn fn, void *arg)
{
    if (!p || parts < 1 || parts > p->workers + 1 || p->pid != getpid())
        return 1;
    if (pthread_mutex_trylock(&p->busy) != 0) return 1;

    pthread_mutex_lock(&p->lock);
    p->fn = fn;
    p->arg = arg;
    p->parts = parts;
    __atomic_store_n(&p->pending, p->workers, __ATOMIC_RELEASE);
    __atomic_store_n(&p->gen, p->gen + 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);

    fn(arg, 0);

    for (int s = 0; s < SPIN_LIMIT; s++) {
        if (__atomic_load_n(&p->pending, __ATOMIC_ACQUIRE) == 0) break;
        spin_wait(s);
    }
    pthread_mutex_lock(&p->lock);
    while (__atomic_load_n(&p->pending, __ATOMIC_ACQUIRE) != 0)
        pthread_cond_wait(&p->done, &p->lock);
    pthread_mutex_unlock(&p->lock);
    pthread_mutex_unlock(&p->busy);
    return 0;
}
