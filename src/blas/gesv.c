/* sgesv_ and dgesv_: solve A X = B by getrf then getrs, as LAPACK's SRC/sgesv.f does: the
 * solve runs only when the factorization found no exactly zero pivot (info = 0); B is
 * left as it was otherwise. The factorization and the solve are two command buffers on
 * the caller's queue, because the second depends on the first's info. */
#include "blas.h"

static int gesv_check(int n, int nrhs, int lda, int ldb)
{
    if (n < 0)
        return 1;
    if (nrhs < 0)
        return 2;
    if (lda < (n > 1 ? n : 1))
        return 4;
    if (ldb < (n > 1 ? n : 1))
        return 7;
    return 0;
}

static int gesv_run(alloy_blas_routine counter, alloy_dtype t, int n, int nrhs, void *a, int lda,
                    int *ipiv, void *b, int ldb)
{
    int info = alloy_blas__getrf_run(counter, t, n, n, a, lda, ipiv);
    if (info == 0)
        alloy_blas__getrs_run((alloy_blas_routine)(counter | BLAS_STEP), t, "N", n, nrhs, a, lda, ipiv, b, ldb);
    return info;
}

ALLOY_BLAS_EXPORT void sgesv_(const int *n, const int *nrhs, float *a, const int *lda, int *ipiv,
                              float *b, const int *ldb, int *info);
ALLOY_BLAS_EXPORT void dgesv_(const int *n, const int *nrhs, double *a, const int *lda,
                              int *ipiv, double *b, const int *ldb, int *info);

void sgesv_(const int *n, const int *nrhs, float *a, const int *lda, int *ipiv, float *b,
            const int *ldb, int *info)
{
    int bad = gesv_check(*n, *nrhs, *lda, *ldb);
    if (bad) {
        *info = -bad;
        alloy_blas__xerbla("SGESV ", bad);
        return;
    }
    *info = gesv_run(BLAS_SGESV, ALLOY_F32, *n, *nrhs, a, *lda, ipiv, b, *ldb);
}

void dgesv_(const int *n, const int *nrhs, double *a, const int *lda, int *ipiv, double *b,
            const int *ldb, int *info)
{
    int bad = gesv_check(*n, *nrhs, *lda, *ldb);
    if (bad) {
        *info = -bad;
        alloy_blas__xerbla("DGESV ", bad);
        return;
    }
    *info = gesv_run(BLAS_DGESV, ALLOY_F64, *n, *nrhs, a, *lda, ipiv, b, *ldb);
}
