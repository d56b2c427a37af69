// Small AVX2 helpers every x86 kernel header uses: an unaligned 32-byte load and the sum of a
// vector's eight floats. Internal linkage, so that every including file keeps its own copy
// compiled with its own flags (see the rule in ../kernel_table.h).
#pragma once
#include <immintrin.h>

#include <cstdint>

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

// The four fp16 values h0..h3 as floats in lanes 0..3: packed in a general register and widened
// by one vcvtph2ps (four scalar conversions and three inserts cost eleven shuffle-port
// operations, which bounded the decode kernels that scale one block of four rows at a time).
inline __m128 halvesToFloat4(uint16_t h0, uint16_t h1, uint16_t h2, uint16_t h3) {
  const uint64_t packed = static_cast<uint64_t>(h0) | static_cast<uint64_t>(h1) << 16 |
                          static_cast<uint64_t>(h2) << 32 | static_cast<uint64_t>(h3) << 48;
  return _mm_cvtph_ps(_mm_cvtsi64_si128(static_cast<long long>(packed)));
}

#ifndef ALPACA_STREAM_AHEAD
#define ALPACA_STREAM_AHEAD 256
#endif
constexpr size_t kStreamAhead = ALPACA_STREAM_AHEAD;

// Prefetches the lines of [p + ahead, p + ahead + bytes): a decode kernel's weight streams
// (one per row, each sequential) fetched `ahead` bytes before their use.
template <size_t kAhead, size_t kBytes>
inline void prefetchAhead(const void* p) {
  const char* c = static_cast<const char*>(p) + kAhead;
  for (size_t off = 0; off < kBytes; off += 64) _mm_prefetch(c + off, _MM_HINT_T0);
}

}  // namespace avx2_common
}  // namespace
