/* matmul on the CPU: output tiles of every batch entry, one task each. When B is reused
 * by several row tiles (or shared by batch entries), a first phase packs it once into the
 * queue's workspace and every tile reads that (BLIS's shared B panel); A likewise when
 * several column tiles (or entries) read its rows, or many when it is row-major in the
 * compute type (the tiles read such an A in place); otherwise each tile packs its own.
 * All give the same bits: a product element is one FMA chain whatever the packing or
 * tiling. M <= 4 against a row-major B takes the skinny kernel (same chains). When there
 * are few tiles but a long K, K is split into chunks fixed by the shape: partial products
 * in one phase, summed in chunk order in the next. */
#include "cpu.h"
#include "gemm/gemm.h"

typedef struct matmul_exec {
    int skinny; /* m <= 4 against a row-major B: column blocks through the skinny kernel */
    alloy__gemm_tiling tiling;
    int64_t tiles; /* per batch entry */
    int64_t per;   /* tiles per task */
    uint64_t ntasks;
    /* split K: nsplit chunks of kchunk, partials in the queue's workspace */
    int64_t nsplit, kchunk;
    void *parts;
    /* shared packed B and A */
    int prepack;              /* B packed in the first phase */
    int prepack_a;            /* A packed in the first phase */
    int64_t b_entries;        /* distinct B matrices packed (1 when B is broadcast) */
    int64_t a_entries;        /* distinct A matrices packed */
    int64_t kblocks, nblocks; /* B pack tasks per entry: kblocks x nblocks */
    int64_t mblocks;          /* A pack tasks per entry: row blocks, each all of K */
    size_t packed_size;       /* bytes per B entry */
    size_t packed_a_size;     /* bytes per A entry, 64-byte multiple */
    void *packed, *packed_a;
    int phase;
} matmul_exec;

/* Tiles enough for 32 workers to share a single large product (more tiles repack the
 * same A rows more often). */
#define WANT_TILES 32
/* Small tiles are grouped so a task has at least this many multiply-adds. */
#define MIN_TASK_FMAS (INT64_C(1) << 16)
/* B pack tasks: a K block of this many columns (whole rows of B at 2048 are read front
 * to back); A pack tasks: this many microkernel rows, every K block (whole rows of A). */
#define PACK_COLS 2048
#define PACK_ROW_SLIVERS 4
/* Split K only for long reductions over few tiles, in chunks of at least KSPLIT_CHUNK
 * and at most 64 chunks. */
#define KSPLIT_MIN_K 8192
#define KSPLIT_MAX_TILES 16
#define KSPLIT_CHUNK 2048
/* Packed B larger than this is not worth holding: tiles pack their own. */
#define MAX_PACKED (INT64_C(1) << 30)

static int is_f64(const alloy__matmul_op *mm) { return mm->c.dtype == ALLOY_F64; }

/* The op as GEMM args, at batch entry 0 (what the path predicates look at: shapes,
 * dtypes, strides and scalars, the same for every entry). */
static alloy__gemm_args op_args(const alloy__matmul_op *mm)
{
    alloy__gemm_args g = {0};
    g.m = mm->m;
    g.n = mm->n;
    g.k = mm->k;
    g.a = mm->a;
    g.b = mm->b;
    g.c = mm->c;
    g.bias = mm->bias;
    g.alpha = mm->alpha;
    g.beta = mm->beta;
    return g;
}

/* Whether the tiles take the panel kernel (gemm.h), whose tiles are wide. Not with split K:
 * its sums hold a whole tile in scratch. */
static int panel(const alloy__cpu_device *cd, const alloy__matmul_op *mm, const matmul_exec *x)
{
    const alloy__gemm_args g = op_args(mm);
    return x->nsplit == 1 && !x->skinny && alloy__gemm_panel(cd->kernels, is_f64(mm), &g);
}

