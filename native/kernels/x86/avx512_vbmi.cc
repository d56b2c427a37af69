// AVX512_VBMI kernels for x86-64 (Ice Lake, Zen 4 and later; not Cascade Lake, which has VNNI
// without VBMI). This file alone is compiled with -mavx512vbmi on top of the AVX512_VNNI flags;
// its functions run only after cpuFeatures() said so. It holds the decode product: eight Q4_0
// weight rows against one Q8_0 activation row (DotRowsFn).
//
// Why it exists: a decode step reads every weight once, so it should run at the speed memory
// delivers. On a two-core Zen 5 that is up to ~70 GB/s, while the 4-row kernel of
// avx512_vnni.cc computes at ~28 GB/s per core (12 instructions per block, half of them
// moving nibbles and fp16 scales into place). Here two 64-byte loads cover four blocks of a row,
// and one vpermb places their nibbles, one vpermw broadcasts their scales: 5.5 instructions per
// block, ~36 GB/s per core with the data in L2.
// GCC 12's AVX-512 headers start many intrinsics from a deliberately undefined vector
// (`__m512i __Y = __Y;`), which -Wall then reports as uninitialized once inlined.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "../cpu_features.h"
#include "../kernel_table.h"
#include "avx512_pairs.h"
#include "q4_0_rows.h"

namespace kernels {
namespace {

// Four blocks i..i+3 of a row are 72 bytes: load A holds bytes 0-63, load B bytes 8-71.
// kPairA/kPairB pick the quants of blocks i, i+1 (from A) and i+2, i+3 (from B) in the lane
// order of unpackNibblePair, each 16 bytes twice: the second copy becomes the high nibbles.
alignas(64) constexpr uint8_t kPairA[64] = {
    2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 20, 21, 22, 23, 24, 25,
    26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13,
    14, 15, 16, 17, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35};
alignas(64) constexpr uint8_t kPairB[64] = {
    30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 48, 49, 50, 51, 52, 53,
    54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41,
    42, 43, 44, 45, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63};
// The fp16 scales as 16-bit words: blocks i, i+1 at words 0 and 9 of load A, blocks i+2, i+3 at
// words 14 and 23 of load B, spread as scalePair spreads them ([d0 ×4 | d1 ×4 | d0 ×4 | d1 ×4]).
alignas(64) constexpr uint16_t kScalesA[32] = {0, 0, 0, 0, 9, 9, 9, 9, 0, 0, 0, 0, 9, 9, 9, 9};
alignas(64) constexpr uint16_t kScalesB[32] = {14, 14, 14, 14, 23, 23, 23, 23, 14, 14, 14, 14, 23, 23, 23, 23};

constexpr int kRows = 8;

// out[r] = dot(weight row r, activation row) for r < 8; weight rows wStride bytes apart.
void dotQ4_0RowsAvx512Vbmi(int64_t n, const void* w, size_t wStride, const void* a, float* out) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);  // [nb]
  const int64_t nb = n / kQK;
  const __m512i pairA = _mm512_load_si512(kPairA), pairB = _mm512_load_si512(kPairB);
  const __m512i scalesA = _mm512_load_si512(kScalesA), scalesB = _mm512_load_si512(kScalesB);
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  constexpr __mmask32 kHighHalf = 0xFFFF0000u;  // the words of the copy that holds elements 16-31
  __m512 acc[kRows];
  for (int r = 0; r < kRows; ++r) acc[r] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 4 <= nb; i += 4) {
    for (int r = 0; r < kRows; ++r) {
      avx2_common::prefetchAhead<avx2_common::kStreamAhead, 4 * sizeof(BlockQ4_0)>(wb + r * wStride + i * sizeof(BlockQ4_0));
    }
    const __m512i av0 = loadActivationPair(y[i], y[i + 1]), av1 = loadActivationPair(y[i + 2], y[i + 3]);
    const __m512i bias0 = activationBiasPair(av0), bias1 = activationBiasPair(av1);
    const __m512 da0 = scalePair(y[i].d, y[i + 1].d), da1 = scalePair(y[i + 2].d, y[i + 3].d);
    for (int r = 0; r < kRows; ++r) {
      const uint8_t* blocks = wb + r * wStride + i * sizeof(BlockQ4_0);  // [4 blocks] = 72 bytes
      const __m512i loadA = _mm512_loadu_si512(blocks), loadB = _mm512_loadu_si512(blocks + 8);
      __m512i q0 = _mm512_permutexvar_epi8(pairA, loadA), q1 = _mm512_permutexvar_epi8(pairB, loadB);
      q0 = _mm512_and_si512(_mm512_mask_srli_epi16(q0, kHighHalf, q0, 4), low4);
      q1 = _mm512_and_si512(_mm512_mask_srli_epi16(q1, kHighHalf, q1, 4), low4);
      const __m512 dw0 = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(scalesA, loadA)));
      const __m512 dw1 = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(scalesB, loadB)));
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32(bias0, q0, av0)), _mm512_mul_ps(dw0, da0), acc[r]);
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32(bias1, q1, av1)), _mm512_mul_ps(dw1, da1), acc[r]);
    }
  }
  for (int r = 0; r < kRows; ++r) {
    float sum = _mm512_reduce_add_ps(acc[r]);
    // The last one to three blocks of a row whose block count is not a multiple of four: the
    // 64-byte loads above would run past the row, so these go one block at a time.
    const auto* x = reinterpret_cast<const BlockQ4_0*>(wb + r * wStride);
    for (int64_t b = i; b < nb; ++b) {
      const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].qs));
      const __m256 s = _mm256_cvtepi32_ps(
          q4_0_rows::biasedDot(q4_0_rows::activationBias(av), q4_0_rows::unpackNibbles(x[b].qs), av));
      sum += q4_0_rows::horizontalSum(_mm256_mul_ps(s, _mm256_set1_ps(_cvtsh_ss(x[b].d) * _cvtsh_ss(y[b].d))));
    }
    out[r] = sum;
  }
}

bool avx512VbmiRunsHere() { return cpuFeatures().avx512Vbmi; }

constexpr KernelSet avx512VbmiSet() {
  KernelSet s{"avx512-vbmi", avx512VbmiRunsHere};
  s[TensorType::Q4_0].rows = {dotQ4_0RowsAvx512Vbmi, kRows};
  return s;
}

}  // namespace

extern const KernelSet kAvx512VbmiKernels;
constexpr KernelSet kAvx512VbmiKernels = avx512VbmiSet();

}  // namespace kernels
