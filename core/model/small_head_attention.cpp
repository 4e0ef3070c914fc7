#include "model/small_head_attention.h"

#include "util/cpu_clones.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

namespace sparselab::model {

namespace {

// Whole vectors of kLanes floats (one register at AVX-512; two or four in the other clones),
// as GCC's vector extension, so that the loops below keep their partial sums in registers
// (the auto-vectorised loops kept the value sums in L1). The helpers are always inlined, so
// that they are compiled for each clone of attendGroup rather than for the baseline only.
constexpr int64_t kLanes = 16;
using Floats = float __attribute__((vector_size(kLanes * sizeof(float))));
using Ints = int32_t __attribute__((vector_size(kLanes * sizeof(int32_t))));
#define SPARSELAB_INLINE [[gnu::always_inline]] inline
// Lambdas too: one that is not inlined is compiled for the baseline, not for the clone.
#define SPARSELAB_LAMBDA_INLINE __attribute__((always_inline))

SPARSELAB_INLINE Floats load(const float* p)
{
    Floats v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

SPARSELAB_INLINE Floats splat(float x) { return Floats{} + x; }

// The sum and the maximum of the lanes as trees of depth 4 (lanes swapped 8, 4, 2 and 1
// apart), not chains of 15 dependent operations: as chains, the per-row reductions were the
// kernel's largest cost. Lane 0 ends as ((v0 + v8) + (v4 + v12)) + … .
static_assert(kLanes == 16, "the shuffles below are written for 16 lanes");
#define SPARSELAB_SWAP_8 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7
#define SPARSELAB_SWAP_4 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11
#define SPARSELAB_SWAP_2 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13
#define SPARSELAB_SWAP_1 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14

SPARSELAB_INLINE float sumOf(Floats v)
{
    v += __builtin_shufflevector(v, v, SPARSELAB_SWAP_8);
    v += __builtin_shufflevector(v, v, SPARSELAB_SWAP_4);
    v += __builtin_shufflevector(v, v, SPARSELAB_SWAP_2);
    v += __builtin_shufflevector(v, v, SPARSELAB_SWAP_1);
    return v[0];
}

SPARSELAB_INLINE float maxOf(Floats v)
{
    Floats w = __builtin_shufflevector(v, v, SPARSELAB_SWAP_8);
    v = v < w ? w : v;
    w = __builtin_shufflevector(v, v, SPARSELAB_SWAP_4);
    v = v < w ? w : v;
    w = __builtin_shufflevector(v, v, SPARSELAB_SWAP_2);
    v = v < w ? w : v;
    w = __builtin_shufflevector(v, v, SPARSELAB_SWAP_1);
    v = v < w ? w : v;
    return v[0];
}

// e^x on x ≤ 0 as Cody and Waite reduce it: x = n·ln2 + r with |r| ≤ ln2/2 (ln2 split in a
// part exact in float and a correction), e^r by its degree-7 minimax polynomial (Cephes'
// expf coefficients), times 2ⁿ built in the exponent bits. n is x·log2(e) rounded to the
// nearest integer by adding and subtracting 1.5·2²³. Below −87.3 (2ⁿ would be subnormal) the
// result is 0; the kernel only feeds it s − max(s) ≤ 0, and −inf for masked keys. Written for
// one float and for a vector of them (the same operations lane by lane).
template <class T>
SPARSELAB_INLINE T expOf(T x)
{
    constexpr float kMinArg = -87.3365447f; // ln(2⁻¹²⁶)
    constexpr float kLog2e = 1.44269504088896341f;
    constexpr float kLn2High = 0.693359375f;
    constexpr float kLn2Low = -2.12194440e-4f;
    constexpr float kRoundingShift = 12582912.0f; // 1.5·2²³
    const T clamped = x < kMinArg ? kMinArg : x;
    const T n = (clamped * kLog2e + kRoundingShift) - kRoundingShift;
    T r = clamped - n * kLn2High;
    r = r - n * kLn2Low;
    T p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    T twoToN;
    if constexpr (std::is_same_v<T, float>) {
        const int32_t bits = (int32_t(n) + 127) * (int32_t(1) << 23);
        std::memcpy(&twoToN, &bits, sizeof twoToN);
        return x < kMinArg ? 0.0f : p * twoToN;
    } else {
        const Ints bits = (__builtin_convertvector(n, Ints) + 127) * (int32_t(1) << 23);
        std::memcpy(&twoToN, &bits, sizeof twoToN);
        return x < kMinArg ? T{} : p * twoToN;
    }
}

// f(d) for every column d < hd: written out HD times when HD > 0 (GCC at -O2 neither unrolled
// these loops nor honoured `#pragma GCC unroll` here, and kept the value sums in L1), a loop
// when HD = 0.
template <int64_t HD, class F>
SPARSELAB_INLINE void forEachColumn(int64_t hd, F&& f)
{
    if constexpr (HD > 0) {
        [&]<int64_t... D>(std::integer_sequence<int64_t, D...>) SPARSELAB_LAMBDA_INLINE { (f(D), ...); }(std::make_integer_sequence<int64_t, HD>{});
        (void)hd;
    } else {
        for (int64_t d = 0; d < hd; ++d)
            f(d);
    }
}

// The query rows of one KV group's rep heads, with its keys and values transposed to [hd, Tp]
// (Tp = T rounded up to kLanes, the padding zero) so that every loop over keys is contiguous
// and runs whole vectors. Row t scores keys 0..t and the rest of its last vector as −inf,
// whose exponential is 0, so no loop has a remainder. Two passes per row: the scores and
// their maximum; then the exponentials, their sum and the weighted sum of values, with one
// vector of partial sums per output column, reduced once per row. HD > 0 fixes the head size
// at compile time (forEachColumn unrolls its loops, so that its sums stay in registers); HD = 0
// reads it from hd.
template <int64_t HD>
SPARSELAB_INLINE void attendRows(const float* q, float* out, int64_t rep, int64_t T, int64_t hdRuntime, float scale,
                                 const float* __restrict kT, const float* __restrict vT, int64_t Tp,
                                 float* __restrict s)
{
    const int64_t hd = HD > 0 ? HD : hdRuntime;
    Floats lane{};
    for (int64_t l = 0; l < kLanes; ++l)
        lane[l] = float(l);
    const Floats minusInfinity = splat(-std::numeric_limits<float>::infinity());
    for (int64_t r = 0; r < rep; ++r)
        for (int64_t t = 0; t < T; ++t) {
            const float* qt = q + (r * T + t) * hd;
            float* ot = out + (r * T + t) * hd;
            const int64_t n = t + 1; // causal: keys 0..t
            const int64_t np = (n + kLanes - 1) / kLanes * kLanes;
            Floats highest = minusInfinity;
            for (int64_t j0 = 0; j0 < np; j0 += kLanes) {
                Floats acc{};
                forEachColumn<HD>(hd, [&](int64_t d) SPARSELAB_LAMBDA_INLINE { acc += qt[d] * load(kT + d * Tp + j0); });
                acc *= scale;
                if (j0 + kLanes > n) // the last vector: keys after t are masked
                    acc = lane + float(j0) < float(n) ? acc : minusInfinity;
                std::memcpy(s + j0, &acc, sizeof acc);
                highest = highest < acc ? acc : highest;
            }
            const Floats m = splat(maxOf(highest));
            Floats total{};
            Floats weighted[HD > 0 ? HD : kSmallHeadDim] = {};
            for (int64_t j0 = 0; j0 < np; j0 += kLanes) {
                const Floats e = expOf(load(s + j0) - m);
                total += e;
                forEachColumn<HD>(hd, [&](int64_t d) SPARSELAB_LAMBDA_INLINE { weighted[d] += e * load(vT + d * Tp + j0); });
            }
            const float sum = sumOf(total);
            forEachColumn<HD>(hd, [&](int64_t d) SPARSELAB_LAMBDA_INLINE { ot[d] = sumOf(weighted[d]) / sum; });
        }
}
// One KV group: transpose its keys and values, then its rows at the head size's own width.
SPARSELAB_CPU_CLONES
void attendGroup(const float* q, const float* k, const float* v, float* out, int64_t rep, int64_t T, int64_t hd,
                 float scale, std::vector<float>& keysT, std::vector<float>& valuesT, std::vector<float>& scores)
{
    const int64_t Tp = (T + kLanes - 1) / kLanes * kLanes;
    keysT.assign(size_t(hd * Tp), 0.0f);
    valuesT.assign(size_t(hd * Tp), 0.0f);
    scores.resize(size_t(Tp));
    for (int64_t j = 0; j < T; ++j)
        for (int64_t d = 0; d < hd; ++d) {
            keysT[size_t(d * Tp + j)] = k[j * hd + d];
            valuesT[size_t(d * Tp + j)] = v[j * hd + d];
        }
    const float* kT = keysT.data();
    const float* vT = valuesT.data();
    float* s = scores.data();
    switch (hd) {
    case 4: attendRows<4>(q, out, rep, T, hd, scale, kT, vT, Tp, s); break;
    case 8: attendRows<8>(q, out, rep, T, hd, scale, kT, vT, Tp, s); break;
    case 16: attendRows<16>(q, out, rep, T, hd, scale, kT, vT, Tp, s); break;
    case 32: attendRows<32>(q, out, rep, T, hd, scale, kT, vT, Tp, s); break;
    default: attendRows<0>(q, out, rep, T, hd, scale, kT, vT, Tp, s); break;
    }
}

} // namespace

void smallHeadCausalAttention(const float* q, const float* k, const float* v, float* out, int64_t rep, int64_t T,
                              int64_t hd, float scale, int64_t firstGroup, int64_t lastGroup)
{
    std::vector<float> keysT, valuesT, scores;
    for (int64_t g = firstGroup; g < lastGroup; ++g)
        attendGroup(q + g * rep * T * hd, k + g * T * hd, v + g * T * hd, out + g * rep * T * hd, rep, T, hd, scale,
                    keysT, valuesT, scores);
}

float expNonPositive(float x) { return expOf(x); }

} // namespace sparselab::model