/* The tiling fitted to `workers`, or to fewer when the product is too small to be worth
 * them (alloy__cpu_workers_for; a skinny product keeps its column strips), and the
 * tasks over it. Done at encode time for the whole device, and again when the op starts
 * for the workers it can expect then (a tiling changes no bits). */
static void fit(const alloy__cpu_device *cd, const alloy__matmul_op *mm, matmul_exec *x,
                int workers)
{
    workers = alloy__cpu_workers_for(workers, (double)mm->m * (double)mm->n *
                                                  (double)(mm->k > 0 ? mm->k : 1) *
                                                  (double)mm->batch.count);
    if (!x->skinny) {
        const int64_t want = alloy__cpu_tiles_wanted(workers, mm->batch.count, WANT_TILES);
        x->tiling = alloy__gemm_plan(cd->kernels, is_f64(mm), mm->m, mm->n, want, panel(cd, mm, x));
        /* A tail of rows of at most a quarter of a tile joins the last row tile instead
         * of being tiles of its own, which would stream whole B blocks for a few rows and
         * could not prefetch all of the next one (2048 = 14 x 144 + 32: +0.4-0.7%; 1024
         * = 7 x 144 + 16: +1.2%). Not with split K, whose last pass holds a tile in
         * scratch. */
        const int64_t tail = mm->m - (x->tiling.tiles_m - 1) * x->tiling.mt;
        if (x->nsplit == 1 && x->tiling.tiles_m >= 2 && tail <= x->tiling.mt / 4)
            x->tiling.tiles_m--;
        /* and if that leaves fewer tiles than wanted, the tiles are narrowed as the plan
         * would have (1024 on 2 workers: 8 row tiles of 1024 columns became 7, which two
         * workers share 4 and 3: 1.72x one worker's speed, against 1.95x for 14 tiles) */
        const int64_t nr = is_f64(mm) ? cd->kernels->f64.nr : cd->kernels->f32.nr;
        while (x->tiling.tiles_m * x->tiling.tiles_n < want && x->tiling.nt > 4 * nr) {
            x->tiling.nt = (x->tiling.nt / 2 + nr - 1) / nr * nr;
            x->tiling.tiles_n = (mm->n + x->tiling.nt - 1) / x->tiling.nt;
        }
        x->tiles = x->tiling.tiles_m * x->tiling.tiles_n;
    }
    const int64_t total = x->tiles * mm->batch.count;
    int64_t fmas = x->tiling.mt * x->tiling.nt * (mm->k > 0 ? mm->k : 1);
    int64_t min_per = fmas >= MIN_TASK_FMAS ? 1 : MIN_TASK_FMAS / fmas;
    x->per = alloy__cpu_items_per_task(total, min_per);
    x->ntasks = total > 0 ? alloy__cpu_tasks(total, x->per) : 0;
}

static alloy_status matmul_check(const alloy__cpu_device *cd, alloy__op *op)
{
    const alloy__matmul_op *mm = &op->u.matmul;
    matmul_exec *x = (matmul_exec *)op->exec;
    int64_t want =
        mm->batch.count >= WANT_TILES || mm->batch.count == 0 ? 1 : WANT_TILES / mm->batch.count;
    const alloy__gemm_args g = op_args(mm);
    x->skinny = alloy__gemm_skinny_ok(&g, is_f64(mm));
    if (x->skinny) {
        x->tiling.mt = mm->m;
        x->tiling.nt = ALLOY__SKINNY_COLS;
        x->tiling.tiles_m = 1;
        x->tiling.tiles_n = (mm->n + ALLOY__SKINNY_COLS - 1) / ALLOY__SKINNY_COLS;
    } else {
        /* the ordinary tiling, without the panel kernel's wide tiles: K's split depends on it */
        x->tiling = alloy__gemm_plan(cd->kernels, is_f64(mm), mm->m, mm->n, want, 0);
    }
    x->tiles = x->tiling.tiles_m * x->tiling.tiles_n;
    int64_t total = x->tiles * mm->batch.count;
    x->nsplit = 1;
    x->kchunk = mm->k;
    /* Whether K is split changes the sums, so it is decided on the tiling above, which
     * depends on the shape alone; the tiling itself changes no bits and is then fitted to
     * the workers (one worker: no tile boundary repacks A or B). */
    if (total > 0 && total < KSPLIT_MAX_TILES && mm->k >= KSPLIT_MIN_K && mm->alpha != 0.0) {
        int64_t per = (mm->k + 63) / 64;
        per = (per + 255) / 256 * 256;
        x->kchunk = per > KSPLIT_CHUNK ? per : KSPLIT_CHUNK;
        x->nsplit = (mm->k + x->kchunk - 1) / x->kchunk;
    }
    fit(cd, mm, x, cd->nworkers);
    return ALLOY_OK;
}

