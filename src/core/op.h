/* Operation records: what an encode call leaves in a command buffer once it has
 * validated its arguments. Everything a backend needs is here in normalized form
 * (absolute addresses, element strides, batch dimensions coalesced and broadcast), so
 * no backend ever meets an alloy_array or an invalid argument. */
#ifndef ALLOY_CORE_OP_H
#define ALLOY_CORE_OP_H

#include "alloy.h"

#include <stdint.h>

#define ALLOY__MAX_OPERANDS 4

typedef enum alloy__op_kind {
    ALLOY__OP_COPY = 0,
    ALLOY__OP_MATMUL,
    ALLOY__OP_LU_FACTOR,
    ALLOY__OP_LU_SOLVE,
    ALLOY__OP_TRIANGULAR_SOLVE,
    ALLOY__OP_LAYER_NORM,
    ALLOY__OP_KIND_COUNT
} alloy__op_kind;

const char *alloy__op_name(alloy__op_kind k);

/* Batch dimensions shared by an op's operands: batch index i has, for operand j, the
 * element offset sum_d idx_d(i) * strides[j][d]. A stride of 0 is a broadcast. */
typedef struct alloy__batch {
    int rank;
    int64_t count; /* product of shape; 1 for no batch dims */
    int64_t shape[ALLOY_MAX_RANK];
    int64_t strides[ALLOY__MAX_OPERANDS][ALLOY_MAX_RANK];
} alloy__batch;

/* Element offsets of batch entry `index` for the first `n` operands. */
void alloy__batch_offsets(const alloy__batch *b, int64_t index, int n, int64_t *out);

/* A matrix: element (i, j) at addr + (i * rs + j * cs) * size(dtype). */
typedef struct alloy__mat {
    uint64_t addr;
    alloy_dtype dtype;
    int64_t rs, cs;
} alloy__mat;

/* A vector: element i at addr + i * stride * size(dtype). addr 0 means absent. */
typedef struct alloy__vec {
    uint64_t addr;
    alloy_dtype dtype;
    int64_t stride;
} alloy__vec;

typedef struct alloy__copy_op {
    int rank; /* after coalescing; 0 for a single element */
    int64_t count;
    int64_t shape[ALLOY_MAX_RANK];
    int64_t src_strides[ALLOY_MAX_RANK];
    int64_t dst_strides[ALLOY_MAX_RANK];
    uint64_t src, dst;
    alloy_dtype src_dtype, dst_dtype;
} alloy__copy_op;

/* Operands of the batch: 0 = a, 1 = b, 2 = c. */
typedef struct alloy__matmul_op {
    alloy__batch batch;
    int64_t m, n, k;
    alloy__mat a, b, c;
    alloy__vec bias; /* addr 0: none */
    double alpha, beta;
    int allow_tf32;
} alloy__matmul_op;

/* Operands: 0 = a, 1 = pivots, 2 = info. */
typedef struct alloy__lu_factor_op {
    alloy__batch batch;
    int64_t m, n;
    alloy__mat a;
    alloy__vec pivots; /* I32 */
    uint64_t info;     /* I32, one per batch entry at its batch offset */
} alloy__lu_factor_op;

/* Operands: 0 = lu, 1 = pivots, 2 = b. */
typedef struct alloy__lu_solve_op {
    alloy__batch batch;
    int64_t n, nrhs;
    alloy__mat lu, b;
    alloy__vec pivots;
    int transpose;
} alloy__lu_solve_op;

/* Operands: 0 = a, 1 = b. */
typedef struct alloy__trsm_op {
    alloy__batch batch;
    int64_t m, n;
    alloy__mat a, b;
    alloy_side side;
    alloy_uplo uplo;
    int transpose, unit_diagonal;
    double alpha;
} alloy__trsm_op;

/* Operands: 0 = x, 1 = y, 2 = mean, 3 = rstd. x and y rows are vectors of length d. */
typedef struct alloy__norm_op {
    alloy__batch batch;
    int64_t d;
    alloy__vec x, y, gamma, beta; /* gamma, beta: addr 0 when absent */
    uint64_t mean, rstd;          /* 0 when absent; one element per row */
    alloy_dtype mean_dtype, rstd_dtype;
    double eps;
    int rms;
} alloy__norm_op;

#define ALLOY__OP_EXEC_BYTES 512

typedef struct alloy__op {
    alloy__op_kind kind;
    union {
        alloy__copy_op copy;
        alloy__matmul_op matmul;
        alloy__lu_factor_op lu_factor;
        alloy__lu_solve_op lu_solve;
        alloy__trsm_op trsm;
        alloy__norm_op norm;
    } u;
    /* The backend's run-time state for this op (phase counters, workspace pointers). */
    _Alignas(16) unsigned char exec[ALLOY__OP_EXEC_BYTES];
} alloy__op;

#endif
