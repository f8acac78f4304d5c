/* triangular_solve on the CPU. Every variant becomes a left-side solve
 *     op'(A) X = alpha B'    (op' lower or upper)
 * on X = B (left) or X = B^T (right: X op(A) = alpha B  <=>  op(A)^T X^T = alpha B^T),
 * both views by stride swaps. The columns of X are independent: the solve phase is one
 * task per column block, each a blocked substitution (solve.h). */
#include "solve.h"
#include "solve_plan.h"
#include "workmat.h"

enum { STAGE_START, STAGE_COPY_IN, STAGE_SOLVE, STAGE_COPY_OUT, STAGE_DONE };

typedef struct trsm_exec {
    alloy__workmat x;
    alloy__mat a; /* op'(A) */
    int lower;
    alloy__col_blocks cols;
    int stage;
} trsm_exec;

static void canonical(const alloy__trsm_op *t, alloy__mat *x, alloy__mat *a, int *lower, int64_t *m,
                      int64_t *n)
{
    int lower_op = (t->uplo == ALLOY_LOWER) != (t->transpose != 0); /* is op(A) lower? */
    alloy__mat at = t->a;                                           /* A^T */
    at.rs = t->a.cs;
    at.cs = t->a.rs;
    if (t->side == ALLOY_LEFT) {
        *x = t->b;
        *a = t->transpose ? at : t->a;
        *lower = lower_op;
        *m = t->m;
        *n = t->n;
    } else {
        *x = t->b;
        x->rs = t->b.cs;
        x->cs = t->b.rs;
        *a = t->transpose ? t->a : at; /* op(A)^T */
        *lower = !lower_op;
        *m = t->n;
        *n = t->m;
    }
}

static alloy_status trsm_check(const alloy__cpu_device *cd, alloy__op *op)
{
    (void)cd;
    (void)op;
    return ALLOY_OK;
}

static size_t trsm_scratch(const alloy__cpu_device *cd, const alloy__op *op)
{
    return alloy__gemm_scratch(cd->kernels, op->u.trsm.b.dtype == ALLOY_F64);
}

static alloy_status trsm_begin(alloy__cpu_device *cd, alloy__cpu_queue *cq, alloy__op *op,
                               char *err, size_t cap)
{
    const alloy__trsm_op *t = &op->u.trsm;
    trsm_exec *e = (trsm_exec *)op->exec;
    alloy__mat x;
    int64_t m, n;
    canonical(t, &x, &e->a, &e->lower, &m, &n);
    alloy__workmat_plan(&e->x, &x, &t->batch, 1, m, n, t->alpha);
    e->cols = alloy__col_blocks_plan(n, t->batch.count, cq->workers, 0.5 * (double)m * (double)m);
    e->stage = STAGE_START;
    return alloy__workmat_begin(cd, cq, &e->x, err, cap);
}

static uint64_t trsm_next_phase(alloy__cpu_device *cd, alloy__op *op)
{
    (void)cd;
    trsm_exec *e = (trsm_exec *)op->exec;
    const alloy__trsm_op *t = &op->u.trsm;
    if (t->batch.count == 0 || e->x.m == 0 || e->x.n == 0)
        return 0;
    int copies = alloy__workmat_copies(&e->x);
    switch (e->stage) {
    case STAGE_START:
        if (copies) {
            e->stage = STAGE_COPY_IN;
            return e->x.copy_tasks;
        }
        /* fall through */
    case STAGE_COPY_IN:
        e->stage = STAGE_SOLVE;
        return (uint64_t)(t->batch.count * e->cols.per_entry);
    case STAGE_SOLVE:
        if (copies) {
            e->stage = STAGE_COPY_OUT;
            return e->x.copy_tasks;
        }
        /* fall through */
    default: e->stage = STAGE_DONE; return 0;
    }
}

static void solve_block(const alloy__cpu_exec *ex, const alloy__trsm_op *t, const trsm_exec *e,
                        uint64_t task)
{
    int64_t b = task / e->cols.per_entry, blk = task % e->cols.per_entry;
    int64_t j0 = blk * e->cols.width;
    int64_t w = e->x.n - j0 < e->cols.width ? e->x.n - j0 : e->cols.width;
    int64_t ld;
    char *x = alloy__workmat_entry(&e->x, b, &ld);
    int f64 = t->b.dtype == ALLOY_F64;
    x += (size_t)j0 * e->x.esize;
    if (!alloy__workmat_copies(&e->x) && t->alpha != 1.0) {
        /* In place: alpha is applied here (copy-in applies it otherwise). */
        for (int64_t i = 0; i < e->x.m; i++) {
            if (f64) {
                double *r = (double *)x + i * ld;
                for (int64_t j = 0; j < w; j++)
                    r[j] = t->alpha == 0.0 ? 0.0 : t->alpha * r[j];
            } else {
                float *r = (float *)x + i * ld;
                const float s = (float)t->alpha;
                for (int64_t j = 0; j < w; j++)
                    r[j] = t->alpha == 0.0 ? 0.0f : s * r[j];
            }
        }
    }
    if (t->alpha == 0.0)
        return; /* X = 0; A is never read */
    int64_t off[2];
    alloy__batch_offsets(&t->batch, b, 2, off);
    alloy__mat a = e->a;
    a.addr += (uint64_t)off[0] * e->x.esize;
    if (f64)
        alloy__tri_left_f64(ex->cd->kernels, &a, e->lower, t->unit_diagonal, (double *)x, ld,
                            e->x.m, w, ex->scratch);
    else
        alloy__tri_left_f32(ex->cd->kernels, &a, e->lower, t->unit_diagonal, (float *)x, ld, e->x.m,
                            w, ex->scratch);
}

static void trsm_task(const alloy__cpu_exec *ex, alloy__op *op, uint64_t task)
{
    trsm_exec *e = (trsm_exec *)op->exec;
    switch (e->stage) {
    case STAGE_COPY_IN: alloy__workmat_copy_in(&e->x, task); break;
    case STAGE_SOLVE: solve_block(ex, &op->u.trsm, e, task); break;
    case STAGE_COPY_OUT: alloy__workmat_copy_out(&e->x, task); break;
    default: break;
    }
}

static alloy_status trsm_end(alloy__cpu_device *cd, alloy__op *op, char *err, size_t cap)
{
    (void)err;
    (void)cap;
    (void)cd;
    (void)op;
    return ALLOY_OK;
}

const alloy__cpu_op_impl alloy__cpu_trsm_impl = {trsm_check,      trsm_scratch, trsm_begin,
                                                 trsm_next_phase, trsm_task,    trsm_end};
