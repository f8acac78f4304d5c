/* Helpers for the linear-algebra tests (test_lu, test_trsm, test_linalg_*): batched
 * matrix views in poisoned buffers, moving matrices between views and row-major float64
 * host arrays, checks that nothing outside a view changed, and float64 reference math
 * (1-norms, products, LU and solve residuals). Independent of alloy's code; static
 * inline so unused helpers cost nothing. */
#ifndef ALLOY_TEST_ORACLE_H
#define ALLOY_TEST_ORACLE_H

#include "test_util.h"

#include <float.h>

/* ---------------------------------------------------------------- layouts */

/* How a batch of (m x n) matrices lies in memory. The PAD variants have a leading
 * dimension 3 larger than needed and 5 spare elements between matrices. */
enum { LAY_ROW, LAY_COL, LAY_ROW_PAD, LAY_COL_PAD, LAY_COUNT };

static inline const char *lay_name(int lay)
{
    static const char *const names[LAY_COUNT] = {"row", "col", "row+pad", "col+pad"};
    return lay >= 0 && lay < LAY_COUNT ? names[lay] : "?";
}

/* A (bshape[0..br), m, n) view at byte `offset` of buf (buf may be NULL: sizing only).
 * *end: the byte just past the last element's matrix slot (offset when empty). */
static inline alloy_array lay_matrix(alloy_buffer *buf, size_t offset, alloy_dtype dt, int br,
                                     const int64_t *bshape, int64_t m, int64_t n, int lay,
                                     size_t *end)
{
    int pad = lay == LAY_ROW_PAD || lay == LAY_COL_PAD;
    int col = lay == LAY_COL || lay == LAY_COL_PAD;
    int64_t shape[ALLOY_MAX_RANK], strides[ALLOY_MAX_RANK];
    int64_t rs, cs, msz;
    if (col) {
        rs = 1;
        cs = (m > 0 ? m : 1) + (pad ? 3 : 0);
        msz = cs * (n > 0 ? n : 1);
    } else {
        cs = 1;
        rs = (n > 0 ? n : 1) + (pad ? 3 : 0);
        msz = rs * (m > 0 ? m : 1);
    }
    if (pad)
        msz += 5;
    int64_t count = 1, s = msz;
    for (int d = br - 1; d >= 0; d--) {
        shape[d] = bshape[d];
        strides[d] = s;
        s *= bshape[d] > 0 ? bshape[d] : 1;
        count *= bshape[d];
    }
    shape[br] = m;
    shape[br + 1] = n;
    strides[br] = rs;
    strides[br + 1] = cs;
    if (end)
        *end = offset + (size_t)(count * msz) * alloy_dtype_size(dt);
    return alloy_array_strided(buf, offset, dt, br + 2, shape, strides);
}

/* A contiguous (bshape..., len) view (len < 0: no last dimension: shape bshape). */
static inline alloy_array lay_vector(alloy_buffer *buf, size_t offset, alloy_dtype dt, int br,
                                     const int64_t *bshape, int64_t len, size_t *end)
{
    int64_t shape[ALLOY_MAX_RANK];
    for (int d = 0; d < br; d++)
        shape[d] = bshape[d];
    int rank = br;
    if (len >= 0)
        shape[rank++] = len;
    alloy_array a = alloy_array_contiguous(buf, offset, dt, rank, shape);
    if (end)
        *end = offset + (size_t)alloy_array_count(&a) * alloy_dtype_size(dt);
    return a;
}

/* Like lay_vector, with last stride `stride` and a gap of one element between batch
 * entries (strided pivots, info, stats). */
