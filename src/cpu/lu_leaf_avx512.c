/* The leaf of the recursive LU (solve.inc's lu_leaf) with AVX-512: a panel row of up to
 * 16 columns is one vector (two for f64), so a column's elimination is one pass over the
 * rows that loads a row, forms its multiplier, updates the columns right of the pivot
 * with one masked FMA, stores it, and meanwhile finds the next column's pivot. The C leaf
 * instead searched each column in a pass of its own and updated every row through an axpy
 * call of at most 15 elements: 38% of a 1024 f32 LU's time.
 *
 * Every value is what the C leaf computes: the multiplier is a[i][j] * (1 / d) (a[i][j] / d
 * when |d| is below the smallest normal), each update is one FMA, fma(-l, u, x) with -l
 * formed first as the axpy's argument is (so a NaN multiplier's sign bit flips the same
 * way; an FNMADD would leave it), and the pivot is the first row of largest magnitude (a
 * NaN is never chosen over the first row searched), so the factors and pivots are bitwise
 * the C leaf's (tests/test_linalg_concurrency.c kernels_bitwise_lu_edges). Loads and stores
 * are masked to the panel's n columns. Compiled with AVX-512 flags (CMakeLists.txt); run
 * only where CPUID says so, through the device's kernel table. */
#include "solve.h"

#include <float.h>
#include <immintrin.h>
#include <math.h>

/* -x by flipping the sign bit (AVX-512F has no float XOR; DQ does). */
static inline __m512 neg_ps(__m512 x)
{
    return _mm512_castsi512_ps(
        _mm512_xor_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u)));
}

static inline __m512d neg_pd(__m512d x)
{
    return _mm512_castsi512_pd(_mm512_xor_si512(
        _mm512_castpd_si512(x), _mm512_set1_epi64((long long)0x8000000000000000ull)));
}

int64_t alloy__lu_leaf_f32_avx512(float *a, int64_t lda, int64_t m, int64_t n, int64_t *piv)
{
    const int64_t mn = m < n ? m : n;
    const __mmask16 cols = (__mmask16)((1u << n) - 1u);
    int64_t info = -1;
    int64_t p = mn > 0 ? alloy__pivot_row_f32(a, lda, m, 0) : 0;
    for (int64_t j = 0; j < mn; j++) {
        piv[j] = p;
        const int next = j + 1 < mn; /* a pivot to find for column j + 1 */
        if (a[p * lda + j] == 0) {
            if (info < 0)
                info = j; /* an exactly zero column: recorded, nothing divided */
            p = next ? alloy__pivot_row_f32(a, lda, m, j + 1) : 0;
            continue;
        }
        float *aj = a + j * lda;
        if (p != j) {
            float *ap = a + p * lda;
            const __m512 rj = _mm512_maskz_loadu_ps(cols, aj), rp = _mm512_maskz_loadu_ps(cols, ap);
            _mm512_mask_storeu_ps(aj, cols, rp);
            _mm512_mask_storeu_ps(ap, cols, rj);
        }
        const float d = aj[j];
        const int small = !(fabsf(d) >= FLT_MIN);
        const __m512 u = _mm512_maskz_loadu_ps(cols, aj);
        const __m512 vd = _mm512_set1_ps(d), vr = _mm512_set1_ps(1.0f / d);
        const __mmask16 at = (__mmask16)(1u << j);
        const __mmask16 right = (__mmask16)(cols & ~((2u << j) - 1u));
        const __m512i lane_j = _mm512_set1_epi32((int)j), lane_next = _mm512_set1_epi32((int)j + 1);
        float best = 0.0f;
        int64_t bp = j + 1;
        for (int64_t i = j + 1; i < m; i++) {
            float *ai = a + i * lda;
            __m512 x = _mm512_maskz_loadu_ps(cols, ai);
            const __m512 xj = _mm512_permutexvar_ps(lane_j, x);
            const __m512 l = small ? _mm512_div_ps(xj, vd) : _mm512_mul_ps(xj, vr);
            x = _mm512_mask3_fmadd_ps(neg_ps(l), u, x, right);
            x = _mm512_mask_mov_ps(x, at, l);
            _mm512_mask_storeu_ps(ai, cols, x);
            if (next) {
                const float v = fabsf(_mm512_cvtss_f32(_mm512_permutexvar_ps(lane_next, x)));
                if (i == j + 1 || v > best) {
                    best = v;
                    bp = i;
                }
            }
        }
        p = bp;
    }
    return info;
}

