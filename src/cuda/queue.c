/* CUDA queues: a non-blocking stream each. A command buffer's ops are launched on it at
 * commit (prepare), followed by one event; completion is noticed by querying that event
 * (progress, at every commit and poll) or by waiting on it (help, in wait), and always
 * for the queue's head first, so command buffers finish in commit order.
 *
 * Steady state makes no driver objects: events come from the queue's cache and go back to
 * it once they have fired. */
#include "cuda_backend.h"

#include <stdint.h>
#include <string.h>

alloy_status alloy__cu_queue_init(alloy_queue *q)
{
    static const char fn[] = "alloy_queue_create";
    alloy__cu_device *cu = alloy__cu(q->dev);
    alloy__cu_queue *cq = q->impl;
    if (pthread_mutex_init(&cq->submit, NULL) != 0)
        return alloy__fail(ALLOY_ERR_OUT_OF_MEMORY, "%s: cannot create a mutex", fn);
    if (pthread_mutex_init(&cq->events_lock, NULL) != 0) {
        pthread_mutex_destroy(&cq->submit);
        return alloy__fail(ALLOY_ERR_OUT_OF_MEMORY, "%s: cannot create a mutex", fn);
    }
    cq->nfree = 0;
    cq->guard = 0;
    cq->slots = NULL;
    cq->slots_dev = 0;
    cq->nfree_slots = 0;
    alloy_status s = alloy__cu_enter(cu, fn);
    if (s == ALLOY_OK) {
        CUresult r = cu->drv.StreamCreate(&cq->stream, CU_STREAM_NON_BLOCKING);
        if (r != CUDA_SUCCESS)
            s = alloy__cu_fail(cu, r, fn, "cuStreamCreate");
        alloy__cu_leave(cu);
    }
    if (s != ALLOY_OK) {
        pthread_mutex_destroy(&cq->events_lock);
        pthread_mutex_destroy(&cq->submit);
    }
    return s;
}

void alloy__cu_queue_fini(alloy_queue *q)
{
    alloy__cu_device *cu = alloy__cu(q->dev);
    alloy__cu_queue *cq = q->impl;
    /* Every command buffer has finished, so the stream is idle. */
    if (cu->drv.CtxPushCurrent(cu->ctx) == CUDA_SUCCESS) {
        for (int i = 0; i < cq->nfree; i++)
            cu->drv.EventDestroy(cq->free_events[i]);
        if (cq->guard)
            cu->drv.MemFree(cq->guard);
        if (cq->slots)
            cu->drv.MemFreeHost(cq->slots);
        cu->drv.StreamDestroy(cq->stream);
        alloy__cu_leave(cu);
    }
    cq->nfree = 0;
    pthread_mutex_destroy(&cq->events_lock);
    pthread_mutex_destroy(&cq->submit);
}

alloy_status alloy__cu_cmdbuf_init(alloy_cmdbuf *cb)
{
    alloy__cu_cmdbuf *cs = cb->impl;
    cs->event = NULL;
    cs->retiring = 0;
    cs->report = NULL;
    cs->report_dev = 0;
    cs->slot = -1;
    return alloy__cu_check_lost(alloy__cu(cb->q->dev), "alloy_cmdbuf_create");
}

void alloy__cu_cmdbuf_fini(alloy_cmdbuf *cb)
{
    /* Its event and report slot went back to the queue when it finished; a report of
     * its own is freed here. */
    alloy__cu_cmdbuf *cs = cb->impl;
    if (cs->slot >= 0) { /* taken by a commit that failed before it launched anything */
        alloy__cu_queue *cq = cb->q->impl;
        pthread_mutex_lock(&cq->events_lock);
        cq->free_slots[cq->nfree_slots++] = (uint16_t)cs->slot;
        pthread_mutex_unlock(&cq->events_lock);
        cs->slot = -1;
        cs->report = NULL;
    }
    if (cs->report) {
        alloy__cu_device *cu = alloy__cu(cb->q->dev);
        if (cu->drv.CtxPushCurrent(cu->ctx) == CUDA_SUCCESS) {
            cu->drv.MemFreeHost(cs->report);
            alloy__cu_leave(cu);
        }
        cs->report = NULL;
    }
}

/* lu_solve's guard word (the queue's, made once) and report (a slot of the queue's page,
 * or the command buffer's own when every slot is in flight), for a command buffer that
 * holds one. In a context. */
