/* lu_solve on the CPU: P, L and U applied to column blocks of B, one task each
 * (A X = B: swaps, L^-1, U^-1; A^T X = B: U^-T, L^-T, swaps in reverse). The pivots come
 * from the caller, so a first phase checks them: out-of-range pivots fail the op before
 * B is touched. */
#include "solve.h"
#include "solve_plan.h"
#include "workmat.h"

#include <stdatomic.h>

enum { STAGE_START, STAGE_VALIDATE, STAGE_COPY_IN, STAGE_SOLVE, STAGE_COPY_OUT, STAGE_DONE };

#define VALIDATE_ENTRIES 4096 /* pivots checked per task */

typedef struct lu_solve_exec {
    alloy__workmat x;
    alloy__col_blocks cols;
    int64_t validate_per;
    uint64_t validate_tasks;
    int stage;
    _Atomic int64_t bad_entry; /* smallest batch entry with a bad pivot, or -1 */
} lu_solve_exec;

static alloy_status lu_solve_check(const alloy__cpu_device *cd, alloy__op *op)
{
    (void)cd;
    (void)op;
    return ALLOY_OK;
}

static size_t lu_solve_scratch(const alloy__cpu_device *cd, const alloy__op *op)
{
    return alloy__gemm_scratch(cd->kernels, op->u.lu_solve.b.dtype == ALLOY_F64);
}

static alloy_status lu_solve_begin(alloy__cpu_device *cd, alloy__cpu_queue *cq, alloy__op *op,
                                   char *err, size_t cap)
{
    const alloy__lu_solve_op *ls = &op->u.lu_solve;
    lu_solve_exec *e = (lu_solve_exec *)op->exec;
    alloy__workmat_plan(&e->x, &ls->b, &ls->batch, 2, ls->n, ls->nrhs, 1.0);
    /* two triangular solves: n^2 multiply-adds a column */
    e->cols = alloy__col_blocks_plan(ls->nrhs, ls->batch.count, cq->workers,
                                     (double)ls->n * (double)ls->n);
    int64_t per = ls->n > 0 ? VALIDATE_ENTRIES * 64 / ls->n : VALIDATE_ENTRIES;
    e->validate_per = alloy__cpu_items_per_task(ls->batch.count, per > 0 ? per : 1);
    e->validate_tasks = alloy__cpu_tasks(ls->batch.count, e->validate_per);
    e->stage = STAGE_START;
    atomic_init(&e->bad_entry, -1);
    return alloy__workmat_begin(cd, cq, &e->x, err, cap);
}

static uint64_t lu_solve_next_phase(alloy__cpu_device *cd, alloy__op *op)
{
    (void)cd;
    lu_solve_exec *e = (lu_solve_exec *)op->exec;
    const alloy__lu_solve_op *ls = &op->u.lu_solve;
    if (ls->batch.count == 0 || ls->n == 0 || ls->nrhs == 0)
        return 0;
    int copies = alloy__workmat_copies(&e->x);
    switch (e->stage) {
    case STAGE_START: e->stage = STAGE_VALIDATE; return e->validate_tasks;
    case STAGE_VALIDATE:
        if (atomic_load(&e->bad_entry) >= 0) {
            e->stage = STAGE_DONE;
            return 0;
        }
        if (copies) {
            e->stage = STAGE_COPY_IN;
            return e->x.copy_tasks;
        }
        /* fall through */
    case STAGE_COPY_IN:
        e->stage = STAGE_SOLVE;
        return (uint64_t)(ls->batch.count * e->cols.per_entry);
    case STAGE_SOLVE:
        if (copies) {
            e->stage = STAGE_COPY_OUT;
            return e->x.copy_tasks;
        }
        /* fall through */
    default: e->stage = STAGE_DONE; return 0;
    }
}

static const int32_t *entry_pivots(const alloy__lu_solve_op *ls, int64_t b, const alloy__mat **lu,
                                   alloy__mat *lu_out)
{
    int64_t off[3];
    alloy__batch_offsets(&ls->batch, b, 3, off);
    *lu_out = ls->lu;
    lu_out->addr += (uint64_t)off[0] * alloy_dtype_size(ls->lu.dtype);
    *lu = lu_out;
    return (const int32_t *)(uintptr_t)ls->pivots.addr + off[1];
}