static inline alloy_array lay_vector_strided(alloy_buffer *buf, size_t offset, alloy_dtype dt,
                                             int br, const int64_t *bshape, int64_t len,
                                             int64_t stride, size_t *end)
{
    int64_t shape[ALLOY_MAX_RANK], strides[ALLOY_MAX_RANK];
    int rank = br, span = 1;
    if (len >= 0) {
        shape[br] = len;
        strides[br] = stride;
        span = (int)(len > 0 ? (len - 1) * stride + 1 : 1);
        rank++;
    }
    int64_t s = span + 1;
    if (len < 0)
        s = stride;
    for (int d = br - 1; d >= 0; d--) {
        shape[d] = bshape[d];
        strides[d] = s;
        s *= bshape[d] > 0 ? bshape[d] : 1;
    }
    if (end)
        *end = offset + (size_t)(s + 1) * alloy_dtype_size(dt);
    return alloy_array_strided(buf, offset, dt, rank, shape, strides);
}

/* A buffer of `bytes` bytes, every byte 0xff (NaN in every float dtype, -1 in i32). */
static inline alloy_buffer *poison_buffer(alloy_device *dev, size_t bytes)
{
    alloy_buffer *b = test_buffer(dev, bytes ? bytes : 1);
    memset(alloy_buffer_contents(b), 0xff, bytes ? bytes : 1);
    return b;
}

/* Rebinds a sized view to a buffer. */
static inline alloy_array on_buffer(alloy_array a, alloy_buffer *b)
{
    a.buffer = b;
    return a;
}

/* The number of batch entries: the product of all but the last `core` dims. */
static inline int64_t batch_entries(const alloy_array *a, int core)
{
    int64_t n = 1;
    for (int d = 0; d < a->rank - core; d++)
        n *= a->shape[d];
    return n;
}

/* Host address of element (i, j) (core 2), (i) (core 1) or () (core 0) of batch entry b
 * (row-major order over the batch dims; a batch dim of extent 1 is shared). */
static inline void *elem_at(const alloy_array *a, int core, int64_t b, int64_t i, int64_t j)
{
    int64_t idx[ALLOY_MAX_RANK] = {0};
    int br = a->rank - core;
    for (int d = br - 1; d >= 0; d--) {
        int64_t e = a->shape[d] > 0 ? a->shape[d] : 1;
        idx[d] = b % e;
        b /= e;
    }
    if (core == 2) {
        idx[br] = i;
        idx[br + 1] = j;
    } else if (core == 1) {
        idx[br] = i;
    }
    return view_ptr(a, idx);
}

/* Like elem_at, but entry b of a batch of shape `full` (rank fr), numpy-broadcast to
 * the view's batch dims (missing leading dims, extents of 1). */
static inline void *elem_bcast(const alloy_array *a, int core, int fr, const int64_t *full,
                               int64_t b, int64_t i, int64_t j)
{
    int64_t fidx[ALLOY_MAX_RANK] = {0}, idx[ALLOY_MAX_RANK] = {0};
    for (int d = fr - 1; d >= 0; d--) {
        fidx[d] = b % full[d];
        b /= full[d];
    }
    int br = a->rank - core;
    for (int d = 0; d < br; d++)
        idx[d] = a->shape[d] == 1 ? 0 : fidx[d + (fr - br)];
    if (core == 2) {
        idx[br] = i;
        idx[br + 1] = j;
    } else if (core == 1) {
        idx[br] = i;
    }
    return view_ptr(a, idx);
}

/* The linear index, in a batch of shape (shape, rank r), of entry b of the full batch
 * (full, rank fr) it broadcasts to (numpy rules: dims align at the right). */
static inline int64_t bcast_entry(int fr, const int64_t *full, int r, const int64_t *shape,
                                  int64_t b)
{
    int64_t fidx[ALLOY_MAX_RANK] = {0};
    for (int d = fr - 1; d >= 0; d--) {
        fidx[d] = b % full[d];
        b /= full[d];
    }
    int64_t lin = 0;
    for (int d = 0; d < r; d++)
        lin = lin * shape[d] + (shape[d] == 1 ? 0 : fidx[d + (fr - r)]);
    return lin;
}

/* Stores the row-major m x n host matrix src as batch entry b (f32: rounded). */
static inline void mat_put(const alloy_array *a, int64_t b, const double *src)
{
    int64_t m = a->shape[a->rank - 2], n = a->shape[a->rank - 1];
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++)
            ref_store(NULL, a->dtype, elem_at(a, 2, b, i, j), src[i * n + j]);
}

