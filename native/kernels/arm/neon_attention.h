// Attention over the fp16 KV cache on ARMv8.0 NEON (ScoresF16Fn, SoftmaxF16Fn, WeighF16Fn in
// ../kernel_table.h) and the F16 dot product whose order of sums the scores repeat. Included by
// arm/neon.cc alone; internal linkage (the rule in ../kernel_table.h). ARMv8.0 widens fp16 to
// fp32 (FCVTL) but has no fp16 arithmetic: widen, then multiply in fp32.
//
// Both kernels take the m query heads of one kv head at once: a block of four keys is widened
// into a small buffer once and every query's dots run against it; a value row's eight columns are
// widened once and weigh into up to eight heads' accumulators held in registers.
#pragma once
#include <arm_neon.h>

#include <cstddef>
#include <cmath>
#include <cstdint>
#include <initializer_list>

#include "../panel_pass.h"

namespace {
namespace attention_neon {

inline float halfToFloat(uint16_t h) { return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0); }
inline float32x4_t load4Half(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }

// The vector part of the F16 dot product over the first n4 elements (a multiple of 4): four
// chains of 4-wide FMAs over 16 elements at a time, then 4 at a time into the first, the chains
// added pairwise. x(i), y(i): four floats from element i.
template <class X, class Y>
inline float32x4_t dotChains(int64_t n4, X x, Y y) {
  float32x4_t acc[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
  int64_t i = 0;
  for (; i + 16 <= n4; i += 16) {
    for (int k = 0; k < 4; ++k) acc[k] = vfmaq_f32(acc[k], x(i + 4 * k), y(i + 4 * k));
  }
  for (; i < n4; i += 4) acc[0] = vfmaq_f32(acc[0], x(i), y(i));
  return vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3]));
}

// The chains summed across ((l0+l1) + (l2+l3)), then the elements past the last 4 one by one.
// y4(i): four floats of y from element i; y1(i): element i.
template <class Y4, class Y1>
inline float dotHalves(int64_t n, const uint16_t* x, Y4 y4, Y1 y1) {
  const int64_t n4 = n & ~int64_t{3};
  const float32x4_t c = dotChains(n4, [&](int64_t i) { return load4Half(x + i); }, y4);
  float sum = vgetq_lane_f32(vpaddq_f32(vpaddq_f32(c, c), c), 0);
  for (int64_t i = n4; i < n; ++i) sum += halfToFloat(x[i]) * y1(i);
  return sum;
}

// The F16 dot product (VecDotFn).
float dotF16F16(int64_t n, const void* w, const void* a) {
  const auto* y = static_cast<const uint16_t*>(a);
  return dotHalves(n, static_cast<const uint16_t*>(w), [&](int64_t i) { return load4Half(y + i); },
                   [&](int64_t i) { return halfToFloat(y[i]); });
}

// ScoresF16Fn. Keys four at a time, widened into `keys4` [4][d] once for all m queries; lane r
// of a query's result is key r's dot, summed across as dotHalves does. Heads of more than
// kMaxWidened values or not a multiple of 4, and the last n % 4 keys, take the dot one key at a
// time.
void scoresF16(int64_t n, const void* keys, size_t stride, int64_t d, const float* q, int64_t m, float scale,
               float* out, size_t outStride) {
  constexpr int64_t kMaxWidened = 256;
  const auto* base = static_cast<const uint8_t*>(keys);
  const auto key = [&](int64_t j) { return reinterpret_cast<const uint16_t*>(base + j * stride); };
  int64_t j = 0;
  if (d % 4 == 0 && d <= kMaxWidened) {
    alignas(16) float keys4[4 * kMaxWidened];
    for (; j + 4 <= n; j += 4) {
      for (int r = 0; r < 4; ++r) {
        for (int64_t i = 0; i < d; i += 4) vst1q_f32(keys4 + r * d + i, load4Half(key(j + r) + i));
      }
      for (int64_t g = 0; g < m; ++g) {
        const float* qg = q + g * d;  // [d]
        float32x4_t v[4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; ++r) {
          const float* kr = keys4 + r * d;
          v[r] = dotChains(d, [&](int64_t i) { return vld1q_f32(kr + i); }, [&](int64_t i) { return vld1q_f32(qg + i); });
        }
        const float32x4_t sums = vpaddq_f32(vpaddq_f32(v[0], v[1]), vpaddq_f32(v[2], v[3]));
        vst1q_f32(out + g * outStride + j, vmulq_n_f32(sums, scale));
      }
    }
  }
  for (; j < n; ++j) {
    for (int64_t g = 0; g < m; ++g) {
      const float* qg = q + g * d;
      out[g * outStride + j] =
          dotHalves(d, key(j), [&](int64_t i) { return vld1q_f32(qg + i); }, [&](int64_t i) { return qg[i]; }) * scale;
    }
  }
}

// e^x for x ≤ 0, four at a time, as the AVX2 set computes it: x = n·ln2 + r (ln2 in two parts),
// e^r by Cephes' expf polynomial, 2^n put into the exponent; below −80 taken at −80.
inline float32x4_t expNonPositive(float32x4_t x) {
  x = vmaxq_f32(x, vdupq_n_f32(-80.0f));
  const float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(1.44269504088896341f)));
  float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
  r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
  float32x4_t p = vdupq_n_f32(1.9875691500e-4f);
  for (float c : {1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f}) {
    p = vfmaq_f32(vdupq_n_f32(c), p, r);
  }
  p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), p, vmulq_f32(r, r));
  const int32x4_t twoToN = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
  return vmulq_f32(p, vreinterpretq_f32_s32(twoToN));
}

