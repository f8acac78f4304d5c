/* Opening the CUDA driver: dlopen, cuInit, and the entry points through cuGetProcAddress
 * (ABI of CUDA 12.0, which every driver since accepts), into the caller's table. */
#include "driver.h"

#include "../core/internal.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#define ALLOY_CU_ABI 12000 /* cuGetProcAddress picks each entry point's 12.0 version */

typedef CUresult (*alloy__cu_get_proc)(const char *, void **, int, cuuint64_t,
                                       CUdriverProcAddressQueryResult *);
typedef CUresult (*alloy__cu_init)(unsigned int);

/* Where each entry point goes in the table (const: it lands in .data.rel.ro). */
typedef struct entry {
    const char *name;
    size_t offset;
} entry;

#define E(field)                                                                                   \
    {                                                                                              \
        "cu" #field, offsetof(alloy__cu_driver, field)                                             \
    }
static const entry entries[] = {
    E(GetErrorName),
    E(GetErrorString),
    E(DriverGetVersion),
    E(DeviceGetCount),
    E(DeviceGet),
    E(DeviceGetName),
    E(DeviceGetAttribute),
    E(DevicePrimaryCtxRetain),
    E(DevicePrimaryCtxRelease),
    E(CtxPushCurrent),
    E(CtxPopCurrent),
    E(ModuleLoadData),
    E(ModuleUnload),
    E(ModuleGetFunction),
    E(FuncSetAttribute),
    E(LaunchKernel),
    E(LaunchKernelEx),
    E(MemAlloc),
    E(MemFree),
    E(MemHostAlloc),
    E(MemFreeHost),
    E(MemHostRegister),
    E(MemHostUnregister),
    E(MemHostGetDevicePointer),
    E(PointerGetAttribute),
    E(MemcpyHtoDAsync),
    E(MemcpyDtoHAsync),
    E(MemcpyAsync),
    E(MemsetD32Async),
    E(StreamCreate),
    E(StreamDestroy),
    E(StreamSynchronize),
    E(EventCreate),
    E(EventDestroy),
    E(EventRecord),
    E(EventQuery),
    E(EventSynchronize),
};
#undef E

alloy_status alloy__cu_driver_open(alloy__cu_driver *d)
{
    static const char fn[] = "alloy_device_open";
    memset(d, 0, sizeof *d);
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *why = dlerror();
        return alloy__fail(ALLOY_ERR_NO_DEVICE,
                           "%s: no CUDA driver: cannot load libcuda.so.1 (%s); install the "
                           "NVIDIA driver or use the CPU backend",
                           fn, why ? why : "not found");
    }
    /* dlsym returns object pointers; POSIX guarantees they convert to function pointers. */
    void *p_init = dlsym(lib, "cuInit");
    void *p_proc = dlsym(lib, "cuGetProcAddress_v2");
    if (!p_init || !p_proc) {
        dlclose(lib);
        return alloy__fail(ALLOY_ERR_NO_DEVICE,
                           "%s: the CUDA driver is too old: libcuda.so.1 lacks %s (alloy needs a "
                           "driver for CUDA 12.0 or newer)",
                           fn, p_init ? "cuGetProcAddress_v2" : "cuInit");
    }
    alloy__cu_init init;
    alloy__cu_get_proc get_proc;
    memcpy(&init, &p_init, sizeof init);
    memcpy(&get_proc, &p_proc, sizeof get_proc);
    CUresult r = init(0);
    if (r != CUDA_SUCCESS) {
        dlclose(lib);
        return alloy__fail(ALLOY_ERR_NO_DEVICE,
                           "%s: cuInit failed with CUDA error %d (no usable GPU, or the driver "
                           "and kernel module do not match)",
                           fn, (int)r);
    }
    d->Init = init;
    for (size_t i = 0; i < sizeof entries / sizeof entries[0]; i++) {
        void *p = NULL;
        CUdriverProcAddressQueryResult q = CU_GET_PROC_ADDRESS_SUCCESS;
        r = get_proc(entries[i].name, &p, ALLOY_CU_ABI, CU_GET_PROC_ADDRESS_DEFAULT, &q);
        if (r != CUDA_SUCCESS || !p || q != CU_GET_PROC_ADDRESS_SUCCESS) {
            dlclose(lib);
            memset(d, 0, sizeof *d);
            return alloy__fail(ALLOY_ERR_NO_DEVICE,
                               "%s: the CUDA driver has no %s for CUDA 12.0 (error %d, query "
                               "result %d); update the NVIDIA driver",
                               fn, entries[i].name, (int)r, (int)q);
        }
        memcpy((char *)d + entries[i].offset, &p, sizeof p);
    }
    d->lib = lib;
    return ALLOY_OK;
}

void alloy__cu_driver_close(alloy__cu_driver *d)
{
    if (d->lib)
        dlclose(d->lib);
    memset(d, 0, sizeof *d);
}

const char *alloy__cu_error_text(const alloy__cu_driver *d, CUresult r, char *buf, size_t cap)
{
    const char *name = NULL, *text = NULL;
    if (!d->GetErrorName || d->GetErrorName(r, &name) != CUDA_SUCCESS)
        name = NULL;
    if (!d->GetErrorString || d->GetErrorString(r, &text) != CUDA_SUCCESS)
        text = NULL;
    if (name && text)
        snprintf(buf, cap, "%s (%s)", name, text);
    else
        snprintf(buf, cap, "CUDA error %d", (int)r);
    return buf;
}

int alloy__cu_error_is_sticky(CUresult r)
{
    switch (r) {
    case CUDA_ERROR_ECC_UNCORRECTABLE:
    case CUDA_ERROR_ILLEGAL_ADDRESS:
    case CUDA_ERROR_LAUNCH_TIMEOUT:
    case CUDA_ERROR_CONTEXT_IS_DESTROYED:
    case CUDA_ERROR_ASSERT:
    case CUDA_ERROR_HARDWARE_STACK_ERROR:
    case CUDA_ERROR_ILLEGAL_INSTRUCTION:
    case CUDA_ERROR_MISALIGNED_ADDRESS:
    case CUDA_ERROR_INVALID_ADDRESS_SPACE:
    case CUDA_ERROR_INVALID_PC:
    case CUDA_ERROR_LAUNCH_FAILED:
    case CUDA_ERROR_DEINITIALIZED: return 1;
    default: return 0;
    }
}
