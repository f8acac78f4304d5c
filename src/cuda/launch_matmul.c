/* matmul on the GPU: which kernel, which tiles, which grid.
 *   f64            SIMT, 64 x 64 tiles (kernels/matmul_simt.cuh)
 *   f32            SIMT, 128 x 128 tiles, or 64 x 64 when the larger ones would not give
 *                  every SM a block (the same chain per element either way, so the tiling
 *                  changes no bits); tf32 tensor cores only when the descriptor asks
 *   f16 / bf16     tensor cores (kernels/matmul_tc.cuh): 128 x 256 tiles when the operands
 *                  are 16-byte aligned panels and the product fills the GPU, 64 x 64 tiles
 *                  otherwise, and an element-gathering variant for any other strides.
 * The choice depends on the shape, strides and alignment only, so the same inputs always
 * take the same kernel. Batches beyond the grid's y limit are looped inside the kernel. */
#include "cuda_backend.h"

#include <stdlib.h>
#include <string.h>

#define MAX_GRID_Y 65535

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* Tiles of a bm x bn tiling, or -1 beyond what grid.x (2^31 - 1) can index. */
static int64_t tiles_of(int64_t m, int64_t n, int64_t bm, int64_t bn)
{
    int64_t tm = ceil_div(m, bm), tn = ceil_div(n, bn);
    if (tm != 0 && tn > INT32_MAX / tm)
        return -1;
    return tm * tn;
}

alloy_status alloy__cu_check_matmul(alloy__cu_device *cu, const alloy__op *op)
{
    (void)cu;
    const alloy__matmul_op *mm = &op->u.matmul;
    /* The smallest tiles (64 x 64) give the most blocks. */
    if (tiles_of(mm->m, mm->n, 64, 64) < 0)
        return alloy__fail(ALLOY_ERR_UNSUPPORTED,
                           "alloy_encode_matmul: a %lld x %lld product needs more than 2^31 - 1 "
                           "tiles of 64 x 64, beyond the CUDA grid; split it",
                           (long long)mm->m, (long long)mm->n);
    return ALLOY_OK;
}

/* Extent-1 dimensions never step, so their strides do not matter. */
static int64_t eff(int64_t stride, int64_t extent) { return extent > 1 ? stride : 0; }

/* Whether an f16/bf16 operand can be read in 16-byte chunks: `inner` (the contiguous
 * dimension's stride) is 1 and the other stride, the batch strides and the base address
 * keep every chunk 16-byte aligned. */
static int chunkable(uint64_t addr, int64_t inner, int64_t outer, const alloy__batch *bt, int j)
{
    if (inner != 1 || outer % 8 != 0 || addr % 16 != 0)
        return 0;
    for (int d = 0; d < bt->rank; d++)
        if (bt->strides[j][d] % 8 != 0)
            return 0;
    return 1;
}

alloy_status alloy__cu_launch_matmul(alloy__cu_device *cu, CUstream s, const alloy__op *op,
                                     uint64_t guard, char *err, size_t cap)
{
    return alloy__cu_launch_mm(cu, s, &op->u.matmul, guard, err, cap);
}

