/* Command buffers: the one-encoder rule, recording operations and their buffer
 * references, commit, poll, wait, and completion. */
#include "encode.h"

#include <string.h>
#include <time.h>

ALLOY_API alloy_status alloy_cmdbuf_create(alloy_queue *q, alloy_cmdbuf **out)
{
    static const char fn[] = "alloy_cmdbuf_create";
    if (!out)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
    *out = NULL;
    if (!q)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: queue is NULL", fn);
    alloy_device *dev = q->dev;
    alloy_status s = alloy__check_device(fn, dev);
    if (s != ALLOY_OK)
        return s;
    if (!alloy__gate_enter(&q->children))
        return alloy__fail(ALLOY_ERR_STATE, "%s: the queue is being destroyed", fn);
    size_t bytes = sizeof(alloy_cmdbuf) + dev->backend->cmdbuf_state_size;
    alloy_cmdbuf *cb = alloy__alloc(dev, bytes, 64);
    if (!cb) {
        alloy__gate_leave(&q->children);
        return alloy__fail(ALLOY_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    }
    memset(cb, 0, bytes);
    cb->q = q;
    atomic_flag_clear(&cb->busy);
    atomic_init(&cb->committed, 0);
    atomic_init(&cb->done, 0);
    cb->status = ALLOY_OK;
    cb->ops = cb->ops_inline;
    cb->ops_cap = ALLOY__INLINE_OPS;
    cb->bufs = cb->bufs_inline;
    cb->bufs_cap = ALLOY__INLINE_BUFFERS;
    cb->impl = dev->backend->cmdbuf_state_size ? (void *)(cb + 1) : NULL;
    s = dev->backend->cmdbuf_init(cb);
    if (s != ALLOY_OK) {
        alloy__free(dev, cb, bytes);
        alloy__gate_leave(&q->children);
        return s;
    }
    *out = cb;
    return ALLOY_OK;
}

static void release_buffers(alloy_cmdbuf *cb)
{
    for (size_t i = 0; i < cb->nbufs; i++)
        alloy__gate_leave(&cb->bufs[i]->refs);
    cb->nbufs = 0;
}

/* Frees a command buffer whose references are released. */
static void free_cmdbuf(alloy_cmdbuf *cb)
{
    alloy_queue *q = cb->q;
    alloy_device *dev = q->dev;
    dev->backend->cmdbuf_fini(cb);
    if (cb->ops != cb->ops_inline)
        alloy__free(dev, cb->ops, cb->ops_cap * sizeof(alloy__op));
    if (cb->bufs != cb->bufs_inline)
        alloy__free(dev, cb->bufs, cb->bufs_cap * sizeof(alloy_buffer *));
    alloy__free(dev, cb, sizeof(alloy_cmdbuf) + dev->backend->cmdbuf_state_size);
    alloy__gate_leave(&q->children);
}

alloy_status alloy__encode_begin(const char *fn, alloy_cmdbuf *cb)
{
    if (!cb)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: command buffer is NULL", fn);
    alloy_status s = alloy__check_device(fn, cb->q->dev);
    if (s != ALLOY_OK)
        return s;
    if (atomic_flag_test_and_set_explicit(&cb->busy, memory_order_acquire))
        return alloy__fail(ALLOY_ERR_BUSY,
                           "%s: another thread is encoding into or committing this command "
                           "buffer right now",
                           fn);
    if (atomic_load_explicit(&cb->committed, memory_order_relaxed)) {
        atomic_flag_clear_explicit(&cb->busy, memory_order_release);
        return alloy__fail(ALLOY_ERR_STATE,
                           "%s: this command buffer is already committed; create a new one", fn);
    }
    return ALLOY_OK;
}

void alloy__encode_end(alloy_cmdbuf *cb)
{
    atomic_flag_clear_explicit(&cb->busy, memory_order_release);
}

static int grow(alloy_device *dev, void **arr, size_t *cap, size_t need, size_t elem,
                void *inline_storage)
{
    if (need <= *cap)
        return 1;
    size_t ncap = *cap * 2;
    while (ncap < need)
        ncap *= 2;
    void *p = alloy__alloc(dev, ncap * elem, 64);
    if (!p)
        return 0;
    memcpy(p, *arr, *cap * elem);
    if (*arr != inline_storage)
        alloy__free(dev, *arr, *cap * elem);
    *arr = p;
    *cap = ncap;
    return 1;
}

alloy_status alloy__encode_record(const char *fn, alloy_cmdbuf *cb, alloy__op *op,
                                  alloy_buffer *const *bufs, int nbufs)
{
    alloy_device *dev = cb->q->dev;
    alloy_status s = dev->backend->check_op(dev, op);
    if (s != ALLOY_OK)
        return s;
    /* Distinct buffers not yet referenced by this command buffer. */
    alloy_buffer *fresh[2 * ALLOY__MAX_OPERANDS];
    int nfresh = 0;
    for (int i = 0; i < nbufs; i++) {
        alloy_buffer *b = bufs[i];
        if (!b)
            continue;
        int seen = 0;
        for (size_t j = 0; j < cb->nbufs && !seen; j++)
            seen = cb->bufs[j] == b;
        for (int j = 0; j < nfresh && !seen; j++)
            seen = fresh[j] == b;
        if (!seen)
            fresh[nfresh++] = b;
    }
    if (!grow(dev, (void **)&cb->ops, &cb->ops_cap, cb->nops + 1, sizeof(alloy__op),
              cb->ops_inline) ||
        !grow(dev, (void **)&cb->bufs, &cb->bufs_cap, cb->nbufs + (size_t)nfresh,
              sizeof(alloy_buffer *), cb->bufs_inline))
        return alloy__fail(ALLOY_ERR_OUT_OF_MEMORY, "%s: out of memory recording the operation",
                           fn);
    for (int i = 0; i < nfresh; i++) {
        if (!alloy__gate_enter(&fresh[i]->refs)) {
            for (int j = 0; j < i; j++)
                alloy__gate_leave(&fresh[j]->refs);
            return alloy__fail(ALLOY_ERR_STATE, "%s: a buffer is being destroyed", fn);
        }
    }
    for (int i = 0; i < nfresh; i++)
        cb->bufs[cb->nbufs++] = fresh[i];
    memcpy(&cb->ops[cb->nops++], op, sizeof *op);
    return ALLOY_OK;
}

ALLOY_API alloy_status alloy_cmdbuf_commit(alloy_cmdbuf *cb)
{
    static const char fn[] = "alloy_cmdbuf_commit";
    alloy_status s = alloy__encode_begin(fn, cb);
    if (s != ALLOY_OK)
        return s;
    alloy_queue *q = cb->q;
    const alloy__backend *be = q->dev->backend;
    if (be->prepare) {
        s = be->prepare(cb);
        if (s != ALLOY_OK) {
            alloy__encode_end(cb);
            return s;
        }
    }
    atomic_store_explicit(&cb->committed, 1, memory_order_release);
    pthread_mutex_lock(&q->lock);
    q->committed++;
    cb->next = NULL;
    int head = q->head == NULL;
    if (head)
        q->head = cb;
    else
        q->tail->next = cb;
    q->tail = cb;
    if (head || be->start_all)
        be->start(cb);
    pthread_mutex_unlock(&q->lock);
    alloy__encode_end(cb);
    return ALLOY_OK;
}

static alloy_status check_committed(const char *fn, const alloy_cmdbuf *cb)
{
    if (!cb)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: command buffer is NULL", fn);
    alloy_status s = alloy__check_device(fn, cb->q->dev);
    if (s != ALLOY_OK)
        return s;
    if (!atomic_load_explicit(&((alloy_cmdbuf *)cb)->committed, memory_order_acquire))
        return alloy__fail(ALLOY_ERR_STATE, "%s: the command buffer is not committed", fn);
    return ALLOY_OK;
}

ALLOY_API alloy_status alloy_cmdbuf_poll(alloy_cmdbuf *cb, int *done)
{
    static const char fn[] = "alloy_cmdbuf_poll";
    if (!done)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: done is NULL", fn);
    *done = 0;
    alloy_status s = check_committed(fn, cb);
    if (s != ALLOY_OK)
        return s;
    if (!atomic_load_explicit(&cb->done, memory_order_acquire) && cb->q->dev->backend->progress)
        cb->q->dev->backend->progress(cb->q);
    *done = atomic_load_explicit(&cb->done, memory_order_acquire);
    return ALLOY_OK;
}

/* Polls cb->done for up to about WAIT_SPIN_NS before a waiting thread sleeps (it
 * checks again under the queue lock: the completion may land between). The
 * thread that completes a command buffer (a CPU worker that ran its last task, or a GPU
 * host callback) is usually that close to done, and a sleep costs both sides a futex
 * call: on one worker, 1x1x1 products committed and waited in a loop spent a quarter of
 * their time in the wake-ups of the few that slept. */
#define WAIT_SPIN_NS 5000
static void spin_until_done(const alloy_cmdbuf *cb)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        for (int i = 0; i < 16; i++) {
            if (atomic_load_explicit(&((alloy_cmdbuf *)cb)->done, memory_order_acquire))
                return;
#if defined(__x86_64__) || defined(__i386__)
            __asm__ __volatile__("pause");
#elif defined(__aarch64__)
            __asm__ __volatile__("yield");
#endif
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) > WAIT_SPIN_NS)
            return;
    }
}

