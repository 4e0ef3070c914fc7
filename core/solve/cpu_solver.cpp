// SparseGPT for one layer over plain float buffers (cpu_solver.h says what it promises).

#include "solve/cpu_solver.h"

#include "solve/cpu_column_loop.h"
#include "solve/fortran_blas.h"
#include "solve/inverse_cholesky.h"

#include "util/cpu_clones.h"
#include "util/errors.h"
#include "util/fork_join.h"
#include "util/large_buffer.h"

#include <algorithm>
#include <atomic>
#include <array>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <string>

namespace sparselab::solve::cpu {

namespace {

// Damping is raised ×10 when the Cholesky factorisation fails, up to this relative damping.
constexpr double kDampRaiseFactor = 10.0;
constexpr double kMaxRelativeDamp = 10.0;
constexpr double kFirstNonzeroDamp = 1e-3; // first raise when the user asked for damp = 0

// ---- torch.mean's float sum ---------------------------------------------------------------------

// ATen's cascade of sums (SumKernel.cpp, multi_row_sum) over `size` rows of four `T`s (floats
// or lanes-wide vectors): sums of 2^p rows are added into the next level, so that rounding
// error grows with log(size). `load(i, k)` is row i's k-th.
template <class T, class Load>
std::array<T, 4> multiRowSum(int64_t size, const Load& load, const T& zero)
{
    constexpr int kLevels = 4;
    const auto ceilLog2 = [](int64_t x) -> int64_t {
        if (x <= 2)
            return 1;
        return 64 - __builtin_clzll(uint64_t(x - 1));
    };
    const int64_t levelPower = std::max<int64_t>(4, ceilLog2(size) / kLevels);
    const int64_t levelStep = int64_t(1) << levelPower;
    const int64_t levelMask = levelStep - 1;
    std::array<std::array<T, 4>, kLevels> acc;
    for (auto& level : acc)
        level.fill(zero);
    int64_t i = 0;
    while (i + levelStep <= size) {
        for (int64_t j = 0; j < levelStep; ++j, ++i)
            for (int k = 0; k < 4; ++k)
                acc[0][size_t(k)] += load(i, k);
        for (int j = 1; j < kLevels; ++j) {
            for (int k = 0; k < 4; ++k) {
                acc[size_t(j)][size_t(k)] += acc[size_t(j - 1)][size_t(k)];
                acc[size_t(j - 1)][size_t(k)] = zero;
            }
            if ((i & (levelMask << (j * levelPower))) != 0)
                break;
        }
    }
    for (; i < size; ++i)
        for (int k = 0; k < 4; ++k)
            acc[0][size_t(k)] += load(i, k);
    for (int j = 1; j < kLevels; ++j)
        for (int k = 0; k < 4; ++k)
            acc[0][size_t(k)] += acc[size_t(j)][size_t(k)];
    return acc[0];
}

// A vector of `Lanes` floats added lane by lane (ATen's Vectorized<float>).
template <int Lanes>
struct Lanewise {
    std::array<float, Lanes> v{};
    Lanewise& operator+=(const Lanewise& o)
    {
        for (int l = 0; l < Lanes; ++l)
            v[size_t(l)] += o.v[size_t(l)];
        return *this;
    }
};

// ATen's sum of a contiguous float32 row: vectorized_inner_sum (n ≥ Lanes) or scalar_inner_sum.
template <int Lanes>
float torchSum(const float* x, int64_t n)
{
    if (n < Lanes) {
        const int64_t rows = n / 4;
        auto partial = multiRowSum<float>(rows, [&](int64_t i, int k) { return x[i * 4 + k]; }, 0.0f);
        for (int64_t i = rows * 4; i < n; ++i)
            partial[0] += x[i];
        for (int k = 1; k < 4; ++k)
            partial[0] += partial[size_t(k)];
        return partial[0];
    }
    using Vec = Lanewise<Lanes>;
    const int64_t vectors = n / Lanes;
    const auto loadVector = [&](int64_t v) {
        Vec out;
        std::memcpy(out.v.data(), x + v * Lanes, sizeof(float) * Lanes);
        return out;
    };
    const int64_t rows = vectors / 4;
    auto partial = multiRowSum<Vec>(rows, [&](int64_t i, int k) { return loadVector(i * 4 + k); }, Vec{});
    for (int64_t v = rows * 4; v < vectors; ++v)
        partial[0] += loadVector(v);
    for (int k = 1; k < 4; ++k)
        partial[0] += partial[size_t(k)];
    float total = 0.0f;
    for (int64_t i = vectors * Lanes; i < n; ++i)
        total += x[i];
    for (int l = 0; l < Lanes; ++l)
        total += partial[0].v[size_t(l)];
    return total;
}

// ---- statistics ---------------------------------------------------------------------------------

// Zeros of Ŵ and Σ live·(W − Ŵ)² in double over rows [r0, r1), where live[j] is 1 for a live
// input and 0 for a dead one. Eight double lanes per row, so that the conversions and
// products vectorise; the lanes are summed once per row. (The file is built without FMA
// contraction, so every clone rounds the same way.)
SPARSELAB_CPU_CLONES
void countAndSquareDelta(const float* __restrict original, const float* __restrict compressed,
                         const float* __restrict live, int64_t cols, int64_t r0, int64_t r1, int64_t& zeros,
                         double& squares)
{
    constexpr int64_t kLanes = 8;
    for (int64_t r = r0; r < r1; ++r) {
        const float* __restrict a = original + r * cols;
        const float* __restrict b = compressed + r * cols;
        double lanes[kLanes] = {};
        int32_t zeroLanes[kLanes] = {};
        int64_t j = 0;
        for (; j + kLanes <= cols; j += kLanes) {
            for (int64_t l = 0; l < kLanes; ++l) {
                const double d = double(a[j + l] - b[j + l]);
                lanes[l] += double(live[j + l]) * d * d;
                zeroLanes[l] += b[j + l] == 0.0f ? 1 : 0;
            }
        }
        double row = 0.0;
        int64_t rowZeros = 0;
        for (; j < cols; ++j) {
            const double d = double(a[j] - b[j]);
            row += double(live[j]) * d * d;
            rowZeros += b[j] == 0.0f ? 1 : 0;
        }
        for (int64_t l = 0; l < kLanes; ++l) {
            row += lanes[l];
            rowZeros += zeroLanes[l];
        }
        squares += row;
        zeros += rowZeros;
    }
}

constexpr int64_t kRowsPerUnit = 64; // units of the O(rows·cols) passes on the kernel threads

} // namespace

bool available()
{
    const auto& f = fortran::functions();
    return f.sgemm && f.ssyrk && inverseCholeskyAvailable();
}

namespace {

// Whether x[begin, end) holds a NaN or Inf: ±Inf and NaN are the floats whose exponent bits
// are all ones. An OR over integers may be reordered (a float sum such as Σ x·0 may not), so
// the fixed-width inner loop vectorises even under -O2's cheap cost model. With `out`, the
// values are copied there in the same pass.
bool hasNonFinite(const float* __restrict x, int64_t begin, int64_t end, float* __restrict out)
{
    constexpr int64_t kLanes = 16;
    constexpr uint32_t kExponent = 0x7f800000u;
    const auto nonFiniteBit = [&](int64_t k) {
        uint32_t bits;
        std::memcpy(&bits, x + k, sizeof bits);
        return uint32_t((bits & kExponent) == kExponent);
    };
    uint32_t lanes[kLanes] = {};
    int64_t k = begin;
    for (; k + kLanes <= end; k += kLanes)
        for (int64_t l = 0; l < kLanes; ++l)
            lanes[l] |= nonFiniteBit(k + l);
    uint32_t nonFinite = 0;
    for (; k < end; ++k)
        nonFinite |= nonFiniteBit(k);
    for (int64_t l = 0; l < kLanes; ++l)
        nonFinite |= lanes[l];
    if (out)
        std::memcpy(out + begin, x + begin, sizeof(float) * size_t(end - begin));
    return nonFinite != 0;
}

// Units of 2²⁰ values on `threads`, in chunks of 4096 (L1-sized, so that a copy reads them
// from there); without a copy, a bad value ends the pass early (units not begun are skipped).
bool finitePass(const float* x, int64_t n, float* out, int threads)
{
    constexpr int64_t kChunk = 4096;
    constexpr int64_t kUnit = int64_t(1) << 20;
    std::atomic<bool> found{false};
    forkJoin((n + kUnit - 1) / kUnit, threads, [&](int, int64_t unit) {
        const int64_t unitEnd = std::min(n, (unit + 1) * kUnit);
        for (int64_t i = unit * kUnit; i < unitEnd && (out || !found.load(std::memory_order_relaxed)); i += kChunk)
            if (hasNonFinite(x, i, std::min(unitEnd, i + kChunk), out))
                found.store(true, std::memory_order_relaxed);
    });
    return !found.load();
}

} // namespace

bool allFinite(const float* data, int64_t n, int threads)
{
    return finitePass(data, n, nullptr, threads);
}

bool copyAllFinite(const float* x, int64_t n, float* out, int threads)
{
    return finitePass(x, n, out, threads);
}

int64_t symmetricBlock(int64_t cols)
{
    // Smaller blocks skip more of the lower triangle (the work is (1 + block/cols)/2 of the
    // full product) but make thinner GEMMs; 256 keeps OpenBLAS near its peak while saving
    // ~45% at 2048+ columns.
    return cols <= 512 ? cols : 256;
}

void rankUpdateUpper(float* h, int64_t cols, const float* x, int64_t tokens, float beta, float alpha)
{
    const auto ssyrk = fortran::functions().ssyrk;
    if (!ssyrk || cols > INT_MAX || tokens > INT_MAX)
        throw std::logic_error("rankUpdateUpper: no ssyrk_ in the process, or sizes beyond int");
    // X's row-major buffer read column-major is Xᵀ, so H = alpha·Xᵀ·(Xᵀ)ᵀ + beta·H with
    // trans = "N", and H's upper triangle is the column-major lower one.
    const int n = int(cols);
    const int k = int(tokens);
    ssyrk("L", "N", &n, &k, &alpha, x, &n, &beta, h, &n, 1, 1);
}

void mirrorUpperToLower(float* h, int64_t n, int threads)
{
    constexpr int64_t kTile = 64;
    // One row of tiles per unit (each writes only its own lower tiles).
    forkJoin((n + kTile - 1) / kTile, threads, [&](int, int64_t unit) {
        const int64_t i0 = unit * kTile;
        for (int64_t j0 = i0; j0 < n; j0 += kTile)
            for (int64_t i = i0; i < std::min(n, i0 + kTile); ++i)
                for (int64_t j = std::max(j0, i + 1); j < std::min(n, j0 + kTile); ++j)
                    h[j * n + i] = h[i * n + j];
    });
}

int atenFloatLanes()
{
    const char* capability = std::getenv("ATEN_CPU_CAPABILITY");
    return capability && std::strcmp(capability, "avx512") == 0 ? 16 : 8;
}

float torchMean(const float* x, int64_t n, int lanes)
{
    const float sum = lanes == 16 ? torchSum<16>(x, n) : torchSum<8>(x, n);
    return sum / float(n);
}

namespace {

// U (UᵀU = H⁻¹) in place of the column-major upper triangle of a [n, n] (leading dimension n),
// which holds H's, and whether it is usable: the factorisation went through and U's diagonal is
// finite and positive. Both forms of the preamble end here.
bool factorInPlaceAndCheck(float* a, int64_t n)
{
    if (!upperCholeskyOfInverseInPlace(a, int(n), int(n)))
        return false;
    for (int64_t i = 0; i < n; ++i)
        if (!(std::isfinite(a[i * n + i]) && a[i * n + i] > 0.0f))
            return false;
    return true;
}

} // namespace

bool upperCholeskyOfInverse(const float* h, const float* diagonal, int64_t n, float* out, int threads)
{
    if (n < 1 || n >= 46341 || !inverseCholeskyAvailable())
        throw std::logic_error("cpu::upperCholeskyOfInverse: needs 1 <= n < 46341 and the BLAS/LAPACK functions");
    // H's row-major buffer read column-major is Hᵀ, its upper triangle H's lower one. One pass
    // (the buffer's first touch) writes each column's upper part from H, the diagonal given
    // and zeros below: the factorisation never touches the strictly lower part, so the zeros
    // are U's. Units of 256 columns: a layer narrower than that is copied on this thread.
    constexpr int64_t kColumnsPerUnit = 256;
    forkJoin((n + kColumnsPerUnit - 1) / kColumnsPerUnit, threads, [&](int, int64_t unit) {
        const int64_t end = std::min(n, (unit + 1) * kColumnsPerUnit);
        for (int64_t c = unit * kColumnsPerUnit; c < end; ++c) {
            std::memcpy(out + c * n, h + c * n, sizeof(float) * size_t(c));
            out[c * n + c] = diagonal[c];
            std::fill(out + c * n + c + 1, out + (c + 1) * n, 0.0f);
        }
    });
    return factorInPlaceAndCheck(out, n);
}

Damping raiseDampingUntilFactored(double damp, const CancelToken* cancel,
                                  const std::function<bool(double relDamp)>& factorWith)
{
    Damping damping{damp, 0};
    for (;;) {
        throwIfCancelled(cancel);
        if (factorWith(damping.relative))
            return damping;
        const double next = damping.relative > 0.0 ? damping.relative * kDampRaiseFactor : kFirstNonzeroDamp;
        if (next > kMaxRelativeDamp * (1.0 + 1e-9)) {
            std::ostringstream s;
            s << "hessian: not positive definite even with relative damping " << damping.relative;
            if (damping.raises > 0)
                s << " (raised " << damping.raises << (damping.raises == 1 ? " time" : " times") << " from " << damp
                  << ")";
            throw InputError(s.str());
        }
        damping.relative = next;
        ++damping.raises;
    }
}

namespace {

// Dead inputs and the damping schedule of both forms of factorHessian. `factorWith(damped,
// retry)` factors H with its diagonal replaced by `damped` and says whether that worked; retry
// is true from the second try on. H's diagonal is read here, before the first try.
Factor factorWithDamping(const float* h, int64_t n, double damp, const CancelToken* cancel,
                         const std::function<bool(const float* damped, bool retry)>& factorWith)
{
    if (n < 1 || n >= 46341 || !available())
        throw std::logic_error("cpu::factorHessian: needs 1 <= n < 46341 and the BLAS/LAPACK functions");
    Factor factor;
    // Dead inputs: H[j,j] = 1 (their columns of W are zeroed by the solve). Only the diagonal
    // changes, and it is put into the factorisation's buffer, so H is never copied whole.
    std::vector<float> diagonal(static_cast<size_t>(n));
    factor.dead.assign(size_t(n), 0);
    for (int64_t j = 0; j < n; ++j) {
        diagonal[size_t(j)] = h[j * n + j];
        if (diagonal[size_t(j)] == 0.0f) {
            factor.dead[size_t(j)] = 1;
            diagonal[size_t(j)] = 1.0f;
            ++factor.deadInputs;
        }
    }
    const float meanDiagonal = torchMean(diagonal.data(), n, atenFloatLanes()); // torch.mean(torch.diag(H))
    std::vector<float> damped(static_cast<size_t>(n));

    bool retry = false;
    const Damping damping = raiseDampingUntilFactored(damp, cancel, [&](double relDamp) {
        const float absolute = meanDiagonal * float(relDamp); // float32, as the reference's percdamp·mean
        for (int64_t j = 0; j < n; ++j)
            damped[size_t(j)] = diagonal[size_t(j)] + absolute;
        const bool factored = factorWith(damped.data(), retry);
        retry = true;
        if (!factored)
            return false;
        factor.dampAbsolute = double(absolute);
        return true;
    });
    factor.dampUsed = damping.relative;
    factor.dampRaises = damping.raises;
    return factor;
}

} // namespace

Factor factorHessian(const float* h, int64_t n, double damp, float* hinv, int threads, const CancelToken* cancel)
{
    return factorWithDamping(h, n, damp, cancel, [&](const float* damped, bool) {
        return upperCholeskyOfInverse(h, damped, n, hinv, threads);
    });
}

Factor factorHessianInPlace(float* h, int64_t n, double damp, int threads, const CancelToken* cancel)
{
    return factorWithDamping(h, n, damp, cancel, [&](const float* damped, bool retry) {
        // The row-major buffer read column-major is Hᵀ: its upper triangle, which the
        // factorisation reads and overwrites with U, is H's lower one, and H's strict upper
        // triangle (its strictly lower part) is never touched. A failed try left the lower
        // triangle part-way, so the next one restores it from the upper.
        if (retry)
            mirrorUpperToLower(h, n, threads);
        for (int64_t j = 0; j < n; ++j)
            h[j * n + j] = damped[j];
        return factorInPlaceAndCheck(h, n);
    });
}

std::string dampNote(int raises, double relDamp)
{
    if (raises == 0)
        return {};
    std::ostringstream s;
    s << "Hessian not positive definite: damping raised to " << relDamp << " (" << raises
      << (raises == 1 ? " raise)" : " raises)");
    return s.str();
}

double quadraticTrace(const float* a, int64_t rows, int64_t cols, int64_t lda, const float* h)
{
    const auto sgemm = fortran::functions().sgemm;
    if (!sgemm || rows > INT_MAX || cols > INT_MAX || lda > INT_MAX)
        throw std::logic_error("cpu::quadraticTrace: no sgemm_ in the process, or sizes beyond int");
    const int64_t bs = symmetricBlock(cols);
    std::vector<float> product(size_t(rows * std::min(bs, cols)));
    std::vector<float> diagonalBlock(size_t(std::min(bs, cols) * std::min(bs, cols)));
    double total = 0.0;
    for (int64_t c0 = 0; c0 < cols; c0 += bs) {
        const int64_t len = std::min(bs, cols - c0);
        // H_bb whole, from its upper triangle (element (i, j) at H[min, max]): only H's diagonal
        // and strict upper triangle are read, the part the CPU solve keeps of H.
        for (int64_t j = 0; j < len; ++j)
            for (int64_t i = 0; i < len; ++i)
                diagonalBlock[size_t(j * len + i)] =
                    h[(c0 + std::min(i, j)) * cols + c0 + std::max(i, j)];
        // P [rows, len] = A_b·H_bb (+ 2·A_{>b}·H_{b,>b}ᵀ). Column-major, Pᵀ = H_bbᵀ·A_bᵀ: the
        // row-major buffers read column-major are the transposes.
        const int m = int(len);
        const int n = int(rows);
        const int k = int(len);
        const int ldh = int(cols);
        const int ldaInt = int(lda);
        const float one = 1.0f;
        const float two = 2.0f;
        const float zero = 0.0f;
        sgemm("N", "N", &m, &n, &k, &one, diagonalBlock.data(), &m, a + c0, &ldaInt, &zero, product.data(), &m, 1,
              1);
        if (c0 + len < cols) {
            const int rest = int(cols - c0 - len);
            sgemm("T", "N", &m, &n, &rest, &two, h + c0 * cols + c0 + len, &ldh, a + c0 + len, &ldaInt, &one,
                  product.data(), &m, 1, 1);
        }
        // ⟨A_b, P⟩ in double, row by row, each row's products in eight interleaved sums (one
        // running sum was a chain of dependent additions, on one core while the other waits;
        // perf put about 1 % of solve-layer's samples at 4096 columns there).
        for (int64_t r = 0; r < rows; ++r) {
            const float* ar = a + r * lda + c0;
            const float* pr = product.data() + r * len;
            double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            int64_t j = 0;
            for (; j + 8 <= len; j += 8)
                for (int k = 0; k < 8; ++k)
                    lane[k] += double(ar[j + k]) * double(pr[j + k]);
            for (; j < len; ++j)
                lane[j % 8] += double(ar[j]) * double(pr[j]);
            total += ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
        }
    }
    return total;
}

void layerStatistics(const float* original, const float* w, int64_t rows, int64_t cols, const float* h,
                     bool sparseGpt, double dampAbsolute, double denseOutputEnergy, int threads, LayerStats& stats,
                     float* scratch)
{
    const double denominator =
        denseOutputEnergy >= 0.0 ? denseOutputEnergy : quadraticTrace(original, rows, cols, cols, h);
    // The zero count and ‖W − Ŵ‖² over live inputs (dead ones have zero rows and columns in H,
    // so they never contribute), per unit of rows on the kernel threads, summed in unit order.
    std::vector<float> live(static_cast<size_t>(cols));
    for (int64_t j = 0; j < cols; ++j)
        live[size_t(j)] = h[j * cols + j] != 0.0f ? 1.0f : 0.0f;
    const int64_t rowUnits = (rows + kRowsPerUnit - 1) / kRowsPerUnit;
    std::vector<int64_t> unitZeros(size_t(rowUnits), 0);
    std::vector<double> unitSquares(size_t(rowUnits), 0.0);
    forkJoin(rowUnits, threads, [&](int, int64_t unit) {
        const int64_t r0 = unit * kRowsPerUnit;
        countAndSquareDelta(original, w, live.data(), cols, r0, std::min(rows, r0 + kRowsPerUnit),
                            unitZeros[size_t(unit)], unitSquares[size_t(unit)]);
    });
    int64_t zeros = 0;
    double deltaSquares = 0.0;
    for (int64_t u = 0; u < rowUnits; ++u) {
        zeros += unitZeros[size_t(u)];
        deltaSquares += unitSquares[size_t(u)];
    }
    stats.sparsity = rows * cols > 0 ? double(zeros) / double(rows * cols) : 0.0;
    // SparseGPT's elimination gives ΔW = E·U with E the scaled errors and UᵀU = H_d⁻¹, so
    // tr(ΔW H_d ΔWᵀ) = Σ err² = 2·loss exactly, H_d being the damped H; hence
    // tr(ΔW H ΔWᵀ) = 2·loss − damp·‖ΔW‖², without a second rows·cols² product (checked against
    // the direct product to ~1e-6 relative). When the damping term nearly cancels the loss
    // (H almost zero) the direct product is used.
    const double twiceLoss = 2.0 * stats.loss;
    const double dampTerm = dampAbsolute * deltaSquares;
    double numerator = twiceLoss - dampTerm;
    if (!(sparseGpt && dampTerm <= 0.95 * twiceLoss)) {
        util::FloatBuffer allocated; // ΔW = W − Ŵ, in the caller's scratch when it gave one
        if (!scratch) {
            allocated = util::FloatBuffer(static_cast<size_t>(rows * cols));
            scratch = allocated.data();
        }
        forkJoin(rowUnits, threads, [&](int, int64_t unit) {
            const int64_t r1 = std::min(rows, (unit + 1) * kRowsPerUnit);
            for (int64_t e = unit * kRowsPerUnit * cols; e < r1 * cols; ++e)
                scratch[e] = original[e] - w[e];
        });
        numerator = quadraticTrace(scratch, rows, cols, cols, h);
    }
    stats.relOutputError = denominator > 0.0 ? std::max(0.0, numerator) / denominator : 0.0;
}

LayerStats solveSparseGpt(float* w, int64_t rows, int64_t cols, float* h, const SolverOptions& options,
                          bool* mask, int threads, const ProgressCallback& progress, const CancelToken* cancel,
                          const float* dense)
{
    const auto start = std::chrono::steady_clock::now();
    if (options.method != Method::SparseGpt || options.quant.enabled())
        throw std::invalid_argument("cpu::solveSparseGpt: SparseGPT without quantization only");
    options.validate(cols);
    throwIfCancelled(cancel);
    // The dense W for the statistics: the caller's (already checked), else a copy made in the
    // pass that checks it, as the engine's solveLayer does.
    util::FloatBuffer copy;
    if (!dense) {
        copy = util::FloatBuffer(static_cast<size_t>(rows * cols));
        if (!copyAllFinite(w, rows * cols, copy.data(), threads))
            throw InputError("weight: contains non-finite values (NaN or Inf)");
        dense = copy.data();
    }

    // The preamble: dead inputs' columns of W zeroed, then damping and Hinv, in h's own buffer.
    std::vector<float> hDiagonal(static_cast<size_t>(cols));
    for (int64_t j = 0; j < cols; ++j)
        hDiagonal[size_t(j)] = h[j * cols + j];
    const Factor factor = factorHessianInPlace(h, cols, options.damp, threads, cancel);
    if (factor.deadInputs > 0)
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t j = 0; j < cols; ++j)
                if (factor.dead[size_t(j)])
                    w[r * cols + j] = 0.0f;

    LayerStats stats;
    stats.deadInputs = factor.deadInputs;
    stats.dampUsed = factor.dampUsed;
    stats.dampRaises = factor.dampRaises;
    ColumnLoop loop;
    loop.w = w;
    loop.mask = mask;
    loop.rows = rows;
    loop.cols = cols;
    loop.hinv = h; // U column-major: element (i, j ≥ i) at j·cols + i; the loop reads no other
    loop.hinvRowStride = 1;
    loop.hinvColStride = cols;
    loop.options = &options;
    loop.workers = threads;
    const int64_t blocks = (cols + options.blocksize - 1) / options.blocksize;
    ProgressReporter reporter(progress, "solve", blocks);
    stats.loss = runColumnLoop(loop, reporter, cancel, dampNote(factor.dampRaises, factor.dampUsed));
    // H again where the statistics read it: its diagonal and strict upper triangle.
    for (int64_t j = 0; j < cols; ++j)
        h[j * cols + j] = hDiagonal[size_t(j)];
    layerStatistics(dense, w, rows, cols, h, /*sparseGpt=*/true, factor.dampAbsolute, -1.0, threads, stats);
    stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return stats;
}

} // namespace sparselab::solve::cpu
