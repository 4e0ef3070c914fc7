#include "solve_layer.h"

#include "solver_args.h"

#include "io/safetensors.h"
#include "solve/cpu_solver.h"
#include "util/errors.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>

namespace sparselab::cli {

namespace fs = std::filesystem;

namespace {

const char* const kUsage =
    "sparselab-cli solve-layer --problem IN.safetensors --out OUT.safetensors [--method sparsegpt|magnitude|wanda|rtn] "
    "[--sparsity S | --nm N:M] [--bits B [--group G] [--sym] [--act-order] [--static-groups] [--fp16-scale] "
    "[--signed-scale]] [--blocksize 128] [--damp 0.01] [--threads T] [--device cpu|cuda] [--json] [--quiet]";

std::string shapeText(const std::vector<int64_t>& shape)
{
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i)
        s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

// A tensor's values as float32: F32 as they are, F16 and BF16 converted exactly. InputError
// naming the file on another dtype.
class FloatValues {
public:
    // Copies unless `inPlace`, F32 and aligned (then the mapped bytes are used: the inputs are
    // only read, and a copy of a 128 MiB input cost 32 k page faults).
    FloatValues(const io::SafetensorsFile& file, const std::string& name, bool inPlace)
    {
        const io::TensorView view = file.view(name);
        shape = view.shape;
        const int64_t n = view.numel();
        if (view.dtype == io::DType::F32 && inPlace && reinterpret_cast<uintptr_t>(view.data) % alignof(float) == 0) {
            m_data = reinterpret_cast<const float*>(view.data);
            m_size = n;
            return;
        }
        if (view.dtype != io::DType::F32 && view.dtype != io::DType::F16 && view.dtype != io::DType::BF16)
            throw inputError(file.path(), "tensor '" + name + "' has dtype " + std::string(io::dtypeName(view.dtype))
                                              + "; expected F32, F16 or BF16");
        m_owned = util::FloatBuffer(size_t(n));
        float* out = m_owned.data();
        switch (view.dtype) {
        case io::DType::F32:
            std::memcpy(out, view.data, size_t(n) * sizeof(float));
            break;
        case io::DType::F16:
            for (int64_t i = 0; i < n; ++i) {
                _Float16 h;
                std::memcpy(&h, view.data + 2 * i, 2);
                out[i] = float(h);
            }
            break;
        default: // BF16: the top half of a float32
            for (int64_t i = 0; i < n; ++i) {
                uint16_t b;
                std::memcpy(&b, view.data + 2 * i, 2);
                const uint32_t bits = uint32_t(b) << 16;
                std::memcpy(out + i, &bits, 4);
            }
            break;
        }
        m_data = out;
        m_size = n;
    }
    [[nodiscard]] const float* data() const { return m_data; }
    // Whether the values are the file's own bytes (read in place), not a converted copy.
    [[nodiscard]] bool isView() const { return m_owned.size() == 0; }
    [[nodiscard]] int64_t size() const { return m_size; }
    // The values as an owned buffer, for values read with inPlace false (they are a copy).
    [[nodiscard]] util::FloatBuffer take() { return std::move(m_owned); }
    std::vector<int64_t> shape;

private:
    const float* m_data = nullptr;
    int64_t m_size = 0;
    util::FloatBuffer m_owned;
};

} // namespace

Args solveLayerArgs(const std::vector<std::string>& argv)
{
    return Args("solve-layer", argv,
                {"problem", "out", "method", "sparsity", "nm", "bits", "group", "blocksize", "damp", "threads",
                 "device"},
                {"sym", "act-order", "static-groups", "fp16-scale", "signed-scale", "json", "quiet"});
}

int runSolveLayer(const Args& args, const solve::SolverOptions& options, LayerSolver& solver)
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
    const int64_t threadsOption = args.intOr("threads", 0, 0, 1024);
    // The O(n) passes' threads (the kernels' count, which does not depend on the layer's width).
    const int passThreads = threadsOption > 0 ? int(threadsOption) : defaultEngineThreads(0).kernels;
    const bool quiet = args.flag("quiet");

