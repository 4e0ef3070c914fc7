#pragma once
// SHA-256 (FIPS 180-4) for provenance records: hashes of input model files and texts.
//
// Every prune hashes the model's files (gigabytes for a 1B model), so on CPUs with the SHA
// extensions (x86 SHA-NI: AMD since Zen, Intel since Ice Lake/Goldmont) the blocks go through
// them, several times faster than the portable rounds, which remain for other CPUs.

#include "util/progress.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace sparselab {

class Sha256 {
public:
    // Fastest: the SHA extensions where the CPU has them, else the portable rounds.
    // Portable: always the portable rounds (tests compare the two).
    enum class Implementation { Fastest, Portable };
    explicit Sha256(Implementation implementation = Implementation::Fastest);
    // Whether Fastest uses the CPU's SHA extensions on this machine.
    [[nodiscard]] static bool cpuInstructionsAvailable();

    void update(const void* data, size_t size);
    void update(std::string_view text) { update(text.data(), text.size()); }
    [[nodiscard]] std::array<uint8_t, 32> finish();
    [[nodiscard]] std::string finishHex();

private:
    void compress(const uint8_t* blocks, size_t count); // `count` 64-byte blocks
    bool m_cpuInstructions = false;
    std::array<uint32_t, 8> m_state;
    std::array<uint8_t, 64> m_buffer{};
    size_t m_buffered = 0;
    uint64_t m_length = 0;
};

[[nodiscard]] std::string sha256Hex(std::string_view bytes);
// Streams the file (from byte `skip` on: the workspace seal hashes what follows its own block);
// InputError naming it when unreadable; with `cancel`, CancelledError within a megabyte of the
// token being cancelled (a model's weights take tens of seconds to hash).
[[nodiscard]] std::string sha256File(const std::filesystem::path& file, const CancelToken* cancel = nullptr,
                                     std::uintmax_t skip = 0);

} // namespace sparselab
