/* triangular_solve on the GPU, and the pieces lu_factor and lu_solve share with it.
 *
 * Every variant becomes one canonical solve, L X = alpha B with L lower, by views alone:
 *   X op(A) = alpha B   <=>  op(A)^T X^T = alpha B^T      (right side: B transposed)
 *   A^T                 =    A with its strides swapped   (upper <-> lower)
 *   an upper U X = B    <=>  reversed rows and columns of U, reversed rows of B: lower.
 * The canonical solve recurses on halves (rows a multiple of the diagonal block):
 * X1 = L11^-1 B1; B2 = B2 - L21 X1 (a GEMM with k = half the rows); X2 = L22^-1 B2; the
 * leaves are diagonal blocks of at most NB rows, solved in shared memory (kernels/trsm.cuh)
 * with every column tile of B in its own thread block, or, for a B of at most
 * SUB_MAX_COLS columns, sub-triangles of at most SUB_MAX_ROWS rows, each solved by
 * substitution in one launch. alpha is applied once per row: by
 * the leaf that first reads the row, or as the beta of the first GEMM that updates it. */
#include "cuda_backend.h"

#include <string.h>

#define MAX_GRID_Y 65535
#define MAX_GRID_X 2147483647LL

unsigned alloy__cu_grid_y(int64_t count)
{
    return (unsigned)(count < MAX_GRID_Y ? (count > 0 ? count : 1) : MAX_GRID_Y);
}

static uint64_t grid_x(int64_t items, int64_t per_block)
{
    int64_t g = (items + per_block - 1) / per_block;
    return (uint64_t)(g < 1 ? 1 : g > MAX_GRID_X ? MAX_GRID_X : g);
}

/* The kernel's batch record with operands (j0, j1, j2) of the op's batch as its 0, 1, 2. */
static void pick_batch(alloy_cu_batch *dst, const alloy__batch *src, int j0, int j1, int j2)
{
    alloy__batch b = *src;
    for (int d = 0; d < ALLOY_MAX_RANK; d++) {
        b.strides[0][d] = src->strides[j0][d];
        b.strides[1][d] = src->strides[j1][d];
        b.strides[2][d] = src->strides[j2][d];
    }
    alloy__cu_batch(dst, &b);
}

static size_t elem(const alloy__cu_solve *x) { return x->f64 ? 8 : 4; }

static alloy__cu_view sub(const alloy__cu_solve *x, alloy__cu_view v, int64_t i, int64_t j)
{
    v.addr += (uint64_t)((i * v.rs + j * v.cs) * (int64_t)elem(x));
    return v;
}

alloy_status alloy__cu_gemm_minus(const alloy__cu_solve *x, alloy__cu_view a, alloy__cu_view b,
                                  alloy__cu_view c, int64_t m, int64_t n, int64_t k, double beta)
{
    if (m == 0 || n == 0)
        return ALLOY_OK;
    alloy__matmul_op mm;
    memset(&mm, 0, sizeof mm);
    mm.batch = *x->batch;
    for (int d = 0; d < ALLOY_MAX_RANK; d++) {
        mm.batch.strides[0][d] = x->batch->strides[x->ta][d];
        mm.batch.strides[1][d] = x->batch->strides[x->tb][d];
        mm.batch.strides[2][d] = x->batch->strides[x->tb][d];
    }
    const alloy_dtype t = x->f64 ? ALLOY_F64 : ALLOY_F32;
    mm.m = m;
    mm.n = n;
    mm.k = k;
    mm.a = (alloy__mat){a.addr, t, a.rs, a.cs};
    mm.b = (alloy__mat){b.addr, t, b.rs, b.cs};
    mm.c = (alloy__mat){c.addr, t, c.rs, c.cs};
    mm.alpha = -1.0;
    mm.beta = beta;
    return alloy__cu_launch_mm(x->cu, x->s, &mm, x->guard, x->err, x->cap);
}

static alloy_status trsm_kernel(const alloy__cu_solve *x, CUfunction f, alloy__cu_view l,
                                alloy__cu_view b, int64_t rows, int64_t ncols, int unit,
                                double alpha, int scale, uint64_t gx, unsigned threads)
{
    alloy_cu_trsm_params p;
    memset(&p, 0, sizeof p);
    p.a = l.addr;
    p.b = b.addr;
    p.guard = x->guard;
    p.a_rs = l.rs;
    p.a_cs = l.cs;
    p.b_rs = b.rs;
    p.b_cs = b.cs;
    p.rows = rows;
    p.ncols = ncols;
    p.unit = unit;
    p.scale = scale;
    p.alpha = alpha;
    pick_batch(&p.batch, x->batch, x->ta, x->tb, x->tb);
    return alloy__cu_launch(x->cu, x->s, f, gx, alloy__cu_grid_y(x->batch->count), threads, 0, &p,
                            x->err, x->cap);
}