    const auto file = io::SafetensorsFile::open(problemPath);
    if (!file.find("weight"))
        throw inputError(problemPath, "no tensor 'weight' [rows, cols]");
    LayerProblem problem;
    {
        // Aligned float32 in the file: the working copy is made, and checked, in one pass on the
        // kernel threads, and the mapped values stay the dense W the statistics read. Otherwise
        // the values are converted into the working buffer and checked there.
        FloatValues weight(file, "weight", /*inPlace=*/true);
        if (weight.shape.size() != 2 || weight.shape[0] == 0 || weight.shape[1] == 0)
            throw inputError(problemPath, "tensor 'weight' must be [rows, cols] with rows, cols > 0, got "
                                              + shapeText(weight.shape));
        problem.rows = weight.shape[0];
        problem.cols = weight.shape[1];
        bool finite = true;
        if (weight.isView()) {
            problem.weight = util::FloatBuffer(size_t(weight.size()));
            finite = solve::cpu::copyAllFinite(weight.data(), weight.size(), problem.weight.data(), passThreads);
            problem.denseWeight = weight.data();
        } else {
            finite = solve::cpu::allFinite(weight.data(), weight.size(), passThreads);
            problem.weight = weight.take();
        }
        if (!finite)
            throw inputError(problemPath, "tensor 'weight' contains NaN or Inf");
    }
    const int64_t rows = problem.rows;
    const int64_t cols = problem.cols;
    const std::vector<int64_t> weightShape{rows, cols};
    const bool haveHessian = file.find("hessian") != nullptr;
    const bool haveInputs = file.find("inputs") != nullptr;
    if (haveHessian == haveInputs)
        throw inputError(problemPath, haveHessian
                                          ? "holds both 'hessian' and 'inputs'; keep one"
                                          : "needs a tensor 'hessian' [cols, cols] or 'inputs' [tokens, cols]");
    options.validate(cols); // option errors before any heavy work
    const EngineThreads threads =
        threadsOption > 0 ? EngineThreads::uniform(int(threadsOption)) : defaultEngineThreads(cols);
    solver.setThreads(threads);

    std::optional<FloatValues> inputs; // keeps converted inputs alive for the solver
    if (haveHessian) {
        FloatValues hessian(file, "hessian", /*inPlace=*/false);
        if (!solve::cpu::allFinite(hessian.data(), hessian.size(), passThreads))
            throw inputError(problemPath, "tensor 'hessian' contains NaN or Inf");
        if (hessian.shape.size() != 2 || hessian.shape[0] != cols || hessian.shape[1] != cols)
            throw inputError(problemPath, "tensor 'hessian' must be [" + std::to_string(cols) + ", "
                                              + std::to_string(cols) + "] for a weight " + shapeText(weightShape)
                                              + ", got " + shapeText(hessian.shape));
        problem.hessian = hessian.take();
    } else {
        inputs.emplace(file, "inputs", /*inPlace=*/true);
        const auto& shape = inputs->shape;
        if ((shape.size() != 2 && shape.size() != 3) || shape.back() != cols)
            throw inputError(problemPath, "tensor 'inputs' must be [tokens, " + std::to_string(cols)
                                              + "] or [sequences, tokens, " + std::to_string(cols) + "], got "
                                              + shapeText(shape));
        const std::string nonFiniteInputs = "tensor inputs: contains non-finite values (NaN or Inf)";
        problem.sequences = shape.size() == 3 ? shape[0] : 1;
        problem.tokens = shape.size() == 3 ? shape[1] : shape[0];
        if (solver.accumulatesInputs()) {
            if (!solve::cpu::allFinite(inputs->data(), inputs->size(), passThreads)) // before any work
                throw inputError(problemPath, nonFiniteInputs);
            problem.inputs = inputs->data();
        } else {
            // H = (2/N)·XᵀX over the N sequences' tokens, as HessianAccumulator::add on the CPU.
            // ssyrk with beta 0 writes the whole upper triangle without reading it.
            problem.hessian = util::FloatBuffer(size_t(cols * cols));
            if (problem.sequences > 0 && problem.tokens > 0)
                solve::cpu::rankUpdateUpper(problem.hessian.data(), cols, inputs->data(),
                                            problem.sequences * problem.tokens, 0.0f,
                                            float(2.0 / double(problem.sequences)));
            else
                std::fill(problem.hessian.data(), problem.hessian.data() + cols * cols, 0.0f);
            solve::cpu::mirrorUpperToLower(problem.hessian.data(), cols, passThreads);
            // The inputs are not scanned for NaN and Inf before this: every input x[t, j] enters
            // H[j, j] = (2/N)·Σ x[t, j]², so H is finite only if all of them are, and checking H
            // (cols² values) replaces a pass over tokens × cols of them. Only when H is not
            // finite are the inputs scanned, to say which problem it is. (The inputs are mapped,
            // so the scan's page faults now fall on ssyrk: the whole process measured the same at
            // 2048 columns and 8192 tokens, 2.11 → 2.02 s at 4096, within its spread.)
            if (!solve::cpu::allFinite(problem.hessian.data(), problem.hessian.size(), passThreads)) {
                if (!solve::cpu::allFinite(inputs->data(), inputs->size(), passThreads))
                    throw inputError(problemPath, nonFiniteInputs);
                throw inputError(problemPath, "tensor inputs: too large: their Hessian X^T X overflows float32");
            }
        }
    }

