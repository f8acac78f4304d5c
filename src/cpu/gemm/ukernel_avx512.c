/* AVX-512F microkernels: f32 12 x 32 and f64 12 x 16, 24 zmm accumulators each.
 * Per k step: two vector loads of B, twelve broadcasts of A, 24 FMAs. Half-width ones
 * (12 x 16, 12 x 8) for narrow edges, and direct ones for small products. The kernels are
 * written once in ukernel_avx512.inc, included here per precision. */
#include "kernels.h"

#include <immintrin.h>
#include <math.h>

#define MR 12
#define KC 256 /* the table's kc: a packed block's depth, packed A's row stride */

#define ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

/* Over the last 2 * MR k steps of a packed kernel call, four lines every fourth step: the
 * C micro-tile right of this one into L1, where the sweep's next call loads it first (it
 * was last written a whole K block ago, so it is in L2 or L3, and the next call's chains
 * would wait on it). Past the tile's last column the lines are another tile's, or none:
 * a prefetch neither faults nor changes a result. Only when this call accumulates: the
 * next call of its sweep then loads C too (in the first K block nobody reads C). */
#ifdef ALLOY_PREFETCH_CHECK
/* (kernels.h lets a kernel hint the columns right of its C micro-tile, which for a row's
 * last tile may lie past C: not checked) */
#define PREFETCH_NEXT_C
#else
#define PREFETCH_NEXT_C                                                                            \
    if (accumulate && k + 2 * MR >= kc) {                                                          \
        const char *r = (const char *)(acc + 2 * L + ((kc - k) / 2 - 2) * ldacc);                  \
        const int64_t row = ldacc * (int64_t)sizeof(T);                                            \
        ALLOY__PREFETCH(r, _MM_HINT_T0);                                                           \
        ALLOY__PREFETCH(r + 64, _MM_HINT_T0);                                                      \
        ALLOY__PREFETCH(r + row, _MM_HINT_T0);                                                     \
        ALLOY__PREFETCH(r + row + 64, _MM_HINT_T0);                                                \
    }
#endif

/* The k loop of the packed kernels around their KSTEP (one k step; advances b and k): with
 * a `next` hint, kc * 16 bytes of it into L2, one 64-byte line every fourth step; and the
 * next C micro-tile into L1 at the end. */
#define K_LOOP                                                                                     \
    int64_t k = 0;                                                                                 \
    if (next) {                                                                                    \
        const char *pf = (const char *)next;                                                       \
        for (; k + 4 <= kc; pf += 4 * ALLOY__UKR_PREFETCH_PER_K) {                                 \
            ALLOY__PREFETCH(pf, _MM_HINT_T1);                                                      \
            PREFETCH_NEXT_C                                                                        \
            KSTEP KSTEP KSTEP KSTEP                                                                \
        }                                                                                          \
    } else {                                                                                       \
        while (k + 4 <= kc) {                                                                      \
            PREFETCH_NEXT_C                                                                        \
            KSTEP KSTEP KSTEP KSTEP                                                                \
        }                                                                                          \
    }                                                                                              \
    while (k < kc)                                                                                 \
    KSTEP

/* the first n (< L) lanes of the skinny kernel's leftover columns, nothing past them
 * touched */
#define VLOADN(p, n) VMLOADZ((M)((1u << (n)) - 1), p)
#define VSTOREN(p, v, n) VMSTORE(p, (M)((1u << (n)) - 1), v)

#define T float
#define SUF f32
#define V __m512
#define L 16
#define M __mmask16
#define VLOAD _mm512_load_ps
#define VLOADU _mm512_loadu_ps
#define VMLOADZ _mm512_maskz_loadu_ps
#define VSTOREU _mm512_storeu_ps
#define VMSTORE _mm512_mask_storeu_ps
#define VSET1 _mm512_set1_ps
#define VZERO _mm512_setzero_ps
#define VFMA _mm512_fmadd_ps
#define VSTORE1(p, v) _mm_store_ss(p, _mm512_castps512_ps128(v))
#include "ukernel_avx512.inc"
#include "ukernel_panel.inc"
#define SFMA fmaf
#include "skinny.inc"
#undef M
#undef VLOAD
#undef VMLOADZ
#undef VMSTORE
#undef T
#undef SUF
#undef V
#undef L
#undef VLOADU
#undef VSTOREU
#undef VSET1
#undef VZERO
#undef VFMA
#undef VSTORE1
#undef SFMA

#define T double
#define SUF f64
#define V __m512d
#define L 8
#define M __mmask8
#define VLOAD _mm512_load_pd
#define VLOADU _mm512_loadu_pd
#define VMLOADZ _mm512_maskz_loadu_pd
#define VSTOREU _mm512_storeu_pd
#define VMSTORE _mm512_mask_storeu_pd
#define VSET1 _mm512_set1_pd
#define VZERO _mm512_setzero_pd
#define VFMA _mm512_fmadd_pd
#define VSTORE1(p, v) _mm_store_sd(p, _mm512_castpd512_pd128(v))
#include "ukernel_avx512.inc"
#include "ukernel_panel.inc"
#define SFMA fma
#include "skinny.inc"
#undef M
#undef VLOAD
#undef VMLOADZ
#undef VMSTORE
#undef T
#undef SUF
#undef V
#undef L
#undef VLOADU
#undef VSTOREU
#undef VSET1
#undef VZERO
#undef VFMA
#undef VSTORE1
#undef SFMA

#undef VLOADN
#undef VSTOREN

static const alloy__cpu_kernels avx512 = {
    "avx512",
    ALLOY_CPU_KERNEL_AVX512,
    {MR, 32, KC, 144, 512, 144, 8, 2048},
    {MR, 16, KC, 144, 256, 144, 4, 1024},
    ukr_f32,
    ukr_f64,
    ukr_half_f32,
    ukr_half_f64,
    ukr_direct_f32,
    ukr_direct_f64,
    alloy__norm_row_f32_avx512,
    alloy__norm_row_f64_avx512,
    gemv_f32,
    gemv_f64,
    axpy_f32,
    axpy_f64,
    alloy__thin_f32_avx512,
    alloy__thin_f64_avx512,
    alloy__lu_leaf_f32_avx512,
    alloy__lu_leaf_f64_avx512,
    ukr_panel_f32,
    ukr_panel_f64,
};

const alloy__cpu_kernels *alloy__cpu_kernels_avx512(void) { return &avx512; }
