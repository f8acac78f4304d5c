/* Row-major working copies for the blocked solvers (see workmat.h). */
#include "workmat.h"

#include <string.h>

#define COPY_ELEMENTS 65536 /* per copy task */

void alloy__workmat_plan(alloy__workmat *w, const alloy__mat *user, const alloy__batch *batch,
                         int operand, int64_t m, int64_t n, double scale)
{
    memset(w, 0, sizeof *w);
    w->user = *user;
    w->batch = batch;
    w->operand = operand;
    w->m = m;
    w->n = n;
    w->esize = alloy_dtype_size(user->dtype);
    w->scale = scale;
    /* Row-major already (unit column stride): work in place. */
    w->ldw = user->cs == 1 || n <= 1 ? 0 : (n + 7) / 8 * 8;
    int64_t rows = batch->count * m;
    int64_t per = n > 0 ? COPY_ELEMENTS / n : COPY_ELEMENTS;
    w->rows_per_task = alloy__cpu_items_per_task(rows, per);
    w->copy_tasks = rows > 0 && n > 0 ? alloy__cpu_tasks(rows, w->rows_per_task) : 0;
}

int alloy__workmat_copies(const alloy__workmat *w) { return w->ldw != 0 && w->copy_tasks > 0; }

/* The copy's bytes, or 0 when it overflows. */
static uint64_t work_bytes(const alloy__workmat *w)
{
    uint64_t bytes;
    if (alloy__mul_overflow_u64((uint64_t)w->batch->count * (uint64_t)w->m, (uint64_t)w->ldw,
                                &bytes) ||
        alloy__mul_overflow_u64(bytes, w->esize, &bytes) || bytes > SIZE_MAX)
        return 0;
    return bytes;
}

size_t alloy__workmat_bytes(const alloy__workmat *w) { return w->work ? (size_t)work_bytes(w) : 0; }

alloy_status alloy__workmat_begin(alloy__cpu_device *cd, alloy__cpu_queue *cq, alloy__workmat *w,
                                  char *err, size_t cap)
{
    w->work = NULL;
    if (!alloy__workmat_copies(w))
        return ALLOY_OK;
    const uint64_t bytes = work_bytes(w);
    if (bytes == 0) {
        alloy__format(err, cap, "workspace size overflows");
        return ALLOY_ERR_OUT_OF_MEMORY;
    }
    w->work = alloy__cpu_workspace(cd, cq, (size_t)bytes);
    if (!w->work) {
        alloy__format(err, cap,
                      "cannot allocate a %llu-byte row-major workspace (the matrix is not "
                      "row-major; pass a row-major one to work in place)",
                      (unsigned long long)bytes);
        return ALLOY_ERR_OUT_OF_MEMORY;
    }
    return ALLOY_OK;
}

static char *user_entry(const alloy__workmat *w, int64_t b)
{
    int64_t off[ALLOY__MAX_OPERANDS];
    alloy__batch_offsets(w->batch, b, w->operand + 1, off);
    return (char *)(uintptr_t)w->user.addr + (size_t)off[w->operand] * w->esize;
}

void *alloy__workmat_entry(const alloy__workmat *w, int64_t b, int64_t *ld)
{
    if (w->ldw) {
        *ld = w->ldw;
        return (char *)w->work + (size_t)(b * w->m * w->ldw) * w->esize;
    }
    *ld = w->user.rs;
    return user_entry(w, b);
}

static void copy_rows(const alloy__workmat *w, uint64_t task, int in)
{
    int64_t rows = w->batch->count * w->m;
    int64_t r0 = (int64_t)task * w->rows_per_task;
    int64_t r1 = r0 + w->rows_per_task < rows ? r0 + w->rows_per_task : rows;
    for (int64_t r = r0; r < r1; r++) {
        int64_t b = r / w->m, i = r % w->m;
        char *u = user_entry(w, b) + (size_t)(i * w->user.rs) * w->esize;
        char *k = (char *)w->work + (size_t)((b * w->m + i) * w->ldw) * w->esize;
        const int64_t cs = w->user.cs, n = w->n;
        if (w->esize == 8) {
            double *ud = (double *)u, *kd = (double *)k;
            const double s = w->scale;
            if (in)
                for (int64_t j = 0; j < n; j++)
                    kd[j] = s == 0.0 ? 0.0 : s == 1.0 ? ud[j * cs] : s * ud[j * cs];
            else
                for (int64_t j = 0; j < n; j++)
                    ud[j * cs] = kd[j];
        } else {
            float *uf = (float *)u, *kf = (float *)k;
            const float s = (float)w->scale;
            if (in)
                for (int64_t j = 0; j < n; j++)
                    kf[j] = w->scale == 0.0 ? 0.0f : w->scale == 1.0 ? uf[j * cs] : s * uf[j * cs];
            else
                for (int64_t j = 0; j < n; j++)
                    uf[j * cs] = kf[j];
        }
    }
}

void alloy__workmat_copy_in(const alloy__workmat *w, uint64_t task) { copy_rows(w, task, 1); }
void alloy__workmat_copy_out(const alloy__workmat *w, uint64_t task) { copy_rows(w, task, 0); }
