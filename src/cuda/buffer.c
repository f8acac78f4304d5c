/* CUDA buffers: device memory, pinned host-visible memory, registered caller host memory,
 * and caller device pointers (PyTorch, CuPy) used in place. With unified addressing a
 * buffer has one address that both kernels and cuMemcpy understand. */
#include "cuda_backend.h"

#include <string.h>

/* The backend's per-buffer note: whether destroy must unregister caller host memory. */
enum { HOST_REGISTERED = 1 };

alloy_status alloy__cu_buffer_create(alloy_device *dev, alloy_buffer *b, size_t bytes,
                                     alloy_memory where)
{
    static const char fn[] = "alloy_buffer_create";
    alloy__cu_device *cu = alloy__cu(dev);
    alloy_status s = alloy__cu_enter(cu, fn);
    if (s != ALLOY_OK)
        return s;
    size_t n = bytes ? bytes : 1; /* a real allocation, so every buffer has an address */
    CUresult r;
    if (where == ALLOY_MEMORY_HOST) {
        void *p = NULL;
        r = cu->drv.MemHostAlloc(&p, n, CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP);
        if (r == CUDA_SUCCESS) {
            CUdeviceptr d = 0;
            r = cu->drv.MemHostGetDevicePointer(&d, p, 0);
            if (r != CUDA_SUCCESS)
                cu->drv.MemFreeHost(p);
            else {
                b->host = p;
                b->addr = (uint64_t)d;
            }
        }
    } else {
        CUdeviceptr d = 0;
        r = cu->drv.MemAlloc(&d, n);
        if (r == CUDA_SUCCESS) {
            b->host = NULL;
            b->addr = (uint64_t)d;
        }
    }
    alloy__cu_leave(cu);
    if (r != CUDA_SUCCESS) {
        if (r == CUDA_ERROR_OUT_OF_MEMORY)
            return alloy__fail(ALLOY_ERR_OUT_OF_MEMORY, "%s: out of %s memory for %zu bytes", fn,
                               where == ALLOY_MEMORY_HOST ? "pinned host" : "device", bytes);
        return alloy__cu_fail(cu, r, fn,
                              where == ALLOY_MEMORY_HOST ? "cuMemHostAlloc" : "cuMemAlloc");
    }
    return ALLOY_OK;
}

alloy_status alloy__cu_buffer_wrap_host(alloy_device *dev, alloy_buffer *b, void *ptr, size_t bytes)
{
    static const char fn[] = "alloy_buffer_wrap_host";
    alloy__cu_device *cu = alloy__cu(dev);
    alloy_status s = alloy__cu_enter(cu, fn);
    if (s != ALLOY_OK)
        return s;
    b->host = ptr;
    b->addr = (uint64_t)(uintptr_t)ptr;
    b->impl = NULL;
    if (bytes == 0) { /* nothing can be touched through it */
        alloy__cu_leave(cu);
        return ALLOY_OK;
    }
    /* Kernels reach host memory only once it is pinned and mapped. Memory that is already
     * (pinned by cudaHostAlloc, or registered by someone else) is used as it is. */
    CUresult r = cu->drv.MemHostRegister(
        ptr, bytes, CU_MEMHOSTREGISTER_PORTABLE | CU_MEMHOSTREGISTER_DEVICEMAP);
    int registered = r == CUDA_SUCCESS;
    if (r != CUDA_SUCCESS && r != CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED) {
        s = alloy__cu_fail(cu, r, fn, "cuMemHostRegister (pinning the caller's memory)");
        alloy__cu_leave(cu);
        if (r == CUDA_ERROR_INVALID_VALUE)
            return ALLOY_ERR_INVALID_ARGUMENT;
        if (r == CUDA_ERROR_NOT_SUPPORTED || r == CUDA_ERROR_NOT_PERMITTED)
            return ALLOY_ERR_UNSUPPORTED;
        return s;
    }
    CUdeviceptr first = 0, last = 0;
    r = cu->drv.MemHostGetDevicePointer(&first, ptr, 0);
    if (r == CUDA_SUCCESS)
        r = cu->drv.MemHostGetDevicePointer(&last, (char *)ptr + bytes - 1, 0);
    if (r != CUDA_SUCCESS || last - first != bytes - 1) {
        if (registered)
            cu->drv.MemHostUnregister(ptr);
        alloy__cu_leave(cu);
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                           "%s: [%p, +%zu) is only partly pinned by an earlier registration; "
                           "wrap memory that is wholly registered or wholly unregistered",
                           fn, ptr, bytes);
    }
    alloy__cu_leave(cu);
    b->addr = (uint64_t)first;
    b->impl = registered ? (void *)(uintptr_t)HOST_REGISTERED : NULL;
    return ALLOY_OK;
}

