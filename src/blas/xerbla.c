/* Argument errors, reported the way the reference BLAS, LAPACK and CBLAS report them.
 *
 * The handlers are looked up in the process at the time of the error (dlsym with
 * RTLD_DEFAULT), never linked: a test program that defines its own xerbla_ or
 * cblas_xerbla to check error exits gets its own called, and an application gets the one
 * of the BLAS it was linked with. The adapter defines neither symbol, so preloading it
 * replaces no one's handler. Without any handler in the process, the adapter prints the
 * reference's message to stderr and returns (it does not stop the program as the
 * reference xerbla does). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* RTLD_DEFAULT */
#endif
#include "blas.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

typedef void (*xerbla_fn)(const char *srname, const int *info, size_t len);
typedef void (*cblas_xerbla_fn)(int info, const char *rout, const char *form, ...);

int alloy_blas__lsame(const char *ca, char cb)
{
    char a = *ca;
    if (a >= 'a' && a <= 'z')
        a = (char)(a - 'a' + 'A');
    if (cb >= 'a' && cb <= 'z')
        cb = (char)(cb - 'a' + 'A');
    return a == cb;
}

void alloy_blas__xerbla(const char *srname, int info)
{
    xerbla_fn f = NULL;
    void *sym = dlsym(RTLD_DEFAULT, "xerbla_");
    memcpy(&f, &sym, sizeof f);
    if (f) {
        f(srname, &info, strlen(srname));
        return;
    }
    /* the reference xerbla.f: trimmed name, I2 argument number */
    size_t n = strlen(srname);
    while (n > 0 && srname[n - 1] == ' ')
        n--;
    fprintf(stderr, " ** On entry to %.*s parameter number %2d had an illegal value\n", (int)n,
            srname, info);
}

/* The reference cblas_xerbla maps the number it is given back to the CBLAS argument when
 * RowMajorStrg is set, because row-major calls reach the Fortran checks with M and N,
 * A and B (gemm) or M and N (trsm) swapped. This is that map, for handlers that cannot
 * read the flag. */
static int row_major_argument(const char *rout, int info)
{
    if (strstr(rout, "gemm")) {
        if (info == 5)
            return 4;
        if (info == 4)
            return 5;
        if (info == 11)
            return 9;
        if (info == 9)
            return 11;
    } else if (strstr(rout, "trmm") || strstr(rout, "trsm")) {
        if (info == 7)
            return 6;
        if (info == 6)
            return 7;
    }
    return info;
}

void alloy_blas__cblas_xerbla(int info, const char *rout, int row_major, const char *form,
                              int value)
{
    cblas_xerbla_fn f = NULL;
    int *row_major_flag = NULL;
    void *sym = dlsym(RTLD_DEFAULT, "cblas_xerbla");
    memcpy(&f, &sym, sizeof f);
    sym = dlsym(RTLD_DEFAULT, "RowMajorStrg");
    row_major_flag = (int *)sym;
    if (f && row_major_flag) {
        /* A reference-CBLAS handler (a test program's, or libcblas's): it reads the
         * reference's flag, which the reference sets for the call and clears after it. */
        *row_major_flag = row_major;
        f(info, rout, form, value);
        *row_major_flag = 0;
        return;
    }
    int arg = row_major ? row_major_argument(rout, info) : info;
    if (f) {
        f(arg, rout, form, value);
        return;
    }
    fprintf(stderr, "Parameter %d to routine %s was incorrect\n", arg, rout);
    if (*form)
        fprintf(stderr, form, value);
}
