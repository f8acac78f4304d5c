/* Built when the CUDA backend is not: alloy_device_open answers ALLOY_ERR_NO_DEVICE. */
#include "backend.h"

const alloy__backend *alloy__cuda_backend(void) { return 0; }
