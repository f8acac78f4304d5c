/* The CUDA driver, opened at device open: dlopen("libcuda.so.1") and every entry point
 * through cuGetProcAddress, kept in the device's own table. Nothing is global: each device
 * holds its own library handle (dlopen counts references) and function pointers.
 * cuda.h is included for its types only; libcuda is never linked. */
#ifndef ALLOY_CUDA_DRIVER_H
#define ALLOY_CUDA_DRIVER_H

#include "alloy.h"

#include <cuda.h>
#include <stddef.h>

typedef struct alloy__cu_driver {
    void *lib;
    CUresult (*GetErrorName)(CUresult, const char **);
    CUresult (*GetErrorString)(CUresult, const char **);
    CUresult (*Init)(unsigned int);
    CUresult (*DriverGetVersion)(int *);
    CUresult (*DeviceGetCount)(int *);
    CUresult (*DeviceGet)(CUdevice *, int);
    CUresult (*DeviceGetName)(char *, int, CUdevice);
    CUresult (*DeviceGetAttribute)(int *, CUdevice_attribute, CUdevice);
    CUresult (*DevicePrimaryCtxRetain)(CUcontext *, CUdevice);
    CUresult (*DevicePrimaryCtxRelease)(CUdevice);
    CUresult (*CtxPushCurrent)(CUcontext);
    CUresult (*CtxPopCurrent)(CUcontext *);
    CUresult (*ModuleLoadData)(CUmodule *, const void *);
    CUresult (*ModuleUnload)(CUmodule);
    CUresult (*ModuleGetFunction)(CUfunction *, CUmodule, const char *);
    CUresult (*FuncSetAttribute)(CUfunction, CUfunction_attribute, int);
    CUresult (*LaunchKernel)(CUfunction, unsigned int, unsigned int, unsigned int, unsigned int,
                             unsigned int, unsigned int, unsigned int, CUstream, void **, void **);
    CUresult (*LaunchKernelEx)(const CUlaunchConfig *, CUfunction, void **, void **);
    CUresult (*MemAlloc)(CUdeviceptr *, size_t);
    CUresult (*MemFree)(CUdeviceptr);
    CUresult (*MemHostAlloc)(void **, size_t, unsigned int);
    CUresult (*MemFreeHost)(void *);
    CUresult (*MemHostRegister)(void *, size_t, unsigned int);
    CUresult (*MemHostUnregister)(void *);
    CUresult (*MemHostGetDevicePointer)(CUdeviceptr *, void *, unsigned int);
    CUresult (*PointerGetAttribute)(void *, CUpointer_attribute, CUdeviceptr);
    CUresult (*MemcpyHtoDAsync)(CUdeviceptr, const void *, size_t, CUstream);
    CUresult (*MemcpyDtoHAsync)(void *, CUdeviceptr, size_t, CUstream);
    CUresult (*MemcpyAsync)(CUdeviceptr, CUdeviceptr, size_t, CUstream);
    CUresult (*MemsetD32Async)(CUdeviceptr, unsigned int, size_t, CUstream);
    CUresult (*StreamCreate)(CUstream *, unsigned int);
    CUresult (*StreamDestroy)(CUstream);
    CUresult (*StreamSynchronize)(CUstream);
    CUresult (*EventCreate)(CUevent *, unsigned int);
    CUresult (*EventDestroy)(CUevent);
    CUresult (*EventRecord)(CUevent, CUstream);
    CUresult (*EventQuery)(CUevent);
    CUresult (*EventSynchronize)(CUevent);
} alloy__cu_driver;

/* Opens the driver and fills every entry point; cuInit has run on success. On failure
 * returns ALLOY_ERR_NO_DEVICE with alloy__fail's text and leaves nothing open. */
alloy_status alloy__cu_driver_open(alloy__cu_driver *d);
void alloy__cu_driver_close(alloy__cu_driver *d);

/* "CUDA_ERROR_OUT_OF_MEMORY (out of memory)" or "CUDA error 999" when the driver cannot
 * name it; writes into buf and returns it. */
const char *alloy__cu_error_text(const alloy__cu_driver *d, CUresult r, char *buf, size_t cap);

/* 1 for errors that leave the context unusable (an illegal address in a kernel, ...):
 * every later call would fail the same way, so the device is lost. */
int alloy__cu_error_is_sticky(CUresult r);

#endif
