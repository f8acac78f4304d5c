/* cblas_sgemm, cblas_dgemm, cblas_strsm, cblas_dtrsm: the reference CBLAS's translation
 * (CBLAS/src/cblas_sgemm.c, cblas_strsm.c) onto the Fortran-level routines.
 *
 * Row-major calls become column-major calls on the transposed problem, exactly as the
 * reference does: gemm swaps M and N, A and B (with their leading dimensions) and the
 * transposes; trsm swaps M and N and flips side and uplo. Argument errors go to
 * cblas_xerbla with the reference's routine names and numbers: the enum checks with their
 * CBLAS argument numbers, the rest with the Fortran check's number plus one, of the
 * swapped call for row-major (the handler maps those back, as the reference's does). */
#include "blas.h"

/* The CBLAS enums' values (cblas.h); passed as int. */
enum {
    CBLAS_ROW_MAJOR = 101,
    CBLAS_COL_MAJOR = 102,
    CBLAS_NO_TRANS = 111,
    CBLAS_TRANS = 112,
    CBLAS_CONJ_TRANS = 113,
    CBLAS_UPPER = 121,
    CBLAS_LOWER = 122,
    CBLAS_NON_UNIT = 131,
    CBLAS_UNIT = 132,
    CBLAS_LEFT = 141,
    CBLAS_RIGHT = 142
};

/* The Fortran character for a transpose enum, or 0 when it is none. */
static char trans_char(int t)
{
    return t == CBLAS_TRANS ? 'T' : t == CBLAS_CONJ_TRANS ? 'C' : t == CBLAS_NO_TRANS ? 'N' : 0;
}

