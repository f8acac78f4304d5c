/* lu_factor on the CPU: right-looking blocked LU with partial pivoting and a lookahead of
 * one panel, every batch entry through the same phases:
 *   INIT        info = 0 (and the row-major copy when the input is not row-major)
 *   PANEL       panel 0: one task per entry, recursive LU of A[0:m, 0:NB] (solve.h)
 *   per panel k of NB columns:
 *     SWAP      column blocks left and right of the panel: its row swaps; right of it
 *               also U12 = L11^-1 A12
 *     UPDATE    A22 -= L21 U12: first one task per entry that updates the next panel's
 *               columns and factors that panel (lookahead: the serial panel overlaps the
 *               rest of the update), then GEMM tiles of the remaining columns
 *   COPY_OUT    back to the caller's layout
 * The lookahead changes who computes what, not what is computed: every element of the
 * update is the same in-place FMA chain, so the result is bitwise the one without it.
 * Small matrices (N <= NB) are one PANEL task each. */
#include "solve.h"
#include "workmat.h"

#include <string.h>

enum { STAGE_START, STAGE_INIT, STAGE_PANEL, STAGE_SWAP, STAGE_UPDATE, STAGE_COPY_OUT, STAGE_DONE };

#define SWAP_COLS 256 /* columns per swap/trsm task */
#define MAX_NB 128
/* A panel of at least this many bytes is factored in a copy (see panel_task), when all
 * entries' copies together take no more than PANEL_COPY_MAX bytes of workspace. */
#define PANEL_COPY_MIN (64 * 1024)
#define PANEL_COPY_MAX ((uint64_t)256 << 20)

typedef struct lu_exec {
    alloy__workmat x;
    int64_t nb, k, kb;
    /* the next panel's width (0: none): its columns belong to the lookahead task */
    int64_t kb_next;
    int64_t left_blocks, right_blocks;
    alloy__gemm_tiling tiling;
    int64_t tiles;
    int64_t init_per;
    uint64_t init_tasks;
    int stage;
    int workers;        /* the job's share of the workers: the trailing updates' tiles fit it */
    char *panels;       /* NULL: panels are factored in place; else a copy per entry */
    size_t panel_bytes; /* each entry's copy */
    int64_t panel_ld;   /* the copies' row stride, in elements */
} lu_exec;

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

static alloy_status lu_check(const alloy__cpu_device *cd, alloy__op *op)
{
    (void)cd;
    (void)op;
    return ALLOY_OK;
}

static size_t lu_scratch(const alloy__cpu_device *cd, const alloy__op *op)
{
    return alloy__gemm_scratch(cd->kernels, op->u.lu_factor.a.dtype == ALLOY_F64);
}

static alloy_status lu_begin(alloy__cpu_device *cd, alloy__cpu_queue *cq, alloy__op *op, char *err,
                             size_t cap)
{
    const alloy__lu_factor_op *lu = &op->u.lu_factor;
    lu_exec *e = (lu_exec *)op->exec;
    alloy__workmat_plan(&e->x, &lu->a, &lu->batch, 0, lu->m, lu->n, 1.0);
    int64_t mn = min64(lu->m, lu->n);
    e->nb = mn <= MAX_NB ? (mn > 0 ? mn : 1) : (mn < 1024 ? 64 : MAX_NB);
    e->k = 0;
    e->stage = STAGE_START;
    e->workers = cq->workers;
    e->init_per = alloy__cpu_items_per_task(lu->batch.count, 4096);
    e->init_tasks = alloy__cpu_tasks(lu->batch.count, e->init_per);
    alloy_status st = alloy__workmat_begin(cd, cq, &e->x, err, cap);
    if (st != ALLOY_OK)
        return st;
    /* The panel's recursive LU sweeps its m x NB block column again and again (pivot
     * searches, leaf updates, the small GEMMs between halves). At the matrix's row stride,
     * commonly a power of two (4 KB for 1024 f32), those rows fall into a few of L2's sets
     * and do not stay there: with a row stride padded by 16 elements, lu_factor 1024 took
     * 9.0-9.3 ms instead of 11.9 (f32) and 15.2 instead of 19.2 (f64), one worker. So each
     * entry's panel is factored in a copy whose rows are a cache line more than NB apart
     * and copied back: the same operations on the same values, so the same bits. Without
     * the memory it is factored in place. */
    e->panels = NULL;
    const size_t es = e->x.esize;
    e->panel_ld = e->nb + (int64_t)(64 / es);
    const uint64_t per = (uint64_t)lu->m * (uint64_t)e->panel_ld * es;
    /* An empty batch has no panels to copy (and must not divide by its count). */
    if (lu->batch.count > 0 && (uint64_t)lu->m * (uint64_t)e->nb * es >= PANEL_COPY_MIN &&
        per <= PANEL_COPY_MAX / (uint64_t)lu->batch.count) {
        const size_t wm = alloy__workmat_bytes(&e->x);
        char *ws = alloy__cpu_workspace(cd, cq, wm + (size_t)(per * (uint64_t)lu->batch.count));
        if (ws) {
            if (wm)
                e->x.work = ws; /* the workspace may have moved; nothing is in it yet */
            e->panels = ws + wm;
            e->panel_bytes = (size_t)per;
        }
    }
    return ALLOY_OK;
}

