// Attention over the fp16 KV cache on AVX2 + FMA + F16C (ScoresF16Fn, SoftmaxF16Fn, WeighF16Fn in
// ../kernel_table.h) and the F16 dot product whose order of sums the scores repeat. Included by
// x86/avx2.cc, and by attention_avx512.h for what its wider kernels leave; internal linkage (the
// rule in ../kernel_table.h).
//
// Both kernels take the m query heads of one kv head at once: a block of eight keys is widened
// into a small buffer once and every query's dots run against it; a value row's eight columns are
// widened once and weigh into up to eight heads' accumulators held in registers.
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cmath>
#include <cstdint>
#include <initializer_list>

#include "../panel_pass.h"
#include "avx2_common.h"

namespace {
namespace attention_avx2 {

using avx2_common::horizontalSum;

inline float halfToFloat(uint16_t h) { return _cvtsh_ss(h); }
inline __m256 load8Half(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }

// The vector part of the F16 dot product over the first n8 elements (a multiple of 8): four
// chains of 8-wide FMAs over 32 elements at a time, then 8 at a time into the first, the chains
// added pairwise. x(i), y(i): eight floats from element i.
template <class X, class Y>
inline __m256 dotChains(int64_t n8, X x, Y y) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= n8; i += 32) {
    for (int k = 0; k < 4; ++k) acc[k] = _mm256_fmadd_ps(x(i + 8 * k), y(i + 8 * k), acc[k]);
  }
  for (; i < n8; i += 8) acc[0] = _mm256_fmadd_ps(x(i), y(i), acc[0]);
  return _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
}

// The chains summed across, then the elements past the last 8 one by one. y8(i): eight floats of
// y from element i; y1(i): element i (an fp16 widened, or a float that is one).
template <class Y8, class Y1>
inline float dotHalves(int64_t n, const uint16_t* x, Y8 y8, Y1 y1) {
  const int64_t n8 = n & ~int64_t{7};
  float sum = horizontalSum(dotChains(n8, [&](int64_t i) { return load8Half(x + i); }, y8));
  for (int64_t i = n8; i < n; ++i) sum += halfToFloat(x[i]) * y1(i);
  return sum;
}

// The F16 dot product (VecDotFn).
inline float dotF16F16(int64_t n, const void* w, const void* a) {
  const auto* y = static_cast<const uint16_t*>(a);
  return dotHalves(n, static_cast<const uint16_t*>(w), [&](int64_t i) { return load8Half(y + i); },
                   [&](int64_t i) { return halfToFloat(y[i]); });
}

// Lane r: the sum across v[r]'s eight lanes in horizontalSum's order, ((l0+l4) + (l2+l6)) +
// ((l1+l5) + (l3+l7)), for eight vectors at once.
inline __m256 sumAcross8(const __m256 v[8]) {
  const auto lowPlusHigh = [](__m256 a, __m256 b) {  // [a's low + high half | b's]
    return _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
  };
  const __m256 w04 = lowPlusHigh(v[0], v[4]), w15 = lowPlusHigh(v[1], v[5]);
  const __m256 w26 = lowPlusHigh(v[2], v[6]), w37 = lowPlusHigh(v[3], v[7]);
  // [s0+s2 of v0, of v1, s1+s3 of v0, of v1 | the same of v4, v5], s the halves' sums above
  const __m256 x01 = _mm256_add_ps(_mm256_unpacklo_ps(w04, w15), _mm256_unpackhi_ps(w04, w15));
  const __m256 x23 = _mm256_add_ps(_mm256_unpacklo_ps(w26, w37), _mm256_unpackhi_ps(w26, w37));
  return _mm256_add_ps(_mm256_shuffle_ps(x01, x23, _MM_SHUFFLE(1, 0, 1, 0)), _mm256_shuffle_ps(x01, x23, _MM_SHUFFLE(3, 2, 3, 2)));
}

// The cache's rows of one kv head are a head's worth of a wider row apart, a stride the hardware
// prefetcher follows too late: each kernel asks for the row kAhead rows on, which it reaches
// after about a DRAM latency.
constexpr int64_t kAhead = 16;
inline void prefetchRow(const uint16_t* row, int64_t d, bool inRange) {
  if (!inRange) return;
  for (int64_t i = 0; i < d; i += 32) _mm_prefetch(reinterpret_cast<const char*>(row + i), _MM_HINT_T0);
}

