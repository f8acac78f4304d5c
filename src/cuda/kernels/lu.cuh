/* LU with partial pivoting on the GPU: the panel kernel, which factors columns
 * [j0, j0 + jb) of rows [j0, m) of every batch entry, one thread block per entry.
 *
 * Used two ways by launch_lu.c:
 *   - a small matrix whole (j0 = 0, jb = n, one chunk of n columns): the matrix lives in
 *     shared memory from load to store, so 10000 x 64x64 is 10000 blocks that never touch
 *     global memory in between;
 *   - a panel of a large matrix (jb <= ALLOY_CU_LU_PANEL), between the recursive splits
 *     whose updates run as GEMMs: `chunk` columns at a time sit in shared memory (rows x
 *     chunk), the rest of the panel is brought up to date after each chunk.
 *
 * Semantics are the CPU's (src/cpu/solve.inc): the pivot is the first entry of largest
 * magnitude (LAPACK's i?amax; NaN never wins unless it is the diagonal itself), an exactly
 * zero pivot records info = j + 1 once and skips that column's swap, scaling and update,
 * a pivot below FLT_MIN/DBL_MIN divides instead of multiplying by its reciprocal. Each
 * element's updates are FMAs in increasing column order. */
#ifndef ALLOY_CUDA_KERNELS_LU_CUH
#define ALLOY_CUDA_KERNELS_LU_CUH

#include "common.cuh"

#include <cooperative_groups.h>
#include <float.h>

template <typename T> struct alloy_cu_lu_limits;
template <> struct alloy_cu_lu_limits<float> {
    static __device__ __forceinline__ float sfmin() { return FLT_MIN; }
};
template <> struct alloy_cu_lu_limits<double> {
    static __device__ __forceinline__ double sfmin() { return DBL_MIN; }
};

/* Shared-memory row stride of a chunk: odd, so a thread per row walks distinct banks. */
__host__ __device__ __forceinline__ int64_t alloy_cu_lu_ld(int64_t chunk)
{
    return chunk % 2 == 0 ? chunk + 1 : chunk;
}

/* (v, i) beats (bv, bi): larger magnitude, or the same and an earlier row. */
template <typename T>
__device__ __forceinline__ void alloy_cu_argmax_merge(T &bv, int64_t &bi, T v, int64_t i)
{
    if (v > bv || (v == bv && i < bi)) {
        bv = v;
        bi = i;
    }
}

/* Lane 0 of the warp ends with its best (bv, bi) under alloy_cu_argmax_merge (the other
 * lanes with partial ones). */
template <typename T> __device__ __forceinline__ void alloy_cu_warp_argmax(T &bv, int64_t &bi)
{
    for (int o = 16; o > 0; o /= 2) {
        T ov = __shfl_down_sync(0xffffffffu, bv, o);
        int64_t oi = __shfl_down_sync(0xffffffffu, bi, o);
        alloy_cu_argmax_merge(bv, bi, ov, oi);
    }
}

/* The row in [k, rows) of column k of S (element (r, c) at S[r * srs + c * scs]) holding the
 * pivot, and its value in *value; every thread of the block gets both, read from shared
 * memory written before the block's last barrier here (the swap that follows may move the
 * element itself). */
template <typename T>
__device__ int64_t alloy_cu_lu_pivot(const T *S, int64_t srs, int64_t scs, int64_t k, int64_t rows,
                                     T *red_v, int64_t *red_i, int64_t *result, T *value)
{
    /* i?amax keeps a NaN start: nothing compares greater. Every thread still passes both
     * barriers below. */
    const bool nan_first = isnan(S[k * srs + k * scs]);
    T bv = (T)-1;
    int64_t bi = INT64_MAX;
    for (int64_t r = k + threadIdx.x; !nan_first && r < rows; r += blockDim.x) {
        T v = fabs(S[r * srs + k * scs]);
        if (isnan(v))
            v = (T)-1; /* never beats a number */
        alloy_cu_argmax_merge(bv, bi, v, r);
    }
    alloy_cu_warp_argmax(bv, bi);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nwarps = (blockDim.x + 31) / 32;
    if (lane == 0) {
        red_v[warp] = bv;
        red_i[warp] = bi;
    }
    __syncthreads();
    if (warp == 0) {
        bv = lane < nwarps ? red_v[lane] : (T)-1;
        bi = lane < nwarps ? red_i[lane] : INT64_MAX;
        alloy_cu_warp_argmax(bv, bi);
        if (lane == 0) {
            const int64_t pr = nan_first || bi == INT64_MAX ? k : bi;
            *result = pr;
            *value = S[pr * srs + k * scs];
        }
    }
    __syncthreads();
    return *result;
}

