/* sgetrf_ and dgetrf_: LU with partial pivoting of an m x n column-major matrix, in place,
 * with LAPACK's argument checks (SRC/sgetrf.f), 1-based pivots and info. */
#include "blas.h"

int alloy_blas__getrf_check(int m, int n, int lda)
{
    if (m < 0)
        return 1;
    if (n < 0)
        return 2;
    if (lda < (m > 1 ? m : 1))
        return 4;
    return 0;
}

int alloy_blas__getrf_run(alloy_blas_routine counter, alloy_dtype t, int m, int n, void *a,
                          int lda, int *ipiv)
{
    if (m == 0 || n == 0)
        return 0;
    blas_call call;
    if (!alloy_blas__begin(&call, counter, alloy_blas__routine_name(counter)))
        return 0;
    int info = 0;
    alloy_array av = alloy_blas__matrix(&call, t, a, m, n, lda);
    alloy_array pv = alloy_blas__ints(&call, ipiv, m < n ? m : n);
    alloy_array iv = alloy_blas__ints(&call, &info, -1);
    if (call.status == ALLOY_OK)
        alloy_blas__check(&call, alloy_encode_lu_factor(call.cb, &av, &pv, &iv));
    alloy_blas__finish(&call);
    return info;
}

ALLOY_BLAS_EXPORT void sgetrf_(const int *m, const int *n, float *a, const int *lda, int *ipiv,
                               int *info);
ALLOY_BLAS_EXPORT void dgetrf_(const int *m, const int *n, double *a, const int *lda, int *ipiv,
                               int *info);

void sgetrf_(const int *m, const int *n, float *a, const int *lda, int *ipiv, int *info)
{
    int bad = alloy_blas__getrf_check(*m, *n, *lda);
    if (bad) {
        *info = -bad;
        alloy_blas__xerbla("SGETRF", bad);
        return;
    }
    *info = alloy_blas__getrf_run(BLAS_SGETRF, ALLOY_F32, *m, *n, a, *lda, ipiv);
}

void dgetrf_(const int *m, const int *n, double *a, const int *lda, int *ipiv, int *info)
{
    int bad = alloy_blas__getrf_check(*m, *n, *lda);
    if (bad) {
        *info = -bad;
        alloy_blas__xerbla("DGETRF", bad);
        return;
    }
    *info = alloy_blas__getrf_run(BLAS_DGETRF, ALLOY_F64, *m, *n, a, *lda, ipiv);
}