static void gemm(alloy_blas_routine counter, alloy_dtype t, const char *rout, int layout,
                 int transa, int transb, int m, int n, int k, double alpha, const void *a,
                 int lda, const void *b, int ldb, double beta, void *c, int ldc)
{
    int row_major = layout == CBLAS_ROW_MAJOR;
    if (!row_major && layout != CBLAS_COL_MAJOR) {
        alloy_blas__cblas_xerbla(1, rout, 0, "Illegal layout setting, %d\n", layout);
        return;
    }
    char ta = trans_char(transa), tb = trans_char(transb);
    if (!ta) {
        alloy_blas__cblas_xerbla(2, rout, row_major, "Illegal TransA setting, %d\n", transa);
        return;
    }
    if (!tb) {
        alloy_blas__cblas_xerbla(3, rout, row_major, "Illegal TransB setting, %d\n", transb);
        return;
    }
    if (row_major) {
        /* C^T = op(B)^T op(A)^T on the column-major views of the row-major arrays */
        int info = alloy_blas__gemm_check(&tb, &ta, n, m, k, ldb, lda, ldc);
        if (info) {
            alloy_blas__cblas_xerbla(info + 1, rout, 1, "", 0);
            return;
        }
        alloy_blas__gemm_run(counter, t, &tb, &ta, n, m, k, alpha, b, ldb, a, lda, beta, c, ldc);
    } else {
        int info = alloy_blas__gemm_check(&ta, &tb, m, n, k, lda, ldb, ldc);
        if (info) {
            alloy_blas__cblas_xerbla(info + 1, rout, 0, "", 0);
            return;
        }
        alloy_blas__gemm_run(counter, t, &ta, &tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }
}

static void trsm(alloy_blas_routine counter, alloy_dtype t, const char *rout, int layout,
                 int side, int uplo, int transa, int diag, int m, int n, double alpha,
                 const void *a, int lda, void *b, int ldb)
{
    int row_major = layout == CBLAS_ROW_MAJOR;
    if (!row_major && layout != CBLAS_COL_MAJOR) {
        alloy_blas__cblas_xerbla(1, rout, 0, "Illegal layout setting, %d\n", layout);
        return;
    }
    /* row-major: B^T op(A)^T = alpha B^T, so the side and the stored triangle flip */
    char sd, ul, ta, di;
    if (side == CBLAS_RIGHT)
        sd = row_major ? 'L' : 'R';
    else if (side == CBLAS_LEFT)
        sd = row_major ? 'R' : 'L';
    else {
        alloy_blas__cblas_xerbla(2, rout, row_major, "Illegal Side setting, %d\n", side);
        return;
    }
    if (uplo == CBLAS_UPPER)
        ul = row_major ? 'L' : 'U';
    else if (uplo == CBLAS_LOWER)
        ul = row_major ? 'U' : 'L';
    else {
        alloy_blas__cblas_xerbla(3, rout, row_major, "Illegal Uplo setting, %d\n", uplo);
        return;
    }
    ta = trans_char(transa);
    if (!ta) {
        alloy_blas__cblas_xerbla(4, rout, row_major, "Illegal Trans setting, %d\n", transa);
        return;
    }
    if (diag == CBLAS_UNIT)
        di = 'U';
    else if (diag == CBLAS_NON_UNIT)
        di = 'N';
    else {
        alloy_blas__cblas_xerbla(5, rout, row_major, "Illegal Diag setting, %d\n", diag);
        return;
    }
    int fm = row_major ? n : m, fn = row_major ? m : n;
    int info = alloy_blas__trsm_check(&sd, &ul, &ta, &di, fm, fn, lda, ldb);
    if (info) {
        alloy_blas__cblas_xerbla(info + 1, rout, row_major, "", 0);
        return;
    }
    alloy_blas__trsm_run(counter, t, &sd, &ul, &ta, &di, fm, fn, alpha, a, lda, b, ldb);
}

ALLOY_BLAS_EXPORT void cblas_sgemm(int layout, int transa, int transb, int m, int n, int k,
                                   float alpha, const float *a, int lda, const float *b,
                                   int ldb, float beta, float *c, int ldc);
ALLOY_BLAS_EXPORT void cblas_dgemm(int layout, int transa, int transb, int m, int n, int k,
                                   double alpha, const double *a, int lda, const double *b,
                                   int ldb, double beta, double *c, int ldc);
ALLOY_BLAS_EXPORT void cblas_strsm(int layout, int side, int uplo, int transa, int diag, int m,
                                   int n, float alpha, const float *a, int lda, float *b,
                                   int ldb);
ALLOY_BLAS_EXPORT void cblas_dtrsm(int layout, int side, int uplo, int transa, int diag, int m,
                                   int n, double alpha, const double *a, int lda, double *b,
                                   int ldb);

void cblas_sgemm(int layout, int transa, int transb, int m, int n, int k, float alpha,
                 const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    gemm(BLAS_CBLAS_SGEMM, ALLOY_F32, "cblas_sgemm", layout, transa, transb, m, n, k, alpha, a,
         lda, b, ldb, beta, c, ldc);
}

void cblas_dgemm(int layout, int transa, int transb, int m, int n, int k, double alpha,
                 const double *a, int lda, const double *b, int ldb, double beta, double *c,
                 int ldc)
{
    gemm(BLAS_CBLAS_DGEMM, ALLOY_F64, "cblas_dgemm", layout, transa, transb, m, n, k, alpha, a,
         lda, b, ldb, beta, c, ldc);
}

void cblas_strsm(int layout, int side, int uplo, int transa, int diag, int m, int n, float alpha,
                 const float *a, int lda, float *b, int ldb)
{
    trsm(BLAS_CBLAS_STRSM, ALLOY_F32, "cblas_strsm", layout, side, uplo, transa, diag, m, n,
         alpha, a, lda, b, ldb);
}

void cblas_dtrsm(int layout, int side, int uplo, int transa, int diag, int m, int n,
                 double alpha, const double *a, int lda, double *b, int ldb)
{
    trsm(BLAS_CBLAS_DTRSM, ALLOY_F64, "cblas_dtrsm", layout, side, uplo, transa, diag, m, n,
         alpha, a, lda, b, ldb);
}