template <typename T> __device__ void alloy_cu_lu_panel(const alloy_cu_lu_params &p)
{
    extern __shared__ __align__(16) unsigned char alloy_cu_lu_smem[];
    __shared__ T red_v[32];
    __shared__ int64_t red_i[32];
    __shared__ int64_t piv_row;
    __shared__ T piv_val;
    T *const sm = (T *)alloy_cu_lu_smem;
    const int64_t m = p.m, rs = p.rs, cs = p.cs, jend = p.j0 + p.jb;
    const int64_t w = p.chunk > 0 ? p.chunk : 1;
    const int tid = threadIdx.x, nt = blockDim.x;
    const bool rows_fast = rs < cs; /* column-major: consecutive threads take consecutive rows */

    for (int64_t e = blockIdx.y; e < p.batch.count; e += gridDim.y) {
        int64_t off[3];
        alloy_cu_batch_offsets<3>(p.batch, e, off);
        T *A = (T *)p.a + off[0];
        int32_t *piv = (int32_t *)p.pivots + off[1];
        int32_t *info = (int32_t *)p.info + off[2];
        if (p.j0 == 0 && tid == 0)
            *info = 0;

        for (int64_t c0 = p.j0; c0 < jend; c0 += w) {
            const int64_t cw = jend - c0 < w ? jend - c0 : w;
            const int64_t rows = m - c0;
            const int64_t kmax = cw < rows ? cw : rows; /* a small wide matrix ends early */
            T *S;
            int64_t srs, scs;
            if (p.chunk > 0) {
                S = sm;
                srs = alloy_cu_lu_ld(cw);
                scs = 1;
                /* Shared memory holds rows * cw < 2^31 elements: 32-bit index math. */
                const int total = (int)(rows * cw), r32 = (int)rows, w32 = (int)cw;
                for (int x0 = tid; x0 < total; x0 += 8 * nt) { /* eight loads in flight */
                    T v[8];
#pragma unroll
                    for (int u = 0; u < 8; u++) {
                        const int x = x0 + u * nt;
                        const int r = rows_fast ? x % r32 : x / w32;
                        const int c = rows_fast ? x / r32 : x % w32;
                        if (x < total)
                            v[u] = A[(c0 + r) * rs + (c0 + c) * cs];
                    }
#pragma unroll
                    for (int u = 0; u < 8; u++) {
                        const int x = x0 + u * nt;
                        const int r = rows_fast ? x % r32 : x / w32;
                        const int c = rows_fast ? x / r32 : x % w32;
                        if (x < total)
                            S[r * srs + c] = v[u];
                    }
                }
                __syncthreads();
            } else {
                S = A + c0 * rs + c0 * cs;
                srs = rs;
                scs = cs;
            }

            for (int64_t k = 0; k < kmax; k++) {
                const int64_t j = c0 + k;
                const int64_t pr =
                    alloy_cu_lu_pivot(S, srs, scs, k, rows, red_v, red_i, &piv_row, &piv_val);
                if (tid == 0)
                    piv[j * p.piv_stride] = (int32_t)(c0 + pr + 1);
                const T pv = piv_val;
                if (pv == (T)0) {
                    /* An exactly zero column: recorded, nothing divided or updated. */
                    if (tid == 0 && *info == 0)
                        *info = (int32_t)(j + 1);
                    continue;
                }
                if (pr != k) {
                    for (int64_t c = tid; c < cw; c += nt) {
                        T t = S[k * srs + c * scs];
                        S[k * srs + c * scs] = S[pr * srs + c * scs];
                        S[pr * srs + c * scs] = t;
                    }
                    /* The panel's columns outside the chunk, in global memory. */
                    const int64_t outside = p.jb - cw;
                    for (int64_t x = tid; x < outside; x += nt) {
                        int64_t c = p.j0 + x;
                        if (c >= c0)
                            c += cw;
                        T *a = A + j * rs + c * cs, *b = A + (c0 + pr) * rs + c * cs;
                        T t = *a;
                        *a = *b;
                        *b = t;
                    }
                    __syncthreads();
                }
                const T d = S[k * srs + k * scs];
                const bool small = !(fabs(d) >= alloy_cu_lu_limits<T>::sfmin());
                const T rcp = (T)1 / d;
                for (int64_t r = k + 1 + tid; r < rows; r += nt) {
                    T *sr = S + r * srs;
                    const T l = small ? sr[k * scs] / d : sr[k * scs] * rcp;
                    sr[k * scs] = l;
                    const T *sk = S + k * srs;
                    for (int64_t c = k + 1; c < cw; c++)
                        sr[c * scs] = fma(-l, sk[c * scs], sr[c * scs]);
                }
                __syncthreads();
            }

            if (p.chunk > 0) {
                const int total = (int)(rows * cw), r32 = (int)rows, w32 = (int)cw;
                for (int x = tid; x < total; x += nt) {
                    int r = rows_fast ? x % r32 : x / w32, c = rows_fast ? x / r32 : x % w32;
                    A[(c0 + r) * rs + (c0 + c) * cs] = S[r * srs + c];
                }
            }
            /* The panel's columns right of the chunk: U rows by forward substitution with
             * the chunk's unit L, then the rows below lose L * U. */
            const int64_t c1 = c0 + cw, right = jend - c1;
            if (right <= 0)
                continue;
            for (int64_t x = tid; x < right; x += nt) {
                T *col = A + (c1 + x) * cs;
                for (int64_t k = 1; k < kmax; k++) {
                    T v = col[(c0 + k) * rs];
                    for (int64_t q = 0; q < k; q++)
                        v = fma(-S[k * srs + q * scs], col[(c0 + q) * rs], v);
                    col[(c0 + k) * rs] = v;
                }
            }
            __syncthreads();
            const int64_t below = rows - kmax;
            if (!rows_fast && kmax <= ALLOY_CU_LU_CHUNK) {
                /* Row-major: a warp per row, a lane per column (coalesced), the lane's
                 * column of U in registers. */
                const int lane = tid % 32, warp = tid / 32, nwarps = nt / 32;
                for (int64_t c = lane; c < right; c += 32) {
                    T *col = A + (c1 + c) * cs;
                    T u[ALLOY_CU_LU_CHUNK];
#pragma unroll
                    for (int q = 0; q < ALLOY_CU_LU_CHUNK; q++)
                        u[q] = q < kmax ? col[(c0 + q) * rs] : (T)0;
                    for (int64_t r = warp; r < below; r += nwarps) {
                        const T *sr = S + (kmax + r) * srs;
                        T v = col[(c0 + kmax + r) * rs];
#pragma unroll
                        for (int q = 0; q < ALLOY_CU_LU_CHUNK; q++)
                            if (q < kmax)
                                v = fma(-sr[q * scs], u[q], v);
                        col[(c0 + kmax + r) * rs] = v;
                    }
                }
            } else {
                /* Column-major (or a wide chunk): a thread per row. */
                for (int64_t r = tid; r < below; r += nt) {
                    const T *sr = S + (kmax + r) * srs;
                    for (int64_t c = 0; c < right; c++) {
                        T *col = A + (c1 + c) * cs;
                        T v = col[(c0 + kmax + r) * rs];
                        for (int64_t q = 0; q < kmax; q++)
                            v = fma(-sr[q * scs], col[(c0 + q) * rs], v);
                        col[(c0 + kmax + r) * rs] = v;
                    }
                }
            }
            __syncthreads();
        }
        __syncthreads(); /* the next entry reuses the shared memory */
    }
}

