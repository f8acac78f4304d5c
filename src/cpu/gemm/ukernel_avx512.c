/* AVX-512F microkernels: f32 12 x 32 and f64 12 x 16, 24 zmm accumulators each.
 * Per k step: two vector loads of B, twelve broadcasts of A, 24 FMAs. */
#include "kernels.h"

#include <immintrin.h>
#include <math.h>

#define MR 12
#define KC 256 /* packed A: row i of a sliver at a + i * KC */

#define ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

static void ukr_f32(int64_t kc, const float *a, const float *b, float *acc, int64_t ldacc,
                    int accumulate)
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
    for (int64_t k = 0; k < kc; k++) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#define STEP(i)                                                                                    \
    {                                                                                              \
        __m512 ai = _mm512_set1_ps(a[(i)*KC + k]);                                                          \
        c##i##0 = _mm512_fmadd_ps(ai, b0, c##i##0);                                                \
        c##i##1 = _mm512_fmadd_ps(ai, b1, c##i##1);                                                \
    }
        ROWS(STEP)
#undef STEP
        b += 32;
    }
#define STORE(i)                                                                                   \
    _mm512_storeu_ps(acc + (i)*ldacc, c##i##0);                                                    \
    _mm512_storeu_ps(acc + (i)*ldacc + 16, c##i##1);
    ROWS(STORE)
#undef STORE
}

static void ukr_f64(int64_t kc, const double *a, const double *b, double *acc, int64_t ldacc,
                    int accumulate)
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
    for (int64_t k = 0; k < kc; k++) {
        __m512d b0 = _mm512_load_pd(b), b1 = _mm512_load_pd(b + 8);
#define STEP(i)                                                                                    \
    {                                                                                              \
        __m512d ai = _mm512_set1_pd(a[(i)*KC + k]);                                                         \
        c##i##0 = _mm512_fmadd_pd(ai, b0, c##i##0);                                                \
        c##i##1 = _mm512_fmadd_pd(ai, b1, c##i##1);                                                \
    }
        ROWS(STEP)
#undef STEP
        b += 16;
    }
#define STORE(i)                                                                                   \
    _mm512_storeu_pd(acc + (i)*ldacc, c##i##0);                                                    \
    _mm512_storeu_pd(acc + (i)*ldacc + 8, c##i##1);
    ROWS(STORE)
#undef STORE
}

/* Skinny kernel, m rows (a constant after inlining, so the accumulators stay in
 * registers): 4 vectors of columns at a time, k in order; leftover columns one by one
 * through the same FMA chain. */
static inline void gemv_f32_rows(int64_t kc, const int m, int64_t n, const float *a, int64_t lda,
                                  const float *b, int64_t ldb, float *acc, int64_t ldacc,
                                  int accumulate)
{
    const int64_t W = 4 * 16;
    int64_t j0 = 0;
    for (; j0 + W <= n; j0 += W) {
        __m512 c[4][4];
        for (int i = 0; i < m; i++)
            for (int v = 0; v < 4; v++)
                c[i][v] = accumulate ? _mm512_loadu_ps(acc + i * ldacc + j0 + v * 16)
                                     : _mm512_setzero_ps();
        for (int64_t k = 0; k < kc; k++) {
            const float *bk = b + k * ldb + j0;
            __m512 b0 = _mm512_loadu_ps(bk), b1 = _mm512_loadu_ps(bk + 16);
            __m512 b2 = _mm512_loadu_ps(bk + 2 * 16), b3 = _mm512_loadu_ps(bk + 3 * 16);
            for (int i = 0; i < m; i++) {
                __m512 ai = _mm512_set1_ps(a[i * lda + k]);
                c[i][0] = _mm512_fmadd_ps(ai, b0, c[i][0]);
                c[i][1] = _mm512_fmadd_ps(ai, b1, c[i][1]);
                c[i][2] = _mm512_fmadd_ps(ai, b2, c[i][2]);
                c[i][3] = _mm512_fmadd_ps(ai, b3, c[i][3]);
            }
        }
        for (int i = 0; i < m; i++)
            for (int v = 0; v < 4; v++)
                _mm512_storeu_ps(acc + i * ldacc + j0 + v * 16, c[i][v]);
    }
    for (; j0 + 16 <= n; j0 += 16) { /* single vectors */
        __m512 c[4];
        for (int i = 0; i < m; i++)
            c[i] = accumulate ? _mm512_loadu_ps(acc + i * ldacc + j0) : _mm512_setzero_ps();
        for (int64_t k = 0; k < kc; k++) {
            __m512 bk = _mm512_loadu_ps(b + k * ldb + j0);
            for (int i = 0; i < m; i++)
                c[i] = _mm512_fmadd_ps(_mm512_set1_ps(a[i * lda + k]), bk, c[i]);
        }
        for (int i = 0; i < m; i++)
            _mm512_storeu_ps(acc + i * ldacc + j0, c[i]);
    }
    const int64_t rest = n - j0; /* < 16 columns: independent scalar chains, interleaved */
    if (rest > 0) {
        float s[4][16];
        for (int i = 0; i < m; i++)
            for (int64_t j = 0; j < rest; j++)
                s[i][j] = accumulate ? acc[i * ldacc + j0 + j] : 0;
        for (int64_t k = 0; k < kc; k++)
            for (int i = 0; i < m; i++) {
                const float ak = a[i * lda + k];
                for (int64_t j = 0; j < rest; j++)
                    s[i][j] = fmaf(ak, b[k * ldb + j0 + j], s[i][j]);
            }
        for (int i = 0; i < m; i++)
            for (int64_t j = 0; j < rest; j++)
                acc[i * ldacc + j0 + j] = s[i][j];
    }
}

static void gemv_f32(int64_t kc, int64_t m, int64_t n, const float *a, int64_t lda,
                     const float *b, int64_t ldb, float *acc, int64_t ldacc, int accumulate)
{
    switch (m) {
    case 1: gemv_f32_rows(kc, 1, n, a, lda, b, ldb, acc, ldacc, accumulate); break;
    case 2: gemv_f32_rows(kc, 2, n, a, lda, b, ldb, acc, ldacc, accumulate); break;
    case 3: gemv_f32_rows(kc, 3, n, a, lda, b, ldb, acc, ldacc, accumulate); break;
    default: gemv_f32_rows(kc, 4, n, a, lda, b, ldb, acc, ldacc, accumulate); break;
    }
}

/* Skinny kernel, m rows (a constant after inlining, so the accumulators stay in
 * registers): 4 vectors of columns at a time, k in order; leftover columns one by one
 * through the same FMA chain. */
static inline void gemv_f64_rows(int64_t kc, const int m, int64_t n, const double *a, int64_t lda,
                                  const double *b, int64_t ldb, double *acc, int64_t ldacc,
                                  int accumulate)
{
    const int64_t W = 4 * 8;
    int64_t j0 = 0;
    for (; j0 + W <= n; j0 += W) {
        __m512d c[4][4];
        for (int i = 0; i < m; i++)
            for (int v = 0; v < 4; v++)
                c[i][v] = accumulate ? _mm512_loadu_pd(acc + i * ldacc + j0 + v * 8)
                                     : _mm512_setzero_pd();
        for (int64_t k = 0; k < kc; k++) {
            const double *bk = b + k * ldb + j0;
            __m512d b0 = _mm512_loadu_pd(bk), b1 = _mm512_loadu_pd(bk + 8);
            __m512d b2 = _mm512_loadu_pd(bk + 2 * 8), b3 = _mm512_loadu_pd(bk + 3 * 8);
            for (int i = 0; i < m; i++) {
                __m512d ai = _mm512_set1_pd(a[i * lda + k]);
                c[i][0] = _mm512_fmadd_pd(ai, b0, c[i][0]);
                c[i][1] = _mm512_fmadd_pd(ai, b1, c[i][1]);
                c[i][2] = _mm512_fmadd_pd(ai, b2, c[i][2]);
                c[i][3] = _mm512_fmadd_pd(ai, b3, c[i][3]);
            }
        }
        for (int i = 0; i < m; i++)
            for (int v = 0; v < 4; v++)
                _mm512_storeu_pd(acc + i * ldacc + j0 + v * 8, c[i][v]);
    }
    for (; j0 + 8 <= n; j0 += 8) { /* single vectors */
        __m512d c[4];
        for (int i = 0; i < m; i++)
            c[i] = accumulate ? _mm512_loadu_pd(acc + i * ldacc + j0) : _mm512_setzero_pd();
        for (int64_t k = 0; k < kc; k++) {
            __m512d bk = _mm512_loadu_pd(b + k * ldb + j0);
            for (int i = 0; i < m; i++)
                c[i] = _mm512_fmadd_pd(_mm512_set1_pd(a[i * lda + k]), bk, c[i]);
        }
        for (int i = 0; i < m; i++)
            _mm512_storeu_pd(acc + i * ldacc + j0, c[i]);
    }
    const int64_t rest = n - j0; /* < 8 columns: independent scalar chains, interleaved */
    if (rest > 0) {
        double s[4][8];
        for (int i = 0; i < m; i++)
            for (int64_t j = 0; j < rest; j++)
                s[i][j] = accumulate ? acc[i * ldacc + j0 + j] : 0;
        for (int64_t k = 0; k < kc; k++)
            for (int i = 0; i < m; i++) {
                const double ak = a[i * lda + k];
                for (int64_t j = 0; j < rest; j++)
                    s[i][j] = fma(ak, b[k * ldb + j0 + j], s[i][j]);
            }
        for (int i = 0; i < m; i++)
            for (int64_t j = 0; j < rest; j++)
                acc[i * ldacc + j0 + j] = s[i][j];
    }
}

static void gemv_f64(int64_t kc, int64_t m, int64_t n, const double *a, int64_t lda,
                     const double *b, int64_t ldb, double *acc, int64_t ldacc, int accumulate)
{
    switch (m) {
    case 1: gemv_f64_rows(kc, 1, n, a, lda, b, ldb, acc, ldacc, accumulate); break;
    case 2: gemv_f64_rows(kc, 2, n, a, lda, b, ldb, acc, ldacc, accumulate); break;
    case 3: gemv_f64_rows(kc, 3, n, a, lda, b, ldb, acc, ldacc, accumulate); break;
    default: gemv_f64_rows(kc, 4, n, a, lda, b, ldb, acc, ldacc, accumulate); break;
    }
}

static void axpy_f32(int64_t n, float a, const float *x, float *y)
{
    const __m512 va = _mm512_set1_ps(a);
    int64_t j = 0;
    for (; j + 16 <= n; j += 16)
        _mm512_storeu_ps(y + j, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + j), _mm512_loadu_ps(y + j)));
    for (; j < n; j++)
        y[j] = fmaf(a, x[j], y[j]);
}

static void axpy_f64(int64_t n, double a, const double *x, double *y)
{
    const __m512d va = _mm512_set1_pd(a);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        _mm512_storeu_pd(y + j, _mm512_fmadd_pd(va, _mm512_loadu_pd(x + j), _mm512_loadu_pd(y + j)));
    for (; j < n; j++)
        y[j] = fma(a, x[j], y[j]);
}

static const alloy__cpu_kernels avx512 = {
    "avx512",
    ALLOY_CPU_KERNEL_AVX512,
    {MR, 32, KC, 144, 512},
    {MR, 16, KC, 96, 256},
    ukr_f32,
    ukr_f64,
    alloy__norm_row_f32_avx512,
    alloy__norm_row_f64_avx512,
    gemv_f32,
    gemv_f64,
    axpy_f32,
    axpy_f64,
};

const alloy__cpu_kernels *alloy__cpu_kernels_avx512(void) { return &avx512; }
