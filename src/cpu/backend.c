/* The CPU backend's implementation of the backend interface. */
#include "cpu.h"

#include "gemm/gemm.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>
#if defined(__linux__)
#include <sched.h>
#endif

const alloy__cpu_op_impl *alloy__cpu_op(alloy__op_kind k)
{
    switch (k) {
    case ALLOY__OP_COPY: return &alloy__cpu_copy_impl;
    case ALLOY__OP_MATMUL: return &alloy__cpu_matmul_impl;
    case ALLOY__OP_LU_FACTOR: return &alloy__cpu_lu_factor_impl;
    case ALLOY__OP_LU_SOLVE: return &alloy__cpu_lu_solve_impl;
    case ALLOY__OP_TRIANGULAR_SOLVE: return &alloy__cpu_trsm_impl;
    case ALLOY__OP_LAYER_NORM: return &alloy__cpu_norm_impl;
    case ALLOY__OP_KIND_COUNT: break;
    }
    return &alloy__cpu_copy_impl;
}

static int usable_cores(void)
{
#if defined(__linux__) && defined(CPU_COUNT)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return n;
    }
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static alloy_status pick_kernels(alloy_cpu_kernel want, const alloy__cpu_kernels **out)
{
    const alloy__cpu_kernels *avx512 = alloy__cpu_has_avx512f() ? alloy__cpu_kernels_avx512() : NULL;
    const alloy__cpu_kernels *avx2 = alloy__cpu_has_avx2_fma() ? alloy__cpu_kernels_avx2() : NULL;
    switch (want) {
    case ALLOY_CPU_KERNEL_AUTO:
        *out = avx512 ? avx512 : avx2 ? avx2 : alloy__cpu_kernels_portable();
        return ALLOY_OK;
    case ALLOY_CPU_KERNEL_PORTABLE: *out = alloy__cpu_kernels_portable(); return ALLOY_OK;
    case ALLOY_CPU_KERNEL_AVX2: *out = avx2; break;
    case ALLOY_CPU_KERNEL_AVX512: *out = avx512; break;
    }
    if (!*out)
        return alloy__fail(ALLOY_ERR_UNSUPPORTED,
                           "alloy_device_open: this CPU (or build) lacks the %s kernels' "
                           "instructions",
                           want == ALLOY_CPU_KERNEL_AVX2 ? "avx2" : "avx512");
    return ALLOY_OK;
}

static alloy_status cpu_device_open(alloy_device *dev, const alloy_device_desc *desc)
{
    const alloy__cpu_kernels *k = NULL;
    alloy_status s = pick_kernels(desc->cpu_kernel, &k);
    if (s != ALLOY_OK || !k)
        return s != ALLOY_OK ? s : ALLOY_ERR_UNSUPPORTED;
    alloy__cpu_device *cd = alloy__alloc(dev, sizeof *cd, 64);
    if (!cd)
        return alloy__fail(ALLOY_ERR_OUT_OF_MEMORY, "alloy_device_open: out of memory");
    memset(cd, 0, sizeof *cd);
    cd->dev = dev;
    cd->kernels = k;
    cd->nworkers = desc->cpu_workers > 0 ? desc->cpu_workers : usable_cores();
    size_t s32 = alloy__gemm_scratch(k, 0), s64 = alloy__gemm_scratch(k, 1);
    cd->scratch_size = s32 > s64 ? s32 : s64;
    atomic_init(&cd->epoch, 0);
    atomic_init(&cd->epoch_many, 0);
    if (pthread_mutex_init(&cd->lock, NULL) != 0) {
        alloy__free(dev, cd, sizeof *cd);
        return alloy__fail(ALLOY_ERR_OUT_OF_MEMORY, "alloy_device_open: cannot create a mutex");
    }
    if (pthread_cond_init(&cd->cond, NULL) != 0) {
        pthread_mutex_destroy(&cd->lock);
        alloy__free(dev, cd, sizeof *cd);
        return alloy__fail(ALLOY_ERR_OUT_OF_MEMORY,
                           "alloy_device_open: cannot create a condition variable");
    }
    s = alloy__cpu_pool_start(cd);
    if (s != ALLOY_OK) {
        const int n = cd->nworkers;
        alloy__cpu_pool_stop(cd);
        pthread_cond_destroy(&cd->cond);
        pthread_mutex_destroy(&cd->lock);
        alloy__free(dev, cd, sizeof *cd);
        return alloy__fail(s, "alloy_device_open: cannot allocate or start %d worker threads "
                              "(out of memory or threads)",
                           n);
    }
    dev->impl = cd;
    dev->workers = cd->nworkers;
    snprintf(dev->name, sizeof dev->name, "cpu (%s kernels, %d workers)", k->name, cd->nworkers);
    return ALLOY_OK;
}

static void cpu_device_close(alloy_device *dev)
{
    alloy__cpu_device *cd = dev->impl;
    alloy__cpu_pool_stop(cd);
    pthread_cond_destroy(&cd->cond);
    pthread_mutex_destroy(&cd->lock);
    alloy__free(dev, cd, sizeof *cd);
    dev->impl = NULL;
}

