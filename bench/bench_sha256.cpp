// SHA-256 throughput, the CPU's SHA extensions against the portable rounds (util/sha256.h), on
// one buffer of pseudo-random bytes in memory (no disk: what the hash costs on top of reading
// a model's files), interleaved over --runs runs, the median per implementation. Both must
// give the same digest, or the benchmark fails. One JSON line per run, a summary last.
//
// usage: bench_sha256 [--mib 256] [--runs 5]

#include "util/sha256.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace sparselab;

int main(int argc, char** argv)
{
    size_t mib = 256;
    int runs = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--mib") == 0)
            mib = size_t(std::atol(argv[i + 1]));
        else if (std::strcmp(argv[i], "--runs") == 0)
            runs = std::atoi(argv[i + 1]);
        else {
            std::fprintf(stderr, "bench_sha256: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (mib < 1 || runs < 1) {
        std::fputs("bench_sha256: --mib and --runs must be at least 1\n", stderr);
        return 2;
    }
    std::vector<unsigned char> data(mib << 20);
    std::mt19937_64 random(1);
    for (size_t i = 0; i + 8 <= data.size(); i += 8) {
        const uint64_t word = random();
        std::memcpy(&data[i], &word, 8);
    }
    const bool cpu = Sha256::cpuInstructionsAvailable();
    std::vector<double> seconds[2];
    std::string digests[2];
    for (int run = 1; run <= runs; ++run) {
        for (int which = 0; which < 2; ++which) {
            const auto implementation = which == 0 ? Sha256::Implementation::Portable : Sha256::Implementation::Fastest;
            const auto start = std::chrono::steady_clock::now();
            Sha256 hash(implementation);
            hash.update(data.data(), data.size());
            digests[which] = hash.finishHex();
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            seconds[which].push_back(s);
            std::printf("{\"run\": %d, \"implementation\": \"%s\", \"seconds\": %.4f, \"mb_per_s\": %.0f}\n", run,
                        which == 0 ? "portable" : (cpu ? "sha_extensions" : "portable (no SHA extensions)"), s,
                        double(data.size()) / 1e6 / s);
        }
        if (digests[0] != digests[1]) {
            std::fprintf(stderr, "bench_sha256: the digests differ: %s against %s\n", digests[0].c_str(),
                         digests[1].c_str());
            return 1;
        }
    }
    const auto median = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
    };
    const double portable = median(seconds[0]), fastest = median(seconds[1]);
    std::printf("{\"summary\": {\"mib\": %zu, \"runs\": %d, \"sha_extensions\": %s, \"portable_mb_per_s\": %.0f, "
                "\"fastest_mb_per_s\": %.0f, \"speed-up\": %.2f}}\n",
                mib, runs, cpu ? "true" : "false", double(data.size()) / 1e6 / portable,
                double(data.size()) / 1e6 / fastest, portable / fastest);
    return 0;
}
