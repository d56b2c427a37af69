// AVX2 + FMA + F16C kernels for x86-64 (the development machines). This file alone is compiled
// with -mavx2 -mfma -mf16c; its functions run only after cpuFeatures() said so.
//
// Integer products use _mm256_maddubs_epi16 (unsigned 8-bit × signed 8-bit, pairs summed into 16
// bits) and _mm256_madd_epi16 (pairs into 32 bits). maddubs wants an unsigned operand, so a signed
// 4-bit weight q-8 is fed as the unsigned nibble q and the bias is taken off afterwards:
// Σ(q-8)·a = Σq·a − Σ8·a. That is exact for every int8 activation (no pair can saturate:
// 2·15·128 < 2^15), which the sign-flipping trick is not for a = -128.
#include <immintrin.h>

#include <cstring>

#include "../cpu_features.h"
#include "../panel_pass.h"
#include "../kernel_table.h"
#include "attention_f16.h"
#include "avx2_common.h"
#include "q2_q3_k.h"
#include "k_q4_q5_panel.h"
#include "k_q4_q5_rows.h"
#include "q4_0_rows.h"
#include "panel_avx2.h"
#include "q4_1_panel.h"
#include "q6_k_panel.h"
#include "q6_k_rows.h"
#include "q8_0_panel.h"
#include "q8_0_rows.h"

namespace kernels {
namespace {

using avx2_common::horizontalSum;
using avx2_common::load256;

inline float halfToFloat(uint16_t h) { return _cvtsh_ss(h); }

// Lane 0: float(Σ of v's eight int32 lanes), the integer sum exact (for the dot products whose
// batch and decode kernels take one integer per block: Q8_0, Q6_K).
inline __m128 laneSumAsFloat(__m256i v) {
  __m128i t = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  t = _mm_add_epi32(t, _mm_unpackhi_epi64(t, t));
  t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x55));
  return _mm_cvtepi32_ps(t);
}

// 16 bytes of packed nibbles -> 32 unsigned bytes: low nibbles (elements 0..15) in the low lane,
// high nibbles (elements 16..31) in the high lane, which is the element order of the 32-blocks.
inline __m256i unpackNibbles(const uint8_t* qs) {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

// Σ over 32 elements of (u-8)·a as 8 int32 partial sums; u unsigned nibbles, a signed bytes.
inline __m256i dotBiasedNibbles(__m256i u, __m256i a) {
  const __m256i raw = _mm256_maddubs_epi16(u, a);
  const __m256i bias = _mm256_maddubs_epi16(_mm256_set1_epi8(8), a);
  return _mm256_madd_epi16(_mm256_sub_epi16(raw, bias), _mm256_set1_epi16(1));
}

// How far ahead of the current block the weight stream is prefetched. Rows are long and read
// once, the hardware prefetcher follows them; this only covers the start of each next page.
constexpr int kPrefetchBytes = 1024;

float dotQ4_0Q8_0Avx2(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ4_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  const int64_t nb = n / kQK;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 1 < nb; i += 2) {  // two blocks per iteration: two independent FMA chains
    _mm_prefetch(reinterpret_cast<const char*>(x + i) + kPrefetchBytes, _MM_HINT_T0);
    const __m256i s0 = dotBiasedNibbles(unpackNibbles(x[i].qs), load256(y[i].qs));
    const __m256i s1 = dotBiasedNibbles(unpackNibbles(x[i + 1].qs), load256(y[i + 1].qs));
    const __m256 d0 = _mm256_set1_ps(halfToFloat(x[i].d) * halfToFloat(y[i].d));
    const __m256 d1 = _mm256_set1_ps(halfToFloat(x[i + 1].d) * halfToFloat(y[i + 1].d));
    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0), d0, acc0);
    acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1), d1, acc1);
  }
  for (; i < nb; ++i) {
    const __m256i s = dotBiasedNibbles(unpackNibbles(x[i].qs), load256(y[i].qs));
    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s),
                           _mm256_set1_ps(halfToFloat(x[i].d) * halfToFloat(y[i].d)), acc0);
  }
  return horizontalSum(_mm256_add_ps(acc0, acc1));
}

