/* lu_factor on the GPU.
 *
 * Up to 32 x 32, a warp per matrix holds it in registers (a row a lane). A matrix that
 * fits in one SM's shared memory (64x64 f32 is 16 KiB; up to ~227 KiB on
 * an H100) is factored whole by one thread block, from one load to one store: a batch of
 * 10000 small matrices is 10000 blocks and one launch.
 *
 * Larger ones: right-looking blocked LU in two levels. Outer blocks of ALLOY_CU_LU_OUTER
 * columns, so the trailing update that dominates the flops is a GEMM with k = 256; inside
 * one, panels of up to ALLOY_CU_LU_PANEL columns:
 *   1. the panel kernel factors columns [j, j + jb) of rows [j, m) (pivots, info): on
 *      sm_90, a cluster of eight blocks holding the panel in their shared memories; else
 *      one block, a few columns at a time in shared memory;
 *   2. its interchanges on the outer block's other columns (laswp);
 *   3. U12 = L11^-1 A12 and A22 = A22 - L21 U12 within the outer block;
 * then the outer block's interchanges on every other column, its U12 (the recursive
 * triangular solve) and the trailing GEMM. Each step is one launch over the whole batch.
 * Pivots are the first entry of largest magnitude (LAPACK's), so they match the CPU
 * backend's on the same data. */
#include "cuda_backend.h"

#include <string.h>

static int64_t lu_ld(int64_t chunk) { return chunk % 2 == 0 ? chunk + 1 : chunk; }

static unsigned panel_threads(int64_t rows)
{
    int64_t t = (rows + 31) / 32 * 32;
    return (unsigned)(t < 64 ? 64 : t > 1024 ? 1024 : t);
}

static alloy_status panel(alloy__cu_device *cu, CUstream s, alloy_cu_lu_params *p, int f64,
                          int64_t j0, int64_t jb, int64_t chunk, int64_t batch, char *err,
                          size_t cap)
{
    const int64_t rows = p->m - j0, es = f64 ? 8 : 4;
    p->j0 = j0;
    p->jb = jb;
    p->chunk = (int32_t)chunk;
    unsigned smem = chunk > 0 ? (unsigned)(rows * lu_ld(chunk) * es) : 0;
    return alloy__cu_launch(cu, s, cu->lu_panel[f64], 1, alloy__cu_grid_y(batch),
                            panel_threads(rows), smem, p, err, cap);
}

/* The widest chunk (<= jb, <= ALLOY_CU_LU_CHUNK) whose rows fit in shared memory; 0 when
 * not even one column does (the panel then works in global memory). */
static int64_t chunk_for(const alloy__cu_device *cu, int64_t rows, int64_t jb, int64_t es)
{
    for (int64_t c = jb < ALLOY_CU_LU_CHUNK ? jb : ALLOY_CU_LU_CHUNK; c > 0; c--)
        if (rows * lu_ld(c) * es <= cu->lu_smem)
            return c;
    return 0;
}

/* Columns a block of alloy_laswp_perm takes for n rows (its shared memory: 2 n ints and
 * n x width elements), or 0 when not even one column fits. */
static int perm_width(const alloy__cu_device *cu, int64_t n, int64_t es)
{
    for (int w = 32; w >= 1; w /= 2)
        if (2 * n * 4 + n * w * es <= cu->lu_smem)
            return w;
    return 0;
}

alloy_status alloy__cu_laswp(alloy__cu_device *cu, CUstream s, int f64, const alloy__cu_swaps *sw,
                             char *err, size_t cap)
{
    const int64_t span = sw->c1 - sw->c0 - (sw->skip1 - sw->skip0);
    if (span <= 0 || sw->k1 <= sw->k0)
        return ALLOY_OK;
    alloy_cu_laswp_params w;
    memset(&w, 0, sizeof w);
    w.a = sw->a.addr;
    w.pivots = sw->pivots.addr;
    w.guard = sw->guard;
    w.rs = sw->a.rs;
    w.cs = sw->a.cs;
    w.piv_stride = sw->pivots.stride;
    w.c0 = sw->c0;
    w.c1 = sw->c1;
    w.skip0 = sw->skip0;
    w.skip1 = sw->skip1;
    w.k0 = sw->k0;
    w.k1 = sw->k1;
    w.reverse = sw->reverse;
    alloy__cu_batch(&w.batch, &sw->batch);
    /* All of a matrix's interchanges (lu_solve's): one permutation a block, composed in
     * shared memory, instead of a global memory round trip per eight interchanges. */
    const int64_t es = f64 ? 8 : 4;
    w.width = sw->closed && sw->k0 == 0 && sw->skip0 == sw->skip1 ? perm_width(cu, sw->k1, es) : 0;
    if (w.width > 0)
        return alloy__cu_launch(cu, s, cu->laswp_perm[f64],
                                (uint64_t)((span + w.width - 1) / w.width),
                                alloy__cu_grid_y(sw->batch.count), ALLOY_CU_LASWP_THREADS,
                                (unsigned)(2 * sw->k1 * 4 + sw->k1 * w.width * es), &w, err, cap);
    const int64_t blocks = (span + ALLOY_CU_LASWP_THREADS - 1) / ALLOY_CU_LASWP_THREADS;
    return alloy__cu_launch(cu, s, cu->laswp[f64], (uint64_t)blocks,
                            alloy__cu_grid_y(sw->batch.count), ALLOY_CU_LASWP_THREADS, 0, &w, err,
                            cap);
}

