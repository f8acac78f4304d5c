/* f32 and f64 matmul on the CUDA cores, and f32 through tf32 tensor cores when the
 * descriptor allows it. Both read A and B with any strides through a register-staged,
 * double-buffered loader that walks the contiguous dimension fastest (coalesced for row-
 * and column-major views alike) and stores k-major tiles: As[k][m], Bs[k][n].
 *
 * SIMT: each element of C is the CPU microkernel's chain exactly: fma(a, b, acc) from 0
 * over k in order, no padding steps, then the same epilogue, so f32 and f64 results are
 * bitwise those of the CPU backend. tf32: mma.sync m16n8k8 in k order, fixed by shape. */
#ifndef ALLOY_CUDA_KERNELS_MATMUL_SIMT_CUH
#define ALLOY_CUDA_KERNELS_MATMUL_SIMT_CUH

#include "common.cuh"

/* Loads the BM x BK tiles of A (or the BK x BN tiles of B: ROWS = BN, s_mn and s_k swapped)
 * into registers, a tile of k at a time. Element `it` of a thread sits at tile row
 * rr0 + it * drr and tile k kk0 + it * dkk (one of the two steps is 0: the loader walks the
 * operand's contiguous dimension fastest), so its address is p + it * step + kt * kstep:
 * the pointers and checks are worked out once, not per load (the per-load 64-bit index
 * math and bounds were half the kernel's instructions). */
template <typename T, int ROWS, int BK, int THREADS> struct alloy_cu_simt_loader {
    static_assert(THREADS % BK == 0 && THREADS % ROWS == 0, "whole rows and ks a pass");
    enum { N = ROWS * BK / THREADS };
    const T *p;
    int64_t step, kstep;
    int kk0, dkk, drr, rows_left;
    __device__ __forceinline__ void init(const T *src, int64_t mn0, int64_t mn, int64_t s_mn,
                                         int64_t s_k, int k_fast)
    {
        const int q = threadIdx.x;
        const int rr0 = k_fast ? q / BK : q % ROWS;
        kk0 = k_fast ? q % BK : q / ROWS;
        drr = k_fast ? THREADS / BK : 0;
        dkk = k_fast ? 0 : THREADS / ROWS;
        const int64_t left = mn - mn0 - rr0;
        rows_left = left > ROWS ? ROWS + 1 : (int)left;
        p = src + (mn0 + rr0) * s_mn + kk0 * s_k; /* dereferenced only where in range */
        step = drr * s_mn + dkk * s_k;
        kstep = BK * s_k;
    }
    /* Tile kt of k; FULL: all BK of its ks exist (else those from k_left on read as 0). */
    template <bool FULL> __device__ __forceinline__ void fetch(T *v, int64_t kt, int64_t k_left)
    {
        const T *pk = p + kt * kstep;
#pragma unroll
        for (int it = 0; it < N; it++) {
            const bool ok = it * drr < rows_left && (FULL || kk0 + it * dkk < k_left);
            v[it] = ok ? pk[it * step] : (T)0;
        }
    }
    /* Tile kt of a k extent K: without the k checks when the tile is whole. */
    __device__ __forceinline__ void fetch_tile(T *v, int64_t kt, int64_t K)
    {
        if ((kt + 1) * BK <= K)
            fetch<true>(v, kt, 0);
        else
            fetch<false>(v, kt, K - kt * BK);
    }
};

template <typename T, int ROWS, int BK, int THREADS, int LD>
__device__ __forceinline__ void alloy_cu_simt_store(T *tile, const T *v, int k_fast)
{
#pragma unroll
    for (int it = 0; it < ROWS * BK / THREADS; it++) {
        const int q = threadIdx.x + it * THREADS;
        const int kk = k_fast ? q % BK : q / ROWS;
        const int rr = k_fast ? q / BK : q % ROWS;
        tile[kk * LD + rr] = v[it];
    }
}

/* 16 x 16 threads; thread (ty, tx) owns rows {ty*TM/2 + i, BM/2 + ty*TM/2 + i} and the
 * same split of columns, so each half is one vector shared-memory read (16 bytes; 8 for
 * the 64 x 64 f32 tiles). */
template <typename T, int TM, int TN> struct alloy_cu_simt_vec;
template <> struct alloy_cu_simt_vec<float, 8, 8> { typedef float4 type; };
template <> struct alloy_cu_simt_vec<float, 4, 4> { typedef float2 type; };
template <> struct alloy_cu_simt_vec<double, 4, 4> { typedef double2 type; };
__device__ __forceinline__ void alloy_cu_unpack(float *d, float4 v)
{
    d[0] = v.x;
    d[1] = v.y;
    d[2] = v.z;
    d[3] = v.w;
}
__device__ __forceinline__ void alloy_cu_unpack(float *d, float2 v)
{
    d[0] = v.x;
    d[1] = v.y;
}
__device__ __forceinline__ void alloy_cu_unpack(double *d, double2 v)
{
    d[0] = v.x;
    d[1] = v.y;
}

