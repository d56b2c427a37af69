// The scalar set: reference dot products (one weight row against one activation row already in
// the weight's dotWith format), the activation quantizers and the fp16 row kernels. Written for
// reading, not speed: every SIMD kernel is tested against these, and they follow the arithmetic
// order of ggml's CPU backend (integer sums per block, then the float scales) so that the
// engine's logits track llama.cpp's. They also serve every type and path no faster set has.
#include <algorithm>
#include <cmath>

#include "kernel_table.h"
#include "../gguf/k_quants.h"
#include "../gguf/tensor_types.h"

// No fused multiply-add: the reference must give the same bits on x86-64 and on aarch64 (where
// GCC would otherwise contract a*b + c).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace kernels {
namespace {

using k_quants::unpackQ2Q3K;
using k_quants::unpackQ4Q5K;
using k_quants::unpackQ6K;
using k_quants::unpackScaleMinK4;
using k_quants::unpackScalesQ3K;

// ---------------------------------------------------------------- float formats

float dotF32F32Scalar(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const float*>(w);  // [n]
  const auto* y = static_cast<const float*>(a);  // [n]
  double sum = 0;  // a double accumulator, as ggml's scalar path, keeps long rows accurate
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i] * y[i]);
  return static_cast<float>(sum);
}

float dotF16F16Scalar(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint16_t*>(w);  // [n] fp16 bits
  const auto* y = static_cast<const uint16_t*>(a);  // [n] fp16 bits
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(fp16ToFp32(x[i]) * fp16ToFp32(y[i]));
  return static_cast<float>(sum);
}

// The key rows in the outer loop: each is read once for the m queries (q [m][d], fp16 values).
void scoresF16Scalar(int64_t n, const void* keys, size_t stride, int64_t d, const float* q, int64_t m, float scale,
                     float* out, size_t outStride) {
  for (int64_t j = 0; j < n; ++j) {
    const auto* k = reinterpret_cast<const uint16_t*>(static_cast<const uint8_t*>(keys) + j * stride);  // [d] fp16
    for (int64_t g = 0; g < m; ++g) {
      const float* qg = q + g * d;
      double sum = 0;  // dotF16F16Scalar's sum: q's floats are the halves it would widen
      for (int64_t i = 0; i < d; ++i) sum += static_cast<double>(fp16ToFp32(k[i]) * qg[i]);
      out[g * outStride + j] = static_cast<float>(sum) * scale;
    }
  }
}

void roundF16Scalar(int64_t n, float* x) {
  for (int64_t i = 0; i < n; ++i) x[i] = fp16ToFp32(fp32ToFp16(x[i]));
}

void softmaxF16Scalar(int64_t n, float* s) {
  float maxScore = -INFINITY;
  for (int64_t j = 0; j < n; ++j) maxScore = std::max(maxScore, s[j]);
  double sum = 0.0;
  for (int64_t j = 0; j < n; ++j) {
    s[j] = std::exp(s[j] - maxScore);
    sum += s[j];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t j = 0; j < n; ++j) s[j] = fp16ToFp32(fp32ToFp16(s[j] * inv));
}

void weighF16Scalar(int64_t m, const int64_t* n, const float* p, size_t pStride, const void* rows, size_t stride,
                    int64_t d, float* out, size_t outStride) {
  for (int64_t g = 0; g < m; ++g) {
    float* o = out + g * outStride;  // [d]
    for (int64_t i = 0; i < d; ++i) o[i] = 0.0f;
    for (int64_t j = 0; j < n[g]; ++j) {
      const auto* x = reinterpret_cast<const uint16_t*>(static_cast<const uint8_t*>(rows) + j * stride);  // [d] fp16
      for (int64_t i = 0; i < d; ++i) o[i] = std::fma(p[g * pStride + j], fp16ToFp32(x[i]), o[i]);
    }
  }
}

