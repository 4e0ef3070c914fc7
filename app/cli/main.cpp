// sparselab-cli-engine — every command of the headless front end. Users run sparselab-cli
// (app/cli/launcher/main.cpp), which solves CPU SparseGPT layers itself without loading
// LibTorch and starts this program (execv, same arguments) for everything else; it also runs
// directly, as the tests do. Parses the subcommand and hands over to commands.h; maps
// InputError to exit 2, CancelledError to exit 130 with a message, any other exception to
// exit 1.

#include "commands.h"
#include "commands_analysis.h"
#include "cli_workspace.h"
#include "commands_export.h"
#include "solve_layer.h"

#include "util/cpu_kernels.h"
#include "util/engine_threads.h"
#include "util/errors.h"
#include "util/memory_policy.h"

#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace {

const char* const kUsage = R"(sparselab-cli — one-shot SparseGPT compression of language models

usage: sparselab-cli <command> [options]

commands:
  info MODEL                      architecture, layers, parameters, dtype, tokenizer
  eval MODEL --text FILE          perplexity (SparseGPT reference protocol)
       [--seqlen N] [--max-windows K] [--batch B] [--threads T] [--json]
  solve-layer --problem IN.safetensors --out OUT.safetensors
       [--method sparsegpt|magnitude|wanda|rtn] [--sparsity S | --nm N:M]
       [--bits B [--group G] [--sym [--signed-scale]] [--act-order] [--static-groups]
        [--fp16-scale]]
       [--blocksize 128] [--damp 0.01] [--threads T] [--device cpu|cuda] [--json]
  prune MODEL --calib FILE --out OUT_DIR [--method M] [--sparsity S | --nm N:M]
       [--bits B [--group G] [--sym [--signed-scale]] [--act-order] [--static-groups]
        [--fp16-scale]]
       [--nsamples 128] [--seqlen 2048] [--seed 0] [--layers SPEC]
       [--recipe R.json] [--true-sequential] [--eval FILE [--eval-windows K]]
       [--workspace W.h5] [--name LABEL] [--json]
       [--device cpu|cuda] [--stream] [--dry-run] [--hessian-dtype fp32|bf16]
       [--recover STEPS | --recover-epochs E] [--recover-loss kl|block] [--recover-lr 2e-3]
        [--recover-schedule cosine|constant] [--recover-warmup N] [--recover-batch 8]
        [--recover-seed K] [--recover-heldout 16] [--recover-eval-every N]
        [--recover-patience N] [--recover-norms]
                                  --eval-windows K: perplexity on the first K windows;
                                  --name: the run's name (sparselab.json, workspace);
                                  --workspace: record the run in W.h5 and resume an
                                  interrupted prune from its last finished block;
                                  --stream: one decoder block in memory at a time;
                                  refuses (exit 2) when the memory plan does not fit;
                                  --dry-run: print the memory plan and stop;
                                  --hessian-dtype bf16: opt-in bfloat16 Hessians (GPU
                                  speed), deviation from float32 reported for block 0
                                  --recover: distil the pruned model from the dense one
                                  (pruned weights stay zero; docs/recovery.md)
  recover PRUNED_DIR --dense MODEL --calib FILE --out OUT_DIR --recover STEPS
       [--nsamples 128] [--seqlen N] [--seed 0] [--eval FILE [--eval-windows K]]
       [recovery options as for prune] [--device cpu|cuda] [--json]
                                  recovery for a model pruned earlier (a prune export)
  workspace W.h5 [--json]         list the model, settings and runs recorded in a workspace
  plan MODEL [--nsamples N] [--seqlen N] [--device cpu|cuda] [--stream] [--true-sequential]
       [--recover STEPS [--recover-loss kl|block] [--recover-batch N]] [--json]
                                  memory a prune run needs (host and GPU); exit 2 if it does not fit
  export MODEL --gguf OUT.gguf [--type f32|f16|q8_0|q4_0] [--name NAME] [--json]
                                  write a GGUF file (llama.cpp) of a Llama-family model
  sensitivity MODEL --calib FILE --out S.json|W.h5 [--sparsities 0,0.1,…,0.9] [--bits 16,4]
       [--method M] [--nsamples N] [--seqlen N] [--layers GLOBS] [--name NAME] [--stream] [--json]
                                  per-layer reconstruction error at every level (one Hessian each);
                                  --stream: one decoder block in memory at a time
  allocate S.json|W.h5 (--budget-sparsity S | --budget-bytes B) --out RECIPE.json
       [--bits B] [--metric relative|absolute|kind-normalized] [--max-sparsity X]
       [--compare MODEL --calib FILE --eval FILE …]   per-layer plan under a budget, vs uniform
  allocate MODEL --method owl --calib FILE --budget-sparsity S --out RECIPE.json
       [--owl-lambda 0.08] [--owl-m 5] [--nsamples 128] [--seqlen N] [--seed 0]
       [--eval FILE]                 OWL's per-block sparsities (average exactly S);
                                     --eval: prune uniform and OWL and compare perplexity
  allocate MODEL --method search --calib FILE (--budget-sparsity S | --budget-bytes B [--bits 16,8,4])
       --out RECIPE.json
       [--generations 200] [--offspring 16] [--survivors 4] [--fitness-windows 32]
       [--level-step 0.05] [--levels 6] [--max-sparsity 0.95] [--time-limit SEC]
       [--search-seed K] [--eval FILE]  per-layer levels by an evolutionary search on the
                                     whole model's KL (average exactly S); --eval: compare
                                     uniform, OWL (DP with bytes) and the search on held-out text
  sweep MODEL --calib FILE --eval FILE --out R.json|W.h5 [--sparsities L] [--bits L]
       [--methods L] [--groups all,attention,mlp] [--allocations uniform,owl,search]
       [--shard i/N] [--name NAME] [--json]  (owl/search take allocate's options)
                                  prune + perplexity at every grid point (a shard of them)
  merge A.json|A.h5 B.json|B.h5 … --out M.json|M.h5 [--from NAME] [--name NAME]
                                  join sweep shards (results files or workspaces)
  report W.h5 [--run ID] [--compressed DIR] [--sweep-name N] [--scan-name N] [--html OUT.html]
       [--pdf OUT.pdf]             the report of a workspace run (model hashes verified)
  report --dense MODEL --compressed DIR [--html OUT.html] [--pdf OUT.pdf] [--eval FILE]
       [--seqlen N] [--max-windows K] [--prompts FILE] [--new-tokens N]
       [--sweep R.json] [--sensitivity S.json] [--json]
                                  hand-over report: summary, provenance, layers, plots, KL, continuations
  help                            this text
  version                         the version, and the BLAS kernels engine arithmetic runs on

MODEL is a Hugging Face style folder (config.json, *.safetensors, tokenizer files) or a
Llama .gguf file (F32/F16/Q8_0/Q4_0 tensors).
--bits 2..8 quantizes (GPTQ with sparsegpt, round to nearest with rtn/magnitude/wanda);
--sparsity 0 --bits B is plain GPTQ. --fp16-scale rounds scales to float16 (lossless Q4_0 /
Q8_0 export with --bits 4|8 --sym --group 32); --signed-scale scales a symmetric group by its
largest-magnitude value as llama.cpp's Q4_0 does (finer than GPTQ's 2·max/(2^B−1)).
Without MODEL/--text, info and eval use the bundled demo model and text.
Exit codes: 0 success, 2 bad input or usage, 1 internal failure, 130 cancelled (Ctrl-C).
)";

} // namespace

