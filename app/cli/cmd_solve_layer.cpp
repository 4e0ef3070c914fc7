// `solve-layer`: compress one linear layer given its weight and calibration inputs (or Hessian).
//
// Problem file (safetensors, F32 / F16 / BF16):
//   weight   [rows, cols]
//   hessian  [cols, cols]            H as accumulated (undamped), or
//   inputs   [tokens, cols]          the layer's inputs, accumulated as ONE calibration
//                                    sequence (H = 2·XᵀX), or [sequences, tokens, cols]
//                                    (H = (2/N)·Σ XᵀX over the N sequences), as the reference.
// Output file (written atomically): weight [rows, cols] F32, mask [rows, cols] U8 (1 = pruned),
// and the options and statistics in the metadata.

#include "commands.h"
#include "engine_options.h"

#include "io/safetensors.h"
#include "solve/solver.h"
#include "util/errors.h"

#include <torch/types.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <sstream>

namespace sparselab::cli {

namespace fs = std::filesystem;

namespace {

const char* const kUsage =
    "sparselab-cli solve-layer --problem IN.safetensors --out OUT.safetensors [--method sparsegpt|magnitude|wanda] "
    "[--sparsity S | --nm N:M] [--bits B [--group G] [--sym] [--act-order] [--static-groups] [--fp16-scale] [--signed-scale]] "
    "[--blocksize 128] [--damp 0.01] [--json]";

// A float32 tensor from a mapped view; InputError naming the file on another dtype or on NaN/Inf.
// F32 data is used in place when `inPlace` (read-only, valid while `file` is open: the inputs
// are only read, and a copy of a 128 MiB input cost 32 k page faults); otherwise it is copied
// (the weight is solved in place). The inputs skip the NaN/Inf pass here (`checkFinite` false):
// HessianAccumulator::add makes it before touching H, and its refusal is given the file's name.
torch::Tensor floatTensor(const io::SafetensorsFile& file, const std::string& name, bool inPlace = false,
                          bool checkFinite = true)
{
    const io::TensorView view = file.view(name);
    torch::ScalarType type;
    switch (view.dtype) {
    case io::DType::F32: type = torch::kFloat32; break;
    case io::DType::F16: type = torch::kFloat16; break;
    case io::DType::BF16: type = torch::kBFloat16; break;
    default:
        throw inputError(file.path(), "tensor '" + name + "' has dtype " + std::string(io::dtypeName(view.dtype))
                                          + "; expected F32, F16 or BF16");
    }
    auto t = torch::from_blob(const_cast<std::byte*>(view.data), view.shape, type);
    const bool aligned = reinterpret_cast<uintptr_t>(view.data) % alignof(float) == 0;
    if (view.dtype != io::DType::F32)
        t = t.to(torch::kFloat32);
    else if (!inPlace || !aligned)
        t = t.clone();
    if (checkFinite && !solve::allFinite(t))
        throw inputError(file.path(), "tensor '" + name + "' contains NaN or Inf");
    return t;
}

std::string shapeText(const torch::Tensor& t)
{
    std::string s = "[";
    for (int64_t i = 0; i < t.dim(); ++i)
        s += (i ? ", " : "") + std::to_string(t.size(i));
    return s + "]";
}

} // namespace

int cmdSolveLayer(const Args& args)
{
    args.requirePositional(0, kUsage);
    const auto problemArg = args.value("problem");
    const auto outArg = args.value("out");
    if (!problemArg)
        throw optionError("--problem", "required (usage: " + std::string(kUsage) + ")");
    if (!outArg)
        throw optionError("--out", "required (usage: " + std::string(kUsage) + ")");
    const fs::path problemPath = *problemArg;
    const fs::path outPath = *outArg;
    std::error_code ec;
    if (fs::exists(outPath, ec) && fs::equivalent(outPath, problemPath, ec))
        throw inputError(outPath, "is the problem file; refusing to overwrite an input");

    const solve::SolverOptions options = solverOptionsFromArgs(args, {});
    applyThreadsOption(args);
    const torch::Device device = deviceOption(args);
    const bool quiet = args.flag("quiet");

    torch::NoGradGuard noGrad;
    const auto file = io::SafetensorsFile::open(problemPath);
    if (!file.find("weight"))
        throw inputError(problemPath, "no tensor 'weight' [rows, cols]");
    auto weight = floatTensor(file, "weight");
    if (weight.dim() != 2 || weight.size(0) == 0 || weight.size(1) == 0)
        throw inputError(problemPath, "tensor 'weight' must be [rows, cols] with rows, cols > 0, got "
                                          + shapeText(weight));
    const int64_t rows = weight.size(0);
    const int64_t cols = weight.size(1);
    const bool haveHessian = file.find("hessian") != nullptr;
    const bool haveInputs = file.find("inputs") != nullptr;
    if (haveHessian == haveInputs)
        throw inputError(problemPath, haveHessian
                                          ? "holds both 'hessian' and 'inputs'; keep one"
                                          : "needs a tensor 'hessian' [cols, cols] or 'inputs' [tokens, cols]");
    options.validate(cols); // option errors before any heavy work

    weight = weight.to(device);
    torch::Tensor hessian;
    if (haveHessian) {
        hessian = floatTensor(file, "hessian");
        if (hessian.dim() != 2 || hessian.size(0) != cols || hessian.size(1) != cols)
            throw inputError(problemPath, "tensor 'hessian' must be [" + std::to_string(cols) + ", "
                                              + std::to_string(cols) + "] for a weight " + shapeText(weight)
                                              + ", got " + shapeText(hessian));
        hessian = hessian.to(device);
    } else {
        const auto inputs = floatTensor(file, "inputs", /*inPlace=*/device.is_cpu(), /*checkFinite=*/false);
        if ((inputs.dim() != 2 && inputs.dim() != 3) || inputs.size(-1) != cols)
            throw inputError(problemPath, "tensor 'inputs' must be [tokens, " + std::to_string(cols)
                                              + "] or [sequences, tokens, " + std::to_string(cols) + "], got "
                                              + shapeText(inputs));
        solve::HessianAccumulator accumulator(cols, device);
        try {
            accumulator.add(inputs); // refuses NaN/Inf inputs before any work
        } catch (const InputError& e) {
            throw inputError(problemPath, "tensor " + std::string(e.what())); // "tensor inputs: contains ..."
        }
        hessian = accumulator.hessian();
    }

    if (!quiet)
        std::fprintf(stderr, "solve-layer: %s [%lld, %lld] with %s\n", solve::methodName(options.method).c_str(),
                     static_cast<long long>(rows), static_cast<long long>(cols),
                     haveHessian ? "the given Hessian" : "a Hessian from the inputs");
    solve::LayerResult result;
    try {
        result = solve::solveLayer(weight, hessian, options, stderrProgress(quiet), &interruptToken());
    } catch (const InputError& e) {
        // Data problems (a Hessian that stays singular, ...) are about the problem file.
        const std::string message = e.what();
        if (message.rfind("--", 0) == 0)
            throw;
        throw inputError(problemPath, message);
    }
    const solve::LayerStats& stats = result.stats;
    if (stats.dampRaises > 0)
        std::fprintf(stderr, "warning: the Hessian was not positive definite; damping raised x10 %d time%s to %g\n",
                     stats.dampRaises, stats.dampRaises == 1 ? "" : "s", stats.dampUsed);

    const auto outWeight = weight.to(torch::kCPU, torch::kFloat32).contiguous();
    const auto outMask = result.mask.to(torch::kCPU, torch::kUInt8).contiguous();
    const std::vector<int64_t> shape{rows, cols};
    nlohmann::json json = {
        {"sparsity", stats.sparsity},
        {"loss", stats.loss},
        {"rel_output_error", stats.relOutputError},
        {"seconds", stats.seconds},
        {"damp_used", stats.dampUsed},
        {"damp_raises", stats.dampRaises},
        {"dead_inputs", stats.deadInputs},
    };
    nlohmann::json optionJson = {
        {"method", solve::methodName(options.method)},
        {"sparsity", options.structured() ? 0.0 : options.sparsity},
        {"nm", std::to_string(options.nmN) + ":" + std::to_string(options.nmM)},
        {"bits", options.quant.bits},
        {"group", options.quant.groupSize},
        {"sym", options.quant.symmetric},
        {"act_order", options.quant.actOrder},
        {"static_groups", options.quant.staticGroups},
        {"fp16_scale", options.quant.fp16Scale},
        {"signed_scale", options.quant.signedScale},
        {"blocksize", options.blocksize},
        {"damp", options.damp},
    };
    io::writeSafetensors(outPath,
                         {{"weight", io::DType::F32, shape, outWeight.data_ptr<float>(), size_t(outWeight.nbytes())},
                          {"mask", io::DType::U8, shape, outMask.data_ptr<uint8_t>(), size_t(outMask.nbytes())}},
                         {{"sparselab_version", SPARSELAB_VERSION},
                          {"options", optionJson.dump()},
                          {"stats", json.dump()}});
    if (!quiet)
        std::fprintf(stderr, "solve-layer: sparsity %.4f, loss %.6g, relative output error %.6g, %.2f s -> %s\n",
                     stats.sparsity, stats.loss, stats.relOutputError, stats.seconds, outPath.string().c_str());
    if (args.flag("json"))
        printJson(json);
    return 0;
}

} // namespace sparselab::cli
