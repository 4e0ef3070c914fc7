// SolverOptions' checks and names, and the float16 rounding of quantization scales: plain C++
// (no LibTorch), shared by the engine and the CPU-only solve-layer front end.

#include "solve/solver_options.h"
#include "solve/sparsegpt_kernels.h"

#include "util/errors.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

namespace sparselab::solve {

namespace {

std::string numberText(double value)
{
    std::ostringstream s;
    s << value;
    return s.str();
}

} // namespace

std::pair<int, int> parseNm(const std::string& text, const std::string& option)
{
    const auto colon = text.find(':');
    int n = 0, m = 0;
    try {
        if (colon == std::string::npos)
            throw std::invalid_argument("no colon");
        size_t usedN = 0, usedM = 0;
        n = std::stoi(text.substr(0, colon), &usedN);
        m = std::stoi(text.substr(colon + 1), &usedM);
        if (usedN != colon || usedM != text.size() - colon - 1)
            throw std::invalid_argument("trailing characters");
    } catch (const std::exception&) {
        throw optionError(option, "expects N:M such as 2:4, got '" + text + "'");
    }
    if (n < 1 || m < 2 || n >= m)
        throw optionError(option, "needs 1 <= N < M, got '" + text + "'");
    return {n, m};
}

std::string methodName(Method method)
{
    switch (method) {
    case Method::SparseGpt: return "sparsegpt";
    case Method::Magnitude: return "magnitude";
    case Method::Wanda: return "wanda";
    case Method::Rtn: return "rtn";
    }
    return "sparsegpt";
}

Method parseMethod(const std::string& name)
{
    if (name == "sparsegpt")
        return Method::SparseGpt;
    if (name == "magnitude")
        return Method::Magnitude;
    if (name == "wanda")
        return Method::Wanda;
    if (name == "rtn")
        return Method::Rtn;
    throw optionError("--method", "unknown method '" + name + "' (expected sparsegpt, magnitude, wanda or rtn)");
}

void SolverOptions::validate(int64_t cols) const
{
    if (!(std::isfinite(sparsity) && sparsity >= 0.0 && sparsity < 1.0))
        throw optionError("--sparsity", "must be in [0, 1), got " + numberText(sparsity));
    if (nmN != 0 || nmM != 0) {
        const std::string nm = std::to_string(nmN) + ":" + std::to_string(nmM);
        if (nmN <= 0 || nmM <= 0 || nmN >= nmM)
            throw optionError("--nm", "need 0 < N < M, got " + nm);
        if (method == Method::SparseGpt && blocksize > 0 && blocksize % nmM != 0)
            throw optionError("--nm", "M = " + std::to_string(nmM) + " must divide the block size "
                                          + std::to_string(blocksize));
    }
    if (blocksize < 1)
        throw optionError("--blocksize", "must be positive, got " + std::to_string(blocksize));
    if (!(std::isfinite(damp) && damp >= 0.0))
        throw optionError("--damp", "must be a finite number >= 0, got " + numberText(damp));
    if (!(quant.bits == 16 || (quant.bits >= 2 && quant.bits <= 8)))
        throw optionError("--bits", "must be 2..8 (or 16 = no quantization), got "
                                        + std::to_string(quant.bits));
    if (quant.groupSize < 0)
        throw optionError("--group", "must be >= 0, got " + std::to_string(quant.groupSize));
    if (quant.groupSize > 0 && !quant.enabled())
        throw optionError("--group", "quantization groups need --bits 2..8");
    if (quant.actOrder && (method != Method::SparseGpt || !quant.enabled()))
        throw optionError("--act-order", "needs --method sparsegpt and --bits 2..8");
    if (quant.actOrder && (nmN != 0 || nmM != 0))
        throw optionError("--act-order", "cannot be combined with --nm (the N:M pattern would be chosen in the "
                                         "permuted column order and broken in the stored one)");
    if (quant.staticGroups && (method != Method::SparseGpt || quant.groupSize <= 0))
        throw optionError("--static-groups", "needs --method sparsegpt and quantization groups (--group G)");
    if (quant.fp16Scale && !quant.enabled())
        throw optionError("--fp16-scale", "needs --bits 2..8");
    if (quant.signedScale && !(quant.enabled() && quant.symmetric))
        throw optionError("--signed-scale", "needs --bits 2..8 and --sym");
    if (method == Method::Rtn) {
        if (!quant.enabled())
            throw optionError("--method", "rtn (round to nearest) needs --bits 2..8");
        if (sparsity != 0.0 || nmM != 0)
            throw optionError("--method", "rtn prunes nothing: use --sparsity 0 without --nm (magnitude or wanda "
                                          "with --bits prune and round to nearest)");
    }
    if (cols < 1)
        throw InputError("weight: the layer has no input columns");
}

namespace detail {

float roundScaleToHalf(float scale)
{
    constexpr float kHalfMax = 65504.0f;
    constexpr float kHalfMinSubnormal = 5.9604644775390625e-08f; // 2^-24
    // GCC's _Float16 converts with IEEE round-to-nearest-even, as c10::Half did here before.
    const float rounded = float(static_cast<_Float16>(std::min(scale, kHalfMax)));
    return rounded > 0.0f ? rounded : kHalfMinSubnormal;
}

} // namespace detail

} // namespace sparselab::solve
