/* What the CUDA benchmark programs (cuda_bench.c, cuda_linalg.c) share: a status check
 * that exits with alloy's error text, a monotonic clock and a comparison for medians. */
#ifndef ALLOY_BENCH_CUDA_BENCH_UTIL_H
#define ALLOY_BENCH_CUDA_BENCH_UTIL_H

#include "alloy.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CHECK(expr)                                                                                \
    do {                                                                                           \
        alloy_status s_ = (expr);                                                                  \
        if (s_ != ALLOY_OK) {                                                                      \
            fprintf(stderr, "%s:%d: %s: %s (%s)\n", __FILE__, __LINE__, #expr,                     \
                    alloy_status_string(s_), alloy_last_error());                                  \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static inline double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#endif
