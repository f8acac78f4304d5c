/* lu_solve on the GPU: the pivots come from the caller, so a first kernel checks them all
 * (every entry, every value in 1..n) before anything is written; a bad one sets the
 * queue's guard word (cleared when the command buffer's launches begin), which every later
 * kernel of the command buffer reads first and then does nothing, so b is left exactly as
 * it was and the ops after this one are skipped, and reports the smallest bad batch entry into
 * the command buffer's pinned report, which completion turns into
 * ALLOY_ERR_INVALID_ARGUMENT (queue.c). Then, as getrs:
 *   A X = B     interchanges forward, L^-1 (unit lower), U^-1 (upper, reversed to lower)
 *   A^T X = B   U^-T (lower: U's strides swapped), L^-T (unit upper: swapped and reversed),
 *               interchanges backward
 * with the triangular solves of launch_trsm.c. lu and pivots broadcast over b's batch. */
#include "cuda_backend.h"

#include <string.h>

static alloy__cu_view reversed(alloy__cu_view v, int64_t n, int64_t es, int square)
{
    v.addr += (uint64_t)(((n - 1) * v.rs + (square ? (n - 1) * v.cs : 0)) * es);
    v.rs = -v.rs;
    if (square)
        v.cs = -v.cs;
    return v;
}

/* B's rows interchanged by the pivots, all of them, forward (P B) or in reverse. Every
 * pivot is in 1..n (pivcheck ran first), so the interchanges are closed over B's rows. */
static alloy_status swaps(alloy__cu_device *cu, CUstream s, const alloy__lu_solve_op *ls, int f64,
                          int reverse, uint64_t guard, char *err, size_t cap)
{
    alloy__cu_swaps sw = {ls->b,    ls->pivots, ls->batch, guard, 0,       ls->nrhs,
                          ls->nrhs, ls->nrhs,   0,         ls->n, reverse, 1};
    for (int d = 0; d < ALLOY_MAX_RANK; d++) { /* the kernel's operand 0 is B, 1 the pivots */
        sw.batch.strides[0][d] = ls->batch.strides[2][d];
        sw.batch.strides[1][d] = ls->batch.strides[1][d];
    }
    return alloy__cu_laswp(cu, s, f64, &sw, err, cap);
}

alloy_status alloy__cu_launch_lu_solve(alloy__cu_device *cu, CUstream s, const alloy__op *op,
                                       const alloy__cu_run *run, char *err, size_t cap)
{
    const alloy__lu_solve_op *ls = &op->u.lu_solve;
    const int64_t n = ls->n, count = ls->batch.count;
    if (n == 0 || count == 0)
        return ALLOY_OK;
    const int f64 = ls->lu.dtype == ALLOY_F64;
    const int64_t es = f64 ? 8 : 4;
    alloy_cu_pivcheck_params pc;
    memset(&pc, 0, sizeof pc);
    pc.pivots = ls->pivots.addr;
    pc.guard = run->guard;
    pc.report = run->report;
    pc.n = n;
    pc.piv_stride = ls->pivots.stride;
    pc.key_base = (int64_t)run->index << ALLOY__CU_REPORT_SHIFT;
    alloy__batch pb = ls->batch;
    for (int d = 0; d < ALLOY_MAX_RANK; d++)
        pb.strides[0][d] = ls->batch.strides[1][d];
    alloy__cu_batch(&pc.batch, &pb);
    int64_t blocks = (n + ALLOY_CU_LASWP_THREADS - 1) / ALLOY_CU_LASWP_THREADS;
    alloy_status st =
        alloy__cu_launch(cu, s, cu->pivcheck, (uint64_t)blocks, alloy__cu_grid_y(count),
                         ALLOY_CU_LASWP_THREADS, 0, &pc, err, cap);
    if (st != ALLOY_OK || ls->nrhs == 0)
        return st;

    alloy__cu_solve x = {cu, s, f64, &ls->batch, 0, 2, run->guard, err, cap};
    const alloy__cu_view lu = {ls->lu.addr, ls->lu.rs, ls->lu.cs};
    const alloy__cu_view b = {ls->b.addr, ls->b.rs, ls->b.cs};
    const alloy__cu_view lut = {ls->lu.addr, ls->lu.cs, ls->lu.rs};
    if (!ls->transpose) {
        st = swaps(cu, s, ls, f64, 0, run->guard, err, cap);
        if (st == ALLOY_OK)
            st = alloy__cu_trsm_lower(&x, lu, b, n, ls->nrhs, 1, 1.0);
        if (st == ALLOY_OK)
            st = alloy__cu_trsm_lower(&x, reversed(lu, n, es, 1), reversed(b, n, es, 0), n,
                                      ls->nrhs, 0, 1.0);
    } else {
        st = alloy__cu_trsm_lower(&x, lut, b, n, ls->nrhs, 0, 1.0);
        if (st == ALLOY_OK)
            st = alloy__cu_trsm_lower(&x, reversed(lut, n, es, 1), reversed(b, n, es, 0), n,
                                      ls->nrhs, 1, 1.0);
        if (st == ALLOY_OK)
            st = swaps(cu, s, ls, f64, 1, run->guard, err, cap);
    }
    return st;
}
