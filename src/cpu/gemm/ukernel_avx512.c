/* AVX-512F microkernels: f32 12 x 32 and f64 12 x 16, 24 zmm accumulators each.
 * Per k step: two vector loads of B, twelve broadcasts of A, 24 FMAs. Half-width ones
 * (12 x 16, 12 x 8) for narrow edges. */
#include "kernels.h"

#include <immintrin.h>
#include <math.h>

#define MR 12
#define KC 256 /* the table's kc: a packed block's depth, packed A's row stride */

#define ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

/* The k loop of every kernel below around its KSTEP (one k step; advances b and k): with a
 * `next` hint, kc * 16 bytes of it into L2, one 64-byte line every fourth step. */
#define K_LOOP                                                                                     \
    int64_t k = 0;                                                                                 \
    if (next) {                                                                                    \
        const char *pf = (const char *)next;                                                       \
        for (; k + 4 <= kc; pf += 4 * ALLOY__UKR_PREFETCH_PER_K) {                                 \
            _mm_prefetch(pf, _MM_HINT_T1);                                                         \
            KSTEP KSTEP KSTEP KSTEP                                                                \
        }                                                                                          \
    }                                                                                              \
    while (k < kc)                                                                                 \
    KSTEP

static void ukr_f32(int64_t kc, const float *a, int64_t lda, const float *b, float *acc,
                    int64_t ldacc, int accumulate, const void *next)
{
#define DECL(i) __m512 c##i##0, c##i##1;
    ROWS(DECL)
#undef DECL
    if (accumulate) {
#define LOAD(i)                                                                                    \
    c##i##0 = _mm512_loadu_ps(acc + (i)*ldacc);                                                    \
    c##i##1 = _mm512_loadu_ps(acc + (i)*ldacc + 16);
        ROWS(LOAD)
#undef LOAD
    } else {
#define ZERO(i)                                                                                    \
    c##i##0 = _mm512_setzero_ps();                                                                 \
    c##i##1 = _mm512_setzero_ps();
        ROWS(ZERO)
#undef ZERO
    }
#define STEP(i)                                                                                    \
    {                                                                                              \
        __m512 ai = _mm512_set1_ps(a[(i)*lda + k]);                                                \
        c##i##0 = _mm512_fmadd_ps(ai, b0, c##i##0);                                                \
        c##i##1 = _mm512_fmadd_ps(ai, b1, c##i##1);                                                \
    }
#define KSTEP                                                                                      \
    {                                                                                              \
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);                                \
        ROWS(STEP)                                                                                 \
        b += 32;                                                                                   \
        k++;                                                                                       \
    }
    K_LOOP
