// `export`: a Llama model (folder or .gguf) → a GGUF file (F32, F16, Q8_0 or Q4_0) that
// llama.cpp loads. The heavy lifting is exporting::exportGguf; this file only parses options,
// protects the inputs and reports.

#include "commands_export.h"
#include "engine_options.h"

#include "export/gguf_export.h"
#include "io/gguf_import.h"
#include "model/causal_lm.h"
#include "util/errors.h"

#include <torch/types.h>

#include <chrono>
#include <cstdio>

namespace sparselab::cli {

namespace fs = std::filesystem;

namespace {

// True when writing `out` would replace `input` or a file inside the `input` folder.
bool replacesInput(const fs::path& out, const fs::path& input)
{
    std::error_code ec;
    if (!fs::exists(out, ec))
        return false;
    if (fs::equivalent(out, input, ec))
        return true;
    if (fs::is_directory(input, ec)) {
        const fs::path parent = fs::absolute(out).parent_path();
        return fs::exists(parent, ec) && fs::equivalent(parent, input, ec);
    }
    return false;
}

} // namespace

int cmdExport(const Args& args)
{
    const std::string usage = "sparselab-cli export MODEL --gguf OUT.gguf [--type f32|f16|q8_0|q4_0] [--json]";
    args.requirePositional(1, usage);
    const fs::path modelPath = args.positional().front();
    if (!args.value("gguf"))
        throw optionError("--gguf", "is required (the GGUF file to write)");
    const fs::path out = *args.value("gguf");
    const std::string typeName = args.valueOr("type", "f16");
    const auto type = io::parseGgufFileType(typeName);
    if (!type)
        throw optionError("--type", "expects f32, f16, q8_0 or q4_0, got '" + typeName + "'");
    applyThreadsOption(args);
    const bool quiet = args.flag("quiet");

    // Cheap checks first: never replace an input, and fail before loading anything.
    std::error_code ec;
    if (!fs::exists(modelPath, ec))
        throw inputError(modelPath, "not found");
    if (replacesInput(out, modelPath))
        throw inputError(out, "is (or is inside) the input model; choose another output path");
    if (fs::is_directory(out, ec))
        throw inputError(out, "is a folder; --gguf names the file to write");
    if (out.has_parent_path() && !fs::is_directory(out.parent_path(), ec))
        throw inputError(out, "its folder does not exist");

    const auto start = std::chrono::steady_clock::now();
    torch::NoGradGuard noGrad;
    const fs::path folder = io::resolveModelPath(modelPath);
    const auto model = model::CausalLM::load(folder);
    applyDefaultThreads(args, *model);

    exporting::GgufExportParams params;
    params.type = *type;
    params.name = args.valueOr("name", io::isGgufFile(modelPath) ? modelPath.stem().string() : std::string());
    params.grids = exporting::gridsFromProvenance(*model, *type);
    if (!quiet && !params.grids.empty())
        std::fprintf(stderr, "export: %zu quantized layers packed losslessly from their fp16 grids (sparselab.json)\n",
                     params.grids.size());
    const auto summary = exporting::exportGguf(*model, out, params, stderrProgress(quiet), &interruptToken());
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    nlohmann::json types = nlohmann::json::object();
    std::string typeText;
    for (const auto& [name, count] : summary.tensorTypes) {
        types[name] = count;
        typeText += (typeText.empty() ? "" : ", ") + std::to_string(count) + " " + name;
    }
    if (!quiet)
        std::fprintf(stderr, "wrote %s: %lld tensors (%s), %llu bytes\n", out.c_str(), (long long)summary.tensors,
                     typeText.c_str(), (unsigned long long)summary.bytes);
    if (args.flag("json"))
        printJson({{"gguf", fs::absolute(out).string()},
                   {"model", fs::absolute(modelPath).string()},
                   {"type", std::string(io::ggufFileTypeName(*type))},
                   {"tensors", summary.tensors},
                   {"tensor_types", types},
                   {"lossless_grids", params.grids.size()},
                   {"bytes", summary.bytes},
                   {"seconds", seconds}});
    return 0;
}

} // namespace sparselab::cli