// ScoresF16Fn. Keys eight at a time, widened into `keys8` [8][d] once for all m queries; each
// query's eight dots are summed across together. Heads of more than kMaxWidened values or not a
// multiple of 8, and the last n % 8 keys, take the dot one key at a time.
inline void scoresF16(int64_t n, const void* keys, size_t stride, int64_t d, const float* q, int64_t m, float scale,
               float* out, size_t outStride) {
  constexpr int64_t kMaxWidened = 256;
  const auto* base = static_cast<const uint8_t*>(keys);
  const auto key = [&](int64_t j) { return reinterpret_cast<const uint16_t*>(base + j * stride); };
  const __m256 scale8 = _mm256_set1_ps(scale);
  int64_t j = 0;
  if (d % 8 == 0 && d <= kMaxWidened) {
    alignas(32) float keys8[8 * kMaxWidened];
    for (; j + 8 <= n; j += 8) {
      for (int r = 0; r < 8; ++r) {
        prefetchRow(key(j + kAhead + r), d, j + kAhead + r < n);
        for (int64_t i = 0; i < d; i += 8) _mm256_store_ps(keys8 + r * d + i, load8Half(key(j + r) + i));
      }
      for (int64_t g = 0; g < m; ++g) {
        const float* qg = q + g * d;  // [d]
        __m256 v[8];
#pragma GCC unroll 8
        for (int r = 0; r < 8; ++r) {
          const float* kr = keys8 + r * d;
          v[r] = dotChains(d, [&](int64_t i) { return _mm256_load_ps(kr + i); }, [&](int64_t i) { return _mm256_loadu_ps(qg + i); });
        }
        _mm256_storeu_ps(out + g * outStride + j, _mm256_mul_ps(sumAcross8(v), scale8));
      }
    }
  }
  for (; j < n; ++j) {
    for (int64_t g = 0; g < m; ++g) {
      const float* qg = q + g * d;
      out[g * outStride + j] =
          dotHalves(d, key(j), [&](int64_t i) { return _mm256_loadu_ps(qg + i); }, [&](int64_t i) { return qg[i]; }) * scale;
    }
  }
}

// e^x for x ≤ 0, eight at a time: x = n·ln2 + r with |r| ≤ ln2/2 (ln2 in two parts, so r is
// exact), e^r by a degree-7 polynomial (Cephes' expf coefficients, within about one unit in the
// last place), 2^n put into the exponent. Below −80, e^x is taken at −80 (1.8e-35): every
// probability that small rounds to zero in fp16 anyway, and no subnormal float is produced.
inline __m256 expNonPositive(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-80.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  for (float c : {1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f}) {
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
  }
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i twoToN = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(twoToN));
}

inline float roundThroughHalf(float x) { return _cvtsh_ss(_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)); }

