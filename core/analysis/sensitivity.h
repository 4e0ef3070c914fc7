#pragma once
// Sensitivity scan: how much each linear layer suffers at each sparsity level and bit-width.
//
// The model is run block by block over the calibration windows exactly as the prune pipeline
// runs it, but always through the *dense* blocks (the scan changes nothing). For every linear
// layer one Hessian is accumulated and factorised once (solve::factorHessian: dead inputs,
// damping, upper Cholesky factor of H⁻¹); then the layer is solved from a fresh copy of its
// dense weight at every (sparsity, bits) level of the grid with that shared factor, and the
// reconstruction error of each level is recorded:
//     absError = tr(ΔW H ΔWᵀ)   (= mean over calibration sequences of 2·‖X Wᵀ − X Ŵᵀ‖²_F)
//     relError = absError / tr(W H Wᵀ)   (LayerStats::relOutputError)
// Levels with sparsity 0 and bits 16 are the dense layer (error 0) and are not solved.
// Progress: stage "sensitivity", one unit per (layer, level) solved; cancel is checked between
// windows, layers and levels and inside solves.
//
// Results serialise to JSON (save/load, atomic write):
//   {"format": "sparselab-sensitivity", "version": 1,
//    "model": {"folder": …, "sha256": {file: hash}}, "calibration": {"file", "sha256", "nsamples",
//    "seqlen", "seed"}, "method": "sparsegpt", "damp": 0.01, "blocksize": 128, "group": 0,
//    "sym": false, "sparsities": [..], "bits": [..], "fixed_parameters": P, "seconds": s,
//    "layers": [{"name", "kind", "block", "rows", "cols", "output_energy" (= tr(W H Wᵀ)),
//                "factor_seconds", "damp_used", "dead_inputs",
//                "cells": [{"sparsity", "bits", "achieved_sparsity", "rel_error", "abs_error",
//                           "seconds"}, …]  (sparsity-major: cells[i·|bits| + j])}, …]}

#include "data/calibration.h"
#include "solve/solver.h"
#include "util/progress.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace sparselab::model { class CausalLM; }

namespace sparselab::analysis {

struct SensitivityParams {
    std::vector<double> sparsities{0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9}; // each in [0, 1)
    std::vector<int> bits{16};           // each 2..8 or 16
    solve::SolverOptions base;           // method, damp, blocksize, group, sym (sparsity/bits ignored)
    std::vector<std::string> layerFilter; // globs over module names; empty = all linear layers
    int64_t forwardBatch = 8;            // windows per block forward pass
    // Optional: every level's weight as the scan makes it — the solved copy, or for the 0 % /
    // 16-bit level the dense weight (which may share the model's storage) — with the index its layer will have in
    // SensitivityResult::layers and the level's indices into `sparsities` and `bits`. The
    // weight is [rows, cols] float32 and is not used by the scan afterwards (keep it). The
    // allocation search builds its database of per-layer variants from it (allocation/search.h).
    std::function<void(size_t layer, size_t sparsityIndex, size_t bitsIndex, const torch::Tensor& weight)> onVariant;
};

struct SensitivityCell {
    double sparsity = 0.0;          // asked
    int bits = 16;
    double achievedSparsity = 0.0;  // exact zeros / weights after the solve
    double relError = 0.0;          // tr(ΔW H ΔWᵀ) / tr(W H Wᵀ)
    double absError = 0.0;          // tr(ΔW H ΔWᵀ)
    double seconds = 0.0;
};

struct SensitivityLayer {
    std::string name;               // module name, e.g. "model.layers.0.mlp.down_proj"
    std::string kind;               // e.g. "mlp.down_proj"
    int64_t block = 0;
    int64_t rows = 0, cols = 0;
    double outputEnergy = 0.0;      // tr(W H Wᵀ) of the dense weight
    double factorSeconds = 0.0;     // the one factorisation of this layer's Hessian
    double dampUsed = 0.0;
    int64_t deadInputs = 0;
    std::vector<SensitivityCell> cells; // sparsity-major: cells[i * bits.size() + j]
};

struct SensitivityResult {
    std::vector<double> sparsities;
    std::vector<int> bits;
    solve::SolverOptions base;
    std::vector<SensitivityLayer> layers;
    int64_t fixedParameters = 0;    // parameters outside the scanned layers (priced at fp16)
    double seconds = 0.0;
    int64_t factorizations = 0;     // Hessian factorisations done (one per scanned layer)
    // Provenance filled by front ends: {"model": …, "calibration": …} (free-form objects).
    nlohmann::json provenance = nlohmann::json::object();

    [[nodiscard]] const SensitivityCell& cell(size_t layer, size_t sparsityIndex, size_t bitsIndex) const;
    [[nodiscard]] nlohmann::json toJson() const;
    // InputError naming `source` on a malformed document.
    static SensitivityResult fromJson(const nlohmann::json& json, const std::string& source);
    static SensitivityResult load(const std::filesystem::path& file);
    void save(const std::filesystem::path& file) const; // atomic
};

// Validates the grid (InputError naming the option: "--sparsities", "--bits", "--layers").
void validateSensitivityParams(const model::CausalLM& model, const SensitivityParams& params);

// Runs the scan. `model` is not modified (each level solves a copy of the dense weight).
// A streamed model (CausalLM::load with streamBlocks) is scanned through the non-const
// overload, which pages each block in for its pass and out after it (BlockWalker leaves
// paging to its caller), so one block's weights are resident; the result is the in-memory
// scan's.
[[nodiscard]] SensitivityResult scanSensitivity(const model::CausalLM& model, const data::CalibrationWindows& windows,
                                                const SensitivityParams& params, const Watch& watch = {});
[[nodiscard]] SensitivityResult scanSensitivity(model::CausalLM& model, const data::CalibrationWindows& windows,
                                                const SensitivityParams& params, const Watch& watch = {});

} // namespace sparselab::analysis
