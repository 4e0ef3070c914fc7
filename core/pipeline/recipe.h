#pragma once
// Per-layer compression plan ("recipe"), the JSON file the CLI reads and the GUI's Plan view
// writes (no LibTorch, no Qt).
//
//   {
//     "defaults": {"method": "sparsegpt", "sparsity": 0.5, "bits": 16},
//     "layers": [
//       {"pattern": "model.layers.*.mlp.*", "sparsity": 0.6, "bits": 4},
//       {"pattern": "model.layers.0.*", "method": "dense"}
//     ]
//   }
//
// Fields of "defaults" and of each rule: method ("sparsegpt" | "magnitude" | "wanda" | "rtn" |
// "dense" = leave untouched; "rtn" without sparsity/nm in the same rule sets sparsity 0),
// sparsity (fraction in [0,1)), nm ("N:M" or null for unstructured), bits (2..8, 16 = no
// quantization), group (0 = per row), sym, act_order, static_groups, fp16_scale,
// signed_scale (bools, solve::QuantOptions), blocksize, damp. Rules are applied in order to layers whose name (the weight's module
// name, e.g. "model.layers.3.mlp.down_proj") matches the glob `pattern` (`*` matches any run
// of characters, `?` one); later rules override earlier ones. Unknown fields, bad values,
// and rules that match no layer are InputErrors naming the recipe file.

#include "solve/solver.h"

#include <nlohmann/json_fwd.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace sparselab::pipeline {

struct LayerPlan {
    bool dense = false;               // leave the layer untouched
    solve::SolverOptions options;
};

// Overrides a rule may carry (absent = inherit).
struct RecipeRule {
    std::string pattern;              // glob over layer names
    std::optional<bool> dense;
    std::optional<solve::Method> method;
    std::optional<double> sparsity;
    std::optional<std::pair<int, int>> nm; // {N, M}; {0, 0} = unstructured
    std::optional<int> bits;
    std::optional<int64_t> group;
    std::optional<bool> sym;
    std::optional<bool> actOrder;
    std::optional<bool> staticGroups;
    std::optional<bool> fp16Scale;
    std::optional<bool> signedScale;
    std::optional<int64_t> blocksize;
    std::optional<double> damp;
};

struct Recipe {
    LayerPlan defaults;
    std::vector<RecipeRule> rules;

    // Plan for one layer: defaults, then every matching rule in order.
    [[nodiscard]] LayerPlan planFor(const std::string& layerName) const;
    // InputError (naming `source`) when a rule matches none of `layerNames` or an option is
    // out of range for a layer it applies to.
    void validate(const std::vector<std::string>& layerNames, const std::string& source,
                  const std::vector<int64_t>& layerCols) const;

    [[nodiscard]] nlohmann::json toJson() const;
    // InputError naming `source` on unknown fields or bad values.
    static Recipe fromJson(const nlohmann::json& json, const std::string& source);
    static Recipe load(const std::filesystem::path& file);
    void save(const std::filesystem::path& file) const; // atomic
};

// The quantization grid of a layer as recorded in sparselab.json ("quant" of each layer):
// {"bits", "group", "sym", "act_order", "static_groups", "fp16_scale", "signed_scale", "rounding": "gptq" |
// "nearest", "zero": "2^(bits-1)" | "per group"}; null when the layer is not quantized.
// Values are scale·(code − zero), code in [0, 2^bits − 1], one scale (and zero) per row and
// group of `group` input columns (0 = the whole row); with act_order and not static_groups
// the groups are runs of `group` columns in descending-diag(H) order (GPTQ's g_idx).
[[nodiscard]] nlohmann::json quantGridJson(const solve::SolverOptions& options, bool dense);

// Glob match with '*' and '?'.
[[nodiscard]] bool globMatch(const std::string& pattern, const std::string& text);
// A layer filter (--layers): whether `name` matches one of `patterns`; an empty filter
// passes every name.
[[nodiscard]] bool passesLayerFilter(const std::vector<std::string>& patterns, const std::string& name);

// Parses "N:M" (N < M, both >= 1); InputError naming `option` otherwise (solve/solver_options.h).
using solve::parseNm;

} // namespace sparselab::pipeline
