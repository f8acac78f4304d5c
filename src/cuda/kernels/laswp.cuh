/* Row interchanges (LAPACK's laswp) and lu_solve's check of its pivots.
 *
 * laswp: a thread per column applies the interchanges in order. Applied one by one, each
 * interchange waits for the loads of the one before (they may touch the same rows), so a
 * column would take k1 - k0 memory latencies; instead eight at a time are checked for
 * independence (no row appears twice among them) and then loaded and stored together,
 * falling back to one by one only for the groups that share a row. */
#ifndef ALLOY_CUDA_KERNELS_LASWP_CUH
#define ALLOY_CUDA_KERNELS_LASWP_CUH

#include "common.cuh"

#define ALLOY_CU_LASWP_GROUP 8

template <typename T> __device__ void alloy_cu_laswp(const alloy_cu_laswp_params &p)
{
    if (alloy_cu_guarded(p.guard))
        return;
    const int G = ALLOY_CU_LASWP_GROUP;
    const int64_t skipped = p.skip1 - p.skip0, span = p.c1 - p.c0 - skipped;
    const int64_t npiv = p.k1 - p.k0;
    for (int64_t e = blockIdx.y; e < p.batch.count; e += gridDim.y) {
        int64_t off[2];
        alloy_cu_batch_offsets<2>(p.batch, e, off);
        T *A = (T *)p.a + off[0];
        const int32_t *piv = (const int32_t *)p.pivots + off[1];
        for (int64_t x = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; x < span;
             x += (int64_t)gridDim.x * blockDim.x) {
            int64_t c = p.c0 + x;
            if (c >= p.skip0)
                c += skipped;
            T *col = A + c * p.cs;
            for (int64_t g = 0; g < npiv; g += G) {
                const int len = npiv - g < G ? (int)(npiv - g) : G;
                int64_t k[G] = {0}, r[G] = {0};
                bool independent = true;
#pragma unroll
                for (int i = 0; i < G; i++) {
                    if (i < len) {
                        /* reverse: the group's interchanges last to first */
                        k[i] = p.reverse ? p.k1 - 1 - (g + i) : p.k0 + g + i;
                        r[i] = (int64_t)piv[k[i] * p.piv_stride] - 1;
                    }
                }
#pragma unroll
                for (int i = 0; i < G; i++)
#pragma unroll
                    for (int j = 0; j < G; j++)
                        if (i < len && j < len && i != j && r[i] != k[i] &&
                            (r[i] == k[j] || r[i] == r[j]))
                            independent = false;
                if (independent) {
                    T vk[G], vr[G];
#pragma unroll
                    for (int i = 0; i < G; i++)
                        if (i < len && r[i] != k[i]) {
                            vk[i] = col[k[i] * p.rs];
                            vr[i] = col[r[i] * p.rs];
                        }
#pragma unroll
                    for (int i = 0; i < G; i++)
                        if (i < len && r[i] != k[i]) {
                            col[k[i] * p.rs] = vr[i];
                            col[r[i] * p.rs] = vk[i];
                        }
                } else {
                    for (int i = 0; i < len; i++)
                        if (r[i] != k[i]) {
                            T t = col[k[i] * p.rs];
                            col[k[i] * p.rs] = col[r[i] * p.rs];
                            col[r[i] * p.rs] = t;
                        }
                }
            }
        }
    }
}

/* Closed interchanges (k0 = 0, every pivot in 1..k1, as lu_solve's after pivcheck) on
 * `width` columns a block, through shared memory: the pivots are composed into
 * one permutation (row i of the result is row perm[i] of B) by one thread while the others
 * load the block's columns, then every thread writes rows back in place. n steps of a
 * shared-memory swap instead of n / 8 global memory round trips a column. Dynamic shared
 * memory: 2 n ints and n x width elements. */
