/* The parameter blocks of alloy's CUDA kernels, shared by the C glue (which fills them) and
 * the kernels (which take one by value). Plain fixed-width fields only, so C and CUDA C++
 * lay them out identically. Every kernel is `extern "C"` so the glue finds it by name. */
#ifndef ALLOY_CUDA_KERNELS_PARAMS_H
#define ALLOY_CUDA_KERNELS_PARAMS_H

#include <stdint.h>

#define ALLOY_CU_MAX_RANK 8

/* dtype codes: alloy_dtype's values (F32 0, F64 1, F16 2, BF16 3, I32 4). */
enum { ALLOY_CU_F32 = 0, ALLOY_CU_F64 = 1, ALLOY_CU_F16 = 2, ALLOY_CU_BF16 = 3, ALLOY_CU_I32 = 4 };

/* Batch dimensions shared by up to 4 operands (alloy__batch without its C11-only parts). */
typedef struct alloy_cu_batch {
    int32_t rank;
    int32_t pad_;
    int64_t count;
    int64_t shape[ALLOY_CU_MAX_RANK];
    int64_t strides[4][ALLOY_CU_MAX_RANK];
} alloy_cu_batch;

/* copy: dst[idx] = convert(src[idx]) over an N-d index space (dims outermost first). */
typedef struct alloy_cu_copy_params {
    int64_t count;
    int32_t rank;
    int32_t pad_;
    int64_t shape[ALLOY_CU_MAX_RANK];
    int64_t src_strides[ALLOY_CU_MAX_RANK];
    int64_t dst_strides[ALLOY_CU_MAX_RANK];
    uint64_t src, dst;
    uint64_t guard; /* as in alloy_cu_matmul_params */
} alloy_cu_copy_params;

/* matmul: C = alpha * A @ B + beta * C + bias for every batch entry (operands a, b, c). */
typedef struct alloy_cu_matmul_params {
    int64_t m, n, k; /* k = 0 when A and B must not be read (alpha == 0) */
    uint64_t a, b, c, bias;
    int64_t a_rs, a_cs, b_rs, b_cs, c_rs, c_cs, bias_stride;
    int32_t c_dtype, bias_dtype; /* bias_dtype ignored when bias == 0 */
    int32_t use_beta;            /* beta != 0: C is read */
    int32_t a_k_fast, b_k_fast;  /* SIMT loaders: walk k fastest (k is the contiguous dim) */
    int32_t pad_;
    double alpha, beta;
    int64_t tiles_m, tiles_n;
    /* 0, or a device int32 that, when nonzero, makes the kernel do nothing: an lu_solve
     * earlier in the command buffer (or this op's own check) found bad pivots, and every
     * later kernel of the command buffer is skipped, as alloy.h says. Every kernel takes
     * one. */
    uint64_t guard;
    alloy_cu_batch batch;
} alloy_cu_matmul_params;

/* lu_factor (kernels/lu.cuh): panel columns [j0, j0 + jb) of every batch entry's m x n
 * matrix (operands a, pivots, info), factored `chunk` columns at a time in shared memory
 * (0: in global memory, one column at a time). */
typedef struct alloy_cu_lu_params {
    int64_t m, n;
    uint64_t a, pivots, info;
    int64_t rs, cs, piv_stride;
    int64_t j0, jb;
    int32_t chunk;
    int32_t pad_;
    uint64_t guard; /* as in alloy_cu_matmul_params */
    alloy_cu_batch batch;
} alloy_cu_lu_params;

/* Row interchanges (kernels/laswp.cuh) on columns [c0, c1) but [skip0, skip1) of a
 * (operands a, pivots): row k <-> row pivots[k] - 1 for k in [k0, k1), in that order or
 * (reverse) the other. */
typedef struct alloy_cu_laswp_params {
    uint64_t a, pivots, guard; /* guard: as in alloy_cu_matmul_params */
    int64_t rs, cs, piv_stride;
    int64_t c0, c1, skip0, skip1, k0, k1;
    int32_t reverse;
    int32_t width; /* alloy_laswp_perm: columns a block */
    alloy_cu_batch batch;
} alloy_cu_laswp_params;

/* lu_solve's pivot check: every pivot of every entry (operand 1) in 1..n, else the guard
 * is set and key_base + entry is atomicMin'ed into report (host-mapped int64). */
typedef struct alloy_cu_pivcheck_params {
    uint64_t pivots, guard, report;
    int64_t n, piv_stride, key_base;
    alloy_cu_batch batch;
} alloy_cu_pivcheck_params;

/* triangular solve (kernels/trsm.cuh), canonical form L X = alpha B on a diagonal block:
 * L rows x rows lower (operand 0), B rows x ncols (operand 1), both strided (strides may
 * be negative: an upper solve runs as a lower one on reversed views). scale: B is
 * multiplied by alpha as it is read. The zero kernel sets B to 0. */
typedef struct alloy_cu_trsm_params {
    uint64_t a, b, guard;
    int64_t a_rs, a_cs, b_rs, b_cs;
    int64_t rows, ncols;
    int32_t unit, scale;
    double alpha;
    alloy_cu_batch batch;
} alloy_cu_trsm_params;

