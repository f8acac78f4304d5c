# The CUDA backend: kernels compiled by `nvcc -fatbin` into a generated static const array,
# loaded at device open through the driver API (never CMake's CUDA language, whose nvcc
# registration statics would break the no-writable-globals rule). Without nvcc (or with
# -DALLOY_CUDA=OFF), src/core/no_cuda.c makes the backend report ALLOY_ERR_NO_DEVICE.
#
# Sets ALLOY_CUDA_ENABLED, appends the glue to ALLOY_SOURCES and defines the custom target
# alloy_cuda_fatbin, which writes ${CMAKE_CURRENT_BINARY_DIR}/generated/alloy_cuda_fatbin.h.
set(ALLOY_CUDA_ENABLED OFF)

if(NOT ALLOY_CUDA STREQUAL "OFF")
  find_program(ALLOY_NVCC nvcc PATHS /usr/local/cuda/bin ENV CUDA_HOME PATH_SUFFIXES bin)
  if(ALLOY_NVCC)
    # cuda.h lives beside nvcc's bin/ in every CUDA toolkit layout.
    get_filename_component(_alloy_cuda_bin "${ALLOY_NVCC}" DIRECTORY)
    get_filename_component(_alloy_cuda_root "${_alloy_cuda_bin}" DIRECTORY)
    find_path(ALLOY_CUDA_INCLUDE cuda.h
              PATHS "${_alloy_cuda_root}/include" /usr/local/cuda/include NO_DEFAULT_PATH)
  endif()
  if(ALLOY_NVCC AND ALLOY_CUDA_INCLUDE)
    set(ALLOY_CUDA_ENABLED ON)
  elseif(ALLOY_CUDA STREQUAL "ON")
    message(FATAL_ERROR "ALLOY_CUDA=ON but nvcc or cuda.h was not found (nvcc: ${ALLOY_NVCC}, "
                        "cuda.h: ${ALLOY_CUDA_INCLUDE}); put nvcc on PATH or set -DALLOY_CUDA=OFF")
  endif()
endif()

if(NOT ALLOY_CUDA_ENABLED)
  message(STATUS "alloy: CUDA backend not built (no nvcc, or ALLOY_CUDA=OFF)")
  list(APPEND ALLOY_SOURCES src/core/no_cuda.c)
  return()
endif()

message(STATUS "alloy: CUDA backend built with ${ALLOY_NVCC}")

set(_alloy_cu_dir ${CMAKE_CURRENT_SOURCE_DIR}/src/cuda/kernels)
set(_alloy_cu_sources
    ${_alloy_cu_dir}/kernels.cu
    ${_alloy_cu_dir}/params.h
    ${_alloy_cu_dir}/common.cuh
    ${_alloy_cu_dir}/convert.cuh
    ${_alloy_cu_dir}/copy.cuh
    ${_alloy_cu_dir}/matmul_tc.cuh
    ${_alloy_cu_dir}/matmul_simt.cuh
    ${_alloy_cu_dir}/norm.cuh
    ${_alloy_cu_dir}/lu.cuh
    ${_alloy_cu_dir}/laswp.cuh
    ${_alloy_cu_dir}/trsm.cuh)
set(_alloy_fatbin ${CMAKE_CURRENT_BINARY_DIR}/generated/alloy_cuda_kernels.fatbin)
set(_alloy_fatbin_h ${CMAKE_CURRENT_BINARY_DIR}/generated/alloy_cuda_fatbin.h)

# sm_90a SASS for Hopper, sm_80/sm_89 SASS for Ampere and Ada, compute_80 PTX so newer
# GPUs JIT it at module load. -fmad=false: like the C code's -ffp-contract=off, kernels
# fuse only where they call fmaf/fma explicitly. -lineinfo lets compute-sanitizer name lines.
# ALLOY_CUDA_TARGETS=sm_90a builds Hopper SASS alone (quicker development builds only).
set(ALLOY_CUDA_TARGETS "all" CACHE STRING "CUDA targets: all (what ships) or sm_90a")
if(ALLOY_CUDA_TARGETS STREQUAL "sm_90a")
  set(_alloy_gencode -gencode arch=compute_90a,code=sm_90a)
else()
  set(_alloy_gencode
      -gencode arch=compute_90a,code=sm_90a
      -gencode arch=compute_89,code=sm_89
      -gencode "arch=compute_80,code=[sm_80,compute_80]")
endif()
set(ALLOY_NVCC_FLAGS -O3 -std=c++17 -fmad=false -lineinfo --threads 0 ${_alloy_gencode})

add_custom_command(
  OUTPUT ${_alloy_fatbin_h}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_CURRENT_BINARY_DIR}/generated
  COMMAND ${ALLOY_NVCC} -fatbin ${ALLOY_NVCC_FLAGS} -I${CMAKE_CURRENT_SOURCE_DIR}/src/cuda/kernels
          -o ${_alloy_fatbin} ${_alloy_cu_dir}/kernels.cu
  COMMAND ${CMAKE_COMMAND} -DIN=${_alloy_fatbin} -DOUT=${_alloy_fatbin_h}
          -P ${CMAKE_CURRENT_SOURCE_DIR}/src/cuda/embed_fatbin.cmake
  DEPENDS ${_alloy_cu_sources} ${CMAKE_CURRENT_SOURCE_DIR}/src/cuda/embed_fatbin.cmake
  COMMENT "nvcc -fatbin: alloy's CUDA kernels"
  VERBATIM)
add_custom_target(alloy_cuda_fatbin DEPENDS ${_alloy_fatbin_h})

set(_alloy_cuda_glue
    src/cuda/backend.c
    src/cuda/buffer.c
    src/cuda/device.c
    src/cuda/driver.c
    src/cuda/fatbin.c
    src/cuda/launch_copy.c
    src/cuda/launch_lu.c
    src/cuda/launch_lu_solve.c
    src/cuda/launch_matmul.c
    src/cuda/launch_norm.c
    src/cuda/launch_trsm.c
    src/cuda/queue.c)
list(APPEND ALLOY_SOURCES ${_alloy_cuda_glue})
# The glue includes cuda.h for its types only: the driver is opened with dlopen at device
# open, so neither libcuda nor cudart is linked.
set_source_files_properties(${_alloy_cuda_glue} PROPERTIES
  INCLUDE_DIRECTORIES "${ALLOY_CUDA_INCLUDE}")
set_source_files_properties(src/cuda/fatbin.c PROPERTIES OBJECT_DEPENDS ${_alloy_fatbin_h})
