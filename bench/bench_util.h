/* What the single-file bench programs (gemm_ratio, op_latency, worker_scaling) share: a
 * monotonic clock, a comparison for qsort of doubles, a status check that exits, and
 * ALLOY_BENCH_KERNEL, which forces alloy's microkernel set. Not alloy API. */
#ifndef ALLOY_BENCH_UTIL_H
#define ALLOY_BENCH_UTIL_H

#include "alloy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static inline int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static inline void check(alloy_status s, const char *what)
{
    if (s != ALLOY_OK) {
        fprintf(stderr, "%s: %s (%s)\n", what, alloy_status_string(s), alloy_last_error());
        exit(1);
    }
}

/* ALLOY_BENCH_KERNEL=avx2|avx512|portable: that microkernel set (to compare the AVX2 set
 * with OpenBLAS's Haswell kernel on an AVX-512 machine, say); unset: the best one. */
static inline alloy_cpu_kernel bench_kernel(void)
{
    const char *k = getenv("ALLOY_BENCH_KERNEL");
    if (!k || !*k)
        return ALLOY_CPU_KERNEL_AUTO;
    if (!strcmp(k, "avx2"))
        return ALLOY_CPU_KERNEL_AVX2;
    if (!strcmp(k, "avx512"))
        return ALLOY_CPU_KERNEL_AVX512;
    if (!strcmp(k, "portable"))
        return ALLOY_CPU_KERNEL_PORTABLE;
    fprintf(stderr, "ALLOY_BENCH_KERNEL: unknown kernel set %s\n", k);
    exit(2);
}

#endif
