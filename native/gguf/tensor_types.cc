// Tensor formats: the traits table, fp16 conversions, dequantization of every GGUF format this
// engine knows, and the quantizers the engine (activations) and `alpaca quantize` (weights) use.
// The quantizers follow ggml's reference numerics step by step, because the activations must match
// llama.cpp's and a quantized file must be byte-identical to one llama.cpp writes.
#include "tensor_types.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "k_quants.h"

// No fused multiply-add: x*id + 8.5f must round twice, as written, on every CPU (see ../kernels/scalar.cc).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

using k_quants::unpackQ2Q3K;
using k_quants::unpackQ4Q5K;
using k_quants::unpackQ6K;
using k_quants::unpackScalesQ3K;
using k_quants::unpackScaleMinK4;

// ---------------------------------------------------------------- fp16

float fp16ToFp32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  const uint32_t exponent = (h >> 10) & 0x1F;
  uint32_t mantissa = h & 0x3FF;
  uint32_t bits;
  if (exponent == 0x1F) {
    bits = sign | 0x7F800000 | mantissa << 13;  // inf, or nan keeping its payload
  } else if (exponent != 0) {
    bits = sign | (exponent + 127 - 15) << 23 | mantissa << 13;
  } else if (mantissa == 0) {
    bits = sign;  // signed zero
  } else {
    // subnormal: mantissa * 2^-24; shift its leading one up to the implicit bit
    uint32_t e = 127 - 14;
    while (!(mantissa & 0x400)) {
      mantissa <<= 1;
      --e;
    }
    bits = sign | e << 23 | (mantissa & 0x3FF) << 13;
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Round-to-nearest-even of the dropped bits: `kept` is the truncated value, `dropped` the bits
// below it, `half` the weight of the first dropped bit.
static inline uint32_t roundHalfEven(uint32_t kept, uint32_t dropped, uint32_t half) {
  return (dropped > half || (dropped == half && (kept & 1))) ? kept + 1 : kept;
}

uint16_t fp32ToFp16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  const uint16_t sign = (bits >> 16) & 0x8000;
  const uint32_t magnitude = bits & 0x7FFFFFFF;
  if (magnitude > 0x7F800000) return sign | 0x7E00 | ((magnitude >> 13) & 0x3FF);  // quiet nan, as F16C
  if (magnitude >= 0x47800000) return sign | 0x7C00;  // >= 65536 (or inf): inf
  if (magnitude >= 0x38800000) {
    // normal half (2^-14 and up): rebias the exponent, keep 10 mantissa bits; a carry out of the
    // mantissa correctly bumps the exponent, up to inf for 65520 and above
    const uint32_t kept = (magnitude - ((127 - 15) << 23)) >> 13;
    return sign | roundHalfEven(kept, magnitude & 0x1FFF, 0x1000);
  }
  // subnormal half: the value in units of 2^-24, i.e. the float's mantissa (with its implicit
  // one) shifted right by 126 - exponent; smaller than half a unit rounds to zero
  const uint32_t exponent = magnitude >> 23;
  const uint32_t shift = 126 - exponent;
  if (shift > 24) return sign;
  const uint32_t mantissa = (magnitude & 0x7FFFFF) | 0x800000;
  return sign | roundHalfEven(mantissa >> shift, mantissa & ((1u << shift) - 1), 1u << (shift - 1));
}

// ---------------------------------------------------------------- dequantization
// Each converts n elements (a multiple of the block size) in the element order of ggml.

static void f32ToFloat(const void* src, float* dst, int64_t n) { std::memcpy(dst, src, n * sizeof(float)); }

static void f16ToFloat(const void* src, float* dst, int64_t n) {
  const auto* x = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = fp16ToFp32(x[i]);
}

static void bf16ToFloat(const void* src, float* dst, int64_t n) {
  const auto* x = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t bits = uint32_t(x[i]) << 16;  // bf16 is the top half of an fp32
    std::memcpy(&dst[i], &bits, sizeof bits);
  }
}

