/* x86-64 feature detection from CPUID and XGETBV: the instructions exist (CPUID) and the
 * operating system saves their registers (XCR0). Never the CPU model. */
#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t xcr0(void)
{
    uint32_t lo, hi;
    __asm__ __volatile__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static int os_avx(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    if (!(c & (1u << 27)) || !(c & (1u << 28))) /* OSXSAVE, AVX */
        return 0;
    return (xcr0() & 0x6) == 0x6; /* XMM and YMM state */
}

int alloy__cpu_has_avx2_fma(void)
{
    unsigned a, b, c, d;
    if (!os_avx())
        return 0;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 12))) /* FMA */
        return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    return (b & (1u << 5)) != 0; /* AVX2 */
}

int alloy__cpu_has_avx512f(void)
{
    unsigned a, b, c, d;
    if (!alloy__cpu_has_avx2_fma())
        return 0;
    /* F, and the VL and BW extensions the kernel files are compiled with. */
    const unsigned need = (1u << 16) | (1u << 30) | (1u << 31); /* AVX512F, BW, VL */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || (b & need) != need)
        return 0;
    return (xcr0() & 0xe6) == 0xe6; /* opmask, ZMM_Hi256, Hi16_ZMM state too */
}

#else
int alloy__cpu_has_avx2_fma(void) { return 0; }
int alloy__cpu_has_avx512f(void) { return 0; }
const alloy__cpu_kernels *alloy__cpu_kernels_avx2(void) { return 0; }
const alloy__cpu_kernels *alloy__cpu_kernels_avx512(void) { return 0; }
#endif
