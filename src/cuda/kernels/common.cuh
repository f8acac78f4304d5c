/* Helpers every kernel uses: typed loads and stores by run-time dtype, batch offsets, and
 * the few PTX instructions (cp.async, ldmatrix, mma) the matrix kernels issue. */
#ifndef ALLOY_CUDA_KERNELS_COMMON_CUH
#define ALLOY_CUDA_KERNELS_COMMON_CUH

#include "convert.cuh"
#include "params.h"

#include <stdint.h>

/* Storage types: halves travel as their bits; arithmetic is float or double. */
template <int DT> struct alloy_cu_storage;
template <> struct alloy_cu_storage<ALLOY_CU_F32> { typedef float type; typedef float math; };
template <> struct alloy_cu_storage<ALLOY_CU_F64> { typedef double type; typedef double math; };
template <> struct alloy_cu_storage<ALLOY_CU_F16> { typedef uint16_t type; typedef float math; };
template <> struct alloy_cu_storage<ALLOY_CU_BF16> { typedef uint16_t type; typedef float math; };

/* A stored element widened to its math type (exact). */
template <int DT>
__device__ __forceinline__ typename alloy_cu_storage<DT>::math
alloy_cu_to_math(typename alloy_cu_storage<DT>::type v);
template <> __device__ __forceinline__ float alloy_cu_to_math<ALLOY_CU_F32>(float v) { return v; }
template <> __device__ __forceinline__ double alloy_cu_to_math<ALLOY_CU_F64>(double v) { return v; }
template <> __device__ __forceinline__ float alloy_cu_to_math<ALLOY_CU_F16>(uint16_t v)
{
    return alloy_cu_f16_to_f32(v);
}
template <> __device__ __forceinline__ float alloy_cu_to_math<ALLOY_CU_BF16>(uint16_t v)
{
    return alloy_cu_bf16_to_f32(v);
}

/* Element i of a vector of run-time dtype dt, as float (the CPU's FN(load) for T=float). */
__device__ __forceinline__ float alloy_cu_load_f32(uint64_t addr, int dt, int64_t i)
{
    switch (dt) {
    case ALLOY_CU_F32: return ((const float *)addr)[i];
    case ALLOY_CU_F64: return alloy_cu_f64_to_f32(((const double *)addr)[i]);
    case ALLOY_CU_F16: return alloy_cu_f16_to_f32(((const uint16_t *)addr)[i]);
    case ALLOY_CU_BF16: return alloy_cu_bf16_to_f32(((const uint16_t *)addr)[i]);
    }
    return 0.0f;
}

/* The same as double (the CPU's FN(load) for T=double: halves widen through f32). */
__device__ __forceinline__ double alloy_cu_load_f64(uint64_t addr, int dt, int64_t i)
{
    switch (dt) {
    case ALLOY_CU_F32: return alloy_cu_f32_to_f64(((const float *)addr)[i]);
    case ALLOY_CU_F64: return ((const double *)addr)[i];
    case ALLOY_CU_F16: return alloy_cu_f32_to_f64(alloy_cu_f16_to_f32(((const uint16_t *)addr)[i]));
    case ALLOY_CU_BF16: return alloy_cu_f32_to_f64(alloy_cu_bf16_to_f32(((const uint16_t *)addr)[i]));
    }
    return 0.0;
}

/* Stores a float result rounded once into run-time dtype dt (never f64: f64 results come
 * from double math, alloy_cu_store_f64). */
__device__ __forceinline__ void alloy_cu_store_f32(uint64_t addr, int dt, int64_t i, float v)
{
    switch (dt) {
    case ALLOY_CU_F32: ((float *)addr)[i] = v; return;
    case ALLOY_CU_F64: ((double *)addr)[i] = alloy_cu_f32_to_f64(v); return;
    case ALLOY_CU_F16: ((uint16_t *)addr)[i] = alloy_cu_f32_to_f16(v); return;
    case ALLOY_CU_BF16: ((uint16_t *)addr)[i] = alloy_cu_f32_to_bf16(v); return;
    }
}

__device__ __forceinline__ void alloy_cu_store_f64(uint64_t addr, int dt, int64_t i, double v)
{
    switch (dt) {
    case ALLOY_CU_F32: ((float *)addr)[i] = alloy_cu_f64_to_f32(v); return;
    case ALLOY_CU_F64: ((double *)addr)[i] = v; return;
    case ALLOY_CU_F16: ((uint16_t *)addr)[i] = alloy_cu_f64_to_f16(v); return;
    case ALLOY_CU_BF16: ((uint16_t *)addr)[i] = alloy_cu_f64_to_bf16(v); return;
    }
}