/* layer_norm / RMS norm over rows of length d (operands x, y, mean, rstd). */
typedef struct alloy_cu_norm_params {
    int64_t d;
    uint64_t x, y, gamma, beta, mean, rstd; /* gamma, beta, mean, rstd: 0 when absent */
    int64_t x_stride, y_stride, gamma_stride, beta_stride;
    int32_t y_dtype, gamma_dtype, beta_dtype, mean_dtype, rstd_dtype;
    int32_t rms;
    int32_t gb_vec; /* VEC kernels: gamma and beta (those present) are x's dtype, contiguous
                       and 16-byte aligned, so they are read 16 bytes at a time too */
    int32_t pad_;
    double eps;
    uint64_t guard; /* as in alloy_cu_matmul_params */
    alloy_cu_batch batch;
} alloy_cu_norm_params;

/* Tile shapes the glue plans grids with; the kernels are compiled with the same numbers. */
#define ALLOY_CU_TC_L_BM 128
#define ALLOY_CU_TC_L_BN 256
#define ALLOY_CU_TC_L_WM 2 /* warps along M and N */
#define ALLOY_CU_TC_L_WN 4
#define ALLOY_CU_TC_L_BK 64 /* halves */
#define ALLOY_CU_TC_L_STAGES 3
#define ALLOY_CU_TC_L_MINB 1 /* blocks per SM the registers are budgeted for */
#define ALLOY_CU_TC_L_DB 1   /* fragments double-buffered across k-steps */
#define ALLOY_CU_TC_L_THREADS (ALLOY_CU_TC_L_WM * ALLOY_CU_TC_L_WN * 32)
#define ALLOY_CU_TC_S_BM 64
#define ALLOY_CU_TC_S_BN 64
#define ALLOY_CU_TC_S_BK 32
#define ALLOY_CU_TC_S_THREADS 128
#define ALLOY_CU_TC_S_STAGES 4
#define ALLOY_CU_TC_S_MINB 1
#define ALLOY_CU_TC_S_DB 0
/* Dynamic shared memory of a tensor-core kernel: stages * (BM + BN) * BK halves. */
#define ALLOY_CU_TC_SMEM(bm, bn, bk, stages) ((stages) * ((bm) + (bn)) * (bk) * 2)
#define ALLOY_CU_TC_L_SMEM                                                                         \
    ALLOY_CU_TC_SMEM(ALLOY_CU_TC_L_BM, ALLOY_CU_TC_L_BN, ALLOY_CU_TC_L_BK, ALLOY_CU_TC_L_STAGES)
#define ALLOY_CU_TC_S_SMEM                                                                         \
    ALLOY_CU_TC_SMEM(ALLOY_CU_TC_S_BM, ALLOY_CU_TC_S_BN, ALLOY_CU_TC_S_BK, ALLOY_CU_TC_S_STAGES)

#define ALLOY_CU_F32_BM 128
#define ALLOY_CU_F32_BN 128
#define ALLOY_CU_F32_S_BM 64 /* alloy_mm_f32_s: when 128 x 128 tiles leave SMs idle */
#define ALLOY_CU_F32_S_BN 64
#define ALLOY_CU_TF32_BM 128
#define ALLOY_CU_TF32_BN 128
#define ALLOY_CU_F64_BM 64
#define ALLOY_CU_F64_BN 64
#define ALLOY_CU_SIMT_THREADS 256

/* Linear algebra: columns per panel of the blocked LU, columns per shared-memory chunk in
 * a panel, rows per diagonal block of the triangular solve and its column tile. */
#define ALLOY_CU_LU_PANEL 32
#define ALLOY_CU_LU_CHUNK 8
#define ALLOY_CU_LU_CLUSTER 8 /* blocks of a cluster panel (sm_90): the portable maximum */
#define ALLOY_CU_LU_CLUSTER_THREADS_F32 1024 /* f64 at 1024 threads would spill registers */
#define ALLOY_CU_LU_CLUSTER_THREADS_F64 512
#define ALLOY_CU_LU_OUTER 256 /* columns between trailing updates (the GEMM's k) */
#define ALLOY_CU_TRSM_NB_F32 64
#define ALLOY_CU_TRSM_NB_F64 32
#define ALLOY_CU_TRSM_THREADS 512      /* a diagonal block: THREADS / NB columns of B, NB rows */
#define ALLOY_CU_TRSM_SUB_THREADS 256  /* the one-launch substitution: 64 rows x 4 columns */
#define ALLOY_CU_TRSM_SUB_COLS 4       /* columns of B a block (a thread each, per row) */
#define ALLOY_CU_TRSM_SUB_MAX_COLS 256 /* it runs for B up to this wide... */
#define ALLOY_CU_TRSM_SUB_MAX_ROWS 512 /* ...on sub-triangles up to this tall */
#define ALLOY_CU_LASWP_THREADS 256

/* layer_norm: a warp per row up to 32 * cache values, a block of up to NORM_BLOCK_THREADS
 * per row (values cached in registers) up to NORM_BLOCK_THREADS * cache, three passes over
 * global memory beyond it. The cache is 32 floats or 16 doubles a thread: 512 threads
 * leave 128 registers each. */
#define ALLOY_CU_NORM_CACHE 32     /* values per thread kept in registers (f32 math) */
#define ALLOY_CU_NORM_CACHE_F64 16 /* ... (f64 math) */
#define ALLOY_CU_NORM_WARP_THREADS 256 /* eight rows per block in warp mode */
#define ALLOY_CU_NORM_BLOCK_THREADS 512
#define ALLOY_CU_NORM_BIG_THREADS 512

#endif