/* The panel on a cluster of ALLOY_CU_LU_CLUSTER thread blocks (Hopper, sm_90): the panel's
 * rows are split among the blocks, each keeping its share of every panel column in its own
 * shared memory from load to store, and the blocks pick each pivot together through
 * distributed shared memory with one cluster barrier a column. A tall panel then has the
 * bandwidth and the on-chip space of eight SMs instead of one, where one block would
 * stream it from L2 a column at a time. Same pivots, same FMA order per element as
 * alloy_cu_lu_panel. */
template <typename T> __device__ void alloy_cu_lu_cpanel(const alloy_cu_lu_params &p)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    namespace cg = cooperative_groups;
    cg::cluster_group cluster = cg::this_cluster();
    extern __shared__ __align__(16) unsigned char alloy_cu_lu_smem[];
    __shared__ T red_v[32], best_v[2], prow[ALLOY_CU_LU_PANEL], krow[ALLOY_CU_LU_PANEL];
    __shared__ T cand[2][ALLOY_CU_LU_PANEL], kpub[2][ALLOY_CU_LU_PANEL];
    __shared__ int64_t red_i[32], best_i[2], s_p;
    T *const S = (T *)alloy_cu_lu_smem;
    const int C = ALLOY_CU_LU_CLUSTER, rank = (int)cluster.block_rank();
    const int tid = threadIdx.x, nt = blockDim.x, lane = tid % 32, warp = tid / 32;
    const int64_t m = p.m, j0 = p.j0, jb = p.jb, rows = m - j0, rs = p.rs, cs = p.cs;
    const int64_t rpb = (rows + C - 1) / C, r0 = rank * rpb;
    const int64_t r1 = r0 + rpb < rows ? r0 + rpb : rows;
    const int64_t ld = alloy_cu_lu_ld(jb);
    const bool rows_fast = rs < cs;

    for (int64_t e = blockIdx.y; e < p.batch.count; e += gridDim.y) {
        int64_t off[3];
        alloy_cu_batch_offsets<3>(p.batch, e, off);
        T *A = (T *)p.a + off[0] + j0 * rs + j0 * cs; /* the panel's corner */
        int32_t *piv = (int32_t *)p.pivots + off[1];
        int32_t *info = (int32_t *)p.info + off[2];
        if (j0 == 0 && rank == 0 && tid == 0)
            *info = 0;
        const int mine = r1 > r0 ? (int)(r1 - r0) : 0, jbi = (int)jb, total = mine * jbi;
        /* Eight loads in flight a thread: one at a time, each waits out the memory latency. */
        for (int x0 = tid; x0 < total; x0 += 8 * nt) {
            T v[8];
#pragma unroll
            for (int u = 0; u < 8; u++) {
                const int x = x0 + u * nt;
                const int r = rows_fast ? x % mine : x / jbi, c = rows_fast ? x / mine : x % jbi;
                if (x < total)
                    v[u] = A[(r0 + r) * rs + c * cs];
            }
#pragma unroll
            for (int u = 0; u < 8; u++) {
                const int x = x0 + u * nt;
                const int r = rows_fast ? x % mine : x / jbi, c = rows_fast ? x / mine : x % jbi;
                if (x < total)
                    S[r * ld + c] = v[u];
            }
        }
        cluster.sync();

        for (int64_t k = 0; k < jb; k++) {
            /* Published for the other blocks, double-buffered by k's parity: a buffer is
             * written again two columns later, after a cluster barrier every reader of it
             * has passed. So one cluster barrier a column. */
            const int par = (int)(k & 1);
            const int ok = (int)(k / rpb);
            T bv = (T)-1;
            int64_t bi = INT64_MAX;
            for (int64_t r = (k > r0 ? k : r0) + tid; r < r1; r += nt) {
                T v = fabs(S[(r - r0) * ld + k]);
                if (isnan(v))
                    v = (T)-1;
                alloy_cu_argmax_merge(bv, bi, v, r);
            }
            alloy_cu_warp_argmax(bv, bi);
            if (lane == 0) {
                red_v[warp] = bv;
                red_i[warp] = bi;
            }
            __syncthreads();
            if (warp == 0) {
                const int nw = (nt + 31) / 32;
                bv = lane < nw ? red_v[lane] : (T)-1;
                bi = lane < nw ? red_i[lane] : INT64_MAX;
                alloy_cu_warp_argmax(bv, bi);
                if (lane == 0) {
                    best_v[par] = bv;
                    best_i[par] = bi;
                }
            }
            __syncthreads();
            /* This block's candidate row, and row k from its owner. */
            const int64_t mybest = best_i[par];
            for (int64_t c = tid; c < jb; c += nt) {
                if (mybest != INT64_MAX)
                    cand[par][c] = S[(mybest - r0) * ld + c];
                if (rank == ok)
                    kpub[par][c] = S[(k - r0) * ld + c];
            }
            cluster.sync();
            /* Every block merges the C candidates in the same order: the same pivot. */
            if (warp == 0) {
                bv = lane < C ? *cluster.map_shared_rank(&best_v[par], lane) : (T)-1;
                bi = lane < C ? *cluster.map_shared_rank(&best_i[par], lane) : INT64_MAX;
                alloy_cu_warp_argmax(bv, bi);
                if (lane == 0) {
                    const T diag = cluster.map_shared_rank(&kpub[par][0], ok)[k];
                    s_p = isnan(diag) || bi == INT64_MAX ? k : bi;
                }
            }
            __syncthreads();
            const int64_t pr = s_p;
            const int op = (int)(pr / rpb);
            const T *psrc = pr == k ? cluster.map_shared_rank(&kpub[par][0], ok)
                                    : cluster.map_shared_rank(&cand[par][0], op);
            for (int64_t c = tid; c < jb; c += nt) {
                prow[c] = psrc[c];
                if (pr != k && rank == op)
                    krow[c] = cluster.map_shared_rank(&kpub[par][0], ok)[c];
            }
            __syncthreads();
            const T pv = prow[k];
            if (rank == 0 && tid == 0)
                piv[(j0 + k) * p.piv_stride] = (int32_t)(j0 + pr + 1);
            if (pv == (T)0) {
                if (rank == 0 && tid == 0 && *info == 0)
                    *info = (int32_t)(j0 + k + 1);
                continue; /* an exactly zero column: nothing divided, swapped or updated */
            }
            if (pr != k) { /* nobody reads S remotely: the rows swap in place */
                if (rank == ok)
                    for (int64_t c = tid; c < jb; c += nt)
                        S[(k - r0) * ld + c] = prow[c];
                if (rank == op)
                    for (int64_t c = tid; c < jb; c += nt)
                        S[(pr - r0) * ld + c] = krow[c];
                __syncthreads();
            }
            const bool small = !(fabs(pv) >= alloy_cu_lu_limits<T>::sfmin());
            const T rcp = (T)1 / pv;
            const int ki = (int)k;
            for (int r = (int)((k + 1 > r0 ? k + 1 : r0) - r0) + tid; r < mine; r += nt) {
                T *sr = S + r * (int)ld;
                const T l = small ? sr[ki] / pv : sr[ki] * rcp;
                sr[ki] = l;
#pragma unroll
                for (int c = 0; c < ALLOY_CU_LU_PANEL; c++)
                    if (c > ki && c < jbi)
                        sr[c] = fma(-l, prow[c], sr[c]);
            }
            __syncthreads();
        }

        for (int x = tid; x < total; x += nt) {
            const int r = rows_fast ? x % mine : x / jbi, c = rows_fast ? x / mine : x % jbi;
            A[(r0 + r) * rs + c * cs] = S[r * ld + c];
        }
        cluster.sync(); /* no block leaves (or reloads) while another may still read it */
    }
