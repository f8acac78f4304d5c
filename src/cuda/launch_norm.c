/* layer_norm on the GPU: the row length alone picks the kernel (kernels/norm.cuh) and the
 * threads per row, so the reduction order, and with it every result, is fixed by shape:
 *   warp   rows of up to 32 * cache values, eight rows per 256-thread block;
 *   block  one row per block of the smallest power of two >= D / cache threads (>= 64);
 *   big    one row per 512-thread block, reading x three times.
 * VEC (16-byte accesses) when x and y share a dtype, are contiguous rows, and every row
 * starts 16-byte aligned. */
#include "cuda_backend.h"

#include <string.h>

#define MAX_BLOCKS (INT64_C(1) << 24) /* rows beyond are looped inside the kernel */

static int rows_aligned(uint64_t addr, size_t es, const alloy__batch *bt, int j)
{
    if (addr % 16 != 0)
        return 0;
    for (int d = 0; d < bt->rank; d++)
        if (((uint64_t)bt->strides[j][d] * es) % 16 != 0)
            return 0;
    return 1;
}

alloy_status alloy__cu_check_norm(alloy__cu_device *cu, const alloy__op *op)
{
    (void)cu;
    (void)op; /* every dtype and layout encode accepts has a kernel */
    return ALLOY_OK;
}

alloy_status alloy__cu_launch_norm(alloy__cu_device *cu, CUstream s, const alloy__op *op,
                                   uint64_t guard, char *err, size_t cap)
{
    const alloy__norm_op *n = &op->u.norm;
    if (n->batch.count == 0)
        return ALLOY_OK;
    alloy_cu_norm_params p;
    memset(&p, 0, sizeof p);
    p.guard = guard;
    p.d = n->d;
    p.x = n->x.addr;
    p.y = n->y.addr;
    p.gamma = n->gamma.addr;
    p.beta = n->beta.addr;
    p.mean = n->mean;
    p.rstd = n->rstd;
    p.x_stride = n->x.stride;
    p.y_stride = n->y.stride;
    p.gamma_stride = n->gamma.stride;
    p.beta_stride = n->beta.stride;
    p.y_dtype = (int32_t)n->y.dtype;
    p.gamma_dtype = (int32_t)n->gamma.dtype;
    p.beta_dtype = (int32_t)n->beta.dtype;
    p.mean_dtype = (int32_t)n->mean_dtype;
    p.rstd_dtype = (int32_t)n->rstd_dtype;
    p.rms = n->rms;
    p.eps = n->eps;
    alloy__cu_batch(&p.batch, &n->batch);

    const size_t es = alloy_dtype_size(n->x.dtype);
    const int64_t v = (int64_t)(16 / es);
    const int vec = n->y.dtype == n->x.dtype && n->d % v == 0 &&
                    (n->d <= 1 || (n->x.stride == 1 && n->y.stride == 1)) &&
                    rows_aligned(n->x.addr, es, &n->batch, 0) &&
                    rows_aligned(n->y.addr, es, &n->batch, 1);
    p.gb_vec = vec &&
               (!n->gamma.addr || (n->gamma.dtype == n->x.dtype && n->gamma.stride == 1 &&
                                   n->gamma.addr % 16 == 0)) &&
               (!n->beta.addr ||
                (n->beta.dtype == n->x.dtype && n->beta.stride == 1 && n->beta.addr % 16 == 0));
    const int64_t cache = n->x.dtype == ALLOY_F64 ? ALLOY_CU_NORM_CACHE_F64 : ALLOY_CU_NORM_CACHE;
    int mode;
    int64_t threads, rows_per_block;
    if (n->d <= 32 * cache) {
        mode = 0;
        threads = ALLOY_CU_NORM_WARP_THREADS;
        rows_per_block = threads / 32;
    } else if (n->d <= ALLOY_CU_NORM_BLOCK_THREADS * cache) {
        mode = 1;
        threads = 64;
        while (threads * cache < n->d)
            threads *= 2;
        rows_per_block = 1;
    } else {
        mode = 2;
        threads = ALLOY_CU_NORM_BIG_THREADS;
        rows_per_block = 1;
    }
    int64_t blocks = (n->batch.count + rows_per_block - 1) / rows_per_block;
    if (blocks > MAX_BLOCKS)
        blocks = MAX_BLOCKS;
    CUfunction f = cu->norm[n->x.dtype][mode][vec];
    return alloy__cu_launch(cu, s, f, (uint64_t)blocks, 1, (unsigned)threads, 0, &p, err, cap);
}
