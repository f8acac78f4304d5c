/* alloy_array helpers and the checks every encode applies to its arrays. */
#include "validate.h"

#include <string.h>

static alloy_array invalid_array(void)
{
    alloy_array a;
    memset(&a, 0, sizeof a);
    a.rank = -1;
    return a;
}

ALLOY_API alloy_array alloy_array_strided(alloy_buffer *buffer, size_t offset, alloy_dtype dtype,
                                          int rank, const int64_t *shape, const int64_t *strides)
{
    if (rank < 0 || rank > ALLOY_MAX_RANK || (rank > 0 && (!shape || !strides)))
        return invalid_array();
    alloy_array a;
    memset(&a, 0, sizeof a);
    a.buffer = buffer;
    a.offset = offset;
    a.dtype = dtype;
    a.rank = rank;
    for (int i = 0; i < rank; i++) {
        a.shape[i] = shape[i];
        a.strides[i] = strides[i];
    }
    return a;
}

ALLOY_API alloy_array alloy_array_contiguous(alloy_buffer *buffer, size_t offset,
                                             alloy_dtype dtype, int rank, const int64_t *shape)
{
    if (rank < 0 || rank > ALLOY_MAX_RANK || (rank > 0 && !shape))
        return invalid_array();
    int64_t strides[ALLOY_MAX_RANK];
    int64_t s = 1;
    for (int i = rank - 1; i >= 0; i--) {
        strides[i] = s;
        /* A negative or huge extent is reported by the encode that sees it. */
        if (shape[i] > 0 && s <= INT64_MAX / shape[i])
            s *= shape[i];
    }
    return alloy_array_strided(buffer, offset, dtype, rank, shape, strides);
}

ALLOY_API alloy_array alloy_array_swap_dims(alloy_array a, int d0, int d1)
{
    if (a.rank < 0 || a.rank > ALLOY_MAX_RANK || d0 < 0 || d1 < 0 || d0 >= a.rank ||
        d1 >= a.rank)
        return invalid_array();
    int64_t t = a.shape[d0];
    a.shape[d0] = a.shape[d1];
    a.shape[d1] = t;
    t = a.strides[d0];
    a.strides[d0] = a.strides[d1];
    a.strides[d1] = t;
    return a;
}

ALLOY_API int64_t alloy_array_count(const alloy_array *a)
{
    if (!a || a->rank < 0 || a->rank > ALLOY_MAX_RANK)
        return 0;
    int64_t n = 1;
    for (int i = 0; i < a->rank; i++) {
        if (a->shape[i] < 0)
            return 0;
        if (a->shape[i] != 0 && n > INT64_MAX / a->shape[i])
            return 0;
        n *= a->shape[i];
    }
    return n;
}

alloy__mat alloy__view_matrix(const alloy__view *v)
{
    alloy__mat m;
    m.addr = v->addr;
    m.dtype = v->dtype;
    m.rs = v->strides[v->rank - 2];
    m.cs = v->strides[v->rank - 1];
    return m;
}

alloy__vec alloy__view_vector(const alloy__view *v)
{
    alloy__vec r;
    r.addr = v->addr;
    r.dtype = v->dtype;
    r.stride = v->rank > 0 ? v->strides[v->rank - 1] : 0;
    return r;
}

int alloy__is_float(alloy_dtype t)
{
    return t == ALLOY_F32 || t == ALLOY_F64 || t == ALLOY_F16 || t == ALLOY_BF16;
}

const char *alloy__dtype_name(alloy_dtype t)
{
    switch (t) {
    case ALLOY_F32: return "f32";
    case ALLOY_F64: return "f64";
    case ALLOY_F16: return "f16";
    case ALLOY_BF16: return "bf16";
    case ALLOY_I32: return "i32";
    }
    return "unknown";
}

/* Element counts stay below 2^62 so that every index fits in int64 with room for
 * multiplying by an element size. */
#define MAX_ELEMENTS (INT64_C(1) << 62)

/* Whether an output's distinct indices could map to the same element: sorted by stride,
 * each dimension's stride must exceed the span of all smaller-stride dimensions. This is
 * conservative: it can reject exotic interleaved layouts that do not overlap. */
