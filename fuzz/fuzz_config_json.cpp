// libFuzzer target: config.json parsing (architecture detection, every field's type and range).
#include "fuzz_support.h"

#include "model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    using namespace sparselab;
    const auto path = fuzz::writeInput("config.json", data, size);
    return fuzz::runExpectingOnlyInputErrors([&] {
        const auto config = model::ModelConfig::load(path);
        (void)model::architectureName(config.architecture);
    });
}
