#include "util/gpu_info.h"

#include "util/dynamic_symbol.h"


#if defined(__unix__)
#include <dlfcn.h>
#endif

namespace sparselab::util {

namespace {

// The few NVML declarations needed (nvml.h, stable ABI of the _v2 entry points).
using NvmlDevice = struct NvmlDeviceOpaque*;
struct NvmlMemory {
    unsigned long long total, free, used;
};
struct NvmlUtilization {
    unsigned int gpu, memory;
};
using InitFn = int (*)();
using ShutdownFn = int (*)();
using CountFn = int (*)(unsigned int*);
using HandleFn = int (*)(unsigned int, NvmlDevice*);
using NameFn = int (*)(NvmlDevice, char*, unsigned int);
using MemoryFn = int (*)(NvmlDevice, NvmlMemory*);
using UtilizationFn = int (*)(NvmlDevice, NvmlUtilization*);

template <class Fn>
Fn symbol(void* library, const char* name)
{
    return dynamicFunction<Fn>(name, library);
}

} // namespace

GpuQuery queryGpus()
{
    GpuQuery out;
#if defined(__unix__)
    void* library = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        out.unavailableReason = "no NVIDIA driver (libnvidia-ml.so.1 not found)";
        return out;
    }
    const auto init = symbol<InitFn>(library, "nvmlInit_v2");
    const auto shutdown = symbol<ShutdownFn>(library, "nvmlShutdown");
    const auto count = symbol<CountFn>(library, "nvmlDeviceGetCount_v2");
    const auto handle = symbol<HandleFn>(library, "nvmlDeviceGetHandleByIndex_v2");
    const auto name = symbol<NameFn>(library, "nvmlDeviceGetName");
    const auto memory = symbol<MemoryFn>(library, "nvmlDeviceGetMemoryInfo");
    const auto utilization = symbol<UtilizationFn>(library, "nvmlDeviceGetUtilizationRates");
    if (!init || !shutdown || !count || !handle || !name || !memory) {
        out.unavailableReason = "libnvidia-ml.so.1 lacks the expected functions";
    } else if (init() != 0) {
        out.unavailableReason = "NVML could not be initialised (driver not loaded?)";
    } else {
        unsigned int n = 0;
        if (count(&n) == 0) {
            for (unsigned int i = 0; i < n; ++i) {
                NvmlDevice device = nullptr;
                if (handle(i, &device) != 0)
                    continue;
                GpuInfo info;
                info.index = int(i);
                char text[96] = {};
                if (name(device, text, sizeof text) == 0)
                    info.name = text;
                NvmlMemory mem{};
                if (memory(device, &mem) == 0) {
                    info.totalBytes = int64_t(mem.total);
                    info.freeBytes = int64_t(mem.free);
                }
                NvmlUtilization use{};
                if (utilization && utilization(device, &use) == 0) {
                    info.utilizationPercent = int(use.gpu);
                    info.memoryUtilizationPercent = int(use.memory);
                }
                out.gpus.push_back(info);
            }
        }
        if (out.gpus.empty())
            out.unavailableReason = "the NVIDIA driver reports no GPU";
        shutdown();
    }
    dlclose(library);
#else
    out.unavailableReason = "GPU query not supported on this platform";
#endif
    return out;
}

} // namespace sparselab::util
