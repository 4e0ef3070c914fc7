#pragma once
// NVIDIA GPUs present and their memory / utilisation, read through NVML
// (libnvidia-ml.so.1, shipped with the driver) loaded with dlopen at run time, so nothing
// links against it and machines without a driver simply report no GPUs (no LibTorch, no Qt).
// Thread-safe: each call opens a session of its own (nvmlInit/nvmlShutdown are refcounted).

#include <cstdint>
#include <string>
#include <vector>

namespace sparselab::util {

struct GpuInfo {
    int index = 0;
    std::string name;             // e.g. "NVIDIA H200"
    int64_t totalBytes = 0;
    int64_t freeBytes = 0;
    int utilizationPercent = -1;  // GPU busy over the last sample period; -1 when unknown
    int memoryUtilizationPercent = -1;
};

struct GpuQuery {
    std::vector<GpuInfo> gpus;
    std::string unavailableReason; // why the list is empty ("NVML not found", ...); empty otherwise
};

[[nodiscard]] GpuQuery queryGpus();

} // namespace sparselab::util