template <typename T> __device__ void alloy_cu_laswp_perm(const alloy_cu_laswp_params &p)
{
    extern __shared__ __align__(16) unsigned char alloy_cu_laswp_dyn[];
    if (alloy_cu_guarded(p.guard))
        return;
    const int n = (int)p.k1, W = p.width, tid = threadIdx.x, nt = blockDim.x;
    int *perm = (int *)alloy_cu_laswp_dyn, *pv = perm + n;
    T *chunk = (T *)(pv + n); /* 8 n bytes in: aligned for T */
    const int64_t c0 = p.c0 + (int64_t)blockIdx.x * W;
    const int w = p.c1 - c0 < W ? (int)(p.c1 - c0) : W;
    for (int64_t e = blockIdx.y; e < p.batch.count; e += gridDim.y) {
        int64_t off[2];
        alloy_cu_batch_offsets<2>(p.batch, e, off);
        T *A = (T *)p.a + off[0] + c0 * p.cs;
        const int32_t *piv = (const int32_t *)p.pivots + off[1];
        for (int i = tid; i < n; i += nt) {
            pv[i] = piv[(int64_t)i * p.piv_stride] - 1;
            perm[i] = i;
        }
        __syncthreads();
        if (tid < 32) {
            if (tid == 0)
                for (int s = 0; s < n; s++) {
                    const int k = p.reverse ? n - 1 - s : s, r = pv[k];
                    const int t = perm[k];
                    perm[k] = perm[r];
                    perm[r] = t;
                }
        } else {
            for (int x = tid - 32; x < n * w; x += nt - 32) {
                const int i = x / w, c = x % w;
                chunk[i * W + c] = A[(int64_t)i * p.rs + (int64_t)c * p.cs];
            }
        }
        __syncthreads();
        for (int x = tid; x < n * w; x += nt) {
            const int i = x / w, c = x % w;
            A[(int64_t)i * p.rs + (int64_t)c * p.cs] = chunk[perm[i] * W + c];
        }
        __syncthreads(); /* the next entry reuses the shared arrays */
    }
}

/* Every pivot of every entry in 1..n; a bad one sets the guard to this op's index + 1 (so
 * every later kernel of the command buffer does nothing) and reports the smallest bad
 * entry. The guard is cleared on the stream before the command buffer's first lu_solve. */
__device__ __forceinline__ void alloy_cu_pivcheck(const alloy_cu_pivcheck_params &p)
{
    const int32_t me = (int32_t)(p.key_base >> 40) + 1;
    for (int64_t e = blockIdx.y; e < p.batch.count; e += gridDim.y) {
        int64_t off[1];
        alloy_cu_batch_offsets<1>(p.batch, e, off);
        const int32_t *piv = (const int32_t *)p.pivots + off[0];
        for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < p.n;
             i += (int64_t)gridDim.x * blockDim.x) {
            int32_t v = piv[i * p.piv_stride];
            if (v < 1 || (int64_t)v > p.n) {
                atomicCAS((int *)p.guard, 0, me);
                atomicMin((unsigned long long *)p.report, (unsigned long long)(p.key_base + e));
            }
        }
    }
}

#define ALLOY_CU_LASWP_KERNELS(name, T)                                                            \
    extern "C" __global__ void __launch_bounds__(ALLOY_CU_LASWP_THREADS)                          \
        alloy_laswp_##name(const alloy_cu_laswp_params p)                                          \
    {                                                                                              \
        alloy_cu_laswp<T>(p);                                                                      \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(ALLOY_CU_LASWP_THREADS)                          \
        alloy_laswp_perm_##name(const alloy_cu_laswp_params p)                                     \
    {                                                                                              \
        alloy_cu_laswp_perm<T>(p);                                                                 \
    }

extern "C" __global__ void __launch_bounds__(ALLOY_CU_LASWP_THREADS)
    alloy_pivcheck(const alloy_cu_pivcheck_params p)
{
    /* An earlier lu_solve of the command buffer failed: this one is skipped. This op's own
     * blocks may have set the guard already: they go on, so every bad entry is seen and the
     * smallest reported. */
    const int32_t g = *(const volatile int32_t *)p.guard;
    if (g == 0 || g == (int32_t)(p.key_base >> 40) + 1)
        alloy_cu_pivcheck(p);
}

#endif
