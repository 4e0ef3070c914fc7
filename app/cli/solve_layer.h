#pragma once
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
//
// The command itself — reading and checking the problem, the Hessian from the inputs on the
// CPU, threads, writing the result — is plain C++ (no LibTorch) and shared by two solvers:
// the CPU-only front end's (`sparselab-cli` solves SparseGPT without quantization on the CPU
// itself, cpu_solver.h, in a process that never loads LibTorch) and the engine's
// (`sparselab-cli-engine`, every method and device). Both give the same bytes for what both
// can do (tests/cli/test_cli_solve_layer.cpp compares them).

#include "cli_support.h"

#include "solve/solver_options.h"
#include "util/engine_threads.h"
#include "util/large_buffer.h"

#include <cstdint>
#include <filesystem>
#include <vector>

namespace sparselab::cli {

// The options `solve-layer` accepts.
[[nodiscard]] Args solveLayerArgs(const std::vector<std::string>& argv);

// One layer's problem, read and checked, in float32.
struct LayerProblem {
    int64_t rows = 0;
    int64_t cols = 0;
    util::FloatBuffer weight;   // [rows, cols] row-major; the solver leaves the result here
    // The dense weight as the file holds it, when that is aligned float32 (the mapped bytes,
    // valid while the command runs; checked finite), for the solver's statistics; else null.
    const float* denseWeight = nullptr;
    // [cols, cols] row-major: the file's Hessian, or the one accumulated from its inputs
    // (empty when the solver accumulates it itself, see LayerSolver::accumulatesInputs). The
    // CPU solver uses it as Hinv's storage: after solve() only its diagonal and strict upper
    // triangle still hold H (cpu::solveSparseGpt).
    util::FloatBuffer hessian;
    // The inputs [sequences · tokens, cols] row-major, valid while the command runs, when the
    // solver accumulates the Hessian itself (null otherwise).
    const float* inputs = nullptr;
    int64_t sequences = 0;      // N of H = (2/N)·Σ XᵀX (1 for a [tokens, cols] tensor)
    int64_t tokens = 0;         // per sequence
};

// The solving step of `solve-layer`.
class LayerSolver {
public:
    virtual ~LayerSolver() = default;
    // Uses `threads` from now on (the user's --threads, or defaultEngineThreads(cols)).
    virtual void setThreads(EngineThreads threads) = 0;
    // True when the solver wants the inputs rather than the Hessian (it accumulates H on its
    // device); the command then leaves LayerProblem::hessian empty.
    [[nodiscard]] virtual bool accumulatesInputs() const = 0;
    // Solves `problem.weight` in place with `options` (validated for problem.cols), setting
    // `mask` to [rows·cols] bytes (1 = pruned); returns the statistics. problem.hessian may be
    // overwritten (see LayerProblem). InputError on data problems (a Hessian that stays
    // singular), CancelledError when cancelled.
    [[nodiscard]] virtual solve::LayerStats solve(LayerProblem& problem, const solve::SolverOptions& options,
                                                  util::ByteBuffer& mask, const ProgressCallback& progress,
                                                  const CancelToken* cancel) = 0;
};

// The command with `solver`: returns the exit code (0), throws InputError / CancelledError as
// the other commands do.
int runSolveLayer(const Args& args, const solve::SolverOptions& options, LayerSolver& solver);

// The CPU-only solver (cpu_solver.h): SparseGPT without quantization.
class CpuLayerSolver final : public LayerSolver {
public:
    // Whether it can do what `options` and the --device given ask for.
    [[nodiscard]] static bool handles(const solve::SolverOptions& options, const Args& args);
    void setThreads(EngineThreads threads) override;
    [[nodiscard]] bool accumulatesInputs() const override { return false; }
    [[nodiscard]] solve::LayerStats solve(LayerProblem& problem, const solve::SolverOptions& options,
                                          util::ByteBuffer& mask, const ProgressCallback& progress,
                                          const CancelToken* cancel) override;

private:
    int m_threads = 1;
};

} // namespace sparselab::cli
