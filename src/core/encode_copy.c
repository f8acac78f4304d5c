/* alloy_encode_copy: checks, broadcast, and a normalized element walk. */
#include "encode.h"

#include <string.h>

/* Drops extent-1 dims, orders dims by destination stride (largest first; copy is
 * elementwise, so any order gives the same result) and merges dims that are contiguous
 * for both arrays, so the backend's innermost loop is as long as possible. */
static void normalize(alloy__copy_op *c)
{
    int n = 0;
    for (int d = 0; d < c->rank; d++) {
        if (c->shape[d] == 1)
            continue;
        c->shape[n] = c->shape[d];
        c->src_strides[n] = c->src_strides[d];
        c->dst_strides[n] = c->dst_strides[d];
        n++;
    }
    for (int i = 1; i < n; i++) /* stable insertion sort, descending dst stride */
        for (int j = i; j > 0 && c->dst_strides[j - 1] < c->dst_strides[j]; j--) {
            int64_t t = c->shape[j];
            c->shape[j] = c->shape[j - 1];
            c->shape[j - 1] = t;
            t = c->src_strides[j];
            c->src_strides[j] = c->src_strides[j - 1];
            c->src_strides[j - 1] = t;
            t = c->dst_strides[j];
            c->dst_strides[j] = c->dst_strides[j - 1];
            c->dst_strides[j - 1] = t;
        }
    int w = 0;
    for (int d = 0; d < n; d++) {
        if (w > 0 && c->dst_strides[w - 1] == c->dst_strides[d] * c->shape[d] &&
            c->src_strides[w - 1] == c->src_strides[d] * c->shape[d]) {
            c->shape[w - 1] *= c->shape[d];
            c->src_strides[w - 1] = c->src_strides[d];
            c->dst_strides[w - 1] = c->dst_strides[d];
            continue;
        }
        c->shape[w] = c->shape[d];
        c->src_strides[w] = c->src_strides[d];
        c->dst_strides[w] = c->dst_strides[d];
        w++;
    }
    c->rank = w;
}

static alloy_status check_copy(const char *fn, alloy_cmdbuf *cb, const alloy_array *src,
                               const alloy_array *dst, alloy__op *op)
{
    alloy_device *dev = cb->q->dev;
    alloy__view s, d;
    alloy_status st = alloy__view_check(fn, "src", dev, src, ALLOY__INPUT, &s);
    if (st != ALLOY_OK)
        return st;
    st = alloy__view_check(fn, "dst", dev, dst, ALLOY__OUTPUT, &d);
    if (st != ALLOY_OK)
        return st;
    int sf = alloy__is_float(s.dtype), df = alloy__is_float(d.dtype);
    if (sf != df)
        return alloy__fail(ALLOY_ERR_UNSUPPORTED,
                           "%s: cannot convert %s to %s; copy converts among f32, f64, f16 and "
                           "bf16, and copies i32 only to i32",
                           fn, alloy__dtype_name(s.dtype), alloy__dtype_name(d.dtype));
    if (s.rank > d.rank)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                           "%s: src has rank %d, more than dst's %d; it cannot broadcast", fn,
                           s.rank, d.rank);
    memset(op, 0, sizeof *op);
    op->kind = ALLOY__OP_COPY;
    alloy__copy_op *c = &op->u.copy;
    c->rank = d.rank;
    for (int i = 0; i < d.rank; i++) {
        int si = i - (d.rank - s.rank);
        c->shape[i] = d.shape[i];
        c->dst_strides[i] = d.strides[i];
        if (si >= 0 && s.shape[si] == d.shape[i])
            c->src_strides[i] = s.strides[si];
        else if (si < 0 || s.shape[si] == 1)
            c->src_strides[i] = 0; /* broadcast: missing or extent-1 dimension */
        else
            return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                               "%s: src.shape[%d] = %lld does not broadcast to dst.shape[%d] = "
                               "%lld",
                               fn, si, (long long)s.shape[si], i, (long long)d.shape[i]);
    }
    st = alloy__check_disjoint(fn, "dst", &d, "src", &s);
    if (st != ALLOY_OK)
        return st;
    c->count = d.count;
    c->src = s.addr;
    c->dst = d.addr;
    c->src_dtype = s.dtype;
    c->dst_dtype = d.dtype;
    normalize(c);
    return ALLOY_OK;
}

ALLOY_API alloy_status alloy_encode_copy(alloy_cmdbuf *cb, const alloy_array *src,
                                         const alloy_array *dst)
{
    static const char fn[] = "alloy_encode_copy";
    alloy_status s = alloy__encode_begin(fn, cb);
    if (s != ALLOY_OK)
        return s;
    alloy__op op;
    s = check_copy(fn, cb, src, dst, &op);
    if (s == ALLOY_OK) {
        alloy_buffer *bufs[2] = {src->buffer, dst->buffer};
        s = alloy__encode_record(fn, cb, &op, bufs, 2);
    }
    alloy__encode_end(cb);
    return s;
}
