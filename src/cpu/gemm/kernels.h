/* Per-ISA GEMM microkernels and their block sizes (BLIS's shape: portable loops and
 * packing around an MR x NR microkernel; see gemm.c).
 *
 * Microkernel contract, the same for every ISA:
 *   acc[i * ldacc + j] = (accumulate ? acc[i * ldacc + j] : 0)
 *                        + sum over k = 0 .. kc-1, in that order, of a[i*lda + k] * b[k*NR + j]
 * for i < MR, j < NR, each step one fused multiply-add. An A sliver is MR rows of stride
 * lda: packed (lda = the table's kc, so packing a row-major A is a row copy) or a
 * row-major A read in place; a packed B sliver is kc rows of NR. Because the accumulator goes
 * through memory at full precision between calls, every element of A @ B is the same
 * chain of FMAs from 0 in k order whatever the block sizes, the tiling or the ISA: all
 * kernels give bitwise identical products.
 *
 * next is a hint with no effect on the result: NULL, or the start of
 * kc * ALLOY__UKR_PREFETCH_PER_K bytes that the kernel may prefetch into L2 while it runs
 * (the driver points it at this call's part of what the next K block reads first, its
 * packed A rows and B block, so that they are in L2, not L3, when it starts). A kernel may
 * also prefetch the NR columns right of its own C micro-tile (the next call's, in a sweep),
 * which likewise changes nothing. */
#ifndef ALLOY_CPU_GEMM_KERNELS_H
#define ALLOY_CPU_GEMM_KERNELS_H

#include "../norm_rows.h"
#include "alloy.h"

#include <stddef.h>
#include <stdint.h>

#define ALLOY__UKR_PREFETCH_PER_K 16

/* A prefetch hint from a vector kernel. With ALLOY_PREFETCH_CHECK (the CMake option of the
 * same name, for sanitizer builds) it is a one-byte read instead, so that AddressSanitizer
 * reports a hint that points past its object: the drivers promise every `next` and
 * `c_next` hint lies inside the object it names. Results are the same either way. */
#ifdef ALLOY_PREFETCH_CHECK
#define ALLOY__PREFETCH(p, hint) ((void)*(const volatile char *)(p))
#else
#define ALLOY__PREFETCH(p, hint) _mm_prefetch((const char *)(p), hint)
#endif

typedef void (*alloy__ukr_f32)(int64_t kc, const float *a, int64_t lda, const float *b, float *acc,
                               int64_t ldacc, int accumulate, const void *next);
typedef void (*alloy__ukr_f64)(int64_t kc, const double *a, int64_t lda, const double *b,
                               double *acc, int64_t ldacc, int accumulate, const void *next);

/* The microkernel on a row-major B read in place (row k at b + k * ldb) into C itself
 * (ldc), for the first `cols` (1..NR) columns only: loads and stores past them are masked
 * off, so nothing beyond is read or written. The same chains as the microkernel's, so the
 * same bits; for small products, where packing B and copying edge tiles cost more than
 * the products save. */
typedef void (*alloy__ukr_direct_f32)(int64_t kc, const float *a, int64_t lda, const float *b,
                                      int64_t ldb, float *c, int64_t ldc, int accumulate, int cols);
typedef void (*alloy__ukr_direct_f64)(int64_t kc, const double *a, int64_t lda, const double *b,
                                      int64_t ldb, double *c, int64_t ldc, int accumulate,
                                      int cols);

/* Skinny kernel for m <= 4 rows of A against a row-major B (ldb), any n:
 *   acc[i * ldacc + j] = (accumulate ? acc[i * ldacc + j] : 0)
 *                        + sum over k = 0 .. kc-1, in that order, of a[i*lda + k] * b[k*ldb + j]
 * each step one FMA: the same chain as the microkernel's, so the same bits. */
