/* f16/bf16 matmul on tensor cores: mma.sync m16n8k16 with f32 accumulation (sm_80+).
 *
 * A block computes a BM x BN tile of C for each batch entry it is given, marching over K in
 * steps of BK (32 or 64) through a STAGES-deep cp.async ring in shared memory. Each operand tile
 * is stored with its contiguous global dimension contiguous in shared memory, in 16-byte
 * chunks XOR-swizzled by row so that ldmatrix (plain or .trans) reads 8 rows without bank
 * conflicts:
 *   K-major tile (A row-major / B column-major): BM or BN rows of BK / 8 chunks; chunk c
 *     of row r sits at (c ^ ((r >> 1) & 3)) for 4 chunks, (c ^ (r & 7)) for 8.
 *   MN-major tile (A column-major / B row-major): 32 rows (k) of BM/8 or BN/8 chunks;
 *     chunk c of row r sits at (c ^ (r & 7)).
 * VEC: every chunk is 16 aligned bytes in global memory (contiguous dimension stride 1,
 * leading stride and batch strides multiples of 8, base 16-byte aligned): cp.async with
 * zero fill at the edges. Otherwise each chunk is gathered element by element with any
 * strides (slow, but correct for every view).
 *
 * Every element of C is one chain of mma instructions over k in order, fixed by the shape,
 * so the result does not depend on the grid or on other work. */
#ifndef ALLOY_CUDA_KERNELS_MATMUL_TC_CUH
#define ALLOY_CUDA_KERNELS_MATMUL_TC_CUH

#include "common.cuh"

template <int BM, int BN, int WARPS_M, int WARPS_N, int BK_, int STAGES> struct alloy_cu_tc_shape {
    static const int BK = BK_;
    static const int THREADS = WARPS_M * WARPS_N * 32;
    static const int WTM = BM / WARPS_M, WTN = BN / WARPS_N; /* warp tile */
    static const int MI = WTM / 16, NI = WTN / 8;
    static const int A_ELEMS = BM * BK, B_ELEMS = BN * BK; /* halves per stage */
    static const int A_CHUNKS = A_ELEMS / 8, B_CHUNKS = B_ELEMS / 8;
    static_assert(WTM % 16 == 0 && WTN % 16 == 0, "warp tile must be whole mma tiles");
    static_assert(A_CHUNKS % THREADS == 0 && B_CHUNKS % THREADS == 0, "even tile loads");
    static_assert(BM >= 64 && BN >= 64, "MN-major swizzle needs 8 chunks per row");
    static_assert(BK == 32 || BK == 64, "K-major swizzles exist for 4 and 8 chunks a row");
    static_assert(WARPS_M * WARPS_N * 16 * (WTN + 4) * 4 <= STAGES * (A_ELEMS + B_ELEMS) * 2,
                  "the epilogue's staging fits in the pipeline's shared memory");
};

/* Half offset of chunk c of row r in a K-major tile (BK / 8 chunks a row: 4 are swizzled by
 * row pairs, 8 by rows) or an MN-major one. */
template <int BK> __device__ __forceinline__ int alloy_cu_sw_k(int r, int c)
{
    return BK == 32 ? r * 32 + ((c ^ ((r >> 1) & 3)) << 3) : r * BK + ((c ^ (r & 7)) << 3);
}
template <int ROW_HALVES> __device__ __forceinline__ int alloy_cu_sw_mn(int r, int c)
{
    return r * ROW_HALVES + ((c ^ (r & 7)) << 3);
}

/* The row-dependent XOR of a K-major tile's swizzle (see alloy_cu_sw_k). */
template <int BK> __device__ __forceinline__ int alloy_cu_sw_f(int r)
{
    return BK == 32 ? (r >> 1) & 3 : r & 7;
}

/* The VEC loader with its addressing worked out once per block: a thread's chunks of one
 * operand tile are `IT` chunks RS shared-memory rows apart, which keeps the swizzle's XOR
 * (RS is a multiple of 8 rows), so each k-tile costs one pointer update and one validity
 * test per chunk. */
