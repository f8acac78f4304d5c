/* The CPU backend's private state: the worker pool, jobs (one per command buffer) and
 * the interface each operation implements to run on the pool. */
#ifndef ALLOY_CPU_CPU_H
#define ALLOY_CPU_CPU_H

#include "../core/internal.h"
#include "gemm/kernels.h"

#include <pthread.h>
#include <stdatomic.h>

/* A phase has at most this many tasks (they are packed into one atomic word). */
#define ALLOY__CPU_MAX_TASKS ((UINT32_C(1) << 24) - 1)

typedef struct alloy__cpu_job alloy__cpu_job;

typedef struct alloy__cpu_device alloy__cpu_device;

typedef struct alloy__cpu_worker {
    alloy__cpu_device *cd;
    pthread_t thread;
    void *scratch; /* cd->scratch_size bytes */
} alloy__cpu_worker;

struct alloy__cpu_device {
    alloy_device *dev;
    const alloy__cpu_kernels *kernels;
    int nworkers;
    size_t scratch_size; /* bytes of scratch every executor has */
    alloy__cpu_worker *workers;
    int threads_started;

    pthread_mutex_t lock; /* guards the ready list, sleepers, lead_polling and shutdown */
    pthread_cond_t cond;
    int sleepers;
    int lead_polling; /* a worker polls `epoch` (at most one: see worker_main) */
    int shutdown;
    alloy__cpu_job *ready_head, *ready_tail; /* jobs that may have tasks to claim */
    _Atomic uint64_t epoch;                  /* bumped whenever new tasks appear */
    _Atomic uint64_t epoch_many;             /* bumped when a phase of several tasks appears */
    int jobs;                                /* started and not complete (the ready list) */
};

/* The per-command-buffer execution state (the command buffer's backend state). */
struct alloy__cpu_job {
    alloy_cmdbuf *cb;
    alloy__cpu_device *cd;
    /* gen:16 | ntasks:24 | next:24. A task is claimed by one CAS on this word; the
     * packing keeps the count and the claim consistent across phase changes. */
    _Atomic uint64_t claim;
    _Atomic uint32_t done; /* tasks finished in the current phase */
    _Atomic uint32_t gate; /* FINISHED bit | threads executing this job */
    uint32_t cap;          /* at most this many threads execute it at once */
    size_t scratch_need;   /* largest per-task scratch of its ops */
    uint64_t items, per;   /* current phase: items, and items per task */
    /* Touched only by the one thread advancing phases (with no task running). */
    size_t op_index;
    int op_active;
    int starting;
    uint64_t started_ns; /* when it was started quiet (monotonic; else 0), under cd->lock */
    int share;           /* the workers its tiles are cut for (see job_start) */
    int open;            /* workers may take its tasks (see job_start); under cd->lock */
    int failed;
    alloy__cpu_job *prev, *next; /* ready list, under cd->lock */
    int in_ready;
};

typedef struct alloy__cpu_queue {
    _Atomic int scratch_busy; /* the waiter scratch below is in use */
    void *scratch;            /* lazily allocated, cd->scratch_size bytes */
    /* Op workspace (packed panels, row-major copies). A queue runs one op at a time, so
     * the running op owns it from begin to end; it only grows, and is freed with the
     * queue, so repeated ops do not pay for fresh pages. */
    void *ws;
    size_t ws_size;
    /* Threads the running job may use, set when it starts: the device's workers shared
     * by the jobs running then (see alloy__cpu_job_start). Ops plan their tiles for it. */
    int workers;
} alloy__cpu_queue;

/* The queue's op workspace with at least `bytes` bytes (contents undefined), or NULL when
 * it cannot grow. Only for the op running on that queue, from its begin to its end. */
void *alloy__cpu_workspace(alloy__cpu_device *cd, alloy__cpu_queue *cq, size_t bytes);

/* What a thread running tasks has at hand. */
typedef struct alloy__cpu_exec {
    alloy__cpu_device *cd;
    void *scratch; /* cd->scratch_size bytes, private to this thread for the task */
} alloy__cpu_exec;

/* How an operation runs on the pool. An op runs as phases; the tasks of one phase run in
 * any order on any threads; a phase starts when the previous one has finished. */