/* Copies rows [0, m) of the kb columns at `from` (row stride ldf) to `to` (ldt). */
static void copy_block(char *to, int64_t ldt, const char *from, int64_t ldf, int64_t m, int64_t kb,
                       size_t es)
{
    for (int64_t i = 0; i < m; i++)
        memcpy(to + (size_t)(i * ldt) * es, from + (size_t)(i * ldf) * es, (size_t)kb * es);
}

/* Plans panel e->k's SWAP and UPDATE phases. */
static void plan_panel(const alloy__cpu_device *cd, const alloy__lu_factor_op *lu, lu_exec *e)
{
    const int64_t mn = min64(lu->m, lu->n);
    e->kb = min64(e->nb, mn - e->k);
    e->kb_next = min64(e->nb, mn - e->k - e->kb);
    if (e->kb_next < 0)
        e->kb_next = 0;
    e->left_blocks = ceil_div(e->k, SWAP_COLS);
    e->right_blocks = ceil_div(lu->n - e->k - e->kb, SWAP_COLS);
    int64_t rows = lu->m - e->k - e->kb, cols = lu->n - e->k - e->kb - e->kb_next;
    e->tiling = alloy__gemm_plan(cd->kernels, lu->a.dtype == ALLOY_F64, rows, cols,
                                 alloy__cpu_tiles_wanted(e->workers, lu->batch.count, 64), 0);
    e->tiles = rows > 0 && cols > 0 ? e->tiling.tiles_m * e->tiling.tiles_n : 0;
}

static uint64_t lu_next_phase(alloy__cpu_device *cd, alloy__op *op)
{
    const alloy__lu_factor_op *lu = &op->u.lu_factor;
    lu_exec *e = (lu_exec *)op->exec;
    const int64_t count = lu->batch.count, mn = min64(lu->m, lu->n);
    if (count == 0)
        return 0;
    for (;;) {
        switch (e->stage) {
        case STAGE_START:
            e->stage = STAGE_INIT;
            /* INIT copies rows when a workspace is used, else only clears info. */
            return alloy__workmat_copies(&e->x) ? e->x.copy_tasks : e->init_tasks;
        case STAGE_INIT:
            if (mn == 0) {
                e->stage = STAGE_DONE;
                return 0;
            }
            e->k = 0;
            plan_panel(cd, lu, e);
            e->stage = STAGE_PANEL;
            return (uint64_t)count;
        case STAGE_PANEL:
            e->stage = STAGE_SWAP;
            if (e->left_blocks + e->right_blocks > 0)
                return (uint64_t)(count * (e->left_blocks + e->right_blocks));
            continue;
        case STAGE_SWAP:
            e->stage = STAGE_UPDATE;
            if (e->kb_next > 0 || e->tiles > 0)
                return (uint64_t)(count * ((e->kb_next > 0) + e->tiles));
            continue;
        case STAGE_UPDATE:
            e->k += e->kb;
            if (e->k < mn) {
                /* Panel k was factored by the lookahead tasks: straight to its swaps. */
                plan_panel(cd, lu, e);
                e->stage = STAGE_PANEL;
                continue;
            }
            e->stage = STAGE_COPY_OUT;
            if (alloy__workmat_copies(&e->x))
                return e->x.copy_tasks;
            continue;
        default: e->stage = STAGE_DONE; return 0;
        }
    }
}

