/* liballoy-blas internals: shared by the files of src/blas only. Nothing here is exported
 * (the library is built with hidden visibility and a version script that names only the
 * BLAS/LAPACK/CBLAS symbols and alloy_blas_calls). */
#ifndef ALLOY_BLAS_INTERNAL_H
#define ALLOY_BLAS_INTERNAL_H

#include "alloy.h"

#include <stddef.h>
#include <stdint.h>

#define ALLOY_BLAS_EXPORT __attribute__((visibility("default")))

/* ---------------------------------------------------------------- routines (counter.c) */

/* One counter per exported entry point; alloy_blas_calls() reads them by name. */
typedef enum alloy_blas_routine {
    BLAS_SGEMM = 0,
    BLAS_DGEMM,
    BLAS_STRSM,
    BLAS_DTRSM,
    BLAS_CBLAS_SGEMM,
    BLAS_CBLAS_DGEMM,
    BLAS_CBLAS_STRSM,
    BLAS_CBLAS_DTRSM,
    BLAS_SGETRF,
    BLAS_DGETRF,
    BLAS_SGETRS,
    BLAS_DGETRS,
    BLAS_SGESV,
    BLAS_DGESV,
    BLAS_ROUTINES,
    /* r | BLAS_STEP: a step of routine r (gesv's solve), named as r, counted by r once */
    BLAS_STEP = 0x100
} alloy_blas_routine;

/* The exported symbol's name ("dgemm_", "cblas_sgemm"). */
const char *alloy_blas__routine_name(alloy_blas_routine r);
/* One more call of r reached alloy. */
void alloy_blas__count(alloy_blas_routine r);
/* With ALLOY_BLAS_STATS set (not "0"), prints the counts to stderr at exit. Called once. */
void alloy_blas__stats_at_exit(void);

/* ---------------------------------------------------------------- the device (device.c) */

/* The calling thread's queue on the adapter's CPU device, made on first use and destroyed
 * when the thread exits. NULL (with the reason printed to stderr) when the device or the
 * queue cannot be made. *dev receives the device. */
alloy_queue *alloy_blas__queue(alloy_device **dev);

/* ---------------------------------------------------------------- errors (xerbla.c) */

/* Reports an illegal argument of a Fortran entry point as the reference does: calls the
 * process's xerbla_(srname, &info, len) found at call time, so a test program's own
 * handler is the one called; without one, prints the reference's message. srname is the
 * reference's padded name ("SGEMM ", "SGETRF", "SGESV "). */
void alloy_blas__xerbla(const char *srname, int info);

/* Reports an illegal argument of a CBLAS entry point as the reference CBLAS does: calls
 * cblas_xerbla(info, rout, form, value) found at call time. `info` is the number the
 * reference passes (for errors found by the Fortran-level checks: their number plus one,
 * of the call with row-major's swapped arguments); `row_major` is what the reference
 * leaves in its RowMajorStrg flag, which the handler reads to map that number back to
 * the CBLAS argument. */
void alloy_blas__cblas_xerbla(int info, const char *rout, int row_major, const char *form,
                              int value);

/* LSAME: the first character, case-insensitively. */
int alloy_blas__lsame(const char *ca, char cb);

/* ---------------------------------------------------------------- one call (call.c) */

#define BLAS_CALL_MAX_BUFFERS 12

/* The alloy objects of one BLAS call: its command buffer and the buffers that wrap the
 * caller's memory (or hold scratch copies), all destroyed by alloy_blas__finish. */
typedef struct blas_call {
    const char *routine; /* for messages */
    alloy_blas_routine counter;
    alloy_device *dev;
    alloy_queue *q;
    alloy_cmdbuf *cb;
    alloy_buffer *bufs[BLAS_CALL_MAX_BUFFERS];
    int nbufs;
    alloy_status status; /* the first failure, or ALLOY_OK */
} blas_call;

/* Starts a call on this thread's queue. 0 when no queue could be had (reported). */
int alloy_blas__begin(blas_call *c, alloy_blas_routine counter, const char *routine);

/* A column-major matrix of `rows` x `cols` with leading dimension `ld` at p, as an alloy
 * view of shape {rows, cols} and strides {1, ld} over a buffer that wraps exactly the
 * elements from the first to the last ((cols-1)*ld + rows of them). */
alloy_array alloy_blas__matrix(blas_call *c, alloy_dtype t, const void *p, int64_t rows,
                               int64_t cols, int64_t ld);
/* n int32 at p (shape {n}), or one int32 (rank 0) when n < 0. */
alloy_array alloy_blas__ints(blas_call *c, int *p, int64_t n);
/* A rank-0 scalar zero of dtype t (for filling). */
alloy_array alloy_blas__zero(blas_call *c, alloy_dtype t);
/* The transpose view (a stride swap). */
alloy_array alloy_blas__t(alloy_array a);

/* BLAS callers (LAPACK's blocked codes) pass submatrices of one array whose elements are
 * disjoint but whose address ranges interleave; alloy rejects an output whose byte range
 * meets an input's. When `in` and `out` meet, this encodes a copy of `in` into scratch
 * and returns the scratch view; otherwise `in` itself. */
alloy_array alloy_blas__apart(blas_call *c, alloy_array in, const alloy_array *out);

/* Records an encode's status (the first failure sticks). */
void alloy_blas__check(blas_call *c, alloy_status s);

/* Commits, waits, destroys everything and counts the call. ALLOY_OK, or the failure
 * (printed to stderr: BLAS has no way to return it). */
alloy_status alloy_blas__finish(blas_call *c);

/* ---------------------------------------------------------------- the operations */

/* Each *_check returns the reference routine's INFO for its arguments (0: valid; for
 * LAPACK the positive argument number, which the routine negates), in the reference's
 * order of tests. Each *_run does the work, quick returns included, on valid arguments. */

int alloy_blas__gemm_check(const char *transa, const char *transb, int m, int n, int k, int lda,
                           int ldb, int ldc);
void alloy_blas__gemm_run(alloy_blas_routine counter, alloy_dtype t, const char *transa,
                          const char *transb, int m, int n, int k, double alpha, const void *a,
                          int lda, const void *b, int ldb, double beta, void *c, int ldc);

int alloy_blas__trsm_check(const char *side, const char *uplo, const char *transa,
                           const char *diag, int m, int n, int lda, int ldb);
void alloy_blas__trsm_run(alloy_blas_routine counter, alloy_dtype t, const char *side,
                          const char *uplo, const char *transa, const char *diag, int m, int n,
                          double alpha, const void *a, int lda, void *b, int ldb);

int alloy_blas__getrf_check(int m, int n, int lda);
/* The LAPACK info (0, or k > 0: U(k,k) is exactly zero). */
int alloy_blas__getrf_run(alloy_blas_routine counter, alloy_dtype t, int m, int n, void *a,
                          int lda, int *ipiv);

int alloy_blas__getrs_check(const char *trans, int n, int nrhs, int lda, int ldb);
void alloy_blas__getrs_run(alloy_blas_routine counter, alloy_dtype t, const char *trans, int n,
                           int nrhs, const void *a, int lda, const int *ipiv, void *b, int ldb);

#endif
