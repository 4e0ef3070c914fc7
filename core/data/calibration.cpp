#include "data/calibration.h"

#include "util/errors.h"

#include <algorithm>

namespace sparselab::data {

// MT19937 as in CPython's _randommodule.c (init_genrand / init_by_array / genrand_uint32).
// Python seeds an int by splitting |seed| into 32-bit words (least significant first);
// seed 0 becomes the key [0].
PythonRandom::PythonRandom(uint64_t seed)
{
    std::vector<uint32_t> key;
    do {
        key.push_back(uint32_t(seed & 0xffffffffu));
        seed >>= 32;
    } while (seed != 0);

    m_state[0] = 19650218u;
    for (int i = 1; i < 624; ++i)
        m_state[i] = 1812433253u * (m_state[i - 1] ^ (m_state[i - 1] >> 30)) + uint32_t(i);

    int i = 1;
    size_t j = 0;
    const size_t keyLength = key.size();
    for (size_t k = std::max<size_t>(624, keyLength); k > 0; --k) {
        m_state[i] = (m_state[i] ^ ((m_state[i - 1] ^ (m_state[i - 1] >> 30)) * 1664525u)) + key[j] + uint32_t(j);
        ++i;
        ++j;
        if (i >= 624) {
            m_state[0] = m_state[623];
            i = 1;
        }
        if (j >= keyLength)
            j = 0;
    }
    for (int k = 623; k > 0; --k) {
        m_state[i] = (m_state[i] ^ ((m_state[i - 1] ^ (m_state[i - 1] >> 30)) * 1566083941u)) - uint32_t(i);
        ++i;
        if (i >= 624) {
            m_state[0] = m_state[623];
            i = 1;
        }
    }
    m_state[0] = 0x80000000u;
    m_index = 624;
}

uint32_t PythonRandom::next32()
{
    constexpr uint32_t upperMask = 0x80000000u, lowerMask = 0x7fffffffu, matrixA = 0x9908b0dfu;
    if (m_index >= 624) {
        int kk = 0;
        for (; kk < 624 - 397; ++kk) {
            const uint32_t y = (m_state[kk] & upperMask) | (m_state[kk + 1] & lowerMask);
            m_state[kk] = m_state[kk + 397] ^ (y >> 1) ^ ((y & 1u) ? matrixA : 0u);
        }
        for (; kk < 623; ++kk) {
            const uint32_t y = (m_state[kk] & upperMask) | (m_state[kk + 1] & lowerMask);
            m_state[kk] = m_state[kk + (397 - 624)] ^ (y >> 1) ^ ((y & 1u) ? matrixA : 0u);
        }
        const uint32_t y = (m_state[623] & upperMask) | (m_state[0] & lowerMask);
        m_state[623] = m_state[396] ^ (y >> 1) ^ ((y & 1u) ? matrixA : 0u);
        m_index = 0;
    }
    uint32_t y = m_state[m_index++];
    y ^= (y >> 11);
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= (y >> 18);
    return y;
}

uint64_t PythonRandom::getrandbits(int k)
{
    // CPython: k <= 32 → one word shifted down; larger k → 32-bit words, least significant first.
    if (k <= 32)
        return next32() >> (32 - k);
    const uint64_t low = next32();
    const uint64_t high = next32() >> (64 - k);
    return low | (high << 32);
}

int64_t PythonRandom::randint(int64_t a, int64_t b)
{
    // random.randint(a, b) = a + _randbelow(b - a + 1), _randbelow by rejection on k bits.
    const uint64_t n = uint64_t(b - a) + 1;
    int k = 0;
    while (k < 64 && (n >> k) != 0)
        ++k;
    uint64_t r = getrandbits(k);
    while (r >= n)
        r = getrandbits(k);
    return a + int64_t(r);
}

CalibrationWindows sampleCalibrationWindows(const std::vector<int32_t>& ids, const CalibrationParams& params,
                                            const std::filesystem::path& textFile)
{
    if (params.nsamples < 1)
        throw optionError("--nsamples", "must be at least 1");
    if (params.seqlen < 2)
        throw optionError("--seqlen", "must be at least 2");
    const int64_t length = int64_t(ids.size());
    if (length < params.seqlen + 1)
        throw inputError(textFile, "has " + std::to_string(length) + " tokens, fewer than one calibration window of "
                                       + std::to_string(params.seqlen) + " (+1)");
    if (params.vocabSize > 0) {
        const auto bad = std::find_if(ids.begin(), ids.end(), [&](int32_t id) { return id < 0 || id >= params.vocabSize; });
        if (bad != ids.end())
            throw inputError(textFile, "token id " + std::to_string(*bad) + " is outside the model's vocabulary of "
                                           + std::to_string(params.vocabSize) + " (a tokenizer of another model?)");
    }
    CalibrationWindows windows;
    windows.nsamples = params.nsamples;
    windows.seqlen = params.seqlen;
    windows.ids.reserve(size_t(params.nsamples * params.seqlen));
    PythonRandom rng(params.seed);
    for (int64_t s = 0; s < params.nsamples; ++s) {
        const int64_t offset = rng.randint(0, length - params.seqlen - 1);
        windows.offsets.push_back(offset);
        windows.ids.insert(windows.ids.end(), ids.begin() + offset, ids.begin() + offset + params.seqlen);
    }
    return windows;
}

} // namespace sparselab::data