static int self_overlaps(const alloy__view *v)
{
    int idx[ALLOY_MAX_RANK];
    int n = 0;
    for (int i = 0; i < v->rank; i++)
        if (v->shape[i] > 1)
            idx[n++] = i;
    for (int i = 1; i < n; i++) /* insertion sort by stride */
        for (int j = i; j > 0 && v->strides[idx[j - 1]] > v->strides[idx[j]]; j--) {
            int t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
    uint64_t span = 0; /* largest offset reachable with the smaller dims */
    for (int i = 0; i < n; i++) {
        int d = idx[i];
        if ((uint64_t)v->strides[d] <= span)
            return 1;
        span += (uint64_t)(v->shape[d] - 1) * (uint64_t)v->strides[d];
    }
    return 0;
}

alloy_status alloy__view_check(const char *fn, const char *name, const alloy_device *dev,
                               const alloy_array *a, alloy__role role, alloy__view *v)
{
    memset(v, 0, sizeof *v);
    if (!a)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, name);
    if (!a->buffer)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: %s.buffer is NULL", fn, name);
    if (a->buffer->dev != dev)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                           "%s: %s.buffer belongs to another device than the command buffer", fn,
                           name);
    size_t es = alloy_dtype_size(a->dtype);
    if (es == 0)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: %s.dtype %d is not an alloy_dtype",
                           fn, name, (int)a->dtype);
    if (a->rank < 0 || a->rank > ALLOY_MAX_RANK)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: %s.rank %d is outside 0..%d", fn, name,
                           a->rank, ALLOY_MAX_RANK);
    v->buffer = a->buffer;
    v->dtype = a->dtype;
    v->esize = es;
    v->rank = a->rank;
    int64_t count = 1;
    int empty = 0;
    for (int i = 0; i < a->rank; i++) {
        if (a->shape[i] < 0)
            return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: %s.shape[%d] is negative (%lld)",
                               fn, name, i, (long long)a->shape[i]);
        if (a->strides[i] < 0)
            return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                               "%s: %s.strides[%d] is negative (%lld); negative strides are not "
                               "supported, use a copy",
                               fn, name, i, (long long)a->strides[i]);
        if (a->shape[i] == 0)
            empty = 1;
        else if (count > MAX_ELEMENTS / a->shape[i])
            return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: %s has more than 2^62 elements",
                               fn, name);
        else
            count *= a->shape[i];
        if (role == ALLOY__OUTPUT && a->strides[i] == 0 && a->shape[i] > 1)
            return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                               "%s: %s.strides[%d] is 0 with extent %lld: an output cannot "
                               "broadcast",
                               fn, name, i, (long long)a->shape[i]);
        v->shape[i] = a->shape[i];
        v->strides[i] = a->strides[i];
    }
    v->count = empty ? 0 : count;
    if (empty) {
        /* No element is ever addressed: drop the strides, so no later index arithmetic
         * (coalescing, batch offsets) can overflow on strides never used. */
        for (int i = 0; i < a->rank; i++)
            v->strides[i] = 0;
    }

    uint64_t base;
    if (alloy__add_overflow_u64(a->buffer->addr, (uint64_t)a->offset, &base))
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: %s.offset %zu overflows", fn, name,
                           a->offset);
    if (base % es != 0)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                           "%s: %s is not aligned to its %zu-byte dtype (offset %zu)", fn, name,
                           es, a->offset);
    v->addr = base;
    if (a->offset > a->buffer->size)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                           "%s: %s.offset %zu is past the end of its %zu-byte buffer", fn, name,
                           a->offset, a->buffer->size);
    if (v->count == 0) {
        v->lo = v->hi = base;
        return ALLOY_OK;
    }
    /* Largest element index reached, then the byte just past it. */
    uint64_t span = 0;
    for (int i = 0; i < a->rank; i++) {
        uint64_t t;
        if (alloy__mul_overflow_u64((uint64_t)(a->shape[i] - 1), (uint64_t)a->strides[i], &t) ||
            alloy__add_overflow_u64(span, t, &span))
            return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: %s's extent overflows", fn, name);
    }
    uint64_t end_bytes, end;
    if (alloy__mul_overflow_u64(span, es, &end_bytes) ||
        alloy__add_overflow_u64(end_bytes, es, &end_bytes) ||
        alloy__add_overflow_u64((uint64_t)a->offset, end_bytes, &end) ||
        end > (uint64_t)a->buffer->size)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                           "%s: %s reaches past the end of its %zu-byte buffer (offset %zu, "
                           "largest element index %llu)",
                           fn, name, a->buffer->size, a->offset, (unsigned long long)span);
    v->lo = base;
    v->hi = base + end_bytes;
    if (role == ALLOY__OUTPUT && self_overlaps(v))
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                           "%s: %s's strides make distinct elements share memory; an output "
                           "must not",
                           fn, name);
    return ALLOY_OK;
}