// Widened to 16 bits first so that every int8 pair, -128 included, multiplies exactly.
inline __m256i dotBytesExact(const int8_t* p, const int8_t* q) {
  const __m128i p0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i p1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16));
  const __m128i q0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
  const __m128i q1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 16));
  const __m256i lo = _mm256_madd_epi16(_mm256_cvtepi8_epi16(p0), _mm256_cvtepi8_epi16(q0));
  const __m256i hi = _mm256_madd_epi16(_mm256_cvtepi8_epi16(p1), _mm256_cvtepi8_epi16(q1));
  return _mm256_add_epi32(lo, hi);
}

// Per block the exact integer sum, then y = fma(float(sum), d_w·d_a, y) block by block from 0:
// the order of the Q8_0 decode and panel kernels (q8_0_rows.h, q8_0_panel.h), so that a batch
// and token-by-token decoding give the same bits.
float dotQ8_0Q8_0Avx2(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ8_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  const int64_t nb = n / kQK;
  __m128 acc = _mm_setzero_ps();  // lane 0
  for (int64_t i = 0; i < nb; ++i) {
    acc = _mm_fmadd_ss(laneSumAsFloat(dotBytesExact(x[i].qs, y[i].qs)),
                       _mm_set_ss(halfToFloat(x[i].d) * halfToFloat(y[i].d)), acc);
  }
  return _mm_cvtss_f32(acc);
}

// Q4_1 weights are d·q + m with q unsigned: Σ(d·q+m)·(e·a) = d·e·Σq·a + m·(e·Σa), and the
// activation block carries s = e·Σa.
float dotQ4_1Q8_1Avx2(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ4_1*>(w);
  const auto* y = static_cast<const BlockQ8_1*>(a);
  const int64_t nb = n / kQK;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc = _mm256_setzero_ps();
  float offsets = 0.0f;
  for (int64_t i = 0; i < nb; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(x + i) + kPrefetchBytes, _MM_HINT_T0);
    const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(unpackNibbles(x[i].qs), load256(y[i].qs)), ones);
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(halfToFloat(x[i].d) * halfToFloat(y[i].d)), acc);
    offsets += halfToFloat(x[i].m) * halfToFloat(y[i].s);
  }
  return horizontalSum(acc) + offsets;
}

// The 12 scale bytes of Q4_K/Q5_K hold eight 6-bit scales and eight 6-bit mins.
inline void unpackScalesMinsK(const uint8_t* s, uint8_t* scales, uint8_t* mins) {
  for (int j = 0; j < 4; ++j) {
    scales[j] = s[j] & 63;
    mins[j] = s[j + 4] & 63;
    scales[j + 4] = (s[j + 8] & 0x0F) | ((s[j] >> 6) << 4);
    mins[j + 4] = (s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4);
  }
}

// Σ_j mins[j]·(bsums[2j] + bsums[2j+1]): the part of a K-block dot product due to its minimums.
inline int32_t minsTimesBlockSums(const int16_t* bsums, const uint8_t* mins) {
  const __m256i pairSums = _mm256_madd_epi16(load256(bsums), _mm256_set1_epi16(1));
  int64_t m8;
  std::memcpy(&m8, mins, 8);
  const __m256i m = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(m8));
  const __m256i prod = _mm256_mullo_epi32(pairSums, m);
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(prod), _mm256_extracti128_si256(prod, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

float dotQ4_KQ8_KAvx2(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ4_K*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  const int64_t nb = n / kQK_K;
  const __m256i nibble = _mm256_set1_epi8(0x0F);
  __m256 acc = _mm256_setzero_ps();
  float minPart = 0.0f;
  for (int64_t i = 0; i < nb; ++i) {
    uint8_t scales[8], mins[8];
    unpackScalesMinsK(x[i].scales, scales, mins);
    __m256i sumi = _mm256_setzero_si256();
    for (int j = 0; j < 4; ++j) {  // 64 elements: 32 low nibbles, then 32 high nibbles
      const __m256i q = load256(x[i].qs + 32 * j);
      const __m256i lo = _mm256_and_si256(q, nibble);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), nibble);
      const __m256i plo = _mm256_maddubs_epi16(lo, load256(y[i].qs + 64 * j));
      const __m256i phi = _mm256_maddubs_epi16(hi, load256(y[i].qs + 64 * j + 32));
      sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(plo, _mm256_set1_epi16(scales[2 * j])));
      sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(phi, _mm256_set1_epi16(scales[2 * j + 1])));
    }
    const float dy = y[i].d;
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(halfToFloat(x[i].d) * dy), acc);
    minPart += halfToFloat(x[i].dmin) * dy * static_cast<float>(minsTimesBlockSums(y[i].bsums, mins));
  }
  return horizontalSum(acc) - minPart;
}

