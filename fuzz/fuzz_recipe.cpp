// libFuzzer target: the recipe parser, then the plan of a few layer names, validation
// against them and the JSON round trip.
#include "fuzz_support.h"

#include "pipeline/recipe.h"

#include <nlohmann/json.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    using namespace sparselab;
    const auto path = fuzz::writeInput("recipe.json", data, size);
    return fuzz::runExpectingOnlyInputErrors([&] {
        const auto recipe = pipeline::Recipe::load(path);
        const std::vector<std::string> layers = {"model.layers.0.self_attn.q_proj", "model.layers.0.mlp.down_proj",
                                                 "model.layers.1.mlp.up_proj"};
        for (const auto& name : layers)
            (void)recipe.planFor(name);
        (void)recipe.toJson().dump();
        recipe.validate(layers, path.string(), {64, 172, 64});
    });
}
