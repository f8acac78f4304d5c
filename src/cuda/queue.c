/* CUDA queues: a non-blocking stream each. A command buffer's ops are launched on it at
 * commit (prepare), followed by one event; completion is noticed by querying that event
 * (progress, at every commit and poll) or by waiting on it (help, in wait), and always
 * for the queue's head first, so command buffers finish in commit order.
 *
 * Steady state makes no driver objects: events come from the queue's cache and go back to
 * it once they have fired. */
#include "cuda_backend.h"

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
    return alloy__cu_check_lost(alloy__cu(cb->q->dev), "alloy_cmdbuf_create");
}

void alloy__cu_cmdbuf_fini(alloy_cmdbuf *cb)
{
    (void)cb; /* its event went back to the queue when it finished */
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

static alloy_status launch_op(alloy__cu_device *cu, CUstream s, const alloy__op *op, char *err,
                              size_t cap)
{
    switch (op->kind) {
    case ALLOY__OP_COPY: return alloy__cu_launch_copy(cu, s, op, err, cap);
    case ALLOY__OP_MATMUL: return alloy__cu_launch_matmul(cu, s, op, err, cap);
    case ALLOY__OP_LAYER_NORM: return alloy__cu_launch_norm(cu, s, op, err, cap);
    case ALLOY__OP_LU_FACTOR:
    case ALLOY__OP_LU_SOLVE:
    case ALLOY__OP_TRIANGULAR_SOLVE:
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
    CUevent ev = NULL;
    CUresult r = take_event(cu, cq, &ev);
    if (r != CUDA_SUCCESS) {
        s = alloy__cu_fail(cu, r, fn, "cuEventCreate");
        alloy__cu_leave(cu);
        pthread_mutex_unlock(&cq->submit);
        return s;
    }
    char err[ALLOY__ERROR_TEXT];
    for (size_t i = 0; i < cb->nops; i++) {
        err[0] = 0;
        s = launch_op(cu, cq->stream, &cb->ops[i], err, sizeof err);
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