#else
    (void)p; /* the glue launches clusters only on sm_90 and newer */
#endif
}

/* Matrices of at most 32 x 32, a warp each: lane r holds row r in registers, so a column
 * step is a few shuffles and no barrier (10000 x 32x32 is 2500 blocks of four warps). Rows
 * are never moved between lanes: each lane keeps the row position its data has reached
 * (pos), the interchanges only swap positions, and the rows are stored to their final
 * positions at the end. A column step is then an argmax over the lanes still below the
 * diagonal (ties to the smallest position, LAPACK's first row) and the pivot row's
 * entries right of the diagonal, broadcast. */
template <typename T> __device__ void alloy_cu_lu_warp(const alloy_cu_lu_params &p)
{
    const unsigned full = 0xffffffffu;
    const int lane = threadIdx.x % 32, wpb = blockDim.x / 32;
    const int m = (int)p.m, n = (int)p.n, mn = m < n ? m : n;
    for (int64_t e = (int64_t)blockIdx.x * wpb + threadIdx.x / 32; e < p.batch.count;
         e += (int64_t)gridDim.x * wpb) {
        int64_t off[3];
        alloy_cu_batch_offsets<3>(p.batch, e, off);
        T *A = (T *)p.a + off[0];
        int32_t *piv = (int32_t *)p.pivots + off[1];
        T row[32];
#pragma unroll
        for (int c = 0; c < 32; c++)
            row[c] = lane < m && c < n ? A[lane * p.rs + c * p.cs] : (T)0;
        int pos = lane; /* the row this lane's data sits in now */
        int32_t info = 0;
#pragma unroll
        for (int k = 0; k < 32; k++) {
            if (k >= mn)
                break;
            /* Butterfly argmax over positions k..m-1: every lane ends with the same. */
            T v = fabs(row[k]);
            if (isnan(v))
                v = (T)-1;
            if (pos < k || pos >= m)
                v = (T)-2;
            int bp = pos;
#pragma unroll
            for (int o = 16; o > 0; o /= 2) {
                T ov = __shfl_xor_sync(full, v, o);
                int op = __shfl_xor_sync(full, bp, o);
                if (ov > v || (ov == v && op < bp)) {
                    v = ov;
                    bp = op;
                }
            }
            const int lk = __ffs(__ballot_sync(full, pos == k)) - 1; /* holds position k */
            const int pr = isnan(__shfl_sync(full, row[k], lk)) ? k : bp;
            const int lp = __ffs(__ballot_sync(full, pos == pr)) - 1; /* holds position pr */
            const T pv = __shfl_sync(full, row[k], lp);
            if (lane == 0)
                piv[k * p.piv_stride] = pr + 1;
            if (pv == (T)0) {
                if (info == 0)
                    info = k + 1; /* an exactly zero column: nothing swapped or divided */
                continue;
            }
            if (lane == lp)
                pos = k;
            else if (lane == lk)
                pos = pr;
            const bool below = pos > k && pos < m;
            const bool small = !(fabs(pv) >= alloy_cu_lu_limits<T>::sfmin());
            const T l = small ? row[k] / pv : row[k] * ((T)1 / pv);
            if (below)
                row[k] = l;
#pragma unroll
            for (int c = k + 1; c < 32; c++) {
                if (c < n) {
                    const T u = __shfl_sync(full, row[c], lp);
                    if (below)
                        row[c] = fma(-l, u, row[c]);
                }
            }
        }
#pragma unroll
        for (int c = 0; c < 32; c++)
            if (lane < m && c < n)
                A[pos * p.rs + c * p.cs] = row[c];
        if (lane == 0)
            ((int32_t *)p.info)[off[2]] = info;
    }
}

