/* AVX2 + FMA microkernels: f32 6 x 16 and f64 6 x 8, 12 ymm accumulators each. */
#include "kernels.h"

#include <immintrin.h>
#include <math.h>

#define MR 6
#define KC 256 /* the table's kc: a packed block's depth, packed A's row stride */

#define ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)

static void ukr_f32(int64_t kc, const float *a, int64_t lda, const float *b, float *acc,
                    int64_t ldacc, int accumulate, const void *next)
{
    (void)next;
#define DECL(i) __m256 c##i##0, c##i##1;
    ROWS(DECL)
#undef DECL
    if (accumulate) {
#define LOAD(i)                                                                                    \
    c##i##0 = _mm256_loadu_ps(acc + (i)*ldacc);                                                    \
    c##i##1 = _mm256_loadu_ps(acc + (i)*ldacc + 8);
        ROWS(LOAD)
#undef LOAD
    } else {
#define ZERO(i)                                                                                    \
    c##i##0 = _mm256_setzero_ps();                                                                 \
    c##i##1 = _mm256_setzero_ps();
        ROWS(ZERO)
#undef ZERO
    }
    for (int64_t k = 0; k < kc; k++) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#define STEP(i)                                                                                    \
    {                                                                                              \
        __m256 ai = _mm256_broadcast_ss(a + (i)*lda + k);                                          \
        c##i##0 = _mm256_fmadd_ps(ai, b0, c##i##0);                                                \
        c##i##1 = _mm256_fmadd_ps(ai, b1, c##i##1);                                                \
    }
        ROWS(STEP)
#undef STEP
        b += 16;
    }
#define STORE(i)                                                                                   \
    _mm256_storeu_ps(acc + (i)*ldacc, c##i##0);                                                    \
    _mm256_storeu_ps(acc + (i)*ldacc + 8, c##i##1);
    ROWS(STORE)
#undef STORE
}

static void ukr_f64(int64_t kc, const double *a, int64_t lda, const double *b, double *acc,
                    int64_t ldacc, int accumulate, const void *next)
{
    (void)next;
#define DECL(i) __m256d c##i##0, c##i##1;
    ROWS(DECL)
#undef DECL
    if (accumulate) {
#define LOAD(i)                                                                                    \
    c##i##0 = _mm256_loadu_pd(acc + (i)*ldacc);                                                    \
    c##i##1 = _mm256_loadu_pd(acc + (i)*ldacc + 4);
        ROWS(LOAD)
#undef LOAD
    } else {
#define ZERO(i)                                                                                    \
    c##i##0 = _mm256_setzero_pd();                                                                 \
    c##i##1 = _mm256_setzero_pd();
        ROWS(ZERO)
#undef ZERO
    }
    for (int64_t k = 0; k < kc; k++) {
        __m256d b0 = _mm256_load_pd(b), b1 = _mm256_load_pd(b + 4);
#define STEP(i)                                                                                    \
    {                                                                                              \
        __m256d ai = _mm256_broadcast_sd(a + (i)*lda + k);                                         \
        c##i##0 = _mm256_fmadd_pd(ai, b0, c##i##0);                                                \
        c##i##1 = _mm256_fmadd_pd(ai, b1, c##i##1);                                                \
    }
        ROWS(STEP)
#undef STEP
        b += 8;
    }
#define STORE(i)                                                                                   \
    _mm256_storeu_pd(acc + (i)*ldacc, c##i##0);                                                    \
    _mm256_storeu_pd(acc + (i)*ldacc + 4, c##i##1);
    ROWS(STORE)
#undef STORE
}

#define T float
#define SUF f32
#define V __m256
#define L 8
#define VLOADU _mm256_loadu_ps
#define VSTOREU _mm256_storeu_ps
#define VSET1 _mm256_set1_ps
#define VZERO _mm256_setzero_ps
#define VFMA _mm256_fmadd_ps
#define SFMA fmaf
/* the first n (< L) lanes, nothing past them touched */
#define LANES_F32(n)                                                                               \
    _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define VLOADN(p, n) _mm256_maskload_ps(p, LANES_F32(n))
#define VSTOREN(p, v, n) _mm256_maskstore_ps(p, LANES_F32(n), v)
#include "skinny.inc"
#undef VLOADN
#undef VSTOREN
#undef LANES_F32
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
#define V __m256d
#define L 4
#define VLOADU _mm256_loadu_pd
#define VSTOREU _mm256_storeu_pd
#define VSET1 _mm256_set1_pd
#define VZERO _mm256_setzero_pd
#define VFMA _mm256_fmadd_pd
#define SFMA fma
#define LANES_F64(n) _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3))
#define VLOADN(p, n) _mm256_maskload_pd(p, LANES_F64(n))
#define VSTOREN(p, v, n) _mm256_maskstore_pd(p, LANES_F64(n), v)
#include "skinny.inc"
#undef VLOADN
#undef VSTOREN
#undef LANES_F64
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

static const alloy__cpu_kernels avx2 = {
    "avx2",
    ALLOY_CPU_KERNEL_AVX2,
    {MR, 16, KC, 120, 512, 120},
    {MR, 8, KC, 96, 256, 96},
    ukr_f32,
    ukr_f64,
    NULL,
    NULL,
    NULL,
    NULL,
    alloy__norm_row_f32_avx2,
    alloy__norm_row_f64_avx2,
    gemv_f32,
    gemv_f64,
    axpy_f32,
    axpy_f64,
};

const alloy__cpu_kernels *alloy__cpu_kernels_avx2(void) { return &avx2; }
