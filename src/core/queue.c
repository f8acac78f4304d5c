/* Queues: commit order, waiting, and completion bookkeeping shared by every backend. */
#include "internal.h"

#include <sched.h>
#include <string.h>

ALLOY_API alloy_status alloy_queue_create(alloy_device *dev, alloy_queue **out)
{
    static const char fn[] = "alloy_queue_create";
    if (!out)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
    *out = NULL;
    alloy_status s = alloy__check_device(fn, dev);
    if (s != ALLOY_OK)
        return s;
    if (!alloy__gate_enter(&dev->children))
        return alloy__fail(ALLOY_ERR_STATE, "%s: the device is being closed", fn);
    size_t bytes = sizeof(alloy_queue) + dev->backend->queue_state_size;
    alloy_queue *q = alloy__alloc(dev, bytes, 64);
    if (!q) {
        alloy__gate_leave(&dev->children);
        return alloy__fail(ALLOY_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    }
    memset(q, 0, bytes);
    q->dev = dev;
    q->impl = dev->backend->queue_state_size ? (void *)(q + 1) : NULL;
    alloy__gate_init(&q->children);
    atomic_init(&q->completing, 0);
    if (pthread_mutex_init(&q->lock, NULL) != 0) {
        alloy__free(dev, q, bytes);
        alloy__gate_leave(&dev->children);
        return alloy__fail(ALLOY_ERR_OUT_OF_MEMORY, "%s: cannot create the queue's mutex", fn);
    }
    if (pthread_cond_init(&q->cond, NULL) != 0) {
        pthread_mutex_destroy(&q->lock);
        alloy__free(dev, q, bytes);
        alloy__gate_leave(&dev->children);
        return alloy__fail(ALLOY_ERR_OUT_OF_MEMORY, "%s: cannot create the queue's condition", fn);
    }
    s = dev->backend->queue_init(q);
    if (s != ALLOY_OK) {
        pthread_cond_destroy(&q->cond);
        pthread_mutex_destroy(&q->lock);
        alloy__free(dev, q, bytes);
        alloy__gate_leave(&dev->children);
        return s;
    }
    pthread_mutex_lock(&dev->queues_lock);
    q->qprev = NULL;
    q->qnext = dev->queues;
    if (dev->queues)
        dev->queues->qprev = q;
    dev->queues = q;
    pthread_mutex_unlock(&dev->queues_lock);
    *out = q;
    return ALLOY_OK;
}

ALLOY_API alloy_status alloy_queue_wait_idle(alloy_queue *q)
{
    static const char fn[] = "alloy_queue_wait_idle";
    if (!q)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: queue is NULL", fn);
    alloy_status s = alloy__check_device(fn, q->dev);
    if (s != ALLOY_OK)
        return s;
    const alloy__backend *be = q->dev->backend;
    if (be->progress)
        be->progress(q);
    pthread_mutex_lock(&q->lock);
    uint64_t failures = q->failures;
    /* Wait for the command buffer that is last now; later commits are not waited for. */
    alloy_cmdbuf *last = q->tail;
    uint64_t target = last ? q->committed : 0;
    while (q->finished < target) {
        if (be->help(q, NULL))
            continue;
        q->sleepers++;
        pthread_cond_wait(&q->cond, &q->lock);
        q->sleepers--;
    }
    alloy_status st = q->failures != failures ? q->last_failure : ALLOY_OK;
    pthread_mutex_unlock(&q->lock);
    return st;
}

ALLOY_API alloy_status alloy_queue_destroy(alloy_queue *q)
{
    static const char fn[] = "alloy_queue_destroy";
    if (!q)
        return ALLOY_OK;
    alloy_device *dev = q->dev;
    alloy_status s = alloy__check_device(fn, dev);
    if (s != ALLOY_OK)
        return s;
    /* A GPU backend notices finished fire-and-forget work when asked: ask before refusing. */
    if (dev->backend->progress)
        dev->backend->progress(q);
    if (!alloy__gate_close(&q->children))
        return alloy__fail(ALLOY_ERR_STATE,
                           "%s: %lld command buffers of this queue are alive (not destroyed, or "
                           "destroyed while still running); destroy or wait for them first",
                           fn, (long long)alloy__gate_count(&q->children));
    /* A thread that just finished this queue's last command buffer may still be leaving
     * the queue's mutex; it is gone once `completing` drops (a few instructions). */
    while (atomic_load_explicit(&q->completing, memory_order_acquire) != 0)
        sched_yield();
    /* Off the device's list (a thread running alloy__device_progress holds the list
     * lock while it uses q, so q is not freed under it). */
    pthread_mutex_lock(&dev->queues_lock);
    if (q->qprev)
        q->qprev->qnext = q->qnext;
    else
        dev->queues = q->qnext;
    if (q->qnext)
        q->qnext->qprev = q->qprev;
    pthread_mutex_unlock(&dev->queues_lock);
    dev->backend->queue_fini(q);
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->lock);
    alloy__free(dev, q, sizeof(alloy_queue) + dev->backend->queue_state_size);
    alloy__gate_leave(&dev->children);
    return ALLOY_OK;
}
