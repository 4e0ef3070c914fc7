#pragma once
// Golden data of the solver tests (tests/data/solver, made by a transcription of the
// published SparseGPT / Wanda code — see tests/data/README.md): loading helpers.

#include "io/safetensors.h"
#include "solve/solver.h"
#include "testsupport.h"

#include <torch/types.h>

#include <algorithm>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace sparselab::testing {

inline std::filesystem::path solverDataDir() { return testDataDir() / "solver"; }

// Copies one F32 / U8 tensor out of the mapped file.
inline torch::Tensor loadTensor(const io::SafetensorsFile& file, const std::string& name)
{
    const io::TensorView view = file.view(name);
    torch::ScalarType type;
    switch (view.dtype) {
    case io::DType::F32: type = torch::kFloat32; break;
    case io::DType::U8: type = torch::kUInt8; break;
    default: throw std::runtime_error(name + ": unexpected dtype in golden file");
    }
    return torch::from_blob(const_cast<std::byte*>(view.data), view.shape, type).clone();
}

inline std::string metaValue(const io::SafetensorsFile& file, const std::string& key)
{
    const auto it = file.metadata().find(key);
    if (it == file.metadata().end())
        throw std::runtime_error(file.path().string() + ": no metadata '" + key + "'");
    return it->second;
}

// Options recorded in a case file's metadata (method, sparsity, nm "N:M", blocksize, damp,
// bits, group, sym, act_order, static_groups), with defaults for the keys a baseline case leaves out.
inline solve::SolverOptions caseOptions(const io::SafetensorsFile& file)
{
    const auto& meta = file.metadata();
    auto get = [&](const std::string& key, const std::string& fallback) {
        const auto it = meta.find(key);
        return it == meta.end() ? fallback : it->second;
    };
    solve::SolverOptions o;
    o.method = solve::parseMethod(get("method", "sparsegpt"));
    o.sparsity = std::stod(get("sparsity", "0.5"));
    const std::string nm = get("nm", "0:0");
    o.nmN = std::stoi(nm.substr(0, nm.find(':')));
    o.nmM = std::stoi(nm.substr(nm.find(':') + 1));
    o.blocksize = std::stoll(get("blocksize", "128"));
    o.damp = std::stod(get("damp", "0.01"));
    o.quant.bits = std::stoi(get("bits", "16"));
    o.quant.groupSize = std::stoll(get("group", "0"));
    o.quant.symmetric = get("sym", "0") == "1";
    o.quant.actOrder = get("act_order", "0") == "1";
    o.quant.staticGroups = get("static_groups", "0") == "1";
    return o;
}

// Case files of one method: "<prefix>*.safetensors" in solverDataDir(), sorted.
inline std::vector<std::filesystem::path> caseFiles(const std::string& prefix)
{
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(solverDataDir())) {
        const std::string name = entry.path().filename().string();
        if (name.rfind(prefix, 0) == 0 && entry.path().extension() == ".safetensors")
            files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    return files;
}

struct SolverProblem {
    torch::Tensor weight;  // [rows, cols] float32
    torch::Tensor hessian; // [cols, cols] float32
};

inline SolverProblem loadProblem(const std::string& id)
{
    const auto file = io::SafetensorsFile::open(solverDataDir() / ("problem_" + id + ".safetensors"));
    return {loadTensor(file, "weight"), loadTensor(file, "hessian")};
}

} // namespace sparselab::testing
