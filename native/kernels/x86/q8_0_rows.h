// The Q8_0 decode kernels for x86-64 (kernels::DotRowsFn): four weight rows against one Q8_0
// activation row, in GGUF's own block layout. Included by avx2.cc and avx512_vnni.cc; internal
// linkage, so every includer keeps its own copy compiled with its own flags (../kernel_table.h).
//
// Four rows at once share the activation side and run four independent chains; the next four
// rows, one stretch right after these, are prefetched in order (four rows side by side are
// streams the hardware prefetcher follows poorly). Products are exact for every int8 pair,
// -128 included: AVX2 widens both sides to 16 bits for madd; VNNI feeds w+128 as vpdpbusd's
// unsigned operand and starts each sum at −128·Σa.
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "../../gguf/tensor_types.h"

namespace {
namespace q8_0_rows {

inline float horizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline __m256i widen16(const int8_t* q) {
  return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q)));
}

// Σ over one block of w·a as eight int32 partial sums, a given widened (a0: elements 0-15, a1: 16-31).
inline __m256i blockDot(const int8_t* w, __m256i a0, __m256i a1) {
  return _mm256_add_epi32(_mm256_madd_epi16(widen16(w), a0), _mm256_madd_epi16(widen16(w + 16), a1));
}

constexpr int kShare = 4 * sizeof(BlockQ8_0);  // bytes of the next four rows per block

inline void dotRows4(int64_t n, const void* w, size_t wStride, const void* a, float* out) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const BlockQ8_0* x[4];
  for (int r = 0; r < 4; ++r) x[r] = reinterpret_cast<const BlockQ8_0*>(wb + r * wStride);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  const int64_t nb = n / kQK;
  __m256 acc[4];
  for (int r = 0; r < 4; ++r) acc[r] = _mm256_setzero_ps();
  const char* next = reinterpret_cast<const char*>(wb + 4 * wStride);
  for (int64_t i = 0; i < nb; ++i) {
    const char* p = next + i * kShare;
    _mm_prefetch(p, _MM_HINT_T0);
    _mm_prefetch(p + 64, _MM_HINT_T0);
    _mm_prefetch(p + 128, _MM_HINT_T0);
    const __m256i a0 = widen16(y[i].qs), a1 = widen16(y[i].qs + 16);
    const float da = _cvtsh_ss(y[i].d);
    for (int r = 0; r < 4; ++r) {
      const __m256 sum = _mm256_cvtepi32_ps(blockDot(x[r][i].qs, a0, a1));
      acc[r] = _mm256_fmadd_ps(sum, _mm256_set1_ps(_cvtsh_ss(x[r][i].d) * da), acc[r]);
    }
  }
  for (int r = 0; r < 4; ++r) out[r] = horizontalSum(acc[r]);
}

#if defined(__AVX512VNNI__)
// Two consecutive blocks' 64 quants in one vector: block i in the low half, i+1 in the high.
inline __m512i loadPair(const BlockQ8_0& b0, const BlockQ8_0& b1) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b0.qs))),
                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b1.qs)), 1);
}

inline void dotRows4Vnni(int64_t n, const void* w, size_t wStride, const void* a, float* out) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const BlockQ8_0* x[4];
  for (int r = 0; r < 4; ++r) x[r] = reinterpret_cast<const BlockQ8_0*>(wb + r * wStride);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  const int64_t nb = n / kQK;
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512 acc[4];
  for (int r = 0; r < 4; ++r) acc[r] = _mm512_setzero_ps();
  const char* next = reinterpret_cast<const char*>(wb + 4 * wStride);
  int64_t i = 0;
  for (; i + 1 < nb; i += 2) {
    const char* p = next + i * kShare;
    for (int off = 0; off < 2 * kShare; off += 64) _mm_prefetch(p + off, _MM_HINT_T0);
    const __m512i av = loadPair(y[i], y[i + 1]);
    const __m512i bias = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), flip, av));
    const float da0 = _cvtsh_ss(y[i].d), da1 = _cvtsh_ss(y[i + 1].d);
    for (int r = 0; r < 4; ++r) {
      const __m512i u = _mm512_xor_si512(loadPair(x[r][i], x[r][i + 1]), flip);
      const __m512 sum = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(bias, u, av));
      const __m512 d = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(_cvtsh_ss(x[r][i].d) * da0),
                                            _mm512_set1_ps(_cvtsh_ss(x[r][i + 1].d) * da1));
      acc[r] = _mm512_fmadd_ps(sum, d, acc[r]);
    }
  }
  for (int r = 0; r < 4; ++r) {
    float sum = _mm512_reduce_add_ps(acc[r]);
    if (i < nb) {  // an odd last block
      const __m256i a0 = widen16(y[i].qs), a1 = widen16(y[i].qs + 16);
      const __m256 s = _mm256_cvtepi32_ps(blockDot(x[r][i].qs, a0, a1));
      sum += horizontalSum(_mm256_mul_ps(s, _mm256_set1_ps(_cvtsh_ss(x[r][i].d) * _cvtsh_ss(y[i].d))));
    }
    out[r] = sum;
  }
}
#endif  // __AVX512VNNI__

}  // namespace q8_0_rows
}  // namespace