static void q4_0ToFloat(const void* src, float* dst, int64_t n) {
  const auto* x = static_cast<const BlockQ4_0*>(src);
  for (int64_t b = 0; b < n / kQK; ++b, dst += kQK) {
    const float d = fp16ToFp32(x[b].d);
    for (int j = 0; j < kQK / 2; ++j) {
      dst[j] = ((x[b].qs[j] & 0x0F) - 8) * d;
      dst[j + kQK / 2] = ((x[b].qs[j] >> 4) - 8) * d;
    }
  }
}

static void q4_1ToFloat(const void* src, float* dst, int64_t n) {
  const auto* x = static_cast<const BlockQ4_1*>(src);
  for (int64_t b = 0; b < n / kQK; ++b, dst += kQK) {
    const float d = fp16ToFp32(x[b].d), m = fp16ToFp32(x[b].m);
    for (int j = 0; j < kQK / 2; ++j) {
      dst[j] = (x[b].qs[j] & 0x0F) * d + m;
      dst[j + kQK / 2] = (x[b].qs[j] >> 4) * d + m;
    }
  }
}

// The 32 five-bit quants (0..31) of a Q5_0/Q5_1 block: bit j of the little-endian qh is the 5th
// bit of element j.
static void unpackQ5(const uint8_t qs[kQK / 2], const uint8_t qh[4], int q[kQK]) {
  const uint32_t high = uint32_t(qh[0]) | uint32_t(qh[1]) << 8 | uint32_t(qh[2]) << 16 | uint32_t(qh[3]) << 24;
  for (int j = 0; j < kQK / 2; ++j) {
    q[j] = (qs[j] & 0x0F) | ((high >> j) & 1) << 4;
    q[j + kQK / 2] = (qs[j] >> 4) | ((high >> (j + kQK / 2)) & 1) << 4;
  }
}

static void q5_0ToFloat(const void* src, float* dst, int64_t n) {
  const auto* x = static_cast<const BlockQ5_0*>(src);
  int q[kQK];
  for (int64_t b = 0; b < n / kQK; ++b, dst += kQK) {
    const float d = fp16ToFp32(x[b].d);
    unpackQ5(x[b].qs, x[b].qh, q);
    for (int j = 0; j < kQK; ++j) dst[j] = (q[j] - 16) * d;
  }
}

static void q5_1ToFloat(const void* src, float* dst, int64_t n) {
  const auto* x = static_cast<const BlockQ5_1*>(src);
  int q[kQK];
  for (int64_t b = 0; b < n / kQK; ++b, dst += kQK) {
    const float d = fp16ToFp32(x[b].d), m = fp16ToFp32(x[b].m);
    unpackQ5(x[b].qs, x[b].qh, q);
    for (int j = 0; j < kQK; ++j) dst[j] = q[j] * d + m;
  }
}

static void q8_0ToFloat(const void* src, float* dst, int64_t n) {
  const auto* x = static_cast<const BlockQ8_0*>(src);
  for (int64_t b = 0; b < n / kQK; ++b, dst += kQK) {
    const float d = fp16ToFp32(x[b].d);
    for (int j = 0; j < kQK; ++j) dst[j] = x[b].qs[j] * d;
  }
}

static void q8_1ToFloat(const void* src, float* dst, int64_t n) {
  const auto* x = static_cast<const BlockQ8_1*>(src);
  for (int64_t b = 0; b < n / kQK; ++b, dst += kQK) {
    const float d = fp16ToFp32(x[b].d);
    for (int j = 0; j < kQK; ++j) dst[j] = x[b].qs[j] * d;
  }
}

// Q2_K: 16 groups of 16, each with a 4-bit scale (low nibble) and 4-bit min (high nibble) of
// its byte of scales; quants 0..3 (layout in k_quants.h).
static void q2_KToFloat(const void* src, float* dst, int64_t n) {
  const auto* x = static_cast<const BlockQ2_K*>(src);
  int8_t q[kQK_K];
  for (int64_t b = 0; b < n / kQK_K; ++b, dst += kQK_K) {
    const float d = fp16ToFp32(x[b].d), dmin = fp16ToFp32(x[b].dmin);
    unpackQ2Q3K(x[b].qs, nullptr, q);
    for (int e = 0; e < kQK_K; ++e) {
      const uint8_t sc = x[b].scales[e / 16];
      dst[e] = d * (sc & 0x0F) * q[e] - dmin * (sc >> 4);
    }
  }
}

