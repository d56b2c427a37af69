// The 2- and 3-bit K formats (Q2_K, Q3_K) on AVX2: the dot product of one weight row with a Q8_K
// activation row, and the decode kernel of four weight rows. Included by avx2.cc alone; everything
// here has internal linkage (see the rule in ../kernel_table.h). Layouts: ../../gguf/k_quants.h.
//
// Both formats are 16 groups of 16 quants per 256-element super-block, laid out in halves of 128:
// element 128h + 32k + i holds bits 2k..2k+1 of qs[32h + i]. So one 32-byte load of qs, shifted
// by 2k and masked, gives the quants of elements 128h + 32k .. +31 in order: group 8h + 2k in the
// low 128-bit lane, group 8h + 2k + 1 in the high one, which is how the scales are laid beside them.
//
// The quants go into maddubs' unsigned operand as unsigned values u (Q2_K: 0..3; Q3_K: the two
// bits with the hmask bit as the third, 0..7, where the value is u − 4), and what is not u·a comes
// back through Q8_K's bsums (sums of 16 activation quants), all in integers per super-block:
//   Q2_K: Σ_g scale_g·Σ u·a  −  (dmin/d)·Σ_g min_g·bsum_g   (the min term has its own factor)
//   Q3_K: Σ_g scale_g·Σ u·a  −  4·Σ_g scale_g·bsum_g
// No 16-bit pair of maddubs can saturate (2·7·128 < 2^15), -128 included.
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../../gguf/tensor_types.h"
#include "avx2_common.h"

namespace {
namespace q2_q3_k {

using avx2_common::horizontalSum;
using avx2_common::load256;

// Scales of groups g (low lane) and g + 1 (high lane) as 16-bit words, from int8 scales[16].
inline __m256i scalePair(const int8_t* scales, int g) {
  return _mm256_set_m128i(_mm_set1_epi16(scales[g + 1]), _mm_set1_epi16(scales[g]));
}

// Σ_g scale_g·Σ u·a over a super-block as 8 int32 lanes: u[h][k] the unsigned quants of elements
// 128h + 32k .., a the activation quants, scales[16] the groups' scales.
template <class Quants>
inline __m256i sumScaled(const Quants& u, const int8_t* a, const int8_t* scales) {
  __m256i sumi = _mm256_setzero_si256();
  for (int h = 0; h < 2; ++h) {
    for (int k = 0; k < 4; ++k) {
      const __m256i p = _mm256_maddubs_epi16(u(h, k), load256(a + 128 * h + 32 * k));
      sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scalePair(scales, 8 * h + 2 * k)));
    }
  }
  return sumi;
}

// ---------------------------------------------------------------- Q3_K

// The sixteen 6-bit scales minus 32, as int8. Bytes 0-7 hold the low nibbles (groups 0-7 in the
// low nibbles, 8-15 in the high ones); byte 8 + j holds the top two bits of groups j, j+4, j+8,
// j+12 at bits 0, 2, 4, 6. Done on 32-bit words: each byte keeps its own bits through the masks.
inline void scalesQ3K(const uint8_t* packed, int8_t scales[16]) {
  uint32_t lo0, lo1, hi;
  std::memcpy(&lo0, packed, 4);
  std::memcpy(&lo1, packed + 4, 4);
  std::memcpy(&hi, packed + 8, 4);
  const uint32_t nibbles = 0x0F0F0F0F, twoBits = 0x03030303;
  const uint32_t words[4] = {
      (lo0 & nibbles) | (hi & twoBits) << 4,               // groups 0-3
      (lo1 & nibbles) | ((hi >> 2) & twoBits) << 4,        // 4-7
      ((lo0 >> 4) & nibbles) | ((hi >> 4) & twoBits) << 4,  // 8-11
      ((lo1 >> 4) & nibbles) | ((hi >> 6) & twoBits) << 4,  // 12-15
  };
  const __m128i biased = _mm_loadu_si128(reinterpret_cast<const __m128i*>(words));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(scales), _mm_sub_epi8(biased, _mm_set1_epi8(32)));
}

// Integer sum of one Q3_K super-block against a Q8_K block, as 8 int32 lanes (times d·da).
inline __m256i superBlockQ3K(const BlockQ3_K& x, const BlockQ8_K& y) {
  alignas(16) int8_t scales[16];
  scalesQ3K(x.scales, scales);
  const __m256i two = _mm256_set1_epi8(3);
  const __m256i hmask = load256(x.hmask);  // bit 4h + k of byte i: third bit of 128h + 32k + i
  const __m256i q[2] = {load256(x.qs), load256(x.qs + 32)};
  auto u = [&](int h, int k) {
    const __m256i low = _mm256_and_si256(_mm256_srli_epi16(q[h], 2 * k), two);
    // the 16-bit shift brings the next byte's bits into the top of each byte; bit 0 is this byte's
    const __m256i third = _mm256_and_si256(_mm256_srli_epi16(hmask, 4 * h + k), _mm256_set1_epi8(1));
    return _mm256_or_si256(low, _mm256_slli_epi16(third, 2));
  };
  // −4·Σ_g scale_g·bsum_g, the offset of the unsigned quants
  const __m256i scales16 = _mm256_cvtepi8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(scales)));
  const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(load256(y.bsums), scales16), 2);
  return _mm256_sub_epi32(sumScaled(u, y.qs, scales), offset);
}