/* info = 0 for every entry of an lu_factor with no columns or rows to factor. */
__device__ __forceinline__ void alloy_cu_lu_info_zero(const alloy_cu_lu_params &p)
{
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < p.batch.count;
         e += (int64_t)gridDim.x * blockDim.x) {
        int64_t off[3];
        alloy_cu_batch_offsets<3>(p.batch, e, off);
        ((int32_t *)p.info)[off[2]] = 0;
    }
}

#define ALLOY_CU_LU_KERNELS(name, T, CLUSTER_THREADS)                                              \
    extern "C" __global__ void __launch_bounds__(1024) alloy_lu_panel_##name(                     \
        const alloy_cu_lu_params p)                                                                \
    {                                                                                              \
        if (!alloy_cu_guarded(p.guard))                                                            \
            alloy_cu_lu_panel<T>(p);                                                               \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(128) alloy_lu_warp_##name(                       \
        const alloy_cu_lu_params p)                                                                \
    {                                                                                              \
        if (!alloy_cu_guarded(p.guard))                                                            \
            alloy_cu_lu_warp<T>(p);                                                                \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(CLUSTER_THREADS)                                 \
        alloy_lu_cpanel_##name(const alloy_cu_lu_params p)                                         \
    {                                                                                              \
        /* every block of a cluster reads the same guard: all return, or none */                  \
        if (!alloy_cu_guarded(p.guard))                                                            \
            alloy_cu_lu_cpanel<T>(p);                                                              \
    }

extern "C" __global__ void alloy_lu_info_zero(const alloy_cu_lu_params p)
{
    if (!alloy_cu_guarded(p.guard))
        alloy_cu_lu_info_zero(p);
}

#endif
