/* lu_factor on the GPU.
 *
 * A matrix that fits in one SM's shared memory (64x64 f32 is 16 KiB; up to ~227 KiB on
 * an H100) is factored whole by one thread block, from one load to one store: a batch of
 * 10000 small matrices is 10000 blocks and one launch.
 *
 * Larger ones: right-looking blocked LU, ALLOY_CU_LU_PANEL columns at a time:
 *   1. the panel kernel factors columns [j, j + nb) of rows [j, m) (pivots, info),
 *   2. its interchanges are applied to every other column (laswp),
 *   3. U12 = L11^-1 A12 (the triangular solve's diagonal-block kernel),
 *   4. A22 = A22 - L21 U12 (alloy's matmul),
 * each as one launch over the whole batch. Pivots are the first entry of largest magnitude
 * (LAPACK's), so they match the CPU backend's on the same data. */
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
    if (m * lu_ld(n) * es <= cu->lu_smem) /* whole, in shared memory */
        return panel(cu, s, &p, f64, 0, n, n, count, err, cap);

    alloy__cu_solve x = {cu, s, f64, &lu->batch, 0, 0, guard, err, cap};
    const alloy__cu_view a = {lu->a.addr, lu->a.rs, lu->a.cs};
    alloy_status st = ALLOY_OK;
    for (int64_t j = 0; j < mn && st == ALLOY_OK; j += ALLOY_CU_LU_PANEL) {
        const int64_t jb = mn - j < ALLOY_CU_LU_PANEL ? mn - j : ALLOY_CU_LU_PANEL;
        st = panel(cu, s, &p, f64, j, jb, chunk_for(cu, m - j, jb, es), count, err, cap);
        if (st != ALLOY_OK)
            break;
        if (n > jb) { /* the interchanges on every column outside the panel */
            alloy_cu_laswp_params w;
            memset(&w, 0, sizeof w);
            w.a = lu->a.addr;
            w.pivots = lu->pivots.addr;
            w.rs = lu->a.rs;
            w.cs = lu->a.cs;
            w.piv_stride = lu->pivots.stride;
            w.guard = guard;
            w.c0 = 0;
            w.c1 = n;
            w.skip0 = j;
            w.skip1 = j + jb;
            w.k0 = j;
            w.k1 = j + jb;
            alloy__cu_batch(&w.batch, &lu->batch);
            int64_t blocks = (n - jb + ALLOY_CU_LASWP_THREADS - 1) / ALLOY_CU_LASWP_THREADS;
            st = alloy__cu_launch(cu, s, cu->laswp[f64], (uint64_t)blocks, alloy__cu_grid_y(count),
                                  ALLOY_CU_LASWP_THREADS, 0, &w, err, cap);
        }
        const int64_t right = n - j - jb, below = m - j - jb;
        if (st == ALLOY_OK && right > 0) {
            alloy__cu_view l11 = {a.addr + (uint64_t)((j * a.rs + j * a.cs) * es), a.rs, a.cs};
            alloy__cu_view a12 = {a.addr + (uint64_t)((j * a.rs + (j + jb) * a.cs) * es), a.rs,
                                  a.cs};
            st = alloy__cu_trsm_lower(&x, l11, a12, jb, right, 1, 1.0);
            if (st == ALLOY_OK && below > 0) {
                alloy__cu_view a21 = {a.addr + (uint64_t)(((j + jb) * a.rs + j * a.cs) * es), a.rs,
                                      a.cs};
                alloy__cu_view a22 = {a.addr + (uint64_t)(((j + jb) * a.rs + (j + jb) * a.cs) * es),
                                      a.rs, a.cs};
                st = alloy__cu_gemm_minus(&x, a21, a12, a22, below, right, jb, 1.0);
            }
        }
    }
    return st;
}
