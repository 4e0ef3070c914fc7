#pragma once
// What a layer solve is asked (SolverOptions, QuantOptions) and what it reports (LayerStats):
// plain values without LibTorch, so that records of runs (solve/layer_record.h), the workspace
// store and the workbench's views carry them without the tensor headers. solve/solver.h
// documents what each method does with them.

#include <cstdint>
#include <string>
#include <utility>

namespace sparselab::solve {

enum class Method { SparseGpt, Magnitude, Wanda, Rtn };

[[nodiscard]] std::string methodName(Method method);           // "sparsegpt", "magnitude", "wanda", "rtn"
[[nodiscard]] Method parseMethod(const std::string& name);      // InputError on unknown names
// Parses "N:M" (N < M, both >= 1); InputError naming `option` otherwise.
[[nodiscard]] std::pair<int, int> parseNm(const std::string& text, const std::string& option);

struct QuantOptions {
    int bits = 16;             // 2..8 quantizes; 16 = no quantization
    int64_t groupSize = 0;     // 0 = per row; else columns per group (GPTQ)
    bool symmetric = false;    // symmetric grid, zero = (maxq+1)/2
    bool actOrder = false;     // GPTQ act-order (SparseGpt only)
    bool staticGroups = false; // group grids up front from the whole W (SparseGpt, groupSize > 0)
    // Round every scale to the nearest float16 before it is used (and the asymmetric zero is
    // derived from the rounded scale), so that the grid is exactly representable by formats
    // with fp16 scales: 4-bit symmetric groups of 32 = GGUF Q4_0, 8-bit = Q8_0. Departs from
    // the reference only in that rounding.
    bool fp16Scale = false;
    // Symmetric grids only: scale = −x_e / 2^(bits−1) with x_e the group's value of largest
    // magnitude, sign kept (ties: the positive one), as llama.cpp's Q4_0 quantizer scales its
    // blocks: x_e lies exactly on the grid and the step is max|x| / 2^(bits−1) instead of the
    // reference's 2·max|x| / (2^bits − 1) (0.125 vs 0.133 of max|x| at 4 bits); the scale may
    // be negative. Not in the reference.
    bool signedScale = false;
    [[nodiscard]] bool enabled() const { return bits < 16; }
    bool operator==(const QuantOptions&) const = default;
};

struct SolverOptions {
    Method method = Method::SparseGpt;
    double sparsity = 0.5;     // fraction pruned, [0, 1); ignored when nmM > 0
    int nmN = 0;               // N:M — N zeros in every M consecutive inputs of a row
    int nmM = 0;               // 0 = unstructured
    int64_t blocksize = 128;   // SparseGPT column block (M must divide it)
    double damp = 0.01;        // relative damping: H += damp·mean(diag H)·I
    QuantOptions quant;
    // Validates ranges; InputError naming the option on failure.
    void validate(int64_t cols) const;
    [[nodiscard]] bool structured() const { return nmM > 0; }
    bool operator==(const SolverOptions&) const = default;
};

struct LayerStats {
    double sparsity = 0.0;           // achieved fraction of exact zeros in W
    double loss = 0.0;               // SparseGPT OBS loss Σ (w−q)²/Hinv1[i,i]²/2 (0 for baselines)
    double relOutputError = 0.0;     // ‖XWᵀ − XŴᵀ‖² / ‖XWᵀ‖² on the calibration inputs
    double dampUsed = 0.0;           // relative damping finally used
    int dampRaises = 0;              // times damping was raised (×10) for Cholesky to succeed
    int64_t deadInputs = 0;          // columns with H[j,j] == 0
    double seconds = 0.0;
    bool operator==(const LayerStats&) const = default;
};

} // namespace sparselab::solve