float dotQ5_KQ8_KAvx2(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ5_K*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  const int64_t nb = n / kQK_K;
  const __m256i nibble = _mm256_set1_epi8(0x0F);
  const __m256i bit0 = _mm256_set1_epi8(1);
  __m256 acc = _mm256_setzero_ps();
  float minPart = 0.0f;
  for (int64_t i = 0; i < nb; ++i) {
    uint8_t scales[8], mins[8];
    unpackScalesMinsK(x[i].scales, scales, mins);
    __m256i high = load256(x[i].qh);  // bit 2j of byte l: 5th bit of element 64j+l, bit 2j+1: 64j+32+l
    __m256i sumi = _mm256_setzero_si256();
    for (int j = 0; j < 4; ++j) {
      const __m256i q = load256(x[i].qs + 32 * j);
      const __m256i hlo = _mm256_slli_epi16(_mm256_and_si256(high, bit0), 4);
      const __m256i hhi = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(high, 1), bit0), 4);
      high = _mm256_srli_epi16(high, 2);
      const __m256i lo = _mm256_or_si256(_mm256_and_si256(q, nibble), hlo);
      const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), nibble), hhi);
      const __m256i plo = _mm256_maddubs_epi16(lo, load256(y[i].qs + 64 * j));
      const __m256i phi = _mm256_maddubs_epi16(hi, load256(y[i].qs + 64 * j + 32));
      sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(plo, _mm256_set1_epi16(scales[2 * j])));
      sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(phi, _mm256_set1_epi16(scales[2 * j + 1])));
    }
    const float dy = y[i].d;
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(halfToFloat(x[i].d) * dy), acc);
    minPart += halfToFloat(x[i].dmin) * dy * static_cast<float>(minsTimesBlockSums(y[i].bsums, mins));
  }
  return horizontalSum(acc) - minPart;
}

// Q6_K values are u-32 with u in 0..63. maddubs takes u unsigned; the -32 is taken off through
// the activation block sums: Σ s_g·Σ(u-32)·a = Σ s_g·Σu·a − 32·Σ s_g·bsum_g.
float dotQ6_KQ8_KAvx2(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ6_K*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  const int64_t nb = n / kQK_K;
  __m128 acc = _mm_setzero_ps();  // lane 0
  for (int64_t i = 0; i < nb; ++i) {
    const int8_t* sc = x[i].scales;
    const __m256i scales16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc)));
    __m256i sumi = _mm256_slli_epi32(_mm256_madd_epi16(load256(y[i].bsums), scales16), 5);
    sumi = _mm256_sub_epi32(_mm256_setzero_si256(), sumi);
    for (int half = 0; half < 2; ++half) {  // 128 elements: ql 64 bytes, qh 32 bytes, 8 scales
      __m256i u[4];
      q6_k_rows::unpackHalf(x[i].ql + 64 * half, x[i].qh + 32 * half, u);
      const int8_t* s = sc + 8 * half;
      const int8_t* q8 = y[i].qs + 128 * half;
      for (int k = 0; k < 4; ++k) {  // 32 elements: scale s[2k] for the first 16, s[2k+1] after
        const __m256i scale = _mm256_set_m128i(_mm_set1_epi16(s[2 * k + 1]), _mm_set1_epi16(s[2 * k]));
        const __m256i p = _mm256_maddubs_epi16(u[k], load256(q8 + 32 * k));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scale));
      }
    }
    // The super-block's exact integer sum, then one fma per super-block: the order of the Q6_K
    // decode and panel kernels (q6_k_rows.h, q6_k_panel.h), bit for bit.
    acc = _mm_fmadd_ss(laneSumAsFloat(sumi), _mm_set_ss(halfToFloat(x[i].d) * y[i].d), acc);
  }
  return _mm_cvtss_f32(acc);
}

