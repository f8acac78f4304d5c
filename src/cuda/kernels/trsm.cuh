/* Triangular solve on the GPU, the diagonal-block kernel: L X = alpha B for a block of at
 * most NB rows, L lower (unit or not) in shared memory, a thread per element of X: each
 * block takes ALLOY_CU_TRSM_THREADS / NB columns of B, with NB threads down each column.
 * launch_trsm.c turns every variant into this form (transposes and reversals are views)
 * and recurses above NB rows, with the off-diagonal updates as GEMMs.
 *
 * Row r of X gets its updates as FMAs in increasing column order, then one division, as
 * the CPU's substitution does. The chains run as a wavefront: at step t, row t is final
 * (its division) and every row below takes its update from it, so a block is NB steps of
 * one FMA and one barrier, not a thread walking NB^2 / 2 dependent FMAs. */
#ifndef ALLOY_CUDA_KERNELS_TRSM_CUH
#define ALLOY_CUDA_KERNELS_TRSM_CUH

#include "common.cuh"

template <typename T, int NB> __device__ void alloy_cu_trsm_diag(const alloy_cu_trsm_params &p)
{
    const int CPB = ALLOY_CU_TRSM_THREADS / NB; /* columns a block */
    static_assert(ALLOY_CU_TRSM_THREADS % NB == 0, "whole columns a block");
    __shared__ T sL[NB][NB + 1];
    __shared__ T sX[NB][CPB];
    if (alloy_cu_guarded(p.guard))
        return;
    const int tid = threadIdx.x, nt = blockDim.x;
    const int R = (int)p.rows; /* <= NB: 32-bit index math */
    /* consecutive threads, consecutive columns: B's rows are read in runs of CPB */
    const int i = tid / CPB, cl = tid % CPB;
    const int64_t c = (int64_t)blockIdx.x * CPB + cl;
    const bool mine = i < R && c < p.ncols;
    const bool l_cols_fast = llabs(p.a_cs) <= llabs(p.a_rs);
    for (int64_t e = blockIdx.y; e < p.batch.count; e += gridDim.y) {
        int64_t off[2];
        alloy_cu_batch_offsets<2>(p.batch, e, off);
        const T *L = (const T *)p.a + off[0];
        T *col = (T *)p.b + off[1] + c * p.b_cs;
        T v = 0;
        if (mine) {
            v = col[(int64_t)i * p.b_rs];
            if (p.scale)
                v = (T)p.alpha * v;
        }
        /* Only the triangle is read: the rest may hold anything, NaN included. Eight loads
         * in flight a thread (one at a time, each would wait out the memory latency). */
        for (int x0 = tid; x0 < R * R; x0 += 8 * nt) {
            T w[8];
#pragma unroll
            for (int u = 0; u < 8; u++) {
                const int x = x0 + u * nt;
                const int r = l_cols_fast ? x / R : x % R, q = l_cols_fast ? x % R : x / R;
                if (x < R * R && (q < r || (q == r && !p.unit)))
                    w[u] = L[(int64_t)r * p.a_rs + (int64_t)q * p.a_cs];
            }
#pragma unroll
            for (int u = 0; u < 8; u++) {
                const int x = x0 + u * nt;
                const int r = l_cols_fast ? x / R : x % R, q = l_cols_fast ? x % R : x / R;
                if (x < R * R && (q < r || (q == r && !p.unit)))
                    sL[r][q] = w[u];
            }
        }
        __syncthreads();
        for (int t = 0; t < R; t++) {
            if (i == t) {
                if (!p.unit)
                    v = v / sL[t][t];
                sX[t][cl] = v;
            }
            __syncthreads();
            if (i > t && i < R)
                v = fma(-sL[i][t], sX[t][cl], v);
        }
        if (mine)
            col[(int64_t)i * p.b_rs] = v;
        __syncthreads(); /* the next entry reuses sL and sX */
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
