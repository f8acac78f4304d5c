/* The CPU worker pool and job execution.
 *
 * A job is one committed command buffer at the head of its queue. It runs as a sequence
 * of phases (every op contributes one or more); a phase is a set of independent tasks.
 * Threads (pool workers, and application threads inside wait) "enter" a job, claim tasks
 * one at a time with a CAS on the job's claim word, and "leave" it. The thread that
 * finishes a phase's last task advances the job to the next phase; the last thread to
 * leave a finished job completes it. Which thread runs which task never changes what a
 * task computes, so results do not depend on the number of threads. */
#include "cpu.h"
#include "fp_env.h"

#include <fenv.h>
#include <string.h>
#include <time.h>

#define FINISHED_BIT (UINT32_C(1) << 31)
#define SPIN_ROUNDS 4000 /* about 20-50 us of polling before sleeping */

/* A quiet job that nobody has begun after this long goes to the workers at the next
 * completion. */
#define UNCLAIMED_NS 50000
/* A closed job (its share one worker when it started) that has run this long is opened
 * to the workers when a completion leaves shares above one: a long job started under load
 * gets the cores the load left. Short ones are not: a worker joining a job's last tile
 * cost 16% at two threads on two cores. */
#define REOPEN_NS 5000000

static uint64_t monotonic_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static inline uint64_t pack(uint32_t gen, uint32_t ntasks, uint32_t next)
{
    return ((uint64_t)(gen & 0xffffu) << 48) | ((uint64_t)ntasks << 24) | (uint64_t)next;
}
static inline uint32_t claim_gen(uint64_t s) { return (uint32_t)(s >> 48); }
static inline uint32_t claim_ntasks(uint64_t s) { return (uint32_t)(s >> 24) & 0xffffffu; }
static inline uint32_t claim_next(uint64_t s) { return (uint32_t)s & 0xffffffu; }

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __asm__ __volatile__("pause");
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

int64_t alloy__cpu_items_per_task(int64_t count, int64_t min_per)
{
    if (min_per < 1)
        min_per = 1;
    int64_t per = (count + ALLOY__CPU_MAX_TASKS - 1) / ALLOY__CPU_MAX_TASKS;
    return per > min_per ? per : min_per;
}

/* ---------------------------------------------------------------- ready list (cd->lock) */

static void ready_push(alloy__cpu_device *cd, alloy__cpu_job *j)
{
    j->next = NULL;
    j->prev = cd->ready_tail;
    if (cd->ready_tail)
        cd->ready_tail->next = j;
    else
        cd->ready_head = j;
    cd->ready_tail = j;
    j->in_ready = 1;
}

static void ready_remove(alloy__cpu_device *cd, alloy__cpu_job *j)
{
    if (!j->in_ready)
        return;
    if (j->prev)
        j->prev->next = j->next;
    else
        cd->ready_head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        cd->ready_tail = j->prev;
    j->prev = j->next = NULL;
    j->in_ready = 0;
}

/* Wakes sleeping workers, and calls the polling ones, when a phase of several tasks
 * appears. */
static void wake_workers(alloy__cpu_device *cd, uint32_t ntasks)
{
    atomic_fetch_add_explicit(&cd->epoch, 1, memory_order_release);
    atomic_fetch_add_explicit(&cd->epoch_many, 1, memory_order_release);
    pthread_mutex_lock(&cd->lock);
    if (cd->sleepers) {
        if (ntasks > 1)
            pthread_cond_broadcast(&cd->cond);
        else
            pthread_cond_signal(&cd->cond);
    }
    pthread_mutex_unlock(&cd->lock);
}

/* ---------------------------------------------------------------- entering and leaving */

/* Caller guarantees the job is alive (it holds cd->lock with the job in the ready list,
 * or the queue lock with the job at the head). */