/* Element offsets of batch entry `index` for the first N operands. */
template <int N>
__device__ __forceinline__ void alloy_cu_batch_offsets(const alloy_cu_batch &b, int64_t index,
                                                       int64_t *out)
{
#pragma unroll
    for (int j = 0; j < N; j++)
        out[j] = 0;
    for (int d = b.rank - 1; d >= 0; d--) {
        int64_t s = b.shape[d];
        int64_t i = index % s;
        index /= s;
#pragma unroll
        for (int j = 0; j < N; j++)
            out[j] += i * b.strides[j][d];
    }
}

/* Whether a guard word (0: none) says to do nothing: lu_solve found bad pivots, and every
 * later kernel of that op leaves memory as it was. */
__device__ __forceinline__ bool alloy_cu_guarded(uint64_t guard)
{
    return guard != 0 && *(const volatile int32_t *)guard != 0;
}

/* ---- PTX wrappers (sm_80+) */

__device__ __forceinline__ uint32_t alloy_cu_smem_addr(const void *p)
{
    return (uint32_t)__cvta_generic_to_shared(p);
}

/* 16-byte asynchronous copy global -> shared; bytes past src_bytes (0..16) are zero. */
__device__ __forceinline__ void alloy_cu_cp_async16(uint32_t dst, const void *src, int src_bytes)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
                 "r"(src_bytes));
}
__device__ __forceinline__ void alloy_cu_cp_async_commit()
{
    asm volatile("cp.async.commit_group;\n" ::);
}
template <int N> __device__ __forceinline__ void alloy_cu_cp_async_wait()
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void alloy_cu_ldmatrix_x4(uint32_t addr, uint32_t *r)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
__device__ __forceinline__ void alloy_cu_ldmatrix_x4_trans(uint32_t addr, uint32_t *r)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

/* D = A(16x16) B(16x8) + D with f32 accumulation; IS_BF16 picks bf16 or f16 inputs. Not
 * volatile: a pure function of registers, which the compiler may schedule among the
 * (volatile, shared-memory-reading) ldmatrix. */
template <bool IS_BF16>
__device__ __forceinline__ void alloy_cu_mma_16816(float *d, const uint32_t *a, const uint32_t *b);
template <>
__device__ __forceinline__ void alloy_cu_mma_16816<true>(float *d, const uint32_t *a,
                                                         const uint32_t *b)
{
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
                 "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
template <>
__device__ __forceinline__ void alloy_cu_mma_16816<false>(float *d, const uint32_t *a,
                                                          const uint32_t *b)
{
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, "
                 "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

/* D = A(16x8) B(8x8) + D in tf32 with f32 accumulation. */
__device__ __forceinline__ void alloy_cu_mma_1688_tf32(float *d, const uint32_t *a,
                                                       const uint32_t *b)
{
    asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, "
                 "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ uint32_t alloy_cu_to_tf32(float f)
{
    uint32_t r;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(f));
    return r;
}

/* The matmul epilogue of one element, exactly the CPU's FN(epilogue): r = alpha * acc (0
 * when A@B is not formed); r = r + beta * C when beta != 0; r = r + bias; one rounding. */
__device__ __forceinline__ void alloy_cu_epilogue_f32(const alloy_cu_matmul_params &p, uint64_t c,
                                                      int64_t i, int64_t j, float acc)
{
    float r = p.k > 0 ? (float)p.alpha * acc : 0.0f;
    int64_t ci = i * p.c_rs + j * p.c_cs;
    if (p.use_beta)
        r = r + (float)p.beta * alloy_cu_load_f32(c, p.c_dtype, ci);
    if (p.bias)
        r = r + alloy_cu_load_f32(p.bias, p.bias_dtype, j * p.bias_stride);
    alloy_cu_store_f32(c, p.c_dtype, ci, r);
}

__device__ __forceinline__ void alloy_cu_epilogue_f64(const alloy_cu_matmul_params &p, uint64_t c,
                                                      int64_t i, int64_t j, double acc)
{
    double r = p.k > 0 ? p.alpha * acc : 0.0;
    int64_t ci = i * p.c_rs + j * p.c_cs;
    if (p.use_beta)
        r = r + p.beta * ((const double *)c)[ci];
    if (p.bias)
        r = r + alloy_cu_load_f64(p.bias, p.bias_dtype, j * p.bias_stride);
    ((double *)c)[ci] = r;
}

/* Tile (tm, tn) of linear tile id t: groups of 8 tile-rows walk down before across, so
 * blocks running together share A and B panels in L2. */
__device__ __forceinline__ void alloy_cu_tile_coords(int64_t t, int64_t tiles_m, int64_t tiles_n,
                                                     int64_t *tm, int64_t *tn)
{
    const int64_t group = 8;
    int64_t per_group = group * tiles_n;
    int64_t g = t / per_group;
    int64_t first = g * group;
    int64_t rows = tiles_m - first < group ? tiles_m - first : group;
    int64_t r = t - g * per_group;
    *tm = first + r % rows;
    *tn = r / rows;
}

#endif