alloy_status alloy__cu_buffer_wrap_device(alloy_device *dev, alloy_buffer *b, uint64_t ptr,
                                          size_t bytes)
{
    static const char fn[] = "alloy_buffer_wrap_device";
    alloy__cu_device *cu = alloy__cu(dev);
    alloy_status s = alloy__cu_enter(cu, fn);
    if (s != ALLOY_OK)
        return s;
    b->host = NULL;
    b->addr = ptr;
    b->impl = NULL;
    if (bytes == 0) {
        alloy__cu_leave(cu);
        return ALLOY_OK;
    }
    int ordinal = -1;
    CUresult r = cu->drv.PointerGetAttribute(&ordinal, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL,
                                             (CUdeviceptr)ptr);
    if (r != CUDA_SUCCESS) {
        alloy__cu_leave(cu);
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                           "%s: 0x%llx is not memory the CUDA driver knows (cuPointerGetAttribute "
                           "answered error %d)",
                           fn, (unsigned long long)ptr, (int)r);
    }
    if (ordinal != cu->ordinal) {
        alloy__cu_leave(cu);
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                           "%s: 0x%llx belongs to CUDA device %d, not this device (%d)", fn,
                           (unsigned long long)ptr, ordinal, cu->ordinal);
    }
    /* The whole range must lie in one allocation, where the driver can say so (it cannot
     * for every kind of mapping; then the caller's size is trusted). */
    CUdeviceptr start = 0;
    size_t size = 0;
    if (cu->drv.PointerGetAttribute(&start, CU_POINTER_ATTRIBUTE_RANGE_START_ADDR,
                                    (CUdeviceptr)ptr) == CUDA_SUCCESS &&
        cu->drv.PointerGetAttribute(&size, CU_POINTER_ATTRIBUTE_RANGE_SIZE, (CUdeviceptr)ptr) ==
            CUDA_SUCCESS &&
        size != 0 && (ptr - (uint64_t)start > size || bytes > size - (ptr - (uint64_t)start))) {
        alloy__cu_leave(cu);
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                           "%s: [0x%llx, +%zu) runs past the end of its allocation (0x%llx, %zu "
                           "bytes)",
                           fn, (unsigned long long)ptr, bytes, (unsigned long long)start, size);
    }
    alloy__cu_leave(cu);
    return ALLOY_OK;
}

void alloy__cu_buffer_destroy(alloy_device *dev, alloy_buffer *b)
{
    alloy__cu_device *cu = alloy__cu(dev);
    int registered = b->impl == (void *)(uintptr_t)HOST_REGISTERED;
    if (!b->owned && !registered)
        return;
    /* Freed even when the device is lost: the memory is released with the context. */
    if (cu->drv.CtxPushCurrent(cu->ctx) != CUDA_SUCCESS)
        return;
    if (registered)
        cu->drv.MemHostUnregister(b->host);
    else if (b->where == ALLOY_MEMORY_HOST)
        cu->drv.MemFreeHost(b->host);
    else
        cu->drv.MemFree((CUdeviceptr)b->addr);
    alloy__cu_leave(cu);
}

/* Immediate copies go through the calling thread's own per-thread stream and wait for it,
 * so threads never wait for each other's copies or queues (the legacy default stream would
 * serialize them, and a plain cuMemcpy may return before a pageable copy has landed). */
alloy_status alloy__cu_buffer_write(alloy_buffer *b, size_t offset, const void *src, size_t bytes)
{
    static const char fn[] = "alloy_buffer_write";
    alloy__cu_device *cu = alloy__cu(b->dev);
    alloy_status s = alloy__cu_check_lost(cu, fn);
    if (s != ALLOY_OK)
        return s;
    if (b->host) {
        memcpy((char *)b->host + offset, src, bytes);
        return ALLOY_OK;
    }
    if ((s = alloy__cu_enter(cu, fn)) != ALLOY_OK)
        return s;
    CUresult r = cu->drv.MemcpyHtoDAsync((CUdeviceptr)b->addr + (CUdeviceptr)offset, src, bytes,
                                         CU_STREAM_PER_THREAD);
    if (r == CUDA_SUCCESS)
        r = cu->drv.StreamSynchronize(CU_STREAM_PER_THREAD);
    s = r == CUDA_SUCCESS ? ALLOY_OK : alloy__cu_fail(cu, r, fn, "cuMemcpyHtoDAsync");
    alloy__cu_leave(cu);
    return s;
}

alloy_status alloy__cu_buffer_read(alloy_buffer *b, size_t offset, void *dst, size_t bytes)
{
    static const char fn[] = "alloy_buffer_read";
    alloy__cu_device *cu = alloy__cu(b->dev);
    alloy_status s = alloy__cu_check_lost(cu, fn);
    if (s != ALLOY_OK)
        return s;
    if (b->host) {
        memcpy(dst, (const char *)b->host + offset, bytes);
        return ALLOY_OK;
    }
    if ((s = alloy__cu_enter(cu, fn)) != ALLOY_OK)
        return s;
    CUresult r = cu->drv.MemcpyDtoHAsync(dst, (CUdeviceptr)b->addr + (CUdeviceptr)offset, bytes,
                                         CU_STREAM_PER_THREAD);
    if (r == CUDA_SUCCESS)
        r = cu->drv.StreamSynchronize(CU_STREAM_PER_THREAD);
    s = r == CUDA_SUCCESS ? ALLOY_OK : alloy__cu_fail(cu, r, fn, "cuMemcpyDtoHAsync");
    alloy__cu_leave(cu);
    return s;
}
