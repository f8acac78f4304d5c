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

/* A triangle of a narrow B in one launch: each block takes 4 E columns of B and walks the
 * rows down in steps of 64 (left-looking substitution). At each step every element takes
 * its updates from every solved row above, in increasing column order: first from the rows
 * of earlier steps, 64 columns of L at a time through shared memory (a thread per element,
 * the next two tiles' loads in flight during this one's FMAs), then from this step's own
 * rows (a warp per column, each solved row handed down by a shuffle), then the division.
 * So every element is the CPU's substitution chain exactly, and the ~n / 32 launches of
 * the recursion below it (each a handful of blocks for a few right-hand sides) become one.
 * E = 2 (8 columns a block) was 3-5% slower than E = 1 on the H100: fewer blocks for the
 * same latency-bound steps. */
#define ALLOY_CU_TRSM_SUB_RB 64 /* rows a step, and columns of L a tile */
template <typename T, int E> __device__ void alloy_cu_trsm_subst(const alloy_cu_trsm_params &p)
{
    const int RB = ALLOY_CU_TRSM_SUB_RB, CB = 4 * E, TH = ALLOY_CU_TRSM_SUB_THREADS;
    const int PER = RB * RB / TH; /* tile elements a thread loads */
    static_assert(TH == RB * 4 && RB * CB == E * TH, "four threads a row, E elements of X each");
    static_assert(RB == 64 && CB <= TH / 32, "a warp a column, two rows a lane");
    __shared__ T sL[RB][RB + 1];
    __shared__ T sX[RB][CB];
    if (alloy_cu_guarded(p.guard))
        return;
    const int tid = threadIdx.x, i = tid / 4, cp = tid % 4;
    const int64_t n = p.rows, c0 = (int64_t)blockIdx.x * CB;
    const bool l_cols_fast = llabs(p.a_cs) <= llabs(p.a_rs);
    for (int64_t e = blockIdx.y; e < p.batch.count; e += gridDim.y) {
        int64_t off[2];
        alloy_cu_batch_offsets<2>(p.batch, e, off);
        const T *L = (const T *)p.a + off[0];
        T *B = (T *)p.b + off[1];
        for (int64_t j0 = 0; j0 < n; j0 += RB) {
            const int rb = n - j0 < RB ? (int)(n - j0) : RB;
            const bool row = i < rb;
            T v[E];
#pragma unroll
            for (int u = 0; u < E; u++) {
                const int64_t c = c0 + cp + 4 * u;
                v[u] = 0;
                if (row && c < p.ncols) {
                    const T x = B[(j0 + i) * p.b_rs + c * p.b_cs];
                    v[u] = p.scale ? (T)p.alpha * x : x;
                }
            }
            /* rows of earlier steps: full tiles of RB columns of L, rows j0..j0+rb, two
             * tiles' loads in flight (register sets 0 and 1 in turn) while one multiplies */
            T w0[PER], x0[E], w1[PER], x1[E];
#define ALLOY_CU_SUBST_FETCH(w, xs, k0)                                                            \
    do {                                                                                           \
        const bool dg = (k0) == j0; /* the diagonal block: its triangle only, no X */              \
        _Pragma("unroll") for (int u = 0; u < PER; u++)                                            \
        {                                                                                          \
            const int x = tid + u * TH;                                                            \
            const int r = l_cols_fast ? x / RB : x % RB, q = l_cols_fast ? x % RB : x / RB;        \
            const bool in = r < rb && (!dg || q < r || (q == r && !p.unit));                       \
            w[u] = in ? L[(j0 + r) * p.a_rs + ((k0) + q) * p.a_cs] : (T)0;                         \
        }                                                                                          \
        _Pragma("unroll") for (int u = 0; u < E; u++)                                              \
        {                                                                                          \
            const int x = tid + u * TH, q = x / CB, cc = x % CB;                                   \
            xs[u] = !dg && c0 + cc < p.ncols ? B[((k0) + q) * p.b_rs + (c0 + cc) * p.b_cs] : (T)0; \
        }                                                                                          \
    } while (0)
#define ALLOY_CU_SUBST_STORE_L(w)                                                                  \
    _Pragma("unroll") for (int u = 0; u < PER; u++)                                                \
    {                                                                                              \
        const int x = tid + u * TH;                                                                \
        const int r = l_cols_fast ? x / RB : x % RB, q = l_cols_fast ? x % RB : x / RB;            \
        sL[r][q] = w[u];                                                                           \
    }
#define ALLOY_CU_SUBST_TILE(w, xs, k0)                                                             \
    do {                                                                                           \
        ALLOY_CU_SUBST_STORE_L(w)                                                                  \
        _Pragma("unroll") for (int u = 0; u < E; u++)                                              \
            sX[(tid + u * TH) / CB][(tid + u * TH) % CB] = xs[u];                                  \
        __syncthreads();                                                                           \
        if ((k0) + 2 * RB <= j0) /* this set's next tile flies during these FMAs */                \
            ALLOY_CU_SUBST_FETCH(w, xs, (k0) + 2 * RB);                                            \
        if (row) {                                                                                 \
            _Pragma("unroll 8") for (int q = 0; q < RB; q++)                                       \
            {                                                                                      \
                const T l = sL[i][q];                                                              \
                _Pragma("unroll") for (int u = 0; u < E; u++) v[u] =                               \
                    fma(-l, sX[q][cp + 4 * u], v[u]);                                              \
            }                                                                                      \
        }                                                                                          \
        __syncthreads();                                                                           \
    } while (0)
            /* tiles 0, 1, ... of the pipeline: j0 / RB off-diagonal ones, then the diagonal
             * block's triangle, whose loads so fly during the last tiles' FMAs */
            ALLOY_CU_SUBST_FETCH(w0, x0, 0);
            if (RB <= j0)
                ALLOY_CU_SUBST_FETCH(w1, x1, RB);
            for (int64_t k0 = 0; k0 < j0; k0 += 2 * RB) {
                ALLOY_CU_SUBST_TILE(w0, x0, k0);
                if (k0 + RB < j0)
                    ALLOY_CU_SUBST_TILE(w1, x1, k0 + RB);
            }
            /* this step's own rows: the diagonal block's triangle into shared memory... */
            if ((j0 / RB) % 2 == 0) {
                ALLOY_CU_SUBST_STORE_L(w0)
            } else {
                ALLOY_CU_SUBST_STORE_L(w1)
            }
#undef ALLOY_CU_SUBST_TILE
#undef ALLOY_CU_SUBST_STORE_L
#undef ALLOY_CU_SUBST_FETCH
            /* ...solved by a warp per column: lane l holds rows l and l + 32; at step t the
             * lane holding row t divides and hands x_t to the others by a shuffle, and the
             * rows below take their FMAs from it (no block barrier a step) */
#pragma unroll
            for (int u = 0; u < E; u++)
                if (row)
                    sX[i][cp + 4 * u] = v[u];
            __syncthreads();
            const int warp = tid / 32, lane = tid % 32;
            if (warp < CB) {
                const int64_t c = c0 + warp;
                T y0 = lane < rb ? sX[lane][warp] : (T)0;
                T y1 = lane + 32 < rb ? sX[lane + 32][warp] : (T)0;
                for (int t = 0; t < rb; t++) {
                    T xt;
                    if (t < 32) {
                        if (lane == t && !p.unit)
                            y0 = y0 / sL[t][t];
                        xt = __shfl_sync(0xffffffffu, y0, t);
                    } else {
                        if (lane == t - 32 && !p.unit)
                            y1 = y1 / sL[t][t];
                        xt = __shfl_sync(0xffffffffu, y1, t - 32);
                    }
                    if (lane > t && lane < rb)
                        y0 = fma(-sL[lane][t], xt, y0);
                    if (lane + 32 > t && lane + 32 < rb)
                        y1 = fma(-sL[lane + 32][t], xt, y1);
                }
                if (c < p.ncols) {
                    if (lane < rb)
                        B[(j0 + lane) * p.b_rs + c * p.b_cs] = y0;
                    if (lane + 32 < rb)
                        B[(j0 + lane + 32) * p.b_rs + c * p.b_cs] = y1;
                }
            }
            /* this step's rows are read back as X by the next steps (this block wrote them:
             * the barrier orders global memory within the block) */
            __syncthreads();
        }
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
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(ALLOY_CU_TRSM_SUB_THREADS)                       \
        alloy_trsm_subst_##name(const alloy_cu_trsm_params p)                                      \
    {                                                                                              \
        alloy_cu_trsm_subst<T, ALLOY_CU_TRSM_SUB_COLS / 4>(p);                                     \
    }

#endif
