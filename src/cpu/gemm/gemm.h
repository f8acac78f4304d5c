/* One C tile of a matrix product, computed completely by one task:
 *   C[i0:i0+mt, j0:j0+nt] = alpha * (A @ B)[tile] + beta * C[tile] + bias[j0:j0+nt]
 * Used by matmul and by the blocked LU and triangular solves. The product is formed in
 * a full-precision accumulator in scratch, so f16/bf16 outputs are rounded once. */
#ifndef ALLOY_CPU_GEMM_H
#define ALLOY_CPU_GEMM_H

#include "../../core/op.h"
#include "kernels.h"

typedef struct alloy__gemm_args {
    int64_t m, n, k;
    alloy__mat a, b, c; /* addresses absolute, strides in elements */
    alloy__vec bias;    /* addr 0: none */
    double alpha, beta; /* alpha 0 never reads A or B; beta 0 never reads C */
} alloy__gemm_args;

/* Largest tile (rows, columns) a task may pass, and the scratch it needs. `f64` selects
 * the double kernels; anything else computes in f32. */
void alloy__gemm_max_tile(const alloy__cpu_kernels *kt, int f64, int64_t *mt, int64_t *nt);
size_t alloy__gemm_scratch(const alloy__cpu_kernels *kt, int f64);

void alloy__gemm_tile_f32(const alloy__cpu_kernels *kt, const alloy__gemm_args *g, int64_t i0,
                          int64_t mt, int64_t j0, int64_t nt, void *scratch);
void alloy__gemm_tile_f64(const alloy__cpu_kernels *kt, const alloy__gemm_args *g, int64_t i0,
                          int64_t mt, int64_t j0, int64_t nt, void *scratch);

/* The same tile with B, A or both packed once for the whole op (shared by every tile):
 * packed_b as written by alloy__gemm_pack_b for all of B (K x N), of
 * alloy__gemm_packed_size bytes; packed_a by alloy__gemm_pack_a for all of A (M x K), of
 * alloy__gemm_packed_a_size bytes. Either may be NULL: the tile packs its own. A B pack
 * call covers one K block (p0 a multiple of the table's kc) of columns j0..j0+nt; an A
 * pack call all of K for rows i0..i0+mt (i0 a multiple of the table's mr). */
size_t alloy__gemm_packed_size(const alloy__cpu_kernels *kt, int f64, int64_t k, int64_t n);
size_t alloy__gemm_packed_a_size(const alloy__cpu_kernels *kt, int f64, int64_t m, int64_t k);
void alloy__gemm_pack_b_f32(const alloy__cpu_kernels *kt, const alloy__mat *b, int64_t k, int64_t n,
                            int64_t p0, int64_t j0, int64_t nt, void *packed);
void alloy__gemm_pack_b_f64(const alloy__cpu_kernels *kt, const alloy__mat *b, int64_t k, int64_t n,
                            int64_t p0, int64_t j0, int64_t nt, void *packed);
void alloy__gemm_pack_a_f32(const alloy__cpu_kernels *kt, const alloy__mat *a, int64_t m, int64_t k,
                            int64_t i0, int64_t mt, void *packed);
void alloy__gemm_pack_a_f64(const alloy__cpu_kernels *kt, const alloy__mat *a, int64_t m, int64_t k,
                            int64_t i0, int64_t mt, void *packed);
void alloy__gemm_tile_packed_f32(const alloy__cpu_kernels *kt, const alloy__gemm_args *g,
                                 int64_t i0, int64_t mt, int64_t j0, int64_t nt,
                                 const void *packed_b, const void *packed_a, void *scratch);
void alloy__gemm_tile_packed_f64(const alloy__cpu_kernels *kt, const alloy__gemm_args *g,
                                 int64_t i0, int64_t mt, int64_t j0, int64_t nt,
                                 const void *packed_b, const void *packed_a, void *scratch);

/* Whether the tiles read B in place (row-major in the compute type, small, rows not a
 * multiple of 4 KB apart, and a kernel with masked loads) instead of packing it: then
 * packing it once for all tiles does not pay either. */
int alloy__gemm_b_direct(const alloy__cpu_kernels *kt, int f64, const alloy__mat *b, int64_t k);

/* Whether a tile that is given no packed A reads A in place (row-major in the compute
 * type) instead of packing its rows. Packing A once for all tiles is then worth it only
 * for products whose A rows many column tiles read (ALLOY__GEMM_PACK_A_MIN_READS). */
int alloy__gemm_a_in_place(int f64, const alloy__mat *a);
#define ALLOY__GEMM_PACK_A_MIN_READS 5

/* Whether a tile nt columns wide takes the thin kernel (kernels.h): at most the
 * blocking's `thin` columns, a row-major A and a B in the compute type, on a table that
 * has one. It reads A and B in place, so packing either once for all tiles
 * does not pay. */
int alloy__gemm_thin(const alloy__cpu_kernels *kt, int f64, const alloy__gemm_args *g, int64_t nt);

