// SparseLab's forward pass on CUDA against transformers' own logits (issue 14, fidelity):
// every tests/data/models/hf-* folder (scripts/make_hf_goldens.py: small random Llama,
// Mistral, Qwen2 with attention bias, GPT-2, OPT pre- and post-LN, saved by save_pretrained,
// with golden_logits.safetensors from transformers' eager forward on the CPU in float32) is
// loaded on the CPU and on CUDA; both logits must be within 1e-4 (absolute) of the golden.
// The CPU half is also tests/core/model/test_hf_logits.cpp, which CI runs. float32, TF32 off.
// Skips (exit 77) without a CUDA device, or when no hf-* folder is present.

#include "gpu_check.h"

#include "io/safetensors.h"
#include "model/causal_lm.h"

#include <ATen/Context.h>
#include <torch/cuda.h>
#include <torch/types.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

namespace {

using namespace sparselab;
namespace fs = std::filesystem;

torch::Tensor load(const io::SafetensorsFile& file, const std::string& name, torch::Dtype dtype)
{
    const auto view = file.view(name);
    return torch::from_blob(const_cast<std::byte*>(view.data), view.shape, dtype).clone();
}

double maxAbsDiff(const torch::Tensor& a, const torch::Tensor& b)
{
    return (a.to(torch::kCPU).to(torch::kFloat64) - b.to(torch::kCPU).to(torch::kFloat64)).abs().max().item<double>();
}

} // namespace

int main()
{
    const char* suite = "gpu_hf_logits";
    if (!torch::cuda::is_available())
        return gputest::skip(suite, "LibTorch sees no CUDA device (CPU-only LibTorch or no GPU/driver)");
    torch::NoGradGuard noGrad;
    at::globalContext().setAllowTF32CuBLAS(false);
    std::vector<fs::path> folders;
    for (const auto& entry : fs::directory_iterator(fs::path(SPARSELAB_TEST_DATA_DIR) / "models"))
        if (entry.path().filename().string().rfind("hf-", 0) == 0
            && fs::exists(entry.path() / "golden_logits.safetensors"))
            folders.push_back(entry.path());
    if (folders.empty())
        return gputest::skip(suite, "no tests/data/models/hf-* folders (scripts/make_hf_goldens.py makes them)");
    std::sort(folders.begin(), folders.end());
    for (const auto& folder : folders) {
        const std::string name = folder.filename().string();
        try {
            const auto golden = io::SafetensorsFile::open(folder / "golden_logits.safetensors");
            const auto ids = load(golden, "ids", torch::kInt64);
            const auto expected = load(golden, "logits", torch::kFloat32);
            const auto cpu = model::CausalLM::load(folder, torch::kCPU)->logits(ids);
            const auto gpu = model::CausalLM::load(folder, torch::kCUDA)->logits(ids.to(torch::kCUDA));
            const double cpuDiff = maxAbsDiff(cpu, expected);
            const double gpuDiff = maxAbsDiff(gpu, expected);
            std::printf("  %-16s logits %s: max|cpu - transformers| %.3g, max|cuda - transformers| %.3g, "
                        "max|cuda - cpu| %.3g, golden std %.3g\n",
                        name.c_str(), torch::str(expected.sizes()).c_str(), cpuDiff, gpuDiff, maxAbsDiff(gpu, cpu),
                        expected.std().item<double>());
            GPU_CHECK(cpuDiff <= 1e-4, name + ": CPU logits beyond 1e-4 of transformers'");
            GPU_CHECK(gpuDiff <= 1e-4, name + ": CUDA logits beyond 1e-4 of transformers'");
        } catch (const std::exception& e) {
            std::printf("  %-16s error: %s\n", name.c_str(), e.what());
            GPU_CHECK(false, name + ": " + e.what());
        }
    }
    return gputest::finish(suite);
}
