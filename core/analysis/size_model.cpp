#include "analysis/size_model.h"

#include <cmath>

namespace sparselab::analysis {

int64_t linearLayerBytes(int64_t rows, int64_t cols, double sparsity, int bits, int64_t group)
{
    const int64_t n = rows * cols;
    const int64_t pruned = int64_t(std::llround(sparsity * double(n)));
    const int64_t kept = n - pruned;
    int64_t bytes = (kept * int64_t(bits) + 7) / 8;
    if (pruned > 0)
        bytes += (n + 7) / 8;
    if (bits < 16) {
        const int64_t groupsPerRow = group > 0 ? (cols + group - 1) / group : 1;
        bytes += 4 * rows * groupsPerRow;
    }
    return bytes;
}

} // namespace sparselab::analysis
