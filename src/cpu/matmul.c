/* matmul on the CPU: one phase whose tasks are output tiles of every batch entry. */
#include "cpu.h"
#include "gemm/gemm.h"

typedef struct matmul_exec {
    alloy__gemm_tiling tiling;
    int64_t tiles;   /* per batch entry */
    int64_t per;     /* tiles per task */
    uint32_t ntasks;
    int phase;
} matmul_exec;

/* Tiles enough for 64 workers to share a single large product. */
#define WANT_TILES 64
/* Small tiles are grouped so a task has at least this many multiply-adds. */
#define MIN_TASK_FMAS (INT64_C(1) << 16)

static int is_f64(const alloy__matmul_op *mm) { return mm->c.dtype == ALLOY_F64; }

static alloy_status matmul_check(const alloy__cpu_device *cd, alloy__op *op)
{
    const alloy__matmul_op *mm = &op->u.matmul;
    matmul_exec *x = (matmul_exec *)op->exec;
    int64_t want = mm->batch.count >= WANT_TILES ? 1 : WANT_TILES / mm->batch.count;
    x->tiling = alloy__gemm_plan(cd->kernels, is_f64(mm), mm->m, mm->n, want);
    x->tiles = x->tiling.tiles_m * x->tiling.tiles_n;
    int64_t total = x->tiles * mm->batch.count;
    int64_t fmas = x->tiling.mt * x->tiling.nt * (mm->k > 0 ? mm->k : 1);
    int64_t min_per = fmas >= MIN_TASK_FMAS ? 1 : MIN_TASK_FMAS / fmas;
    x->per = alloy__cpu_items_per_task(total, min_per);
    x->ntasks = total > 0 ? alloy__cpu_tasks(total, x->per) : 0;
    return ALLOY_OK;
}

static size_t matmul_scratch(const alloy__cpu_device *cd, const alloy__op *op)
{
    return alloy__gemm_scratch(cd->kernels, is_f64(&op->u.matmul));
}

static alloy_status matmul_begin(alloy__cpu_device *cd, alloy__op *op, char *err, size_t cap)
{
    (void)cd;
    (void)err;
    (void)cap;
    ((matmul_exec *)op->exec)->phase = 0;
    return ALLOY_OK;
}

static uint32_t matmul_next_phase(alloy__cpu_device *cd, alloy__op *op)
{
    (void)cd;
    matmul_exec *x = (matmul_exec *)op->exec;
    return x->phase++ == 0 ? x->ntasks : 0;
}

static void matmul_task(const alloy__cpu_exec *ex, alloy__op *op, uint32_t task)
{
    const alloy__matmul_op *mm = &op->u.matmul;
    const matmul_exec *x = (const matmul_exec *)op->exec;
    int64_t total = x->tiles * mm->batch.count;
    int64_t t0 = (int64_t)task * x->per, t1 = t0 + x->per < total ? t0 + x->per : total;
    const int f64 = is_f64(mm);
    for (int64_t t = t0; t < t1; t++) {
        int64_t b = t / x->tiles, r = t % x->tiles;
        int64_t im = r / x->tiling.tiles_n, jn = r % x->tiling.tiles_n;
        int64_t off[3];
        alloy__batch_offsets(&mm->batch, b, 3, off);
        alloy__gemm_args g;
        g.m = mm->m;
        g.n = mm->n;
        g.k = mm->k;
        g.a = mm->a;
        g.b = mm->b;
        g.c = mm->c;
        g.a.addr += (uint64_t)off[0] * alloy_dtype_size(mm->a.dtype);
        g.b.addr += (uint64_t)off[1] * alloy_dtype_size(mm->b.dtype);
        g.c.addr += (uint64_t)off[2] * alloy_dtype_size(mm->c.dtype);
        g.bias = mm->bias;
        g.alpha = mm->alpha;
        g.beta = mm->beta;
        int64_t i0 = im * x->tiling.mt, j0 = jn * x->tiling.nt;
        int64_t mt = mm->m - i0 < x->tiling.mt ? mm->m - i0 : x->tiling.mt;
        int64_t nt = mm->n - j0 < x->tiling.nt ? mm->n - j0 : x->tiling.nt;
        if (f64)
            alloy__gemm_tile_f64(ex->cd->kernels, &g, i0, mt, j0, nt, ex->scratch);
        else
            alloy__gemm_tile_f32(ex->cd->kernels, &g, i0, mt, j0, nt, ex->scratch);
    }
}

static alloy_status matmul_end(alloy__cpu_device *cd, alloy__op *op, char *err, size_t cap)
{
    (void)cd;
    (void)op;
    (void)err;
    (void)cap;
    return ALLOY_OK;
}

const alloy__cpu_op_impl alloy__cpu_matmul_impl = {matmul_check, matmul_scratch, matmul_begin,
                                                   matmul_next_phase, matmul_task, matmul_end};