static int job_enter(alloy__cpu_job *j)
{
    uint32_t g = atomic_load_explicit(&j->gate, memory_order_relaxed);
    while (!(g & FINISHED_BIT) && g < j->cap) {
        if (atomic_compare_exchange_weak_explicit(&j->gate, &g, g + 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return 1;
    }
    return 0;
}

static int has_claimable(alloy__cpu_job *j)
{
    uint64_t s = atomic_load_explicit(&j->claim, memory_order_acquire);
    return claim_next(s) < claim_ntasks(s);
}

static void job_complete(alloy__cpu_job *j)
{
    alloy__cpu_device *cd = j->cd;
    pthread_mutex_lock(&cd->lock);
    ready_remove(cd, j);
    cd->jobs--;
    /* The jobs are handed over to the workers (opened, and a worker woken) if one has
     * not been begun for UNCLAIMED_NS (a thread that waits on its job begins it within a
     * microsecond or so), or if no other job is under way: so every job begins within
     * one job's time even if no thread ever waits for it. Handing over fresh ones too
     * had the workers race the waiting threads again. */
    int begun = 0, idle = 0;
    uint64_t now = 0; /* read only when an unbegun job is there */
    for (alloy__cpu_job *o = cd->ready_head; o; o = o->next) {
        if (claim_gen(atomic_load_explicit(&o->claim, memory_order_acquire)) != 0 ||
            !has_claimable(o)) {
            begun = 1;
            continue;
        }
        if (!now)
            now = monotonic_ns();
        idle |= now - o->started_ns > UNCLAIMED_NS;
    }
    const int handover = cd->ready_head && (idle || !begun);
    const int roomy = cd->jobs > 0 && cd->nworkers / cd->jobs > 1;
    int reopened = 0;
    for (alloy__cpu_job *o = cd->ready_head; o && (handover || roomy); o = o->next) {
        if (o->open)
            continue;
        if (!handover) {
            if (!now)
                now = monotonic_ns();
            if (now - o->started_ns < REOPEN_NS)
                continue;
            reopened = 1;
        }
        o->open = 1; /* handed over: open to the workers from now on */
    }
    if (handover || reopened) {
        atomic_fetch_add_explicit(&cd->epoch, 1, memory_order_release);
        if (cd->sleepers && reopened)
            pthread_cond_broadcast(&cd->cond);
        else if (cd->sleepers)
            pthread_cond_signal(&cd->cond);
    }
    pthread_mutex_unlock(&cd->lock);
    alloy__cmdbuf_finished(j->cb); /* j is gone after this */
}

static void job_leave(alloy__cpu_job *j)
{
    uint32_t g = atomic_fetch_sub_explicit(&j->gate, 1, memory_order_acq_rel) - 1;
    if (g == FINISHED_BIT)
        job_complete(j);
}

/* ---------------------------------------------------------------- phases */

/* Moves the job to its next phase: called by the thread that finished the last task of
 * the current phase, so no task of this job is running. */
static void job_advance(alloy__cpu_job *j, uint64_t s)
{
    alloy_cmdbuf *cb = j->cb;
    alloy__cpu_device *cd = j->cd;
    j->starting = 0;
    for (;;) {
        if (j->op_active) {
            alloy__op *op = &cb->ops[j->op_index];
            const alloy__cpu_op_impl *impl = alloy__cpu_op(op->kind);
            uint64_t items = impl->next_phase(cd, op);
            if (items > 0) {
                j->items = items;
                j->per = (items + ALLOY__CPU_MAX_TASKS - 1) / ALLOY__CPU_MAX_TASKS;
                uint32_t n = (uint32_t)((items + j->per - 1) / j->per);
                atomic_store_explicit(&j->done, 0, memory_order_relaxed);
                atomic_store_explicit(&j->claim, pack(claim_gen(s) + 1, n, 0),
                                      memory_order_release);
                if (n > 1 && j->share > 1)
                    wake_workers(cd, n);
                return;
            }
            char err[ALLOY__ERROR_TEXT];
            err[0] = 0;
            alloy_status st = impl->end(cd, op, err, sizeof err);
            if (st != ALLOY_OK) {
                alloy__cmdbuf_set_failure(cb, j->op_index, st, err);
                j->failed = 1;
            }
            j->op_active = 0;
            j->op_index++;
        }
        if (j->failed || j->op_index >= cb->nops) {
            atomic_store_explicit(&j->claim, pack(claim_gen(s) + 1, 0, 0), memory_order_release);
            atomic_fetch_or_explicit(&j->gate, FINISHED_BIT, memory_order_acq_rel);
            return;
        }
        alloy__op *op = &cb->ops[j->op_index];
        char err[ALLOY__ERROR_TEXT];
        err[0] = 0;
        alloy_status st = alloy__cpu_op(op->kind)->begin(cd, cb->q->impl, op, err, sizeof err);
        if (st != ALLOY_OK) {
            alloy__cmdbuf_set_failure(cb, j->op_index, st, err);
            j->failed = 1;
            continue;
        }
        j->op_active = 1;
    }
}

/* Runs tasks of j until none is left to claim and no new phase appears for a while.
 * Returns how many tasks this thread ran. */
static int job_run(alloy__cpu_job *j, const alloy__cpu_exec *x)
{
    int idle = 0, ran = 0;
    for (;;) {
        uint64_t s = atomic_load_explicit(&j->claim, memory_order_acquire);
        uint32_t nt = claim_ntasks(s), next = claim_next(s);
        if (next < nt) {
            if (!atomic_compare_exchange_weak_explicit(&j->claim, &s, s + 1, memory_order_acquire,
                                                       memory_order_relaxed))
                continue;
            idle = 0;
            ran++;
            if (!j->starting) {
                alloy__op *op = &j->cb->ops[j->op_index];
                const alloy__cpu_op_impl *impl = alloy__cpu_op(op->kind);
                uint64_t i0 = (uint64_t)next * j->per;
                uint64_t i1 = i0 + j->per < j->items ? i0 + j->per : j->items;
                for (uint64_t i = i0; i < i1; i++)
                    impl->run(x, op, i);
            }
            uint32_t d = atomic_fetch_add_explicit(&j->done, 1, memory_order_acq_rel) + 1;
            if (d == nt)
                job_advance(j, s);
            continue;
        }
        if (atomic_load_explicit(&j->gate, memory_order_acquire) & FINISHED_BIT)
            return ran;
        if (++idle > SPIN_ROUNDS)
            return ran;
        cpu_relax();
    }
}

/* Once j has finished, waits (briefly) until the calling thread is the last inside it, so
 * that its own job_leave completes the job. Workers see the finish within a few hundred
 * cycles and leave; if the waiting thread left first it would sleep in wait and be woken
 * by the worker's completion, a futex round trip. A worker that was preempted inside is
 * not waited for: it completes the job when it runs again. */
static void job_await_last(alloy__cpu_job *j)
{
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        uint32_t g = atomic_load_explicit(&j->gate, memory_order_acquire);
        if (!(g & FINISHED_BIT) || g == (FINISHED_BIT | 1u))
            return;
        cpu_relax();
    }
}

/* ---------------------------------------------------------------- starting and helping */

void alloy__cpu_job_start(alloy__cpu_job *j)
{
    alloy__cpu_device *cd = j->cd;
    /* Phase 0 is one empty task: whoever claims it runs the first op's begin. */
    atomic_store_explicit(&j->done, 0, memory_order_relaxed);
    atomic_store_explicit(&j->gate, 0, memory_order_relaxed);
    j->op_index = 0;
    j->op_active = 0;
    j->failed = 0;
    j->starting = 1;
    atomic_store_explicit(&j->claim, pack(0, 1, 0), memory_order_release);
    pthread_mutex_lock(&cd->lock);
    /* Under load, application threads run their own jobs. Sixteen threads each waiting
     * on a 64x1024x1024 f32 product of its own, on a 16-worker device, did 4.5-5.7k
     * products/s: every product was cut for sixteen workers, and workers raced each
     * waiting thread for its job, leaving it to sleep and be woken. So a job's tiles are
     * cut for its share of the workers, all of them alone and an even part beside other
     * jobs (other queues' command buffers), at least one (a tiling changes no bits, so
     * results do not depend on it); only a job that starts alone is announced to the
     * workers; and only a job whose share is more than one thread calls them for a
     * phase of several tasks. A job started beside others is quiet (not announced): the
     * thread that waits for it begins it, or a worker after another job completes
     * (job_complete). The same sixteen threads then did 6.1-6.7k (docs/perf-notes.md).
     * The caller holds the queue lock, so a helping thread sees the share only after
     * this. */
    cd->jobs++;
    /* a job that starts alone is announced, so its age never matters (0: always old) */
    j->started_ns = cd->jobs > 1 ? monotonic_ns() : 0;
    const int share = cd->nworkers / cd->jobs;
    j->share = share > 1 ? share : 1;
    ((alloy__cpu_queue *)j->cb->q->impl)->workers = j->share;
    /* Workers take tasks only from open jobs: those started alone or with a share above
     * one. A job whose share is one thread is its waiting thread's until it is handed
     * over (job_complete): awake workers that took any claimable task ran a third of the
     * tasks of sixteen threads' jobs on 16 cores, beside those threads (7.0-7.2k
     * products/s against 8.0-8.4k on a 1-worker device). */
    j->open = cd->jobs == 1 || j->share > 1;
    ready_push(cd, j);
    if (cd->jobs == 1) {
        atomic_fetch_add_explicit(&cd->epoch, 1, memory_order_release);
        /* A worker that is awake finds it (the lead polls `epoch`; one running or
         * following looks at the ready list before it sleeps): a futex wake here would
         * cost every commit a system call. */
        if (cd->sleepers == cd->nworkers)
            pthread_cond_signal(&cd->cond);
    }
    pthread_mutex_unlock(&cd->lock);
}

/* Called with the queue lock held. The waiting thread runs tasks under the default
 * floating-point environment (round to nearest, no flush to zero) and gets its own
 * environment back afterwards. */
int alloy__cpu_job_help(alloy_queue *q, alloy__cpu_job *j)
{
    if (!j || !has_claimable(j))
        return 0;
    alloy__cpu_queue *cq = q->impl;
    alloy__cpu_device *cd = j->cd;
    void *scratch = NULL;
    if (j->scratch_need) {
        /* One waiter per queue uses the queue's scratch; others leave the job to the
         * workers (as they do when memory for it cannot be had). */
        int expected = 0;
        if (!atomic_compare_exchange_strong(&cq->scratch_busy, &expected, 1))
            return 0;
        if (!cq->scratch)
            cq->scratch = alloy__alloc(cd->dev, cd->scratch_size, 64);
        if (!cq->scratch) {
            atomic_store(&cq->scratch_busy, 0);
            return 0; /* a closed job then runs when another completes (job_complete) */
        }
        scratch = cq->scratch;
    }
    if (!job_enter(j)) {
        if (scratch)
            atomic_store(&cq->scratch_busy, 0);
        return 0;
    }
    pthread_mutex_unlock(&q->lock);
    alloy__fp_saved saved;
    alloy__fp_enter_default(&saved);
    alloy__cpu_exec x = {cd, scratch};
    job_run(j, &x);
    job_await_last(j);
    alloy__fp_restore(&saved);
    if (scratch)
        atomic_store(&cq->scratch_busy, 0);
    job_leave(j); /* may complete the job, which takes the queue lock */
    pthread_mutex_lock(&q->lock);
    return 1;
}

/* ---------------------------------------------------------------- workers */

/* An open job with tasks to claim and room for another thread, or NULL. *full is set
 * when some open job had tasks but already ran on as many threads as it may: then
 * polling is useless and would only take a core from the threads running it. (Closed
 * jobs do not count: one may be handed over in a moment.) */
static alloy__cpu_job *pick_job(alloy__cpu_device *cd, int *full)
{
    *full = 0;
    for (alloy__cpu_job *j = cd->ready_head; j; j = j->next) {
        if (!has_claimable(j))
            continue;
        if (!j->open) /* closed: its own thread runs it */
            continue;
        if (!job_enter(j)) {
            *full = 1;
            continue;
        }
        /* Round robin: the next search starts after this job. */
        if (j != cd->ready_tail) {
            ready_remove(cd, j);
            ready_push(cd, j);
        }
        return j;
    }
    return NULL;
}

static void *worker_main(void *p)
{
    alloy__cpu_worker *w = p;
    alloy__cpu_device *cd = w->cd;
    fesetenv(FE_DFL_ENV);
    alloy__cpu_exec x = {cd, w->scratch};
    int was_full = 0, ran = 0;
    pthread_mutex_lock(&cd->lock);
    for (;;) {
        if (cd->shutdown)
            break;
        int full;
        alloy__cpu_job *j = pick_job(cd, &full);
        if (j) {
            was_full = 0;
            pthread_mutex_unlock(&cd->lock);
            ran = job_run(j, &x);
            job_leave(j);
            pthread_mutex_lock(&cd->lock);
            continue;
        }
        /* Nothing to do: poll briefly (cheap wake-up for bursts), then sleep. One worker,
         * the lead, polls for any new tasks. The others poll only after they ran tasks in
         * their last job, and only for phases of several tasks: when every idle worker
         * answered every announcement, a one-task op (a 1x1x1 product: 14-16 us against
         * 1.0 on a one-worker device, 16 cores) paid for fifteen threads taking the
         * device lock beside the thread that ran it, and that thread slept on the lock.
         * A job that is full (an application thread in wait runs it) is polled past
         * once, for the job its thread commits next: sleeping there cost a 128^3 sgemm a
         * fifth of its time in wake-ups. Full twice in a row, the thread sleeps rather
         * than take a core from those running it. */
        const int poll = !full || !was_full;
        const int lead = poll && !cd->lead_polling;
        const int follow = poll && !lead && ran > 0;
        _Atomic uint64_t *watch = lead ? &cd->epoch : &cd->epoch_many;
        cd->lead_polling |= lead;
        was_full = full;
        ran = 0;
        uint64_t e = atomic_load_explicit(&cd->epoch, memory_order_acquire);
        uint64_t ew = atomic_load_explicit(watch, memory_order_acquire);
        pthread_mutex_unlock(&cd->lock);
        int changed = 0;
        for (int i = 0; i < SPIN_ROUNDS && !changed && (lead || follow); i++) {
            cpu_relax();
            changed = atomic_load_explicit(watch, memory_order_acquire) != ew;
        }
        pthread_mutex_lock(&cd->lock);
        if (lead)
            cd->lead_polling = 0;
        if (changed || cd->shutdown || atomic_load_explicit(&cd->epoch, memory_order_acquire) != e)
            continue;
        cd->sleepers++;
        pthread_cond_wait(&cd->cond, &cd->lock);
        cd->sleepers--;
    }
    pthread_mutex_unlock(&cd->lock);
    return NULL;
}

alloy_status alloy__cpu_pool_start(alloy__cpu_device *cd)
{
    alloy_device *dev = cd->dev;
    size_t n = (size_t)cd->nworkers;
    cd->workers = alloy__alloc(dev, sizeof(alloy__cpu_worker) * n, 64);
    if (!cd->workers)
        return ALLOY_ERR_OUT_OF_MEMORY;
    memset(cd->workers, 0, sizeof(alloy__cpu_worker) * n);
    for (size_t i = 0; i < n; i++) {
        cd->workers[i].cd = cd;
        cd->workers[i].scratch = alloy__alloc(dev, cd->scratch_size, 64);
        if (!cd->workers[i].scratch)
            return ALLOY_ERR_OUT_OF_MEMORY;
    }
    for (size_t i = 0; i < n; i++) {
        if (pthread_create(&cd->workers[i].thread, NULL, worker_main, &cd->workers[i]) != 0)
            return ALLOY_ERR_OUT_OF_MEMORY;
        cd->threads_started++;
    }
    return ALLOY_OK;
}

/* Also undoes a partial alloy__cpu_pool_start. */
void alloy__cpu_pool_stop(alloy__cpu_device *cd)
{
    alloy_device *dev = cd->dev;
    pthread_mutex_lock(&cd->lock);
    cd->shutdown = 1;
    pthread_cond_broadcast(&cd->cond);
    pthread_mutex_unlock(&cd->lock);
    if (!cd->workers)
        return;
    for (int i = 0; i < cd->threads_started; i++)
        pthread_join(cd->workers[i].thread, NULL);
    for (int i = 0; i < cd->nworkers; i++)
        alloy__free(dev, cd->workers[i].scratch, cd->scratch_size);
    alloy__free(dev, cd->workers, sizeof(alloy__cpu_worker) * (size_t)cd->nworkers);
    cd->workers = NULL;
    cd->threads_started = 0;
}