// SoftmaxF16Fn: the maximum, then e^(s − max) with its sum in doubles (two lanes per half), then
// each times 1/sum rounded through fp16 (FCVT, to nearest even). The last n % 4 scores go one at
// a time through the same exponential.
void softmaxF16(int64_t n, float* s) {
  const int64_t n4 = n & ~int64_t{3};
  float32x4_t max4 = vdupq_n_f32(-INFINITY);
  for (int64_t j = 0; j < n4; j += 4) max4 = vmaxq_f32(max4, vld1q_f32(s + j));
  float maxScore = vmaxvq_f32(max4);
  for (int64_t j = n4; j < n; ++j) maxScore = s[j] > maxScore ? s[j] : maxScore;

  const float32x4_t maxAll = vdupq_n_f32(maxScore);
  float64x2_t sumLow = vdupq_n_f64(0.0), sumHigh = vdupq_n_f64(0.0);
  for (int64_t j = 0; j < n4; j += 4) {
    const float32x4_t e = expNonPositive(vsubq_f32(vld1q_f32(s + j), maxAll));
    vst1q_f32(s + j, e);
    sumLow = vaddq_f64(sumLow, vcvt_f64_f32(vget_low_f32(e)));
    sumHigh = vaddq_f64(sumHigh, vcvt_high_f64_f32(e));
  }
  double sum = vaddvq_f64(vaddq_f64(sumLow, sumHigh));
  for (int64_t j = n4; j < n; ++j) {
    s[j] = vgetq_lane_f32(expNonPositive(vdupq_n_f32(s[j] - maxScore)), 0);
    sum += s[j];
  }

  const float32x4_t inv = vdupq_n_f32(static_cast<float>(1.0 / sum));
  for (int64_t j = 0; j < n4; j += 4) vst1q_f32(s + j, vcvt_f32_f16(vcvt_f16_f32(vmulq_f32(vld1q_f32(s + j), inv))));
  for (int64_t j = n4; j < n; ++j) {
    s[j] = vgetq_lane_f32(vcvt_f32_f16(vcvt_f16_f32(vmulq_f32(vdupq_n_f32(s[j]), inv))), 0);
  }
}

// Columns c..c+7 of G heads over rows [0, n): 2·G accumulators in registers, each row's eight
// values widened once.
template <int G>
inline void weighColumns(int64_t n, const float* p, size_t pStride, const uint8_t* rows, size_t stride, int64_t c,
                         float* out, size_t outStride) {
  float32x4_t lo[G], hi[G];
#pragma GCC unroll 8
  for (int g = 0; g < G; ++g) lo[g] = hi[g] = vdupq_n_f32(0.0f);
  for (int64_t j = 0; j < n; ++j) {
    const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(reinterpret_cast<const uint16_t*>(rows + j * stride) + c));
    const float32x4_t xl = vcvt_f32_f16(vget_low_f16(h)), xh = vcvt_high_f32_f16(h);
#pragma GCC unroll 8
    for (int g = 0; g < G; ++g) {
      const float32x4_t pj = vld1q_dup_f32(p + g * pStride + j);
      lo[g] = vfmaq_f32(lo[g], pj, xl);
      hi[g] = vfmaq_f32(hi[g], pj, xh);
    }
  }
#pragma GCC unroll 8
  for (int g = 0; g < G; ++g) {
    vst1q_f32(out + g * outStride + c, lo[g]);
    vst1q_f32(out + g * outStride + c + 4, hi[g]);
  }
}

// WeighF16Fn. Heads eight at a time: their rows in common (the shortest head's) run through
// weighColumns, eight columns at a time; a head's further rows are added onto its output after,
// in order, so that its sum is the same as alone.
void weighF16(int64_t m, const int64_t* n, const float* p, size_t pStride, const void* rows, size_t stride, int64_t d,
              float* out, size_t outStride) {
  const auto* base = static_cast<const uint8_t*>(rows);
  const auto row = [&](int64_t j) { return reinterpret_cast<const uint16_t*>(base + j * stride); };
  const int64_t d8 = d & ~int64_t{7};
  for (int64_t g0 = 0; g0 < m; g0 += 8) {
    const int heads = static_cast<int>(m - g0 < 8 ? m - g0 : 8);
    const float* pg = p + g0 * pStride;
    float* og = out + g0 * outStride;
    int64_t common = n[g0];
    for (int g = 1; g < heads; ++g) common = n[g0 + g] < common ? n[g0 + g] : common;
    for (int64_t c = 0; c < d8; c += 8) {
      withRowCount<8>(heads, [&](auto h) { weighColumns<h.value>(common, pg, pStride, base, stride, c, og, outStride); });
    }
    for (int g = 0; g < heads; ++g) {
      const float* pj = pg + g * pStride;
      float* o = og + g * outStride;  // [d]
      for (int64_t c = d8; c < d; ++c) {
        float acc = 0.0f;
        for (int64_t j = 0; j < common; ++j) acc = std::fma(pj[j], halfToFloat(row(j)[c]), acc);
        o[c] = acc;
      }
      for (int64_t j = common; j < n[g0 + g]; ++j) {
        const float32x4_t pv = vdupq_n_f32(pj[j]);
        for (int64_t c = 0; c < d8; c += 4) vst1q_f32(o + c, vfmaq_f32(vld1q_f32(o + c), pv, load4Half(row(j) + c)));
        for (int64_t c = d8; c < d; ++c) o[c] = std::fma(pj[j], halfToFloat(row(j)[c]), o[c]);
      }
    }
  }
}

}  // namespace attention_neon
}  // namespace
