/* The CUDA backend's implementation of the backend interface, and the launch helper its
 * ops share. */
#include "cuda_backend.h"

#include <string.h>

alloy_status alloy__cu_launch(alloy__cu_device *cu, CUstream s, CUfunction f, uint64_t gx,
                              uint64_t gy, unsigned block, unsigned smem, void *params, char *err,
                              size_t cap)
{
    void *args[1] = {params};
    CUresult r =
        cu->drv.LaunchKernel(f, (unsigned)gx, (unsigned)gy, 1, block, 1, 1, smem, s, args, NULL);
    if (r == CUDA_SUCCESS)
        return ALLOY_OK;
    return alloy__cu_error(cu, r, "cuLaunchKernel", err, cap);
}

void alloy__cu_batch(alloy_cu_batch *dst, const alloy__batch *src)
{
    memset(dst, 0, sizeof *dst);
    dst->rank = src->rank;
    dst->count = src->count;
    for (int d = 0; d < ALLOY_MAX_RANK && d < ALLOY_CU_MAX_RANK; d++) {
        dst->shape[d] = src->shape[d];
        for (int j = 0; j < 4 && j < ALLOY__MAX_OPERANDS; j++)
            dst->strides[j][d] = src->strides[j][d];
    }
}

static alloy_status cu_check_op(alloy_device *dev, alloy__op *op)
{
    static const char *const fns[ALLOY__OP_KIND_COUNT] = {
        "alloy_encode_copy",     "alloy_encode_matmul",           "alloy_encode_lu_factor",
        "alloy_encode_lu_solve", "alloy_encode_triangular_solve", "alloy_encode_layer_norm"};
    alloy__cu_device *cu = alloy__cu(dev);
    const char *fn = (int)op->kind >= 0 && op->kind < ALLOY__OP_KIND_COUNT ? fns[op->kind] : "?";
    alloy_status s = alloy__cu_check_lost(cu, fn);
    if (s != ALLOY_OK)
        return s;
    switch (op->kind) {
    case ALLOY__OP_COPY: return alloy__cu_check_copy(cu, op);
    case ALLOY__OP_MATMUL: return alloy__cu_check_matmul(cu, op);
    case ALLOY__OP_LAYER_NORM: return alloy__cu_check_norm(cu, op);
    case ALLOY__OP_LU_FACTOR:
    case ALLOY__OP_LU_SOLVE:
    case ALLOY__OP_TRIANGULAR_SOLVE: return alloy__cu_check_linalg(cu, op);
    case ALLOY__OP_KIND_COUNT: break;
    }
    return alloy__fail(ALLOY_ERR_UNSUPPORTED, "%s: unknown operation %d", fn, (int)op->kind);
}

static const alloy__backend cuda_backend = {
    "cuda",
    ALLOY_BACKEND_CUDA,
    sizeof(alloy__cu_queue),
    sizeof(alloy__cu_cmdbuf),
    1, /* the stream orders command buffers: each is launched at commit */
    alloy__cu_device_open,
    alloy__cu_device_close,
    alloy__cu_buffer_create,
    alloy__cu_buffer_wrap_host,
    alloy__cu_buffer_wrap_device,
    alloy__cu_buffer_destroy,
    alloy__cu_buffer_write,
    alloy__cu_buffer_read,
    alloy__cu_queue_init,
    alloy__cu_queue_fini,
    alloy__cu_cmdbuf_init,
    alloy__cu_cmdbuf_fini,
    cu_check_op,
    alloy__cu_prepare,
    alloy__cu_start,
    alloy__cu_help,
    alloy__cu_progress,
};

const alloy__backend *alloy__cuda_backend(void) { return &cuda_backend; }
