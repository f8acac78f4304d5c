/* The portable microkernels: plain C for every machine (arm64 included). fma()/fmaf()
 * keep the contract's one-rounding steps; compilers turn them into vector FMAs where the
 * target has them. */
#include "kernels.h"

#include <math.h>

enum { MR_S = 4, NR_S = 16, MR_D = 4, NR_D = 8, KC = 256 /* packed A row stride */ };

static void ukr_f32(int64_t kc, const float *a, int64_t lda, const float *b, float *acc,
                    int64_t ldacc, int accumulate, const void *next)
{
    (void)next;
    float c[MR_S][NR_S];
    for (int i = 0; i < MR_S; i++)
        for (int j = 0; j < NR_S; j++)
            c[i][j] = accumulate ? acc[i * ldacc + j] : 0.0f;
    for (int64_t k = 0; k < kc; k++) {
        const float *bk = b + k * NR_S;
        for (int i = 0; i < MR_S; i++)
            for (int j = 0; j < NR_S; j++)
                c[i][j] = fmaf(a[i * lda + k], bk[j], c[i][j]);
    }
    for (int i = 0; i < MR_S; i++)
        for (int j = 0; j < NR_S; j++)
            acc[i * ldacc + j] = c[i][j];
}

static void ukr_f64(int64_t kc, const double *a, int64_t lda, const double *b, double *acc,
                    int64_t ldacc, int accumulate, const void *next)
{
    (void)next;
    double c[MR_D][NR_D];
    for (int i = 0; i < MR_D; i++)
        for (int j = 0; j < NR_D; j++)
            c[i][j] = accumulate ? acc[i * ldacc + j] : 0.0;
    for (int64_t k = 0; k < kc; k++) {
        const double *bk = b + k * NR_D;
        for (int i = 0; i < MR_D; i++)
            for (int j = 0; j < NR_D; j++)
                c[i][j] = fma(a[i * lda + k], bk[j], c[i][j]);
    }
    for (int i = 0; i < MR_D; i++)
        for (int j = 0; j < NR_D; j++)
            acc[i * ldacc + j] = c[i][j];
}

static void gemv_f32(int64_t kc, int64_t m, int64_t n, const float *a, int64_t lda, const float *b,
                     int64_t ldb, float *acc, int64_t ldacc, int accumulate)
{
    if (!accumulate)
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++)
                acc[i * ldacc + j] = 0.0f;
    for (int64_t k = 0; k < kc; k++)
        for (int64_t i = 0; i < m; i++) {
            const float ak = a[i * lda + k];
            for (int64_t j = 0; j < n; j++)
                acc[i * ldacc + j] = fmaf(ak, b[k * ldb + j], acc[i * ldacc + j]);
        }
}

static void gemv_f64(int64_t kc, int64_t m, int64_t n, const double *a, int64_t lda,
                     const double *b, int64_t ldb, double *acc, int64_t ldacc, int accumulate)
{
    if (!accumulate)
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++)
                acc[i * ldacc + j] = 0.0;
    for (int64_t k = 0; k < kc; k++)
        for (int64_t i = 0; i < m; i++) {
            const double ak = a[i * lda + k];
            for (int64_t j = 0; j < n; j++)
                acc[i * ldacc + j] = fma(ak, b[k * ldb + j], acc[i * ldacc + j]);
        }
}

static void axpy_f32(int64_t n, float a, const float *x, float *y)
{
    for (int64_t j = 0; j < n; j++)
        y[j] = fmaf(a, x[j], y[j]);
}

static void axpy_f64(int64_t n, double a, const double *x, double *y)
{
    for (int64_t j = 0; j < n; j++)
        y[j] = fma(a, x[j], y[j]);
}

static const alloy__cpu_kernels portable = {
    "portable",
    ALLOY_CPU_KERNEL_PORTABLE,
    {MR_S, NR_S, KC, 128, 512, 128, 0, 0},
    {MR_D, NR_D, KC, 64, 256, 64, 0, 0},
    ukr_f32,
    ukr_f64,
    NULL,
    NULL,
    NULL,
    NULL,
    alloy__norm_row_f32_portable,
    alloy__norm_row_f64_portable,
    gemv_f32,
    gemv_f64,
    axpy_f32,
    axpy_f64,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
};

const alloy__cpu_kernels *alloy__cpu_kernels_portable(void) { return &portable; }
