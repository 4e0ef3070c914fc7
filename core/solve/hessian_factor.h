#pragma once
// One factorisation of a layer's Hessian, shared by several SparseGPT solves of the same layer
// (a sensitivity scan solves every layer at many sparsity levels and bit-widths; the
// cols³ factorisation is the same for all of them and is done once).
//
//   auto factor = solve::factorHessian(h, 0.01);             // dead inputs, damping, Hinv
//   for (const auto& options : levels) {                      // options.damp must be 0.01
//       torch::Tensor w = dense.clone();
//       auto r = solve::solveLayerWithFactor(w, h, factor, options);  // == solveLayer(w, h, options)
//   }
//
// The results are identical to solveLayer's (same preamble, same order of operations): the
// factor holds exactly what solveLayer would compute before its column loop.

#include "solve/solver.h"

#include <torch/types.h>

namespace sparselab::solve {

struct HessianFactor {
    torch::Tensor hinv;        // [cols, cols] float32: upper Cholesky factor of H_d⁻¹, H_d = H with
                               // dead diagonal entries set to 1 and damping added (on H's device)
    torch::Tensor dead;        // [cols] bool: H[j,j] == 0 (those columns of W are zeroed by the solve)
    int64_t deadInputs = 0;    // count of `dead`
    double dampRequested = 0.0; // relative damping asked for (must equal SolverOptions::damp)
    double dampUsed = 0.0;     // relative damping finally used (raised ×10 while Cholesky failed)
    int dampRaises = 0;
    double dampAbsolute = 0.0; // amount added to the diagonal: dampUsed · mean(diag H_dead-fixed)
};

// Factorises `hessian` [cols, cols] float32 (undamped, as accumulated; not modified) with
// relative damping `damp`, raising it as solveLayer does. InputError when H stays singular
// or holds non-finite values; CancelledError when cancelled.
[[nodiscard]] HessianFactor factorHessian(const torch::Tensor& hessian, double damp,
                                          const CancelToken* cancel = nullptr);

// solveLayer with the factorisation given. For Method::SparseGpt `factor` must come from
// factorHessian(hessian, options.damp) (std::invalid_argument otherwise); the baselines do not
// use it. Statistics are those of solveLayer (dampUsed/dampRaises/deadInputs from the factor);
// denseOutputEnergy as for solveLayer.
[[nodiscard]] LayerResult solveLayerWithFactor(torch::Tensor& weight, const torch::Tensor& hessian,
                                               const HessianFactor& factor, const SolverOptions& options,
                                               const ProgressCallback& progress = {},
                                               const CancelToken* cancel = nullptr,
                                               double denseOutputEnergy = -1.0);

} // namespace sparselab::solve
