#include "model/small_head_attention.h"

#include "util/cpu_clones.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace sparselab::model {

namespace {

// Reductions keep kLanes partial results (one vector register at AVX-512) so that the loops
// vectorise without reassociating a single float sum. The helpers are always inlined, so that
// they are compiled for each clone of attendGroup rather than for the baseline only.
constexpr int64_t kLanes = 16;
#define SPARSELAB_INLINE [[gnu::always_inline]] inline

// e^x on x ≤ 0 as Cody and Waite reduce it: x = n·ln2 + r with |r| ≤ ln2/2 (ln2 split in a
// part exact in float and a correction), e^r by its degree-7 minimax polynomial (Cephes'
// expf coefficients), times 2ⁿ built in the exponent bits. n is x·log2(e) rounded to the
// nearest integer by adding and subtracting 1.5·2²³ (std::floor would keep the loop from
// vectorising). Below −87.3 (2ⁿ would be subnormal) the result is 0; the kernel only feeds it
// s − max(s) ≤ 0, and −inf for masked keys.
SPARSELAB_INLINE float expOf(float x)
{
    constexpr float kMinArg = -87.3365447f; // ln(2⁻¹²⁶)
    constexpr float kLog2e = 1.44269504088896341f;
    constexpr float kLn2High = 0.693359375f;
    constexpr float kLn2Low = -2.12194440e-4f;
    constexpr float kRoundingShift = 12582912.0f; // 1.5·2²³
    const float clamped = std::max(x, kMinArg);
    const float n = (clamped * kLog2e + kRoundingShift) - kRoundingShift;
    float r = clamped - n * kLn2High;
    r = r - n * kLn2Low;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    const int32_t bits = (int32_t(n) + 127) * (int32_t(1) << 23);
    float twoToN;
    std::memcpy(&twoToN, &bits, sizeof twoToN);
    return x < kMinArg ? 0.0f : p * twoToN;
}

SPARSELAB_INLINE float maxOf(const float* x, int64_t n)
{
    float lanes[kLanes];
    std::fill(lanes, lanes + kLanes, -std::numeric_limits<float>::infinity());
    int64_t j = 0;
    for (; j + kLanes <= n; j += kLanes)
        for (int64_t l = 0; l < kLanes; ++l)
            lanes[l] = lanes[l] < x[j + l] ? x[j + l] : lanes[l];
    float m = lanes[0];
    for (int64_t l = 1; l < kLanes; ++l)
        m = m < lanes[l] ? lanes[l] : m;
    for (; j < n; ++j)
        m = m < x[j] ? x[j] : m;
    return m;
}

// x[j] = e^(x[j] − m); returns the sum.
SPARSELAB_INLINE float exponentiate(float* __restrict x, int64_t n, float m)
{
    for (int64_t j = 0; j < n; ++j)
        x[j] = expOf(x[j] - m);
    float lanes[kLanes] = {};
    int64_t j = 0;
    for (; j + kLanes <= n; j += kLanes)
        for (int64_t l = 0; l < kLanes; ++l)
            lanes[l] += x[j + l];
    float sum = 0.0f;
    for (int64_t l = 0; l < kLanes; ++l)
        sum += lanes[l];
    for (; j < n; ++j)
        sum += x[j];
    return sum;
}

// The query rows of one KV group's rep heads, with its keys and values transposed to [hd, Tp]
// (Tp = T rounded up to kLanes, the padding zero) so that every loop over keys is contiguous
// and runs whole vectors. Row t scores keys 0..t and the rest of its last vector as −inf,
// whose exponential is 0, so no loop has a remainder. The value sums keep kLanes partial sums
// per output column across all key vectors and reduce them once per row. HD > 0 fixes the
// head size at compile time (its loops unroll); HD = 0 reads it from hd.
template <int64_t HD>
SPARSELAB_INLINE void attendRows(const float* q, float* out, int64_t rep, int64_t T, int64_t hdRuntime, float scale,
                                 const float* __restrict kT, const float* __restrict vT, int64_t Tp,
                                 float* __restrict s)
{
    const int64_t hd = HD > 0 ? HD : hdRuntime;
    for (int64_t r = 0; r < rep; ++r)
        for (int64_t t = 0; t < T; ++t) {
            const float* qt = q + (r * T + t) * hd;
            float* ot = out + (r * T + t) * hd;
            const int64_t n = t + 1; // causal: keys 0..t
            const int64_t np = (n + kLanes - 1) / kLanes * kLanes;
            for (int64_t j0 = 0; j0 < np; j0 += kLanes) {
                float acc[kLanes] = {};
                for (int64_t d = 0; d < hd; ++d) {
                    const float qd = qt[d];
                    const float* kd = kT + d * Tp + j0;
                    for (int64_t l = 0; l < kLanes; ++l)
                        acc[l] += qd * kd[l];
                }
                for (int64_t l = 0; l < kLanes; ++l)
                    s[j0 + l] = j0 + l < n ? acc[l] * scale : -std::numeric_limits<float>::infinity();
            }
            const float sum = exponentiate(s, np, maxOf(s, np));
            float weighted[HD > 0 ? HD : kSmallHeadDim][kLanes] = {};
            for (int64_t j0 = 0; j0 < np; j0 += kLanes)
                for (int64_t d = 0; d < hd; ++d) {
                    const float* vd = vT + d * Tp + j0;
                    for (int64_t l = 0; l < kLanes; ++l)
                        weighted[d][l] += s[j0 + l] * vd[l];
                }
            for (int64_t d = 0; d < hd; ++d) {
                float total = 0.0f;
                for (int64_t l = 0; l < kLanes; ++l)
                    total += weighted[d][l];
                ot[d] = total / sum;
            }
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
