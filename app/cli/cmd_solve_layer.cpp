// `solve-layer` in the engine (solve_layer.h has the command and the problem file's format):
// every method, quantization and device, through the LibTorch solvers (solve/solver.h).

#include "commands.h"
#include "engine_options.h"
#include "solve_layer.h"

#include "solve/solver.h"

#include <torch/types.h>

#include <cstring>

namespace sparselab::cli {

namespace {

// The engine's solver: solve::solveLayer on `device`, the Hessian accumulated there when the
// device is not the CPU (on the CPU the command accumulates it, with the same functions as
// HessianAccumulator).
class TorchLayerSolver final : public LayerSolver {
public:
    explicit TorchLayerSolver(torch::Device device) : m_device(device) {}

    void setThreads(EngineThreads threads) override { setEngineThreads(threads); }

    [[nodiscard]] bool accumulatesInputs() const override { return !m_device.is_cpu(); }

    [[nodiscard]] solve::LayerStats solve(LayerProblem& problem, const solve::SolverOptions& options,
                                          util::ByteBuffer& mask, const ProgressCallback& progress,
                                          const CancelToken* cancel) override
    {
        torch::NoGradGuard noGrad;
        const int64_t rows = problem.rows;
        const int64_t cols = problem.cols;
        const auto weightOnCpu = torch::from_blob(problem.weight.data(), {rows, cols}, torch::kFloat);
        auto weight = weightOnCpu.to(m_device); // the same storage on the CPU: solved in place
        torch::Tensor hessian;
        if (problem.inputs) {
            const auto inputs = torch::from_blob(const_cast<float*>(problem.inputs),
                                                 {problem.sequences, problem.tokens, cols}, torch::kFloat);
            solve::HessianAccumulator accumulator(cols, m_device);
            accumulator.add(inputs);
            hessian = accumulator.hessian();
        } else {
            hessian = torch::from_blob(problem.hessian.data(), {cols, cols}, torch::kFloat).to(m_device);
        }
        const solve::LayerResult result = solve::solveLayer(weight, hessian, options, progress, cancel);
        if (!m_device.is_cpu())
            weightOnCpu.copy_(weight.to(torch::kCPU));
        const auto maskOnCpu = result.mask.to(torch::kCPU, torch::kUInt8).contiguous();
        mask = util::ByteBuffer(size_t(maskOnCpu.numel()));
        if (mask.size() > 0)
            std::memcpy(mask.data(), maskOnCpu.data_ptr<uint8_t>(), mask.size());
        return result.stats;
    }

private:
    torch::Device m_device;
};

} // namespace

int cmdSolveLayer(const Args& args)
{
    const solve::SolverOptions options = solverOptionsFromArgs(args, {});
    TorchLayerSolver solver(deviceOption(args));
    return runSolveLayer(args, options, solver);
}

} // namespace sparselab::cli