    if (!quiet)
        std::fprintf(stderr, "solve-layer: %s [%lld, %lld] with %s\n", solve::methodName(options.method).c_str(),
                     static_cast<long long>(rows), static_cast<long long>(cols),
                     haveHessian ? "the given Hessian" : "a Hessian from the inputs");
    util::ByteBuffer mask;
    solve::LayerStats stats;
    try {
        stats = solver.solve(problem, options, mask, stderrProgress(quiet), &interruptToken());
    } catch (const InputError& e) {
        // Data problems (a Hessian that stays singular, ...) are about the problem file.
        const std::string message = e.what();
        if (message.rfind("--", 0) == 0)
            throw;
        throw inputError(problemPath, message);
    }
    // H (Hinv's storage on the CPU) is dead now. Handing its pages back before the output is
    // written lets the kernel fill the file's page cache from memory this process just used.
    // On the project's virtual machines the host backs fresh memory on first touch, and the
    // 80 MiB write of a 4096² result took 0.2–0.3 s when it got fresh pages, 0.06 s with H's:
    // whole process 2.31 → 2.11 s in one set of interleaved pairs, unchanged in another where
    // fresh pages were cheap (bench/bench_solve_layer_process_ab.sh, bench/results/HISTORY.md).
    problem.hessian = util::FloatBuffer();
    if (stats.dampRaises > 0)
        std::fprintf(stderr, "warning: the Hessian was not positive definite; damping raised x10 %d time%s to %g\n",
                     stats.dampRaises, stats.dampRaises == 1 ? "" : "s", stats.dampUsed);

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
                         {{"weight", io::DType::F32, weightShape, problem.weight.data(),
                           problem.weight.size() * sizeof(float)},
                          {"mask", io::DType::U8, weightShape, mask.data(), mask.size()}},
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

bool CpuLayerSolver::handles(const solve::SolverOptions& options, const Args& args)
{
    return options.method == solve::Method::SparseGpt && !options.quant.enabled()
        && args.valueOr("device", "cpu") == "cpu" && solve::cpu::available();
}

void CpuLayerSolver::setThreads(EngineThreads threads)
{
    m_threads = std::max(1, threads.kernels);
    setBlasThreads(threads.libraries);
}

solve::LayerStats CpuLayerSolver::solve(LayerProblem& problem, const solve::SolverOptions& options,
                                        util::ByteBuffer& mask, const ProgressCallback& progress,
                                        const CancelToken* cancel)
{
    static_assert(sizeof(bool) == sizeof(uint8_t));
    mask = util::ByteBuffer(size_t(problem.rows * problem.cols)); // uncleared: the solve fills every entry
    return solve::cpu::solveSparseGpt(problem.weight.data(), problem.rows, problem.cols, problem.hessian.data(),
                                      options, reinterpret_cast<bool*>(mask.data()), m_threads, progress, cancel,
                                      problem.denseWeight);
}

} // namespace sparselab::cli
