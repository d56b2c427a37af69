// The Q4_0 decode kernel for x86-64: four weight rows against one Q8_0 activation row, in GGUF's
// own block layout. Included by one ISA source each (avx2.cc without VNNI, avx512_vnni.cc with
// it); everything here has internal linkage, so every including file keeps its own copy compiled
// with its own flags (see the rule in ../kernel_table.h).
//
// Why four rows at once: a decode step is one activation row against every weight row. One row
// at a time spends most of its instructions on the activation side (loads, the bias of the
// unsigned nibbles, its scale) and runs one dependent chain; four rows share all of that and run
// four independent chains.
//
// The nibbles q go into the unsigned operand as they are (0..15) and the -8 is taken off per
// activation block: Σ(q-8)·a = Σq·a − Σ8·a, exact for every int8 a (-128 included), since no
// 16-bit pair can saturate (2·15·128 < 2^15).
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "../../gguf/tensor_types.h"
#include "avx2_common.h"

namespace {
namespace q4_0_rows {

using avx2_common::horizontalSum;

// How far ahead of the current block dotRow prefetches its (single) weight stream.
constexpr int kPrefetchBytes = 1024;

inline __m256i unpackNibbles(const uint8_t* qs) {
  // low nibbles (elements 0..15) in the low lane, high nibbles (16..31) in the high lane
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
// Per activation block: the int32 lanes that start every weight row's sum, −Σ8·a over each group
// of four bytes, so that one dpbusd per row leaves Σ(q-8)·a.
inline __m256i activationBias(__m256i a) {
  return _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(8), a));
}
inline __m256i biasedDot(__m256i bias, __m256i u, __m256i a) { return _mm256_dpbusd_epi32(bias, u, a); }
#else
// Without VNNI the bias stays 16-bit: maddubs(8, a) is subtracted before the widening madd.
inline __m256i activationBias(__m256i a) { return _mm256_maddubs_epi16(_mm256_set1_epi8(8), a); }
inline __m256i biasedDot(__m256i bias, __m256i u, __m256i a) {
  return _mm256_madd_epi16(_mm256_sub_epi16(_mm256_maddubs_epi16(u, a), bias), _mm256_set1_epi16(1));
}
#endif

// out[r] = dot(weight row r, activation row) for r < 4 (kernels::DotRowsFn): the decode kernel.
inline void dotRows4(int64_t n, const void* w, size_t wStride, const void* a, float* out) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const BlockQ4_0* x[4];
  for (int r = 0; r < 4; ++r) x[r] = reinterpret_cast<const BlockQ4_0*>(wb + r * wStride);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  const int64_t nb = n / kQK;
  __m256 acc[4];
  for (int r = 0; r < 4; ++r) acc[r] = _mm256_setzero_ps();

  auto step = [&](int64_t i) {
    const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    const __m256i bias = activationBias(av);
    const __m256 da = _mm256_set1_ps(_cvtsh_ss(y[i].d));
    for (int r = 0; r < 4; ++r) {
      const __m256i u = unpackNibbles(x[r][i].qs);
      const __m256 dw = _mm256_set1_ps(_cvtsh_ss(x[r][i].d));
      const __m256 sum = _mm256_cvtepi32_ps(biasedDot(bias, u, av));
      acc[r] = _mm256_fmadd_ps(sum, _mm256_mul_ps(dw, da), acc[r]);
    }
  };
  // The four rows are four sequential streams: the caller takes them far apart (matmul.cc).
  int64_t i = 0;
  for (; i + 1 < nb; i += 2) {
    for (int r = 0; r < 4; ++r) avx2_common::prefetchAhead<avx2_common::kStreamAhead, 2 * sizeof(BlockQ4_0)>(&x[r][i]);
    step(i);
    step(i + 1);
  }
  if (i < nb) step(i);
  for (int r = 0; r < 4; ++r) out[r] = horizontalSum(acc[r]);
}

// One weight row against one activation row (VecDotFn): a single sequential stream, which the
// hardware prefetcher follows best, two blocks per iteration for two independent chains.
inline float dotRow(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ4_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  const int64_t nb = n / kQK;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  auto block = [&](int64_t i) {
    const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    const __m256 sum = _mm256_cvtepi32_ps(biasedDot(activationBias(av), unpackNibbles(x[i].qs), av));
    return _mm256_mul_ps(sum, _mm256_set1_ps(_cvtsh_ss(x[i].d) * _cvtsh_ss(y[i].d)));
  };
  int64_t i = 0;
  for (; i + 1 < nb; i += 2) {
    _mm_prefetch(reinterpret_cast<const char*>(x + i) + kPrefetchBytes, _MM_HINT_T0);
    acc0 = _mm256_add_ps(acc0, block(i));
    acc1 = _mm256_add_ps(acc1, block(i + 1));
  }
  if (i < nb) acc0 = _mm256_add_ps(acc0, block(i));
  return horizontalSum(_mm256_add_ps(acc0, acc1));
}

}  // namespace q4_0_rows
}  // namespace
