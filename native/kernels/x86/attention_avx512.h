// Attention over the fp16 KV cache on AVX-512 (ScoresF16Fn, WeighF16Fn in ../kernel_table.h),
// with exactly the sums of the AVX2 kernels in attention_f16.h, so that the two sets agree bit
// for bit. Included by x86/avx512_vnni.cc alone; internal linkage (the rule in ../kernel_table.h).
//
// A verified row of speculation adds a query per head of a group: the AVX2 kernels spend two
// loads per multiply-add (a widened key and the query, a value and a probability), and with
// eight query heads per kv head the attention of a 2,000-token context grows by about a fifth
// of a pass per row. Here a 512-bit vector holds two of the AVX2 dot product's four 8-wide
// chains side by side, and sixteen columns of a value row: half the loads for the same sums.
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "attention_f16.h"

namespace {
namespace attention_avx512 {

using attention_avx2::kAhead;
using attention_avx2::prefetchRow;
using attention_avx2::sumAcross8;

// Lanes 8..15 (vextractf32x8 would need AVX512DQ).
inline __m256 upperHalf(__m512 v) { return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)); }

// The four chains of attention_avx2::dotChains over d values (a multiple of 32), two to a
// vector: chains 0 and 1 (elements i..i+15 of every 32) in `low`, chains 2 and 3 in `high`, each
// chain's multiply-adds in the same order; then (c0 + c1) + (c2 + c3) as dotChains adds them.
inline __m256 dotChainPairs(int64_t d, const float* x, const float* y) {
  __m512 low = _mm512_setzero_ps(), high = _mm512_setzero_ps();
  for (int64_t i = 0; i < d; i += 32) {
    low = _mm512_fmadd_ps(_mm512_load_ps(x + i), _mm512_loadu_ps(y + i), low);
    high = _mm512_fmadd_ps(_mm512_load_ps(x + i + 16), _mm512_loadu_ps(y + i + 16), high);
  }
  const __m256 c01 = _mm256_add_ps(_mm512_castps512_ps256(low), upperHalf(low));
  const __m256 c23 = _mm256_add_ps(_mm512_castps512_ps256(high), upperHalf(high));
  return _mm256_add_ps(c01, c23);
}

// ScoresF16Fn. Keys eight at a time, widened 16 values per instruction into `keys8` [8][d] once
// for all m queries, each query's eight dots summed across together (sumAcross8, the order of
// the AVX2 F16 dot's horizontal sum). Heads whose size is not a multiple of 32 or above
// kMaxWidened values, and the last n % 8 keys, go to the AVX2 kernel.
void scoresF16(int64_t n, const void* keys, size_t stride, int64_t d, const float* q, int64_t m, float scale,
               float* out, size_t outStride) {
  constexpr int64_t kMaxWidened = 256;
  if (d % 32 != 0 || d > kMaxWidened) return attention_avx2::scoresF16(n, keys, stride, d, q, m, scale, out, outStride);
  const auto* base = static_cast<const uint8_t*>(keys);
  const auto key = [&](int64_t j) { return reinterpret_cast<const uint16_t*>(base + j * stride); };
  const __m256 scale8 = _mm256_set1_ps(scale);
  alignas(64) float keys8[8 * kMaxWidened];
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    for (int r = 0; r < 8; ++r) {
      prefetchRow(key(j + kAhead + r), d, j + kAhead + r < n);
      for (int64_t i = 0; i < d; i += 16) {
        _mm512_store_ps(keys8 + r * d + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(key(j + r) + i))));
      }
    }
    for (int64_t g = 0; g < m; ++g) {
      __m256 v[8];
#pragma GCC unroll 8
      for (int r = 0; r < 8; ++r) v[r] = dotChainPairs(d, keys8 + r * d, q + g * d);
      _mm256_storeu_ps(out + g * outStride + j, _mm256_mul_ps(sumAcross8(v), scale8));
    }
  }
  if (j < n) attention_avx2::scoresF16(n - j, key(j), stride, d, q, m, scale, out + j, outStride);
}

// Sixteen floats of AVX-512 for attention_avx2::weighColumns: the same sums, column by column.
struct Floats16 {
  using V = __m512;
  static constexpr int kWidth = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V widen(const uint16_t* h) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(h))); }
  static V weigh(const float* p, V x, V acc) { return _mm512_fmadd_ps(_mm512_set1_ps(*p), x, acc); }
  static void store(float* out, V v) { _mm512_storeu_ps(out, v); }
};

// WeighF16Fn: sixteen columns at a time, the last eight of a head of 8·odd values eight wide.
void weighF16(int64_t m, const int64_t* n, const float* p, size_t pStride, const void* rows, size_t stride, int64_t d,
              float* out, size_t outStride) {
  using attention_avx2::Floats8;
  const auto* base = static_cast<const uint8_t*>(rows);
  const int64_t d8 = d & ~int64_t{7};
  const auto columns = [&](auto floats, int heads, int64_t common, const float* pg, float* og, int64_t c) {
    using F = decltype(floats);
    withRowCount<8>(heads, [&](auto h) {
      attention_avx2::weighColumns<h.value, F>(common, pg, pStride, base, stride, c, og, outStride);
    });
    return c + F::kWidth;
  };
  attention_avx2::weighHeads(m, n, p, pStride, rows, stride, d, out, outStride,
                             [&](int heads, int64_t common, const float* pg, float* og, int64_t c) {
                               return c + 16 <= d8 ? columns(Floats16{}, heads, common, pg, og, c)
                                                   : columns(Floats8{}, heads, common, pg, og, c);
                             });
}

}  // namespace attention_avx512
}  // namespace