static size_t matmul_scratch(const alloy__cpu_device *cd, const alloy__op *op)
{
    return alloy__gemm_scratch(cd->kernels, is_f64(&op->u.matmul));
}

/* Whether operand `which` (0 A, 1 B) is the same matrix for every batch entry. */
static int broadcast(const alloy__matmul_op *mm, int which)
{
    for (int d = 0; d < mm->batch.rank; d++)
        if (mm->batch.strides[which][d] != 0)
            return 0;
    return 1;
}

static alloy_status matmul_begin(alloy__cpu_device *cd, alloy__cpu_queue *cq, alloy__op *op,
                                 char *err, size_t cap)
{
    const alloy__matmul_op *mm = &op->u.matmul;
    matmul_exec *x = (matmul_exec *)op->exec;
    x->phase = 0;
    x->prepack = 0;
    x->packed = NULL;
    x->parts = NULL;
    if (x->nsplit > 1) {
        /* Results must not depend on memory at hand, so no fallback: fail instead. */
        uint64_t bytes = 0;
        if (alloy__mul_overflow_u64((uint64_t)mm->batch.count * (uint64_t)x->nsplit,
                                    (uint64_t)(mm->m * mm->n), &bytes) ||
            alloy__mul_overflow_u64(bytes, is_f64(mm) ? 8 : 4, &bytes) || bytes > SIZE_MAX ||
            !(x->parts = alloy__cpu_workspace(cd, cq, (size_t)bytes))) {
            alloy__format(err, cap, "cannot allocate %llu bytes for split-K partial products",
                          (unsigned long long)bytes);
            return ALLOY_ERR_OUT_OF_MEMORY;
        }
        return ALLOY_OK;
    }
    x->prepack_a = 0;
    x->packed_a = NULL;
    fit(cd, mm, x, cq->workers);
    if (x->ntasks == 0 || mm->alpha == 0.0 || mm->k == 0 || x->skinny)
        return ALLOY_OK;
    const int f64 = is_f64(mm);
    const alloy__gemm_args g = op_args(mm);
    if (alloy__gemm_thin(cd->kernels, f64, &g, mm->n))
        return ALLOY_OK; /* every tile takes the thin kernel, which reads A and B in place */
    const alloy__gemm_blocking *bk = f64 ? &cd->kernels->f64 : &cd->kernels->f32;
    const int64_t count = mm->batch.count;
    x->kblocks = (mm->k + bk->kc - 1) / bk->kc;
    x->b_entries = broadcast(mm, 1) ? 1 : count;
    x->a_entries = broadcast(mm, 0) ? 1 : count;
    x->nblocks = (mm->n + PACK_COLS - 1) / PACK_COLS;
    x->mblocks = (mm->m + bk->mr * PACK_ROW_SLIVERS - 1) / (bk->mr * PACK_ROW_SLIVERS);
    x->packed_size = alloy__gemm_packed_size(cd->kernels, f64, mm->k, mm->n);
    x->packed_a_size =
        (alloy__gemm_packed_a_size(cd->kernels, f64, mm->m, mm->k) + 63) & ~(size_t)63;
    /* Worth packing once when more than one tile would pack the same panel. */
    const int64_t reuse_b = x->tiling.tiles_m * (count / x->b_entries);
    const int64_t reuse_a = x->tiling.tiles_n * (count / x->a_entries);
    const int want_b = reuse_b >= 2 && (int64_t)x->packed_size <= MAX_PACKED / x->b_entries &&
                       x->b_entries * x->kblocks * x->nblocks <= ALLOY__CPU_MAX_TASKS / 2;
    /* a row-major A the tiles would read in place: only when many column tiles read it */
    const int64_t min_reads_a =
        alloy__gemm_a_in_place(f64, &mm->a) ? ALLOY__GEMM_PACK_A_MIN_READS : 2;
    /* (the panel kernel copies its A rows itself: not for tiles that take it) */
    const int panel_tiles = panel(cd, mm, x) && x->tiling.nt >= ALLOY__GEMM_PANEL_MIN_COLS;
    const int want_a = reuse_a >= min_reads_a && !panel_tiles &&
                       (int64_t)x->packed_a_size <= MAX_PACKED / x->a_entries &&
                       x->a_entries * x->mblocks <= ALLOY__CPU_MAX_TASKS / 2;
    if (!want_b && !want_a)
        return ALLOY_OK;
    size_t a_bytes = want_a ? x->packed_a_size * (size_t)x->a_entries : 0;
    size_t b_bytes = want_b ? x->packed_size * (size_t)x->b_entries : 0;
    /* Without the memory the tiles pack their own: slower, same result. */
    char *ws = alloy__cpu_workspace(cd, cq, a_bytes + b_bytes);
    if (!ws)
        return ALLOY_OK;
    x->packed_a = want_a ? ws : NULL;
    x->packed = want_b ? ws + a_bytes : NULL;
    x->prepack_a = want_a;
    x->prepack = want_b;
    return ALLOY_OK;
}