/* Loads batch entry b as a row-major m x n host matrix. */
static inline void mat_get(const alloy_array *a, int64_t b, double *dst)
{
    int64_t m = a->shape[a->rank - 2], n = a->shape[a->rank - 1];
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++)
            dst[i * n + j] = ref_load(a->dtype, elem_at(a, 2, b, i, j));
}

static inline void ivec_put(const alloy_array *a, int64_t b, const int32_t *src, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        memcpy(elem_at(a, 1, b, i, 0), &src[i], 4);
}

static inline void ivec_get(const alloy_array *a, int64_t b, int32_t *dst, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        memcpy(&dst[i], elem_at(a, 1, b, i, 0), 4);
}

/* Random entries in [-1, 1), rounded to dt (so the host copy equals what alloy sees). */
static inline void host_random(test_rng *r, alloy_dtype dt, double *x, int64_t count)
{
    for (int64_t i = 0; i < count; i++) {
        double v = rng_uniform(r);
        x[i] = dt == ALLOY_F32 ? (double)(float)v : v;
    }
}

static inline double *host_alloc(int64_t count)
{
    return test_malloc((size_t)(count > 0 ? count : 1) * sizeof(double));
}

/* ---------------------------------------------------------------- untouched memory */

static inline unsigned char *snapshot(alloy_buffer *b)
{
    size_t n = alloy_buffer_size(b);
    unsigned char *s = test_malloc(n);
    memcpy(s, alloy_buffer_contents(b), n);
    return s;
}

/* Fails when a byte of buf that belongs to none of the views differs from `before`. */
static inline void check_outside(alloy_buffer *buf, const unsigned char *before,
                                 const alloy_array *const *views, int nviews, const char *what)
{
    size_t n = alloy_buffer_size(buf);
    unsigned char *mask = test_malloc(n);
    memset(mask, 0, n);
    const unsigned char *base = alloy_buffer_contents(buf);
    for (int v = 0; v < nviews; v++) {
        const alloy_array *a = views[v];
        if (!a || a->buffer != buf || alloy_array_count(a) == 0)
            continue;
        size_t es = alloy_dtype_size(a->dtype);
        int64_t idx[ALLOY_MAX_RANK] = {0};
        do {
            size_t off = (size_t)((const unsigned char *)view_ptr(a, idx) - base);
            memset(mask + off, 1, es);
        } while (a->rank && next_index(idx, a->shape, a->rank));
    }
    for (size_t i = 0; i < n; i++)
        if (!mask[i] && base[i] != before[i])
            FAIL_AT("%s: byte %zu of a %zu-byte buffer outside the output views changed "
                    "(0x%02x -> 0x%02x)",
                    what, i, n, before[i], base[i]);
    free(mask);
}

/* ---------------------------------------------------------------- float64 reference math */

static inline double dtype_eps(alloy_dtype t) { return t == ALLOY_F64 ? DBL_EPSILON : FLT_EPSILON; }

/* ||A||_1 of a row-major m x n matrix (the largest column sum of magnitudes). */
static inline double ref_norm1(int64_t m, int64_t n, const double *a)
{
    double best = 0;
    for (int64_t j = 0; j < n; j++) {
        double s = 0;
        for (int64_t i = 0; i < m; i++)
            s += fabs(a[i * n + j]);
        if (s > best)
            best = s;
    }
    return best;
}

/* c (m x n) = op(a) b with op(a) m x k: a is m x k row-major, or k x m when ta. Programs
 * that link OpenBLAS define ORACLE_USE_CBLAS (and include cblas.h first) to use dgemm. */
static inline void ref_gemm(int64_t m, int64_t n, int64_t k, const double *a, int ta,
                            const double *b, double *c)
{
    for (int64_t i = 0; i < m * n; i++)
        c[i] = 0;
#ifdef ORACLE_USE_CBLAS
    if (m > 0 && n > 0 && k > 0) {
        cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, CblasNoTrans, (int)m, (int)n,
                    (int)k, 1.0, a, ta ? (int)m : (int)k, b, (int)n, 0.0, c, (int)n);
        return;
    }
