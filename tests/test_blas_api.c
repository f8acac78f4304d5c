/* liballoy-blas semantics the netlib programs do not pin down: operands that are
 * interleaved submatrices of one array (as LAPACK's blocked codes pass them), the zero
 * rules (beta = 0 never reads C, alpha = 0 never reads A or B, trsm's alpha = 0), the
 * triangle trsm reads, gesv leaving B alone on a singular matrix, and argument errors
 * reaching the program's own xerbla_ and cblas_xerbla (this program defines and exports
 * both, and the reference CBLAS's RowMajorStrg flag). */
#include "alloy_blas.h"
#include "harness.h"

enum { ROW_MAJOR = 101, COL_MAJOR = 102, NO_TRANS = 111, TRANS = 112 };
enum { UPPER = 121, LOWER = 122, NON_UNIT = 131, UNIT = 132, LEFT = 141, RIGHT = 142 };
void cblas_dgemm(int layout, int transa, int transb, int m, int n, int k, double alpha,
                 const double *a, int lda, const double *b, int ldb, double beta, double *c,
                 int ldc);
void cblas_dtrsm(int layout, int side, int uplo, int transa, int diag, int m, int n,
                 double alpha, const double *a, int lda, double *b, int ldb);
void dgemm_(const char *ta, const char *tb, const int *m, const int *n, const int *k,
            const double *alpha, const double *a, const int *lda, const double *b, const int *ldb,
            const double *beta, double *c, const int *ldc, size_t, size_t);
void dtrsm_(const char *side, const char *uplo, const char *ta, const char *diag, const int *m,
            const int *n, const double *alpha, const double *a, const int *lda, double *b,
            const int *ldb, size_t, size_t, size_t, size_t);
void dgetrf_(const int *m, const int *n, double *a, const int *lda, int *ipiv, int *info);
void dgetrs_(const char *trans, const int *n, const int *nrhs, const double *a, const int *lda,
             const int *ipiv, double *b, const int *ldb, int *info, size_t);
void dgesv_(const int *n, const int *nrhs, double *a, const int *lda, int *ipiv, double *b,
            const int *ldb, int *info);

/* ---- this program's handlers, found by the adapter at call time (ENABLE_EXPORTS) */
int RowMajorStrg;
static char g_name[32];
static int g_info, g_calls, g_row_major_seen;

void xerbla_(const char *srname, const int *info, size_t len);
void xerbla_(const char *srname, const int *info, size_t len)
{
    size_t n = len < sizeof g_name - 1 ? len : sizeof g_name - 1;
    memcpy(g_name, srname, n);
    g_name[n] = '\0';
    g_info = *info;
    g_calls++;
}

void cblas_xerbla(int info, const char *rout, const char *form, ...);
void cblas_xerbla(int info, const char *rout, const char *form, ...)
{
    (void)form;
    g_row_major_seen = RowMajorStrg;
    if (RowMajorStrg) { /* the reference handler's map for row-major calls */
        if (strstr(rout, "gemm")) {
            if (info == 5) info = 4;
            else if (info == 4) info = 5;
            else if (info == 11) info = 9;
            else if (info == 9) info = 11;
        } else if (strstr(rout, "trsm")) {
            if (info == 7) info = 6;
            else if (info == 6) info = 7;
        }
    }
    snprintf(g_name, sizeof g_name, "%s", rout);
    g_info = info;
    g_calls++;
}

static void reset_handlers(void)
{
    g_name[0] = '\0';
    g_info = 0;
    g_calls = 0;
    g_row_major_seen = -1;
}

/* ---- a column-major reference product */
static void naive_gemm(int ta, int tb, int m, int n, int k, double alpha, const double *a,
                       int lda, const double *b, int ldb, double beta, double *c, int ldc)
{
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double s = 0;
            for (int l = 0; l < k; l++) {
                double av = ta ? a[(size_t)i * lda + l] : a[(size_t)l * lda + i];
                double bv = tb ? b[(size_t)l * ldb + j] : b[(size_t)j * ldb + l];
                s += av * bv;
            }
            c[(size_t)j * ldc + i] = alpha * s + (beta == 0 ? 0 : beta * c[(size_t)j * ldc + i]);
        }
}