template <bool KMAJ, int ROWS_MN, int BK, int THREADS> struct alloy_cu_tc_vec_loader {
    static const int CPR = KMAJ ? BK / 8 : ROWS_MN / 8; /* chunks per shared-memory row */
    static const int RS = THREADS / CPR;                  /* rows between a thread's chunks */
    static const int IT = (KMAJ ? ROWS_MN : BK) / RS;     /* chunks per thread */
    static const int ROWB = (KMAJ ? BK : ROWS_MN) * 2;    /* bytes per shared-memory row */
    static_assert(THREADS % CPR == 0 && RS % 8 == 0 && IT >= 1, "loader shape");
    const uint16_t *base; /* the operand's batch entry (a valid address for empty copies) */
    const uint16_t *g;    /* the thread's first chunk at k = 0 */
    int64_t git;          /* elements between the thread's chunks */
    int64_t gk;           /* elements per unit of k */
    int64_t lim_rows;     /* KMAJ: valid MN rows from the first; else valid k rows (K - r0) */
    int64_t lim_cols;     /* KMAJ: K - c*8; else valid MN elements of the chunk (0..8) */
    uint32_t soff;        /* the first chunk's byte offset in a stage */

    __device__ __forceinline__ void init(const uint16_t *src, int64_t mn0, int64_t mn, int64_t k,
                                         int64_t s_mn, int64_t s_k)
    {
        const int r0 = (int)threadIdx.x / CPR, c = (int)threadIdx.x % CPR;
        base = src;
        if (KMAJ) {
            soff = (uint32_t)alloy_cu_sw_k<BK>(r0, c) * 2;
            g = src + (mn0 + r0) * s_mn + c * 8;
            git = RS * s_mn;
            gk = 1;
            lim_rows = mn - (mn0 + r0);
            lim_cols = k - c * 8;
        } else {
            soff = (uint32_t)alloy_cu_sw_mn<ROWS_MN>(r0, c) * 2;
            g = src + r0 * s_k + mn0 + c * 8;
            git = RS * s_k;
            gk = s_k;
            lim_rows = k - r0;
            const int64_t left = mn - (mn0 + c * 8);
            lim_cols = left < 0 ? 0 : left > 8 ? 8 : left;
        }
    }

    __device__ __forceinline__ void load(uint32_t stage, int64_t k0) const
    {
        const uint16_t *gt = g + k0 * gk;
        int64_t left = lim_cols;
        if (KMAJ) {
            left = lim_cols - k0;
            left = left < 0 ? 0 : left > 8 ? 8 : left;
        }
#pragma unroll
        for (int it = 0; it < IT; it++) {
            const bool ok = KMAJ ? it * RS < lim_rows : k0 + it * RS < lim_rows;
            const int bytes = ok ? (int)left * 2 : 0;
            alloy_cu_cp_async16(stage + soff + it * RS * ROWB, bytes ? gt + it * git : base, bytes);
        }
    }
};

/* Loads one operand tile (rows x 8-half chunks) into shared memory element by element,
 * for views whose chunks are not 16 aligned bytes (any strides).
 * KMAJ: tile rows are the operand's MN index (extent `mn`), chunks run along k.
 * Otherwise rows are k and chunks run along MN. `s_mn` is the stride between MN
 * neighbours and `s_k` between k neighbours, in elements. */
template <bool KMAJ, int ROWS_MN, int BK, int CHUNKS, int THREADS>
__device__ __forceinline__ void alloy_cu_tc_gather(uint16_t *dst, const uint16_t *src, int64_t mn0,
                                                 int64_t k0, int64_t mn, int64_t k, int64_t s_mn,
                                                 int64_t s_k)
{
#pragma unroll
    for (int it = 0; it < CHUNKS / THREADS; it++) {
        const int q = threadIdx.x + it * THREADS;
        int r, c, off;
        int64_t gmn, gk;
        int64_t left; /* valid elements along the chunk, clamped to 0..8 */
        bool row_ok;
        if (KMAJ) {
            r = q / (BK / 8);
            c = q % (BK / 8);
            off = alloy_cu_sw_k<BK>(r, c);
            gmn = mn0 + r;
            gk = k0 + c * 8;
            row_ok = gmn < mn;
            left = k - gk;
        } else {
            r = q / (ROWS_MN / 8);
            c = q % (ROWS_MN / 8);
            off = alloy_cu_sw_mn<ROWS_MN>(r, c);
            gk = k0 + r;
            gmn = mn0 + c * 8;
            row_ok = gk < k;
            left = mn - gmn;
        }
        left = !row_ok || left < 0 ? 0 : (left > 8 ? 8 : left);
        uint16_t v[8];
        const int64_t step = KMAJ ? s_k : s_mn;
        const uint16_t *g = src + gmn * s_mn + gk * s_k;
#pragma unroll
        for (int e = 0; e < 8; e++)
            v[e] = e < left ? g[e * step] : (uint16_t)0;
        uint4 w;
        w.x = (uint32_t)v[0] | ((uint32_t)v[1] << 16);
        w.y = (uint32_t)v[2] | ((uint32_t)v[3] << 16);
        w.z = (uint32_t)v[4] | ((uint32_t)v[5] << 16);
        w.w = (uint32_t)v[6] | ((uint32_t)v[7] << 16);
        *(uint4 *)(dst + off) = w;
    }
}