// F16C's conversion rounds to nearest even, as fp32ToFp16 does; subnormal halves included.
void roundF16Avx2(int64_t n, float* x) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_storeu_ps(x + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; ++i) x[i] = _cvtsh_ss(_cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

float dotF32F32Avx2(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const float*>(w);
  const auto* y = static_cast<const float*>(a);
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    for (int k = 0; k < 4; ++k) {
      acc[k] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8 * k), _mm256_loadu_ps(y + i + 8 * k), acc[k]);
    }
  }
  for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc[0]);
  float sum = horizontalSum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (; i < n; ++i) sum += x[i] * y[i];
  return sum;
}

// roundf(): ties away from zero. _mm256_round_ps has no such mode, so truncate and step away
// from zero when the dropped fraction (exact in float) is at least one half.
inline __m256 roundHalfAwayFromZero(__m256 v) {
  const __m256 signBit = _mm256_set1_ps(-0.0f);
  const __m256 truncated = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 fraction = _mm256_andnot_ps(signBit, _mm256_sub_ps(v, truncated));
  const __m256 needsStep = _mm256_cmp_ps(fraction, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
  const __m256 step = _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_and_ps(v, signBit));
  return _mm256_add_ps(truncated, _mm256_and_ps(needsStep, step));
}

// Same arithmetic as the scalar quantizer, operation for operation (no FMA contraction: the
// product x·id is rounded once, then rounded to an integer), hence bit-identical blocks.
void quantizeRowQ8_0Avx2(const float* src, void* dst, int64_t n) {
  auto* out = static_cast<BlockQ8_0*>(dst);
  const __m256 absMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float* x = src + b * kQK;
    __m256 v[4];
    for (int k = 0; k < 4; ++k) v[k] = _mm256_loadu_ps(x + 8 * k);
    __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v[0], absMask), _mm256_and_ps(v[1], absMask)),
                             _mm256_max_ps(_mm256_and_ps(v[2], absMask), _mm256_and_ps(v[3], absMask)));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    out[b].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    const __m256 scale = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; ++k) q[k] = _mm256_cvttps_epi32(roundHalfAwayFromZero(_mm256_mul_ps(v[k], scale)));
    // packs work per 128-bit lane; the permute puts the 8-byte groups back in element order.
    const __m256i q16 = _mm256_packs_epi32(q[0], q[1]);
    const __m256i q16b = _mm256_packs_epi32(q[2], q[3]);
    const __m256i q8 = _mm256_packs_epi16(q16, q16b);
    const __m256i ordered = _mm256_permutevar8x32_epi32(q8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[b].qs), ordered);
  }
}

// ---- fp16 rows ----
// F16C converts exactly one way and rounds to nearest even the other, as the scalar references do.

void f16ToF32Avx2(const void* src, float* dst, int64_t n) {
  const auto* h = static_cast<const uint16_t*>(src);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i))));
  for (; i < n; ++i) dst[i] = halfToFloat(h[i]);
}

void f32ToF16Avx2(const float* src, void* dst, int64_t n) {
  auto* h = static_cast<uint16_t*>(dst);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i v = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(h + i), v);
  }
  for (; i < n; ++i) h[i] = fp32ToFp16(src[i]);
}


