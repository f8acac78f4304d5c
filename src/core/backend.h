/* The one interface between src/core and a backend. src/core calls a backend only
 * through this table and never includes a backend's headers; a backend provides one
 * `static const alloy__backend` and nothing else that core needs to know.
 *
 * Division of labour: core owns validation, reference counting, the queue's list of
 * committed command buffers (commit order) and its lock, and completion bookkeeping.
 * A backend owns memory, execution and noticing that work has finished. */
#ifndef ALLOY_CORE_BACKEND_H
#define ALLOY_CORE_BACKEND_H

#include "alloy.h"
#include "op.h"

typedef struct alloy__backend {
    const char *name;
    alloy_backend kind;
    /* Bytes of backend state core allocates after each queue and command buffer. */
    size_t queue_state_size;
    size_t cmdbuf_state_size;
    /* 1: start() is called for every committed command buffer in commit order (a GPU
     * stream orders them itself). 0: only for the one at the head of its queue. */
    int start_all;

    alloy_status (*device_open)(alloy_device *dev, const alloy_device_desc *desc);
    /* Called only when the device has no live children. */
    void (*device_close)(alloy_device *dev);

    alloy_status (*buffer_create)(alloy_device *dev, alloy_buffer *b, size_t bytes,
                                  alloy_memory where);
    alloy_status (*buffer_wrap_host)(alloy_device *dev, alloy_buffer *b, void *ptr, size_t bytes);
    alloy_status (*buffer_wrap_device)(alloy_device *dev, alloy_buffer *b, uint64_t ptr,
                                       size_t bytes);
    void (*buffer_destroy)(alloy_device *dev, alloy_buffer *b);
    /* Bounds are checked by core. */
    alloy_status (*buffer_write)(alloy_buffer *b, size_t offset, const void *src, size_t bytes);
    alloy_status (*buffer_read)(alloy_buffer *b, size_t offset, void *dst, size_t bytes);

    alloy_status (*queue_init)(alloy_queue *q);
    void (*queue_fini)(alloy_queue *q);
    alloy_status (*cmdbuf_init)(alloy_cmdbuf *cb);
    void (*cmdbuf_fini)(alloy_cmdbuf *cb);

    /* Whether this device runs the (already valid) op: ALLOY_OK or ALLOY_ERR_UNSUPPORTED,
     * with alloy__fail's text. May fill op->exec with encode-time planning. */
    alloy_status (*check_op)(alloy_device *dev, alloy__op *op);

    /* Prepares a command buffer for commit (e.g. launches on a stream). Called before it
     * is queued, by the committing thread, without the queue lock. An error fails the
     * commit with nothing queued. */
    alloy_status (*prepare)(alloy_cmdbuf *cb);
    /* Starts a command buffer; called with the queue lock held (see start_all). */
    void (*start)(alloy_cmdbuf *cb);
    /* Called by a thread waiting for `target`, with the queue lock held; may drop and
     * retake it. Runs or advances work of the queue up to target. Returns 1 when it made
     * progress (the caller checks again), 0 when the caller should sleep until a
     * completion on the queue. */
    int (*help)(alloy_queue *q, alloy_cmdbuf *target);
    /* Notices finished work without blocking (GPU event polling); may be NULL. Called
     * without the queue lock. */
    void (*progress)(alloy_queue *q);
} alloy__backend;

const alloy__backend *alloy__cpu_backend(void);
/* NULL when the library was built without CUDA. */
const alloy__backend *alloy__cuda_backend(void);

#endif
