// The decode kernels of both arm64 sets (kernels::DotRowsFn): R weight rows against the one
// activation row of a decode step, in GGUF's own block layout. Internal linkage, one copy per
// including ISA source (see the rule in ../kernel_table.h).
//
// A decode step has nothing to share but its activation row, so the kernels make the most of
// that: each activation block is loaded (and for Q4_0 summed) once for all R rows, and each row
// then costs only its own work; the rows are computed one after the other inside a block, each
// into its own accumulator, so that R rows are R independent chains.
//
// The policy (Dot) is the instruction set's: neon.cc's 16-bit multiply-accumulate (A72) or
// neon_dotprod.cc's SDOT (A76). It provides
//   nibbleTotals4(ql, lo, qh, hi)   four blocks of 0..15 nibbles · int8: their totals, block k in lane k
//   byteTotals4(x0, lo, x1, hi)     the same for int8 weights of the whole range
//   Scales, Sums, scales(), zeroSums(), product1/2(), addGroup<g>(), total()
//                                   a K super-block's Σ_g scale_g · Σ u·a (scaledSums below)
#pragma once
#include <arm_neon.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "../../gguf/tensor_types.h"
#include "neon_common.h"
#include "neon_k_formats.h"

namespace kernels {
namespace {
namespace neon {

// Keeps row r's work before row r + 1's: without it GCC interleaves the rows' loads and
// unpacking, runs out of the 32 vector registers and spills.
#define ALPACA_ROW_AFTER_ROW(next, acc) __asm__("" : "+r"(next) : "w"(acc))

// ---------------------------------------------------------------- 32-element blocks
// Four blocks of a row per step: Q4_0 (72 bytes) and Q4_1 (80) are loaded with one LD1 of four
// vectors and one more load, the quants realigned with EXT and the fp16 factors gathered with one
// TBL; Q8_0's 34-byte blocks are read where they lie.

// Σa of each of four Q8_0 blocks (lo[k], hi[k]: the two halves of block k), times 8: Q4_0's
// nibbles stay unsigned (0..15) and its −8 is taken off once per block. A 16-bit lane holds at
// most 16 bytes here, |16·128| < 2^15.
inline int32x4_t eightTimesSums4(const int8x16_t lo[4], const int8x16_t hi[4]) {
  int16x8_t s[4];
  for (int k = 0; k < 4; ++k) s[k] = vpadalq_s8(vpaddlq_s8(lo[k]), hi[k]);
  return vshlq_n_s32(vpaddlq_s16(vpaddq_s16(vpaddq_s16(s[0], s[1]), vpaddq_s16(s[2], s[3]))), 3);
}

// Bytes 0-1, 18-19, 36-37, 54-55 of four consecutive Q4_0 blocks: their fp16 scales.
alignas(8) constexpr uint8_t kQ4_0ScaleBytes[8] = {0, 1, 18, 19, 36, 37, 54, 55};
// Of four Q4_1 blocks (20 bytes): the four d, then the four m.
alignas(16) constexpr uint8_t kQ4_1FactorBytes[16] = {0, 1, 20, 21, 40, 41, 60, 61, 2, 3, 22, 23, 42, 43, 62, 63};

struct RowsQ4_0 {
  using Block = BlockQ4_0;
  using Act = BlockQ8_0;
  // Four blocks at p: quants q[k] of block k, scales d.
  struct Loader {
    uint8x8_t index = vld1_u8(kQ4_0ScaleBytes);
    inline void load4(const uint8_t* p, uint8x16_t q[4], float32x4_t* d, float32x4_t*) const {
      const uint8x16x4_t v = vld1q_u8_x4(p);
      const uint8x16_t tail = vcombine_u8(vld1_u8(p + 64), vdup_n_u8(0));
      *d = vcvt_f32_f16(vreinterpret_f16_u8(vqtbl4_u8(v, index)));
      q[0] = vextq_u8(v.val[0], v.val[1], 2);
      q[1] = vextq_u8(v.val[1], v.val[2], 4);
      q[2] = vextq_u8(v.val[2], v.val[3], 6);
      q[3] = vextq_u8(v.val[3], tail, 8);
    }
  };
};

struct RowsQ4_1 {
  using Block = BlockQ4_1;
  using Act = BlockQ8_1;
  struct Loader {
    uint8x16_t index = vld1q_u8(kQ4_1FactorBytes);
    inline void load4(const uint8_t* p, uint8x16_t q[4], float32x4_t* d, float32x4_t* m) const {
      const uint8x16x4_t v = vld1q_u8_x4(p);
      const float16x8_t dm = vreinterpretq_f16_u8(vqtbl4q_u8(v, index));
      *d = vcvt_f32_f16(vget_low_f16(dm));
      *m = vcvt_high_f32_f16(dm);
      q[0] = vextq_u8(v.val[0], v.val[1], 4);
      q[1] = vextq_u8(v.val[1], v.val[2], 8);
      q[2] = vextq_u8(v.val[2], v.val[3], 12);
      q[3] = vld1q_u8(p + 64);
    }
  };
};

template <class Dot, class F, int R>
void dotRowsNibbles(int64_t n, const void* w, size_t wStride, const void* a, float* out) {
  constexpr bool kQ4_1 = std::is_same_v<F, RowsQ4_1>;
  using Block = typename F::Block;
  using Act = typename F::Act;
  const int64_t nb = n / kQK;
  const uint8_t* row[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) row[r] = static_cast<const uint8_t*>(w) + r * wStride;
  const auto* y = static_cast<const Act*>(a);  // [nb]
  float32x4_t acc[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) acc[r] = vdupq_n_f32(0.0f);
  const typename F::Loader loader;
  const uint8x16_t low4 = vdupq_n_u8(0x0F);
  int64_t i = 0;
  for (; i + 4 <= nb; i += 4, y += 4) {
    int8x16_t lo[4], hi[4];
    for (int k = 0; k < 4; ++k) lo[k] = vld1q_s8(y[k].qs), hi[k] = vld1q_s8(y[k].qs + 16);
    const float32x4_t da = loadHalves4(y, offsetof(Act, d));
    int32x4_t offset = vdupq_n_s32(0);
    float32x4_t sa = vdupq_n_f32(0.0f);  // Q4_1: the activation blocks' d·Σa, which m multiplies
    if constexpr (kQ4_1) {
      sa = loadHalves4(y, offsetof(Act, s));
    } else {
      offset = eightTimesSums4(lo, hi);
    }
    // Fully unrolled, so that the rows' pointers and accumulators stay in registers.
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      uint8x16_t q[4];
      float32x4_t dw, mw;
      loader.load4(row[r], q, &dw, &mw);
      row[r] += 4 * sizeof(Block);
      int8x16_t ql[4], qh[4];
      for (int k = 0; k < 4; ++k) {
        ql[k] = vreinterpretq_s8_u8(vandq_u8(q[k], low4));
        qh[k] = vreinterpretq_s8_u8(vshrq_n_u8(q[k], 4));
      }
      const int32x4_t totals = vsubq_s32(Dot::nibbleTotals4(ql, lo, qh, hi), offset);
      acc[r] = vfmaq_f32(acc[r], vcvtq_f32_s32(totals), vmulq_f32(dw, da));
      if constexpr (kQ4_1) acc[r] = vfmaq_f32(acc[r], mw, sa);
      if (r + 1 < R) ALPACA_ROW_AFTER_ROW(row[r + 1], acc[r]);
    }
  }
  // The last blocks (n not a multiple of 128), one at a time.
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    float sum = vaddvq_f32(acc[r]);
    const auto* x = reinterpret_cast<const Block*>(row[r]);
    for (int64_t j = 0; i + j < nb; ++j) {
      if constexpr (kQ4_1) {
        sum += static_cast<float>(vaddvq_s32(dotQ4_1Block<Dot>(x[j], y[j]))) * (halfToFloat(x[j].d) * halfToFloat(y[j].d)) +
               halfToFloat(x[j].m) * halfToFloat(y[j].s);
      } else {
        sum += static_cast<float>(vaddvq_s32(dotQ4_0Block<Dot>(x[j], y[j]))) * (halfToFloat(x[j].d) * halfToFloat(y[j].d));
      }
    }
    out[r] = sum;
  }
}

// Q8_0: int8 weights of the whole range (−128 included), four blocks per step.
template <class Dot, int R>
void dotRowsQ8_0(int64_t n, const void* w, size_t wStride, const void* a, float* out) {
  const int64_t nb = n / kQK;
  const BlockQ8_0* row[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) row[r] = reinterpret_cast<const BlockQ8_0*>(static_cast<const uint8_t*>(w) + r * wStride);
  const auto* y = static_cast<const BlockQ8_0*>(a);  // [nb]
  float32x4_t acc[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) acc[r] = vdupq_n_f32(0.0f);
  int64_t i = 0;
  for (; i + 4 <= nb; i += 4) {
    int8x16_t lo[4], hi[4];
    for (int k = 0; k < 4; ++k) lo[k] = vld1q_s8(y[i + k].qs), hi[k] = vld1q_s8(y[i + k].qs + 16);
    const float32x4_t da = loadHalves4(y + i, offsetof(BlockQ8_0, d));
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const BlockQ8_0* x = row[r] + i;
      int8x16_t x0[4], x1[4];
      for (int k = 0; k < 4; ++k) x0[k] = vld1q_s8(x[k].qs), x1[k] = vld1q_s8(x[k].qs + 16);
      const float32x4_t dw = loadHalves4(x, offsetof(BlockQ8_0, d));
      acc[r] = vfmaq_f32(acc[r], vcvtq_f32_s32(Dot::byteTotals4(x0, lo, x1, hi)), vmulq_f32(dw, da));
      if (r + 1 < R) ALPACA_ROW_AFTER_ROW(row[r + 1], acc[r]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    float sum = vaddvq_f32(acc[r]);
    for (int64_t j = i; j < nb; ++j) {
      const BlockQ8_0& x = row[r][j];
      sum += static_cast<float>(vaddvq_s32(dotQ8_0Block<Dot>(x, y[j]))) * (halfToFloat(x.d) * halfToFloat(y[j].d));
    }
    out[r] = sum;
  }
}

// ---------------------------------------------------------------- K super-blocks
// Σ_g scale_g · Σ u·a of one super-block: the policy multiplies the 16 (or 32) quants of a group
// by the activations (product1, product2: 2 or 4 products per 16-bit lane on the A72, SDOT on
// the A76) and adds the group's sum times its scale into its accumulator (addGroup<g>).
template <class Dot, class F, int c, int k>
inline void addGroupOfChunk(const uint8x16_t v[4], const int8_t* q8, const typename Dot::Scales& scales,
                            typename Dot::Sums& sums) {
  constexpr int m = F::run(c, k), g = 16 * m / F::kGroup;
  const int8x16_t a = vld1q_s8(q8 + 16 * m);
  if constexpr (F::kGroup == 32) {
    static_assert(F::run(c, k + 1) == m + 1, "a 32-group is two vectors of one chunk");
    Dot::template addGroup<g>(sums, scales, Dot::product2(v[k], a, v[k + 1], vld1q_s8(q8 + 16 * (m + 1))));
  } else {
    Dot::template addGroup<g>(sums, scales, Dot::product1(v[k], a));
  }
}

template <class Dot, class F, int c>
inline void addChunk(const typename F::Block& x, const int8_t* q8, const typename Dot::Scales& scales,
                     typename Dot::Sums& sums) {
  uint8x16_t v[4];
  F::template chunk<c>(x, v);
  addGroupOfChunk<Dot, F, c, 0>(v, q8, scales, sums);
  if constexpr (F::kGroup == 16) addGroupOfChunk<Dot, F, c, 1>(v, q8, scales, sums);
  addGroupOfChunk<Dot, F, c, 2>(v, q8, scales, sums);
  if constexpr (F::kGroup == 16) addGroupOfChunk<Dot, F, c, 3>(v, q8, scales, sums);
}

template <class Dot, class F>
inline int32x4_t scaledSums(const typename F::Block& x, const int8_t* q8, const int16x8_t scales16[2]) {
  static_assert(F::kChunks == 4, "four chunks of 64 quants");
  const typename Dot::Scales scales = Dot::scales(scales16);
  typename Dot::Sums sums = Dot::zeroSums();
  addChunk<Dot, F, 0>(x, q8, scales, sums);
  addChunk<Dot, F, 1>(x, q8, scales, sums);
  addChunk<Dot, F, 2>(x, q8, scales, sums);
  addChunk<Dot, F, 3>(x, q8, scales, sums);
  return Dot::total(sums);
}

// Per super-block and row (neon_k_formats.h): the integer sums Σ_g scale_g·Σu·a and
// Σ_g min_g·bsum_g, then da·(d·sums − dmin·mins), the offset formats (dmin = d) subtracting in
// integers first. The activation's bsums and scale are read once for all rows.
template <class Dot, class F, int R>
void dotRowsK(int64_t n, const void* w, size_t wStride, const void* a, float* out) {
  using Block = typename F::Block;
  const int64_t nb = n / kQK_K;
  const Block* row[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) row[r] = reinterpret_cast<const Block*>(static_cast<const uint8_t*>(w) + r * wStride);
  const auto* y = static_cast<const BlockQ8_K*>(a);  // [nb]
  float32x4_t acc[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) acc[r] = vdupq_n_f32(0.0f);
  for (int64_t i = 0; i < nb; ++i) {
    const int16x8_t bsums[2] = {vld1q_s16(y[i].bsums), vld1q_s16(y[i].bsums + 8)};
    const float da = y[i].d;
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const Block& x = row[r][i];
      int16x8_t scales[2], mins[2];
      F::scales(x, scales, mins);
      const int32x4_t sums = scaledSums<Dot, F>(x, y[i].qs, scales);
      const int32x4_t offsets = minsTimesBsums<F>(mins, bsums);
      const float32x4_t f = vmulq_n_f32(F::factors(x), da);  // d·da, dmin·da
      if constexpr (F::kOffset) {
        acc[r] = vfmaq_laneq_f32(acc[r], vcvtq_f32_s32(vsubq_s32(sums, offsets)), f, 0);
      } else {
        acc[r] = vfmaq_laneq_f32(acc[r], vcvtq_f32_s32(sums), f, 0);
        acc[r] = vfmsq_laneq_f32(acc[r], vcvtq_f32_s32(offsets), f, 1);
      }
      if (r + 1 < R) ALPACA_ROW_AFTER_ROW(row[r + 1], acc[r]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) out[r] = vaddvq_f32(acc[r]);
}

// One row of a K format (kernels::VecDotFn): the decode kernel for a single row.
template <class Dot, class F>
float dotK(int64_t n, const void* w, const void* a) {
  float out;
  dotRowsK<Dot, F, 1>(n, w, 0, a, &out);
  return out;
}

#undef ALPACA_ROW_AFTER_ROW

}  // namespace neon
}  // namespace
}  // namespace kernels
