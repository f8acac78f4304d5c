/* The serial solver blocks of solve.h, for f32 and f64 through solve.inc. */
#include "solve.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* Rows per diagonal block of the blocked triangular solve. */
#define TRI_NB 64
/* Below this many right-hand sides the GEMM's packing costs more than it saves. */
#define TRI_MIN_W 8

void alloy__swap_rows(void *x, size_t esize, int64_t ld, int64_t w, int64_t r1, int64_t r2)
{
    if (r1 == r2)
        return;
    char *a = (char *)x + (size_t)(r1 * ld) * esize, *b = (char *)x + (size_t)(r2 * ld) * esize;
    if (esize == 8) {
        double *p = (double *)a, *q = (double *)b;
        for (int64_t j = 0; j < w; j++) {
            double t = p[j];
            p[j] = q[j];
            q[j] = t;
        }
    } else {
        float *p = (float *)a, *q = (float *)b;
        for (int64_t j = 0; j < w; j++) {
            float t = p[j];
            p[j] = q[j];
            q[j] = t;
        }
    }
}

#define T float
#define SUFFIX f32
#define IS_F64 0
#define SFMIN FLT_MIN
#include "solve.inc"
#undef T
#undef SUFFIX
#undef IS_F64
#undef SFMIN

#define T double
#define SUFFIX f64
#define IS_F64 1
#define SFMIN DBL_MIN
#include "solve.inc"
#undef T
#undef SUFFIX
#undef IS_F64
#undef SFMIN