static void validate(const alloy__lu_solve_op *ls, lu_solve_exec *e, uint64_t task)
{
    int64_t b0 = (int64_t)task * e->validate_per;
    int64_t b1 = b0 + e->validate_per < ls->batch.count ? b0 + e->validate_per : ls->batch.count;
    for (int64_t b = b0; b < b1; b++) {
        const alloy__mat *lu;
        alloy__mat lum;
        const int32_t *p = entry_pivots(ls, b, &lu, &lum);
        for (int64_t i = 0; i < ls->n; i++) {
            int32_t v = p[i * ls->pivots.stride];
            if (v < 1 || v > ls->n) {
                /* Keep the smallest such entry, so the message does not depend on timing. */
                int64_t seen = atomic_load(&e->bad_entry);
                while ((seen < 0 || b < seen) &&
                       !atomic_compare_exchange_weak(&e->bad_entry, &seen, b))
                    ;
                return;
            }
        }
    }
}

static void solve_block(const alloy__cpu_exec *ex, const alloy__lu_solve_op *ls,
                        const lu_solve_exec *e, uint64_t task)
{
    int64_t b = task / e->cols.per_entry, blk = task % e->cols.per_entry;
    int64_t j0 = blk * e->cols.width;
    int64_t w = ls->nrhs - j0 < e->cols.width ? ls->nrhs - j0 : e->cols.width;
    int64_t ld;
    char *x = (char *)alloy__workmat_entry(&e->x, b, &ld) + (size_t)j0 * e->x.esize;
    const alloy__mat *lu;
    alloy__mat lum;
    const int32_t *p = entry_pivots(ls, b, &lu, &lum);
    const int64_t n = ls->n, ps = ls->pivots.stride;
    const int f64 = ls->b.dtype == ALLOY_F64;
    alloy__mat lut = *lu; /* LU^T */
    lut.rs = lu->cs;
    lut.cs = lu->rs;
    if (!ls->transpose) {
        for (int64_t i = 0; i < n; i++)
            alloy__swap_rows(x, e->x.esize, ld, w, i, p[i * ps] - 1);
        if (f64) {
            alloy__tri_left_f64(ex->cd->kernels, lu, 1, 1, (double *)x, ld, n, w, ex->scratch);
            alloy__tri_left_f64(ex->cd->kernels, lu, 0, 0, (double *)x, ld, n, w, ex->scratch);
        } else {
            alloy__tri_left_f32(ex->cd->kernels, lu, 1, 1, (float *)x, ld, n, w, ex->scratch);
            alloy__tri_left_f32(ex->cd->kernels, lu, 0, 0, (float *)x, ld, n, w, ex->scratch);
        }
    } else {
        if (f64) {
            alloy__tri_left_f64(ex->cd->kernels, &lut, 1, 0, (double *)x, ld, n, w, ex->scratch);
            alloy__tri_left_f64(ex->cd->kernels, &lut, 0, 1, (double *)x, ld, n, w, ex->scratch);
        } else {
            alloy__tri_left_f32(ex->cd->kernels, &lut, 1, 0, (float *)x, ld, n, w, ex->scratch);
            alloy__tri_left_f32(ex->cd->kernels, &lut, 0, 1, (float *)x, ld, n, w, ex->scratch);
        }
        for (int64_t i = n - 1; i >= 0; i--)
            alloy__swap_rows(x, e->x.esize, ld, w, i, p[i * ps] - 1);
    }
}

static void lu_solve_task(const alloy__cpu_exec *ex, alloy__op *op, uint64_t task)
{
    lu_solve_exec *e = (lu_solve_exec *)op->exec;
    switch (e->stage) {
    case STAGE_VALIDATE: validate(&op->u.lu_solve, e, task); break;
    case STAGE_COPY_IN: alloy__workmat_copy_in(&e->x, task); break;
    case STAGE_SOLVE: solve_block(ex, &op->u.lu_solve, e, task); break;
    case STAGE_COPY_OUT: alloy__workmat_copy_out(&e->x, task); break;
    default: break;
    }
}

static alloy_status lu_solve_end(alloy__cpu_device *cd, alloy__op *op, char *err, size_t cap)
{
    lu_solve_exec *e = (lu_solve_exec *)op->exec;
    (void)cd;
    int64_t bad = atomic_load(&e->bad_entry);
    if (bad >= 0) {
        alloy__format(err, cap,
                      "pivots of batch entry %lld hold a value outside 1..%lld (not the output of "
                      "lu_factor?); b was left unchanged",
                      (long long)bad, (long long)op->u.lu_solve.n);
        return ALLOY_ERR_INVALID_ARGUMENT;
    }
    return ALLOY_OK;
}

const alloy__cpu_op_impl alloy__cpu_lu_solve_impl = {lu_solve_check, lu_solve_scratch,
                                                     lu_solve_begin, lu_solve_next_phase,
                                                     lu_solve_task,  lu_solve_end};
