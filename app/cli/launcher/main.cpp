// sparselab-cli — the headless front end as users run it. It loads no LibTorch: a SparseGPT
// `solve-layer` on the CPU without quantization runs here (solve_layer.h, solve/cpu_solver.h),
// and every other command, option or device is handed to the engine, sparselab-cli-engine
// (app/cli/main.cpp), which replaces this process (execv: same arguments, environment, process
// id and exit code).
//
// Why two programs: loading Debian's LibTorch (libtorch_cpu and its ≈ 280 libraries) takes
// 0.65 s on the project's 2-core EPYC before main runs — more than the whole solve of a
// 2048 × 2048 layer from 8192 tokens. A command that needs none of it should not wait for it.

#include "solve_layer.h"
#include "solver_args.h"

#include "util/cpu_kernels.h"
#include "util/engine_threads.h"

#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

// The engine: beside this program (the build tree), else where the installation puts it
// relative to this program (<bin>/../lib/sparselab, so that a package is relocatable), else
// at the configured install path.
std::string enginePath()
{
    char self[PATH_MAX];
    const ssize_t length = ::readlink("/proc/self/exe", self, sizeof self - 1);
    if (length > 0) {
        self[length] = '\0';
        const fs::path bin = fs::path(self).parent_path();
        for (const fs::path& candidate : {bin / "sparselab-cli-engine", bin.parent_path() / SPARSELAB_ENGINE_RELATIVE_PATH})
            if (::access(candidate.c_str(), X_OK) == 0)
                return candidate.string();
    }
    return SPARSELAB_ENGINE_INSTALL_PATH;
}

[[noreturn]] void runEngine(char** argv)
{
    const std::string engine = enginePath();
    ::execv(engine.c_str(), argv);
    std::fprintf(stderr, "internal error: cannot start the engine %s: %s\n", engine.c_str(), std::strerror(errno));
    std::exit(1);
}

} // namespace

int main(int argc, char** argv)
{
    using namespace sparselab;
    using namespace sparselab::cli;

    if (argc < 2 || std::strcmp(argv[1], "solve-layer") != 0)
        runEngine(argv);
    // Options the CPU solver cannot take, and any that do not parse, go to the engine, which
    // answers them as it answers every command.
    std::optional<Args> args;
    solve::SolverOptions options;
    try {
        args.emplace(solveLayerArgs(std::vector<std::string>(argv + 2, argv + argc)));
        options = solverOptionsFromArgs(*args, {});
    } catch (const std::exception&) {
        runEngine(argv);
    }
    if (!CpuLayerSolver::handles(options, *args))
        runEngine(argv);

    util::matchKernelsToCpu(argv); // may start the program again
    shortenBlasSpinWait();         // while no other thread exists
    installInterruptHandler();
    CpuLayerSolver solver;
    return exitCodeOf([&] { return runSolveLayer(*args, options, solver); });
}