/* Pack tasks of the first phase: B's (entry, K block, column block), then A's (entry, row
 * block). */
static int64_t b_pack_tasks(const matmul_exec *x)
{
    return x->prepack ? x->b_entries * x->kblocks * x->nblocks : 0;
}

static int64_t a_pack_tasks(const matmul_exec *x)
{
    return x->prepack_a ? x->a_entries * x->mblocks : 0;
}

static uint64_t matmul_next_phase(alloy__cpu_device *cd, alloy__op *op)
{
    (void)cd;
    matmul_exec *x = (matmul_exec *)op->exec;
    if (x->nsplit > 1) {
        int64_t total = x->tiles * op->u.matmul.batch.count;
        switch (x->phase++) {
        case 0: return (uint64_t)(total * x->nsplit); /* partial products (phase 1) */
        case 1: return (uint64_t)total;               /* sums and epilogue (phase 2) */
        default: return 0;
        }
    }
    switch (x->phase++) {
    case 0:
        if (x->prepack || x->prepack_a)
            return (uint64_t)(b_pack_tasks(x) + a_pack_tasks(x));
        x->phase++;
        /* fall through */
    case 1: return x->ntasks;
    default: return 0;
    }
}

static void pack_task(const alloy__cpu_exec *ex, const alloy__matmul_op *mm, const matmul_exec *x,
                      uint64_t task)
{
    const int f64 = is_f64(mm);
    const alloy__gemm_blocking *bk = f64 ? &ex->cd->kernels->f64 : &ex->cd->kernels->f32;
    int64_t off[3];
    const int64_t nb = b_pack_tasks(x);
    if ((int64_t)task < nb) {
        int64_t per_entry = x->kblocks * x->nblocks;
        int64_t e = (int64_t)task / per_entry, r = (int64_t)task % per_entry;
        int64_t p0 = (r / x->nblocks) * bk->kc, j0 = (r % x->nblocks) * PACK_COLS;
        int64_t nt = mm->n - j0 < PACK_COLS ? mm->n - j0 : PACK_COLS;
        alloy__batch_offsets(&mm->batch, e, 3, off);
        alloy__mat b = mm->b;
        b.addr += (uint64_t)off[1] * alloy_dtype_size(mm->b.dtype);
        char *dst = (char *)x->packed + x->packed_size * (size_t)e;
        if (f64)
            alloy__gemm_pack_b_f64(ex->cd->kernels, &b, mm->k, mm->n, p0, j0, nt, dst);
        else
            alloy__gemm_pack_b_f32(ex->cd->kernels, &b, mm->k, mm->n, p0, j0, nt, dst);
        return;
    }
    const int64_t rows = bk->mr * PACK_ROW_SLIVERS;
    int64_t e = ((int64_t)task - nb) / x->mblocks, i0 = ((int64_t)task - nb) % x->mblocks * rows;
    int64_t mt = mm->m - i0 < rows ? mm->m - i0 : rows;
    alloy__batch_offsets(&mm->batch, e, 3, off);
    alloy__mat a = mm->a;
    a.addr += (uint64_t)off[0] * alloy_dtype_size(mm->a.dtype);
    char *dst = (char *)x->packed_a + x->packed_a_size * (size_t)e;
    if (f64)
        alloy__gemm_pack_a_f64(ex->cd->kernels, &a, mm->m, mm->k, i0, mt, dst);
    else
        alloy__gemm_pack_a_f32(ex->cd->kernels, &a, mm->m, mm->k, i0, mt, dst);
}