int64_t alloy__lu_leaf_f64_avx512(double *a, int64_t lda, int64_t m, int64_t n, int64_t *piv)
{
    const int64_t mn = m < n ? m : n;
    /* columns 0-7 in the first vector, 8-15 in the second */
    const __mmask8 cols0 = (__mmask8)(n >= 8 ? 0xffu : (1u << n) - 1u);
    const __mmask8 cols1 = (__mmask8)(n <= 8 ? 0u : (1u << (n - 8)) - 1u);
    int64_t info = -1;
    int64_t p = mn > 0 ? alloy__pivot_row_f64(a, lda, m, 0) : 0;
    for (int64_t j = 0; j < mn; j++) {
        piv[j] = p;
        const int next = j + 1 < mn;
        if (a[p * lda + j] == 0) {
            if (info < 0)
                info = j;
            p = next ? alloy__pivot_row_f64(a, lda, m, j + 1) : 0;
            continue;
        }
        double *aj = a + j * lda;
        if (p != j) {
            double *ap = a + p * lda;
            const __m512d j0 = _mm512_maskz_loadu_pd(cols0, aj),
                          p0 = _mm512_maskz_loadu_pd(cols0, ap);
            const __m512d j1 = _mm512_maskz_loadu_pd(cols1, aj + 8);
            const __m512d p1 = _mm512_maskz_loadu_pd(cols1, ap + 8);
            _mm512_mask_storeu_pd(aj, cols0, p0);
            _mm512_mask_storeu_pd(ap, cols0, j0);
            _mm512_mask_storeu_pd(aj + 8, cols1, p1);
            _mm512_mask_storeu_pd(ap + 8, cols1, j1);
        }
        const double d = aj[j];
        const int small = !(fabs(d) >= DBL_MIN);
        const __m512d u0 = _mm512_maskz_loadu_pd(cols0, aj);
        const __m512d u1 = _mm512_maskz_loadu_pd(cols1, aj + 8);
        const __m512d vd = _mm512_set1_pd(d), vr = _mm512_set1_pd(1.0 / d);
        /* lanes right of column j, and column j's lane, in each vector */
        const unsigned after = ~((2u << j) - 1u);
        const __mmask8 right0 = (__mmask8)(cols0 & after),
                       right1 = (__mmask8)(cols1 & (after >> 8));
        const __mmask8 at0 = (__mmask8)(j < 8 ? 1u << j : 0u);
        const __mmask8 at1 = (__mmask8)(j >= 8 ? 1u << (j - 8) : 0u);
        const int hi = j >= 8, hi_next = j + 1 >= 8;
        const __m512i lane_j = _mm512_set1_epi64(j & 7), lane_next = _mm512_set1_epi64((j + 1) & 7);
        double best = 0.0;
        int64_t bp = j + 1;
        for (int64_t i = j + 1; i < m; i++) {
            double *ai = a + i * lda;
            __m512d x0 = _mm512_maskz_loadu_pd(cols0, ai);
            __m512d x1 = _mm512_maskz_loadu_pd(cols1, ai + 8);
            const __m512d xj = _mm512_permutexvar_pd(lane_j, hi ? x1 : x0);
            const __m512d l = small ? _mm512_div_pd(xj, vd) : _mm512_mul_pd(xj, vr);
            const __m512d nl = neg_pd(l);
            x0 = _mm512_mask3_fmadd_pd(nl, u0, x0, right0);
            x1 = _mm512_mask3_fmadd_pd(nl, u1, x1, right1);
            x0 = _mm512_mask_mov_pd(x0, at0, l);
            x1 = _mm512_mask_mov_pd(x1, at1, l);
            _mm512_mask_storeu_pd(ai, cols0, x0);
            _mm512_mask_storeu_pd(ai + 8, cols1, x1);
            if (next) {
                const double v =
                    fabs(_mm512_cvtsd_f64(_mm512_permutexvar_pd(lane_next, hi_next ? x1 : x0)));
                if (i == j + 1 || v > best) {
                    best = v;
                    bp = i;
                }
            }
        }
        p = bp;
    }
    return info;
}
