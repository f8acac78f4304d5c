/* The adapter's one piece of global state: a CPU device opened once, and for each calling
 * thread a queue of its own on it, destroyed when the thread exits.
 *
 * BLAS and LAPACK have no handle to carry a device, so the adapter keeps one per process
 * (liballoy itself has no global state; this file is why liballoy-blas has some). The
 * state is: the once flag and the thread-specific key (made once), the device (opened on
 * first use), a mutex held only while opening it or across fork(), and a fork generation.
 * A child of fork() cannot use its parent's device (alloy answers ALLOY_ERR_STATE), so the
 * child forgets the parent's device and queues (they are leaked, not touched) and opens
 * its own on its first call. docs/blas.md describes this. */
#include "blas.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct thread_queue {
    alloy_device *dev;
    alloy_queue *q;
    unsigned gen; /* the fork generation the queue belongs to */
} thread_queue;

static struct {
    pthread_once_t once;
    pthread_mutex_t lock; /* opening the device; held across fork() */
    int key_ok;
    pthread_key_t key;
    _Atomic(alloy_device *) dev;
    atomic_uint gen; /* incremented in each forked child */
} g_state = {PTHREAD_ONCE_INIT, PTHREAD_MUTEX_INITIALIZER, 0, 0, NULL, 0};

static void thread_exit(void *p)
{
    thread_queue *tq = (thread_queue *)p;
    /* A queue of a parent process's device is abandoned, never touched. The adapter
     * destroys each command buffer after waiting for it, so the queue is idle here. */
    if (tq->q && tq->gen == atomic_load(&g_state.gen))
        alloy_queue_destroy(tq->q);
    free(tq);
}

static void fork_prepare(void)
{
    pthread_mutex_lock(&g_state.lock);
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&g_state.lock);
}

static void fork_child(void)
{
    atomic_store(&g_state.dev, NULL);
    atomic_fetch_add(&g_state.gen, 1u);
    pthread_mutex_unlock(&g_state.lock);
}

static void init_once(void)
{
    if (pthread_key_create(&g_state.key, thread_exit) != 0)
        return;
    g_state.key_ok = 1;
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    alloy_blas__stats_at_exit();
}

static int workers_from_env(void)
{
    const char *w = getenv("ALLOY_BLAS_WORKERS");
    if (!w || !*w)
        return 0;
    char *end = NULL;
    long v = strtol(w, &end, 10);
    return (end && *end == '\0' && v > 0 && v <= 4096) ? (int)v : 0;
}

static alloy_device *device(void)
{
    alloy_device *dev = atomic_load(&g_state.dev);
    if (dev)
        return dev;
    pthread_mutex_lock(&g_state.lock);
    dev = atomic_load(&g_state.dev);
    if (!dev) {
        alloy_device_desc d = alloy_device_desc_default();
        d.backend = ALLOY_BACKEND_CPU;
        d.cpu_workers = workers_from_env();
        alloy_status s = alloy_device_open(&d, &dev);
        if (s != ALLOY_OK) {
            fprintf(stderr, "alloy-blas: cannot open the CPU device: %s (%s)\n",
                    alloy_status_string(s), alloy_last_error());
            dev = NULL;
        } else {
            atomic_store(&g_state.dev, dev);
        }
    }
    pthread_mutex_unlock(&g_state.lock);
    return dev;
}

alloy_queue *alloy_blas__queue(alloy_device **dev_out)
{
    pthread_once(&g_state.once, init_once);
    if (!g_state.key_ok) {
        fprintf(stderr, "alloy-blas: cannot create the thread-specific key\n");
        return NULL;
    }
    thread_queue *tq = (thread_queue *)pthread_getspecific(g_state.key);
    unsigned gen = atomic_load(&g_state.gen);
    if (tq && tq->q && tq->gen == gen) {
        *dev_out = tq->dev;
        return tq->q;
    }
    alloy_device *dev = device();
    if (!dev)
        return NULL;
    if (!tq) {
        tq = (thread_queue *)calloc(1, sizeof *tq);
        if (!tq || pthread_setspecific(g_state.key, tq) != 0) {
            free(tq);
            fprintf(stderr, "alloy-blas: out of memory for this thread's queue\n");
            return NULL;
        }
    }
    /* tq->q, if set, is a queue of the parent's device (we are a forked child): leave it. */
    tq->q = NULL;
    alloy_status s = alloy_queue_create(dev, &tq->q);
    if (s != ALLOY_OK) {
        fprintf(stderr, "alloy-blas: cannot create a queue: %s (%s)\n", alloy_status_string(s),
                alloy_last_error());
        tq->q = NULL;
        return NULL;
    }
    tq->dev = dev;
    tq->gen = gen;
    *dev_out = dev;
    return tq->q;
}
