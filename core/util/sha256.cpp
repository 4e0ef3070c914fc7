#include "util/sha256.h"

#include "util/atomic_file.h"
#include "util/errors.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#endif

namespace sparselab {

namespace {
constexpr std::array<uint32_t, 64> kRound = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

constexpr uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

// The portable rounds (FIPS 180-4, 6.2.2) on one 64-byte block.
void compressPortable(std::array<uint32_t, 8>& state, const uint8_t* block)
{
    uint32_t w[64];
    for (int i = 0; i < 16; ++i)
        w[i] = uint32_t(block[4 * i]) << 24 | uint32_t(block[4 * i + 1]) << 16 | uint32_t(block[4 * i + 2]) << 8
               | uint32_t(block[4 * i + 3]);
    for (int i = 16; i < 64; ++i) {
        const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (int i = 0; i < 64; ++i) {
        const uint32_t s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
        const uint32_t ch = (e & f) ^ (~e & g);
        const uint32_t t1 = h + s1 + ch + kRound[size_t(i)] + w[i];
        const uint32_t s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
        const uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        const uint32_t t2 = s0 + maj;
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    state[0] += a; state[1] += b; state[2] += c; state[3] += d;
    state[4] += e; state[5] += f; state[6] += g; state[7] += h;
}

#if defined(__x86_64__) && defined(__GNUC__)
#define SPARSELAB_SHA_NI 1

bool cpuHasShaExtensions()
{
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx))
        return false;
    const bool ssse3 = (ecx & (1u << 9)) != 0, sse41 = (ecx & (1u << 19)) != 0;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx))
        return false;
    return ssse3 && sse41 && (ebx & (1u << 29)) != 0; // CPUID.(EAX=7, ECX=0):EBX.SHA[bit 29]
}

// The same rounds with the SHA extensions, `count` blocks with the state in registers.
// SHA256RNDS2 does two rounds on the state split as (A, B, E, F) and (C, D, G, H), each
// with A (or C) in the highest lane, taking W[t] + K[t] for the two rounds from the low half
// of its third operand. SHA256MSG1 adds σ0(W[t−15]) to W[t−16] for four t; SHA256MSG2 adds
// the σ1(W[t−2]) terms to a sum that already holds W[t−16] + σ0(W[t−15]) + W[t−7].
__attribute__((target("sha,sse4.1,ssse3"))) void compressShaNi(std::array<uint32_t, 8>& state,
                                                               const uint8_t* blocks, size_t count)
{
    // Big-endian words: reverse the bytes of each 32-bit lane.
    const __m128i byteSwap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    // (a, b, c, d), (e, f, g, h) in lanes 0..3 → ABEF = (f, e, b, a), CDGH = (h, g, d, c).
    const __m128i abcd = _mm_loadu_si128(reinterpret_cast<const __m128i*>(state.data()));
    const __m128i efgh = _mm_loadu_si128(reinterpret_cast<const __m128i*>(state.data() + 4));
    const __m128i badc = _mm_shuffle_epi32(abcd, 0xB1); // (b, a, d, c)
    const __m128i hgfe = _mm_shuffle_epi32(efgh, 0x1B); // (h, g, f, e)
    __m128i abef = _mm_alignr_epi8(badc, hgfe, 8);      // (f, e, b, a)
    __m128i cdgh = _mm_blend_epi16(hgfe, badc, 0xF0);   // (h, g, d, c)
    for (size_t block = 0; block < count; ++block) {
        const uint8_t* in = blocks + 64 * block;
        const __m128i abefBefore = abef, cdghBefore = cdgh;
        __m128i w[16]; // W[4g .. 4g+3] in lanes 0..3
        for (int g = 0; g < 16; ++g) {
            if (g < 4) {
                w[g] = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + 16 * g)), byteSwap);
            } else {
                // W[t−7 .. t−4] for t = 4g: the top three lanes of group g−2, the bottom of g−1.
                const __m128i sum = _mm_add_epi32(_mm_sha256msg1_epu32(w[g - 4], w[g - 3]),
                                                  _mm_alignr_epi8(w[g - 1], w[g - 2], 4));
                w[g] = _mm_sha256msg2_epu32(sum, w[g - 1]);
            }
            __m128i wk = _mm_add_epi32(w[g], _mm_loadu_si128(reinterpret_cast<const __m128i*>(&kRound[size_t(4 * g)])));
            cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk); // rounds 4g, 4g+1: the new ABEF
            wk = _mm_shuffle_epi32(wk, 0x0E);             // W + K of rounds 4g+2, 4g+3 to the low half
            abef = _mm_sha256rnds2_epu32(abef, cdgh, wk); // the old ABEF is the new CDGH
        }
        abef = _mm_add_epi32(abef, abefBefore);
        cdgh = _mm_add_epi32(cdgh, cdghBefore);
    }
    // Back to (a, b, c, d), (e, f, g, h).
    const __m128i feba = _mm_shuffle_epi32(abef, 0x1B); // (a, b, e, f)
    const __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1); // (g, h, c, d)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(state.data()), _mm_blend_epi16(feba, dchg, 0xF0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(state.data() + 4), _mm_alignr_epi8(dchg, feba, 8));
}
#endif

} // namespace