// ---- The Q4_0 panel product (PanelFn) ----
//
// The panel layout of avx512_vnni.cc on 256-bit vectors: per block, for each group g =
// 0..7 (elements 4g..4g+3) two vectors, rows 0-7 and rows 8-15, whose 32-bit lane r holds that
// row's four nibbles of the group (0..15, unsigned), then the sixteen rows' scales as floats. The
// activation side of a group is its four bytes broadcast, shared by all sixteen rows, and an
// activation row's results come out as two stores: no horizontal sums.
//
// Without vpdpbusd, maddubs leaves two products of a row in each 16-bit half of its lane. The
// eight groups of a block are summed in 16 bits before one madd widens them: a 16-bit slot then
// holds 16 products of magnitude at most 15·128, 30720 < 2^15, so neither the maddubs pairs nor
// their sums saturate or wrap, and one madd per block and half panel is left.
//
// Unlike the AVX-512 kernel this one always unpacks the whole panel first, even for a single
// pass of activation rows: sixteen registers hold neither a block's sixteen vectors nor half of
// them next to eight accumulators. Neither way of unpacking on the way beat the panel (4
// activation rows, 4096×4096 on Zen 5: block by block through the stack 0.78 ms, a half panel at
// a time in registers 0.94 ms, through the panel 0.74 ms).
struct alignas(32) PanelBlock {
  __m256i q[8][2];  // [group][rows 0-7, rows 8-15]
  __m256 d[2];      // scales of rows 0-7, rows 8-15
};
static_assert(sizeof(PanelBlock) == kQ4_0PanelBytesPerBlock, "the panel's block layout");

// The sixteen weight rows of one panel, unpacked block by block.
class PanelSource {
 public:
  // Rows past nW (the last panel of a matrix whose rows are not a multiple of sixteen) repeat
  // row nW-1: their memory is valid, and their lanes are never stored.
  PanelSource(int64_t nb, const uint8_t* w, size_t wStride, int nW)
      : next_(reinterpret_cast<const char*>(w + kPanelRows * wStride)),
        share_(kPanelRows * wStride / static_cast<size_t>(nb)) {
    for (int r = 0; r < kPanelRows; ++r) rows_[r] = w + (r < nW ? r : nW - 1) * wStride;
  }

