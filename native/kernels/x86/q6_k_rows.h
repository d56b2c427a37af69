// The Q6_K decode kernel for x86-64 (kernels::DotRowsFn): four weight rows against one Q8_K
// activation row, in GGUF's own block layout. Included by avx2.cc; internal linkage, so an
// includer keeps its own copy compiled with its own flags (see ../kernel_table.h).
//
// Four rows at once share the activation side (its loads, its block sums) and run four
// independent chains. Per super-block and row: u (0..63) decoded from ql/qh, maddubs(u, a) into
// 16-bit pairs (at most 2·63·128, no saturation), one madd per 32 elements against the int16
// scales of its two sub-blocks, and the −32 offset of the quants as −32·Σ s_g·bsum_g from the
// activation's block sums: Σ s_g·Σ(u − 32)·a = Σ s_g·Σu·a − 32·Σ s_g·bsum_g, exact in int32.
// Each row's integer sum T of a super-block is then reduced across lanes, and its float result is
// y = fma(float(T), d·d_a, y) super-block by super-block from 0: the panel's order
// (q6_k_panel.h) and the dot product's, so that a batch and token-by-token decoding agree bit for bit.
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "../../gguf/tensor_types.h"
#include "avx2_common.h"

namespace {
namespace q6_k_rows {

using avx2_common::laneSums4;
using avx2_common::load256;
using avx2_common::kStreamAhead;
using avx2_common::prefetchAhead;

// u (0..63) of the 128 elements of half a super-block, given its ql (64 bytes) and qh (32 bytes):
// u[k] holds elements 32k..32k+31 of the half. The 16-bit shifts move bits across byte edges only
// into positions the 0x30 mask drops.
inline void unpackHalf(const uint8_t* ql, const uint8_t* qh, __m256i u[4]) {
  const __m256i nibble = _mm256_set1_epi8(0x0F), bits45 = _mm256_set1_epi8(0x30);
  const __m256i h = load256(qh);
  const __m256i l0 = load256(ql), l1 = load256(ql + 32);
  u[0] = _mm256_or_si256(_mm256_and_si256(l0, nibble), _mm256_and_si256(_mm256_slli_epi16(h, 4), bits45));
  u[1] = _mm256_or_si256(_mm256_and_si256(l1, nibble), _mm256_and_si256(_mm256_slli_epi16(h, 2), bits45));
  u[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), nibble), _mm256_and_si256(h, bits45));
  u[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), nibble),
                         _mm256_and_si256(_mm256_srli_epi16(h, 2), bits45));
}

// pshufb indices that turn eight int16 scales (both lanes) into scale 2k in the low lane and
// scale 2k+1 in the high lane: the scales of the two sub-blocks of elements 32k..32k+31.
inline __m256i scalePairIndex(int k) {
  return _mm256_set_m128i(_mm_set1_epi16(static_cast<int16_t>(((4 * k + 3) << 8) | (4 * k + 2))),
                          _mm_set1_epi16(static_cast<int16_t>(((4 * k + 1) << 8) | (4 * k))));
}

// out[r] = dot(weight row r, activation row) for r < 4, super-block by super-block: rowSums(xb,
// ab) gives one row's integer sums T of a super-block in eight int32 lanes, scaled here by
// d·d_a of the four rows at once.
template <class RowSums>
inline void dotRows4With(int64_t n, const void* w, size_t wStride, const void* a, float* out, RowSums rowSums) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const BlockQ6_K* x[4];
  for (int r = 0; r < 4; ++r) x[r] = reinterpret_cast<const BlockQ6_K*>(wb + r * wStride);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  const int64_t nb = n / kQK_K;
  __m128 acc = _mm_setzero_ps();  // lane r: row r
  for (int64_t i = 0; i < nb; ++i) {
    for (int r = 0; r < 4; ++r) prefetchAhead<kStreamAhead, sizeof(BlockQ6_K)>(&x[r][i]);
    __m256i sums[4];  // [row]: partial sums of T in eight lanes
    for (int r = 0; r < 4; ++r) sums[r] = rowSums(x[r][i], y[i]);
    // d·d_a of the four rows (a store of four floats read back as one vector stalled on the store
    // forwarding of every super-block).
    const __m128 d = _mm_mul_ps(avx2_common::halvesToFloat4(x[0][i].d, x[1][i].d, x[2][i].d, x[3][i].d),
                                _mm_set1_ps(y[i].d));
    acc = _mm_fmadd_ps(_mm_cvtepi32_ps(laneSums4(sums[0], sums[1], sums[2], sums[3])), d, acc);
  }
  _mm_storeu_ps(out, acc);
}