static alloy_status cpu_buffer_create(alloy_device *dev, alloy_buffer *b, size_t bytes,
                                      alloy_memory where)
{
    (void)where;
    void *p = alloy__alloc(dev, bytes ? bytes : 1, 64);
    if (!p)
        return alloy__fail(ALLOY_ERR_OUT_OF_MEMORY,
                           "alloy_buffer_create: out of memory for %zu bytes", bytes);
    b->host = p;
    b->addr = (uint64_t)(uintptr_t)p;
    return ALLOY_OK;
}

static alloy_status cpu_buffer_wrap_host(alloy_device *dev, alloy_buffer *b, void *ptr,
                                         size_t bytes)
{
    (void)dev;
    (void)bytes;
    b->host = ptr;
    b->addr = (uint64_t)(uintptr_t)ptr;
    return ALLOY_OK;
}

static alloy_status cpu_buffer_wrap_device(alloy_device *dev, alloy_buffer *b, uint64_t ptr,
                                           size_t bytes)
{
    (void)dev;
    (void)b;
    (void)ptr;
    (void)bytes;
    return alloy__fail(ALLOY_ERR_UNSUPPORTED,
                       "alloy_buffer_wrap_device: a CPU device has no device pointers; use "
                       "alloy_buffer_wrap_host");
}

static void cpu_buffer_destroy(alloy_device *dev, alloy_buffer *b)
{
    if (b->owned)
        alloy__free(dev, b->host, b->size ? b->size : 1);
}

static alloy_status cpu_buffer_write(alloy_buffer *b, size_t offset, const void *src, size_t bytes)
{
    memcpy((char *)b->host + offset, src, bytes);
    return ALLOY_OK;
}

static alloy_status cpu_buffer_read(alloy_buffer *b, size_t offset, void *dst, size_t bytes)
{
    memcpy(dst, (const char *)b->host + offset, bytes);
    return ALLOY_OK;
}

static alloy_status cpu_queue_init(alloy_queue *q)
{
    alloy__cpu_queue *cq = q->impl;
    atomic_init(&cq->scratch_busy, 0);
    cq->scratch = NULL;
    cq->ws = NULL;
    cq->ws_size = 0;
    return ALLOY_OK;
}

static void cpu_queue_fini(alloy_queue *q)
{
    alloy__cpu_queue *cq = q->impl;
    alloy__cpu_device *cd = q->dev->impl;
    alloy__free(q->dev, cq->scratch, cd->scratch_size);
    alloy__free(q->dev, cq->ws, cq->ws_size);
}

void *alloy__cpu_workspace(alloy__cpu_device *cd, alloy__cpu_queue *cq, size_t bytes)
{
    if (bytes <= cq->ws_size)
        return cq->ws;
    void *p = alloy__alloc(cd->dev, bytes, 64);
    if (!p)
        return NULL;
    alloy__free(cd->dev, cq->ws, cq->ws_size);
    cq->ws = p;
    cq->ws_size = bytes;
    return p;
}

static alloy_status cpu_cmdbuf_init(alloy_cmdbuf *cb)
{
    alloy__cpu_job *j = cb->impl;
    j->cb = cb;
    j->cd = cb->q->dev->impl;
    j->cap = (uint32_t)j->cd->nworkers;
    return ALLOY_OK;
}

static void cpu_cmdbuf_fini(alloy_cmdbuf *cb) { (void)cb; }

static alloy_status cpu_check_op(alloy_device *dev, alloy__op *op)
{
    alloy__cpu_device *cd = dev->impl;
    return alloy__cpu_op(op->kind)->check(cd, op);
}

static alloy_status cpu_prepare(alloy_cmdbuf *cb)
{
    alloy__cpu_job *j = cb->impl;
    size_t need = 0;
    for (size_t i = 0; i < cb->nops; i++) {
        size_t s = alloy__cpu_op(cb->ops[i].kind)->scratch(j->cd, &cb->ops[i]);
        if (s > need)
            need = s;
    }
    j->scratch_need = need;
    return ALLOY_OK;
}

static void cpu_start(alloy_cmdbuf *cb) { alloy__cpu_job_start(cb->impl); }

static int cpu_help(alloy_queue *q, alloy_cmdbuf *target)
{
    (void)target; /* the head is the only runnable command buffer of an in-order queue */
    return alloy__cpu_job_help(q, q->head ? q->head->impl : NULL);
}

static const alloy__backend cpu_backend = {
    "cpu",
    ALLOY_BACKEND_CPU,
    sizeof(alloy__cpu_queue),
    sizeof(alloy__cpu_job),
    0,
    cpu_device_open,
    cpu_device_close,
    cpu_buffer_create,
    cpu_buffer_wrap_host,
    cpu_buffer_wrap_device,
    cpu_buffer_destroy,
    cpu_buffer_write,
    cpu_buffer_read,
    cpu_queue_init,
    cpu_queue_fini,
    cpu_cmdbuf_init,
    cpu_cmdbuf_fini,
    cpu_check_op,
    cpu_prepare,
    cpu_start,
    cpu_help,
    NULL,
};

const alloy__backend *alloy__cpu_backend(void) { return &cpu_backend; }
