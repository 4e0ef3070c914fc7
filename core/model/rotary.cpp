#include "model/rotary.h"

namespace sparselab::model {

void rotateHalfRows(const float* x, int64_t strideB, int64_t strideH, int64_t strideT, int64_t H, int64_t T,
                    int64_t hd, const float* cos, const float* sin, float* out, int64_t firstRow, int64_t lastRow)
{
    const int64_t half = hd / 2;
    for (int64_t r = firstRow; r < lastRow; ++r) {
        const int64_t t = r % T, h = (r / T) % H, b = r / (T * H);
        const float* __restrict row = x + b * strideB + h * strideH + t * strideT;
        const float* __restrict c = cos + t * hd;
        const float* __restrict s = sin + t * hd;
        float* __restrict o = out + r * hd;
        for (int64_t i = 0; i < half; ++i) {
            // x·cos + (−x₂)·sin: the negation is exact, so a − b rounds as a + (−b) does.
            const float lo = row[i], hi = row[i + half];
            const float loCos = lo * c[i], hiSin = hi * s[i];
            const float hiCos = hi * c[i + half], loSin = lo * s[i + half];
            o[i] = loCos - hiSin;
            o[i + half] = hiCos + loSin;
        }
    }
}

} // namespace sparselab::model