// out[r] = dot(weight row r, activation row) for r < 4.
inline void dotRows4(int64_t n, const void* w, size_t wStride, const void* a, float* out) {
  const __m256i index[4] = {scalePairIndex(0), scalePairIndex(1), scalePairIndex(2), scalePairIndex(3)};
  dotRows4With(n, w, wStride, a, out, [&](const BlockQ6_K& xb, const BlockQ8_K& ab) {
    const __m256i scales16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xb.scales)));
    __m256i sumi = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(load256(ab.bsums), scales16), 5));
    for (int half = 0; half < 2; ++half) {  // 128 elements: ql 64 bytes, qh 32 bytes, 8 scales
      __m256i u[4];
      unpackHalf(xb.ql + 64 * half, xb.qh + 32 * half, u);
      const __m256i sc = _mm256_broadcastsi128_si256(
          _mm_cvtepi8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(xb.scales + 8 * half))));
      const int8_t* q8 = ab.qs + 128 * half;
      for (int k = 0; k < 4; ++k) {
        const __m256i p = _mm256_maddubs_epi16(u[k], load256(q8 + 32 * k));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, _mm256_shuffle_epi8(sc, index[k])));
      }
    }
    return sumi;
  });
}

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
// The AVX-512 decode kernel: the same integer sums T, so the same results bit for bit, from half
// the operations. Half a super-block is two 512-bit vectors of u: U01 holds elements 0-63 of the
// half (ql bytes 0-63 low nibbles, qh bits 0-1 then 2-3), U23 elements 64-127 (high nibbles, qh
// bits 4-5 then 6-7); one per-256-bit shift count (vpsllvw/vpsrlvw) moves each qh field to bits 4-5
// and a ternary-logic op merges it with the nibble. Each 128-bit lane of U is one sub-block of
// sixteen, so its int16 scale is spread over the lane by one vpermw and applied by vpdpwssd, which
// also adds; the −32 offset enters as −bsum_g·32·s_g through one 256-bit vpdpwssd.
inline void dotRows4Vnni(int64_t n, const void* w, size_t wStride, const void* a, float* out) {
  const __m512i nibble = _mm512_set1_epi8(0x0F), bits45 = _mm512_set1_epi8(0x30);
  const __m512i shiftU01 = _mm512_mask_blend_epi64(0xF0, _mm512_set1_epi16(4), _mm512_set1_epi16(2));
  const __m512i shiftU23 = _mm512_mask_blend_epi64(0xF0, _mm512_set1_epi16(0), _mm512_set1_epi16(2));
  // scaleIndex[k]: word j of 128-bit lane l picks scale 4k + l (vector k covers sub-blocks 4k..4k+3).
  const __m512i laneNumber = _mm512_set_epi32(0x30003, 0x30003, 0x30003, 0x30003, 0x20002, 0x20002, 0x20002, 0x20002,
                                              0x10001, 0x10001, 0x10001, 0x10001, 0, 0, 0, 0);
  __m512i scaleIndex[4];
  for (int k = 0; k < 4; ++k) scaleIndex[k] = _mm512_add_epi16(laneNumber, _mm512_set1_epi16(static_cast<int16_t>(4 * k)));
  constexpr int kTernaryAandCorB = 0xEC;  // (A & C) | B
  dotRows4With(n, w, wStride, a, out, [&](const BlockQ6_K& xb, const BlockQ8_K& ab) {
    const __m256i scales16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xb.scales)));
    const __m512i scales = _mm512_castsi256_si512(scales16);  // vpermw reads words 0-15 only
    const __m256i negativeBsums = _mm256_sub_epi16(_mm256_setzero_si256(), load256(ab.bsums));
    __m512i sumi = _mm512_zextsi256_si512(
        _mm256_dpwssd_epi32(_mm256_setzero_si256(), negativeBsums, _mm256_slli_epi16(scales16, 5)));
    for (int half = 0; half < 2; ++half) {
      const __m512i l = _mm512_loadu_si512(xb.ql + 64 * half);
      const __m512i h = _mm512_broadcast_i64x4(load256(xb.qh + 32 * half));
      const __m512i u01 = _mm512_ternarylogic_epi32(l, _mm512_and_si512(_mm512_sllv_epi16(h, shiftU01), bits45),
                                                    nibble, kTernaryAandCorB);
      const __m512i u23 = _mm512_ternarylogic_epi32(_mm512_srli_epi16(l, 4),
                                                    _mm512_and_si512(_mm512_srlv_epi16(h, shiftU23), bits45),
                                                    nibble, kTernaryAandCorB);
      const int8_t* q8 = ab.qs + 128 * half;  // activation elements of this half: 64 for U01, 64 for U23
      sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(u01, _mm512_loadu_si512(q8)),
                                 _mm512_permutexvar_epi16(scaleIndex[2 * half], scales));
      sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(u23, _mm512_loadu_si512(q8 + 64)),
                                 _mm512_permutexvar_epi16(scaleIndex[2 * half + 1], scales));
    }
    return _mm256_add_epi32(_mm512_castsi512_si256(sumi), _mm512_extracti64x4_epi64(sumi, 1));
  });
}
#endif  // __AVX512VNNI__

}  // namespace q6_k_rows
}  // namespace
