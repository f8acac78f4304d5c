/* Conversions among f32, f64, f16 and bf16: round to nearest even, overflow to
 * infinity, NaN stays NaN (quieted). Narrowing from f64 rounds once, directly, so that
 * f64 -> f16 never suffers double rounding through f32. */
#ifndef ALLOY_CPU_CONVERT_H
#define ALLOY_CPU_CONVERT_H

#include <stdint.h>
#include <string.h>

static inline float alloy__bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint32_t alloy__f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float alloy__bf16_to_f32(uint16_t h) { return alloy__bits_f32((uint32_t)h << 16); }

/* Branchless, so loops over it vectorize: the half's exponent and fraction placed in a
 * float's low bits, times 2^112, is exact for normals and subnormals alike; infinities
 * and NaNs (quieted, payload kept) are selected afterwards. */
static inline float alloy__f16_to_f32(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t em = h & 0x7fffu;
    uint32_t bits = alloy__f32_bits(alloy__bits_f32(em << 13) * 0x1.0p112f);
    const uint32_t special = 0x7f800000u | ((em & 0x3ffu) << 13) | ((em & 0x3ffu) ? 0x400000u : 0);
    bits = em >= 0x7c00u ? special : bits;
    return alloy__bits_f32(bits | sign);
}

static inline uint16_t alloy__f32_to_bf16(float f)
{
    uint32_t u = alloy__f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: keep sign, quiet */
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* Rounds the finite or infinite double d to a binary format with `mbits` fraction bits
 * and minimum normal exponent emin, returning the magnitude's bit pattern (without sign)
 * or `inf` when it overflows. Works for normals and subnormals of the target: the
 * significand rounded in units of the target's quantum, plus the exponent field, carries
 * into the next binade (or infinity) exactly as the format does. */
static inline uint32_t alloy__round_f64_bits(uint64_t mag, int mbits, int emin, uint32_t inf)
{
    int e = (int)(mag >> 52);
    uint64_t sig = mag & ((UINT64_C(1) << 52) - 1);
    if (e == 0)
        e = 1; /* f64 subnormal */
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

static inline uint16_t alloy__f64_to_f16(double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    uint16_t sign = (uint16_t)((u >> 48) & 0x8000u);
    uint64_t mag = u & 0x7fffffffffffffffu;
    if (mag > 0x7ff0000000000000u)
        return (uint16_t)(sign | 0x7e00u);
    if (mag == 0x7ff0000000000000u)
        return (uint16_t)(sign | 0x7c00u);
    return (uint16_t)(sign | alloy__round_f64_bits(mag, 10, -14, 0x7c00u));
}

static inline uint16_t alloy__f64_to_bf16(double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    uint16_t sign = (uint16_t)((u >> 48) & 0x8000u);
    uint64_t mag = u & 0x7fffffffffffffffu;
    if (mag > 0x7ff0000000000000u)
        return (uint16_t)(sign | 0x7fc0u);
    if (mag == 0x7ff0000000000000u)
        return (uint16_t)(sign | 0x7f80u);
    return (uint16_t)(sign | alloy__round_f64_bits(mag, 7, -126, 0x7f80u));
}

/* f32 -> f16, round to nearest even, in float arithmetic (the same results as rounding
 * the exact f64 widening once). Subnormal results come from adding a magic constant whose
 * ulp is the half subnormal quantum, so the FPU's own round-to-nearest does the rounding
 * (tasks always run in the default environment); normal results add half an ulp minus
 * one plus the kept bit's parity, which carries into the exponent (or infinity). */
static inline uint16_t alloy__f32_to_f16(float f)
{
    /* All three candidates, then a select: no branches, so loops over it vectorize. The
     * candidates not selected may be meaningless (wrapped, or from a NaN); they are
     * discarded, and no exception traps in the default environment. */
    const uint32_t all = alloy__f32_bits(f);
    const uint32_t u = all & 0x7fffffffu;
    const uint32_t big = u > 0x7f800000u ? 0x7e00u : 0x7c00u; /* NaN quieted, or infinity */
    const uint32_t tiny =
        alloy__f32_bits(alloy__bits_f32(u) + alloy__bits_f32(126u << 23)) - (126u << 23);
    const uint32_t normal = (u + ((uint32_t)(15 - 127) << 23) + 0xfffu + ((u >> 13) & 1u)) >> 13;
    const uint32_t out = u >= 0x47800000u ? big : u < 0x38800000u ? tiny : normal;
    return (uint16_t)(out | ((all >> 16) & 0x8000u));
}

#endif
