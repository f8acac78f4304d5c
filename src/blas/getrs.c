/* sgetrs_ and dgetrs_: A X = B or A^T X = B from getrf's factors and pivots, X over B,
 * with LAPACK's argument checks (SRC/sgetrs.f; 'C' means 'T' for real matrices). */
#include "blas.h"

#include <string.h>

int alloy_blas__getrs_check(const char *trans, int n, int nrhs, int lda, int ldb)
{
    int notran = alloy_blas__lsame(trans, 'N');
    if (!notran && !alloy_blas__lsame(trans, 'T') && !alloy_blas__lsame(trans, 'C'))
        return 1;
    if (n < 0)
        return 2;
    if (nrhs < 0)
        return 3;
    if (lda < (n > 1 ? n : 1))
        return 5;
    if (ldb < (n > 1 ? n : 1))
        return 8;
    return 0;
}

void alloy_blas__getrs_run(alloy_blas_routine counter, alloy_dtype t, const char *trans, int n,
                           int nrhs, const void *a, int lda, const int *ipiv, void *b, int ldb)
{
    if (n == 0 || nrhs == 0)
        return;
    blas_call call;
    if (!alloy_blas__begin(&call, counter, alloy_blas__routine_name(counter)))
        return;
    alloy_array bv = alloy_blas__matrix(&call, t, b, n, nrhs, ldb);
    alloy_array lv = alloy_blas__matrix(&call, t, a, n, n, lda);
    int *piv = NULL; /* pivots are only read */
    memcpy(&piv, &ipiv, sizeof piv);
    alloy_array pv = alloy_blas__ints(&call, piv, n);
    lv = alloy_blas__apart(&call, lv, &bv);
    pv = alloy_blas__apart(&call, pv, &bv);
    alloy_lu_solve_desc d = alloy_lu_solve_desc_default();
    d.transpose = !alloy_blas__lsame(trans, 'N');
    if (call.status == ALLOY_OK)
        alloy_blas__check(&call, alloy_encode_lu_solve(call.cb, &d, &lv, &pv, &bv));
    alloy_blas__finish(&call);
}

ALLOY_BLAS_EXPORT void sgetrs_(const char *trans, const int *n, const int *nrhs, const float *a,
                               const int *lda, const int *ipiv, float *b, const int *ldb,
                               int *info, size_t trans_len);
ALLOY_BLAS_EXPORT void dgetrs_(const char *trans, const int *n, const int *nrhs, const double *a,
                               const int *lda, const int *ipiv, double *b, const int *ldb,
                               int *info, size_t trans_len);

void sgetrs_(const char *trans, const int *n, const int *nrhs, const float *a, const int *lda,
             const int *ipiv, float *b, const int *ldb, int *info, size_t trans_len)
{
    (void)trans_len;
    int bad = alloy_blas__getrs_check(trans, *n, *nrhs, *lda, *ldb);
    *info = -bad;
    if (bad) {
        alloy_blas__xerbla("SGETRS", bad);
        return;
    }
    alloy_blas__getrs_run(BLAS_SGETRS, ALLOY_F32, trans, *n, *nrhs, a, *lda, ipiv, b, *ldb);
}

void dgetrs_(const char *trans, const int *n, const int *nrhs, const double *a, const int *lda,
             const int *ipiv, double *b, const int *ldb, int *info, size_t trans_len)
{
    (void)trans_len;
    int bad = alloy_blas__getrs_check(trans, *n, *nrhs, *lda, *ldb);
    *info = -bad;
    if (bad) {
        alloy_blas__xerbla("DGETRS", bad);
        return;
    }
    alloy_blas__getrs_run(BLAS_DGETRS, ALLOY_F64, trans, *n, *nrhs, a, *lda, ipiv, b, *ldb);
}