Sha256::Sha256(Implementation implementation)
    : m_cpuInstructions(implementation == Implementation::Fastest && cpuInstructionsAvailable()),
      m_state{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}
{
}

bool Sha256::cpuInstructionsAvailable()
{
#if defined(SPARSELAB_SHA_NI)
    static const bool available = cpuHasShaExtensions();
    return available;
#else
    return false;
#endif
}

void Sha256::compress(const uint8_t* blocks, size_t count)
{
#if defined(SPARSELAB_SHA_NI)
    if (m_cpuInstructions) {
        compressShaNi(m_state, blocks, count);
        return;
    }
#endif
    for (size_t i = 0; i < count; ++i)
        compressPortable(m_state, blocks + 64 * i);
}

void Sha256::update(const void* data, size_t size)
{
    const auto* bytes = static_cast<const uint8_t*>(data);
    m_length += size;
    while (size > 0) {
        if (m_buffered == 0 && size >= 64) { // whole blocks straight from the input
            const size_t count = size / 64;
            compress(bytes, count);
            bytes += 64 * count;
            size -= 64 * count;
            continue;
        }
        const size_t take = std::min(size, 64 - m_buffered);
        std::memcpy(m_buffer.data() + m_buffered, bytes, take);
        m_buffered += take;
        bytes += take;
        size -= take;
        if (m_buffered == 64) {
            compress(m_buffer.data(), 1);
            m_buffered = 0;
        }
    }
}

std::array<uint8_t, 32> Sha256::finish()
{
    const uint64_t bits = m_length * 8;
    const uint8_t pad = 0x80;
    update(&pad, 1);
    const uint8_t zero = 0;
    while (m_buffered != 56)
        update(&zero, 1);
    uint8_t length[8];
    for (int i = 0; i < 8; ++i)
        length[i] = uint8_t(bits >> (56 - 8 * i));
    update(length, 8);
    std::array<uint8_t, 32> digest{};
    for (int i = 0; i < 8; ++i)
        for (int j = 0; j < 4; ++j)
            digest[size_t(4 * i + j)] = uint8_t(m_state[size_t(i)] >> (24 - 8 * j));
    return digest;
}

std::string Sha256::finishHex()
{
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (const uint8_t byte : finish()) {
        out.push_back(hex[byte >> 4]);
        out.push_back(hex[byte & 15]);
    }
    return out;
}

std::string sha256Hex(std::string_view bytes)
{
    Sha256 hash;
    hash.update(bytes);
    return hash.finishHex();
}

std::string sha256File(const std::filesystem::path& file, const CancelToken* cancel, std::uintmax_t skip)
{
    requireRegularFile(file); // a FIFO would block the open, a device never end
    std::ifstream in(file, std::ios::binary);
    if (!in)
        throw inputError(file, "cannot open for hashing");
    if (skip > 0 && !in.seekg(std::streamoff(skip)))
        throw inputError(file, "cannot read for hashing");
    Sha256 hash;
    // Read 1 MiB at a time, but never a buffer larger than what is left to read. Small files
    // are common: a workspace's seal is checked on every open. For them a 1 MiB buffer that is
    // zeroed on every call cost most of the time (under AddressSanitizer, an mmap each time).
    std::error_code error;
    const std::uintmax_t size = std::filesystem::file_size(file, error);
    const std::uintmax_t left = error ? std::uintmax_t(1) << 20 : (size > skip ? size - skip : 1);
    std::vector<char> buffer(size_t(std::clamp<std::uintmax_t>(left, 1, std::uintmax_t(1) << 20)));
    while (in) {
        throwIfCancelled(cancel);
        in.read(buffer.data(), std::streamsize(buffer.size()));
        hash.update(buffer.data(), size_t(in.gcount()));
    }
    return hash.finishHex();
}

} // namespace sparselab