alloy_status alloy__check_disjoint(const char *fn, const char *out_name, const alloy__view *out,
                                   const char *other_name, const alloy__view *other)
{
    if (out->lo == out->hi || other->lo == other->hi)
        return ALLOY_OK;
    if (out->lo < other->hi && other->lo < out->hi)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                           "%s: output %s overlaps %s in memory; outputs must not overlap any "
                           "other operand",
                           fn, out_name, other_name);
    return ALLOY_OK;
}

int alloy__view_same(const alloy__view *a, const alloy__view *b)
{
    if (a->addr != b->addr || a->dtype != b->dtype || a->rank != b->rank)
        return 0;
    for (int i = 0; i < a->rank; i++)
        if (a->shape[i] != b->shape[i] || (a->shape[i] > 1 && a->strides[i] != b->strides[i]))
            return 0;
    return 1;
}

alloy_status alloy__batch_build(const char *fn, alloy__batch *bt, int n, const alloy__view *const *v,
                                const char *const *names, const int *core, const int *exact,
                                int shape_from)
{
    memset(bt, 0, sizeof *bt);
    const alloy__view *o = v[shape_from];
    int br = o->rank - core[shape_from];
    bt->rank = br;
    for (int d = 0; d < br; d++)
        bt->shape[d] = o->shape[d];
    for (int j = 0; j < n; j++) {
        if (!v[j])
            continue; /* absent operand: all strides 0 */
        int r = v[j]->rank - core[j];
        if (r > br)
            return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                               "%s: %s has %d batch dimensions, more than %s's %d", fn, names[j],
                               r, names[shape_from], br);
        if (exact[j] && r != br)
            return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                               "%s: %s must have %s's %d batch dimensions, not %d", fn, names[j],
                               names[shape_from], br, r);
        for (int d = 0; d < br; d++) {
            int jd = d - (br - r);
            if (jd < 0) {
                bt->strides[j][d] = 0;
                continue;
            }
            if (v[j]->shape[jd] == bt->shape[d])
                bt->strides[j][d] = v[j]->strides[jd];
            else if (v[j]->shape[jd] == 1 && !exact[j])
                bt->strides[j][d] = 0;
            else
                return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                                   "%s: batch dimension %d of %s is %lld, which %s broadcast to "
                                   "%s's %lld",
                                   fn, jd, names[j], (long long)v[j]->shape[jd],
                                   exact[j] ? "must equal, not" : "does not", names[shape_from],
                                   (long long)bt->shape[d]);
        }
    }
    /* Coalesce: drop extent-1 dims, merge neighbours contiguous for every operand. */
    int w = 0;
    for (int d = 0; d < br; d++) {
        if (bt->shape[d] == 1)
            continue;
        if (w > 0) {
            int merge = 1;
            for (int j = 0; j < n; j++)
                if (bt->strides[j][w - 1] != bt->strides[j][d] * bt->shape[d])
                    merge = 0;
            if (merge) {
                bt->shape[w - 1] *= bt->shape[d];
                for (int j = 0; j < n; j++)
                    bt->strides[j][w - 1] = bt->strides[j][d];
                continue;
            }
        }
        bt->shape[w] = bt->shape[d];
        for (int j = 0; j < n; j++)
            bt->strides[j][w] = bt->strides[j][d];
        w++;
    }
    bt->rank = w;
    bt->count = 1;
    for (int d = 0; d < w; d++)
        bt->count *= bt->shape[d];
    for (int d = w; d < ALLOY_MAX_RANK; d++) {
        bt->shape[d] = 0;
        for (int j = 0; j < ALLOY__MAX_OPERANDS; j++)
            bt->strides[j][d] = 0;
    }
    return ALLOY_OK;
}

void alloy__batch_offsets(const alloy__batch *b, int64_t index, int n, int64_t *out)
{
    for (int j = 0; j < n; j++)
        out[j] = 0;
    for (int d = b->rank - 1; d >= 0; d--) {
        int64_t i = index % b->shape[d];
        index /= b->shape[d];
        for (int j = 0; j < n; j++)
            out[j] += i * b->strides[j][d];
    }
}
