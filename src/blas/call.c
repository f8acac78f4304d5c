/* One BLAS call on alloy: wrap the caller's memory, encode into a command buffer of this
 * thread's queue, commit, wait, release. Buffers are cheap; each call wraps its operands
 * afresh and destroys them after the wait, so nothing outlives the call. */
#include "blas.h"

#include <stdio.h>
#include <string.h>

int alloy_blas__begin(blas_call *c, alloy_blas_routine counter, const char *routine)
{
    memset(c, 0, sizeof *c);
    c->routine = routine;
    c->counter = counter;
    c->q = alloy_blas__queue(&c->dev);
    if (!c->q) {
        fprintf(stderr, "alloy-blas: %s: no alloy queue; the call did nothing\n", routine);
        return 0;
    }
    alloy_status s = alloy_cmdbuf_create(c->q, &c->cb);
    if (s != ALLOY_OK) {
        fprintf(stderr, "alloy-blas: %s: alloy_cmdbuf_create: %s (%s); the call did nothing\n",
                routine, alloy_status_string(s), alloy_last_error());
        return 0;
    }
    return 1;
}

void alloy_blas__check(blas_call *c, alloy_status s)
{
    if (s != ALLOY_OK && c->status == ALLOY_OK) {
        c->status = s;
        fprintf(stderr, "alloy-blas: %s: %s (%s)\n", c->routine, alloy_status_string(s),
                alloy_last_error());
    }
}

static alloy_buffer *wrap(blas_call *c, const void *p, size_t bytes)
{
    if (c->status != ALLOY_OK)
        return NULL;
    if (c->nbufs == BLAS_CALL_MAX_BUFFERS) {
        alloy_blas__check(c, ALLOY_ERR_OUT_OF_MEMORY);
        return NULL;
    }
    alloy_buffer *b = NULL;
    /* alloy never writes an input; the const is the caller's promise and alloy's. */
    void *mem = NULL;
    memcpy(&mem, &p, sizeof mem);
    alloy_blas__check(c, alloy_buffer_wrap_host(c->dev, bytes ? mem : NULL, bytes, &b));
    if (b)
        c->bufs[c->nbufs++] = b;
    return b;
}

alloy_array alloy_blas__matrix(blas_call *c, alloy_dtype t, const void *p, int64_t rows,
                               int64_t cols, int64_t ld)
{
    size_t es = alloy_dtype_size(t);
    int64_t count = (rows > 0 && cols > 0) ? (cols - 1) * ld + rows : 0;
    alloy_buffer *b = wrap(c, p, (size_t)count * es);
    int64_t shape[2] = {rows, cols}, strides[2] = {1, ld};
    return alloy_array_strided(b, 0, t, 2, shape, strides);
}

alloy_array alloy_blas__ints(blas_call *c, int *p, int64_t n)
{
    int64_t count = n < 0 ? 1 : n;
    alloy_buffer *b = wrap(c, p, (size_t)count * sizeof(int32_t));
    int64_t shape[1] = {n}, strides[1] = {1};
    return alloy_array_strided(b, 0, ALLOY_I32, n < 0 ? 0 : 1, shape, strides);
}

alloy_array alloy_blas__zero(blas_call *c, alloy_dtype t)
{
    static const double zero64 = 0.0;
    static const float zero32 = 0.0f;
    alloy_buffer *b = wrap(c, t == ALLOY_F64 ? (const void *)&zero64 : (const void *)&zero32,
                           alloy_dtype_size(t));
    return alloy_array_strided(b, 0, t, 0, NULL, NULL);
}

alloy_array alloy_blas__t(alloy_array a)
{
    return alloy_array_swap_dims(a, 0, 1);
}

static int ranges_meet(const alloy_array *x, const alloy_array *y)
{
    if (!x->buffer || !y->buffer)
        return 0;
    const char *xp = (const char *)alloy_buffer_contents(x->buffer);
    const char *yp = (const char *)alloy_buffer_contents(y->buffer);
    size_t xn = alloy_buffer_size(x->buffer), yn = alloy_buffer_size(y->buffer);
    if (!xp || !yp || xn == 0 || yn == 0)
        return 0;
    return xp < yp + yn && yp < xp + xn;
}

alloy_array alloy_blas__apart(blas_call *c, alloy_array in, const alloy_array *out)
{
    if (c->status != ALLOY_OK || !ranges_meet(&in, out))
        return in;
    if (c->nbufs == BLAS_CALL_MAX_BUFFERS) {
        alloy_blas__check(c, ALLOY_ERR_OUT_OF_MEMORY);
        return in;
    }
    alloy_buffer *b = NULL;
    int64_t count = alloy_array_count(&in);
    alloy_blas__check(c, alloy_buffer_create(c->dev, (size_t)count * alloy_dtype_size(in.dtype),
                                             ALLOY_MEMORY_DEVICE, &b));
    if (!b)
        return in;
    c->bufs[c->nbufs++] = b;
    alloy_array copy = alloy_array_contiguous(b, 0, in.dtype, in.rank, in.shape);
    alloy_blas__check(c, alloy_encode_copy(c->cb, &in, &copy));
    return copy;
}

alloy_status alloy_blas__finish(blas_call *c)
{
    alloy_status s = c->status;
    if (s == ALLOY_OK) {
        s = alloy_cmdbuf_commit(c->cb);
        if (s == ALLOY_OK) {
            s = alloy_cmdbuf_wait(c->cb);
            if (s != ALLOY_OK)
                fprintf(stderr, "alloy-blas: %s: %s (%s)\n", c->routine, alloy_status_string(s),
                        alloy_cmdbuf_error(c->cb));
            else
                alloy_blas__count(c->counter);
        } else {
            alloy_blas__check(c, s);
        }
    }
    /* Destroying a committed command buffer that finished releases its references; an
     * uncommitted one releases them now. Then the buffers are free to go. */
    alloy_cmdbuf_destroy(c->cb);
    c->cb = NULL;
    for (int i = 0; i < c->nbufs; i++)
        alloy_buffer_destroy(c->bufs[i]);
    c->nbufs = 0;
    return s;
}
