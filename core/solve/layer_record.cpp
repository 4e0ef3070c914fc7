#include "solve/layer_record.h"

namespace sparselab::solve {

SolverOptions recordedOptions(const SolverOptions& options, bool dense)
{
    SolverOptions recorded = options;
    if (dense) {
        recorded.method = Method::SparseGpt;
        recorded.sparsity = 0.0;
        recorded.nmN = 0;
        recorded.nmM = 0;
        recorded.quant = QuantOptions{};
    } else if (recorded.structured()) {
        recorded.sparsity = double(recorded.nmN) / double(recorded.nmM);
    }
    return recorded;
}

} // namespace sparselab::solve
