// The Q4_K and Q5_K decode kernels for x86-64 (kernels::DotRowsFn): four weight rows, in GGUF's
// own super-block layout, against the one Q8_K activation row of a decode step. Included by
// avx2.cc and avx512_vnni.cc; everything here has internal linkage, so every including file keeps
// its own copy compiled with its own flags (see the rule in ../kernel_table.h).
//
// Per super-block the activation side (its quants, the pair sums of its bsums for the mins) is
// loaded once for the four rows. Per row the 6-bit scales and mins are unpacked with a few 32-bit
// word operations and widened to 16 bits; the scales go into the widening multiply-add of
// maddubs' 16-bit pairs (2·31·128 < 2^15: no pair saturates, the products with a scale ≤ 63 fit
// 32 bits), so that a super-block of a row is a handful of vector instructions and the row's one
// horizontal sum comes at its end.
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../../gguf/tensor_types.h"
#include "avx2_common.h"

namespace {
namespace k_rows {

using avx2_common::horizontalSum;

// Scales (words 0-7) and mins (words 8-15) of a Q4_K/Q5_K super-block as 16-bit integers
// (k_quants.h's unpackScaleMinK4 on whole 32-bit words: bytes 0-3 hold scales 0-3, bytes 4-7
// mins 0-3, bytes 8-11 the low four bits of scales/mins 4-7, whose top two bits sit in bits 6-7
// of bytes 0-3 and 4-7).
inline __m256i scalesAndMins(const uint8_t packed[12]) {
  uint32_t w[3];
  std::memcpy(w, packed, 12);
  const uint32_t scalesLow = w[0] & 0x3F3F3F3Fu, minsLow = w[1] & 0x3F3F3F3Fu;
  const uint32_t scalesHigh = (w[2] & 0x0F0F0F0Fu) | ((w[0] >> 2) & 0x30303030u);
  const uint32_t minsHigh = ((w[2] >> 4) & 0x0F0F0F0Fu) | ((w[1] >> 2) & 0x30303030u);
  const __m128i bytes = _mm_setr_epi32(static_cast<int>(scalesLow), static_cast<int>(scalesHigh),
                                       static_cast<int>(minsLow), static_cast<int>(minsHigh));
  return _mm256_cvtepu8_epi16(bytes);
}

// The bsums of an activation super-block summed in pairs: 16-bit word j is sub-block j's sum
// (at most 32·128, which fits).
inline __m128i bsumPairs(const BlockQ8_K& y) {
  const __m256i pairs =
      _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(y.bsums)), _mm256_set1_epi16(1));
  return _mm_packs_epi32(_mm256_castsi256_si128(pairs), _mm256_extracti128_si256(pairs, 1));
}

// The shuffle that repeats 16-bit word j of each 128-bit lane over the lane.
inline constexpr int16_t wordPick(int j) { return static_cast<int16_t>(0x0100 + 0x0202 * j); }

template <bool kQ5>
using Block = typename std::conditional<kQ5, BlockQ5_K, BlockQ4_K>::type;

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)

using Acc = __m512;
inline Acc zeroAcc() { return _mm512_setzero_ps(); }
inline float sumAcc(Acc v) { return _mm512_reduce_add_ps(v); }

// The activation quants of one super-block as 64 bytes of qs unpack: av[0] = elements 0-31 and
// 64-95 (the low nibbles of qs 0..63), av[1] = 32-63 and 96-127 (their high nibbles), av[2] and
// av[3] the same for elements 128-255 (qs 64..127).
struct Activation {
  __m512i q[4];
  __m128i pairs;
  float d;
  explicit Activation(const BlockQ8_K& y) : pairs(bsumPairs(y)), d(y.d) {
    const auto half = [](const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); };
    for (int k = 0; k < 2; ++k) {
      q[2 * k] = _mm512_inserti64x4(_mm512_castsi256_si512(half(y.qs + 128 * k)), half(y.qs + 128 * k + 64), 1);
      q[2 * k + 1] = _mm512_inserti64x4(_mm512_castsi256_si512(half(y.qs + 128 * k + 32)), half(y.qs + 128 * k + 96), 1);
    }
  }
};

// Sub-block j0's scale over the low 256 bits, j1's over the high (a pshufb of the scales
// repeated in every 128-bit lane).
inline __m512i scalePair(__m512i scales, int j0, int j1) {
  return _mm512_shuffle_epi8(scales, _mm512_mask_blend_epi64(0xF0, _mm512_set1_epi16(wordPick(j0)),
                                                             _mm512_set1_epi16(wordPick(j1))));
}