// SoftmaxF16Fn: the maximum, then e^(s − max) with its sum in doubles (four lanes per half), then
// each times 1/sum rounded through fp16. The last n % 8 scores go one at a time through the same
// exponential.
inline void softmaxF16(int64_t n, float* s) {
  const int64_t n8 = n & ~int64_t{7};
  __m256 max8 = _mm256_set1_ps(-INFINITY);
  for (int64_t j = 0; j < n8; j += 8) max8 = _mm256_max_ps(max8, _mm256_loadu_ps(s + j));
  __m128 max4 = _mm_max_ps(_mm256_castps256_ps128(max8), _mm256_extractf128_ps(max8, 1));
  max4 = _mm_max_ps(max4, _mm_movehl_ps(max4, max4));
  float maxScore = _mm_cvtss_f32(_mm_max_ss(max4, _mm_movehdup_ps(max4)));
  for (int64_t j = n8; j < n; ++j) maxScore = s[j] > maxScore ? s[j] : maxScore;

  const __m256 maxAll = _mm256_set1_ps(maxScore);
  __m256d sumLow = _mm256_setzero_pd(), sumHigh = _mm256_setzero_pd();
  for (int64_t j = 0; j < n8; j += 8) {
    const __m256 e = expNonPositive(_mm256_sub_ps(_mm256_loadu_ps(s + j), maxAll));
    _mm256_storeu_ps(s + j, e);
    sumLow = _mm256_add_pd(sumLow, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    sumHigh = _mm256_add_pd(sumHigh, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  const __m256d sum4 = _mm256_add_pd(sumLow, sumHigh);
  const __m128d sum2 = _mm_add_pd(_mm256_castpd256_pd128(sum4), _mm256_extractf128_pd(sum4, 1));
  double sum = _mm_cvtsd_f64(_mm_add_sd(sum2, _mm_unpackhi_pd(sum2, sum2)));
  for (int64_t j = n8; j < n; ++j) {
    s[j] = _mm256_cvtss_f32(expNonPositive(_mm256_set1_ps(s[j] - maxScore)));
    sum += s[j];
  }

  const float inv = static_cast<float>(1.0 / sum);
  const __m256 inv8 = _mm256_set1_ps(inv);
  for (int64_t j = 0; j < n8; j += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_mul_ps(_mm256_loadu_ps(s + j), inv8), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_storeu_ps(s + j, _mm256_cvtph_ps(h));
  }
  for (int64_t j = n8; j < n; ++j) s[j] = roundThroughHalf(s[j] * inv);
}

// Eight floats of AVX2, as weighColumns takes its vectors (attention_avx512.h has sixteen).
struct Floats8 {
  using V = __m256;
  static constexpr int kWidth = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V widen(const uint16_t* h) { return load8Half(h); }
  static V weigh(const float* p, V x, V acc) { return _mm256_fmadd_ps(_mm256_broadcast_ss(p), x, acc); }
  static void store(float* out, V v) { _mm256_storeu_ps(out, v); }
};

// Columns c..c+F::kWidth-1 of G heads over rows [0, n): G accumulators in registers, each row's
// values widened once; every column's sum is p_0·x_0 + p_1·x_1 + … from +0, one FMA per row.
template <int G, class F = Floats8>
inline void weighColumns(int64_t n, const float* p, size_t pStride, const uint8_t* rows, size_t stride, int64_t c,
                         float* out, size_t outStride) {
  typename F::V acc[G];
#pragma GCC unroll 8
  for (int g = 0; g < G; ++g) acc[g] = F::zero();
  for (int64_t j = 0; j < n; ++j) {
    if (c % 32 == 0 && j + kAhead < n) _mm_prefetch(reinterpret_cast<const char*>(rows + (j + kAhead) * stride + 2 * c), _MM_HINT_T0);
    const typename F::V x = F::widen(reinterpret_cast<const uint16_t*>(rows + j * stride) + c);
#pragma GCC unroll 8
    for (int g = 0; g < G; ++g) acc[g] = F::weigh(p + g * pStride + j, x, acc[g]);
  }
#pragma GCC unroll 8
  for (int g = 0; g < G; ++g) F::store(out + g * outStride + c, acc[g]);
}

// WeighF16Fn's loop: heads eight at a time, their rows in common (the shortest head's) through
// `columns(heads, common, pg, og, c)`, which weighs columns c.. of those heads and returns the
// first column it left (a multiple of 8 up to d8); a head's further rows are added onto its
// output after, in order, so that its sum is the same as alone.
template <class Columns>
void weighHeads(int64_t m, const int64_t* n, const float* p, size_t pStride, const void* rows, size_t stride, int64_t d,
                float* out, size_t outStride, Columns columns) {
  const auto* base = static_cast<const uint8_t*>(rows);
  const auto row = [&](int64_t j) { return reinterpret_cast<const uint16_t*>(base + j * stride); };
  const int64_t d8 = d & ~int64_t{7};
  for (int64_t g0 = 0; g0 < m; g0 += 8) {
    const int heads = static_cast<int>(m - g0 < 8 ? m - g0 : 8);
    const float* pg = p + g0 * pStride;
    float* og = out + g0 * outStride;
    int64_t common = n[g0];
    for (int g = 1; g < heads; ++g) common = n[g0 + g] < common ? n[g0 + g] : common;
    for (int64_t c = 0; c < d8;) c = columns(heads, common, pg, og, c);
    for (int g = 0; g < heads; ++g) {
      const float* pj = pg + g * pStride;
      float* o = og + g * outStride;  // [d]
      for (int64_t c = d8; c < d; ++c) {
        float acc = 0.0f;
        for (int64_t j = 0; j < common; ++j) acc = std::fma(pj[j], halfToFloat(row(j)[c]), acc);
        o[c] = acc;
      }
      for (int64_t j = common; j < n[g0 + g]; ++j) {
        const __m256 pv = _mm256_set1_ps(pj[j]);
        for (int64_t c = 0; c < d8; c += 8) {
          _mm256_storeu_ps(o + c, _mm256_fmadd_ps(pv, load8Half(row(j) + c), _mm256_loadu_ps(o + c)));
        }
        for (int64_t c = d8; c < d; ++c) o[c] = std::fma(pj[j], halfToFloat(row(j)[c]), o[c]);
      }
    }
  }
}

// WeighF16Fn: eight columns at a time.
inline void weighF16(int64_t m, const int64_t* n, const float* p, size_t pStride, const void* rows, size_t stride, int64_t d,
              float* out, size_t outStride) {
  const auto* base = static_cast<const uint8_t*>(rows);
  weighHeads(m, n, p, pStride, rows, stride, d, out, outStride,
             [&](int heads, int64_t common, const float* pg, float* og, int64_t c) {
               withRowCount<8>(heads, [&](auto h) { weighColumns<h.value>(common, pg, pStride, base, stride, c, og, outStride); });
               return c + 8;
             });
}

}  // namespace attention_avx2
}  // namespace