static alloy_status solve_words(alloy__cu_device *cu, alloy__cu_queue *cq, alloy_cmdbuf *cb,
                                const char *fn)
{
    alloy__cu_cmdbuf *cs = cb->impl;
    int needed = 0;
    for (size_t i = 0; i < cb->nops && !needed; i++)
        needed = cb->ops[i].kind == ALLOY__OP_LU_SOLVE;
    if (!needed)
        return ALLOY_OK;
    CUresult r;
    if (!cq->guard && (r = cu->drv.MemAlloc(&cq->guard, 256)) != CUDA_SUCCESS) {
        cq->guard = 0;
        return alloy__cu_fail(cu, r, fn, "cuMemAlloc (lu_solve's guard word)");
    }
    if (!cs->report) {
        /* The page is made under the submit lock (held by the caller), so once. */
        if (!cq->slots) {
            void *h = NULL;
            CUdeviceptr d = 0;
            r = cu->drv.MemHostAlloc(&h, ALLOY__CU_REPORT_SLOTS * sizeof(int64_t),
                                     CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP);
            if (r == CUDA_SUCCESS &&
                (r = cu->drv.MemHostGetDevicePointer(&d, h, 0)) != CUDA_SUCCESS)
                cu->drv.MemFreeHost(h);
            if (r != CUDA_SUCCESS)
                return alloy__cu_fail(cu, r, fn, "cuMemHostAlloc (lu_solve's reports)");
            pthread_mutex_lock(&cq->events_lock);
            cq->slots = h;
            cq->slots_dev = d;
            for (int i = 0; i < ALLOY__CU_REPORT_SLOTS; i++)
                cq->free_slots[i] = (uint16_t)(ALLOY__CU_REPORT_SLOTS - 1 - i);
            cq->nfree_slots = ALLOY__CU_REPORT_SLOTS;
            pthread_mutex_unlock(&cq->events_lock);
        }
        pthread_mutex_lock(&cq->events_lock);
        int slot = cq->nfree_slots > 0 ? cq->free_slots[--cq->nfree_slots] : -1;
        pthread_mutex_unlock(&cq->events_lock);
        if (slot >= 0) {
            cs->slot = slot;
            cs->report = cq->slots + slot;
            cs->report_dev = cq->slots_dev + (CUdeviceptr)slot * sizeof(int64_t);
        } else {
            void *h = NULL;
            CUdeviceptr d = 0;
            r = cu->drv.MemHostAlloc(&h, sizeof(int64_t),
                                     CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP);
            if (r == CUDA_SUCCESS &&
                (r = cu->drv.MemHostGetDevicePointer(&d, h, 0)) != CUDA_SUCCESS)
                cu->drv.MemFreeHost(h);
            if (r != CUDA_SUCCESS)
                return alloy__cu_fail(cu, r, fn, "cuMemHostAlloc (lu_solve's report)");
            cs->slot = -1;
            cs->report = h;
            cs->report_dev = d;
        }
    }
    *(volatile int64_t *)cs->report = INT64_MAX;
    return ALLOY_OK;
}

/* ---------------------------------------------------------------- events (in a context) */

static CUresult take_event(alloy__cu_device *cu, alloy__cu_queue *cq, CUevent *out)
{
    pthread_mutex_lock(&cq->events_lock);
    if (cq->nfree > 0) {
        *out = cq->free_events[--cq->nfree];
        pthread_mutex_unlock(&cq->events_lock);
        return CUDA_SUCCESS;
    }
    pthread_mutex_unlock(&cq->events_lock);
    return cu->drv.EventCreate(out, CU_EVENT_DISABLE_TIMING);
}

static void give_event(alloy__cu_device *cu, alloy__cu_queue *cq, CUevent ev)
{
    pthread_mutex_lock(&cq->events_lock);
    if (cq->nfree < ALLOY__CU_EVENT_CACHE) {
        cq->free_events[cq->nfree++] = ev;
        ev = NULL;
    }
    pthread_mutex_unlock(&cq->events_lock);
    if (ev)
        cu->drv.EventDestroy(ev);
}

/* A failure noticed while running: the first one wins, like alloy__cmdbuf_set_failure, but
 * not tied to one op (the GPU does not say which kernel faulted). */