typedef struct alloy__cpu_op_impl {
    /* Encode time: may plan into op->exec; ALLOY_ERR_UNSUPPORTED to refuse. */
    alloy_status (*check)(const alloy__cpu_device *cd, alloy__op *op);
    /* Per-task scratch bytes (at most cd->scratch_size). */
    size_t (*scratch)(const alloy__cpu_device *cd, const alloy__op *op);
    /* Run time, by one thread, when the op starts: may allocate workspace. On failure it
     * writes a reason into err. */
    alloy_status (*begin)(alloy__cpu_device *cd, alloy__cpu_queue *cq, alloy__op *op, char *err,
                          size_t errcap);
    /* By one thread, after begin and after each phase: the next phase's item count, or 0
     * when the op is complete. Items run independently; the pool groups consecutive items
     * into at most ALLOY__CPU_MAX_TASKS tasks, so a phase may have any number of them. */
    uint64_t (*next_phase)(alloy__cpu_device *cd, alloy__op *op);
    void (*run)(const alloy__cpu_exec *x, alloy__op *op, uint64_t item);
    /* By one thread, when the op is complete (only if begin succeeded): frees what begin
     * allocated and reports a failure its tasks found (e.g. invalid pivots), with a reason
     * in err; ALLOY_OK otherwise. */
    alloy_status (*end)(alloy__cpu_device *cd, alloy__op *op, char *err, size_t errcap);
} alloy__cpu_op_impl;

const alloy__cpu_op_impl *alloy__cpu_op(alloy__op_kind k);

extern const alloy__cpu_op_impl alloy__cpu_copy_impl;
extern const alloy__cpu_op_impl alloy__cpu_matmul_impl;
extern const alloy__cpu_op_impl alloy__cpu_lu_factor_impl;
extern const alloy__cpu_op_impl alloy__cpu_lu_solve_impl;
extern const alloy__cpu_op_impl alloy__cpu_trsm_impl;
extern const alloy__cpu_op_impl alloy__cpu_norm_impl;

/* Pool (pool.c). */
alloy_status alloy__cpu_pool_start(alloy__cpu_device *cd);
void alloy__cpu_pool_stop(alloy__cpu_device *cd);
void alloy__cpu_job_start(alloy__cpu_job *job);
/* Called by a waiting thread with the queue lock held (alloy__backend.help). */
int alloy__cpu_job_help(alloy_queue *q, alloy__cpu_job *job);

/* A phase plan that splits `count` items into tasks of `per` items (fixed by shape). */
static inline uint64_t alloy__cpu_tasks(int64_t count, int64_t per)
{
    return (uint64_t)((count + per - 1) / per);
}
/* Tiles to cut each of `count` batch entries into for `workers` workers: 4 tasks a worker
 * in all, at most `cap`, one for a single worker (a tiling changes no bits; fewer, larger
 * tiles repack less). */
static inline int64_t alloy__cpu_tiles_wanted(int workers, int64_t count, int64_t cap)
{
    int64_t want = workers <= 1 ? 1 : 4 * (int64_t)workers;
    want = want > cap ? cap : want;
    return count >= want || count == 0 ? 1 : want / count;
}
/* The fewest multiply-adds worth a thread of its own. A thread that joins an op costs
 * microseconds (the hand-off, and its own reads of the operands), and on a machine whose
 * cores are all workers it also turns the waiting thread's help into one thread too many:
 * at 2 workers on 2 cores a 2-way split of a 128^3 f32 product (2^21 multiply-adds) was
 * 20-60% slower than one thread, of 192^3 (3.4 x 2^21) 19% faster (docs/perf-notes.md). */
#define ALLOY__CPU_THREAD_FMAS (INT64_C(1) << 21)
/* The workers worth cutting an op of `fmas` multiply-adds for: at most `workers`, at
 * least one (how an op is cut changes no bits). */
static inline int alloy__cpu_workers_for(int workers, double fmas)
{
    const double t = fmas / (double)ALLOY__CPU_THREAD_FMAS;
    return t >= (double)workers ? workers : t < 1 ? 1 : (int)t;
}
/* Items per task so that there are at most ALLOY__CPU_MAX_TASKS tasks and at least
 * `min_per` items in each. */
int64_t alloy__cpu_items_per_task(int64_t count, int64_t min_per);

#endif
