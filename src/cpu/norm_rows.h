/* Per-ISA builds of the layer_norm row kernel (norm_rows.inc); the device's kernel table
 * says which one runs. */
#ifndef ALLOY_CPU_NORM_ROWS_H
#define ALLOY_CPU_NORM_ROWS_H

#include "../core/op.h"

#define ALLOY__NORM_CHUNK 256 /* elements converted at a time (a multiple of LANES) */
#define ALLOY__NORM_LANES 16

typedef void (*alloy__norm_row_fn)(const alloy__norm_op *n, int64_t row);

void alloy__norm_row_f32_portable(const alloy__norm_op *n, int64_t row);
void alloy__norm_row_f64_portable(const alloy__norm_op *n, int64_t row);
void alloy__norm_row_f32_avx2(const alloy__norm_op *n, int64_t row);
void alloy__norm_row_f64_avx2(const alloy__norm_op *n, int64_t row);
void alloy__norm_row_f32_avx512(const alloy__norm_op *n, int64_t row);
void alloy__norm_row_f64_avx512(const alloy__norm_op *n, int64_t row);

#endif
