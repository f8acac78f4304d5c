/* layer_norm and RMS norm over the last dimension, f32 math (f64 for f64 x).
 *
 * A group of threads owns a row: a warp (short rows, eight rows per block) or a whole block
 * whose size the glue picks from the row length alone. The row is read once into
 * registers (ALLOY_CU_NORM_CACHE values per thread), reduced, and written
 * from the registers, so x is read once and y written once; rows too long for that are
 * read three times instead ("big"). With VEC every access is 16 bytes.
 *
 * The reductions have one order fixed by the row length: each thread sums its values in
 * index order, a warp combines by an xor butterfly (a + b == b + a, so every lane ends with
 * the same bits), and warps' partials are added in warp order. Two passes: mean, then the
 * mean of squared deviations (RMS: the mean of squares). y may be x itself: every element
 * is read before any is written. */
#ifndef ALLOY_CUDA_KERNELS_NORM_CUH
#define ALLOY_CUDA_KERNELS_NORM_CUH

#include "common.cuh"

enum { ALLOY_CU_NORM_WARP = 0, ALLOY_CU_NORM_BLOCK = 1, ALLOY_CU_NORM_BIG = 2 };

/* 16 bytes of storage as V math values, and back. */
template <int XD> struct alloy_cu_norm_vec;
template <> struct alloy_cu_norm_vec<ALLOY_CU_F32> {
    static const int V = 4;
    static __device__ __forceinline__ void load(uint4 r, float *v)
    {
        v[0] = __uint_as_float(r.x);
        v[1] = __uint_as_float(r.y);
        v[2] = __uint_as_float(r.z);
        v[3] = __uint_as_float(r.w);
    }
    static __device__ __forceinline__ uint4 store(const float *v)
    {
        return make_uint4(__float_as_uint(v[0]), __float_as_uint(v[1]), __float_as_uint(v[2]),
                          __float_as_uint(v[3]));
    }
};
template <> struct alloy_cu_norm_vec<ALLOY_CU_F64> {
    static const int V = 2;
    static __device__ __forceinline__ void load(uint4 r, double *v)
    {
        v[0] = __hiloint2double((int)r.y, (int)r.x);
        v[1] = __hiloint2double((int)r.w, (int)r.z);
    }
    static __device__ __forceinline__ uint4 store(const double *v)
    {
        return make_uint4((uint32_t)__double2loint(v[0]), (uint32_t)__double2hiint(v[0]),
                          (uint32_t)__double2loint(v[1]), (uint32_t)__double2hiint(v[1]));
    }
};
template <int XD> struct alloy_cu_norm_half_vec {
    static const int V = 8;
    static __device__ __forceinline__ float widen(uint32_t h)
    {
        return XD == ALLOY_CU_BF16 ? alloy_cu_bf16_to_f32((uint16_t)h)
                                   : alloy_cu_f16_to_f32((uint16_t)h);
    }
    static __device__ __forceinline__ uint32_t narrow(float f)
    {
        return XD == ALLOY_CU_BF16 ? alloy_cu_f32_to_bf16(f) : alloy_cu_f32_to_f16(f);
    }
    static __device__ __forceinline__ void load(uint4 r, float *v)
    {
        const uint32_t w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            v[2 * i] = widen(w[i] & 0xffffu);
            v[2 * i + 1] = widen(w[i] >> 16);
        }
    }
    static __device__ __forceinline__ uint4 store(const float *v)
    {
        uint32_t w[4];
#pragma unroll
        for (int i = 0; i < 4; i++)
            w[i] = narrow(v[2 * i]) | (narrow(v[2 * i + 1]) << 16);
        return make_uint4(w[0], w[1], w[2], w[3]);
    }
};
template <> struct alloy_cu_norm_vec<ALLOY_CU_F16> : alloy_cu_norm_half_vec<ALLOY_CU_F16> {};
template <> struct alloy_cu_norm_vec<ALLOY_CU_BF16> : alloy_cu_norm_half_vec<ALLOY_CU_BF16> {};

/* Sum over the row's group; every thread of the group gets the same bits. */
template <int MODE, typename M> __device__ __forceinline__ M alloy_cu_group_sum(M v, M *red)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v = v + __shfl_xor_sync(0xffffffffu, v, o);
    if (MODE == ALLOY_CU_NORM_WARP || blockDim.x == 32)
        return v;
    const int warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads(); /* the previous sum's readers are done with red */
    if ((threadIdx.x & 31) == 0)
        red[warp] = v;
    __syncthreads();
    M s = red[0];
    for (int w = 1; w < nw; w++)
        s = s + red[w];
    return s;
}