int main(int argc, char** argv)
{
    using namespace sparselab;
    using namespace sparselab::cli;

    const std::map<std::string, std::function<int(const std::vector<std::string>&)>> commands = {
        {"info", [](const auto& a) { return cmdInfo(Args("info", a, {"threads"}, {"json"})); }},
        {"eval", [](const auto& a) {
             return cmdEval(Args("eval", a, {"text", "seqlen", "max-windows", "batch", "threads", "device"},
                                 {"json", "quiet"}));
         }},
        {"solve-layer", [](const auto& a) { return cmdSolveLayer(solveLayerArgs(a)); }},
        {"export", [](const auto& a) {
             return cmdExport(Args("export", a, {"gguf", "type", "name", "threads"}, {"json", "quiet"}));
         }},
        {"sensitivity", [](const auto& a) {
             return cmdSensitivity(Args("sensitivity", a,
                                        {"calib", "out", "sparsities", "bits", "method", "group", "blocksize", "damp",
                                         "nsamples", "seqlen", "seed", "layers", "threads", "device", "workspace", "name"},
                                        {"sym", "json", "quiet", "stream"}));
         }},
        {"allocate", [](const auto& a) {
             return cmdAllocate(Args("allocate", a,
                                     {"out", "budget-sparsity", "budget-bytes", "bits", "metric", "max-sparsity",
                                      "method", "owl-lambda", "owl-m", "generations", "offspring", "survivors",
                                      "max-mutations", "fitness-windows", "level-step", "levels", "time-limit",
                                      "search-seed",
                                      "resolution", "compare", "calib", "eval", "nsamples", "seqlen", "seed",
                                      "max-windows", "threads", "device", "name"},
                                     {"json", "quiet"}));
         }},
        {"sweep", [](const auto& a) {
             return cmdSweep(Args("sweep", a,
                                  {"calib", "eval", "out", "sparsities", "bits", "methods", "groups", "allocations",
                                   "shard", "group", "blocksize", "damp", "nsamples", "seqlen", "seed", "max-windows",
                                   "threads", "device", "workspace", "name", "owl-lambda", "owl-m", "generations",
                                   "offspring", "survivors", "max-mutations", "fitness-windows", "level-step", "levels",
                                   "max-sparsity", "time-limit", "search-seed"},
                                  {"sym", "true-sequential", "json", "quiet"}));
         }},
        {"merge", [](const auto& a) { return cmdMerge(Args("merge", a, {"out", "workspace", "name", "from"}, {"json", "quiet"})); }},
        {"report", [](const auto& a) {
             return cmdReport(Args("report", a,
                                   {"dense", "compressed", "html", "pdf", "eval", "seqlen", "max-windows", "prompts",
                                    "new-tokens", "sweep", "sensitivity", "threads", "run", "sweep-name", "scan-name"},
                                   {"json", "quiet"}));
         }},
        {"workspace", [](const auto& a) { return cmdWorkspace(Args("workspace", a, {}, {"json"})); }},
        {"plan", [](const auto& a) {
             return cmdPlan(Args("plan", a, {"nsamples", "seqlen", "device", "recover", "recover-epochs", "recover-loss",
                                             "recover-batch"},
                                 {"stream", "true-sequential", "json"}));
         }},
        {"prune", [](const auto& a) {
             std::set<std::string> values = {"calib", "out", "method", "sparsity", "nm", "bits", "group", "nsamples",
                                             "seqlen", "seed", "layers", "recipe", "eval", "blocksize", "damp",
                                             "threads", "device", "workspace", "hessian-dtype", "eval-windows", "name"};
             for (const auto& name : recoveryOptionNames())
                 values.insert(name);
             return cmdPrune(Args("prune", a, values,
                                  {"sym", "act-order", "static-groups", "fp16-scale", "signed-scale", "true-sequential",
                                   "stream", "dry-run", "json", "quiet", "recover-norms"}));
         }},
        {"recover", [](const auto& a) {
             std::set<std::string> values = {"dense", "calib", "out", "nsamples", "seqlen", "seed", "eval",
                                             "eval-windows", "threads", "device"};
             for (const auto& name : recoveryOptionNames())
                 values.insert(name);
             return cmdRecover(Args("recover", a, values, {"json", "quiet", "recover-norms"}));
         }},
    };

    if (argc < 2) {
        // A usage mistake like any other: one error line (last, as everywhere), not a page.
        std::fputs("usage: sparselab-cli COMMAND [ARGS…]   (commands: sparselab-cli help)\n", stderr);
        std::fputs("error: no command given\n", stderr);
        return 2;
    }
    if (std::strcmp(argv[1], "help") == 0 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
        std::fputs(kUsage, stdout);
        return 0;
    }
    sparselab::util::matchKernelsToCpu(argv); // may start the program again, first thing after `help`
    sparselab::shortenBlasSpinWait();         // while no other thread exists
    if (std::strcmp(argv[1], "version") == 0 || std::strcmp(argv[1], "--version") == 0) {
        std::printf("sparselab-cli %s\n", SPARSELAB_VERSION);
        if (const std::string blas = sparselab::util::blasKernelsNote(); !blas.empty())
            std::printf("BLAS: %s\n", blas.c_str());
        std::printf("CPU kernels: %s\n", sparselab::util::cpuKernelsProvenance().c_str());
        return 0;
    }
    const auto command = commands.find(argv[1]);
    if (command == commands.end()) {
        std::fprintf(stderr, "error: unknown command '%s' (try 'sparselab-cli help')\n", argv[1]);
        return 2;
    }

    installInterruptHandler();
    reuseFreedMemory();
    return exitCodeOf([&] { return command->second(std::vector<std::string>(argv + 2, argv + argc)); });
}
