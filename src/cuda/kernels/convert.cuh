/* Conversions among f32, f64, f16 and bf16 on the GPU, bit for bit those of the CPU
 * backend (src/cpu/convert.h, compiled on x86-64 or arm64): round to nearest even, overflow
 * to infinity, one rounding from f64, and the CPU's NaN encodings (f16 NaN is 0x7e00|sign,
 * bf16 from f32 keeps the payload's top bits |0x40, bf16 from f64 is 0x7fc0|sign, widening
 * quiets and keeps the payload, as cvtss2sd/cvtsd2ss do). Hardware conversions are used
 * only where they are exact or IEEE-rounded for every non-NaN input; NaNs take integer
 * paths because PTX's cvt may canonicalize them.
 *
 * The header is also valid C (ALLOY_CU_FN becomes static inline) so the integer paths can
 * be checked exhaustively against src/cpu/convert.h on a machine without a GPU. */
#ifndef ALLOY_CUDA_KERNELS_CONVERT_CUH
#define ALLOY_CUDA_KERNELS_CONVERT_CUH

#include <stdint.h>

#ifdef __CUDACC__
#define ALLOY_CU_FN __device__ __forceinline__
static __device__ __forceinline__ uint32_t alloy_cu_f32_bits(float f) { return __float_as_uint(f); }
static __device__ __forceinline__ float alloy_cu_bits_f32(uint32_t u) { return __uint_as_float(u); }
static __device__ __forceinline__ uint64_t alloy_cu_f64_bits(double d)
{
    return (uint64_t)__double_as_longlong(d);
}
static __device__ __forceinline__ double alloy_cu_bits_f64(uint64_t u)
{
    return __longlong_as_double((long long)u);
}
#else
#include <string.h>
#define ALLOY_CU_FN static inline
ALLOY_CU_FN uint32_t alloy_cu_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
ALLOY_CU_FN float alloy_cu_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}
ALLOY_CU_FN uint64_t alloy_cu_f64_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}
ALLOY_CU_FN double alloy_cu_bits_f64(uint64_t u)
{
    double d;
    memcpy(&d, &u, 8);
    return d;
}
#endif

/* ---- widening (exact) */

ALLOY_CU_FN float alloy_cu_bf16_to_f32(uint16_t h) { return alloy_cu_bits_f32((uint32_t)h << 16); }

