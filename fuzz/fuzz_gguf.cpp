// libFuzzer target: the GGUF reader (header, key/values, tensor infos, validation), then
// each tensor's dequantization when it is small enough to be cheap.
#include "fuzz_support.h"

#include "io/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    using namespace sparselab;
    const auto path = fuzz::writeInput("model.gguf", data, size);
    return fuzz::runExpectingOnlyInputErrors([&] {
        auto file = io::GgufFile::open(path);
        volatile double sink = 0;
        for (const auto& t : file.tensors()) {
            if (t.numel() <= (int64_t(1) << 16)) {
                try {
                    const std::vector<float> values = file.dequantize(t);
                    if (!values.empty())
                        sink = sink + double(values.front()) + double(values.back());
                } catch (const InputError&) {
                    // e.g. a ggml type the reader lists but does not decode
                }
            }
        }
    });
}