template <bool IS_BF16, bool A_KMAJ, bool B_KMAJ, bool VEC, int BM, int BN, int WARPS_M,
          int WARPS_N, int BK, int STAGES, bool DB = false>
__device__ __forceinline__ void alloy_cu_mm_tc(const alloy_cu_matmul_params &p)
{
    typedef alloy_cu_tc_shape<BM, BN, WARPS_M, WARPS_N, BK, STAGES> S;
    extern __shared__ __align__(128) unsigned char alloy_cu_tc_smem[];
    uint16_t *sA = (uint16_t *)alloy_cu_tc_smem;
    uint16_t *sB = sA + STAGES * S::A_ELEMS;

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int wm = warp / WARPS_N, wn = warp % WARPS_N;
    int64_t tm, tn;
    alloy_cu_tile_coords(blockIdx.x, p.tiles_m, p.tiles_n, &tm, &tn);
    const int64_t m0 = tm * BM, n0 = tn * BN;
    const int64_t M = p.m, N = p.n, K = p.k;
    const int64_t ktiles = (K + S::BK - 1) / S::BK;
    const size_t c_size = p.c_dtype == ALLOY_CU_F32 ? 4 : 2;
    const uint32_t sA32 = alloy_cu_smem_addr(sA), sB32 = alloy_cu_smem_addr(sB);

    /* ldmatrix addresses, worked out once: a lane's address for fragment (i, ks) is
     * base + (a multiple of i or ks) + ((2*ks or 2*i) ^ x) * 16 bytes, because the swizzle's
     * XOR touches bits that the fragment index does not (derivation in docs/perf-notes-cuda.md).
     * K-major: 8x8 blocks of rows (lane & 15) and chunks ks*2 + (lane >> 4); MN-major
     * (.trans): rows ks*16 + (lane & 7) + 8 * (lane >> 4), chunks i*2 + ((lane >> 3) & 1). */
    uint32_t a_base, a_x, b_base, b_x;
    if (A_KMAJ) {
        const int row = wm * S::WTM + (lane & 15);
        a_base = (uint32_t)(row * BK * 2);
        a_x = (uint32_t)((lane >> 4) ^ alloy_cu_sw_f<BK>(row));
    } else {
        a_base = (uint32_t)(((lane & 7) + ((lane >> 4) << 3)) * BM * 2);
        a_x = (uint32_t)((wm * S::WTM / 8 + ((lane >> 3) & 1)) ^ (lane & 7));
    }
    if (B_KMAJ) {
        const int row = wn * S::WTN + (lane & 7) + ((lane >> 4) << 3);
        b_base = (uint32_t)(row * BK * 2);
        b_x = (uint32_t)(((lane >> 3) & 1) ^ alloy_cu_sw_f<BK>(row));
    } else {
        b_base = (uint32_t)((lane & 15) * BN * 2);
        b_x = (uint32_t)((wn * S::WTN / 8 + (lane >> 4)) ^ (lane & 7));
    }

    for (int64_t bz = blockIdx.y; bz < p.batch.count; bz += gridDim.y) {
        int64_t off[3];
        alloy_cu_batch_offsets<3>(p.batch, bz, off);
        const uint16_t *A = (const uint16_t *)p.a + off[0];
        const uint16_t *B = (const uint16_t *)p.b + off[1];
        const uint64_t C = p.c + (uint64_t)off[2] * c_size;

        float acc[S::MI][S::NI][4];
#pragma unroll
        for (int i = 0; i < S::MI; i++)
#pragma unroll
            for (int j = 0; j < S::NI; j++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    acc[i][j][e] = 0.0f;

        /* A: MN index m (stride a_rs), k stride a_cs. B: MN index n (stride b_cs), k b_rs. */
        alloy_cu_tc_vec_loader<A_KMAJ, BM, BK, S::THREADS> la;
        alloy_cu_tc_vec_loader<B_KMAJ, BN, BK, S::THREADS> lb;
        if (VEC) {
            la.init(A, m0, M, K, p.a_rs, p.a_cs);
            lb.init(B, n0, N, K, p.b_cs, p.b_rs);
        }
        auto load = [&](int stage, int64_t kt) {
            const int64_t k0 = kt * S::BK;
            if (VEC) {
                la.load(sA32 + (uint32_t)(stage * S::A_ELEMS * 2), k0);
                lb.load(sB32 + (uint32_t)(stage * S::B_ELEMS * 2), k0);
            } else {
                alloy_cu_tc_gather<A_KMAJ, BM, BK, S::A_CHUNKS, S::THREADS>(
                    sA + stage * S::A_ELEMS, A, m0, k0, M, K, p.a_rs, p.a_cs);
                alloy_cu_tc_gather<B_KMAJ, BN, BK, S::B_CHUNKS, S::THREADS>(
                    sB + stage * S::B_ELEMS, B, n0, k0, N, K, p.b_cs, p.b_rs);
            }
        };

#pragma unroll
        for (int s = 0; s < STAGES - 1; s++) {
            if (s < ktiles)
                load(s, s);
            alloy_cu_cp_async_commit();
        }
        int rstage = 0, wstage = STAGES - 1; /* stages read and refilled this iteration */
        for (int64_t kt = 0; kt < ktiles; kt++) {
            alloy_cu_cp_async_wait<STAGES - 2>();
            __syncthreads();
            /* The stage refilled now was read in iteration kt - 1, which every warp has
             * finished: they all passed the barrier above. */
            if (kt + STAGES - 1 < ktiles)
                load(wstage, kt + STAGES - 1);
            alloy_cu_cp_async_commit();

            const uint32_t tA = sA32 + (uint32_t)(rstage * S::A_ELEMS * 2);
            const uint32_t tB = sB32 + (uint32_t)(rstage * S::B_ELEMS * 2);
            rstage = rstage == STAGES - 1 ? 0 : rstage + 1;
            wstage = wstage == STAGES - 1 ? 0 : wstage + 1;
            /* Fragments of k-step ks into set `set`, at the addresses worked out above. */
            uint32_t af[DB ? 2 : 1][S::MI][4], bf[DB ? 2 : 1][S::NI][2];
            auto frags = [&](int ks, int set) {
#pragma unroll
                for (int mi = 0; mi < S::MI; mi++) {
                    if (A_KMAJ)
                        alloy_cu_ldmatrix_x4(tA + a_base + mi * 16 * BK * 2 +
                                                 ((((uint32_t)ks * 2) ^ a_x) << 4),
                                             af[set][mi]);
                    else
                        alloy_cu_ldmatrix_x4_trans(tA + a_base + ks * 16 * BM * 2 +
                                                       ((((uint32_t)mi * 2) ^ a_x) << 4),
                                                   af[set][mi]);
                }
#pragma unroll
                for (int nj = 0; nj < S::NI / 2; nj++) {
                    uint32_t r[4];
                    if (B_KMAJ)
                        alloy_cu_ldmatrix_x4(tB + b_base + nj * 16 * BK * 2 +
                                                 ((((uint32_t)ks * 2) ^ b_x) << 4),
                                             r);
                    else
                        alloy_cu_ldmatrix_x4_trans(tB + b_base + ks * 16 * BN * 2 +
                                                       ((((uint32_t)nj * 2) ^ b_x) << 4),
                                                   r);
                    bf[set][2 * nj][0] = r[0];
                    bf[set][2 * nj][1] = r[1];
                    bf[set][2 * nj + 1][0] = r[2];
                    bf[set][2 * nj + 1][1] = r[3];
                }
            };
            /* DB: the next k-step's fragments load while this one's mma run. */
            if (DB)
                frags(0, 0);
#pragma unroll
            for (int ks = 0; ks < S::BK / 16; ks++) {
                const int set = DB ? ks & 1 : 0;
                if (!DB)
                    frags(ks, 0);
                else if (ks + 1 < S::BK / 16)
                    frags(ks + 1, set ^ 1);
#pragma unroll
                for (int mi = 0; mi < S::MI; mi++)
#pragma unroll
                    for (int ni = 0; ni < S::NI; ni++)
                        alloy_cu_mma_16816<IS_BF16>(acc[mi][ni], af[set][mi], bf[set][ni]);
            }
        }
        alloy_cu_cp_async_wait<0>();
        __syncthreads(); /* the pipeline's shared memory is free: stage C through it */

        /* Each warp stages 16 rows of its tile at a time and writes them with one rolled
         * loop (one copy of the epilogue's code; consecutive lanes, consecutive columns). */
        const int SLD = S::WTN + 4;
        float *stage = (float *)alloy_cu_tc_smem + warp * 16 * SLD;
        const int g = lane >> 2, t = lane & 3;
#pragma unroll
        for (int mi = 0; mi < S::MI; mi++) {
#pragma unroll
            for (int ni = 0; ni < S::NI; ni++)
#pragma unroll
                for (int h = 0; h < 2; h++)
#pragma unroll
                    for (int e = 0; e < 2; e++)
                        stage[(h * 8 + g) * SLD + ni * 8 + t * 2 + e] = acc[mi][ni][h * 2 + e];
            __syncwarp();
            const int64_t r0 = m0 + wm * S::WTM + mi * 16, c0 = n0 + wn * S::WTN;
#pragma unroll 1
            for (int idx = lane; idx < 16 * S::WTN; idx += 32) {
                const int r = idx / S::WTN, c = idx % S::WTN;
                if (r0 + r < M && c0 + c < N)
                    alloy_cu_epilogue_f32(p, C, r0 + r, c0 + c, stage[r * SLD + c]);
            }
            __syncwarp();
        }
        __syncthreads(); /* staging is done before the next batch entry's loads land */
    }
}

/* One kernel per (dtype, A layout, B layout, VEC, tile shape); names are
 * alloy_mm_<bf16|f16>_<a: k|m><b: k|n>_<vec|gen>_<L|S>. */
#define ALLOY_CU_TC_KERNEL(dt, IS_BF16, lay, AK, BKM, vg, VEC, sz, BM, BN, WM, WN, BK, ST)          \
    extern "C" __global__ void __launch_bounds__(WM * WN * 32, ALLOY_CU_TC_##sz##_MINB)            \
        alloy_mm_##dt##_##lay##_##vg##_##sz(const alloy_cu_matmul_params p)                       \
    {                                                                                              \
        if (!alloy_cu_guarded(p.guard))                                                            \
            alloy_cu_mm_tc<IS_BF16, AK, BKM, VEC, BM, BN, WM, WN, BK, ST,                          \
                           ALLOY_CU_TC_##sz##_DB != 0>(p);                                         \
    }

#define ALLOY_CU_TC_LAYOUTS(dt, IS_BF16, vg, VEC, sz, BM, BN, WM, WN, BK, ST)                      \
    ALLOY_CU_TC_KERNEL(dt, IS_BF16, kk, true, true, vg, VEC, sz, BM, BN, WM, WN, BK, ST)           \
    ALLOY_CU_TC_KERNEL(dt, IS_BF16, kn, true, false, vg, VEC, sz, BM, BN, WM, WN, BK, ST)          \
    ALLOY_CU_TC_KERNEL(dt, IS_BF16, mk, false, true, vg, VEC, sz, BM, BN, WM, WN, BK, ST)          \
    ALLOY_CU_TC_KERNEL(dt, IS_BF16, mn, false, false, vg, VEC, sz, BM, BN, WM, WN, BK, ST)

#define ALLOY_CU_TC_ALL(dt, IS_BF16)                                                               \
    ALLOY_CU_TC_LAYOUTS(dt, IS_BF16, vec, true, L, ALLOY_CU_TC_L_BM, ALLOY_CU_TC_L_BN,            \
                        ALLOY_CU_TC_L_WM, ALLOY_CU_TC_L_WN, ALLOY_CU_TC_L_BK, ALLOY_CU_TC_L_STAGES) \
    ALLOY_CU_TC_LAYOUTS(dt, IS_BF16, vec, true, S, ALLOY_CU_TC_S_BM, ALLOY_CU_TC_S_BN, 2, 2,      \
                        ALLOY_CU_TC_S_BK, ALLOY_CU_TC_S_STAGES)                                    \
    ALLOY_CU_TC_LAYOUTS(dt, IS_BF16, gen, false, S, ALLOY_CU_TC_S_BM, ALLOY_CU_TC_S_BN, 2, 2,     \
                        ALLOY_CU_TC_S_BK, ALLOY_CU_TC_S_STAGES)

#endif