// ---------------------------------------------------------------- 32-element blocks
// Element j of a 4-bit block is the low nibble of qs[j] for j < 16 and the high nibble of
// qs[j - 16] otherwise; the 5-bit formats add bit j of the little-endian 32-bit qh.

inline uint32_t loadQh(const uint8_t qh[4]) {
  return uint32_t(qh[0]) | uint32_t(qh[1]) << 8 | uint32_t(qh[2]) << 16 | uint32_t(qh[3]) << 24;
}

float dotQ4_0Q8_0Scalar(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ4_0*>(w);  // [n / 32]
  const auto* y = static_cast<const BlockQ8_0*>(a);  // [n / 32]
  float sum = 0;
  for (int64_t b = 0; b < n / kQK; ++b) {
    int sumi = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int lo = (x[b].qs[j] & 0x0F) - 8;
      const int hi = (x[b].qs[j] >> 4) - 8;
      sumi += lo * y[b].qs[j] + hi * y[b].qs[j + kQK / 2];
    }
    sum += sumi * fp16ToFp32(x[b].d) * fp16ToFp32(y[b].d);
  }
  return sum;
}

float dotQ4_1Q8_1Scalar(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ4_1*>(w);  // [n / 32]
  const auto* y = static_cast<const BlockQ8_1*>(a);  // [n / 32]
  float sum = 0;
  for (int64_t b = 0; b < n / kQK; ++b) {
    int sumi = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      sumi += (x[b].qs[j] & 0x0F) * y[b].qs[j] + (x[b].qs[j] >> 4) * y[b].qs[j + kQK / 2];
    }
    // sum((q*d + m) * yq*yd) = d*yd*sum(q*yq) + m*(yd*sum(yq)), and y.s holds yd*sum(yq)
    sum += (fp16ToFp32(x[b].d) * fp16ToFp32(y[b].d)) * sumi + fp16ToFp32(x[b].m) * fp16ToFp32(y[b].s);
  }
  return sum;
}

float dotQ5_0Q8_0Scalar(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ5_0*>(w);  // [n / 32]
  const auto* y = static_cast<const BlockQ8_0*>(a);  // [n / 32]
  float sum = 0;
  for (int64_t b = 0; b < n / kQK; ++b) {
    const uint32_t qh = loadQh(x[b].qh);
    int sumi = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int lo = ((x[b].qs[j] & 0x0F) | ((qh >> j) & 1) << 4) - 16;
      const int hi = ((x[b].qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4) - 16;
      sumi += lo * y[b].qs[j] + hi * y[b].qs[j + kQK / 2];
    }
    sum += (fp16ToFp32(x[b].d) * fp16ToFp32(y[b].d)) * sumi;
  }
  return sum;
}

float dotQ5_1Q8_1Scalar(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ5_1*>(w);  // [n / 32]
  const auto* y = static_cast<const BlockQ8_1*>(a);  // [n / 32]
  float sum = 0;
  for (int64_t b = 0; b < n / kQK; ++b) {
    const uint32_t qh = loadQh(x[b].qh);
    int sumi = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int lo = (x[b].qs[j] & 0x0F) | ((qh >> j) & 1) << 4;
      const int hi = (x[b].qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4;
      sumi += lo * y[b].qs[j] + hi * y[b].qs[j + kQK / 2];
    }
    sum += (fp16ToFp32(x[b].d) * fp16ToFp32(y[b].d)) * sumi + fp16ToFp32(x[b].m) * fp16ToFp32(y[b].s);
  }
  return sum;
}

float dotQ8_0Q8_0Scalar(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ8_0*>(w);  // [n / 32]
  const auto* y = static_cast<const BlockQ8_0*>(a);  // [n / 32]
  float sum = 0;
  for (int64_t b = 0; b < n / kQK; ++b) {
    int sumi = 0;
    for (int j = 0; j < kQK; ++j) sumi += x[b].qs[j] * y[b].qs[j];
    sum += sumi * (fp16ToFp32(x[b].d) * fp16ToFp32(y[b].d));
  }
  return sum;
}

