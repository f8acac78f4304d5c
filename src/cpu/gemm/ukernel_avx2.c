/* AVX2 + FMA microkernels: f32 6 x 16 and f64 6 x 8, 12 ymm accumulators each, written once
 * in ukernel_avx2.inc and included here per precision with the panel kernel
 * (ukernel_panel.inc) and the skinny kernel. */
#include "kernels.h"

#include <immintrin.h>
#include <math.h>

#define MR 6
#define KC 256 /* the table's kc: a packed block's depth, packed A's row stride */

#define ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)

#define T float
#define SUF f32
#define V __m256
#define L 8
#define VLOADU _mm256_loadu_ps
#define VSTOREU _mm256_storeu_ps
#define VSET1 _mm256_set1_ps
#define VZERO _mm256_setzero_ps
#define VFMA _mm256_fmadd_ps
#define VLOAD _mm256_load_ps
#define VBCAST _mm256_broadcast_ss
#define SFMA fmaf
#define VSTORE1(p, v) _mm_store_ss(p, _mm256_castps256_ps128(v))
/* the first n (< L) lanes, nothing past them touched */
#define LANES_F32(n)                                                                               \
    _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define LANES LANES_F32
#define VMLOAD _mm256_maskload_ps
#define VMSTORE _mm256_maskstore_ps
#include "ukernel_avx2.inc"
#include "ukernel_panel.inc"
#undef LANES
#undef VMLOAD
#undef VMSTORE
#define VLOADN(p, n) _mm256_maskload_ps(p, LANES_F32(n))
#define VSTOREN(p, v, n) _mm256_maskstore_ps(p, LANES_F32(n), v)
#include "skinny.inc"
#undef VLOADN
#undef VSTOREN
#undef LANES_F32
#undef T
#undef SUF
#undef V
#undef L
#undef VLOADU
#undef VSTOREU
#undef VSET1
#undef VZERO
#undef VFMA
#undef VLOAD
#undef VBCAST
#undef SFMA
#undef VSTORE1

#define T double
#define SUF f64
#define V __m256d
#define L 4
#define VLOADU _mm256_loadu_pd
#define VSTOREU _mm256_storeu_pd
#define VSET1 _mm256_set1_pd
#define VZERO _mm256_setzero_pd
#define VFMA _mm256_fmadd_pd
#define VLOAD _mm256_load_pd
#define VBCAST _mm256_broadcast_sd
#define SFMA fma
#define VSTORE1(p, v) _mm_store_sd(p, _mm256_castpd256_pd128(v))
#define LANES_F64(n) _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3))
#define LANES LANES_F64
#define VMLOAD _mm256_maskload_pd
#define VMSTORE _mm256_maskstore_pd
#include "ukernel_avx2.inc"
#include "ukernel_panel.inc"
#undef LANES
#undef VMLOAD
#undef VMSTORE
#define VLOADN(p, n) _mm256_maskload_pd(p, LANES_F64(n))
#define VSTOREN(p, v, n) _mm256_maskstore_pd(p, LANES_F64(n), v)
#include "skinny.inc"
#undef VLOADN
#undef VSTOREN
#undef LANES_F64
#undef T
#undef SUF
#undef V
#undef L
#undef VLOADU
#undef VSTOREU
#undef VSET1
#undef VZERO
#undef VFMA
#undef VLOAD
#undef VBCAST
#undef SFMA
#undef VSTORE1

static const alloy__cpu_kernels avx2 = {
    "avx2",
    ALLOY_CPU_KERNEL_AVX2,
    {MR, 16, KC, 120, 512, 120, 4, 2048},
    {MR, 8, KC, 96, 256, 96, 2, 1024},
    ukr_f32,
    ukr_f64,
    NULL,
    NULL,
    ukr_direct_f32,
    ukr_direct_f64,
    alloy__norm_row_f32_avx2,
    alloy__norm_row_f64_avx2,
    gemv_f32,
    gemv_f64,
    axpy_f32,
    axpy_f64,
    alloy__thin_f32_avx2,
    alloy__thin_f64_avx2,
    NULL,
    NULL,
    ukr_panel_f32,
    ukr_panel_f64,
};

const alloy__cpu_kernels *alloy__cpu_kernels_avx2(void) { return &avx2; }
