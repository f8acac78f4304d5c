/* copy: dst = convert(src) over the normalized index space of alloy__copy_op. Each element
 * is converted on its own, so the result does not depend on the grid. Two walks:
 *   1d: rank <= 1 (a strided run), four elements per thread per step for memory-level
 *       parallelism;
 *   nd: any rank, the flat index split into coordinates (32-bit division when the count
 *       fits, since 64-bit division is a long software sequence on the GPU).
 * Same-dtype copies move bits (I32 included); contiguous ones never get here (the glue
 * uses cuMemcpyAsync). */
#ifndef ALLOY_CUDA_KERNELS_COPY_CUH
#define ALLOY_CUDA_KERNELS_COPY_CUH

#include "common.cuh"

/* The conversion of one element from SRC to DST storage. */
template <int SRC, int DST> struct alloy_cu_conv;

#define ALLOY_CU_CONV(S, D, ST, DT, EXPR)                                                          \
    template <> struct alloy_cu_conv<S, D> {                                                       \
        typedef ST src_t;                                                                          \
        typedef DT dst_t;                                                                          \
        static __device__ __forceinline__ DT run(ST x) { return EXPR; }                            \
    };

/* Bit copies: the storage type of the element size. */
ALLOY_CU_CONV(ALLOY_CU_F32, ALLOY_CU_F32, uint32_t, uint32_t, x)
ALLOY_CU_CONV(ALLOY_CU_F64, ALLOY_CU_F64, uint64_t, uint64_t, x)
ALLOY_CU_CONV(ALLOY_CU_F16, ALLOY_CU_F16, uint16_t, uint16_t, x)
ALLOY_CU_CONV(ALLOY_CU_BF16, ALLOY_CU_BF16, uint16_t, uint16_t, x)
ALLOY_CU_CONV(ALLOY_CU_I32, ALLOY_CU_I32, uint32_t, uint32_t, x)
/* The CPU's pairs (src/cpu/copy.c copy_run), one rounding each. */
ALLOY_CU_CONV(ALLOY_CU_F64, ALLOY_CU_F32, double, float, alloy_cu_f64_to_f32(x))
ALLOY_CU_CONV(ALLOY_CU_F16, ALLOY_CU_F32, uint16_t, float, alloy_cu_f16_to_f32(x))
ALLOY_CU_CONV(ALLOY_CU_BF16, ALLOY_CU_F32, uint16_t, float, alloy_cu_bf16_to_f32(x))
ALLOY_CU_CONV(ALLOY_CU_F32, ALLOY_CU_F64, float, double, alloy_cu_f32_to_f64(x))
ALLOY_CU_CONV(ALLOY_CU_F16, ALLOY_CU_F64, uint16_t, double,
              alloy_cu_f32_to_f64(alloy_cu_f16_to_f32(x)))
ALLOY_CU_CONV(ALLOY_CU_BF16, ALLOY_CU_F64, uint16_t, double,
              alloy_cu_f32_to_f64(alloy_cu_bf16_to_f32(x)))
ALLOY_CU_CONV(ALLOY_CU_F32, ALLOY_CU_F16, float, uint16_t, alloy_cu_f32_to_f16(x))
ALLOY_CU_CONV(ALLOY_CU_F64, ALLOY_CU_F16, double, uint16_t, alloy_cu_f64_to_f16(x))
ALLOY_CU_CONV(ALLOY_CU_BF16, ALLOY_CU_F16, uint16_t, uint16_t,
              alloy_cu_f32_to_f16(alloy_cu_bf16_to_f32(x)))
ALLOY_CU_CONV(ALLOY_CU_F32, ALLOY_CU_BF16, float, uint16_t, alloy_cu_f32_to_bf16(x))
ALLOY_CU_CONV(ALLOY_CU_F64, ALLOY_CU_BF16, double, uint16_t, alloy_cu_f64_to_bf16(x))
ALLOY_CU_CONV(ALLOY_CU_F16, ALLOY_CU_BF16, uint16_t, uint16_t,
              alloy_cu_f32_to_bf16(alloy_cu_f16_to_f32(x)))

template <int SRC, int DST> __device__ __forceinline__ void alloy_cu_copy_1d(const alloy_cu_copy_params &p)
{
    typedef alloy_cu_conv<SRC, DST> C;
    const typename C::src_t *src = (const typename C::src_t *)p.src;
    typename C::dst_t *dst = (typename C::dst_t *)p.dst;
    const int64_t ss = p.rank ? p.src_strides[0] : 0, ds = p.rank ? p.dst_strides[0] : 0;
    const int64_t n = p.count;
    const int64_t step = (int64_t)gridDim.x * blockDim.x;
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    for (; i + 3 * step < n; i += 4 * step) {
        typename C::src_t v0 = src[i * ss], v1 = src[(i + step) * ss];
        typename C::src_t v2 = src[(i + 2 * step) * ss], v3 = src[(i + 3 * step) * ss];
        dst[i * ds] = C::run(v0);
        dst[(i + step) * ds] = C::run(v1);
        dst[(i + 2 * step) * ds] = C::run(v2);
        dst[(i + 3 * step) * ds] = C::run(v3);
    }
    for (; i < n; i += step)
        dst[i * ds] = C::run(src[i * ss]);
}

template <typename IDX, int SRC, int DST>
__device__ __forceinline__ void alloy_cu_copy_nd_walk(const alloy_cu_copy_params &p)
{
    typedef alloy_cu_conv<SRC, DST> C;
    const typename C::src_t *src = (const typename C::src_t *)p.src;
    typename C::dst_t *dst = (typename C::dst_t *)p.dst;
    const IDX n = (IDX)p.count;
    const IDX step = (IDX)gridDim.x * blockDim.x;
    const int last = p.rank - 1;
    const IDX inner = (IDX)p.shape[last];
    const int64_t sin = p.src_strides[last], din = p.dst_strides[last];
    for (IDX e = (IDX)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += step) {
        IDX rest = e / inner;
        IDX i = e - rest * inner;
        int64_t so = (int64_t)i * sin, dof = (int64_t)i * din;
        for (int d = last - 1; d >= 0; d--) {
            IDX s = (IDX)p.shape[d];
            IDX q = rest / s;
            IDX id = rest - q * s;
            rest = q;
            so += (int64_t)id * p.src_strides[d];
            dof += (int64_t)id * p.dst_strides[d];
        }
        dst[dof] = C::run(src[so]);
    }
}

template <int SRC, int DST> __device__ __forceinline__ void alloy_cu_copy_nd(const alloy_cu_copy_params &p)
{
    if (p.count <= (int64_t)0xffffffffu - (int64_t)gridDim.x * blockDim.x)
        alloy_cu_copy_nd_walk<uint32_t, SRC, DST>(p);
    else
        alloy_cu_copy_nd_walk<uint64_t, SRC, DST>(p);
}

#define ALLOY_CU_COPY_KERNELS(sname, dname, S, D)                                                  \
    extern "C" __global__ void __launch_bounds__(256)                                              \
        alloy_copy_1d_##sname##_##dname(const alloy_cu_copy_params p)                             \
    {                                                                                              \
        if (!alloy_cu_guarded(p.guard))                                                            \
            alloy_cu_copy_1d<S, D>(p);                                                                 \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(256)                                              \
        alloy_copy_nd_##sname##_##dname(const alloy_cu_copy_params p)                             \
    {                                                                                              \
        if (!alloy_cu_guarded(p.guard))                                                            \
            alloy_cu_copy_nd<S, D>(p);                                                                 \
    }

#endif
