// Two consecutive Q4_0 blocks of a weight row and of a Q8_0 activation row in one 512-bit
// vector each, lanes (16 bytes) in the order
//   [block i elements 0-15 | block i+1 elements 0-15 | block i elements 16-31 | block i+1 16-31],
// so that one vpdpbusd multiplies 64 elements. Shared by the AVX-512 sources (avx512_*.cc);
// internal linkage: each includer compiles its own copy with its own flags (see ../kernel_table.h).
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "../../gguf/tensor_types.h"

namespace {

// Two consecutive weight blocks: the weight side is two 16-byte loads, one shift and one mask.
inline __m512i unpackNibblePair(const BlockQ4_0& b0, const BlockQ4_0& b1) {
  const __m256i packed = _mm256_set_m128i(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b1.qs)),
                                          _mm_loadu_si128(reinterpret_cast<const __m128i*>(b0.qs)));
  const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(packed), _mm256_srli_epi16(packed, 4), 1);
  return _mm512_and_si512(both, _mm512_set1_epi8(0x0F));
}

// The activation quants of two consecutive blocks in the lane order of unpackNibblePair.
inline __m512i loadActivationPair(const BlockQ8_0& b0, const BlockQ8_0& b1) {
  const __m512i in = _mm512_inserti64x4(
      _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b0.qs))),
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b1.qs)), 1);  // [0 lo | 0 hi | 1 lo | 1 hi]
  return _mm512_shuffle_i64x2(in, in, _MM_SHUFFLE(3, 1, 2, 0));
}

// fp16 scales of two blocks as [d0 ×4 | d1 ×4 | d0 ×4 | d1 ×4], matching the lanes above.
inline __m512 scalePair(uint16_t d0, uint16_t d1) {
  return _mm512_mask_blend_ps(0xF0F0, _mm512_set1_ps(_cvtsh_ss(d0)), _mm512_set1_ps(_cvtsh_ss(d1)));
}

// −8·Σa over each group of four activation bytes: the start of every weight row's int32 sums,
// so that vpdpbusd over the unsigned nibbles q leaves Σ(q−8)·a.
inline __m512i activationBiasPair(__m512i av) {
  return _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(8), av));
}

}  // namespace