/* Whether g's product takes the panel kernel (kernels.h) in its tiles: a table that has
 * one, C = A @ B into C itself (alpha 1, beta 0, no bias, C row-major in the compute
 * type), A row-major in the compute type (read in place), and at least
 * ALLOY__GEMM_PANEL_MIN_COLS columns. Such tiles may be as wide as the blocking's pw
 * (alloy__gemm_plan's `panel`): each copies its A rows once per K block, so the wider the
 * better; tiles narrower than ALLOY__GEMM_PANEL_MIN_COLS keep the microkernel. */
int alloy__gemm_panel(const alloy__cpu_kernels *kt, int f64, const alloy__gemm_args *g);
/* The narrowest tile the panel kernel takes. Narrower, the copy of A its first sliver's
 * calls make is spread over too few others, and a B block small enough to stay in L2
 * serves the microkernel's order well: 256^3 f32 (8 slivers) was 3-5% slower with the
 * panel kernel, 384^3 the same, 512^3 5% faster; f64 at 256 and 300 columns (16 and 19
 * slivers) 3-6% slower, at 512 3-5% faster. */
#define ALLOY__GEMM_PANEL_MIN_COLS 512

/* The skinny path: C[0:m, j0:j0+nt] for m <= 4, alpha != 0, k > 0 and a row-major B in
 * the compute type (cs == 1), nt <= ALLOY__SKINNY_COLS. Same bits as the tiled path. */
#define ALLOY__SKINNY_KB 4096
#define ALLOY__SKINNY_COLS 256
int alloy__gemm_skinny_ok(const alloy__gemm_args *g, int f64);
void alloy__gemm_skinny_f32(const alloy__cpu_kernels *kt, const alloy__gemm_args *g, int64_t j0,
                            int64_t nt, void *scratch);
void alloy__gemm_skinny_f64(const alloy__cpu_kernels *kt, const alloy__gemm_args *g, int64_t j0,
                            int64_t nt, void *scratch);

/* Split-K: the caller computes partial products over fixed K chunks into `parts` (nparts
 * row-major m x n matrices, part_elems apart, through the tile functions with alpha 1,
 * beta 0, no bias), then this sums a tile's partials in chunk order and applies g's
 * epilogue. Scratch holds one tile of mt x nt. */
void alloy__gemm_ksplit_finish_f32(const alloy__gemm_args *g, const void *parts, int64_t nparts,
                                   size_t part_elems, int64_t i0, int64_t mt, int64_t j0,
                                   int64_t nt, void *scratch);
void alloy__gemm_ksplit_finish_f64(const alloy__gemm_args *g, const void *parts, int64_t nparts,
                                   size_t part_elems, int64_t i0, int64_t mt, int64_t j0,
                                   int64_t nt, void *scratch);

/* In-place product update for the blocked solvers: C (row-major T, leading dimension ldc)
 *   C[0:mt, 0:nt] (+/-)= A[0:mt, 0:k] @ B[0:k, 0:nt]
 * each element one FMA chain starting from C's value, in k order (negate packs -A, which
 * is exact); nt at most the blocking's nc, mt any (MC rows at a time, each packed B block
 * swept by all of them). The _all form covers any m x n serially, tile by tile. a and b
 * may have any strides and dtype equal to T's. */
void alloy__gemm_update_f32(const alloy__cpu_kernels *kt, const alloy__mat *a, const alloy__mat *b,
                            float *c, int64_t ldc, int64_t mt, int64_t nt, int64_t k, int negate,
                            void *scratch);
void alloy__gemm_update_f64(const alloy__cpu_kernels *kt, const alloy__mat *a, const alloy__mat *b,
                            double *c, int64_t ldc, int64_t mt, int64_t nt, int64_t k, int negate,
                            void *scratch);
void alloy__gemm_update_all_f32(const alloy__cpu_kernels *kt, const alloy__mat *a,
                                const alloy__mat *b, float *c, int64_t ldc, int64_t m, int64_t n,
                                int64_t k, int negate, void *scratch);
void alloy__gemm_update_all_f64(const alloy__cpu_kernels *kt, const alloy__mat *a,
                                const alloy__mat *b, double *c, int64_t ldc, int64_t m, int64_t n,
                                int64_t k, int negate, void *scratch);

/* A tiling of an m x n output into task tiles, fixed by the shape (and the kernel table's
 * block sizes): at least `want` tiles where the problem allows without going below a
 * few microkernel tiles each; up to the blocking's pw columns wide for `panel` products
 * (alloy__gemm_panel), else its nc. */
typedef struct alloy__gemm_tiling {
    int64_t mt, nt; /* tile size */
    int64_t tiles_m, tiles_n;
} alloy__gemm_tiling;
alloy__gemm_tiling alloy__gemm_plan(const alloy__cpu_kernels *kt, int f64, int64_t m, int64_t n,
                                    int64_t want, int panel);

#endif
