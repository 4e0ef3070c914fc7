// `plan`: the memory planner's estimate for a prune run (host and GPU), and whether it fits;
// also used by `prune`, which refuses (exit 2) before loading anything when it does not fit,
// and prints the plan and stops with --dry-run.

#include "cli_plan.h"
#include "engine_options.h"
#include "commands.h"

#include "memory/memory_plan.h"
#include "util/errors.h"
#include "util/gpu_info.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>

namespace sparselab::cli {

memory::MemoryPlan planForArgs(const std::filesystem::path& folder, const Args& args, int64_t nsamples,
                             int64_t seqlen)
{
    memory::MemoryPlanInput in = memory::describeModelFolder(folder);
    in.nsamples = nsamples;
    in.seqlen = seqlen;
    in.streamed = args.flag("stream");
    in.trueSequential = args.flag("true-sequential");
    in.cuda = args.valueOr("device", "cpu") == "cuda";
    if (args.value("recover") || args.value("recover-epochs"))
        in.recoveryLoss = args.valueOr("recover-loss", "kl") == "block" ? 2 : 1;
    in.recoveryBatch = args.intOr("recover-batch", in.recoveryBatch, 1, 1 << 20);
    in.hostAvailableBytes = memory::hostAvailableMemory();
    std::string gpuNote;
    if (in.cuda) {
        const auto gpus = util::queryGpus();
        if (!gpus.gpus.empty())
            in.deviceAvailableBytes = gpus.gpus.front().freeBytes;
        else
            gpuNote = gpus.unavailableReason;
    }
    auto p = memory::planMemory(in);
    if (!gpuNote.empty())
        p.items.push_back({"gpu", true, 0, "free memory unknown, not checked: " + gpuNote});
    return p;
}

void printPlan(const memory::MemoryPlan& p, bool json)
{
    if (json) {
        nlohmann::json items = nlohmann::json::array();
        for (const auto& item : p.items)
            items.push_back({{"what", item.what}, {"where", item.onDevice ? "gpu" : "host"}, {"bytes", item.bytes},
                             {"detail", item.detail}});
        printJson({{"host_bytes", p.hostBytes},
                   {"gpu_bytes", p.deviceBytes},
                   {"host_available_bytes", p.hostAvailableBytes},
                   {"gpu_available_bytes", p.deviceAvailableBytes},
                   {"fits", p.fits()},
                   {"refusal", p.refusal()},
                   {"items", items}});
        return;
    }
    std::printf("memory plan (estimate):\n");
    for (const auto& item : p.items)
        std::printf("  %-12s %-5s %10s  %s\n", item.what.c_str(), item.onDevice ? "gpu" : "host",
                    memory::formatBytes(item.bytes).c_str(), item.detail.c_str());
    std::printf("  total host %s (available %s)", memory::formatBytes(p.hostBytes).c_str(),
                memory::formatBytes(p.hostAvailableBytes).c_str());
    if (p.deviceBytes > 0)
        std::printf(", gpu %s (free %s)", memory::formatBytes(p.deviceBytes).c_str(),
                    memory::formatBytes(p.deviceAvailableBytes).c_str());
    std::printf("\n  %s\n", p.fits() ? "fits" : ("does not fit: " + p.refusal()).c_str());
}

int cmdPlan(const Args& args)
{
    args.requirePositional(1, "sparselab-cli plan MODEL [--nsamples N] [--seqlen N] [--device cpu|cuda] "
                              "[--stream] [--true-sequential] [--json]");
    const std::filesystem::path folder = args.positional().front();
    const auto config = model::ModelConfig::load(folder);
    // The plan of a run that prune would refuse is no plan: the same options and checks as prune's.
    const data::CalibrationParams calibration = calibrationFromArgs(args, config);
    const auto p = planForArgs(folder, args, calibration.nsamples, calibration.seqlen);
    printPlan(p, args.flag("json"));
    if (!p.fits()) {
        std::fprintf(stderr, "error: %s: %s\n", folder.c_str(), p.refusal().c_str());
        return 2;
    }
    return 0;
}

} // namespace sparselab::cli