// Q3_K: 16 groups of 16 with signed 6-bit scales, quants -4..3 (layout in k_quants.h).
static void q3_KToFloat(const void* src, float* dst, int64_t n) {
  const auto* x = static_cast<const BlockQ3_K*>(src);
  int8_t q[kQK_K];
  int scale[16];
  for (int64_t b = 0; b < n / kQK_K; ++b, dst += kQK_K) {
    const float d = fp16ToFp32(x[b].d);
    unpackScalesQ3K(x[b].scales, scale);
    unpackQ2Q3K(x[b].qs, x[b].hmask, q);
    for (int e = 0; e < kQK_K; ++e) dst[e] = d * scale[e / 16] * q[e];
  }
}

static void q4_KToFloat(const void* src, float* dst, int64_t n) {
  const auto* x = static_cast<const BlockQ4_K*>(src);
  int8_t q[kQK_K];
  for (int64_t b = 0; b < n / kQK_K; ++b, dst += kQK_K) {
    const float d = fp16ToFp32(x[b].d), dmin = fp16ToFp32(x[b].dmin);
    unpackQ4Q5K(x[b].qs, nullptr, q);
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      unpackScaleMinK4(j, x[b].scales, &sc, &m);
      const float scale = d * sc, min = dmin * m;
      for (int i = 0; i < 32; ++i) dst[32 * j + i] = scale * q[32 * j + i] - min;
    }
  }
}

static void q5_KToFloat(const void* src, float* dst, int64_t n) {
  const auto* x = static_cast<const BlockQ5_K*>(src);
  int8_t q[kQK_K];
  for (int64_t b = 0; b < n / kQK_K; ++b, dst += kQK_K) {
    const float d = fp16ToFp32(x[b].d), dmin = fp16ToFp32(x[b].dmin);
    unpackQ4Q5K(x[b].qs, x[b].qh, q);
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      unpackScaleMinK4(j, x[b].scales, &sc, &m);
      const float scale = d * sc, min = dmin * m;
      for (int i = 0; i < 32; ++i) dst[32 * j + i] = scale * q[32 * j + i] - min;
    }
  }
}

static void q6_KToFloat(const void* src, float* dst, int64_t n) {
  const auto* x = static_cast<const BlockQ6_K*>(src);
  int8_t q[kQK_K];
  for (int64_t b = 0; b < n / kQK_K; ++b, dst += kQK_K) {
    const float d = fp16ToFp32(x[b].d);
    unpackQ6K(x[b], q);
    for (int e = 0; e < kQK_K; ++e) dst[e] = d * x[b].scales[e / 16] * q[e];
  }
}

static void q8_KToFloat(const void* src, float* dst, int64_t n) {
  const auto* x = static_cast<const BlockQ8_K*>(src);
  for (int64_t b = 0; b < n / kQK_K; ++b, dst += kQK_K) {
    for (int e = 0; e < kQK_K; ++e) dst[e] = x[b].d * x[b].qs[e];
  }
}

// ---------------------------------------------------------------- quantization
// Step for step ggml's quantize_row_*_ref: same maxima, same divisions, same rounding.

static void floatToF32(const float* src, void* dst, int64_t n) { std::memcpy(dst, src, n * sizeof(float)); }

static void floatToF16(const float* src, void* dst, int64_t n) {
  auto* y = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) y[i] = fp32ToFp16(src[i]);
}

