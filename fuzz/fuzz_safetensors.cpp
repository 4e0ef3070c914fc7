// libFuzzer target: the safetensors reader (header parse and validation), then every
// tensor's view and a read of its first and last byte, so a bad range shows up under ASan.
#include "fuzz_support.h"

#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    using namespace sparselab;
    const auto path = fuzz::writeInput("model.safetensors", data, size);
    return fuzz::runExpectingOnlyInputErrors([&] {
        auto file = io::SafetensorsFile::open(path);
        volatile unsigned sink = 0;
        for (const auto& info : file.tensors()) {
            const io::TensorView v = file.view(info);
            if (v.nbytes > 0)
                sink = sink + unsigned(v.data[0]) + unsigned(v.data[v.nbytes - 1]);
        }
        for (const auto& [key, value] : file.metadata())
            sink = sink + unsigned(key.size() + value.size());
    });
}