/* The LU's row interchanges k in [k0, k1) on columns [c0, c1) but [skip0, skip1). */
static alloy_status laswp(alloy__cu_device *cu, CUstream s, const alloy__lu_factor_op *lu, int f64,
                          uint64_t guard, int64_t c0, int64_t c1, int64_t skip0, int64_t skip1,
                          int64_t k0, int64_t k1, char *err, size_t cap)
{
    /* not closed: a panel's pivots reach rows below it */
    const alloy__cu_swaps sw = {lu->a, lu->pivots, lu->batch, guard, c0, c1,
                                skip0, skip1,      k0,        k1,    0,  0};
    return alloy__cu_laswp(cu, s, f64, &sw, err, cap);
}

/* Columns [j, j + jb) of rows [j, m) on a cluster: the widest jb <= want whose share of
 * rows fits each block's shared memory; 0 when clusters are not available or nothing fits. */
static int64_t cluster_width(const alloy__cu_device *cu, int64_t rows, int64_t want, int64_t es)
{
    if (!cu->clusters)
        return 0;
    const int64_t rpb = (rows + ALLOY_CU_LU_CLUSTER - 1) / ALLOY_CU_LU_CLUSTER;
    for (int64_t w = want; w > 0; w--)
        if (rpb * lu_ld(w) * es <= cu->lu_smem)
            return w;
    return 0;
}

static alloy_status cluster_panel(alloy__cu_device *cu, CUstream s, alloy_cu_lu_params *p, int f64,
                                  int64_t j0, int64_t jb, int64_t batch, char *err, size_t cap)
{
    const int64_t rows = p->m - j0, es = f64 ? 8 : 4;
    const int64_t rpb = (rows + ALLOY_CU_LU_CLUSTER - 1) / ALLOY_CU_LU_CLUSTER;
    p->j0 = j0;
    p->jb = jb;
    p->chunk = 0;
    CUlaunchAttribute attr;
    memset(&attr, 0, sizeof attr);
    attr.id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
    attr.value.clusterDim.x = ALLOY_CU_LU_CLUSTER;
    attr.value.clusterDim.y = 1;
    attr.value.clusterDim.z = 1;
    CUlaunchConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.gridDimX = ALLOY_CU_LU_CLUSTER;
    cfg.gridDimY = alloy__cu_grid_y(batch);
    cfg.gridDimZ = 1;
    cfg.blockDimX = f64 ? ALLOY_CU_LU_CLUSTER_THREADS_F64 : ALLOY_CU_LU_CLUSTER_THREADS_F32;
    cfg.blockDimY = 1;
    cfg.blockDimZ = 1;
    cfg.sharedMemBytes = (unsigned)(rpb * lu_ld(jb) * es);
    cfg.hStream = s;
    cfg.attrs = &attr;
    cfg.numAttrs = 1;
    void *args[1] = {p};
    CUresult r = cu->drv.LaunchKernelEx(&cfg, cu->lu_cpanel[f64], args, NULL);
    /* A cluster this GPU cannot place (a MIG slice without eight SMs in a GPC, say), or
     * that does not fit beside the kernel's resources: the caller falls back to the
     * one-block panel. Both are refusals at launch, not sticky errors. */
    if (r == CUDA_ERROR_INVALID_CLUSTER_SIZE || r == CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES)
        return ALLOY_ERR_UNSUPPORTED;
    return r == CUDA_SUCCESS ? ALLOY_OK : alloy__cu_error(cu, r, "cuLaunchKernelEx", err, cap);
}

