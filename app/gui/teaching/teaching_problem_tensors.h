#pragma once
// The definition behind teaching_jobs.h's TeachingProblem (includes LibTorch: .cpp files only).

#include "teaching_jobs.h"

#include <torch/types.h>

namespace sparselab::gui {

struct TeachingProblem {
    QString name;            // e.g. "model.layers.0.self_attn.q_proj" or "synthetic 8×16, correlated ρ = 0.5"
    torch::Tensor weight;    // [rows, cols] float32 CPU
    torch::Tensor hessian;   // [cols, cols] float32 CPU
};

} // namespace sparselab::gui
