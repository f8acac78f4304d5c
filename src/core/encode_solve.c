/* alloy_encode_lu_factor, alloy_encode_lu_solve, alloy_encode_triangular_solve: checks
 * and normalized records. */
#include "encode.h"

#include <string.h>

ALLOY_API alloy_lu_solve_desc alloy_lu_solve_desc_default(void)
{
    alloy_lu_solve_desc d;
    memset(&d, 0, sizeof d);
    return d;
}

ALLOY_API alloy_triangular_desc alloy_triangular_desc_default(void)
{
    alloy_triangular_desc d;
    memset(&d, 0, sizeof d);
    d.side = ALLOY_LEFT;
    d.uplo = ALLOY_UPPER;
    d.transpose = 0;
    d.unit_diagonal = 0;
    d.alpha = 1.0;
    return d;
}

/* f32 or f64 matrices of rank >= 2. */
static alloy_status check_matrix(const char *fn, const char *name, const alloy__view *v)
{
    if (v->rank < 2)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: %s needs rank >= 2 (got %d)", fn, name,
                           v->rank);
    if (v->dtype == ALLOY_F16 || v->dtype == ALLOY_BF16)
        return alloy__fail(ALLOY_ERR_UNSUPPORTED,
                           "%s: %s is %s; factorizations and solves take f32 or f64 (convert with "
                           "alloy_encode_copy)",
                           fn, name, alloy__dtype_name(v->dtype));
    if (v->dtype != ALLOY_F32 && v->dtype != ALLOY_F64)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: %s must be f32 or f64, not %s", fn,
                           name, alloy__dtype_name(v->dtype));
    return ALLOY_OK;
}

static alloy_status check_i32(const char *fn, const char *name, const alloy__view *v, int rank)
{
    if (v->dtype != ALLOY_I32)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: %s must be i32, not %s", fn, name,
                           alloy__dtype_name(v->dtype));
    if (v->rank != rank)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: %s must have rank %d (got %d)", fn,
                           name, rank, v->rank);
    return ALLOY_OK;
}

static alloy_status check_lu_factor(const char *fn, alloy_cmdbuf *cb, const alloy_array *a,
                                    const alloy_array *pivots, const alloy_array *info,
                                    alloy__op *op)
{
    alloy_device *dev = cb->q->dev;
    alloy__view va, vp, vi;
    alloy_status s;
    if ((s = alloy__view_check(fn, "a", dev, a, ALLOY__OUTPUT, &va)) != ALLOY_OK ||
        (s = alloy__view_check(fn, "pivots", dev, pivots, ALLOY__OUTPUT, &vp)) != ALLOY_OK ||
        (s = alloy__view_check(fn, "info", dev, info, ALLOY__OUTPUT, &vi)) != ALLOY_OK)
        return s;
    if ((s = check_matrix(fn, "a", &va)) != ALLOY_OK ||
        (s = check_i32(fn, "pivots", &vp, va.rank - 1)) != ALLOY_OK ||
        (s = check_i32(fn, "info", &vi, va.rank - 2)) != ALLOY_OK)
        return s;
    int64_t m = va.shape[va.rank - 2], n = va.shape[va.rank - 1];
    int64_t mn = m < n ? m : n;
    if (vp.shape[vp.rank - 1] != mn)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                           "%s: pivots' last dimension is %lld; it must be min(M, N) = %lld", fn,
                           (long long)vp.shape[vp.rank - 1], (long long)mn);
    memset(op, 0, sizeof *op);
    op->kind = ALLOY__OP_LU_FACTOR;
    alloy__lu_factor_op *lu = &op->u.lu_factor;
    const alloy__view *views[3] = {&va, &vp, &vi};
    static const char *const names[3] = {"a", "pivots", "info"};
    static const int core[3] = {2, 1, 0};
    static const int exact[3] = {1, 1, 1};
    if ((s = alloy__batch_build(fn, &lu->batch, 3, views, names, core, exact, 0)) != ALLOY_OK)
        return s;
    if ((s = alloy__check_disjoint(fn, "a", &va, "pivots", &vp)) != ALLOY_OK ||
        (s = alloy__check_disjoint(fn, "a", &va, "info", &vi)) != ALLOY_OK ||
        (s = alloy__check_disjoint(fn, "pivots", &vp, "info", &vi)) != ALLOY_OK)
        return s;
    lu->m = m;
    lu->n = n;
    lu->a = alloy__view_matrix(&va);
    lu->pivots = alloy__view_vector(&vp);
    lu->info = vi.addr;
    return ALLOY_OK;
}

