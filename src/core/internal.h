/* The objects behind the public handles, and core's helpers for backends. */
#ifndef ALLOY_CORE_INTERNAL_H
#define ALLOY_CORE_INTERNAL_H

#include "alloy.h"
#include "backend.h"
#include "fork_guard.h"
#include "gate.h"
#include "op.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#define ALLOY__ERROR_TEXT 256

struct alloy_device {
    const alloy__backend *backend;
    alloy_allocator allocator; /* copied from the descriptor */
    alloy__gate children;      /* live buffers and queues */
    alloy__fork_guard fork;
    int workers;
    char name[96];
    /* The device's queues, so finished GPU work can be noticed from a buffer destroy
     * (alloy__device_progress). Taken before any queue lock. */
    pthread_mutex_t queues_lock;
    alloy_queue *queues;
    void *impl; /* the backend's device state */
};

struct alloy_buffer {
    alloy_device *dev;
    alloy__gate refs;   /* unfinished command buffers that use it */
    uint64_t addr;      /* the address kernels use (host or device) */
    void *host;         /* host-visible pointer, or NULL */
    size_t size;
    alloy_memory where;
    int owned;          /* 1: allocated by the backend; 0: wrapped */
    void *impl;
};

struct alloy_queue {
    alloy_device *dev;
    alloy__gate children; /* command buffers created and not freed */
    pthread_mutex_t lock;
    pthread_cond_t cond;  /* signalled when a command buffer finishes */
    int sleepers;
    /* Threads that may free one of this queue's command buffers under its lock
     * (alloy__cmdbuf_finished, alloy_cmdbuf_destroy): raised under the lock, dropped as
     * their very last touch of the queue, so destroy never frees a mutex that such a
     * thread is still unlocking. */
    _Atomic int completing;
    alloy_queue *qprev, *qnext; /* the device's list, under dev->queues_lock */
    alloy_cmdbuf *head, *tail; /* committed, unfinished, in commit order */
    uint64_t committed;        /* command buffers committed so far */
    uint64_t finished;         /* ... and finished; they finish in commit order */
    uint64_t failures;         /* ... and failed */
    alloy_status last_failure;
    void *impl;
};

enum { ALLOY__INLINE_OPS = 2, ALLOY__INLINE_BUFFERS = 8 };

struct alloy_cmdbuf {
    alloy_queue *q;
    atomic_flag busy;     /* held by the one thread encoding or committing */
    _Atomic int committed; /* set once, by commit */
    _Atomic int done;     /* 1 once finished; set under the queue lock */
    int orphan;           /* destroyed while running: free on completion (queue lock) */
    alloy_status status;  /* execution status, final once done */
    char error[ALLOY__ERROR_TEXT];

    alloy__op *ops;
    size_t nops, ops_cap;
    alloy_buffer **bufs;
    size_t nbufs, bufs_cap;
    alloy_cmdbuf *next; /* queue order */
    void *impl;

    alloy__op ops_inline[ALLOY__INLINE_OPS];
    alloy_buffer *bufs_inline[ALLOY__INLINE_BUFFERS];
};

/* ---- errors: set this thread's last error and return s. */
alloy_status alloy__fail(alloy_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Writes the text into a caller's buffer (for command buffer errors). */
void alloy__format(char *dst, size_t cap, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* ---- host memory through the device's allocator. NULL on failure. */
void *alloy__alloc(const alloy_device *dev, size_t bytes, size_t align);
void alloy__free(const alloy_device *dev, void *p, size_t bytes);
/* The default allocator (aligned system allocation). */
extern const alloy_allocator alloy__system_allocator;

/* ---- lets the backend notice finished work on every queue of dev (no-op where work is
 * noticed as it finishes, as on the CPU). */
void alloy__device_progress(alloy_device *dev);

/* ---- checks shared by every entry point. */
alloy_status alloy__check_device(const char *fn, const alloy_device *dev);

/* ---- completion: a backend calls this when the head command buffer of its queue has
 * finished (cb->status and cb->error already set). Releases its references, starts the
 * next one, wakes waiters, frees it if it was destroyed while running. Called without
 * the queue lock; afterwards cb must not be touched. */
void alloy__cmdbuf_finished(alloy_cmdbuf *cb);
/* Sets cb's status and error text for a failure in op `index` (first failure wins). */
void alloy__cmdbuf_set_failure(alloy_cmdbuf *cb, size_t index, alloy_status s,
                               const char *detail);

/* ---- overflow-checked arithmetic: 1 on overflow. */
static inline int alloy__mul_overflow_u64(uint64_t a, uint64_t b, uint64_t *r)
{
    if (a != 0 && b > UINT64_MAX / a)
        return 1;
    *r = a * b;
    return 0;
}
static inline int alloy__add_overflow_u64(uint64_t a, uint64_t b, uint64_t *r)
{
    if (b > UINT64_MAX - a)
        return 1;
    *r = a + b;
    return 0;
}

#endif
