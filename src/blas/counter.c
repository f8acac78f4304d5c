/* The adapter's call counters: how many calls of each entry point reached alloy (ran on
 * an alloy queue; argument errors and quick returns do not count). They only count:
 * nothing reads them but alloy_blas_calls, so they change no result. */
#include "alloy_blas.h"
#include "blas.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const routine_names[BLAS_ROUTINES] = {
    "sgemm_",      "dgemm_",      "strsm_",      "dtrsm_",      "cblas_sgemm",
    "cblas_dgemm", "cblas_strsm", "cblas_dtrsm", "sgetrf_",     "dgetrf_",
    "sgetrs_",     "dgetrs_",     "sgesv_",      "dgesv_",
};

static atomic_ullong g_calls[BLAS_ROUTINES];

const char *alloy_blas__routine_name(alloy_blas_routine r)
{
    int i = (int)r & ~BLAS_STEP;
    return (i >= 0 && i < BLAS_ROUTINES) ? routine_names[i] : "?";
}

void alloy_blas__count(alloy_blas_routine r)
{
    if (r >= 0 && r < BLAS_ROUTINES) /* steps (r | BLAS_STEP) are not counted */
        atomic_fetch_add_explicit(&g_calls[r], 1ull, memory_order_relaxed);
}

ALLOY_BLAS_EXPORT unsigned long long alloy_blas_calls(const char *routine)
{
    unsigned long long total = 0;
    for (int r = 0; r < BLAS_ROUTINES; r++) {
        if (routine && *routine) {
            /* "dgemm_" and "dgemm" both name the Fortran entry point */
            size_t n = strlen(routine_names[r]);
            int fortran = routine_names[r][n - 1] == '_';
            if (strcmp(routine, routine_names[r]) != 0 &&
                !(fortran && strlen(routine) == n - 1 &&
                  strncmp(routine, routine_names[r], n - 1) == 0))
                continue;
        }
        total += atomic_load_explicit(&g_calls[r], memory_order_relaxed);
    }
    return total;
}

/* ALLOY_BLAS_STATS=1: at exit, one line on stderr with the calls that reached alloy, so a
 * program that cannot call alloy_blas_calls (a Fortran test program) still shows it. */
static void print_stats(void)
{
    char line[1024];
    size_t used = 0;
    unsigned long long total = 0;
    for (int r = 0; r < BLAS_ROUTINES; r++) {
        unsigned long long n = atomic_load_explicit(&g_calls[r], memory_order_relaxed);
        total += n;
        if (n && used < sizeof line) {
            int w = snprintf(line + used, sizeof line - used, " %s %llu", routine_names[r], n);
            if (w > 0)
                used += (size_t)w;
        }
    }
    if (used >= sizeof line)
        used = sizeof line - 1;
    line[used] = '\0';
    fprintf(stderr, "alloy-blas: %llu calls reached alloy:%s\n", total, used ? line : " none");
}

void alloy_blas__stats_at_exit(void)
{
    const char *v = getenv("ALLOY_BLAS_STATS");
    if (v && *v && strcmp(v, "0") != 0)
        atexit(print_stats);
}