float dotQ3_KQ8_K(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ3_K*>(w);  // [n / 256]
  const auto* y = static_cast<const BlockQ8_K*>(a);  // [n / 256]
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(x[b].d) * y[b].d);
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(superBlockQ3K(x[b], y[b])), d, acc);
  }
  return horizontalSum(acc);
}

// Four weight rows, wStride bytes apart, against one activation row: four independent chains
// over the same activation blocks.
void dotRowsQ3_KQ8_K(int64_t n, const void* w, size_t wStride, const void* a, float* out) {
  const auto* y = static_cast<const BlockQ8_K*>(a);  // [n / 256]
  const auto* base = static_cast<const uint8_t*>(w);
  const BlockQ3_K* x[4];
  for (int r = 0; r < 4; ++r) x[r] = reinterpret_cast<const BlockQ3_K*>(base + r * wStride);  // [n / 256] each
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    for (int r = 0; r < 4; ++r) avx2_common::prefetchAhead<avx2_common::kStreamAhead, sizeof(BlockQ3_K)>(&x[r][b]);
    for (int r = 0; r < 4; ++r) {
      const __m256 d = _mm256_set1_ps(_cvtsh_ss(x[r][b].d) * y[b].d);
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(superBlockQ3K(x[r][b], y[b])), d, acc[r]);
    }
  }
  for (int r = 0; r < 4; ++r) out[r] = horizontalSum(acc[r]);
}

// ---------------------------------------------------------------- Q2_K

// One Q2_K super-block against a Q8_K block: Σ_g scale_g·Σ u·a and Σ_g min_g·bsum_g, each as
// 8 int32 lanes (times d·da and dmin·da).
inline void superBlockQ2K(const BlockQ2_K& x, const BlockQ8_K& y, __m256i* scaled, __m256i* mins) {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x.scales));  // scale | min << 4
  const __m128i nibble = _mm_set1_epi8(0x0F);
  alignas(16) int8_t scales[16];
  _mm_store_si128(reinterpret_cast<__m128i*>(scales), _mm_and_si128(packed, nibble));
  const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), nibble));
  *mins = _mm256_madd_epi16(load256(y.bsums), mins16);
  const __m256i two = _mm256_set1_epi8(3);
  const __m256i q[2] = {load256(x.qs), load256(x.qs + 32)};
  auto u = [&](int h, int k) { return _mm256_and_si256(_mm256_srli_epi16(q[h], 2 * k), two); };
  *scaled = sumScaled(u, y.qs, scales);
}

float dotQ2_KQ8_K(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ2_K*>(w);  // [n / 256]
  const auto* y = static_cast<const BlockQ8_K*>(a);  // [n / 256]
  __m256 acc = _mm256_setzero_ps(), accMins = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    __m256i scaled, mins;
    superBlockQ2K(x[b], y[b], &scaled, &mins);
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(scaled), _mm256_set1_ps(_cvtsh_ss(x[b].d) * y[b].d), acc);
    accMins = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mins), _mm256_set1_ps(_cvtsh_ss(x[b].dmin) * y[b].d), accMins);
  }
  return horizontalSum(acc) - horizontalSum(accMins);
}

void dotRowsQ2_KQ8_K(int64_t n, const void* w, size_t wStride, const void* a, float* out) {
  const auto* y = static_cast<const BlockQ8_K*>(a);  // [n / 256]
  const auto* base = static_cast<const uint8_t*>(w);
  const BlockQ2_K* x[4];
  for (int r = 0; r < 4; ++r) x[r] = reinterpret_cast<const BlockQ2_K*>(base + r * wStride);  // [n / 256] each
  __m256 acc[4], accMins[4];
  for (int r = 0; r < 4; ++r) acc[r] = accMins[r] = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    for (int r = 0; r < 4; ++r) avx2_common::prefetchAhead<avx2_common::kStreamAhead, sizeof(BlockQ2_K)>(&x[r][b]);
    for (int r = 0; r < 4; ++r) {
      __m256i scaled, mins;
      superBlockQ2K(x[r][b], y[b], &scaled, &mins);
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(scaled), _mm256_set1_ps(_cvtsh_ss(x[r][b].d) * y[b].d), acc[r]);
      accMins[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mins), _mm256_set1_ps(_cvtsh_ss(x[r][b].dmin) * y[b].d),
                                   accMins[r]);
    }
  }
  for (int r = 0; r < 4; ++r) out[r] = horizontalSum(acc[r]) - horizontalSum(accMins[r]);
}

}  // namespace q2_q3_k
}  // namespace