#endif
    for (int64_t i = 0; i < m; i++)
        for (int64_t p = 0; p < k; p++) {
            double av = ta ? a[p * m + i] : a[i * k + p];
            if (av == 0)
                continue;
            const double *br = b + p * n;
            double *cr = c + i * n;
            for (int64_t j = 0; j < n; j++)
                cr[j] += av * br[j];
        }
}

static inline int all_finite(const double *x, int64_t count)
{
    for (int64_t i = 0; i < count; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

/* ||P A - L U||_1 / (||A||_1 max(m, n) eps) for the packed factors lu (m x n) and 1-based
 * pivots (LAPACK's getrf). 0 for an empty or zero A with exact factors. */
static inline double ref_lu_residual(int64_t m, int64_t n, const double *a, const double *lu,
                                     const int32_t *piv, double eps)
{
    int64_t mn = m < n ? m : n;
    if (m == 0 || n == 0)
        return 0;
    double *pa = host_alloc(m * n), *l = host_alloc(m * mn), *u = host_alloc(mn * n);
    double *prod = host_alloc(m * n);
    memcpy(pa, a, (size_t)(m * n) * sizeof(double));
    for (int64_t i = 0; i < mn; i++) {
        int64_t p = piv[i] - 1;
        if (p != i)
            for (int64_t j = 0; j < n; j++) {
                double t = pa[i * n + j];
                pa[i * n + j] = pa[p * n + j];
                pa[p * n + j] = t;
            }
    }
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < mn; j++)
            l[i * mn + j] = j < i ? lu[i * n + j] : j == i ? 1.0 : 0.0;
    for (int64_t i = 0; i < mn; i++)
        for (int64_t j = 0; j < n; j++)
            u[i * n + j] = j >= i ? lu[i * n + j] : 0.0;
    ref_gemm(m, n, mn, l, 0, u, prod);
    for (int64_t i = 0; i < m * n; i++)
        prod[i] -= pa[i];
    double an = ref_norm1(m, n, a), rn = ref_norm1(m, n, prod);
    free(pa);
    free(l);
    free(u);
    free(prod);
    if (rn == 0)
        return 0;
    return rn / ((an > 0 ? an : 1) * (double)(m > n ? m : n) * eps);
}

/* The largest over the columns j of ||op(A) x_j - b_j||_1 / (||A||_1 ||x_j||_1 n eps),
 * op(A) = A or A^T (n x n), x and b n x nrhs, all row-major (LAPACK's dget02). */
static inline double ref_solve_residual(int64_t n, int64_t nrhs, const double *a, int trans,
                                        const double *x, const double *b, double eps)
{
    if (n == 0 || nrhs == 0)
        return 0;
    double *ax = host_alloc(n * nrhs);
    ref_gemm(n, nrhs, n, a, trans, x, ax);
    double an = ref_norm1(n, n, a), worst = 0;
    for (int64_t j = 0; j < nrhs; j++) {
        double rn = 0, xn = 0;
        for (int64_t i = 0; i < n; i++) {
            rn += fabs(ax[i * nrhs + j] - b[i * nrhs + j]);
            xn += fabs(x[i * nrhs + j]);
        }
        double r = rn == 0 ? 0 : rn / ((an > 0 ? an : 1) * (xn > 0 ? xn : 1) * (double)n * eps);
        if (!(r <= worst))
            worst = r; /* NaN propagates as the worst */
    }
    free(ax);
    return worst;
}

/* The n x n Hilbert matrix, rounded to dt. */
static inline void host_hilbert(alloy_dtype dt, int64_t n, double *a)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double v = 1.0 / (double)(i + j + 1);
            a[i * n + j] = dt == ALLOY_F32 ? (double)(float)v : v;
        }
}

#endif