// Q4_0: the scale maps the element of largest magnitude, with its sign, to -8, so that side of
// the range gets the extra level.
static void floatToQ4_0(const float* src, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ4_0*>(dst);
  for (int64_t b = 0; b < n / kQK; ++b, src += kQK) {
    float amax = 0, max = 0;
    for (int j = 0; j < kQK; ++j) {
      if (amax < std::fabs(src[j])) {
        amax = std::fabs(src[j]);
        max = src[j];
      }
    }
    const float d = max / -8;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[b].d = fp32ToFp16(d);
    for (int j = 0; j < kQK / 2; ++j) {
      const float x0 = src[j] * id, x1 = src[j + kQK / 2] * id;
      // truncation of x + 8.5 is rounding half up; the int8 cast is what ggml does
      const int q0 = std::min(15, int(int8_t(x0 + 8.5f)));
      const int q1 = std::min(15, int(int8_t(x1 + 8.5f)));
      y[b].qs[j] = uint8_t(q0 | q1 << 4);
    }
  }
}

static void floatToQ4_1(const float* src, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ4_1*>(dst);
  for (int64_t b = 0; b < n / kQK; ++b, src += kQK) {
    float min = src[0], max = src[0];
    for (int j = 1; j < kQK; ++j) {
      if (src[j] < min) min = src[j];
      if (src[j] > max) max = src[j];
    }
    const float d = (max - min) / 15;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[b].d = fp32ToFp16(d);
    y[b].m = fp32ToFp16(min);
    for (int j = 0; j < kQK / 2; ++j) {
      const float x0 = (src[j] - min) * id, x1 = (src[j + kQK / 2] - min) * id;
      const int q0 = std::min(15, int(int8_t(x0 + 0.5f)));
      const int q1 = std::min(15, int(int8_t(x1 + 0.5f)));
      y[b].qs[j] = uint8_t(q0 | q1 << 4);
    }
  }
}

// Q8_0/Q8_1: d = amax/127 stored as fp16, but the quants use the float d's inverse (as ggml).
static float quantizeBlock8(const float* src, int8_t qs[kQK]) {
  float amax = 0;
  for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(src[j]));
  const float d = amax / 127;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  for (int j = 0; j < kQK; ++j) qs[j] = int8_t(std::round(src[j] * id));  // half away from zero
  return d;
}

static void floatToQ8_0(const float* src, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_0*>(dst);
  for (int64_t b = 0; b < n / kQK; ++b, src += kQK) y[b].d = fp32ToFp16(quantizeBlock8(src, y[b].qs));
}

static void floatToQ8_1(const float* src, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_1*>(dst);
  for (int64_t b = 0; b < n / kQK; ++b, src += kQK) {
    const float d = quantizeBlock8(src, y[b].qs);
    int sum = 0;
    for (int j = 0; j < kQK; ++j) sum += y[b].qs[j];
    y[b].d = fp32ToFp16(d);
    y[b].s = fp32ToFp16(sum * d);
  }
}

// Q8_K: a float scale; the element of largest magnitude maps to -127 (its sign flipped), rounding
// is to nearest even, and bsums keep the sums of 16 quants for the K dot products' min terms.
static void floatToQ8_K(const float* src, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_K*>(dst);
  for (int64_t b = 0; b < n / kQK_K; ++b, src += kQK_K) {
    float amax = 0, max = 0;
    for (int j = 0; j < kQK_K; ++j) {
      if (std::fabs(src[j]) > amax) {
        amax = std::fabs(src[j]);
        max = src[j];
      }
    }
    if (amax == 0) {
      std::memset(&y[b], 0, sizeof y[b]);
      continue;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < kQK_K; ++j) {
      y[b].qs[j] = int8_t(std::min(127, int(std::lrint(iscale * src[j]))));
    }
    for (int g = 0; g < kQK_K / 16; ++g) {
      int sum = 0;
      for (int i = 0; i < 16; ++i) sum += y[b].qs[16 * g + i];
      y[b].bsums[g] = int16_t(sum);
    }
    y[b].d = 1 / iscale;
  }
}

// ---------------------------------------------------------------- the table

