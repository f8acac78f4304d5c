/* Buffers: creation, wrapping, immediate host copies, and their reference gate. */
#include "internal.h"

#include <string.h>

/* The buffer object, counted as a child of dev; NULL with *s set on failure. */
static alloy_buffer *new_buffer(const char *fn, alloy_device *dev, alloy_buffer **out,
                                alloy_status *s)
{
    if (!out) {
        *s = alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
        return NULL;
    }
    *out = NULL;
    if ((*s = alloy__check_device(fn, dev)) != ALLOY_OK)
        return NULL;
    if (!alloy__gate_enter(&dev->children)) {
        *s = alloy__fail(ALLOY_ERR_STATE, "%s: the device is being closed", fn);
        return NULL;
    }
    alloy_buffer *b = alloy__alloc(dev, sizeof *b, 64);
    if (!b) {
        alloy__gate_leave(&dev->children);
        *s = alloy__fail(ALLOY_ERR_OUT_OF_MEMORY, "%s: out of memory for the buffer object", fn);
        return NULL;
    }
    memset(b, 0, sizeof *b);
    b->dev = dev;
    alloy__gate_init(&b->refs);
    return b;
}

static alloy_status finish_buffer(alloy_status s, alloy_device *dev, alloy_buffer *b,
                                  alloy_buffer **out)
{
    if (s != ALLOY_OK) {
        alloy__free(dev, b, sizeof *b);
        alloy__gate_leave(&dev->children);
        return s;
    }
    *out = b;
    return ALLOY_OK;
}

ALLOY_API alloy_status alloy_buffer_create(alloy_device *dev, size_t bytes, alloy_memory where,
                                           alloy_buffer **out)
{
    static const char fn[] = "alloy_buffer_create";
    alloy_buffer *b = NULL;
    if (where != ALLOY_MEMORY_DEVICE && where != ALLOY_MEMORY_HOST) {
        if (out)
            *out = NULL;
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: unknown memory kind %d", fn,
                           (int)where);
    }
    alloy_status s;
    if (!(b = new_buffer(fn, dev, out, &s)))
        return s;
    b->size = bytes;
    b->where = where;
    b->owned = 1;
    s = dev->backend->buffer_create(dev, b, bytes, where);
    return finish_buffer(s, dev, b, out);
}

ALLOY_API alloy_status alloy_buffer_wrap_host(alloy_device *dev, void *ptr, size_t bytes,
                                              alloy_buffer **out)
{
    static const char fn[] = "alloy_buffer_wrap_host";
    alloy_buffer *b = NULL;
    if (!ptr && bytes) {
        if (out)
            *out = NULL;
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: ptr is NULL but bytes is %zu", fn,
                           bytes);
    }
    alloy_status s;
    if (!(b = new_buffer(fn, dev, out, &s)))
        return s;
    b->size = bytes;
    b->where = ALLOY_MEMORY_HOST;
    s = dev->backend->buffer_wrap_host(dev, b, ptr, bytes);
    return finish_buffer(s, dev, b, out);
}

ALLOY_API alloy_status alloy_buffer_wrap_device(alloy_device *dev, uint64_t device_ptr,
                                                size_t bytes, alloy_buffer **out)
{
    static const char fn[] = "alloy_buffer_wrap_device";
    alloy_buffer *b = NULL;
    if (!device_ptr && bytes) {
        if (out)
            *out = NULL;
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: device_ptr is 0 but bytes is %zu",
                           fn, bytes);
    }
    alloy_status s;
    if (!(b = new_buffer(fn, dev, out, &s)))
        return s;
    b->size = bytes;
    b->where = ALLOY_MEMORY_DEVICE;
    s = dev->backend->buffer_wrap_device(dev, b, device_ptr, bytes);
    return finish_buffer(s, dev, b, out);
}

ALLOY_API void *alloy_buffer_contents(alloy_buffer *b) { return b ? b->host : NULL; }

ALLOY_API size_t alloy_buffer_size(const alloy_buffer *b) { return b ? b->size : 0; }

static alloy_status check_range(const char *fn, alloy_buffer *b, size_t offset, const void *p,
                                size_t bytes)
{
    if (!b)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: buffer is NULL", fn);
    alloy_status s = alloy__check_device(fn, b->dev);
    if (s != ALLOY_OK)
        return s;
    if (!p && bytes)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: host pointer is NULL", fn);
    if (offset > b->size || bytes > b->size - offset)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                           "%s: bytes [%zu, %zu + %zu) fall outside the buffer of %zu bytes", fn,
                           offset, offset, bytes, b->size);
    return ALLOY_OK;
}

ALLOY_API alloy_status alloy_buffer_write(alloy_buffer *b, size_t offset, const void *src,
                                          size_t bytes)
{
    alloy_status s = check_range("alloy_buffer_write", b, offset, src, bytes);
    if (s != ALLOY_OK || bytes == 0)
        return s;
    return b->dev->backend->buffer_write(b, offset, src, bytes);
}

ALLOY_API alloy_status alloy_buffer_read(alloy_buffer *b, size_t offset, void *dst, size_t bytes)
{
    alloy_status s = check_range("alloy_buffer_read", b, offset, dst, bytes);
    if (s != ALLOY_OK || bytes == 0)
        return s;
    return b->dev->backend->buffer_read(b, offset, dst, bytes);
}

ALLOY_API alloy_status alloy_buffer_destroy(alloy_buffer *b)
{
    static const char fn[] = "alloy_buffer_destroy";
    if (!b)
        return ALLOY_OK;
    alloy_device *dev = b->dev;
    alloy_status s = alloy__check_device(fn, dev);
    if (s != ALLOY_OK)
        return s;
    /* Fire-and-forget work on a GPU is noticed when asked: ask every queue first. */
    if (!alloy__gate_close(&b->refs) &&
        (alloy__device_progress(dev), !alloy__gate_close(&b->refs)))
        return alloy__fail(ALLOY_ERR_STATE,
                           "%s: %lld unfinished command buffers still use this buffer; wait for "
                           "them (or destroy them uncommitted) first",
                           fn, (long long)alloy__gate_count(&b->refs));
    dev->backend->buffer_destroy(dev, b);
    alloy__free(dev, b, sizeof *b);
    alloy__gate_leave(&dev->children);
    return ALLOY_OK;
}
