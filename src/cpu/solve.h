/* Serial building blocks of the blocked LU and triangular solves. Each runs inside one
 * task on one thread; parallelism comes from the phases the ops build around them. All
 * work on row-major matrices of the compute type T (leading dimension ld), except the
 * triangular matrix `a`, which may have any strides (a transpose is a stride swap). */
#ifndef ALLOY_CPU_SOLVE_H
#define ALLOY_CPU_SOLVE_H

#include "gemm/gemm.h"

/* Solves op(A) X = X in place for X (m x w): a is the m x m matrix op(A) itself (strides
 * already swapped for a transpose); lower: it is lower triangular (forward substitution),
 * else upper (backward); unit: its diagonal is taken as 1 and never read. Blocked: small
 * substitutions on diagonal blocks, the rest through the GEMM update. */
void alloy__tri_left_f32(const alloy__cpu_kernels *kt, const alloy__mat *a, int lower, int unit,
                         float *x, int64_t ldx, int64_t m, int64_t w, void *scratch);
void alloy__tri_left_f64(const alloy__cpu_kernels *kt, const alloy__mat *a, int lower, int unit,
                         double *x, int64_t ldx, int64_t m, int64_t w, void *scratch);

/* LU with partial pivoting of the m x n matrix a in place (LAPACK's recursive getrf2):
 * piv[i] (0-based, relative to a) is the row swapped with row i, for i < min(m, n).
 * Returns the first column whose pivot is exactly zero, or -1. Never divides by zero. */
int64_t alloy__lu_rec_f32(const alloy__cpu_kernels *kt, float *a, int64_t lda, int64_t m, int64_t n,
                          int64_t *piv, void *scratch);
int64_t alloy__lu_rec_f64(const alloy__cpu_kernels *kt, double *a, int64_t lda, int64_t m,
                          int64_t n, int64_t *piv, void *scratch);

/* The LU leaves' pivot: the first row i >= j of largest |a[i * lda + j]|, i < m, as
 * LAPACK's i?amax (a NaN is never chosen over the first row searched). */
int64_t alloy__pivot_row_f32(const float *a, int64_t lda, int64_t m, int64_t j);
int64_t alloy__pivot_row_f64(const double *a, int64_t lda, int64_t m, int64_t j);

/* Swaps rows r1 and r2 of the w columns starting at x (leading dimension ld). */
void alloy__swap_rows(void *x, size_t esize, int64_t ld, int64_t w, int64_t r1, int64_t r2);

#endif
