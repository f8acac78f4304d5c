/* Triangular solve on the GPU, the diagonal-block kernel: L X = alpha B for a block of at
 * most NB rows, L lower (unit or not) in shared memory, a thread per column of B.
 * launch_trsm.c turns every variant into this form (transposes and reversals are views)
 * and recurses above NB rows, with the off-diagonal updates as GEMMs.
 *
 * Row r of X gets its updates as FMAs in increasing column order, then one division, as
 * the CPU's substitution does. */
#ifndef ALLOY_CUDA_KERNELS_TRSM_CUH
#define ALLOY_CUDA_KERNELS_TRSM_CUH

#include "common.cuh"

template <typename T, int NB> __device__ void alloy_cu_trsm_diag(const alloy_cu_trsm_params &p)
{
    __shared__ T sL[NB][NB + 1];
    __shared__ T sX[NB][ALLOY_CU_TRSM_TC];
    if (alloy_cu_guarded(p.guard))
        return;
    const int tid = threadIdx.x, nt = blockDim.x;
    const int R = (int)p.rows; /* <= NB: 32-bit index math */
    const int64_t c = (int64_t)blockIdx.x * nt + tid;
    const bool l_cols_fast = llabs(p.a_cs) <= llabs(p.a_rs);
    for (int64_t e = blockIdx.y; e < p.batch.count; e += gridDim.y) {
        int64_t off[2];
        alloy_cu_batch_offsets<2>(p.batch, e, off);
        const T *L = (const T *)p.a + off[0];
        /* Only the triangle is read: the rest may hold anything, NaN included. Eight loads
         * in flight a thread (one at a time, each would wait out the memory latency). */
        for (int x0 = tid; x0 < R * R; x0 += 8 * nt) {
            T v[8];
#pragma unroll
            for (int u = 0; u < 8; u++) {
                const int x = x0 + u * nt;
                const int i = l_cols_fast ? x / R : x % R, j = l_cols_fast ? x % R : x / R;
                if (x < R * R && (j < i || (j == i && !p.unit)))
                    v[u] = L[(int64_t)i * p.a_rs + (int64_t)j * p.a_cs];
            }
#pragma unroll
            for (int u = 0; u < 8; u++) {
                const int x = x0 + u * nt;
                const int i = l_cols_fast ? x / R : x % R, j = l_cols_fast ? x % R : x / R;
                if (x < R * R && (j < i || (j == i && !p.unit)))
                    sL[i][j] = v[u];
            }
        }
        __syncthreads();
        if (c < p.ncols) {
            /* A thread per column of B, the column in its own slice of shared memory: no
             * barrier inside the solve, and loops small enough for the instruction cache
             * (fully unrolled into registers, a 64-row solve is ~6k instructions that one
             * or two warps an SM would fetch from L2). */
            T *col = (T *)p.b + off[1] + c * p.b_cs;
#pragma unroll 8
            for (int i = 0; i < R; i++) {
                T v = col[(int64_t)i * p.b_rs];
                sX[i][tid] = p.scale ? (T)p.alpha * v : v;
            }
            for (int i = 0; i < R; i++) {
                T v = sX[i][tid];
#pragma unroll 8
                for (int q = 0; q < i; q++)
                    v = fma(-sL[i][q], sX[q][tid], v);
                sX[i][tid] = p.unit ? v : v / sL[i][i];
            }
#pragma unroll 8
            for (int i = 0; i < R; i++)
                col[(int64_t)i * p.b_rs] = sX[i][tid];
        }
        __syncthreads(); /* the next entry reuses sL */
    }
}

/* B = 0 (alpha == 0: A is never read, and NaN in B does not survive). */
template <typename T> __device__ void alloy_cu_trsm_zero(const alloy_cu_trsm_params &p)
{
    if (alloy_cu_guarded(p.guard))
        return;
    const int64_t total = p.rows * p.ncols;
    const bool cols_fast = llabs(p.b_cs) <= llabs(p.b_rs);
    for (int64_t e = blockIdx.y; e < p.batch.count; e += gridDim.y) {
        int64_t off[2];
        alloy_cu_batch_offsets<2>(p.batch, e, off);
        T *B = (T *)p.b + off[1];
        for (int64_t x = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; x < total;
             x += (int64_t)gridDim.x * blockDim.x) {
            int64_t i = cols_fast ? x / p.ncols : x % p.rows;
            int64_t c = cols_fast ? x % p.ncols : x / p.rows;
            B[i * p.b_rs + c * p.b_cs] = (T)0;
        }
    }
}

#define ALLOY_CU_TRSM_KERNELS(name, T, NB)                                                         \
    extern "C" __global__ void __launch_bounds__(ALLOY_CU_TRSM_THREADS)                           \
        alloy_trsm_diag_##name(const alloy_cu_trsm_params p)                                       \
    {                                                                                              \
        alloy_cu_trsm_diag<T, NB>(p);                                                              \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(ALLOY_CU_TRSM_THREADS)                           \
        alloy_trsm_zero_##name(const alloy_cu_trsm_params p)                                       \
    {                                                                                              \
        alloy_cu_trsm_zero<T>(p);                                                                  \
    }

#endif
