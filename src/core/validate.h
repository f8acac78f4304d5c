/* Argument checks shared by every encode: the rules of DESIGN.md's "Rules for every op". */
#ifndef ALLOY_CORE_VALIDATE_H
#define ALLOY_CORE_VALIDATE_H

#include "internal.h"

/* A checked array: absolute addresses and the byte range it touches. */
typedef struct alloy__view {
    alloy_buffer *buffer;
    uint64_t addr; /* address of element 0 */
    alloy_dtype dtype;
    size_t esize;
    int rank;
    int64_t shape[ALLOY_MAX_RANK];
    int64_t strides[ALLOY_MAX_RANK];
    int64_t count;
    uint64_t lo, hi; /* touched bytes [lo, hi); lo == hi when empty */
} alloy__view;

typedef enum { ALLOY__INPUT = 0, ALLOY__OUTPUT = 1 } alloy__role;

/* Checks `a` (named `name` in messages) for use on `dev`: non-NULL, a buffer of this
 * device, known dtype, rank 0..8, shape >= 0, strides >= 0, zero strides only on inputs
 * (or extents <= 1), aligned, inside its buffer, no size overflow. */
alloy_status alloy__view_check(const char *fn, const char *name, const alloy_device *dev,
                               const alloy_array *a, alloy__role role, alloy__view *v);

/* Fails when the two views' byte ranges intersect. */
alloy_status alloy__check_disjoint(const char *fn, const char *out_name, const alloy__view *out,
                                   const char *other_name, const alloy__view *other);

/* 1 when the views describe exactly the same elements in the same order. */
int alloy__view_same(const alloy__view *a, const alloy__view *b);

/* Builds the batch dimensions of an op. Operand 0..n-1 have `core[j]` trailing
 * non-batch dims; their leading dims are batch dims. The batch shape is that of
 * operand `shape_from` (an output); other operands with exact[j] set must have exactly
 * that batch shape (outputs), the rest broadcast to it (numpy: dims align at the right;
 * each equal or 1; missing dims broadcast). Coalesces what it can. */
alloy_status alloy__batch_build(const char *fn, alloy__batch *bt, int n, const alloy__view *const *v,
                                const char *const *names, const int *core, const int *exact,
                                int shape_from);

/* The view's last two dimensions as a matrix, and its last one as a vector (rank >= 2,
 * rank >= 1; a rank-0 view gives a vector of stride 0). */
alloy__mat alloy__view_matrix(const alloy__view *v);
alloy__vec alloy__view_vector(const alloy__view *v);

/* 1 when a is a float dtype (F32, F64, F16, BF16). */
int alloy__is_float(alloy_dtype t);
const char *alloy__dtype_name(alloy_dtype t);

#endif
