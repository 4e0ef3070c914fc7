// libFuzzer target: the JSON reader every JSON goes through (readJsonFile: regular file, size
// cap, a byte scan that refuses nesting deeper than 256 before nlohmann builds anything, then
// the parse). Deep documents are the interesting inputs: the seed corpus has some at 255-257
// levels, and -max_len lets the fuzzer grow arrays and objects thousands of levels deep.
#include "fuzz_support.h"

#include "util/json_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    using namespace sparselab;
    const auto path = fuzz::writeInput("doc.json", data, size);
    return fuzz::runExpectingOnlyInputErrors([&] {
        const nlohmann::json parsed = readJsonFile(path);
        (void)parsed.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    });
}
