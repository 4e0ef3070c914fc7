#pragma once
// Calibration windows, drawn exactly as the SparseGPT reference's datautils does:
//     random.seed(seed); for each sample: i = random.randint(0, len(ids) - seqlen - 1)
// with CPython's Mersenne Twister (init_by_array seeding, getrandbits-based rejection
// sampling) re-implemented here, so the same seed gives the same windows on every machine
// and the same windows as the published Python pipeline for the same token ids.

#include <cstdint>
#include <filesystem>
#include <vector>

namespace sparselab::data {

// CPython-compatible `random.Random(seed)` subset (MT19937, non-negative integer seeds).
class PythonRandom {
public:
    explicit PythonRandom(uint64_t seed);
    [[nodiscard]] uint32_t next32();                  // genrand_uint32
    [[nodiscard]] uint64_t getrandbits(int k);        // 1 <= k <= 64
    [[nodiscard]] int64_t randint(int64_t a, int64_t b); // inclusive, like random.randint
private:
    uint32_t m_state[624];
    int m_index = 624;
};

struct CalibrationParams {
    int64_t nsamples = 128; // windows
    int64_t seqlen = 2048;  // tokens per window
    uint64_t seed = 0;
    // The model's vocabulary: every token id of the text must be below it (a tokenizer that
    // does not belong to the model is refused naming the text). 0 = not checked.
    int64_t vocabSize = 0;
};

struct CalibrationWindows {
    std::vector<int64_t> offsets;  // start of each window in the token stream
    std::vector<int64_t> ids;      // [nsamples * seqlen], row-major
    int64_t nsamples = 0;
    int64_t seqlen = 0;
};

// Draws the windows from `ids` (the whole calibration text, BOS included as the tokenizer
// adds it). InputError naming `textFile` when the text is shorter than seqlen + 1 tokens, or
// holds a token id outside [0, params.vocabSize) when that is given.
[[nodiscard]] CalibrationWindows sampleCalibrationWindows(const std::vector<int32_t>& ids,
                                                          const CalibrationParams& params,
                                                          const std::filesystem::path& textFile);

} // namespace sparselab::data