static void set_run_failure(alloy_cmdbuf *cb, alloy_status s, const char *detail)
{
    if (cb->status != ALLOY_OK)
        return;
    cb->status = s;
    alloy__format(cb->error, sizeof cb->error, "%s: %s (while running its %zu ops)",
                  alloy_status_string(s), detail, cb->nops);
}

/* ---------------------------------------------------------------- commit */

static alloy_status launch_op(alloy__cu_device *cu, CUstream s, const alloy__op *op,
                              const alloy__cu_run *run, char *err, size_t cap)
{
    const uint64_t g = run->guard;
    switch (op->kind) {
    case ALLOY__OP_COPY: return alloy__cu_launch_copy(cu, s, op, g, err, cap);
    case ALLOY__OP_MATMUL: return alloy__cu_launch_matmul(cu, s, op, g, err, cap);
    case ALLOY__OP_LAYER_NORM: return alloy__cu_launch_norm(cu, s, op, g, err, cap);
    case ALLOY__OP_LU_FACTOR: return alloy__cu_launch_lu_factor(cu, s, op, g, err, cap);
    case ALLOY__OP_LU_SOLVE: return alloy__cu_launch_lu_solve(cu, s, op, run, err, cap);
    case ALLOY__OP_TRIANGULAR_SOLVE: return alloy__cu_launch_trsm(cu, s, op, g, err, cap);
    case ALLOY__OP_KIND_COUNT: break;
    }
    alloy__format(err, cap, "not implemented on the CUDA backend");
    return ALLOY_ERR_UNSUPPORTED;
}

alloy_status alloy__cu_prepare(alloy_cmdbuf *cb)
{
    static const char fn[] = "alloy_cmdbuf_commit";
    alloy_queue *q = cb->q;
    alloy__cu_device *cu = alloy__cu(q->dev);
    alloy__cu_queue *cq = q->impl;
    alloy__cu_cmdbuf *cs = cb->impl;
    alloy_status s = alloy__cu_check_lost(cu, fn);
    if (s != ALLOY_OK)
        return s;
    alloy__cu_progress(q); /* fire-and-forget work is noticed as more is committed */

    pthread_mutex_lock(&cq->submit); /* released by alloy__cu_start, or below on failure */
    if ((s = alloy__cu_enter(cu, fn)) != ALLOY_OK) {
        pthread_mutex_unlock(&cq->submit);
        return s;
    }
    if ((s = solve_words(cu, cq, cb, fn)) != ALLOY_OK) {
        alloy__cu_leave(cu);
        pthread_mutex_unlock(&cq->submit);
        return s;
    }
    CUevent ev = NULL;
    CUresult r = take_event(cu, cq, &ev);
    if (r != CUDA_SUCCESS) {
        s = alloy__cu_fail(cu, r, fn, "cuEventCreate");
        alloy__cu_leave(cu);
        pthread_mutex_unlock(&cq->submit);
        return s;
    }
    char err[ALLOY__ERROR_TEXT];
    alloy__cu_run run = {0, cs->report_dev, 0};
    for (size_t i = 0; i < cb->nops; i++) {
        err[0] = 0;
        run.index = i;
        if (!run.guard && cb->ops[i].kind == ALLOY__OP_LU_SOLVE) {
            /* From the first lu_solve on, every kernel reads the guard; it starts clear. */
            r = cu->drv.MemsetD32Async(cq->guard, 0, 1, cq->stream);
            if (r != CUDA_SUCCESS) {
                s = alloy__cu_error(cu, r, "cuMemsetD32Async", err, sizeof err);
                alloy__cmdbuf_set_failure(cb, i, s, err);
                break;
            }
            run.guard = cq->guard;
        }
        s = launch_op(cu, cq->stream, &cb->ops[i], &run, err, sizeof err);
        if (s != ALLOY_OK) { /* a run-time failure: the rest is skipped, wait reports it */
            alloy__cmdbuf_set_failure(cb, i, s, err);
            break;
        }
    }
    r = cu->drv.EventRecord(ev, cq->stream);
    if (r != CUDA_SUCCESS) {
        /* Without an event, completion is made certain here. */
        s = alloy__cu_error(cu, r, "cuEventRecord", err, sizeof err);
        set_run_failure(cb, s, err);
        (void)cu->drv.StreamSynchronize(cq->stream);
        cu->drv.EventDestroy(ev);
        ev = NULL;
    }
    alloy__cu_leave(cu);
    cs->event = ev;
    cs->retiring = 0;
    return ALLOY_OK;
}