namespace {
using ToFloatFn = void (*)(const void* src, float* dst, int64_t n);
using FromFloatFn = void (*)(const float* src, void* dst, int64_t n);

struct Format {
  TensorType type;
  TypeTraits traits;
  ToFloatFn toFloat;
  FromFloatFn fromFloat;  // null where the engine never writes the format
};

// dotWith is ggml CPU's vec_dot_type; Q8_1 and Q8_K exist only as activations, and BF16 weights
// are readable but not multiplied by this engine.
const Format kFormats[] = {
    {TensorType::F32, {"f32", 1, 4, true, TensorType::F32}, f32ToFloat, floatToF32},
    {TensorType::F16, {"f16", 1, 2, true, TensorType::F16}, f16ToFloat, floatToF16},
    {TensorType::Q4_0, {"q4_0", kQK, sizeof(BlockQ4_0), true, TensorType::Q8_0}, q4_0ToFloat, floatToQ4_0},
    {TensorType::Q4_1, {"q4_1", kQK, sizeof(BlockQ4_1), true, TensorType::Q8_1}, q4_1ToFloat, floatToQ4_1},
    {TensorType::Q5_0, {"q5_0", kQK, sizeof(BlockQ5_0), true, TensorType::Q8_0}, q5_0ToFloat, nullptr},
    {TensorType::Q5_1, {"q5_1", kQK, sizeof(BlockQ5_1), true, TensorType::Q8_1}, q5_1ToFloat, nullptr},
    {TensorType::Q8_0, {"q8_0", kQK, sizeof(BlockQ8_0), true, TensorType::Q8_0}, q8_0ToFloat, floatToQ8_0},
    {TensorType::Q8_1, {"q8_1", kQK, sizeof(BlockQ8_1), false, TensorType::Q8_1}, q8_1ToFloat, floatToQ8_1},
    {TensorType::Q2_K, {"q2_K", kQK_K, sizeof(BlockQ2_K), true, TensorType::Q8_K}, q2_KToFloat, nullptr},
    {TensorType::Q3_K, {"q3_K", kQK_K, sizeof(BlockQ3_K), true, TensorType::Q8_K}, q3_KToFloat, nullptr},
    {TensorType::Q4_K, {"q4_K", kQK_K, sizeof(BlockQ4_K), true, TensorType::Q8_K}, q4_KToFloat, nullptr},
    {TensorType::Q5_K, {"q5_K", kQK_K, sizeof(BlockQ5_K), true, TensorType::Q8_K}, q5_KToFloat, nullptr},
    {TensorType::Q6_K, {"q6_K", kQK_K, sizeof(BlockQ6_K), true, TensorType::Q8_K}, q6_KToFloat, nullptr},
    {TensorType::Q8_K, {"q8_K", kQK_K, sizeof(BlockQ8_K), false, TensorType::Q8_K}, q8_KToFloat, floatToQ8_K},
    {TensorType::BF16, {"bf16", 1, 2, false, TensorType::BF16}, bf16ToFloat, nullptr},
};

const Format* formatOf(uint32_t type) {
  for (const Format& f : kFormats) {
    if (static_cast<uint32_t>(f.type) == type) return &f;
  }
  return nullptr;
}

const Format& requireFormat(TensorType type) {
  const Format* f = formatOf(static_cast<uint32_t>(type));
  if (!f) throw std::invalid_argument("unknown tensor type " + std::to_string(static_cast<uint32_t>(type)));
  return *f;
}
}  // namespace

const TypeTraits* typeTraits(uint32_t type) {
  const Format* f = formatOf(type);
  return f ? &f->traits : nullptr;
}

size_t rowBytes(TensorType type, int64_t n) {
  const TypeTraits& t = requireFormat(type).traits;
  return static_cast<size_t>(n / t.blockSize) * t.blockBytes;
}

void dequantizeRow(TensorType type, const void* src, float* dst, int64_t n) {
  requireFormat(type).toFloat(src, dst, n);
}

void quantizeRow(TensorType type, const float* src, void* dst, int64_t n) {
  const Format& f = requireFormat(type);
  if (!f.fromFloat) throw std::invalid_argument(std::string("cannot quantize to ") + f.traits.name);
  f.fromFloat(src, dst, n);
}