// One row's super-block into acc: d·dy·Σ_j s_j·Σ u·a − dmin·dy·Σ_j m_j·bsumPair_j.
template <bool kQ5>
inline Acc superBlock(const Block<kQ5>& x, const Activation& a, Acc acc) {
  const __m256i sm = scalesAndMins(x.scales);
  const __m512i scales = _mm512_broadcast_i32x4(_mm256_castsi256_si128(sm));
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  __m512i u[4];
  for (int k = 0; k < 2; ++k) {
    const __m512i q = _mm512_loadu_si512(x.qs + 64 * k);
    u[2 * k] = _mm512_and_si512(q, low4);
    u[2 * k + 1] = _mm512_and_si512(_mm512_srli_epi16(q, 4), low4);
  }
  if constexpr (kQ5) {
    // The fifth bit of u[k]'s sub-block j (j0 low half, j1 high) is bit j of the qh byte of its
    // element; moved to bit 4 by a 16-bit shift, which carries no other bit into bit 4 of a byte.
    const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qh)));
    const __m512i bit4 = _mm512_set1_epi8(0x10);
    const auto shifted = [&](int j0, int j1) {
      const __m512i left = _mm512_mask_blend_epi64(0xF0, _mm512_set1_epi16(static_cast<int16_t>(4 - j0 > 0 ? 4 - j0 : 0)),
                                                   _mm512_set1_epi16(static_cast<int16_t>(4 - j1 > 0 ? 4 - j1 : 0)));
      const __m512i right = _mm512_mask_blend_epi64(0xF0, _mm512_set1_epi16(static_cast<int16_t>(j0 > 4 ? j0 - 4 : 0)),
                                                    _mm512_set1_epi16(static_cast<int16_t>(j1 > 4 ? j1 - 4 : 0)));
      return _mm512_and_si512(_mm512_srlv_epi16(_mm512_sllv_epi16(qh, left), right), bit4);
    };
    u[0] = _mm512_or_si512(u[0], shifted(0, 2));
    u[1] = _mm512_or_si512(u[1], shifted(1, 3));
    u[2] = _mm512_or_si512(u[2], shifted(4, 6));
    u[3] = _mm512_or_si512(u[3], shifted(5, 7));
  }
  __m512i s = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_maddubs_epi16(u[0], a.q[0]), scalePair(scales, 0, 2));
  __m512i t = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_maddubs_epi16(u[1], a.q[1]), scalePair(scales, 1, 3));
  s = _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(u[2], a.q[2]), scalePair(scales, 4, 6));
  t = _mm512_dpwssd_epi32(t, _mm512_maddubs_epi16(u[3], a.q[3]), scalePair(scales, 5, 7));
  const __m128i mins = _mm_madd_epi16(_mm256_extracti128_si256(sm, 1), a.pairs);
  const float dd = _cvtsh_ss(x.d) * a.d, ddmin = _cvtsh_ss(x.dmin) * a.d;
  acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s, t)), _mm512_set1_ps(dd), acc);
  return _mm512_fnmadd_ps(_mm512_cvtepi32_ps(_mm512_zextsi128_si512(mins)), _mm512_set1_ps(ddmin), acc);
}

#else

using Acc = __m256;
inline Acc zeroAcc() { return _mm256_setzero_ps(); }
inline float sumAcc(Acc v) { return horizontalSum(v); }

struct Activation {
  const int8_t* q;  // [256]
  __m128i pairs;
  float d;
  explicit Activation(const BlockQ8_K& y) : q(y.qs), pairs(bsumPairs(y)), d(y.d) {}
};

// One row's super-block into acc: d·dy·Σ_j s_j·Σ u·a − dmin·dy·Σ_j m_j·bsumPair_j.
template <bool kQ5>
inline Acc superBlock(const Block<kQ5>& x, const Activation& a, Acc acc) {
  const __m256i sm = scalesAndMins(x.scales);
  const __m256i scales = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sm));
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  __m256i qh;
  if constexpr (kQ5) qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qh));
  __m256i sum = _mm256_setzero_si256();
  for (int c = 0; c < 4; ++c) {  // 32 bytes of qs: sub-block 2c in the low nibbles, 2c+1 in the high
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs + 32 * c));
    __m256i lo = _mm256_and_si256(q, low4);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
    if constexpr (kQ5) {
      // Bit 2c of qh byte i is the fifth bit of element 64c+i, bit 2c+1 that of 64c+32+i.
      const __m256i bit0 = _mm256_set1_epi8(1);
      lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), bit0), 4));
      hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), bit0), 4));
    }
    const __m256i plo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q + 64 * c)));
    const __m256i phi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q + 64 * c + 32)));
    const __m256i slo = _mm256_shuffle_epi8(scales, _mm256_set1_epi16(wordPick(2 * c)));
    const __m256i shi = _mm256_shuffle_epi8(scales, _mm256_set1_epi16(wordPick(2 * c + 1)));
    sum = _mm256_add_epi32(sum, _mm256_add_epi32(_mm256_madd_epi16(plo, slo), _mm256_madd_epi16(phi, shi)));
  }
  const __m128i mins = _mm_madd_epi16(_mm256_extracti128_si256(sm, 1), a.pairs);
  const float dd = _cvtsh_ss(x.d) * a.d, ddmin = _cvtsh_ss(x.dmin) * a.d;
  acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_set1_ps(dd), acc);
  return _mm256_fnmadd_ps(_mm256_cvtepi32_ps(_mm256_zextsi128_si256(mins)), _mm256_set1_ps(ddmin), acc);
}

#endif

// out[r] = dot(weight row r, activation row) for r < 4 (kernels::DotRowsFn): the decode kernel.
template <bool kQ5>
void dotRows4(int64_t n, const void* w, size_t wStride, const void* a, float* out) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const Block<kQ5>* x[4];
  for (int r = 0; r < 4; ++r) x[r] = reinterpret_cast<const Block<kQ5>*>(wb + r * wStride);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  const int64_t nb = n / kQK_K;
  Acc acc[4];
  for (int r = 0; r < 4; ++r) acc[r] = zeroAcc();
  for (int64_t i = 0; i < nb; ++i) {
    for (int r = 0; r < 4; ++r) avx2_common::prefetchAhead<avx2_common::kStreamAhead, sizeof(Block<kQ5>)>(&x[r][i]);
    const Activation act(y[i]);
    // Unrolled, so that the accumulators stay in registers (GCC keeps the loop and them in memory).
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) acc[r] = superBlock<kQ5>(x[r][i], act, acc[r]);
  }
  for (int r = 0; r < 4; ++r) out[r] = sumAcc(acc[r]);
}

}  // namespace k_rows
}  // namespace
