/* layer_norm and RMS norm on the CPU: rows in fixed groups, one task per group. Each row
 * is read three times (sum, centred sum of squares, normalize) from cache; sums use 16
 * lanes combined pairwise, an order fixed by the row length (norm_rows.inc). */
#include "cpu.h"
#include "norm_rows.h"

#define TASK_ELEMENTS 16384 /* rows are grouped until a task covers about this many */

typedef struct norm_exec {
    int64_t rows_per_task;
    uint64_t ntasks;
    int phase;
} norm_exec;

static alloy_status norm_check(const alloy__cpu_device *cd, alloy__op *op)
{
    (void)cd;
    const alloy__norm_op *n = &op->u.norm;
    norm_exec *x = (norm_exec *)op->exec;
    int64_t per = n->d > 0 ? TASK_ELEMENTS / n->d : TASK_ELEMENTS;
    x->rows_per_task = alloy__cpu_items_per_task(n->batch.count, per);
    x->ntasks = n->batch.count > 0 ? alloy__cpu_tasks(n->batch.count, x->rows_per_task) : 0;
    if (n->d == 0 && !n->mean && !n->rstd)
        x->ntasks = 0; /* empty rows and no statistics: nothing to write */
    return ALLOY_OK;
}

static size_t norm_scratch(const alloy__cpu_device *cd, const alloy__op *op)
{
    (void)cd;
    (void)op;
    return 0;
}

static alloy_status norm_begin(alloy__cpu_device *cd, alloy__cpu_queue *cq, alloy__op *op,
                                char *err, size_t cap)
{
    (void)cd;
    (void)cq;
    (void)err;
    (void)cap;
    ((norm_exec *)op->exec)->phase = 0;
    return ALLOY_OK;
}

static uint64_t norm_next_phase(alloy__cpu_device *cd, alloy__op *op)
{
    (void)cd;
    norm_exec *x = (norm_exec *)op->exec;
    return x->phase++ == 0 ? x->ntasks : 0;
}

static void norm_task(const alloy__cpu_exec *ex, alloy__op *op, uint64_t task)
{
    const alloy__norm_op *n = &op->u.norm;
    const norm_exec *x = (const norm_exec *)op->exec;
    int64_t r0 = (int64_t)task * x->rows_per_task;
    int64_t r1 = r0 + x->rows_per_task < n->batch.count ? r0 + x->rows_per_task : n->batch.count;
    const alloy__cpu_kernels *k = ex->cd->kernels;
    alloy__norm_row_fn row = n->x.dtype == ALLOY_F64 ? k->norm_row_f64 : k->norm_row_f32;
    for (int64_t r = r0; r < r1; r++)
        row(n, r);
}

static alloy_status norm_end(alloy__cpu_device *cd, alloy__op *op, char *err, size_t cap)
{
    (void)cd;
    (void)op;
    (void)err;
    (void)cap;
    return ALLOY_OK;
}

const alloy__cpu_op_impl alloy__cpu_norm_impl = {norm_check, norm_scratch, norm_begin,
                                                 norm_next_phase, norm_task, norm_end};
