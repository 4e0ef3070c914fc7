// A streamed model on CUDA must exit cleanly (issue 14): every `prune --stream` on CUDA used to
// end in SIGSEGV (a jump to address 0 in the main thread) after its export and JSON were
// complete, while in-memory CUDA runs and streamed CPU runs exited 0. The crash is at process
// exit, so each case here is its own process (one CTest test per mode) whose exit status is
// the check. The modes take the streamed run apart, so that a crash names its ingredient:
//   pin-main     a pinned host tensor copied to the GPU with non_blocking, on the main thread;
//   pin-thread   the same, the pinned tensor made on a std::async thread (prefetchBlock's way);
//   cpu-thread   a std::async thread doing CPU work only, CUDA work on the main thread;
//   stream       the demo model loaded streamed on CUDA, every block materialized, prefetched
//                and finished as the pipeline does;
//   stream-noprefetch  the same without prefetchBlock (no staging thread);
//   memory       the demo model loaded in memory on CUDA.
// Exit 0 and "PASS <mode>" when the mode ran; 77 without a CUDA device.

#include "gpu_check.h"

#include "model/causal_lm.h"

#include <torch/cuda.h>
#include <torch/types.h>

#include <cstdio>
#include <future>
#include <string>
#include <vector>

namespace {

using namespace sparselab;

torch::Tensor stagedOnThread(bool pin)
{
    auto staged = std::async(std::launch::async, [pin] {
        torch::Tensor t = torch::arange(1 << 20, torch::kFloat);
        return pin ? t.pin_memory() : t;
    });
    return staged.get();
}

void copyToGpu(const torch::Tensor& host)
{
    const torch::Tensor device = host.to(torch::Device(torch::kCUDA), /*non_blocking=*/true);
    torch::cuda::synchronize();
    GPU_CHECK(device.sum().item<double>() == host.sum().item<double>(), "copy equals its source");
}

void walkModel(bool stream, bool prefetch)
{
    auto model = model::CausalLM::load(SPARSELAB_RESOURCES_DIR "/models/stories260K-hf",
                                       torch::Device(torch::kCUDA), stream);
    for (int64_t b = 0; b < model->numBlocks(); ++b) {
        model->materializeBlock(b);
        if (prefetch)
            model->prefetchBlock(b + 1);
        for (const auto* layer : model->allLinears())
            if (layer->block == b)
                GPU_CHECK(layer->weight.is_cuda(), layer->name + " is on the GPU while its block is in use");
        model->finishBlock(b);
    }
    torch::cuda::synchronize();
}

} // namespace

int main(int argc, char** argv)
{
    const std::string mode = argc > 1 ? argv[1] : "";
    const std::string suite = "gpu_stream_exit " + mode;
    if (!torch::cuda::is_available())
        return gputest::skip(suite.c_str(), "no CUDA device");
    if (mode == "pin-main")
        copyToGpu(torch::arange(1 << 20, torch::kFloat).pin_memory());
    else if (mode == "pin-thread")
        copyToGpu(stagedOnThread(/*pin=*/true));
    else if (mode == "cpu-thread")
        copyToGpu(stagedOnThread(/*pin=*/false));
    else if (mode == "stream")
        walkModel(/*stream=*/true, /*prefetch=*/true);
    else if (mode == "stream-noprefetch")
        walkModel(/*stream=*/true, /*prefetch=*/false);
    else if (mode == "memory")
        walkModel(/*stream=*/false, /*prefetch=*/false);
    else {
        std::printf("usage: gpu_stream_exit pin-main|pin-thread|cpu-thread|stream|stream-noprefetch|memory\n");
        return 2;
    }
    const int code = gputest::finish(suite.c_str());
    std::fflush(stdout); // the crash this guards against comes after main returns
    return code;
}
