/* The thin kernel (kernels.h) with AVX-512: C = A @ B for at most 8 columns (4 for f64),
 * the matrix-vector case. The microkernels put C's columns in the vector lanes, so with
 * one column 15 of 16 lanes would idle: a 1024 x 1024 by 1024 x 1 product ran at 6.5-7
 * GFLOPS, a third of what reading A once allows. Here the lanes are sixteen rows (eight
 * for f64): a block of their rows is loaded as vectors and transposed in registers, so
 * that vector q holds element q of every row, and one FMA with a broadcast B[k][j] steps
 * sixteen chains of column j.
 *
 * Each element is one FMA chain from zero in increasing k, the chain every other path of
 * the GEMM computes (the product inside the FMA is exact, so b * a and a * b round the
 * same), so the results are bitwise the other kernels'. Lanes past the last row read a
 * copy of the last row and are never stored; steps past k are not taken. Compiled with
 * AVX-512 flags (CMakeLists.txt); run only where CPUID says so, through the device's
 * kernel table. */
#include "kernels.h"

#include <immintrin.h>

/* r[i] (row i, 16 elements) becomes r[j] = element j of rows 0..15: unpacks within pairs
 * of rows, then of 64-bit pairs, then two rounds of 128-bit lane shuffles. */
static inline void transpose16(__m512 r[16])
{
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        const __m512d t0 = _mm512_castps_pd(t[i]), t1 = _mm512_castps_pd(t[i + 1]);
        const __m512d t2 = _mm512_castps_pd(t[i + 2]), t3 = _mm512_castps_pd(t[i + 3]);
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
        r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xdd);
    }
}

/* The same for eight rows of eight doubles. */
static inline void transpose8(__m512d r[8])
{
    __m512d t[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm512_unpacklo_pd(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_pd(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        r[i] = _mm512_shuffle_f64x2(t[i], t[i + 2], 0x88);
        r[i + 2] = _mm512_shuffle_f64x2(t[i], t[i + 2], 0xdd);
        r[i + 1] = _mm512_shuffle_f64x2(t[i + 1], t[i + 3], 0x88);
        r[i + 3] = _mm512_shuffle_f64x2(t[i + 1], t[i + 3], 0xdd);
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f64x2(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f64x2(r[i], r[i + 4], 0xdd);
    }
    for (int i = 0; i < 8; i++)
        r[i] = t[i];
}

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)

#define T float
#define SUF f32
#define V __m512
#define L 16
#define ISA _avx512
#define MAXN 8 /* the table's `thin` */
#define VLOAD _mm512_loadu_ps
#define VLOADZ(n, p) _mm512_maskz_loadu_ps((__mmask16)((1u << (n)) - 1u), p)
#define VSET1 _mm512_set1_ps
#define VZERO _mm512_setzero_ps
#define VFMA _mm512_fmadd_ps
#define VSTORE _mm512_storeu_ps
#define TRANSPOSE transpose16
#include "thin.inc"

#define T double
#define SUF f64
#define V __m512d
#define L 8
#define ISA _avx512
#define MAXN 4 /* the table's `thin` */
#define VLOAD _mm512_loadu_pd
#define VLOADZ(n, p) _mm512_maskz_loadu_pd((__mmask8)((1u << (n)) - 1u), p)
#define VSET1 _mm512_set1_pd
#define VZERO _mm512_setzero_pd
#define VFMA _mm512_fmadd_pd
#define VSTORE _mm512_storeu_pd
#define TRANSPOSE transpose8
#include "thin.inc"
