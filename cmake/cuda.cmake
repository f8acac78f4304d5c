# The CUDA backend: kernels compiled by nvcc -fatbin into a generated static const array,
# loaded at device open through the driver API (never CMake's CUDA language). Without
# nvcc, src/core/no_cuda.c makes the backend report ALLOY_ERR_NO_DEVICE.
set(ALLOY_CUDA_ENABLED OFF)
list(APPEND ALLOY_SOURCES src/core/no_cuda.c)
