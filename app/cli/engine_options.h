#pragma once
// Command-line options that configure the engine, parsed the same way by every subcommand:
// --threads, --device and the solver options (solver_args.h). InputError names the option on
// bad values.

#include "cli_support.h"
#include "solver_args.h"
#include "data/calibration.h"
#include "recovery/recovery.h"
#include "solve/solver.h"

#include <c10/core/Device.h>

namespace sparselab::model { class CausalLM; struct ModelConfig; }

namespace sparselab::cli {

// --threads T (0 or absent = LibTorch's default until a model is loaded, see below).
void applyThreadsOption(const Args& args);

// Without --threads: the engine's default for this model (util/engine_threads.h: SparseLab's
// kernels on every core; the libraries' products on one thread below hidden size 1024, every
// core from there). Called once the model is loaded.
void applyDefaultThreads(const Args& args, const model::CausalLM& model);

// The calibration windows asked for, the same for prune, recover, plan and the analyses:
// --nsamples N (default 128), --seqlen L (default the smaller of 2048 and the model's
// positions), --seed K (default 0). A window longer than the model's positions is refused here,
// naming --seqlen, before anything is loaded. vocabSize is left 0 (the run sets it).
[[nodiscard]] data::CalibrationParams calibrationFromArgs(const Args& args, const model::ModelConfig& config);

// --device cpu|cuda (default cpu); cuda only when this build and machine have it.
[[nodiscard]] c10::Device deviceOption(const Args& args);

// The recovery options (--recover STEPS or --recover-epochs E, --recover-loss kl|block
// --recover-lr X --recover-schedule constant|cosine --recover-warmup N --recover-batch N
// --recover-seed K --recover-heldout N --recover-eval-every N --recover-patience N
// --recover-norms), validated. Epochs become steps: ⌈E · nsamples / batch⌉ (per block with the
// block loss). `stepsRequired`: one of the two must be given (the `recover` command).
[[nodiscard]] recovery::RecoveryParams recoveryParamsFromArgs(const Args& args, int64_t nsamples,
                                                              bool stepsRequired = false);

} // namespace sparselab::cli