alloy_status alloy__cu_launch_lu_factor(alloy__cu_device *cu, CUstream s, const alloy__op *op,
                                        uint64_t guard, char *err, size_t cap)
{
    const alloy__lu_factor_op *lu = &op->u.lu_factor;
    const int64_t count = lu->batch.count;
    if (count == 0)
        return ALLOY_OK;
    const int f64 = lu->a.dtype == ALLOY_F64;
    const int64_t m = lu->m, n = lu->n, mn = m < n ? m : n, es = f64 ? 8 : 4;
    alloy_cu_lu_params p;
    memset(&p, 0, sizeof p);
    p.m = m;
    p.n = n;
    p.a = lu->a.addr;
    p.pivots = lu->pivots.addr;
    p.info = lu->info;
    p.rs = lu->a.rs;
    p.cs = lu->a.cs;
    p.piv_stride = lu->pivots.stride;
    p.guard = guard;
    alloy__cu_batch(&p.batch, &lu->batch);
    if (mn == 0) {
        int64_t blocks = (count + 255) / 256;
        return alloy__cu_launch(cu, s, cu->lu_info_zero,
                                (uint64_t)(blocks < 65535 ? blocks : 65535), 1, 256, 0, &p, err,
                                cap);
    }
    if (m <= 32 && n <= 32) { /* a warp per matrix, in registers */
        int64_t blocks = (count + 3) / 4;
        return alloy__cu_launch(cu, s, cu->lu_warp[f64],
                                (uint64_t)(blocks < INT32_MAX ? blocks : INT32_MAX), 1, 128, 0, &p,
                                err, cap);
    }
    if (m * lu_ld(n) * es <= cu->lu_smem) /* whole, in shared memory */
        return panel(cu, s, &p, f64, 0, n, n, count, err, cap);

    alloy__cu_solve x = {cu, s, f64, &lu->batch, 0, 0, guard, err, cap};
    const alloy__cu_view a = {lu->a.addr, lu->a.rs, lu->a.cs};
    /* A's block at (i, j). */
#define AT(i, j) ((alloy__cu_view){a.addr + (uint64_t)(((i)*a.rs + (j)*a.cs) * es), a.rs, a.cs})
    alloy_status st = ALLOY_OK;
    for (int64_t J = 0; J < mn && st == ALLOY_OK; J += ALLOY_CU_LU_OUTER) {
        const int64_t JB = mn - J < ALLOY_CU_LU_OUTER ? mn - J : ALLOY_CU_LU_OUTER;
        for (int64_t j = J; j < J + JB && st == ALLOY_OK;) {
            int64_t jb = J + JB - j < ALLOY_CU_LU_PANEL ? J + JB - j : ALLOY_CU_LU_PANEL;
            const int64_t cw = cluster_width(cu, m - j, jb, es);
            st = ALLOY_ERR_UNSUPPORTED;
            if (cw > 0 && (st = cluster_panel(cu, s, &p, f64, j, cw, count, err, cap)) == ALLOY_OK)
                jb = cw;
            else if (st == ALLOY_ERR_UNSUPPORTED)
                st = panel(cu, s, &p, f64, j, jb, chunk_for(cu, m - j, jb, es), count, err, cap);
            if (st == ALLOY_OK)
                st = laswp(cu, s, lu, f64, guard, J, J + JB, j, j + jb, j, j + jb, err, cap);
            const int64_t right = J + JB - j - jb, below = m - j - jb;
            if (st == ALLOY_OK && right > 0) {
                st = alloy__cu_trsm_lower(&x, AT(j, j), AT(j, j + jb), jb, right, 1, 1.0);
                if (st == ALLOY_OK && below > 0)
                    st = alloy__cu_gemm_minus(&x, AT(j + jb, j), AT(j, j + jb), AT(j + jb, j + jb),
                                              below, right, jb, 1.0);
            }
            j += jb;
        }
        if (st == ALLOY_OK)
            st = laswp(cu, s, lu, f64, guard, 0, n, J, J + JB, J, J + JB, err, cap);
        const int64_t right = n - J - JB, below = m - J - JB;
        if (st == ALLOY_OK && right > 0) {
            st = alloy__cu_trsm_lower(&x, AT(J, J), AT(J, J + JB), JB, right, 1, 1.0);
            if (st == ALLOY_OK && below > 0)
                st = alloy__cu_gemm_minus(&x, AT(J + JB, J), AT(J, J + JB), AT(J + JB, J + JB),
                                          below, right, JB, 1.0);
        }
    }
#undef AT
    return st;
}