template <typename M> __device__ __forceinline__ M alloy_cu_norm_param(uint64_t addr, int dt, int64_t i);
template <> __device__ __forceinline__ float alloy_cu_norm_param<float>(uint64_t addr, int dt, int64_t i)
{
    return alloy_cu_load_f32(addr, dt, i);
}
template <> __device__ __forceinline__ double alloy_cu_norm_param<double>(uint64_t addr, int dt, int64_t i)
{
    return alloy_cu_load_f64(addr, dt, i);
}

/* Stores a math value into run-time dtype dt the way the CPU's norm does: halves always
 * round from f32 (so f64 math rounds twice there, as on the CPU). */
__device__ __forceinline__ void alloy_cu_norm_store(uint64_t addr, int dt, int64_t i, float v)
{
    alloy_cu_store_f32(addr, dt, i, v);
}
__device__ __forceinline__ void alloy_cu_norm_store(uint64_t addr, int dt, int64_t i, double v)
{
    if (dt == ALLOY_CU_F64)
        ((double *)addr)[i] = v;
    else
        alloy_cu_store_f32(addr, dt, i, alloy_cu_f64_to_f32(v));
}

__device__ __forceinline__ float alloy_cu_rsqrt_ieee(float v) { return 1.0f / sqrtf(v); }
__device__ __forceinline__ double alloy_cu_rsqrt_ieee(double v) { return 1.0 / sqrt(v); }

template <int XD, int MODE, bool VEC>
__device__ __forceinline__ void alloy_cu_norm(const alloy_cu_norm_params &p)
{
    typedef typename alloy_cu_storage<XD>::type S;
    typedef typename alloy_cu_storage<XD>::math M;
    typedef alloy_cu_norm_vec<XD> VT;
    const int V = VEC ? VT::V : 1;
    const int CACHE = MODE == ALLOY_CU_NORM_BIG
                          ? V
                          : (XD == ALLOY_CU_F64 ? ALLOY_CU_NORM_CACHE_F64 : ALLOY_CU_NORM_CACHE);
    const int J = CACHE / V;                                               /* accesses */
    __shared__ M red[32];

    const int G = MODE == ALLOY_CU_NORM_WARP ? 32 : (int)blockDim.x;
    const int gtid = MODE == ALLOY_CU_NORM_WARP ? (int)(threadIdx.x & 31) : (int)threadIdx.x;
    const int64_t per_block = MODE == ALLOY_CU_NORM_WARP ? blockDim.x / 32 : 1;
    const int64_t first = (int64_t)blockIdx.x * per_block +
                          (MODE == ALLOY_CU_NORM_WARP ? (int64_t)(threadIdx.x >> 5) : 0);
    const int64_t step = (int64_t)gridDim.x * per_block;
    const int64_t D = p.d, nacc = D / V; /* VEC: the glue guarantees D % V == 0 */
    const size_t y_es = p.y_dtype == ALLOY_CU_F64 ? 8 : p.y_dtype == ALLOY_CU_F32 ? 4 : 2;
    const size_t m_es = p.mean_dtype == ALLOY_CU_F64 ? 8 : 4;
    const size_t r_es = p.rstd_dtype == ALLOY_CU_F64 ? 8 : 4;
    const M eps = (M)p.eps;

    for (int64_t row = first; row < p.batch.count; row += step) {
        int64_t off[4];
        alloy_cu_batch_offsets<4>(p.batch, row, off);
        const S *x = (const S *)p.x + off[0];
        const uint64_t y = p.y + (uint64_t)off[1] * y_es;

        /* Access a (0 .. nacc-1) of this thread covers elements a*V .. a*V+V-1. */
        auto load = [&](int64_t a, M *v) {
            if (VEC) {
                VT::load(((const uint4 *)x)[a], v);
            } else {
                v[0] = alloy_cu_to_math<XD>(x[a * p.x_stride]);
            }
        };

        M cache[CACHE];
        M sum = 0;
        if (MODE != ALLOY_CU_NORM_BIG) {
#pragma unroll
            for (int j = 0; j < J; j++) {
                const int64_t a = (int64_t)j * G + gtid;
                if (a < nacc)
                    load(a, &cache[j * V]);
                else
#pragma unroll
                    for (int e = 0; e < V; e++)
                        cache[j * V + e] = 0;
            }
#pragma unroll
            for (int j = 0; j < J; j++)
                if ((int64_t)j * G + gtid < nacc)
#pragma unroll
                    for (int e = 0; e < V; e++)
                        sum = sum + (p.rms ? cache[j * V + e] * cache[j * V + e] : cache[j * V + e]);
        } else {
            for (int64_t a = gtid; a < nacc; a += G) {
                load(a, cache);
#pragma unroll
                for (int e = 0; e < V; e++)
                    sum = sum + (p.rms ? cache[e] * cache[e] : cache[e]);
            }
        }
        sum = alloy_cu_group_sum<MODE>(sum, red);
        /* An empty row has mean 0 and variance 0, as on the CPU. */
        const M mean = p.rms || D == 0 ? (M)0 : sum / (M)D;
        M var;
        if (p.rms || D == 0) {
            var = D == 0 ? (M)0 : sum / (M)D;
        } else {
            M sq = 0;
            if (MODE != ALLOY_CU_NORM_BIG) {
#pragma unroll
                for (int j = 0; j < J; j++)
                    if ((int64_t)j * G + gtid < nacc)
#pragma unroll
                        for (int e = 0; e < V; e++) {
                            const M d = cache[j * V + e] - mean;
                            sq = sq + d * d;
                        }
            } else {
                for (int64_t a = gtid; a < nacc; a += G) {
                    load(a, cache);
#pragma unroll
                    for (int e = 0; e < V; e++) {
                        const M d = cache[e] - mean;
                        sq = sq + d * d;
                    }
                }
            }
            var = alloy_cu_group_sum<MODE>(sq, red) / (M)D;
        }
        const M rstd = alloy_cu_rsqrt_ieee(var + eps);

        /* y = (x - mean) * rstd * gamma + beta, element by element in that order. */
        auto finish = [&](int64_t a, M *v) {
            if (VEC && p.gb_vec) {
                M g[V], b[V];
                if (p.gamma)
                    VT::load(((const uint4 *)p.gamma)[a], g);
                if (p.beta)
                    VT::load(((const uint4 *)p.beta)[a], b);
#pragma unroll
                for (int e = 0; e < V; e++) {
                    M o = (v[e] - mean) * rstd;
                    if (p.gamma)
                        o = o * g[e];
                    if (p.beta)
                        o = o + b[e];
                    v[e] = o;
                }
            } else {
#pragma unroll
                for (int e = 0; e < V; e++) {
                    const int64_t i = a * V + e;
                    M o = (v[e] - mean) * rstd;
                    if (p.gamma)
                        o = o * alloy_cu_norm_param<M>(p.gamma, p.gamma_dtype, i * p.gamma_stride);
                    if (p.beta)
                        o = o + alloy_cu_norm_param<M>(p.beta, p.beta_dtype, i * p.beta_stride);
                    v[e] = o;
                }
            }
            if (VEC)
                ((uint4 *)y)[a] = VT::store(v);
            else
                alloy_cu_norm_store(y, p.y_dtype, a * p.y_stride, v[0]);
        };
        if (MODE != ALLOY_CU_NORM_BIG) {
#pragma unroll
            for (int j = 0; j < J; j++) {
                const int64_t a = (int64_t)j * G + gtid;
                if (a < nacc)
                    finish(a, &cache[j * V]);
            }
        } else {
            for (int64_t a = gtid; a < nacc; a += G) {
                load(a, cache);
                finish(a, cache);
            }
        }
        if (gtid == 0) {
            if (p.mean)
                alloy_cu_norm_store(p.mean + (uint64_t)off[2] * m_es, p.mean_dtype, 0, mean);
            if (p.rstd)
                alloy_cu_norm_store(p.rstd + (uint64_t)off[3] * r_es, p.rstd_dtype, 0, rstd);
        }
    }
}

