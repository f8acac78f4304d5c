/* sgemm_ and dgemm_: C = alpha*op(A)*op(B) + beta*C on column-major arrays, with the
 * reference BLAS's argument checks (BLAS/SRC/sgemm.f), quick returns and zero rules. */
#include "blas.h"

int alloy_blas__gemm_check(const char *transa, const char *transb, int m, int n, int k, int lda,
                           int ldb, int ldc)
{
    int nota = alloy_blas__lsame(transa, 'N');
    int notb = alloy_blas__lsame(transb, 'N');
    int nrowa = nota ? m : k;
    int nrowb = notb ? k : n;
    if (!nota && !alloy_blas__lsame(transa, 'C') && !alloy_blas__lsame(transa, 'T'))
        return 1;
    if (!notb && !alloy_blas__lsame(transb, 'C') && !alloy_blas__lsame(transb, 'T'))
        return 2;
    if (m < 0)
        return 3;
    if (n < 0)
        return 4;
    if (k < 0)
        return 5;
    if (lda < (nrowa > 1 ? nrowa : 1))
        return 8;
    if (ldb < (nrowb > 1 ? nrowb : 1))
        return 10;
    if (ldc < (m > 1 ? m : 1))
        return 13;
    return 0;
}

void alloy_blas__gemm_run(alloy_blas_routine counter, alloy_dtype t, const char *transa,
                          const char *transb, int m, int n, int k, double alpha, const void *a,
                          int lda, const void *b, int ldb, double beta, void *c, int ldc)
{
    /* the reference's quick return: nothing is read or written */
    if (m == 0 || n == 0 || ((alpha == 0.0 || k == 0) && beta == 1.0))
        return;
    blas_call call;
    if (!alloy_blas__begin(&call, counter, alloy_blas__routine_name(counter)))
        return;
    alloy_array cv = alloy_blas__matrix(&call, t, c, m, n, ldc);
    alloy_array av, bv;
    if (alpha == 0.0 || k == 0) {
        /* C = beta*C (0 when beta is 0): A and B are never read. Empty operands keep
         * alloy from looking at them; alloy's alpha = 0 and beta = 0 rules do the rest. */
        alpha = 0.0;
        av = alloy_blas__matrix(&call, t, NULL, m, 0, 1);
        bv = alloy_blas__matrix(&call, t, NULL, 0, n, 1);
    } else {
        int nota = alloy_blas__lsame(transa, 'N');
        int notb = alloy_blas__lsame(transb, 'N');
        av = nota ? alloy_blas__matrix(&call, t, a, m, k, lda)
                  : alloy_blas__t(alloy_blas__matrix(&call, t, a, k, m, lda));
        bv = notb ? alloy_blas__matrix(&call, t, b, k, n, ldb)
                  : alloy_blas__t(alloy_blas__matrix(&call, t, b, n, k, ldb));
        av = alloy_blas__apart(&call, av, &cv);
        bv = alloy_blas__apart(&call, bv, &cv);
    }
    alloy_matmul_desc d = alloy_matmul_desc_default();
    d.alpha = alpha;
    d.beta = beta;
    if (call.status == ALLOY_OK)
        alloy_blas__check(&call, alloy_encode_matmul(call.cb, &d, &av, &bv, NULL, &cv));
    alloy_blas__finish(&call);
}

ALLOY_BLAS_EXPORT void sgemm_(const char *transa, const char *transb, const int *m, const int *n,
                              const int *k, const float *alpha, const float *a, const int *lda,
                              const float *b, const int *ldb, const float *beta, float *c,
                              const int *ldc, size_t transa_len, size_t transb_len);
ALLOY_BLAS_EXPORT void dgemm_(const char *transa, const char *transb, const int *m, const int *n,
                              const int *k, const double *alpha, const double *a,
                              const int *lda, const double *b, const int *ldb,
                              const double *beta, double *c, const int *ldc, size_t transa_len,
                              size_t transb_len);

void sgemm_(const char *transa, const char *transb, const int *m, const int *n, const int *k,
            const float *alpha, const float *a, const int *lda, const float *b, const int *ldb,
            const float *beta, float *c, const int *ldc, size_t transa_len, size_t transb_len)
{
    (void)transa_len;
    (void)transb_len;
    int info = alloy_blas__gemm_check(transa, transb, *m, *n, *k, *lda, *ldb, *ldc);
    if (info) {
        alloy_blas__xerbla("SGEMM ", info);
        return;
    }
    alloy_blas__gemm_run(BLAS_SGEMM, ALLOY_F32, transa, transb, *m, *n, *k, *alpha, a, *lda, b,
                         *ldb, *beta, c, *ldc);
}

void dgemm_(const char *transa, const char *transb, const int *m, const int *n, const int *k,
            const double *alpha, const double *a, const int *lda, const double *b,
            const int *ldb, const double *beta, double *c, const int *ldc, size_t transa_len,
            size_t transb_len)
{
    (void)transa_len;
    (void)transb_len;
    int info = alloy_blas__gemm_check(transa, transb, *m, *n, *k, *lda, *ldb, *ldc);
    if (info) {
        alloy_blas__xerbla("DGEMM ", info);
        return;
    }
    alloy_blas__gemm_run(BLAS_DGEMM, ALLOY_F64, transa, transb, *m, *n, *k, *alpha, a, *lda, b,
                         *ldb, *beta, c, *ldc);
}