ALLOY_API alloy_status alloy_cmdbuf_wait(alloy_cmdbuf *cb)
{
    static const char fn[] = "alloy_cmdbuf_wait";
    alloy_status s = check_committed(fn, cb);
    if (s != ALLOY_OK)
        return s;
    if (atomic_load_explicit(&cb->done, memory_order_acquire))
        return cb->status;
    alloy_queue *q = cb->q;
    const alloy__backend *be = q->dev->backend;
    pthread_mutex_lock(&q->lock);
    while (!atomic_load_explicit(&cb->done, memory_order_acquire)) {
        if (be->help(q, cb))
            continue;
        pthread_mutex_unlock(&q->lock);
        spin_until_done(cb);
        pthread_mutex_lock(&q->lock);
        /* done is set under q->lock, so what is read here holds until the sleep */
        if (atomic_load_explicit(&cb->done, memory_order_acquire))
            break;
        q->sleepers++;
        pthread_cond_wait(&q->cond, &q->lock);
        q->sleepers--;
    }
    pthread_mutex_unlock(&q->lock);
    return cb->status;
}

ALLOY_API const char *alloy_cmdbuf_error(const alloy_cmdbuf *cb)
{
    if (!cb || !atomic_load_explicit(&((alloy_cmdbuf *)cb)->done, memory_order_acquire))
        return "";
    return cb->error;
}