template <typename T, int TM, int TN>
__device__ __forceinline__ void alloy_cu_mm_simt(const alloy_cu_matmul_params &p)
{
    const int THREADS = ALLOY_CU_SIMT_THREADS, BK = 8;
    const int BM = 16 * TM, BN = 16 * TN;
    const int LDA = BM + 16 / (int)sizeof(T), LDB = BN + 16 / (int)sizeof(T); /* keep 16B rows */
    typedef typename alloy_cu_simt_vec<T, TM, TN>::type V;
    static_assert(TM / 2 * sizeof(T) == sizeof(V) && TN / 2 * sizeof(T) == sizeof(V),
                  "one V per half");
    /* One array, so the epilogue can stage a quarter of C across both tiles. */
    __shared__ __align__(16) T smem[2 * BK * LDA + 2 * BK * LDB];
#define As(buf) (smem + (buf) * (BK * LDA))
#define Bs(buf) (smem + 2 * BK * LDA + (buf) * (BK * LDB))
    static_assert((BM / 2) * (BN / 2) <= 2 * BK * LDA + 2 * BK * LDB, "staging fits");
    if (alloy_cu_guarded(p.guard))
        return;
    const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
    int64_t tm, tn;
    alloy_cu_tile_coords(blockIdx.x, p.tiles_m, p.tiles_n, &tm, &tn);
    const int64_t m0 = tm * BM, n0 = tn * BN;
    const int64_t M = p.m, N = p.n, K = p.k;
    const size_t es = sizeof(T);

    for (int64_t bz = blockIdx.y; bz < p.batch.count; bz += gridDim.y) {
        int64_t off[3];
        alloy_cu_batch_offsets<3>(p.batch, bz, off);
        const T *A = (const T *)p.a + off[0];
        const T *B = (const T *)p.b + off[1];
        const uint64_t C = p.c + (uint64_t)off[2] * es;
        T acc[TM][TN];
#pragma unroll
        for (int i = 0; i < TM; i++)
#pragma unroll
            for (int j = 0; j < TN; j++)
                acc[i][j] = 0;
        T ra[BM * BK / THREADS], rb[BN * BK / THREADS];
        alloy_cu_simt_loader<T, BM, BK, THREADS> la;
        alloy_cu_simt_loader<T, BN, BK, THREADS> lb;
        la.init(A, m0, M, p.a_rs, p.a_cs, p.a_k_fast);
        lb.init(B, n0, N, p.b_cs, p.b_rs, p.b_k_fast);
        const int64_t ktiles = (K + BK - 1) / BK, kfull = K / BK;
        if (ktiles > 0) {
            la.fetch_tile(ra, 0, K);
            lb.fetch_tile(rb, 0, K);
            alloy_cu_simt_store<T, BM, BK, THREADS, LDA>(As(0), ra, p.a_k_fast);
            alloy_cu_simt_store<T, BN, BK, THREADS, LDB>(Bs(0), rb, p.b_k_fast);
        }
        __syncthreads();
        /* One k step: the thread's TM x TN chains each take one FMA. */
#define ALLOY_CU_SIMT_STEP(buf, kk)                                                                \
    {                                                                                              \
        T a[TM], b[TN];                                                                            \
        const V *pa = (const V *)(As(buf) + (kk)*LDA);                                             \
        const V *pb = (const V *)(Bs(buf) + (kk)*LDB);                                             \
        _Pragma("unroll") for (int h = 0; h < 2; h++)                                              \
        {                                                                                          \
            alloy_cu_unpack(&a[h * TM / 2], pa[(h * BM / 2 + ty * TM / 2) / (TM / 2)]);            \
            alloy_cu_unpack(&b[h * TN / 2], pb[(h * BN / 2 + tx * TN / 2) / (TN / 2)]);            \
        }                                                                                          \
        _Pragma("unroll") for (int i = 0; i < TM; i++)                                             \
            _Pragma("unroll") for (int j = 0; j < TN; j++) acc[i][j] = fma(a[i], b[j], acc[i][j]); \
    }
        for (int64_t kt = 0; kt < ktiles; kt++) {
            const int buf = (int)(kt & 1);
            const bool more = kt + 1 < ktiles;
            if (more) { /* the next tile's loads fly while this one is multiplied */
                la.fetch_tile(ra, kt + 1, K);
                lb.fetch_tile(rb, kt + 1, K);
            }
            if (kt < kfull) { /* every step of the tile: no checks between them */
#pragma unroll
                for (int kk = 0; kk < BK; kk++)
                    ALLOY_CU_SIMT_STEP(buf, kk)
            } else { /* the last, partial tile: no padding steps, so the chain is the CPU's */
                const int kmax = (int)(K - kt * BK);
#pragma unroll
                for (int kk = 0; kk < BK; kk++)
                    if (kk < kmax)
                        ALLOY_CU_SIMT_STEP(buf, kk)
            }
            if (more) {
                alloy_cu_simt_store<T, BM, BK, THREADS, LDA>(As(buf ^ 1), ra, p.a_k_fast);
                alloy_cu_simt_store<T, BN, BK, THREADS, LDB>(Bs(buf ^ 1), rb, p.b_k_fast);
            }
            __syncthreads();
        }
#undef ALLOY_CU_SIMT_STEP
        /* C a quarter at a time through shared memory, written by one rolled loop (one copy
         * of the epilogue's code; consecutive threads, consecutive columns). */
#pragma unroll
        for (int hi = 0; hi < 2; hi++)
#pragma unroll
            for (int hj = 0; hj < 2; hj++) {
#pragma unroll
                for (int i = 0; i < TM / 2; i++)
#pragma unroll
                    for (int j = 0; j < TN / 2; j++)
                        smem[(ty * (TM / 2) + i) * (BN / 2) + tx * (TN / 2) + j] =
                            acc[hi * (TM / 2) + i][hj * (TN / 2) + j];
                __syncthreads();
                const int64_t r0 = m0 + hi * (BM / 2), c0 = n0 + hj * (BN / 2);
#pragma unroll 1
                for (int idx = threadIdx.x; idx < (BM / 2) * (BN / 2); idx += THREADS) {
                    const int r = idx / (BN / 2), c = idx % (BN / 2);
                    if (r0 + r < M && c0 + c < N) {
                        if (sizeof(T) == 8)
                            alloy_cu_epilogue_f64(p, C, r0 + r, c0 + c, (double)smem[idx]);
                        else
                            alloy_cu_epilogue_f32(p, C, r0 + r, c0 + c, (float)smem[idx]);
                    }
                }
                __syncthreads();
            }
    }
}

