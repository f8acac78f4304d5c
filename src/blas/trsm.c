/* strsm_ and dtrsm_: op(A) X = alpha B (side L) or X op(A) = alpha B (side R), X over B,
 * with the reference BLAS's argument checks (BLAS/SRC/strsm.f) and quick returns;
 * alpha = 0 sets B to zero without reading A or B. */
#include "blas.h"

int alloy_blas__trsm_check(const char *side, const char *uplo, const char *transa,
                           const char *diag, int m, int n, int lda, int ldb)
{
    int lside = alloy_blas__lsame(side, 'L');
    int nrowa = lside ? m : n;
    int upper = alloy_blas__lsame(uplo, 'U');
    if (!lside && !alloy_blas__lsame(side, 'R'))
        return 1;
    if (!upper && !alloy_blas__lsame(uplo, 'L'))
        return 2;
    if (!alloy_blas__lsame(transa, 'N') && !alloy_blas__lsame(transa, 'T') &&
        !alloy_blas__lsame(transa, 'C'))
        return 3;
    if (!alloy_blas__lsame(diag, 'U') && !alloy_blas__lsame(diag, 'N'))
        return 4;
    if (m < 0)
        return 5;
    if (n < 0)
        return 6;
    if (lda < (nrowa > 1 ? nrowa : 1))
        return 9;
    if (ldb < (m > 1 ? m : 1))
        return 11;
    return 0;
}

void alloy_blas__trsm_run(alloy_blas_routine counter, alloy_dtype t, const char *side,
                          const char *uplo, const char *transa, const char *diag, int m, int n,
                          double alpha, const void *a, int lda, void *b, int ldb)
{
    if (m == 0 || n == 0)
        return;
    blas_call call;
    if (!alloy_blas__begin(&call, counter, alloy_blas__routine_name(counter)))
        return;
    alloy_array bv = alloy_blas__matrix(&call, t, b, m, n, ldb);
    if (alpha == 0.0) {
        alloy_array zero = alloy_blas__zero(&call, t);
        if (call.status == ALLOY_OK)
            alloy_blas__check(&call, alloy_encode_copy(call.cb, &zero, &bv));
    } else {
        int lside = alloy_blas__lsame(side, 'L');
        int k = lside ? m : n;
        alloy_array av = alloy_blas__matrix(&call, t, a, k, k, lda);
        av = alloy_blas__apart(&call, av, &bv);
        alloy_triangular_desc d = alloy_triangular_desc_default();
        d.side = lside ? ALLOY_LEFT : ALLOY_RIGHT;
        d.uplo = alloy_blas__lsame(uplo, 'U') ? ALLOY_UPPER : ALLOY_LOWER;
        d.transpose = !alloy_blas__lsame(transa, 'N');
        d.unit_diagonal = alloy_blas__lsame(diag, 'U');
        d.alpha = alpha;
        if (call.status == ALLOY_OK)
            alloy_blas__check(&call, alloy_encode_triangular_solve(call.cb, &d, &av, &bv));
    }
    alloy_blas__finish(&call);
}

ALLOY_BLAS_EXPORT void strsm_(const char *side, const char *uplo, const char *transa,
                              const char *diag, const int *m, const int *n, const float *alpha,
                              const float *a, const int *lda, float *b, const int *ldb,
                              size_t side_len, size_t uplo_len, size_t transa_len,
                              size_t diag_len);
ALLOY_BLAS_EXPORT void dtrsm_(const char *side, const char *uplo, const char *transa,
                              const char *diag, const int *m, const int *n, const double *alpha,
                              const double *a, const int *lda, double *b, const int *ldb,
                              size_t side_len, size_t uplo_len, size_t transa_len,
                              size_t diag_len);

void strsm_(const char *side, const char *uplo, const char *transa, const char *diag,
            const int *m, const int *n, const float *alpha, const float *a, const int *lda,
            float *b, const int *ldb, size_t side_len, size_t uplo_len, size_t transa_len,
            size_t diag_len)
{
    (void)side_len;
    (void)uplo_len;
    (void)transa_len;
    (void)diag_len;
    int info = alloy_blas__trsm_check(side, uplo, transa, diag, *m, *n, *lda, *ldb);
    if (info) {
        alloy_blas__xerbla("STRSM ", info);
        return;
    }
    alloy_blas__trsm_run(BLAS_STRSM, ALLOY_F32, side, uplo, transa, diag, *m, *n, *alpha, a,
                         *lda, b, *ldb);
}

void dtrsm_(const char *side, const char *uplo, const char *transa, const char *diag,
            const int *m, const int *n, const double *alpha, const double *a, const int *lda,
            double *b, const int *ldb, size_t side_len, size_t uplo_len, size_t transa_len,
            size_t diag_len)
{
    (void)side_len;
    (void)uplo_len;
    (void)transa_len;
    (void)diag_len;
    int info = alloy_blas__trsm_check(side, uplo, transa, diag, *m, *n, *lda, *ldb);
    if (info) {
        alloy_blas__xerbla("DTRSM ", info);
        return;
    }
    alloy_blas__trsm_run(BLAS_DTRSM, ALLOY_F64, side, uplo, transa, diag, *m, *n, *alpha, a,
                         *lda, b, *ldb);
}
