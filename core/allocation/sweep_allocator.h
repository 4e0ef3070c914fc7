#pragma once
// The allocation axis of a sweep (pipeline/sweep.h): the per-layer plan of an "owl" or "search"
// point, made from the dense model and the sweep's calibration windows.
//
// Work is shared across points: OWL's outlier ratios do not depend on the target sparsity, so
// one pass over the model serves every OWL point (each point applies owlSparsities at its own
// S); a search is run once per sparsity level and reused by every point at that level (the
// search picks levels from SparseGPT variants at 16 bits; a point's method and bits then solve
// those levels through the real pipeline, so a 4-bit or Wanda point gets the same per-layer
// sparsities as the 16-bit SparseGPT point). The point that does the work reports its seconds.
//
// The budget holds as for `allocate`: OWL's average over blocks is exactly S (every block has
// the same weights in the group), the search's weighted average over all linear layers is S.

#include "allocation/owl.h"
#include "allocation/search.h"
#include "analysis/sweep.h"

#include <nlohmann/json.hpp>

namespace sparselab::allocation {

struct SweepAllocationParams {
    OwlParams owl;        // targetSparsity is set per point
    SearchParams search;  // targetSparsity and base are set per point (a sparsity budget)
    // The settings a sweep records (and merge compares) for the allocations the grid uses.
    [[nodiscard]] nlohmann::json toJson(const analysis::SweepGrid& grid) const;
};

// Every point of `indices` that its allocation can take with these parameters (OWL's band
// inside [0, 1), the search's levels within its maximum), before any work: an InputError
// naming the point and the option otherwise.
void validateSweepAllocations(const analysis::SweepGrid& grid, const std::vector<int64_t>& indices,
                              const SweepAllocationParams& params);

// The allocator for runSweepPoints. `dense` and `windows` are referenced, not copied: they must
// outlive the sweep. Not thread-safe (a sweep runs its points one after another).
[[nodiscard]] analysis::SweepAllocator sweepAllocator(const model::CausalLM& dense,
                                                      const data::CalibrationWindows& windows,
                                                      const SweepAllocationParams& params);

} // namespace sparselab::allocation