// ---------------------------------------------------------------- 256-element super-blocks
// Q4_K/Q5_K: 8 sub-blocks of 32, each with a 6-bit scale and min; element = d*scale*q - dmin*min
// (layout in ../gguf/k_quants.h). The mins are folded in through Q8_K's bsums (sums of 16 activation quants).

// Shared by Q4_K and Q5_K once the quants are unpacked.
float dotScaleMinSuperBlock(const int8_t q[kQK_K], const uint8_t packedScales[12], uint16_t d,
                                   uint16_t dmin, const BlockQ8_K& y) {
  uint8_t scale[8], min[8];
  for (int j = 0; j < 8; ++j) unpackScaleMinK4(j, packedScales, &scale[j], &min[j]);
  int sumScaled = 0;  // sum over sub-blocks of scale * sum(q * yq)
  for (int j = 0; j < 8; ++j) {
    int sumi = 0;
    for (int i = 0; i < 32; ++i) sumi += q[32 * j + i] * y.qs[32 * j + i];
    sumScaled += scale[j] * sumi;
  }
  int sumMins = 0;  // sum over sub-blocks of min * sum(yq)
  for (int g = 0; g < kQK_K / 16; ++g) sumMins += y.bsums[g] * min[g / 2];
  return fp16ToFp32(d) * y.d * sumScaled - fp16ToFp32(dmin) * y.d * sumMins;
}

float dotQ4_KQ8_KScalar(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ4_K*>(w);  // [n / 256]
  const auto* y = static_cast<const BlockQ8_K*>(a);  // [n / 256]
  float sum = 0;
  int8_t q[kQK_K];
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    unpackQ4Q5K(x[b].qs, nullptr, q);
    sum += dotScaleMinSuperBlock(q, x[b].scales, x[b].d, x[b].dmin, y[b]);
  }
  return sum;
}

float dotQ5_KQ8_KScalar(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ5_K*>(w);  // [n / 256]
  const auto* y = static_cast<const BlockQ8_K*>(a);  // [n / 256]
  float sum = 0;
  int8_t q[kQK_K];
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    unpackQ4Q5K(x[b].qs, x[b].qh, q);
    sum += dotScaleMinSuperBlock(q, x[b].scales, x[b].d, x[b].dmin, y[b]);
  }
  return sum;
}

// The formats of 16 groups of 16 (Q2_K, Q3_K, Q6_K): Σ_g scale[g] · Σ q·a over group g, one
// integer for the super-block.
int sumScaledGroups16(const int8_t q[kQK_K], const int scale[kQK_K / 16], const int8_t a[kQK_K]) {
  int sumScaled = 0;
  for (int g = 0; g < kQK_K / 16; ++g) {
    int sumi = 0;
    for (int i = 0; i < 16; ++i) sumi += q[16 * g + i] * a[16 * g + i];
    sumScaled += scale[g] * sumi;
  }
  return sumScaled;
}

// Q6_K: signed 8-bit scales, quants in -32..31 (layout in ../gguf/k_quants.h).
float dotQ6_KQ8_KScalar(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ6_K*>(w);  // [n / 256]
  const auto* y = static_cast<const BlockQ8_K*>(a);  // [n / 256]
  float sum = 0;
  int8_t q[kQK_K];
  int scale[kQK_K / 16];
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    unpackQ6K(x[b], q);
    for (int g = 0; g < kQK_K / 16; ++g) scale[g] = x[b].scales[g];
    sum += fp16ToFp32(x[b].d) * y[b].d * sumScaledGroups16(q, scale, y[b].qs);
  }
  return sum;
}

// Q3_K: signed 6-bit scales, quants in -4..3; no min.
float dotQ3_KQ8_KScalar(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ3_K*>(w);  // [n / 256]
  const auto* y = static_cast<const BlockQ8_K*>(a);  // [n / 256]
  float sum = 0;
  int8_t q[kQK_K];
  int scale[kQK_K / 16];
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    unpackQ2Q3K(x[b].qs, x[b].hmask, q);
    unpackScalesQ3K(x[b].scales, scale);
    sum += fp16ToFp32(x[b].d) * y[b].d * sumScaledGroups16(q, scale, y[b].qs);
  }
  return sum;
}