static int32_t *entry_info(const alloy__lu_factor_op *lu, int64_t b, int32_t **piv)
{
    int64_t off[3];
    alloy__batch_offsets(&lu->batch, b, 3, off);
    *piv = (int32_t *)(uintptr_t)lu->pivots.addr + off[1];
    return (int32_t *)(uintptr_t)lu->info + off[2];
}

static void init_task(const alloy__lu_factor_op *lu, const lu_exec *e, uint64_t task)
{
    if (alloy__workmat_copies(&e->x)) {
        alloy__workmat_copy_in(&e->x, task);
        /* Copy tasks cover rows; the entries whose first row is in this task clear info. */
        int64_t r0 = (int64_t)task * e->x.rows_per_task;
        int64_t r1 = min64(r0 + e->x.rows_per_task, lu->batch.count * lu->m);
        for (int64_t b = ceil_div(r0, lu->m); b * lu->m < r1; b++) {
            int32_t *piv;
            *entry_info(lu, b, &piv) = 0;
        }
        return;
    }
    int64_t b0 = (int64_t)task * e->init_per, b1 = min64(b0 + e->init_per, lu->batch.count);
    for (int64_t b = b0; b < b1; b++) {
        int32_t *piv;
        *entry_info(lu, b, &piv) = 0;
    }
}

/* Recursive LU of entry b's panel A[k:m, k:k+kb]; its pivots and info. */
static void panel_task(const alloy__cpu_exec *ex, const alloy__lu_factor_op *lu, const lu_exec *e,
                       int64_t b, int64_t k, int64_t kb)
{
    int64_t ld, piv[MAX_NB];
    char *a = alloy__workmat_entry(&e->x, b, &ld);
    const size_t es = e->x.esize;
    char *panel = a + (size_t)(k * ld + k) * es, *work = panel;
    int64_t wld = ld;
    if (e->panels) { /* factored in a copy (lu_begin) */
        work = e->panels + (size_t)b * e->panel_bytes;
        wld = e->panel_ld;
        copy_block(work, wld, panel, ld, lu->m - k, kb, es);
    }
    int64_t zero;
    if (es == 8)
        zero = alloy__lu_rec_f64(ex->cd->kernels, (double *)work, wld, lu->m - k, kb, piv,
                                 ex->scratch);
    else
        zero =
            alloy__lu_rec_f32(ex->cd->kernels, (float *)work, wld, lu->m - k, kb, piv, ex->scratch);
    if (e->panels)
        copy_block(panel, ld, work, wld, lu->m - k, kb, es);
    int32_t *pout;
    int32_t *info = entry_info(lu, b, &pout);
    if (zero >= 0 && *info == 0)
        *info = (int32_t)(k + zero + 1);
    for (int64_t i = 0; i < kb; i++)
        pout[(k + i) * lu->pivots.stride] = (int32_t)(k + piv[i] + 1);
}

/* Lookahead: the next panel's columns of A22 -= L21 U12, then that panel's LU. */
static void lookahead_task(const alloy__cpu_exec *ex, const alloy__lu_factor_op *lu,
                           const lu_exec *e, int64_t b)
{
    int64_t ld;
    char *a = alloy__workmat_entry(&e->x, b, &ld);
    const size_t es = e->x.esize;
    const int64_t k = e->k, kb = e->kb, r0 = k + kb;
    alloy__mat l21, u12;
    l21.addr = (uint64_t)(uintptr_t)(a + (size_t)(r0 * ld + k) * es);
    u12.addr = (uint64_t)(uintptr_t)(a + (size_t)(k * ld + r0) * es);
    l21.dtype = u12.dtype = lu->a.dtype;
    l21.rs = u12.rs = ld;
    l21.cs = u12.cs = 1;
    char *c = a + (size_t)(r0 * ld + r0) * es;
    if (es == 8)
        alloy__gemm_update_all_f64(ex->cd->kernels, &l21, &u12, (double *)c, ld, lu->m - r0,
                                   e->kb_next, kb, 1, ex->scratch);
    else
        alloy__gemm_update_all_f32(ex->cd->kernels, &l21, &u12, (float *)c, ld, lu->m - r0,
                                   e->kb_next, kb, 1, ex->scratch);
    panel_task(ex, lu, e, b, r0, e->kb_next);
}

