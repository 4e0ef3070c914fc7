#pragma once
// Shared by the core tests that train or analyse a whole model: the bundled 2-block Llama test
// model (tests/data/models/hf-llama, see tests/data/README.md) and seeded random windows of
// token ids for it.

#include "data/calibration.h"

#include <cstdint>
#include <filesystem>
#include <random>

namespace sparselab::testing {

inline std::filesystem::path tinyLlama()
{
    return std::filesystem::path(SPARSELAB_TEST_DATA_DIR) / "models" / "hf-llama";
}

// `count` windows of `seqlen` random token ids below `vocab` (mt19937 seeded with `seed`),
// laid end to end (offsets 0, seqlen, 2·seqlen, …).
inline data::CalibrationWindows randomWindows(int64_t count, int64_t seqlen, int64_t vocab, uint32_t seed)
{
    std::mt19937 random(seed);
    data::CalibrationWindows w;
    w.nsamples = count;
    w.seqlen = seqlen;
    for (int64_t i = 0; i < count; ++i) {
        w.offsets.push_back(i * seqlen);
        for (int64_t t = 0; t < seqlen; ++t)
            w.ids.push_back(int64_t(random() % uint32_t(vocab)));
    }
    return w;
}

} // namespace sparselab::testing