TEST(interleaved_submatrices_of_one_array)
{
    /* A22 -= A21 * A12 inside one 40 x 40 array, as getrf's blocked update does: the
     * operands' elements are disjoint but their address ranges interleave. */
    enum { N = 40, J = 8 };
    static double w[N * N], ref[N * N];
    test_rng r = {7};
    for (int i = 0; i < N * N; i++)
        w[i] = ref[i] = rng_uniform(&r);
    int m = N - J, n = N - J, k = J, ld = N;
    double alpha = -1, beta = 1;
    naive_gemm(0, 0, m, n, k, alpha, &ref[J], ld, &ref[J * ld], ld, beta, &ref[J * ld + J], ld);
    dgemm_("N", "N", &m, &n, &k, &alpha, &w[J], &ld, &w[J * ld], &ld, &beta, &w[J * ld + J], &ld,
           1, 1);
    double err = 0;
    for (int i = 0; i < N * N; i++)
        err = fmax(err, fabs(w[i] - ref[i]));
    ASSERT_LE(err, 1e-13);
    /* a trsm whose triangle lies in the same array as its right-hand sides */
    memcpy(ref, w, sizeof w);
    double one = 1;
    int mm = J, nn = N - J;
    dtrsm_("L", "L", "N", "U", &mm, &nn, &one, w, &ld, &w[J * ld], &ld, 1, 1, 1, 1);
    for (int j = J; j < N; j++) /* forward substitution, unit lower */
        for (int i = 0; i < J; i++) {
            double s = ref[(size_t)j * ld + i];
            for (int l = 0; l < i; l++)
                s -= ref[(size_t)l * ld + i] * ref[(size_t)j * ld + l];
            ref[(size_t)j * ld + i] = s;
        }
    err = 0;
    for (int i = 0; i < N * N; i++)
        err = fmax(err, fabs(w[i] - ref[i]));
    ASSERT_LE(err, 1e-12);
}

TEST(zero_rules)
{
    double a[6], b[6], c[4];
    for (int i = 0; i < 6; i++)
        a[i] = b[i] = NAN;
    for (int i = 0; i < 4; i++)
        c[i] = 2.0 + i;
    /* alpha = 0: A and B are never read; C = beta*C */
    cblas_dgemm(COL_MAJOR, NO_TRANS, NO_TRANS, 2, 2, 3, 0.0, a, 2, b, 3, 0.5, c, 2);
    for (int i = 0; i < 4; i++)
        ASSERT(c[i] == 0.5 * (2.0 + i));
    /* beta = 0: C is never read */
    for (int i = 0; i < 6; i++)
        a[i] = b[i] = 1.0;
    for (int i = 0; i < 4; i++)
        c[i] = NAN;
    cblas_dgemm(COL_MAJOR, NO_TRANS, NO_TRANS, 2, 2, 3, 1.0, a, 2, b, 3, 0.0, c, 2);
    for (int i = 0; i < 4; i++)
        ASSERT(c[i] == 3.0);
    /* alpha = 0 and beta = 0: C = 0 without reading anything */
    for (int i = 0; i < 6; i++)
        a[i] = b[i] = NAN;
    for (int i = 0; i < 4; i++)
        c[i] = NAN;
    cblas_dgemm(ROW_MAJOR, TRANS, NO_TRANS, 2, 2, 3, 0.0, a, 2, b, 2, 0.0, c, 2);
    for (int i = 0; i < 4; i++)
        ASSERT(c[i] == 0.0 && !signbit(c[i]));
    /* trsm, alpha = 0: B = 0, A and B never read */
    double t[4] = {NAN, NAN, NAN, NAN}, x[6] = {NAN, NAN, NAN, NAN, NAN, NAN};
    cblas_dtrsm(COL_MAJOR, LEFT, UPPER, NO_TRANS, NON_UNIT, 2, 3, 0.0, t, 2, x, 2);
    for (int i = 0; i < 6; i++)
        ASSERT(x[i] == 0.0);
}

TEST(trsm_reads_only_its_triangle)
{
    /* upper, unit diagonal: the diagonal and the lower triangle hold NaN */
    double a[9] = {NAN, NAN, NAN, 2, NAN, NAN, 3, 4, NAN}; /* column-major */
    double b[3] = {1, 1, 1};
    cblas_dtrsm(COL_MAJOR, LEFT, UPPER, NO_TRANS, UNIT, 3, 1, 1.0, a, 3, b, 3);
    /* x3 = 1; x2 = 1 - 4*1 = -3; x1 = 1 - 2*(-3) - 3*1 = 4 */
    ASSERT(b[0] == 4 && b[1] == -3 && b[2] == 1);
}

TEST(gesv_singular_leaves_b)
{
    double a[4] = {1, 2, 2, 4}; /* [1 2; 2 4], singular */
    double b[2] = {5, 6};
    int n = 2, one = 1, piv[2], info = -7;
    dgesv_(&n, &one, a, &n, piv, b, &n, &info);
    ASSERT_EQ(info, 2);
    ASSERT(b[0] == 5 && b[1] == 6);
}

TEST(getrs_transposes)
{
    enum { N = 5 };
    double a[N * N], lu[N * N], x[N], b[N], bt[N];
    test_rng r = {3};
    for (int i = 0; i < N * N; i++)
        a[i] = lu[i] = rng_uniform(&r) + (i % (N + 1) == 0 ? 4 : 0);
    int n = N, one = 1, piv[N], info = -1;
    dgetrf_(&n, &n, lu, &n, piv, &info);
    ASSERT_EQ(info, 0);
    for (const char *t = "NTCntc"; *t; t++) {
        for (int i = 0; i < N; i++)
            x[i] = 1.0 + i;
        int tr = *t != 'N' && *t != 'n';
        for (int i = 0; i < N; i++) { /* b = op(A) x */
            double s = 0;
            for (int j = 0; j < N; j++)
                s += (tr ? a[(size_t)i * N + j] : a[(size_t)j * N + i]) * x[j];
            b[i] = s;
        }
        memcpy(bt, b, sizeof b);
        dgetrs_(t, &n, &one, lu, &n, piv, bt, &n, &info, 1);
        ASSERT_EQ(info, 0);
        for (int i = 0; i < N; i++)
            ASSERT_LE(fabs(bt[i] - x[i]), 1e-12);
    }
}

