/* Devices: choosing a backend, the allocator hook, lifetime. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *system_alloc(void *ctx, size_t bytes, size_t align)
{
    (void)ctx;
    void *p = NULL;
    if (align < sizeof(void *))
        align = sizeof(void *);
    if (posix_memalign(&p, align, bytes ? bytes : 1) != 0)
        return NULL;
    return p;
}

static void system_free(void *ctx, void *p, size_t bytes)
{
    (void)ctx;
    (void)bytes;
    free(p);
}

const alloy_allocator alloy__system_allocator = {NULL, system_alloc, system_free};

void *alloy__alloc(const alloy_device *dev, size_t bytes, size_t align)
{
    return dev->allocator.alloc(dev->allocator.ctx, bytes, align);
}

void alloy__free(const alloy_device *dev, void *p, size_t bytes)
{
    if (p)
        dev->allocator.free(dev->allocator.ctx, p, bytes);
}

void alloy__device_progress(alloy_device *dev)
{
    if (!dev->backend->progress)
        return;
    pthread_mutex_lock(&dev->queues_lock);
    for (alloy_queue *q = dev->queues; q; q = q->qnext)
        dev->backend->progress(q);
    pthread_mutex_unlock(&dev->queues_lock);
}

alloy_status alloy__check_device(const char *fn, const alloy_device *dev)
{
    if (!dev)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: device is NULL", fn);
    if (!alloy__fork_guard_same_process(&dev->fork))
        return alloy__fail(ALLOY_ERR_STATE,
                           "%s: this device was opened by the parent process before fork(); "
                           "open a new device in the child",
                           fn);
    return ALLOY_OK;
}

ALLOY_API alloy_device_desc alloy_device_desc_default(void)
{
    alloy_device_desc d;
    memset(&d, 0, sizeof d);
    d.backend = ALLOY_BACKEND_AUTO;
    d.ordinal = 0;
    d.cpu_workers = 0;
    d.allocator = NULL;
    d.cpu_kernel = ALLOY_CPU_KERNEL_AUTO;
    return d;
}

static alloy_status open_with(const alloy__backend *be, const alloy_device_desc *desc,
                              alloy_device **out)
{
    const alloy_allocator *a = desc->allocator ? desc->allocator : &alloy__system_allocator;
    alloy_device *dev = a->alloc(a->ctx, sizeof *dev, 64);
    if (!dev)
        return alloy__fail(ALLOY_ERR_OUT_OF_MEMORY, "alloy_device_open: out of memory");
    memset(dev, 0, sizeof *dev);
    dev->backend = be;
    dev->allocator = *a;
    alloy__gate_init(&dev->children);
    if (pthread_mutex_init(&dev->queues_lock, NULL) != 0) {
        a->free(a->ctx, dev, sizeof *dev);
        return alloy__fail(ALLOY_ERR_OUT_OF_MEMORY, "alloy_device_open: cannot create a mutex");
    }
    alloy__fork_guard_init(&dev->fork);
    alloy_status s = be->device_open(dev, desc);
    if (s != ALLOY_OK) {
        alloy__fork_guard_fini(&dev->fork);
        pthread_mutex_destroy(&dev->queues_lock);
        a->free(a->ctx, dev, sizeof *dev);
        return s;
    }
    *out = dev;
    return ALLOY_OK;
}

ALLOY_API alloy_status alloy_device_open(const alloy_device_desc *desc, alloy_device **out)
{
    static const char fn[] = "alloy_device_open";
    if (!out)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
    *out = NULL;
    alloy_device_desc d = desc ? *desc : alloy_device_desc_default();
    if (d.allocator && (!d.allocator->alloc || !d.allocator->free))
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                           "%s: allocator must have both alloc and free", fn);
    if (d.cpu_workers < 0 || d.cpu_workers > 1024)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                           "%s: cpu_workers %d is outside 0..1024", fn, d.cpu_workers);
    if (d.ordinal < 0)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: ordinal %d is negative", fn,
                           d.ordinal);
    if ((int)d.cpu_kernel < 0 || d.cpu_kernel > ALLOY_CPU_KERNEL_AVX512)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: unknown cpu_kernel %d", fn,
                           (int)d.cpu_kernel);
    switch (d.backend) {
    case ALLOY_BACKEND_CPU:
        if (d.ordinal != 0)
            return alloy__fail(ALLOY_ERR_NO_DEVICE, "%s: the CPU backend has only ordinal 0",
                               fn);
        return open_with(alloy__cpu_backend(), &d, out);
    case ALLOY_BACKEND_CUDA: {
        const alloy__backend *be = alloy__cuda_backend();
        if (!be)
            return alloy__fail(ALLOY_ERR_NO_DEVICE,
                               "%s: this build of alloy has no CUDA backend (nvcc was not found "
                               "when it was built)",
                               fn);
        return open_with(be, &d, out);
    }
    case ALLOY_BACKEND_AUTO: {
        const alloy__backend *be = alloy__cuda_backend();
        if (be) {
            alloy_device_desc g = d;
            g.backend = ALLOY_BACKEND_CUDA;
            /* A GPU that is not there is no failure of AUTO: keep the caller's last error. */
            char saved[ALLOY__ERROR_TEXT];
            snprintf(saved, sizeof saved, "%s", alloy_last_error());
            if (open_with(be, &g, out) == ALLOY_OK)
                return ALLOY_OK;
            (void)alloy__fail(ALLOY_OK, "%s", saved);
        }
        if (d.ordinal != 0)
            return alloy__fail(ALLOY_ERR_NO_DEVICE, "%s: no GPU with ordinal %d", fn,
                               d.ordinal);
        d.backend = ALLOY_BACKEND_CPU;
        return open_with(alloy__cpu_backend(), &d, out);
    }
    }
    return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: unknown backend %d", fn, (int)d.backend);
}

ALLOY_API alloy_status alloy_device_close(alloy_device *dev)
{
    static const char fn[] = "alloy_device_close";
    if (!dev)
        return ALLOY_OK;
    alloy_status s = alloy__check_device(fn, dev);
    if (s != ALLOY_OK)
        return s;
    if (!alloy__gate_close(&dev->children))
        return alloy__fail(ALLOY_ERR_STATE,
                           "%s: %lld buffers or queues of this device are still alive; "
                           "destroy them first",
                           fn, (long long)alloy__gate_count(&dev->children));
    dev->backend->device_close(dev);
    alloy__fork_guard_fini(&dev->fork);
    pthread_mutex_destroy(&dev->queues_lock);
    alloy_allocator a = dev->allocator;
    a.free(a.ctx, dev, sizeof *dev);
    return ALLOY_OK;
}

ALLOY_API alloy_backend alloy_device_backend(const alloy_device *dev)
{
    return dev ? dev->backend->kind : ALLOY_BACKEND_AUTO;
}

ALLOY_API const char *alloy_device_name(const alloy_device *dev) { return dev ? dev->name : ""; }

ALLOY_API int alloy_device_workers(const alloy_device *dev) { return dev ? dev->workers : 0; }