// Q2_K: quants 0..3, a 4-bit scale and a 4-bit min per group (one byte: scale low, min high);
// element = d·scale·q − dmin·min, the mins folded in through Q8_K's bsums as for Q4_K.
float dotQ2_KQ8_KScalar(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ2_K*>(w);  // [n / 256]
  const auto* y = static_cast<const BlockQ8_K*>(a);  // [n / 256]
  float sum = 0;
  int8_t q[kQK_K];
  int scale[kQK_K / 16];
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    unpackQ2Q3K(x[b].qs, nullptr, q);
    int sumMins = 0;  // Σ_g min_g · bsum_g
    for (int g = 0; g < kQK_K / 16; ++g) {
      scale[g] = x[b].scales[g] & 0x0F;
      sumMins += y[b].bsums[g] * (x[b].scales[g] >> 4);
    }
    const int sumScaled = sumScaledGroups16(q, scale, y[b].qs);
    sum += fp16ToFp32(x[b].d) * y[b].d * sumScaled - fp16ToFp32(x[b].dmin) * y[b].d * sumMins;
  }
  return sum;
}

// ---------------------------------------------------------------- the set

// The formats' own conversions, as entries of the table.
void quantizeQ8_0Scalar(const float* src, void* dst, int64_t n) { quantizeRow(TensorType::Q8_0, src, dst, n); }
void quantizeQ8_1Scalar(const float* src, void* dst, int64_t n) { quantizeRow(TensorType::Q8_1, src, dst, n); }
void quantizeQ8_KScalar(const float* src, void* dst, int64_t n) { quantizeRow(TensorType::Q8_K, src, dst, n); }
void quantizeF16Scalar(const float* src, void* dst, int64_t n) { quantizeRow(TensorType::F16, src, dst, n); }
void dequantizeF16Scalar(const void* src, float* dst, int64_t n) { dequantizeRow(TensorType::F16, src, dst, n); }

bool alwaysRuns() { return true; }

constexpr KernelSet scalarSet() {
  KernelSet s{"scalar", alwaysRuns};
  s[TensorType::F32].dot = dotF32F32Scalar;
  s[TensorType::F16] = {dotF16F16Scalar, {}, {}, quantizeF16Scalar, dequantizeF16Scalar};
  s[TensorType::Q4_0].dot = dotQ4_0Q8_0Scalar;
  s[TensorType::Q4_1].dot = dotQ4_1Q8_1Scalar;
  s[TensorType::Q5_0].dot = dotQ5_0Q8_0Scalar;
  s[TensorType::Q5_1].dot = dotQ5_1Q8_1Scalar;
  s[TensorType::Q8_0] = {dotQ8_0Q8_0Scalar, {}, {}, quantizeQ8_0Scalar};
  s[TensorType::Q8_1].quantize = quantizeQ8_1Scalar;
  s[TensorType::Q2_K].dot = dotQ2_KQ8_KScalar;
  s[TensorType::Q3_K].dot = dotQ3_KQ8_KScalar;
  s[TensorType::Q4_K].dot = dotQ4_KQ8_KScalar;
  s[TensorType::Q5_K].dot = dotQ5_KQ8_KScalar;
  s[TensorType::Q6_K].dot = dotQ6_KQ8_KScalar;
  s[TensorType::Q8_K].quantize = quantizeQ8_KScalar;
  s.weighF16 = weighF16Scalar;
  s.scoresF16 = scoresF16Scalar;
  s.roundF16 = roundF16Scalar;
  s.softmaxF16 = softmaxF16Scalar;
  return s;
}

}  // namespace

extern const KernelSet kScalarKernels;
constexpr KernelSet kScalarKernels = scalarSet();

}  // namespace kernels