ALLOY_API alloy_status alloy_encode_lu_factor(alloy_cmdbuf *cb, const alloy_array *a,
                                              const alloy_array *pivots, const alloy_array *info)
{
    static const char fn[] = "alloy_encode_lu_factor";
    alloy_status s = alloy__encode_begin(fn, cb);
    if (s != ALLOY_OK)
        return s;
    alloy__op op;
    s = check_lu_factor(fn, cb, a, pivots, info, &op);
    if (s == ALLOY_OK) {
        alloy_buffer *bufs[3] = {a->buffer, pivots->buffer, info->buffer};
        s = alloy__encode_record(fn, cb, &op, bufs, 3);
    }
    alloy__encode_end(cb);
    return s;
}

static alloy_status check_lu_solve(const char *fn, alloy_cmdbuf *cb, const alloy_lu_solve_desc *d,
                                   const alloy_array *lu, const alloy_array *pivots,
                                   const alloy_array *b, alloy__op *op)
{
    alloy_device *dev = cb->q->dev;
    if (!d)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                           "%s: descriptor is NULL (use alloy_lu_solve_desc_default())", fn);
    alloy__view vl, vp, vb;
    alloy_status s;
    if ((s = alloy__view_check(fn, "lu", dev, lu, ALLOY__INPUT, &vl)) != ALLOY_OK ||
        (s = alloy__view_check(fn, "pivots", dev, pivots, ALLOY__INPUT, &vp)) != ALLOY_OK ||
        (s = alloy__view_check(fn, "b", dev, b, ALLOY__OUTPUT, &vb)) != ALLOY_OK)
        return s;
    if ((s = check_matrix(fn, "lu", &vl)) != ALLOY_OK || (s = check_matrix(fn, "b", &vb)) != ALLOY_OK ||
        (s = check_i32(fn, "pivots", &vp, vp.rank)) != ALLOY_OK)
        return s;
    if (vp.rank < 1)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: pivots needs rank >= 1", fn);
    if (vl.dtype != vb.dtype)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: lu is %s but b is %s; they must match",
                           fn, alloy__dtype_name(vl.dtype), alloy__dtype_name(vb.dtype));
    int64_t n = vl.shape[vl.rank - 1];
    if (vl.shape[vl.rank - 2] != n)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: lu must be square (got %lld x %lld)",
                           fn, (long long)vl.shape[vl.rank - 2], (long long)n);
    if (vp.shape[vp.rank - 1] != n)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                           "%s: pivots' last dimension is %lld; it must be N = %lld", fn,
                           (long long)vp.shape[vp.rank - 1], (long long)n);
    if (vb.shape[vb.rank - 2] != n)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                           "%s: b has %lld rows; it must have N = %lld", fn,
                           (long long)vb.shape[vb.rank - 2], (long long)n);
    memset(op, 0, sizeof *op);
    op->kind = ALLOY__OP_LU_SOLVE;
    alloy__lu_solve_op *ls = &op->u.lu_solve;
    const alloy__view *views[3] = {&vl, &vp, &vb};
    static const char *const names[3] = {"lu", "pivots", "b"};
    static const int core[3] = {2, 1, 2};
    static const int exact[3] = {0, 0, 1};
    if ((s = alloy__batch_build(fn, &ls->batch, 3, views, names, core, exact, 2)) != ALLOY_OK)
        return s;
    if ((s = alloy__check_disjoint(fn, "b", &vb, "lu", &vl)) != ALLOY_OK ||
        (s = alloy__check_disjoint(fn, "b", &vb, "pivots", &vp)) != ALLOY_OK)
        return s;
    ls->n = n;
    ls->nrhs = vb.shape[vb.rank - 1];
    ls->lu = alloy__view_matrix(&vl);
    ls->b = alloy__view_matrix(&vb);
    ls->pivots = alloy__view_vector(&vp);
    ls->transpose = d->transpose != 0;
    return ALLOY_OK;
}

