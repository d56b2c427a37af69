// The Q8_0 decode kernels for x86-64 (kernels::DotRowsFn): four weight rows against one Q8_0
// activation row, in GGUF's own block layout. Included by avx2.cc and avx512_vnni.cc; internal
// linkage, so every includer keeps its own copy compiled with its own flags (../kernel_table.h).
//
// Four rows at once share the activation side and run four independent chains; the caller
// takes them far apart, so each is a sequential stream (matmul.cc). Products are exact for every int8 pair,
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
  return _mm_mul_ps(avx2_common::halvesToFloat4(x[0][i].d, x[1][i].d, x[2][i].d, x[3][i].d), _mm_set1_ps(da));
}

inline __m256i widen16(const int8_t* q) {
  return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q)));
}

// Σ over one block of w·a as eight int32 partial sums, a given widened (a0: elements 0-15, a1: 16-31).
inline __m256i blockDot(const int8_t* w, __m256i a0, __m256i a1) {
  return _mm256_add_epi32(_mm256_madd_epi16(widen16(w), a0), _mm256_madd_epi16(widen16(w + 16), a1));
}

inline void dotRows4(int64_t n, const void* w, size_t wStride, const void* a, float* out) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const BlockQ8_0* x[4];
  for (int r = 0; r < 4; ++r) x[r] = reinterpret_cast<const BlockQ8_0*>(wb + r * wStride);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  const int64_t nb = n / kQK;
  __m128 acc = _mm_setzero_ps();  // lane r: row r
  for (int64_t i = 0; i < nb; ++i) {
    for (int r = 0; r < 4; ++r) avx2_common::prefetchAhead<avx2_common::kStreamAhead, sizeof(BlockQ8_0)>(&x[r][i]);
    const __m256i a0 = widen16(y[i].qs), a1 = widen16(y[i].qs + 16);
    const __m128i sums = laneSums4(blockDot(x[0][i].qs, a0, a1), blockDot(x[1][i].qs, a0, a1),
                                   blockDot(x[2][i].qs, a0, a1), blockDot(x[3][i].qs, a0, a1));
    acc = _mm_fmadd_ps(_mm_cvtepi32_ps(sums), scales4(x, i, _cvtsh_ss(y[i].d)), acc);
  }
  _mm_storeu_ps(out, acc);
}

#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
// One block per 256-bit vector: vpdpbusd of w+128 against a, from −128·Σa, gives the block's
// products exactly in eight lanes (no insert of a second block into a 512-bit vector: those,
// with the extracts back, were shuffle-port work on top of the lane sums).
inline void dotRows4Vnni(int64_t n, const void* w, size_t wStride, const void* a, float* out) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const BlockQ8_0* x[4];
  for (int r = 0; r < 4; ++r) x[r] = reinterpret_cast<const BlockQ8_0*>(wb + r * wStride);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  const int64_t nb = n / kQK;
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  const auto quants = [](const BlockQ8_0& b) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs)); };
  __m128 acc = _mm_setzero_ps();  // lane r: row r
  for (int64_t i = 0; i < nb; ++i) {
    for (int r = 0; r < 4; ++r) avx2_common::prefetchAhead<avx2_common::kStreamAhead, sizeof(BlockQ8_0)>(&x[r][i]);
    const __m256i av = quants(y[i]);
    const __m256i bias = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_dpbusd_epi32(_mm256_setzero_si256(), flip, av));
    __m256i s[4];
    for (int r = 0; r < 4; ++r) s[r] = _mm256_dpbusd_epi32(bias, _mm256_xor_si256(quants(x[r][i]), flip), av);
    acc = _mm_fmadd_ps(_mm_cvtepi32_ps(laneSums4(s[0], s[1], s[2], s[3])), scales4(x, i, _cvtsh_ss(y[i].d)), acc);
  }
  _mm_storeu_ps(out, acc);
}
#endif  // __AVX512VNNI__

}  // namespace q8_0_rows
}  // namespace