ALLOY_API alloy_status alloy_cmdbuf_destroy(alloy_cmdbuf *cb)
{
    static const char fn[] = "alloy_cmdbuf_destroy";
    if (!cb)
        return ALLOY_OK;
    alloy_queue *q = cb->q;
    alloy_status s = alloy__check_device(fn, q->dev);
    if (s != ALLOY_OK)
        return s;
    if (!atomic_load_explicit(&cb->committed, memory_order_acquire)) {
        if (atomic_flag_test_and_set_explicit(&cb->busy, memory_order_acquire))
            return alloy__fail(ALLOY_ERR_BUSY,
                               "%s: another thread is encoding into this command buffer", fn);
        release_buffers(cb);
        free_cmdbuf(cb);
        return ALLOY_OK;
    }
    pthread_mutex_lock(&q->lock);
    /* Freeing drops the queue's child count under the lock; `completing` keeps a
     * concurrent alloy_queue_destroy from freeing the mutex before this thread leaves it. */
    atomic_fetch_add_explicit(&q->completing, 1, memory_order_relaxed);
    if (atomic_load_explicit(&cb->done, memory_order_acquire))
        free_cmdbuf(cb);
    else
        cb->orphan = 1; /* the completion frees it */
    pthread_mutex_unlock(&q->lock);
    atomic_fetch_sub_explicit(&q->completing, 1, memory_order_release); /* last touch of q */
    return ALLOY_OK;
}

void alloy__cmdbuf_set_failure(alloy_cmdbuf *cb, size_t index, alloy_status s, const char *detail)
{
    if (cb->status != ALLOY_OK)
        return;
    cb->status = s;
    alloy__format(cb->error, sizeof cb->error, "op %zu (%s): %s: %s", index,
                  index < cb->nops ? alloy__op_name(cb->ops[index].kind) : "?",
                  alloy_status_string(s), detail ? detail : "");
}

void alloy__cmdbuf_finished(alloy_cmdbuf *cb)
{
    alloy_queue *q = cb->q;
    const alloy__backend *be = q->dev->backend;
    /* References go first, so a buffer may be destroyed as soon as wait returns. */
    release_buffers(cb);
    pthread_mutex_lock(&q->lock);
    atomic_fetch_add_explicit(&q->completing, 1, memory_order_relaxed);
    q->head = cb->next;
    if (!q->head)
        q->tail = NULL;
    q->finished++;
    if (cb->status != ALLOY_OK) {
        q->failures++;
        q->last_failure = cb->status;
    }
    if (q->head && !be->start_all)
        be->start(q->head);
    int orphan = cb->orphan;
    atomic_store_explicit(&cb->done, 1, memory_order_release);
    if (q->sleepers)
        pthread_cond_broadcast(&q->cond);
    if (orphan)
        free_cmdbuf(cb);
    pthread_mutex_unlock(&q->lock);
    atomic_fetch_sub_explicit(&q->completing, 1, memory_order_release); /* last touch of q */
}