TEST(errors_reach_the_programs_xerbla)
{
    double a[4] = {0}, b[4] = {0}, c[4] = {0}, one = 1;
    int m = 2, n = 2, k = 2, bad = -1, ld1 = 1, ld2 = 2, piv[2], info = 0;
    unsigned long long calls = alloy_blas_calls(NULL);
    reset_handlers();
    dgemm_("X", "N", &m, &n, &k, &one, a, &ld2, b, &ld2, &one, c, &ld2, 1, 1);
    ASSERT_EQ(g_calls, 1);
    ASSERT(strcmp(g_name, "DGEMM ") == 0);
    ASSERT_EQ(g_info, 1);
    reset_handlers();
    dgemm_("N", "T", &m, &n, &k, &one, a, &ld2, b, &ld2, &one, c, &ld1, 1, 1);
    ASSERT_EQ(g_info, 13);
    reset_handlers();
    dtrsm_("L", "U", "N", "N", &m, &n, &one, a, &ld1, b, &ld2, 1, 1, 1, 1);
    ASSERT(strcmp(g_name, "DTRSM ") == 0);
    ASSERT_EQ(g_info, 9);
    reset_handlers();
    dgetrf_(&bad, &n, a, &ld2, piv, &info);
    ASSERT(strcmp(g_name, "DGETRF") == 0);
    ASSERT_EQ(g_info, 1);
    ASSERT_EQ(info, -1);
    reset_handlers();
    dgetrs_("N", &n, &k, a, &ld2, piv, b, &ld1, &info, 1);
    ASSERT(strcmp(g_name, "DGETRS") == 0);
    ASSERT_EQ(g_info, 8);
    ASSERT_EQ(info, -8);
    reset_handlers();
    dgesv_(&n, &k, a, &ld1, piv, b, &ld2, &info);
    ASSERT(strcmp(g_name, "DGESV ") == 0);
    ASSERT_EQ(g_info, 4);
    ASSERT_EQ(info, -4);
    /* CBLAS: the reference's names and numbers; row-major passes the swapped call's
     * number with RowMajorStrg set, and the handler maps it back */
    reset_handlers();
    cblas_dgemm(7, NO_TRANS, NO_TRANS, 2, 2, 2, 1.0, a, 2, b, 2, 1.0, c, 2);
    ASSERT(strcmp(g_name, "cblas_dgemm") == 0);
    ASSERT_EQ(g_info, 1);
    reset_handlers();
    cblas_dgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, 0, 0, 2, 1.0, a, 1, b, 1, 1.0, c, 1);
    ASSERT_EQ(g_info, 9); /* lda < K */
    ASSERT_EQ(g_row_major_seen, 1);
    ASSERT_EQ(RowMajorStrg, 0);
    reset_handlers();
    cblas_dgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, -1, -1, 0, 1.0, a, 1, b, 1, 1.0, c, 1);
    ASSERT_EQ(g_info, 5); /* the reference reports N first in row-major */
    reset_handlers();
    cblas_dgemm(COL_MAJOR, NO_TRANS, 5, 2, 2, 2, 1.0, a, 2, b, 2, 1.0, c, 2);
    ASSERT_EQ(g_info, 3);
    ASSERT_EQ(g_row_major_seen, 0);
    reset_handlers();
    cblas_dtrsm(ROW_MAJOR, LEFT, UPPER, NO_TRANS, NON_UNIT, -1, 0, 1.0, a, 1, b, 1);
    ASSERT(strcmp(g_name, "cblas_dtrsm") == 0);
    ASSERT_EQ(g_info, 6);
    reset_handlers();
    cblas_dtrsm(COL_MAJOR, LEFT, UPPER, NO_TRANS, 9, 2, 2, 1.0, a, 2, b, 2);
    ASSERT_EQ(g_info, 5);
    /* errors never reach alloy */
    ASSERT_EQ(alloy_blas_calls(NULL), calls);
}

TEST_LIST{
    TEST_ENTRY(interleaved_submatrices_of_one_array),
    TEST_ENTRY(zero_rules),
    TEST_ENTRY(trsm_reads_only_its_triangle),
    TEST_ENTRY(gesv_singular_leaves_b),
    TEST_ENTRY(getrs_transposes),
    TEST_ENTRY(errors_reach_the_programs_xerbla),
};

int main(int argc, char **argv)
{
    return run_tests(argc, argv);
}