typedef void (*alloy__gemv_f32)(int64_t kc, int64_t m, int64_t n, const float *a, int64_t lda,
                                const float *b, int64_t ldb, float *acc, int64_t ldacc,
                                int accumulate);
typedef void (*alloy__gemv_f64)(int64_t kc, int64_t m, int64_t n, const double *a, int64_t lda,
                                const double *b, int64_t ldb, double *acc, int64_t ldacc,
                                int accumulate);

/* y[j] = fma(a, x[j], y[j]) for j < n: the step of the substitutions in the triangular
 * solves, the same operation the GEMM chains use, so rows computed either way agree. */
typedef void (*alloy__axpy_f32)(int64_t n, float a, const float *x, float *y);
typedef void (*alloy__axpy_f64)(int64_t n, double a, const double *x, double *y);

/* The thin kernel, for products of a few columns (a matrix times a vector or a few):
 * C[i * ldc + j] = sum over p = 0 .. k-1, in that order, of a[i * lda + p] * b[p * rsb + j * csb],
 * for i < m and j < n, each step one FMA from zero: the microkernels' chains, so the same
 * bits. A is row-major (row stride lda), B at any strides, all of K in one call; n is 1 to
 * the blocking's `thin`, half a vector's lanes: from there on the microkernels, whose
 * lanes are C's columns, fill enough of them (f64 1024 x 8 x 1024 on AVX-512: 46 GFLOPS
 * against 36 for the thin kernel). NULL in a table: the tiles' ordinary path. */
typedef void (*alloy__thin_f32)(int64_t k, int64_t m, int64_t n, const float *a, int64_t lda,
                                const float *b, int64_t rsb, int64_t csb, float *c, int64_t ldc);
typedef void (*alloy__thin_f64)(int64_t k, int64_t m, int64_t n, const double *a, int64_t lda,
                                const double *b, int64_t rsb, int64_t csb, double *c, int64_t ldc);
void alloy__thin_f32_avx512(int64_t k, int64_t m, int64_t n, const float *a, int64_t lda,
                            const float *b, int64_t rsb, int64_t csb, float *c, int64_t ldc);
void alloy__thin_f64_avx512(int64_t k, int64_t m, int64_t n, const double *a, int64_t lda,
                            const double *b, int64_t rsb, int64_t csb, double *c, int64_t ldc);
void alloy__thin_f32_avx2(int64_t k, int64_t m, int64_t n, const float *a, int64_t lda,
                          const float *b, int64_t rsb, int64_t csb, float *c, int64_t ldc);
void alloy__thin_f64_avx2(int64_t k, int64_t m, int64_t n, const double *a, int64_t lda,
                          const double *b, int64_t rsb, int64_t csb, double *c, int64_t ldc);

/* The leaf of the recursive LU (solve.inc's lu_leaf): LU with partial pivoting of the
 * row-major m x n panel a (n <= 16) in place; piv[i] is the row swapped with row i, and
 * the result is the first column whose pivot is exactly zero, or -1. Bitwise what the C
 * leaf computes. */
typedef int64_t (*alloy__lu_leaf_f32)(float *a, int64_t lda, int64_t m, int64_t n, int64_t *piv);
typedef int64_t (*alloy__lu_leaf_f64)(double *a, int64_t lda, int64_t m, int64_t n, int64_t *piv);
int64_t alloy__lu_leaf_f32_avx512(float *a, int64_t lda, int64_t m, int64_t n, int64_t *piv);
int64_t alloy__lu_leaf_f64_avx512(double *a, int64_t lda, int64_t m, int64_t n, int64_t *piv);

