# Toolchain file: cross-build alloy for arm64 Linux with Debian's cross compiler
# (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross) and run its tests through qemu-user.
# Used by scripts/arm64-test.sh:
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64.cmake \
#         -DALLOY_CUDA=OFF -DALLOY_REQUIRE_ORACLE=OFF
# ctest then runs every test program as `qemu-aarch64 -L /usr/aarch64-linux-gnu PROGRAM`
# (CMAKE_CROSSCOMPILING_EMULATOR). Libraries and headers are looked up only in the arm64
# sysroot, so the host's x86-64 OpenBLAS is never picked up (the oracle tests are skipped).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(ALLOY_AARCH64_SYSROOT "/usr/aarch64-linux-gnu" CACHE PATH "arm64 sysroot (libc6-dev-arm64-cross)")
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)

set(CMAKE_FIND_ROOT_PATH "${ALLOY_AARCH64_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L "${ALLOY_AARCH64_SYSROOT}")
