// libFuzzer target: model.safetensors.index.json (the shard index of a checkpoint folder),
// next to one valid shard, so names that escape the folder, missing shards and tensors
// listed in the wrong shard are all reachable.
#include "fuzz_support.h"

#include "io/checkpoint.h"

#include <filesystem>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    using namespace sparselab;
    namespace fs = std::filesystem;
    const fs::path folder = fuzz::scratchDir() / "model";
    static const bool prepared = [&] {
        fs::create_directories(folder);
        const float values[4] = {1.0f, 2.0f, 3.0f, 4.0f};
        io::writeSafetensors(folder / "model-00001-of-00001.safetensors",
                             {{"model.norm.weight", io::DType::F32, {4}, values, sizeof(values)}});
        return true;
    }();
    (void)prepared;
    {
        const auto index = fuzz::writeInput("model/model.safetensors.index.json", data, size);
        (void)index;
    }
    return fuzz::runExpectingOnlyInputErrors([&] {
        const auto checkpoint = io::Checkpoint::open(folder);
        for (const auto& name : checkpoint.names())
            (void)checkpoint.view(name);
    });
}