ALLOY_API alloy_status alloy_encode_lu_solve(alloy_cmdbuf *cb, const alloy_lu_solve_desc *d,
                                             const alloy_array *lu, const alloy_array *pivots,
                                             const alloy_array *b)
{
    static const char fn[] = "alloy_encode_lu_solve";
    alloy_status s = alloy__encode_begin(fn, cb);
    if (s != ALLOY_OK)
        return s;
    alloy__op op;
    s = check_lu_solve(fn, cb, d, lu, pivots, b, &op);
    if (s == ALLOY_OK) {
        alloy_buffer *bufs[3] = {lu->buffer, pivots->buffer, b->buffer};
        s = alloy__encode_record(fn, cb, &op, bufs, 3);
    }
    alloy__encode_end(cb);
    return s;
}

static alloy_status check_trsm(const char *fn, alloy_cmdbuf *cb, const alloy_triangular_desc *d,
                               const alloy_array *a, const alloy_array *b, alloy__op *op)
{
    alloy_device *dev = cb->q->dev;
    if (!d)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                           "%s: descriptor is NULL (use alloy_triangular_desc_default())", fn);
    if (d->side != ALLOY_LEFT && d->side != ALLOY_RIGHT)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: side %d is neither LEFT nor RIGHT", fn,
                           (int)d->side);
    if (d->uplo != ALLOY_UPPER && d->uplo != ALLOY_LOWER)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: uplo %d is neither UPPER nor LOWER",
                           fn, (int)d->uplo);
    alloy__view va, vb;
    alloy_status s;
    if ((s = alloy__view_check(fn, "a", dev, a, ALLOY__INPUT, &va)) != ALLOY_OK ||
        (s = alloy__view_check(fn, "b", dev, b, ALLOY__OUTPUT, &vb)) != ALLOY_OK)
        return s;
    if ((s = check_matrix(fn, "a", &va)) != ALLOY_OK || (s = check_matrix(fn, "b", &vb)) != ALLOY_OK)
        return s;
    if (va.dtype != vb.dtype)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: a is %s but b is %s; they must match",
                           fn, alloy__dtype_name(va.dtype), alloy__dtype_name(vb.dtype));
    int64_t m = vb.shape[vb.rank - 2], n = vb.shape[vb.rank - 1];
    int64_t k = d->side == ALLOY_LEFT ? m : n;
    if (va.shape[va.rank - 2] != k || va.shape[va.rank - 1] != k)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                           "%s: a is %lld x %lld; with b of %lld x %lld and side %s it must be "
                           "%lld x %lld",
                           fn, (long long)va.shape[va.rank - 2], (long long)va.shape[va.rank - 1],
                           (long long)m, (long long)n, d->side == ALLOY_LEFT ? "LEFT" : "RIGHT",
                           (long long)k, (long long)k);
    memset(op, 0, sizeof *op);
    op->kind = ALLOY__OP_TRIANGULAR_SOLVE;
    alloy__trsm_op *t = &op->u.trsm;
    const alloy__view *views[2] = {&va, &vb};
    static const char *const names[2] = {"a", "b"};
    static const int core[2] = {2, 2};
    static const int exact[2] = {0, 1};
    if ((s = alloy__batch_build(fn, &t->batch, 2, views, names, core, exact, 1)) != ALLOY_OK)
        return s;
    if ((s = alloy__check_disjoint(fn, "b", &vb, "a", &va)) != ALLOY_OK)
        return s;
    t->m = m;
    t->n = n;
    t->a = alloy__view_matrix(&va);
    t->b = alloy__view_matrix(&vb);
    t->side = d->side;
    t->uplo = d->uplo;
    t->transpose = d->transpose != 0;
    t->unit_diagonal = d->unit_diagonal != 0;
    t->alpha = d->alpha;
    return ALLOY_OK;
}

ALLOY_API alloy_status alloy_encode_triangular_solve(alloy_cmdbuf *cb,
                                                     const alloy_triangular_desc *d,
                                                     const alloy_array *a, const alloy_array *b)
{
    static const char fn[] = "alloy_encode_triangular_solve";
    alloy_status s = alloy__encode_begin(fn, cb);
    if (s != ALLOY_OK)
        return s;
    alloy__op op;
    s = check_trsm(fn, cb, d, a, b, &op);
    if (s == ALLOY_OK) {
        alloy_buffer *bufs[2] = {a->buffer, b->buffer};
        s = alloy__encode_record(fn, cb, &op, bufs, 2);
    }
    alloy__encode_end(cb);
    return s;
}
