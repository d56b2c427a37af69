// The Q8_0 decode kernels for x86-64 (kernels::DotRowsFn): four weight rows against one Q8_0
// activation row, in GGUF's own block layout. Included by avx2.cc and avx512_vnni.cc; internal
// linkage, so every includer keeps its own copy compiled with its own flags (../kernel_table.h).
//
// Four rows at once share the activation side and run four independent chains; the next four
// rows, one stretch right after these, are prefetched in order (four rows side by side are
// streams the hardware prefetcher follows poorly). Products are exact for every int8 pair,
// -128 included: AVX2 widens both sides to 16 bits for madd; VNNI feeds w+128 as vpdpbusd's
// unsigned operand and starts each sum at −128·Σa. Each row's block sum is reduced to one exact
// integer and its float result is y = fma(float(sum), d_w·d_a, y) block by block from 0, the
// panel's order (q8_0_panel.h) and the dot product's, so that a batch and token-by-token decoding
// agree bit for bit.
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "../../gguf/tensor_types.h"
#include "avx2_common.h"

namespace {
namespace q8_0_rows {

using avx2_common::laneSums4;

// Lane r: float(weight row r's scale) · the activation's, for block i of four rows.
inline __m128 scales4(const BlockQ8_0* const x[4], int64_t i, float da) {
  return _mm_mul_ps(_mm_setr_ps(_cvtsh_ss(x[0][i].d), _cvtsh_ss(x[1][i].d), _cvtsh_ss(x[2][i].d), _cvtsh_ss(x[3][i].d)),
                    _mm_set1_ps(da));
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
  __m128 acc = _mm_setzero_ps();  // lane r: row r
  const char* next = reinterpret_cast<const char*>(wb + 4 * wStride);
  for (int64_t i = 0; i < nb; ++i) {
    const char* p = next + i * kShare;
    _mm_prefetch(p, _MM_HINT_T0);
    _mm_prefetch(p + 64, _MM_HINT_T0);
    _mm_prefetch(p + 128, _MM_HINT_T0);
    const __m256i a0 = widen16(y[i].qs), a1 = widen16(y[i].qs + 16);
    const __m128i sums = laneSums4(blockDot(x[0][i].qs, a0, a1), blockDot(x[1][i].qs, a0, a1),
                                   blockDot(x[2][i].qs, a0, a1), blockDot(x[3][i].qs, a0, a1));
    acc = _mm_fmadd_ps(_mm_cvtepi32_ps(sums), scales4(x, i, _cvtsh_ss(y[i].d)), acc);
  }
  _mm_storeu_ps(out, acc);
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
  __m128 acc = _mm_setzero_ps();  // lane r: row r
  const char* next = reinterpret_cast<const char*>(wb + 4 * wStride);
  int64_t i = 0;
  for (; i + 1 < nb; i += 2) {
    const char* p = next + i * kShare;
    for (int off = 0; off < 2 * kShare; off += 64) _mm_prefetch(p + off, _MM_HINT_T0);
    const __m512i av = loadPair(y[i], y[i + 1]);
    const __m512i bias = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), flip, av));
    __m512i s[4];  // [row]: lanes 0-7 block i, 8-15 block i+1
    for (int r = 0; r < 4; ++r) s[r] = _mm512_dpbusd_epi32(bias, _mm512_xor_si512(loadPair(x[r][i], x[r][i + 1]), flip), av);
    const auto low = [](__m512i v) { return _mm512_castsi512_si256(v); };
    const auto high = [](__m512i v) { return _mm512_extracti64x4_epi64(v, 1); };
    const __m128i sums0 = laneSums4(low(s[0]), low(s[1]), low(s[2]), low(s[3]));
    const __m128i sums1 = laneSums4(high(s[0]), high(s[1]), high(s[2]), high(s[3]));
    acc = _mm_fmadd_ps(_mm_cvtepi32_ps(sums0), scales4(x, i, _cvtsh_ss(y[i].d)), acc);
    acc = _mm_fmadd_ps(_mm_cvtepi32_ps(sums1), scales4(x, i + 1, _cvtsh_ss(y[i + 1].d)), acc);
  }
  if (i < nb) {  // an odd last block
    const __m256i a0 = widen16(y[i].qs), a1 = widen16(y[i].qs + 16);
    const __m128i sums = laneSums4(blockDot(x[0][i].qs, a0, a1), blockDot(x[1][i].qs, a0, a1),
                                   blockDot(x[2][i].qs, a0, a1), blockDot(x[3][i].qs, a0, a1));
    acc = _mm_fmadd_ps(_mm_cvtepi32_ps(sums), scales4(x, i, _cvtsh_ss(y[i].d)), acc);
  }
  _mm_storeu_ps(out, acc);
}
#endif  // __AVX512VNNI__

}  // namespace q8_0_rows
}  // namespace