/* alloy_norm_<warp|block|big>_<x dtype>_<vec|gen>. */
#define ALLOY_CU_NORM_KERNEL(mode, MODE, xname, XD, vg, VEC, THREADS)                              \
    extern "C" __global__ void __launch_bounds__(THREADS)                                          \
        alloy_norm_##mode##_##xname##_##vg(const alloy_cu_norm_params p)                          \
    {                                                                                              \
        if (!alloy_cu_guarded(p.guard))                                                            \
            alloy_cu_norm<XD, MODE, VEC>(p);                                                           \
    }
#define ALLOY_CU_NORM_MODES(xname, XD, vg, VEC)                                                    \
    ALLOY_CU_NORM_KERNEL(warp, ALLOY_CU_NORM_WARP, xname, XD, vg, VEC, ALLOY_CU_NORM_WARP_THREADS)                        \
    ALLOY_CU_NORM_KERNEL(block, ALLOY_CU_NORM_BLOCK, xname, XD, vg, VEC, ALLOY_CU_NORM_BLOCK_THREADS) \
    ALLOY_CU_NORM_KERNEL(big, ALLOY_CU_NORM_BIG, xname, XD, vg, VEC, ALLOY_CU_NORM_BIG_THREADS)
#define ALLOY_CU_NORM_ALL(xname, XD)                                                               \
    ALLOY_CU_NORM_MODES(xname, XD, vec, true)                                                      \
    ALLOY_CU_NORM_MODES(xname, XD, gen, false)

#endif
