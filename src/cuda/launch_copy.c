/* copy on the GPU: cuMemcpyAsync for contiguous same-dtype runs (device, pinned host or
 * wrapped memory alike, through unified addressing), otherwise the 1d or nd kernel of the
 * dtype pair (kernels/copy.cuh). */
#include "cuda_backend.h"

#include <string.h>

#define THREADS 256

alloy_status alloy__cu_check_copy(alloy__cu_device *cu, const alloy__op *op)
{
    (void)cu;
    (void)op; /* every pair encode accepts has a kernel; any count is walked in 64 bits */
    return ALLOY_OK;
}

alloy_status alloy__cu_launch_copy(alloy__cu_device *cu, CUstream s, const alloy__op *op,
                                   uint64_t guard, char *err, size_t cap)
{
    const alloy__copy_op *c = &op->u.copy;
    if (c->count == 0)
        return ALLOY_OK;
    /* cuMemcpyAsync cannot read a guard: after an lu_solve the kernel copies instead. */
    if (!guard && c->src_dtype == c->dst_dtype &&
        (c->rank == 0 || (c->rank == 1 && c->src_strides[0] == 1 && c->dst_strides[0] == 1))) {
        size_t bytes = (size_t)c->count * alloy_dtype_size(c->src_dtype);
        CUresult r = cu->drv.MemcpyAsync((CUdeviceptr)c->dst, (CUdeviceptr)c->src, bytes, s);
        return r == CUDA_SUCCESS ? ALLOY_OK : alloy__cu_error(cu, r, "cuMemcpyAsync", err, cap);
    }
    alloy_cu_copy_params p;
    memset(&p, 0, sizeof p);
    p.count = c->count;
    p.rank = c->rank;
    for (int d = 0; d < c->rank; d++) {
        p.shape[d] = c->shape[d];
        p.src_strides[d] = c->src_strides[d];
        p.dst_strides[d] = c->dst_strides[d];
    }
    p.src = c->src;
    p.dst = c->dst;
    p.guard = guard;
    const int one_d = c->rank <= 1;
    CUfunction f =
        one_d ? cu->copy_1d[c->src_dtype][c->dst_dtype] : cu->copy_nd[c->src_dtype][c->dst_dtype];
    if (!f) {
        alloy__format(err, cap, "no copy kernel from dtype %d to %d", (int)c->src_dtype,
                      (int)c->dst_dtype);
        return ALLOY_ERR_UNSUPPORTED;
    }
    /* Enough blocks to fill the GPU several times; each thread strides through the rest
     * (the 1d kernel takes four elements a step). */
    int64_t per_block = one_d ? 4 * THREADS : THREADS;
    int64_t blocks = (c->count + per_block - 1) / per_block;
    int64_t cap_blocks = (int64_t)cu->sm_count * 16;
    if (blocks > cap_blocks)
        blocks = cap_blocks;
    return alloy__cu_launch(cu, s, f, (uint64_t)blocks, 1, THREADS, 0, &p, err, cap);
}