/* The panel kernel, for large products whose A is row-major in the compute type:
 *   C[i * ldc + j] = (accumulate ? C[i * ldc + j] : 0)
 *                    + sum over k = 0 .. kc-1, in that order, of A(i, k) * b[k*NR + j]
 * for i < MR, j < NR, each step one FMA (the microkernel's chains, so the same bits), C
 * in place. With a_copy NULL, A(i, k) is a[k * MR + i] (lda unused): A's sliver k-major,
 * so that a step's MR values share one or two lines streamed from L2 (AVX-512 f32: 48
 * bytes a step at MR 12, against the 128 of a B sliver's step; AVX2 f32: 24 against 64):
 * the B sliver stays in L1 and the A slivers stream past it, the reverse of the
 * microkernel's order). With a_copy, A(i, k)
 * is a[i * lda + k], A read in place (any lda, 0 too: broadcast rows), and the kernel
 * also writes the k-major copy to a_copy. With negate (only with a_copy), both what it
 * multiplies and the copy are -A(i, k): exact, as when the solvers pack -A. c_next (the
 * next call's C micro-tile, or NULL) and next (kc * ALLOY__UKR_PREFETCH_PER_K bytes for
 * L2, or NULL) are prefetch hints with no effect on the result. */
typedef void (*alloy__ukr_panel_f32)(int64_t kc, const float *a, int64_t lda, float *a_copy,
                                     int negate, const float *b, float *c, int64_t ldc,
                                     int accumulate, const float *c_next, const void *next);
typedef void (*alloy__ukr_panel_f64)(int64_t kc, const double *a, int64_t lda, double *a_copy,
                                     int negate, const double *b, double *c, int64_t ldc,
                                     int accumulate, const double *c_next, const void *next);

typedef struct alloy__gemm_blocking {
    int mr, nr; /* microkernel tile */
    int kc;     /* depth of one packed block */
    int mc;     /* rows of one packed A block (a multiple of mr) */
    int nc;     /* widest task tile, the width of one B block (a multiple of nr) */
    int mt;     /* tallest task tile (a multiple of mc): the rows swept under one B block */
    int thin;   /* most columns for the thin kernel (0: none): half its lanes */
    int pw;     /* widest task tile for the panel kernel (0: none) */
} alloy__gemm_blocking;

typedef struct alloy__cpu_kernels {
    const char *name;
    alloy_cpu_kernel id;
    alloy__gemm_blocking f32, f64;
    alloy__ukr_f32 ukr_f32;
    alloy__ukr_f64 ukr_f64;
    /* The same contract for the first NR/2 columns only (B rows still NR apart), for
     * micro-tiles at most half a sliver wide; NULL where the ISA has none. */
    alloy__ukr_f32 ukr_half_f32;
    alloy__ukr_f64 ukr_half_f64;
    /* NULL where the ISA has no masked loads and stores */
    alloy__ukr_direct_f32 ukr_direct_f32;
    alloy__ukr_direct_f64 ukr_direct_f64;
    alloy__norm_row_fn norm_row_f32, norm_row_f64;
    alloy__gemv_f32 gemv_f32;
    alloy__gemv_f64 gemv_f64;
    alloy__axpy_f32 axpy_f32;
    alloy__axpy_f64 axpy_f64;
    /* NULL: the tiles' ordinary path */
    alloy__thin_f32 thin_f32;
    alloy__thin_f64 thin_f64;
    /* NULL: the C leaf (solve.inc) */
    alloy__lu_leaf_f32 lu_leaf_f32;
    alloy__lu_leaf_f64 lu_leaf_f64;
    /* NULL: the microkernel's order for every product */
    alloy__ukr_panel_f32 ukr_panel_f32;
    alloy__ukr_panel_f64 ukr_panel_f64;
} alloy__cpu_kernels;

const alloy__cpu_kernels *alloy__cpu_kernels_portable(void);
/* NULL when not built for this architecture. */
const alloy__cpu_kernels *alloy__cpu_kernels_avx2(void);
const alloy__cpu_kernels *alloy__cpu_kernels_avx512(void);

/* CPU feature flags (with OS support for the register state), never the model. */
int alloy__cpu_has_avx2_fma(void);
int alloy__cpu_has_avx512f(void); /* with VL and BW */

#endif