/* The args of batch entry b, its tile r: i0/mt/j0/nt. */
static void entry_args(const alloy__matmul_op *mm, const matmul_exec *x, int64_t b, int64_t r,
                       alloy__gemm_args *g, int64_t *i0, int64_t *mt, int64_t *j0, int64_t *nt)
{
    int64_t im = r / x->tiling.tiles_n, jn = r % x->tiling.tiles_n;
    int64_t off[3];
    alloy__batch_offsets(&mm->batch, b, 3, off);
    *g = op_args(mm);
    g->a.addr += (uint64_t)off[0] * alloy_dtype_size(mm->a.dtype);
    g->b.addr += (uint64_t)off[1] * alloy_dtype_size(mm->b.dtype);
    g->c.addr += (uint64_t)off[2] * alloy_dtype_size(mm->c.dtype);
    *i0 = im * x->tiling.mt;
    *j0 = jn * x->tiling.nt;
    *mt = im == x->tiling.tiles_m - 1 ? mm->m - *i0 : x->tiling.mt; /* the last: the rest */
    *nt = mm->n - *j0 < x->tiling.nt ? mm->n - *j0 : x->tiling.nt;
}

static void one_tile(const alloy__cpu_exec *ex, const matmul_exec *x, int f64,
                     const alloy__gemm_args *g, int64_t i0, int64_t mt, int64_t j0, int64_t nt,
                     const void *packed, const void *packed_a)
{
    const alloy__cpu_kernels *kt = ex->cd->kernels;
    if (x->skinny) {
        if (f64)
            alloy__gemm_skinny_f64(kt, g, j0, nt, ex->scratch);
        else
            alloy__gemm_skinny_f32(kt, g, j0, nt, ex->scratch);
    } else if (packed || packed_a) {
        if (f64)
            alloy__gemm_tile_packed_f64(kt, g, i0, mt, j0, nt, packed, packed_a, ex->scratch);
        else
            alloy__gemm_tile_packed_f32(kt, g, i0, mt, j0, nt, packed, packed_a, ex->scratch);
    } else if (f64) {
        alloy__gemm_tile_f64(kt, g, i0, mt, j0, nt, ex->scratch);
    } else {
        alloy__gemm_tile_f32(kt, g, i0, mt, j0, nt, ex->scratch);
    }
}