  void block(int64_t b, PanelBlock* out) const {
    // Sixteen rows read side by side are sixteen streams, which the hardware prefetcher follows
    // poorly; the next panel is the one stretch of 16·wStride bytes right after this one, so it
    // is fetched here in order, a block's share (16·18 bytes) per block unpacked.
    for (size_t off = 0; off < share_; off += 64) _mm_prefetch(next_ + b * share_ + off, _MM_HINT_T0);
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    for (int h = 0; h < 2; ++h) {
      // Rows 8h+k and 8h+4+k in the two 128-bit lanes of a[k], then a 4×4 transpose of 32-bit
      // words inside each lane: t[g] lane r = row 8h+r's word g, that is bytes 4g..4g+3, the
      // nibbles of elements 4g.. (low) and 16+4g.. (high).
      __m256i a[4];
      for (int k = 0; k < 4; ++k) {
        a[k] = _mm256_inserti128_si256(_mm256_castsi128_si256(quants(8 * h + k, b)), quants(8 * h + 4 + k, b), 1);
      }
      const __m256i u0 = _mm256_unpacklo_epi32(a[0], a[1]), u1 = _mm256_unpackhi_epi32(a[0], a[1]);
      const __m256i u2 = _mm256_unpacklo_epi32(a[2], a[3]), u3 = _mm256_unpackhi_epi32(a[2], a[3]);
      const __m256i t[4] = {_mm256_unpacklo_epi64(u0, u2), _mm256_unpackhi_epi64(u0, u2),
                            _mm256_unpacklo_epi64(u1, u3), _mm256_unpackhi_epi64(u1, u3)};
      for (int g = 0; g < 4; ++g) {
        out->q[g][h] = _mm256_and_si256(t[g], low4);
        out->q[4 + g][h] = _mm256_and_si256(_mm256_srli_epi32(t[g], 4), low4);
      }
    }
    // The fp16 scales, the low half of the word at each row's block start: per half panel eight
    // broadcast loads blended into one vector. Measured as fast as two vpgatherdd on Zen 5; the
    // CPUs that run this set are worse at gathers (microcoded on Zen 1-2, slowed by the Downfall
    // microcode fix on Intel Skylake to Tiger Lake; not measured here).
    __m256i words[2];
    for (int h = 0; h < 2; ++h) {
      __m256i v[8];
      for (int r = 0; r < 8; ++r) {
        int32_t x;
        std::memcpy(&x, rows_[8 * h + r] + b * sizeof(BlockQ4_0), 4);
        v[r] = _mm256_set1_epi32(x);
      }
      const __m256i v01 = _mm256_blend_epi32(v[0], v[1], 0x02), v23 = _mm256_blend_epi32(v[2], v[3], 0x08);
      const __m256i v45 = _mm256_blend_epi32(v[4], v[5], 0x20), v67 = _mm256_blend_epi32(v[6], v[7], 0x80);
      words[h] = _mm256_blend_epi32(_mm256_blend_epi32(v01, v23, 0x0C), _mm256_blend_epi32(v45, v67, 0xC0), 0xF0);
    }
    // packus interleaves the two halves in 64-bit pieces; the permute puts each half's eight
    // scales in one 128-bit lane.
    const __m256i low16 = _mm256_set1_epi32(0xFFFF);
    const __m256i d = _mm256_permute4x64_epi64(
        _mm256_packus_epi32(_mm256_and_si256(words[0], low16), _mm256_and_si256(words[1], low16)),
        _MM_SHUFFLE(3, 1, 2, 0));
    out->d[0] = _mm256_cvtph_ps(_mm256_castsi256_si128(d));
    out->d[1] = _mm256_cvtph_ps(_mm256_extracti128_si256(d, 1));
  }

 private:
  __m128i quants(int r, int64_t b) const {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const BlockQ4_0*>(rows_[r])[b].qs));
  }

  const uint8_t* rows_[kPanelRows];
  const char* next_;
  size_t share_;
};

// NA activation rows against the unpacked panel; their results go to y[x·yStride + 0..nW).
template <int NA>
void panelRows(int64_t nb, const PanelBlock* panel, const BlockQ8_0* const a[NA], const int32_t* const bias[NA],
               const float* const scale[NA], float* const y[NA], int nW) {
  __m256 acc0[NA], acc1[NA];  // rows 0-7, rows 8-15
  for (int j = 0; j < NA; ++j) acc0[j] = acc1[j] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < nb; ++b) {
    const PanelBlock& p = panel[b];
    // Unrolled, so that the accumulators stay in registers (GCC keeps the loop and them in memory).
#pragma GCC unroll 8
    for (int j = 0; j < NA; ++j) {
      __m256i aq[8];
      panel_avx2::broadcastGroups(a[j][b].qs, aq);
      const __m256 da = _mm256_set1_ps(scale[j][b]);
      const __m256i start = _mm256_set1_epi32(bias[j][b]);  // the nibble offset, −8·Σ activation quants
      const auto half = [&](int h, __m256 acc) {
        __m256i m[8];
        for (int g = 0; g < 8; ++g) m[g] = _mm256_maddubs_epi16(p.q[g][h], aq[g]);
        const __m256i s = _mm256_add_epi16(_mm256_add_epi16(_mm256_add_epi16(m[0], m[1]), _mm256_add_epi16(m[2], m[3])),
                                           _mm256_add_epi16(_mm256_add_epi16(m[4], m[5]), _mm256_add_epi16(m[6], m[7])));
        const __m256 sum = _mm256_cvtepi32_ps(_mm256_add_epi32(start, _mm256_madd_epi16(s, ones)));
        return _mm256_fmadd_ps(sum, _mm256_mul_ps(p.d[h], da), acc);
      };
      acc0[j] = half(0, acc0[j]);
      acc1[j] = half(1, acc1[j]);
    }
  }
  for (int j = 0; j < NA; ++j) panel_avx2::storeRow(y[j], acc0[j], acc1[j], nW);
}

