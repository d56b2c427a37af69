// What every AVX2 panel kernel (kernels::PanelFn) does the same way, whatever the type: spreading
// one 32-quant activation group over eight vectors, and storing one activation row's sixteen
// results. Included by the panel headers and avx2.cc; internal linkage, so that every including
// file keeps its own copy compiled with its own flags (see the rule in ../kernel_table.h).
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "../kernel_table.h"

namespace {
namespace panel_avx2 {

// aq[g] = the 4 bytes q[4g..4g+3] in every 32-bit lane, g < 8: the activation word that meets
// word g of all sixteen panel rows. Two 16-byte broadcast loads and in-lane shuffles (eight 4-byte
// broadcast loads made the Q4_0 panel bound by loads: nA = 32, 4.75 against 4.0 ms).
inline void broadcastGroups(const int8_t* q, __m256i aq[8]) {
  const __m256i lo = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q)));
  const __m256i hi = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 16)));
  aq[0] = _mm256_shuffle_epi32(lo, 0x00);
  aq[1] = _mm256_shuffle_epi32(lo, 0x55);
  aq[2] = _mm256_shuffle_epi32(lo, 0xAA);
  aq[3] = _mm256_shuffle_epi32(lo, 0xFF);
  aq[4] = _mm256_shuffle_epi32(hi, 0x00);
  aq[5] = _mm256_shuffle_epi32(hi, 0x55);
  aq[6] = _mm256_shuffle_epi32(hi, 0xAA);
  aq[7] = _mm256_shuffle_epi32(hi, 0xFF);
}

// One activation row's results for the panel's rows 0..nW-1 (lo: rows 0-7, hi: rows 8-15) at
// y[0..nW), the floats past nW left alone.
inline void storeRow(float* y, __m256 lo, __m256 hi, int nW) {
  if (nW == kernels::kPanelRows) {
    _mm256_storeu_ps(y, lo);
    _mm256_storeu_ps(y + 8, hi);
    return;
  }
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  _mm256_maskstore_ps(y, _mm256_cmpgt_epi32(_mm256_set1_epi32(nW), lane), lo);
  if (nW > 8) _mm256_maskstore_ps(y + 8, _mm256_cmpgt_epi32(_mm256_set1_epi32(nW - 8), lane), hi);
}

}  // namespace panel_avx2
}  // namespace
