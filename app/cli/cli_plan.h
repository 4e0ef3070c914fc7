#pragma once
// The memory planner as the CLI uses it (memory/memory_plan.h): the estimate for a model folder
// and the run's options (--stream, --true-sequential, --device; GPU free memory via NVML), and
// its printout (a table, or one JSON object with --json).

#include "cli_support.h"
#include "memory/memory_plan.h"

#include <filesystem>

namespace sparselab::cli {

[[nodiscard]] memory::MemoryPlan planForArgs(const std::filesystem::path& folder, const Args& args, int64_t nsamples,
                                           int64_t seqlen);
void printPlan(const memory::MemoryPlan& plan, bool json);

} // namespace sparselab::cli
