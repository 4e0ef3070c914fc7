#pragma once
// A minimal check harness for the GPU test executables (no Qt Test on GPU machines):
// CHECK records a failure with its location and keeps going; finish() prints the summary and
// gives the exit code (0 pass, 1 fail). kSkipExitCode is what CTest's SKIP_RETURN_CODE expects.

#include <cstdio>
#include <string>

namespace sparselab::gputest {

inline constexpr int kSkipExitCode = 77;

inline int& failures()
{
    static int count = 0;
    return count;
}

inline void check(bool ok, const char* expr, const std::string& what, const char* file, int line)
{
    if (!ok) {
        ++failures();
        std::printf("FAIL %s:%d: %s (%s)\n", file, line, what.c_str(), expr);
    }
}

inline int finish(const char* suite)
{
    if (failures() == 0) {
        std::printf("PASS %s\n", suite);
        return 0;
    }
    std::printf("FAILED %s: %d check(s)\n", suite, failures());
    return 1;
}

inline int skip(const char* suite, const std::string& why)
{
    std::printf("SKIP %s: %s\n", suite, why.c_str());
    return kSkipExitCode;
}

} // namespace sparselab::gputest

#define GPU_CHECK(cond, what) ::sparselab::gputest::check(bool(cond), #cond, (what), __FILE__, __LINE__)