static void tile_task(const alloy__cpu_exec *ex, const alloy__matmul_op *mm, const matmul_exec *x,
                      uint64_t task)
{
    int64_t total = x->tiles * mm->batch.count;
    int64_t t0 = (int64_t)task * x->per, t1 = t0 + x->per < total ? t0 + x->per : total;
    const int f64 = is_f64(mm);
    for (int64_t t = t0; t < t1; t++) {
        int64_t b = t / x->tiles, i0, mt, j0, nt;
        alloy__gemm_args g;
        entry_args(mm, x, b, t % x->tiles, &g, &i0, &mt, &j0, &nt);
        const void *pb = NULL, *pa = NULL;
        if (x->prepack)
            pb = (const char *)x->packed + x->packed_size * (size_t)(x->b_entries == 1 ? 0 : b);
        if (x->prepack_a)
            pa = (const char *)x->packed_a + x->packed_a_size * (size_t)(x->a_entries == 1 ? 0 : b);
        one_tile(ex, x, f64, &g, i0, mt, j0, nt, pb, pa);
    }
}

/* Split K, phase 1: tile t's partial product over chunk s, into part s of its entry. */
static void partial_task(const alloy__cpu_exec *ex, const alloy__matmul_op *mm,
                         const matmul_exec *x, uint64_t task)
{
    int64_t t = task / x->nsplit, s = task % x->nsplit;
    int64_t b = t / x->tiles, i0, mt, j0, nt;
    const int f64 = is_f64(mm);
    const size_t es = f64 ? 8 : 4;
    alloy__gemm_args g;
    entry_args(mm, x, b, t % x->tiles, &g, &i0, &mt, &j0, &nt);
    int64_t k0 = s * x->kchunk;
    g.k = mm->k - k0 < x->kchunk ? mm->k - k0 : x->kchunk;
    g.a.addr += (uint64_t)(k0 * g.a.cs) * alloy_dtype_size(g.a.dtype);
    g.b.addr += (uint64_t)(k0 * g.b.rs) * alloy_dtype_size(g.b.dtype);
    g.alpha = 1.0;
    g.beta = 0.0;
    g.bias.addr = 0;
    g.c.addr = (uint64_t)(uintptr_t)((char *)x->parts +
                                     (size_t)((b * x->nsplit + s) * mm->m * mm->n) * es);
    g.c.dtype = f64 ? ALLOY_F64 : ALLOY_F32;
    g.c.rs = mm->n;
    g.c.cs = 1;
    one_tile(ex, x, f64, &g, i0, mt, j0, nt, NULL, NULL);
}

/* Split K, phase 2: tile t's partials summed in chunk order, then the epilogue. */
static void finish_task(const alloy__cpu_exec *ex, const alloy__matmul_op *mm, const matmul_exec *x,
                        uint64_t task)
{
    int64_t b = task / x->tiles, i0, mt, j0, nt;
    const int f64 = is_f64(mm);
    alloy__gemm_args g;
    entry_args(mm, x, b, task % x->tiles, &g, &i0, &mt, &j0, &nt);
    const char *parts =
        (const char *)x->parts + (size_t)(b * x->nsplit * mm->m * mm->n) * (f64 ? 8u : 4u);
    size_t pe = (size_t)(mm->m * mm->n);
    if (f64)
        alloy__gemm_ksplit_finish_f64(&g, parts, x->nsplit, pe, i0, mt, j0, nt, ex->scratch);
    else
        alloy__gemm_ksplit_finish_f32(&g, parts, x->nsplit, pe, i0, mt, j0, nt, ex->scratch);
}

static void matmul_task(const alloy__cpu_exec *ex, alloy__op *op, uint64_t task)
{
    const matmul_exec *x = (const matmul_exec *)op->exec;
    if (x->nsplit > 1) {
        if (x->phase == 1)
            partial_task(ex, &op->u.matmul, x, task);
        else
            finish_task(ex, &op->u.matmul, x, task);
    } else if (x->phase == 1) {
        pack_task(ex, &op->u.matmul, x, task);
    } else {
        tile_task(ex, &op->u.matmul, x, task);
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

const alloy__cpu_op_impl alloy__cpu_matmul_impl = {matmul_check,      matmul_scratch, matmul_begin,
                                                   matmul_next_phase, matmul_task,    matmul_end};
