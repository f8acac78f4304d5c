/* layer_norm row kernels built for avx2 (compile flags set in CMakeLists.txt). */
#include "convert.h"
#include "norm_rows.h"

#include <math.h>

#define ISA avx2

#define T float
#define SUFFIX f32
#include "norm_rows.inc"
#undef T
#undef SUFFIX

#define T double
#define SUFFIX f64
#include "norm_rows.inc"
#undef T
#undef SUFFIX