void alloy__cu_start(alloy_cmdbuf *cb)
{
    /* The command buffer is in the queue's list now, in the order of its launches. */
    pthread_mutex_unlock(&((alloy__cu_queue *)cb->q->impl)->submit);
}

/* ---------------------------------------------------------------- completion */

/* Finishes cb, the head of q, which this thread has marked retiring. `block`: wait for its
 * event; otherwise `known` is what cuEventQuery answered. */
static void retire(alloy_queue *q, alloy_cmdbuf *cb, int block, CUresult known)
{
    alloy__cu_device *cu = alloy__cu(q->dev);
    alloy__cu_queue *cq = q->impl;
    alloy__cu_cmdbuf *cs = cb->impl;
    if (cs->event) {
        CUresult r = cu->drv.CtxPushCurrent(cu->ctx);
        if (r == CUDA_SUCCESS) {
            if (block)
                r = cu->drv.EventSynchronize(cs->event);
            else
                r = known;
            if (r == CUDA_SUCCESS)
                give_event(cu, cq, cs->event);
            else
                cu->drv.EventDestroy(cs->event);
            alloy__cu_leave(cu);
        }
        cs->event = NULL;
        if (r != CUDA_SUCCESS) {
            char err[ALLOY__ERROR_TEXT];
            alloy_status s = alloy__cu_error(cu, r, "the GPU", err, sizeof err);
            set_run_failure(cb, s, err);
        }
    }
    /* The GPU has finished (or failed), so the pinned report is final. */
    int64_t key = cs->report ? *(volatile int64_t *)cs->report : INT64_MAX;
    if (key != INT64_MAX) {
        size_t index = (size_t)(key >> ALLOY__CU_REPORT_SHIFT);
        int64_t entry = key & (((int64_t)1 << ALLOY__CU_REPORT_SHIFT) - 1);
        char err[ALLOY__ERROR_TEXT];
        alloy__format(err, sizeof err,
                      "pivots of batch entry %lld hold a value outside 1..%lld (not the output "
                      "of lu_factor?); b was left unchanged",
                      (long long)entry,
                      index < cb->nops ? (long long)cb->ops[index].u.lu_solve.n : 0LL);
        alloy__cmdbuf_set_failure(cb, index, ALLOY_ERR_INVALID_ARGUMENT, err);
    }
    if (cs->slot >= 0) { /* read: the slot goes back to the queue */
        pthread_mutex_lock(&cq->events_lock);
        cq->free_slots[cq->nfree_slots++] = (uint16_t)cs->slot;
        pthread_mutex_unlock(&cq->events_lock);
        cs->slot = -1;
        cs->report = NULL;
        cs->report_dev = 0;
    }
    alloy__cmdbuf_finished(cb);
}

int alloy__cu_help(alloy_queue *q, alloy_cmdbuf *target)
{
    (void)target; /* the head finishes first; the caller asks again until target is done */
    alloy_cmdbuf *head = q->head;
    if (!head)
        return 0;
    alloy__cu_cmdbuf *cs = head->impl;
    if (cs->retiring)
        return 0; /* another thread is finishing it; its completion wakes us */
    cs->retiring = 1;
    pthread_mutex_unlock(&q->lock);
    retire(q, head, 1, CUDA_SUCCESS);
    pthread_mutex_lock(&q->lock);
    return 1;
}

void alloy__cu_progress(alloy_queue *q)
{
    alloy__cu_device *cu = alloy__cu(q->dev);
    for (;;) {
        pthread_mutex_lock(&q->lock);
        alloy_cmdbuf *head = q->head;
        alloy__cu_cmdbuf *cs = head ? head->impl : NULL;
        if (!cs || cs->retiring) {
            pthread_mutex_unlock(&q->lock);
            return;
        }
        CUresult r = CUDA_SUCCESS;
        if (cs->event) {
            r = cu->drv.CtxPushCurrent(cu->ctx);
            if (r == CUDA_SUCCESS) {
                r = cu->drv.EventQuery(cs->event);
                alloy__cu_leave(cu);
            }
        }
        if (r == CUDA_ERROR_NOT_READY) {
            pthread_mutex_unlock(&q->lock);
            return;
        }
        cs->retiring = 1;
        pthread_mutex_unlock(&q->lock);
        retire(q, head, 0, r);
    }
}