ALLOY_CU_FN float alloy_cu_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) /* inf or NaN (quieted, payload kept) */
        return alloy_cu_bits_f32(sign | 0x7f800000u | (man << 13) | (man ? 0x400000u : 0));
    if (exp == 0) {
        if (man == 0)
            return alloy_cu_bits_f32(sign);
        /* subnormal: man * 2^-24, exact in f32 */
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return alloy_cu_bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

ALLOY_CU_FN double alloy_cu_f32_to_f64(float f)
{
    uint32_t u = alloy_cu_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: quiet, payload moved up (cvtss2sd) */
        return alloy_cu_bits_f64(((uint64_t)(u >> 31) << 63) | UINT64_C(0x7ff8000000000000) |
                                 ((uint64_t)(u & 0x7fffffu) << 29));
    return (double)f;
}

/* ---- narrowing */

ALLOY_CU_FN float alloy_cu_f64_to_f32(double d)
{
    uint64_t u = alloy_cu_f64_bits(d);
    if ((u & UINT64_C(0x7fffffffffffffff)) > UINT64_C(0x7ff0000000000000)) /* NaN (cvtsd2ss) */
        return alloy_cu_bits_f32((uint32_t)(u >> 63) << 31 | 0x7fc00000u |
                                 (uint32_t)((u >> 29) & 0x3fffffu));
    return (float)d; /* cvt.rn.f32.f64: IEEE round to nearest even, subnormals kept */
}

ALLOY_CU_FN uint16_t alloy_cu_f32_to_bf16(float f)
{
    uint32_t u = alloy_cu_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: keep sign and payload top, quiet */
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* The finite f64 magnitude `mag` rounded once to a format with `mbits` fraction bits and
 * minimum normal exponent `emin`: the magnitude's bits, or `inf` on overflow (the CPU's
 * alloy__round_f64_bits, line for line). */
ALLOY_CU_FN uint32_t alloy_cu_round_f64_bits(uint64_t mag, int mbits, int emin, uint32_t inf)
{
    int e = (int)(mag >> 52);
    uint64_t sig = mag & ((UINT64_C(1) << 52) - 1);
    if (e == 0)
        e = 1;
    else
        sig |= UINT64_C(1) << 52;
    e -= 1023;
    int eq = e < emin ? emin : e;
    int shift = 52 - mbits + (eq - e);
    uint64_t r;
    if (shift > 60)
        r = 0;
    else {
        r = sig >> shift;
        uint64_t rem = sig & ((UINT64_C(1) << shift) - 1);
        uint64_t half = UINT64_C(1) << (shift - 1);
        if (rem > half || (rem == half && (r & 1)))
            r++;
    }
    if (eq - emin > 300)
        return inf;
    uint64_t bits = ((uint64_t)(eq - emin) << mbits) + r;
    return bits >= inf ? inf : (uint32_t)bits;
}

ALLOY_CU_FN uint16_t alloy_cu_f64_to_f16(double d)
{
    uint64_t u = alloy_cu_f64_bits(d);
    uint16_t sign = (uint16_t)((u >> 48) & 0x8000u);
    uint64_t mag = u & UINT64_C(0x7fffffffffffffff);
    if (mag > UINT64_C(0x7ff0000000000000))
        return (uint16_t)(sign | 0x7e00u);
    if (mag == UINT64_C(0x7ff0000000000000))
        return (uint16_t)(sign | 0x7c00u);
    return (uint16_t)(sign | alloy_cu_round_f64_bits(mag, 10, -14, 0x7c00u));
}

ALLOY_CU_FN uint16_t alloy_cu_f64_to_bf16(double d)
{
    uint64_t u = alloy_cu_f64_bits(d);
    uint16_t sign = (uint16_t)((u >> 48) & 0x8000u);
    uint64_t mag = u & UINT64_C(0x7fffffffffffffff);
    if (mag > UINT64_C(0x7ff0000000000000))
        return (uint16_t)(sign | 0x7fc0u);
    if (mag == UINT64_C(0x7ff0000000000000))
        return (uint16_t)(sign | 0x7f80u);
    return (uint16_t)(sign | alloy_cu_round_f64_bits(mag, 7, -126, 0x7f80u));
}

/* f32 -> f16 in 32-bit integers: the same single rounding as the CPU's path through the
 * exact f64 (f32 subnormals are exact in f64, so the rounding sees the same value). */
ALLOY_CU_FN uint16_t alloy_cu_f32_to_f16(float f)
{
    uint32_t u = alloy_cu_f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t mag = u & 0x7fffffffu;
    if (mag > 0x7f800000u)
        return (uint16_t)(sign | 0x7e00u);
    if (mag == 0x7f800000u)
        return (uint16_t)(sign | 0x7c00u);
    int e = (int)(mag >> 23);
    uint32_t sig = mag & 0x7fffffu;
    if (e == 0)
        e = 1;
    else
        sig |= 0x800000u;
    e -= 127;
    int eq = e < -14 ? -14 : e;
    int shift = 13 + (eq - e);
    uint32_t r;
    if (shift > 24) /* sig < 2^24 <= half: rounds to zero */
        r = 0;
    else {
        r = sig >> shift;
        uint32_t rem = sig & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1u)))
            r++;
    }
    uint32_t bits = ((uint32_t)(eq + 14) << 10) + r;
    return (uint16_t)(sign | (bits >= 0x7c00u ? 0x7c00u : bits));
}

#endif