alloy_status alloy__cu_launch_mm(alloy__cu_device *cu, CUstream s, const alloy__matmul_op *mm,
                                 uint64_t guard, char *err, size_t cap)
{
    if (mm->m == 0 || mm->n == 0 || mm->batch.count == 0)
        return ALLOY_OK;
    alloy_cu_matmul_params p;
    memset(&p, 0, sizeof p);
    p.m = mm->m;
    p.n = mm->n;
    p.k = mm->alpha != 0.0 ? mm->k : 0; /* alpha == 0 never reads A or B */
    p.a = mm->a.addr;
    p.b = mm->b.addr;
    p.c = mm->c.addr;
    p.bias = mm->bias.addr;
    p.a_rs = eff(mm->a.rs, mm->m);
    p.a_cs = eff(mm->a.cs, mm->k);
    p.b_rs = eff(mm->b.rs, mm->k);
    p.b_cs = eff(mm->b.cs, mm->n);
    p.c_rs = mm->c.rs;
    p.c_cs = mm->c.cs;
    p.bias_stride = mm->bias.stride;
    p.c_dtype = (int32_t)mm->c.dtype;
    p.bias_dtype = (int32_t)mm->bias.dtype;
    p.use_beta = mm->beta != 0.0;
    p.alpha = mm->alpha;
    p.beta = mm->beta;
    /* SIMT loaders walk the operand's smaller stride fastest (coalesced). */
    p.guard = guard;
    p.a_k_fast = llabs(p.a_cs) <= llabs(p.a_rs); /* solvers pass reversed (negative) views */
    p.b_k_fast = llabs(p.b_rs) <= llabs(p.b_cs);
    alloy__cu_batch(&p.batch, &mm->batch);

    CUfunction f;
    int64_t bm, bn;
    unsigned threads, smem = 0;
    if (mm->c.dtype == ALLOY_F64) {
        f = cu->mm_f64;
        bm = ALLOY_CU_F64_BM;
        bn = ALLOY_CU_F64_BN;
        threads = ALLOY_CU_SIMT_THREADS;
    } else if (mm->a.dtype == ALLOY_F32) {
        f = mm->allow_tf32 ? cu->mm_tf32 : cu->mm_f32;
        /* The tf32 and f32 kernels tile alike today; each keeps its own constants. */
#if ALLOY_CU_TF32_BM == ALLOY_CU_F32_BM && ALLOY_CU_TF32_BN == ALLOY_CU_F32_BN
        bm = ALLOY_CU_F32_BM;
        bn = ALLOY_CU_F32_BN;
#else
        bm = mm->allow_tf32 ? ALLOY_CU_TF32_BM : ALLOY_CU_F32_BM;
        bn = mm->allow_tf32 ? ALLOY_CU_TF32_BN : ALLOY_CU_F32_BN;
#endif
        threads = ALLOY_CU_SIMT_THREADS;
        /* A product whose 128 x 128 tiles are fewer than the SMs (the solvers' updates of
         * a few right-hand sides over a long k: 2048 x 256 is 32 tiles) runs four times
         * the blocks on 64 x 64 tiles. */
        const int64_t big = tiles_of(mm->m, mm->n, bm, bn);
        if (!mm->allow_tf32 && big >= 0 && mm->batch.count < cu->sm_count &&
            big * mm->batch.count < cu->sm_count) {
            f = cu->mm_f32_s;
            bm = ALLOY_CU_F32_S_BM;
            bn = ALLOY_CU_F32_S_BN;
        }
    } else {
        /* A is K-major (row-major) when its k stride is 1, M-major when its m stride is;
         * B is K-major (column-major) when its k stride is 1, N-major when its n stride is.
         * Neither: gather elements, in the layout of the smaller stride. */
        const int a_k = p.a_cs == 1 || (p.a_rs != 1 && p.a_cs <= p.a_rs);
        const int b_k = p.b_cs != 1 && (p.b_rs == 1 || p.b_rs < p.b_cs);
        const int vec = (a_k ? chunkable(p.a, p.a_cs, p.a_rs, &mm->batch, 0)
                             : chunkable(p.a, p.a_rs, p.a_cs, &mm->batch, 0)) &&
                        (b_k ? chunkable(p.b, p.b_rs, p.b_cs, &mm->batch, 1)
                             : chunkable(p.b, p.b_cs, p.b_rs, &mm->batch, 1));
        int variant = vec ? ALLOY__CU_TC_VEC_S : ALLOY__CU_TC_GEN_S;
        /* Large tiles only when there are enough of them to give every SM one. */
        int64_t large = tiles_of(mm->m, mm->n, ALLOY_CU_TC_L_BM, ALLOY_CU_TC_L_BN);
        if (vec && cu->tc_large && large > 0 && large * mm->batch.count >= cu->sm_count)
            variant = ALLOY__CU_TC_VEC_L;
        f = cu->mm_tc[mm->a.dtype == ALLOY_BF16][(a_k ? 0 : 2) + (b_k ? 0 : 1)][variant];
        if (variant == ALLOY__CU_TC_VEC_L) {
            bm = ALLOY_CU_TC_L_BM;
            bn = ALLOY_CU_TC_L_BN;
            threads = ALLOY_CU_TC_L_THREADS;
            smem = ALLOY_CU_TC_L_SMEM;
        } else {
            bm = ALLOY_CU_TC_S_BM;
            bn = ALLOY_CU_TC_S_BN;
            threads = ALLOY_CU_TC_S_THREADS;
            smem = ALLOY_CU_TC_S_SMEM;
        }
    }
    int64_t tiles = tiles_of(mm->m, mm->n, bm, bn);
    if (tiles < 0) { /* check_matmul bounded the 64 x 64 tiling; larger tiles are fewer */
        alloy__format(err, cap, "too many tiles for the CUDA grid");
        return ALLOY_ERR_UNSUPPORTED;
    }
    p.tiles_m = ceil_div(mm->m, bm);
    p.tiles_n = ceil_div(mm->n, bn);
    int64_t gy = mm->batch.count < MAX_GRID_Y ? mm->batch.count : MAX_GRID_Y;
    return alloy__cu_launch(cu, s, f, (uint64_t)tiles, (uint64_t)gy, threads, smem, &p, err, cap);
}
