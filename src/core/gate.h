/* A count of holders that can be closed: once closed, no one can enter again.
 * Devices count their live children with it, queues their command buffers, buffers
 * the command buffers that reference them. Closing succeeds only at zero, so a destroy
 * racing with a new reference either wins (the reference is refused) or fails with
 * ALLOY_ERR_STATE; it never frees something in use. */
#ifndef ALLOY_CORE_GATE_H
#define ALLOY_CORE_GATE_H

#include <stdatomic.h>
#include <stdint.h>

typedef struct alloy__gate {
    _Atomic int64_t count; /* >= 0: holders; -1: closed */
} alloy__gate;

static inline void alloy__gate_init(alloy__gate *g) { atomic_init(&g->count, 0); }

/* 1 when entered, 0 when the gate is closed. */
static inline int alloy__gate_enter(alloy__gate *g)
{
    int64_t v = atomic_load_explicit(&g->count, memory_order_relaxed);
    while (v >= 0) {
        if (atomic_compare_exchange_weak_explicit(&g->count, &v, v + 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return 1;
    }
    return 0;
}

static inline void alloy__gate_leave(alloy__gate *g)
{
    atomic_fetch_sub_explicit(&g->count, 1, memory_order_release);
}

/* 1 when it was at zero and is now closed; 0 when holders remain (nothing changed). */
static inline int alloy__gate_close(alloy__gate *g)
{
    int64_t zero = 0;
    return atomic_compare_exchange_strong_explicit(&g->count, &zero, -1, memory_order_acq_rel,
                                                   memory_order_relaxed);
}

static inline int64_t alloy__gate_count(alloy__gate *g)
{
    return atomic_load_explicit(&g->count, memory_order_acquire);
}

#endif