static void swap_task(const alloy__cpu_exec *ex, const alloy__lu_factor_op *lu, const lu_exec *e,
                      int64_t b, int64_t blk)
{
    int64_t ld;
    char *a = alloy__workmat_entry(&e->x, b, &ld);
    const size_t es = e->x.esize;
    const int64_t k = e->k, kb = e->kb;
    int right = blk >= e->left_blocks;
    int64_t c0 = right ? k + kb + (blk - e->left_blocks) * SWAP_COLS : blk * SWAP_COLS;
    int64_t c1 = min64(c0 + SWAP_COLS, right ? lu->n : k);
    int32_t *pout;
    entry_info(lu, b, &pout);
    for (int64_t i = k; i < k + kb; i++)
        alloy__swap_rows(a + (size_t)c0 * es, es, ld, c1 - c0, i,
                         (int64_t)pout[i * lu->pivots.stride] - 1);
    if (!right)
        return;
    alloy__mat l11;
    l11.addr = (uint64_t)(uintptr_t)(a + (size_t)(k * ld + k) * es);
    l11.dtype = lu->a.dtype;
    l11.rs = ld;
    l11.cs = 1;
    char *x = a + (size_t)(k * ld + c0) * es;
    if (es == 8)
        alloy__tri_left_f64(ex->cd->kernels, &l11, 1, 1, (double *)x, ld, kb, c1 - c0, ex->scratch);
    else
        alloy__tri_left_f32(ex->cd->kernels, &l11, 1, 1, (float *)x, ld, kb, c1 - c0, ex->scratch);
}

static void update_task(const alloy__cpu_exec *ex, const alloy__lu_factor_op *lu, const lu_exec *e,
                        int64_t b, int64_t tile)
{
    int64_t ld;
    char *a = alloy__workmat_entry(&e->x, b, &ld);
    const size_t es = e->x.esize;
    const int64_t k = e->k, kb = e->kb, r0 = k + kb, c0 = r0 + e->kb_next;
    int64_t im = tile / e->tiling.tiles_n, jn = tile % e->tiling.tiles_n;
    int64_t i0 = r0 + im * e->tiling.mt, j0 = c0 + jn * e->tiling.nt;
    int64_t mt = min64(e->tiling.mt, lu->m - i0), nt = min64(e->tiling.nt, lu->n - j0);
    alloy__mat l21, u12;
    l21.addr = (uint64_t)(uintptr_t)(a + (size_t)(i0 * ld + k) * es);
    u12.addr = (uint64_t)(uintptr_t)(a + (size_t)(k * ld + j0) * es);
    l21.dtype = u12.dtype = lu->a.dtype;
    l21.rs = u12.rs = ld;
    l21.cs = u12.cs = 1;
    char *c = a + (size_t)(i0 * ld + j0) * es;
    if (es == 8)
        alloy__gemm_update_f64(ex->cd->kernels, &l21, &u12, (double *)c, ld, mt, nt, kb, 1,
                               ex->scratch);
    else
        alloy__gemm_update_f32(ex->cd->kernels, &l21, &u12, (float *)c, ld, mt, nt, kb, 1,
                               ex->scratch);
}

static void lu_task(const alloy__cpu_exec *ex, alloy__op *op, uint64_t task)
{
    const alloy__lu_factor_op *lu = &op->u.lu_factor;
    const lu_exec *e = (const lu_exec *)op->exec;
    switch (e->stage) {
    case STAGE_INIT: init_task(lu, e, task); break;
    case STAGE_PANEL: panel_task(ex, lu, e, task, 0, e->kb); break;
    case STAGE_SWAP: {
        int64_t per = e->left_blocks + e->right_blocks;
        swap_task(ex, lu, e, task / per, task % per);
        break;
    }
    case STAGE_UPDATE: {
        /* Lookahead tasks first (one per entry), so they start before the tiles. */
        const int64_t ahead = e->kb_next > 0 ? lu->batch.count : 0, t = (int64_t)task;
        if (t < ahead)
            lookahead_task(ex, lu, e, t);
        else
            update_task(ex, lu, e, (t - ahead) / e->tiles, (t - ahead) % e->tiles);
        break;
    }
    case STAGE_COPY_OUT: alloy__workmat_copy_out(&e->x, task); break;
    default: break;
    }
}

static alloy_status lu_end(alloy__cpu_device *cd, alloy__op *op, char *err, size_t cap)
{
    (void)err;
    (void)cap;
    (void)cd;
    (void)op;
    return ALLOY_OK;
}

const alloy__cpu_op_impl alloy__cpu_lu_factor_impl = {lu_check,      lu_scratch, lu_begin,
                                                      lu_next_phase, lu_task,    lu_end};
