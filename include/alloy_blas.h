/*
 * liballoy-blas: the standard BLAS, CBLAS and LAPACK symbols, computed by alloy.
 *
 * The library exports
 *   Fortran BLAS   sgemm_ dgemm_ strsm_ dtrsm_
 *   CBLAS          cblas_sgemm cblas_dgemm cblas_strsm cblas_dtrsm (row- and column-major)
 *   LAPACK         sgetrf_ dgetrf_ sgetrs_ dgetrs_ sgesv_ dgesv_
 * with the reference implementations' semantics (argument checks, xerbla_/cblas_xerbla
 * reports, quick returns), so an existing program uses it unchanged:
 *
 *   LD_PRELOAD=/path/to/liballoy-blas.so ./program      (or python3, octave, ...)
 *
 * Any number of threads may call it at once: each calling thread gets a queue of its own
 * on one CPU device that the library opens on first use, and results are bitwise the same
 * however many threads call. docs/blas.md says more.
 *
 * This header declares the one function of the library's own.
 */
#ifndef ALLOY_BLAS_H
#define ALLOY_BLAS_H

#if defined(__GNUC__) || defined(__clang__)
#define ALLOY_BLAS_API __attribute__((visibility("default")))
#else
#define ALLOY_BLAS_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* How many calls reached alloy (ran on an alloy queue; argument errors and the
 * reference's quick returns do not count) since the process started: of one entry point
 * by its symbol name ("dgemm_", "cblas_dgemm", "dgesv_"; "dgemm" also names "dgemm_"), or
 * of all of them when routine is NULL or "". 0 for a name the library does not export. */
ALLOY_BLAS_API unsigned long long alloy_blas_calls(const char *routine);

#ifdef __cplusplus
}
#endif

#endif /* ALLOY_BLAS_H */
