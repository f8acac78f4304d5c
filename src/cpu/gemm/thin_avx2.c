/* The thin kernel (kernels.h, thin.inc) with AVX2 and FMA: eight rows of A a block for
 * f32 (four for f64), transposed in registers so that one FMA steps eight (four) chains
 * of a column of C; at most 4 columns for f32 and 2 for f64, half the lanes, as in
 * thin_avx512.c, whose comment says why. Compiled with AVX2 flags (CMakeLists.txt); run
 * only where CPUID says so, through the device's kernel table. */
#include "kernels.h"

#include <immintrin.h>

/* r[i] (row i, 8 elements) becomes r[j] = element j of rows 0..7. */
static inline void transpose8(__m256 r[8])
{
    __m256 t[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    __m256 s[8];
    for (int h = 0; h < 8; h += 4) {
        s[h] = _mm256_shuffle_ps(t[h], t[h + 2], 0x44);
        s[h + 1] = _mm256_shuffle_ps(t[h], t[h + 2], 0xee);
        s[h + 2] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0x44);
        s[h + 3] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0xee);
    }
    for (int j = 0; j < 4; j++) {
        r[j] = _mm256_permute2f128_ps(s[j], s[j + 4], 0x20);
        r[j + 4] = _mm256_permute2f128_ps(s[j], s[j + 4], 0x31);
    }
}

/* The same for four rows of four doubles. */
static inline void transpose4(__m256d r[4])
{
    const __m256d t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
    const __m256d t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
    r[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
    r[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
    r[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
    r[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}

/* The first n elements at p, zeros after them; nothing past them is read. */
static inline __m256 loadz_ps(int n, const float *p)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane));
}

static inline __m256d loadz_pd(int n, const double *p)
{
    const __m256i lane = _mm256_setr_epi64x(0, 1, 2, 3);
    return _mm256_maskload_pd(p, _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), lane));
}

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)

#define T float
#define SUF f32
#define ISA _avx2
#define V __m256
#define L 8
#define MAXN 4 /* the table's `thin` */
#define VLOAD _mm256_loadu_ps
#define VLOADZ loadz_ps
#define VSET1 _mm256_set1_ps
#define VZERO _mm256_setzero_ps
#define VFMA _mm256_fmadd_ps
#define VSTORE _mm256_storeu_ps
#define TRANSPOSE transpose8
#include "thin.inc"

#define T double
#define SUF f64
#define ISA _avx2
#define V __m256d
#define L 4
#define MAXN 2 /* the table's `thin` */
#define VLOAD _mm256_loadu_pd
#define VLOADZ loadz_pd
#define VSET1 _mm256_set1_pd
#define VZERO _mm256_setzero_pd
#define VFMA _mm256_fmadd_pd
#define VSTORE _mm256_storeu_pd
#define TRANSPOSE transpose4
#include "thin.inc"