#undef KSTEP
#undef STEP
#define STORE(i)                                                                                   \
    _mm512_storeu_ps(acc + (i)*ldacc, c##i##0);                                                    \
    _mm512_storeu_ps(acc + (i)*ldacc + 16, c##i##1);
    ROWS(STORE)
#undef STORE
}

static void ukr_f64(int64_t kc, const double *a, int64_t lda, const double *b, double *acc,
                    int64_t ldacc, int accumulate, const void *next)
{
#define DECL(i) __m512d c##i##0, c##i##1;
    ROWS(DECL)
#undef DECL
    if (accumulate) {
#define LOAD(i)                                                                                    \
    c##i##0 = _mm512_loadu_pd(acc + (i)*ldacc);                                                    \
    c##i##1 = _mm512_loadu_pd(acc + (i)*ldacc + 8);
        ROWS(LOAD)
#undef LOAD
    } else {
#define ZERO(i)                                                                                    \
    c##i##0 = _mm512_setzero_pd();                                                                 \
    c##i##1 = _mm512_setzero_pd();
        ROWS(ZERO)
#undef ZERO
    }
#define STEP(i)                                                                                    \
    {                                                                                              \
        __m512d ai = _mm512_set1_pd(a[(i)*lda + k]);                                               \
        c##i##0 = _mm512_fmadd_pd(ai, b0, c##i##0);                                                \
        c##i##1 = _mm512_fmadd_pd(ai, b1, c##i##1);                                                \
    }
#define KSTEP                                                                                      \
    {                                                                                              \
        __m512d b0 = _mm512_load_pd(b), b1 = _mm512_load_pd(b + 8);                                \
        ROWS(STEP)                                                                                 \
        b += 16;                                                                                   \
        k++;                                                                                       \
    }
    K_LOOP
#undef KSTEP
#undef STEP
#define STORE(i)                                                                                   \
    _mm512_storeu_pd(acc + (i)*ldacc, c##i##0);                                                    \
    _mm512_storeu_pd(acc + (i)*ldacc + 8, c##i##1);
    ROWS(STORE)
#undef STORE
}

/* Half-width kernels for micro-tiles of at most 16 (f32) or 8 (f64) columns: 12
 * accumulators, B rows read 32 (16) elements apart as in a full sliver. */
static void ukr_half_f32(int64_t kc, const float *a, int64_t lda, const float *b, float *acc,
                         int64_t ldacc, int accumulate, const void *next)
{
#define DECL(i) __m512 c##i;
    ROWS(DECL)
#undef DECL
#define INIT(i) c##i = accumulate ? _mm512_loadu_ps(acc + (i)*ldacc) : _mm512_setzero_ps();
    ROWS(INIT)
#undef INIT
#define STEP(i) c##i = _mm512_fmadd_ps(_mm512_set1_ps(a[(i)*lda + k]), b0, c##i);
#define KSTEP                                                                                      \
    {                                                                                              \
        __m512 b0 = _mm512_load_ps(b);                                                             \
        ROWS(STEP)                                                                                 \
        b += 32;                                                                                   \
        k++;                                                                                       \
    }
    K_LOOP
#undef KSTEP
#undef STEP
#define STORE(i) _mm512_storeu_ps(acc + (i)*ldacc, c##i);
    ROWS(STORE)
#undef STORE
}

static void ukr_half_f64(int64_t kc, const double *a, int64_t lda, const double *b, double *acc,
                         int64_t ldacc, int accumulate, const void *next)
{
#define DECL(i) __m512d c##i;
    ROWS(DECL)
#undef DECL
#define INIT(i) c##i = accumulate ? _mm512_loadu_pd(acc + (i)*ldacc) : _mm512_setzero_pd();
    ROWS(INIT)
#undef INIT
#define STEP(i) c##i = _mm512_fmadd_pd(_mm512_set1_pd(a[(i)*lda + k]), b0, c##i);
#define KSTEP                                                                                      \
    {                                                                                              \
        __m512d b0 = _mm512_load_pd(b);                                                            \
        ROWS(STEP)                                                                                 \
        b += 16;                                                                                   \
        k++;                                                                                       \
    }
    K_LOOP
#undef KSTEP
#undef STEP
#define STORE(i) _mm512_storeu_pd(acc + (i)*ldacc, c##i);
    ROWS(STORE)
#undef STORE
}

#define T float
#define SUF f32
#define V __m512
#define L 16
#define M __mmask16
#define VLOADU _mm512_loadu_ps
#define VMLOADZ _mm512_maskz_loadu_ps
#define VSTOREU _mm512_storeu_ps
#define VMSTORE _mm512_mask_storeu_ps
#define VSET1 _mm512_set1_ps
#define VZERO _mm512_setzero_ps
#define VFMA _mm512_fmadd_ps
#include "ukernel_direct_avx512.inc"
#undef M
#undef VMLOADZ
#undef VMSTORE
#define SFMA fmaf
/* the first n (< L) lanes, nothing past them touched */
#define VLOADN(p, n) _mm512_maskz_loadu_ps((__mmask16)((1u << (n)) - 1), p)
#define VSTOREN(p, v, n) _mm512_mask_storeu_ps(p, (__mmask16)((1u << (n)) - 1), v)
#include "skinny.inc"
#undef VLOADN
#undef VSTOREN
#undef T
#undef SUF
#undef V
#undef L
#undef VLOADU
#undef VSTOREU
#undef VSET1
#undef VZERO
#undef VFMA
#undef SFMA

#define T double
#define SUF f64
#define V __m512d
#define L 8
#define M __mmask8
#define VLOADU _mm512_loadu_pd
#define VMLOADZ _mm512_maskz_loadu_pd
#define VSTOREU _mm512_storeu_pd
#define VMSTORE _mm512_mask_storeu_pd
#define VSET1 _mm512_set1_pd
#define VZERO _mm512_setzero_pd
#define VFMA _mm512_fmadd_pd
#include "ukernel_direct_avx512.inc"
#undef M
#undef VMLOADZ
#undef VMSTORE
#define SFMA fma
#define VLOADN(p, n) _mm512_maskz_loadu_pd((__mmask8)((1u << (n)) - 1), p)
#define VSTOREN(p, v, n) _mm512_mask_storeu_pd(p, (__mmask8)((1u << (n)) - 1), v)
#include "skinny.inc"
#undef VLOADN
#undef VSTOREN
#undef T
#undef SUF
#undef V
#undef L
#undef VLOADU
#undef VSTOREU
#undef VSET1
#undef VZERO
#undef VFMA
#undef SFMA

static const alloy__cpu_kernels avx512 = {
    "avx512",
    ALLOY_CPU_KERNEL_AVX512,
    {MR, 32, KC, 144, 512, 144},
    {MR, 16, KC, 144, 256, 144},
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
};

const alloy__cpu_kernels *alloy__cpu_kernels_avx512(void) { return &avx512; }
