/* The one translation unit of alloy's CUDA kernels, compiled by `nvcc -fatbin` and
 * embedded in the library (cmake/cuda.cmake). Every kernel is extern "C" so the glue
 * finds it by name with cuModuleGetFunction; nothing here is host code. */
#include "copy.cuh"
#include "laswp.cuh"
#include "lu.cuh"
#include "matmul_simt.cuh"
#include "matmul_tc.cuh"
#include "norm.cuh"
#include "trsm.cuh"

/* copy: alloy_copy_<1d|nd>_<src>_<dst> for every float pair and i32 -> i32. */
#define ALLOY_CU_COPY_FROM(sname, S)                                                               \
    ALLOY_CU_COPY_KERNELS(sname, f32, S, ALLOY_CU_F32)                                             \
    ALLOY_CU_COPY_KERNELS(sname, f64, S, ALLOY_CU_F64)                                             \
    ALLOY_CU_COPY_KERNELS(sname, f16, S, ALLOY_CU_F16)                                             \
    ALLOY_CU_COPY_KERNELS(sname, bf16, S, ALLOY_CU_BF16)
ALLOY_CU_COPY_FROM(f32, ALLOY_CU_F32)
ALLOY_CU_COPY_FROM(f64, ALLOY_CU_F64)
ALLOY_CU_COPY_FROM(f16, ALLOY_CU_F16)
ALLOY_CU_COPY_FROM(bf16, ALLOY_CU_BF16)
ALLOY_CU_COPY_KERNELS(i32, i32, ALLOY_CU_I32, ALLOY_CU_I32)

/* matmul on tensor cores (f32, f64 and tf32 kernels are defined in matmul_simt.cuh). */
ALLOY_CU_TC_ALL(bf16, true)
ALLOY_CU_TC_ALL(f16, false)

/* layer_norm. */
ALLOY_CU_NORM_ALL(f32, ALLOY_CU_F32)
ALLOY_CU_NORM_ALL(f64, ALLOY_CU_F64)
ALLOY_CU_NORM_ALL(f16, ALLOY_CU_F16)
ALLOY_CU_NORM_ALL(bf16, ALLOY_CU_BF16)

/* lu_factor, lu_solve, triangular_solve (f32, f64). */
ALLOY_CU_LU_KERNELS(f32, float, ALLOY_CU_LU_CLUSTER_THREADS_F32)
ALLOY_CU_LU_KERNELS(f64, double, ALLOY_CU_LU_CLUSTER_THREADS_F64)
ALLOY_CU_LASWP_KERNELS(f32, float)
ALLOY_CU_LASWP_KERNELS(f64, double)
ALLOY_CU_TRSM_KERNELS(f32, float, ALLOY_CU_TRSM_NB_F32)
ALLOY_CU_TRSM_KERNELS(f64, double, ALLOY_CU_TRSM_NB_F64)
