/* The kernels' fatbin, generated at build time by cmake/cuda.cmake (nvcc -fatbin, then
 * src/cuda/embed_fatbin.cmake) as a static const array: read-only data, no registration
 * code, loaded per device with cuModuleLoadData. */
#include "cuda_backend.h"

#include "alloy_cuda_fatbin.h"

const void *alloy__cu_fatbin(void) { return alloy_cuda_fatbin; }