#undef As
#undef Bs

/* tf32: 128 x 128 x 16 tiles, 8 warps of 64 x 32; fragments read with scalar shared
 * loads from row-padded k-major tiles (row stride = 8 mod 32 words: conflict free). */
__device__ __forceinline__ void alloy_cu_mm_tf32(const alloy_cu_matmul_params &p)
{
    const int THREADS = ALLOY_CU_SIMT_THREADS, BK = 16;
    const int BM = ALLOY_CU_TF32_BM, BN = ALLOY_CU_TF32_BN, LDA = BM + 8, LDB = BN + 8;
    const int MI = 4, NI = 4;
    __shared__ __align__(16) float smem[2 * BK * LDA + 2 * BK * LDB];
#define As(buf) (smem + (buf) * (BK * LDA))
#define Bs(buf) (smem + 2 * BK * LDA + (buf) * (BK * LDB))
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int wm = warp / 4, wn = warp % 4, g = lane >> 2, t = lane & 3;
    int64_t tm, tn;
    alloy_cu_tile_coords(blockIdx.x, p.tiles_m, p.tiles_n, &tm, &tn);
    const int64_t m0 = tm * BM, n0 = tn * BN;
    const int64_t M = p.m, N = p.n, K = p.k;

    for (int64_t bz = blockIdx.y; bz < p.batch.count; bz += gridDim.y) {
        int64_t off[3];
        alloy_cu_batch_offsets<3>(p.batch, bz, off);
        const float *A = (const float *)p.a + off[0];
        const float *B = (const float *)p.b + off[1];
        const uint64_t C = p.c + (uint64_t)off[2] * 4;
        float acc[MI][NI][4];
#pragma unroll
        for (int i = 0; i < MI; i++)
#pragma unroll
            for (int j = 0; j < NI; j++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    acc[i][j][e] = 0.0f;
        float ra[BM * BK / THREADS], rb[BN * BK / THREADS];
        alloy_cu_simt_loader<float, BM, BK, THREADS> la;
        alloy_cu_simt_loader<float, BN, BK, THREADS> lb;
        la.init(A, m0, M, p.a_rs, p.a_cs, p.a_k_fast);
        lb.init(B, n0, N, p.b_cs, p.b_rs, p.b_k_fast);
        const int64_t ktiles = (K + BK - 1) / BK;
        if (ktiles > 0) {
            la.fetch_tile(ra, 0, K);
            lb.fetch_tile(rb, 0, K);
            alloy_cu_simt_store<float, BM, BK, THREADS, LDA>(As(0), ra, p.a_k_fast);
            alloy_cu_simt_store<float, BN, BK, THREADS, LDB>(Bs(0), rb, p.b_k_fast);
        }
        __syncthreads();
        for (int64_t kt = 0; kt < ktiles; kt++) {
            const int buf = (int)(kt & 1);
            const bool more = kt + 1 < ktiles;
            if (more) {
                la.fetch_tile(ra, kt + 1, K);
                lb.fetch_tile(rb, kt + 1, K);
            }
            const float *tA = As(buf), *tB = Bs(buf);
#pragma unroll
            for (int ks = 0; ks < BK; ks += 8) {
                uint32_t af[MI][4], bf[NI][2];
#pragma unroll
                for (int mi = 0; mi < MI; mi++) {
                    const int mb = wm * 64 + mi * 16 + g;
                    af[mi][0] = alloy_cu_to_tf32(tA[(ks + t) * LDA + mb]);
                    af[mi][1] = alloy_cu_to_tf32(tA[(ks + t) * LDA + mb + 8]);
                    af[mi][2] = alloy_cu_to_tf32(tA[(ks + t + 4) * LDA + mb]);
                    af[mi][3] = alloy_cu_to_tf32(tA[(ks + t + 4) * LDA + mb + 8]);
                }
#pragma unroll
                for (int ni = 0; ni < NI; ni++) {
                    const int nb = wn * 32 + ni * 8 + g;
                    bf[ni][0] = alloy_cu_to_tf32(tB[(ks + t) * LDB + nb]);
                    bf[ni][1] = alloy_cu_to_tf32(tB[(ks + t + 4) * LDB + nb]);
                }
#pragma unroll
                for (int mi = 0; mi < MI; mi++)
#pragma unroll
                    for (int ni = 0; ni < NI; ni++)
                        alloy_cu_mma_1688_tf32(acc[mi][ni], af[mi], bf[ni]);
            }
            if (more) {
                alloy_cu_simt_store<float, BM, BK, THREADS, LDA>(As(buf ^ 1), ra, p.a_k_fast);
                alloy_cu_simt_store<float, BN, BK, THREADS, LDB>(Bs(buf ^ 1), rb, p.b_k_fast);
            }
            __syncthreads();
        }
        /* Each warp stages 16 rows of its 64 x 32 tile at a time (as matmul_tc.cuh). */
        const int SLD = 32 + 4;
        float *stage = smem + warp * 16 * SLD;
        static_assert(8 * 16 * (32 + 4) <= 2 * BK * LDA + 2 * BK * LDB, "staging fits");
#pragma unroll
        for (int mi = 0; mi < MI; mi++) {
#pragma unroll
            for (int ni = 0; ni < NI; ni++)
#pragma unroll
                for (int h = 0; h < 2; h++)
#pragma unroll
                    for (int e = 0; e < 2; e++)
                        stage[(h * 8 + g) * SLD + ni * 8 + t * 2 + e] = acc[mi][ni][h * 2 + e];
            __syncwarp();
            const int64_t r0 = m0 + wm * 64 + mi * 16, c0 = n0 + wn * 32;
#pragma unroll 1
            for (int idx = lane; idx < 16 * 32; idx += 32) {
                const int r = idx / 32, c = idx % 32;
                if (r0 + r < M && c0 + c < N)
                    alloy_cu_epilogue_f32(p, C, r0 + r, c0 + c, stage[r * SLD + c]);
            }
            __syncwarp();
        }
        __syncthreads();
    }
}

#undef As
#undef Bs

/* Two blocks an SM: left free, the compiler takes 171 registers and the kernel runs at
 * 25.5 TFLOPS (4096^3, H100) against 29.6 held to 128 (a few bytes spilled). */
extern "C" __global__ void __launch_bounds__(ALLOY_CU_SIMT_THREADS, 2)
    alloy_mm_f32(const alloy_cu_matmul_params p)
{
    alloy_cu_mm_simt<float, 8, 8>(p);
}
/* The same chains on 64 x 64 tiles: four times the blocks for products whose 128 x 128
 * tiling leaves SMs idle (the solvers' updates with few right-hand sides). */
extern "C" __global__ void __launch_bounds__(ALLOY_CU_SIMT_THREADS)
    alloy_mm_f32_s(const alloy_cu_matmul_params p)
{
    alloy_cu_mm_simt<float, 4, 4>(p);
}
extern "C" __global__ void __launch_bounds__(ALLOY_CU_SIMT_THREADS)
    alloy_mm_f64(const alloy_cu_matmul_params p)
{
    alloy_cu_mm_simt<double, 4, 4>(p);
}
extern "C" __global__ void __launch_bounds__(ALLOY_CU_SIMT_THREADS)
    alloy_mm_tf32(const alloy_cu_matmul_params p)
{
    if (!alloy_cu_guarded(p.guard))
        alloy_cu_mm_tf32(p);
}

#endif
