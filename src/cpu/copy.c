/* copy on the CPU: the destination's elements in fixed chunks, one task each. */
#include "convert.h"
#include "cpu.h"

#include <string.h>

#define CHUNK 32768 /* elements per task */

/* Copies n elements from a strided run to a strided run, converting. */
static void copy_run(char *dst, int64_t ds, alloy_dtype dt, const char *src, int64_t ss,
                     alloy_dtype st, int64_t n)
{
    if (dt == st) {
        size_t es = alloy_dtype_size(dt);
        if (ds == 1 && ss == 1) {
            memcpy(dst, src, (size_t)n * es);
            return;
        }
        switch (es) {
        case 2:
            for (int64_t i = 0; i < n; i++)
                ((uint16_t *)dst)[i * ds] = ((const uint16_t *)src)[i * ss];
            return;
        case 4:
            for (int64_t i = 0; i < n; i++)
                ((uint32_t *)dst)[i * ds] = ((const uint32_t *)src)[i * ss];
            return;
        default:
            for (int64_t i = 0; i < n; i++)
                ((uint64_t *)dst)[i * ds] = ((const uint64_t *)src)[i * ss];
            return;
        }
    }
    /* Widen to f64 (exact from every source) unless the pair has a direct path. */
    const float *sf = (const float *)src;
    const double *sd = (const double *)src;
    const uint16_t *sh = (const uint16_t *)src;
    switch (dt) {
    case ALLOY_F32: {
        float *d = (float *)dst;
        if (st == ALLOY_F64)
            for (int64_t i = 0; i < n; i++)
                d[i * ds] = (float)sd[i * ss];
        else if (st == ALLOY_F16)
            for (int64_t i = 0; i < n; i++)
                d[i * ds] = alloy__f16_to_f32(sh[i * ss]);
        else
            for (int64_t i = 0; i < n; i++)
                d[i * ds] = alloy__bf16_to_f32(sh[i * ss]);
        return;
    }
    case ALLOY_F64: {
        double *d = (double *)dst;
        if (st == ALLOY_F32)
            for (int64_t i = 0; i < n; i++)
                d[i * ds] = (double)sf[i * ss];
        else if (st == ALLOY_F16)
            for (int64_t i = 0; i < n; i++)
                d[i * ds] = (double)alloy__f16_to_f32(sh[i * ss]);
        else
            for (int64_t i = 0; i < n; i++)
                d[i * ds] = (double)alloy__bf16_to_f32(sh[i * ss]);
        return;
    }
    case ALLOY_F16: {
        uint16_t *d = (uint16_t *)dst;
        if (st == ALLOY_F32)
            for (int64_t i = 0; i < n; i++)
                d[i * ds] = alloy__f32_to_f16(sf[i * ss]);
        else if (st == ALLOY_F64)
            for (int64_t i = 0; i < n; i++)
                d[i * ds] = alloy__f64_to_f16(sd[i * ss]);
        else
            for (int64_t i = 0; i < n; i++)
                d[i * ds] = alloy__f32_to_f16(alloy__bf16_to_f32(sh[i * ss]));
        return;
    }
    case ALLOY_BF16: {
        uint16_t *d = (uint16_t *)dst;
        if (st == ALLOY_F32)
            for (int64_t i = 0; i < n; i++)
                d[i * ds] = alloy__f32_to_bf16(sf[i * ss]);
        else if (st == ALLOY_F64)
            for (int64_t i = 0; i < n; i++)
                d[i * ds] = alloy__f64_to_bf16(sd[i * ss]);
        else
            for (int64_t i = 0; i < n; i++)
                d[i * ds] = alloy__f32_to_bf16(alloy__f16_to_f32(sh[i * ss]));
        return;
    }
    case ALLOY_I32: return; /* i32 copies only to i32: handled above */
    }
}

typedef struct copy_exec {
    int64_t per; /* elements per task */
    uint64_t ntasks;
    int phase;
} copy_exec;

static alloy_status copy_check(const alloy__cpu_device *cd, alloy__op *op)
{
    (void)cd;
    copy_exec *x = (copy_exec *)op->exec;
    x->per = alloy__cpu_items_per_task(op->u.copy.count, CHUNK);
    x->ntasks = alloy__cpu_tasks(op->u.copy.count, x->per);
    return ALLOY_OK;
}

static size_t copy_scratch(const alloy__cpu_device *cd, const alloy__op *op)
{
    (void)cd;
    (void)op;
    return 0;
}

static alloy_status copy_begin(alloy__cpu_device *cd, alloy__cpu_queue *cq, alloy__op *op,
                                char *err, size_t cap)
{
    (void)cd;
    (void)cq;
    (void)err;
    (void)cap;
    ((copy_exec *)op->exec)->phase = 0;
    return ALLOY_OK;
}

static uint64_t copy_next_phase(alloy__cpu_device *cd, alloy__op *op)
{
    (void)cd;
    copy_exec *x = (copy_exec *)op->exec;
    return x->phase++ == 0 ? x->ntasks : 0;
}

static void copy_task(const alloy__cpu_exec *ex, alloy__op *op, uint64_t task)
{
    (void)ex;
    const alloy__copy_op *c = &op->u.copy;
    const copy_exec *x = (const copy_exec *)op->exec;
    int64_t e0 = (int64_t)task * x->per;
    int64_t e1 = e0 + x->per < c->count ? e0 + x->per : c->count;
    size_t ses = alloy_dtype_size(c->src_dtype), des = alloy_dtype_size(c->dst_dtype);
    if (c->rank == 0) {
        copy_run((char *)(uintptr_t)c->dst, 1, c->dst_dtype, (const char *)(uintptr_t)c->src, 1,
                 c->src_dtype, 1);
        return;
    }
    const int r = c->rank, last = r - 1;
    int64_t idx[ALLOY_MAX_RANK];
    int64_t rem = e0;
    for (int d = last; d >= 0; d--) {
        idx[d] = rem % c->shape[d];
        rem /= c->shape[d];
    }
    int64_t e = e0;
    while (e < e1) {
        int64_t so = 0, dof = 0;
        for (int d = 0; d < r; d++) {
            so += idx[d] * c->src_strides[d];
            dof += idx[d] * c->dst_strides[d];
        }
        int64_t n = c->shape[last] - idx[last];
        if (n > e1 - e)
            n = e1 - e;
        copy_run((char *)(uintptr_t)c->dst + (size_t)dof * des, c->dst_strides[last], c->dst_dtype,
                 (const char *)(uintptr_t)c->src + (size_t)so * ses, c->src_strides[last],
                 c->src_dtype, n);
        e += n;
        idx[last] += n;
        for (int d = last; d > 0 && idx[d] == c->shape[d]; d--) {
            idx[d] = 0;
            idx[d - 1]++;
        }
    }
}

static alloy_status copy_end(alloy__cpu_device *cd, alloy__op *op, char *err, size_t cap)
{
    (void)cd;
    (void)op;
    (void)err;
    (void)cap;
    return ALLOY_OK;
}

const alloy__cpu_op_impl alloy__cpu_copy_impl = {copy_check, copy_scratch, copy_begin,
                                                 copy_next_phase, copy_task, copy_end};
