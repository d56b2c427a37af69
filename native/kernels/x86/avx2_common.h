// Small AVX2 helpers every x86 kernel header uses: an unaligned 32-byte load and the sum of a
// vector's eight floats. Internal linkage, so that every including file keeps its own copy
// compiled with its own flags (see the rule in ../kernel_table.h).
#pragma once
#include <immintrin.h>

namespace {
namespace avx2_common {

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

inline float horizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Lane r of the result: the sum of the eight int32 lanes of vr, exact (the decode kernels' one
// integer per row and block, so that batch, decode and dot add their floats in one order).
inline __m128i laneSums4(__m256i v0, __m256i v1, __m256i v2, __m256i v3) {
  const __m256i s = _mm256_hadd_epi32(_mm256_hadd_epi32(v0, v1), _mm256_hadd_epi32(v2, v3));
  return _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
}

}  // namespace avx2_common
}  // namespace