static alloy_status trsm_rec(const alloy__cu_solve *x, alloy__cu_view l, alloy__cu_view b,
                             int64_t rows, int64_t ncols, int unit, double alpha, int first)
{
    const int64_t nb = x->f64 ? ALLOY_CU_TRSM_NB_F64 : ALLOY_CU_TRSM_NB_F32;
    /* A narrow B's sub-triangles of up to SUB_MAX_ROWS rows in one launch each: below that
     * the recursion's launches have a handful of blocks each and their latency is the cost
     * (lu_solve 4096 x 256 on the H100: 5.8 ms all by recursion; by substitution below 128
     * rows 5.2, 256 4.5, 512 4.2, 1024 4.4). */
    if (rows > nb && rows <= ALLOY_CU_TRSM_SUB_MAX_ROWS && ncols <= ALLOY_CU_TRSM_SUB_MAX_COLS)
        return trsm_kernel(x, x->cu->trsm_subst[x->f64], l, b, rows, ncols, unit, alpha,
                           first && alpha != 1.0, grid_x(ncols, ALLOY_CU_TRSM_SUB_COLS),
                           ALLOY_CU_TRSM_SUB_THREADS);
    if (rows <= nb)
        return trsm_kernel(x, x->cu->trsm_diag[x->f64], l, b, rows, ncols, unit, alpha,
                           first && alpha != 1.0, grid_x(ncols, ALLOY_CU_TRSM_THREADS / nb),
                           ALLOY_CU_TRSM_THREADS);
    const int64_t h = (rows / 2 + nb - 1) / nb * nb;
    alloy_status s = trsm_rec(x, l, b, h, ncols, unit, alpha, first);
    if (s == ALLOY_OK)
        s = alloy__cu_gemm_minus(x, sub(x, l, h, 0), b, sub(x, b, h, 0), rows - h, ncols, h,
                                 first ? alpha : 1.0);
    if (s == ALLOY_OK)
        s = trsm_rec(x, sub(x, l, h, h), sub(x, b, h, 0), rows - h, ncols, unit, alpha, 0);
    return s;
}

alloy_status alloy__cu_trsm_lower(const alloy__cu_solve *x, alloy__cu_view l, alloy__cu_view b,
                                  int64_t rows, int64_t ncols, int unit, double alpha)
{
    if (rows == 0 || ncols == 0 || x->batch->count == 0)
        return ALLOY_OK;
    if (alpha == 0.0) /* X = 0, A unread */
        return trsm_kernel(x, x->cu->trsm_zero[x->f64], l, b, rows, ncols, unit, alpha, 0,
                           grid_x(rows * ncols, 256), 256);
    return trsm_rec(x, l, b, rows, ncols, unit, alpha, 1);
}

/* ---------------------------------------------------------------- the op */

alloy_status alloy__cu_check_linalg(alloy__cu_device *cu, const alloy__op *op)
{
    (void)cu;
    /* Validation admits F32 and F64 only and bounds every extent by int32 pivots; the
     * grids loop over what exceeds their limits. */
    (void)op;
    return ALLOY_OK;
}

static alloy__cu_view swap_dims(alloy__cu_view v)
{
    int64_t t = v.rs;
    v.rs = v.cs;
    v.cs = t;
    return v;
}

alloy_status alloy__cu_launch_trsm(alloy__cu_device *cu, CUstream s, const alloy__op *op,
                                   uint64_t guard, char *err, size_t cap)
{
    const alloy__trsm_op *t = &op->u.trsm;
    if (t->m == 0 || t->n == 0 || t->batch.count == 0)
        return ALLOY_OK;
    alloy__cu_solve x = {cu, s, t->a.dtype == ALLOY_F64, &t->batch, 0, 1, guard, err, cap};
    alloy__cu_view a = {t->a.addr, t->a.rs, t->a.cs}, b = {t->b.addr, t->b.rs, t->b.cs};
    int64_t rows = t->m, ncols = t->n;
    int trans = t->transpose, lower = t->uplo == ALLOY_LOWER;
    if (t->side == ALLOY_RIGHT) { /* X op(A) = alpha B  <=>  op(A)^T X^T = alpha B^T */
        b = swap_dims(b);
        rows = t->n;
        ncols = t->m;
        trans = !trans;
    }
    if (trans) {
        a = swap_dims(a);
        lower = !lower;
    }
    if (!lower) { /* reversed rows and columns: lower */
        a = sub(&x, a, rows - 1, rows - 1);
        a.rs = -a.rs;
        a.cs = -a.cs;
        b = sub(&x, b, rows - 1, 0);
        b.rs = -b.rs;
    }
    return alloy__cu_trsm_lower(&x, a, b, rows, ncols, t->unit_diagonal, t->alpha);
}