void gemmQ4_0Avx2(int64_t n, const void* w, size_t wStride, int nW, const void* a, size_t aStride,
                  const int32_t* aBias, const float* aScale, int64_t nA, float* y, size_t yStride, void* panel) {
  const int64_t nb = n / kQK;
  auto* pb = static_cast<PanelBlock*>(panel);
  const PanelSource source(nb, static_cast<const uint8_t*>(w), wStride, nW);
  for (int64_t b = 0; b < nb; ++b) source.block(b, pb + b);
  constexpr int kRows = 4;  // activation rows per pass: eight accumulators (3 to 6 measured the same)
  for (int64_t x0 = 0; x0 < nA; x0 += kRows) {
    const PanelPass<kRows> p(x0, nA, nb, a, aStride, aBias, aScale, y, yStride);
    withRowCount<kRows>(p.count, [&](auto rows) {
      panelRows<decltype(rows)::value>(nb, pb, p.a, p.bias, p.scale, p.y, nW);
    });
  }
}

bool avx2RunsHere() { return cpuFeatures().avx2Fma; }

constexpr KernelSet avx2Set() {
  KernelSet s{"avx2", avx2RunsHere};
  s[TensorType::Q4_0] = {dotQ4_0Q8_0Avx2, {q4_0_rows::dotRows4, 4},
                         {gemmQ4_0Avx2, q4_0PanelActivationTerms, kQ4_0PanelBytesPerBlock}};
  s[TensorType::Q8_0] = {dotQ8_0Q8_0Avx2, {q8_0_rows::dotRows4, 4},
                         {q8_0_panel::gemmAvx2, q8_0PanelActivationTerms, q8_0_panel::kAvx2BytesPerBlock},
                         quantizeRowQ8_0Avx2};
  s[TensorType::Q4_1] = {dotQ4_1Q8_1Avx2, {}, {q4_1_panel::gemmAvx2, nullptr, q4_1_panel::kBytesPerBlock}};
  s[TensorType::Q2_K].dot = q2_q3_k::dotQ2_KQ8_K;
  s[TensorType::Q2_K].rows = {q2_q3_k::dotRowsQ2_KQ8_K, 4};
  s[TensorType::Q3_K].dot = q2_q3_k::dotQ3_KQ8_K;
  s[TensorType::Q3_K].rows = {q2_q3_k::dotRowsQ3_KQ8_K, 4};
  s[TensorType::Q4_K].dot = dotQ4_KQ8_KAvx2;
  s[TensorType::Q5_K].dot = dotQ5_KQ8_KAvx2;
  s[TensorType::Q6_K] = {dotQ6_KQ8_KAvx2, {q6_k_rows::dotRows4, 4}, {q6_k_panel::gemmAvx2, nullptr, q6_k_panel::kBytesPerSuperBlock}};
  s[TensorType::Q4_K].panel = {k_panel::gemm<false>, nullptr, k_panel::kBytesPerBlock};
  s[TensorType::Q5_K].panel = {k_panel::gemm<true>, nullptr, k_panel::kBytesPerBlock};
  s[TensorType::Q4_K].rows = {k_rows::dotRows4<false>, 4};
  s[TensorType::Q5_K].rows = {k_rows::dotRows4<true>, 4};
  s[TensorType::F16] = {attention_avx2::dotF16F16, {}, {}, f32ToF16Avx2, f16ToF32Avx2};
  s[TensorType::F32].dot = dotF32F32Avx2;
  s.weighF16 = attention_avx2::weighF16;
  s.scoresF16 = attention_avx2::scoresF16;
  s.roundF16 = roundF16Avx2;
  s.softmaxF16 = attention_avx2::softmaxF16;
  return s;
}

}  // namespace

extern const KernelSet kAvx2Kernels;
constexpr KernelSet kAvx2Kernels = avx2Set();

}  // namespace kernels
