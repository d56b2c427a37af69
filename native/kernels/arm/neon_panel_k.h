// The K formats' panel (kernels::PanelFn) for both arm64 sets: the layout of the rearranged rows
// in the caller's scratch and the rearranging itself. The products are the instruction set's:
// neon.cc multiplies by a repeated activation word (A72), neon_dotprod.cc by SDOT by lane.
// Internal linkage, one copy per including ISA source (see the rule in ../kernel_table.h).
//
// As in the Q4_0 panel (neon_common.h), the sixteen rows are four quads of four, each quad its
// own sequential stream of records, one per super-block:
//
//   W[64]       16 bytes each: lane r (4 bytes) holds row r's quants u of elements 4g..4g+3
//   scale[G]    int32x4: row r's integer scale of group j (G = 16 groups of 16 or 8 of 32)
//   min[G/2]    int16x8: rows 0-3's mins of groups 2j (low half) and 2j+1 (high half)
//   d, dmin     float32x4: row r's factors (the offset formats: dmin = d)
//
// so that a super-block of one activation row costs, per quad, one product per four quants and
// row and a multiply-accumulate by scale per group, whatever the format's bit packing was
// (neon_k_formats.h: weight = d·scale·u − dmin·min). Rearranging costs about what one activation
// row does, once per batch.
#pragma once
#include <arm_neon.h>

#include <cstddef>
#include <cstdint>
#include <utility>

#include "../../gguf/tensor_types.h"
#include "../kernel_table.h"
#include "neon_common.h"
#include "neon_k_formats.h"

namespace kernels {
namespace {
namespace neon {

template <class F>
struct KPanel {
  static constexpr int kGroups = kQK_K / F::kGroup;
  static constexpr size_t kWBytes = kQK_K * 4;  // 64 vectors of 16
  static constexpr size_t kScaleOffset = kWBytes;
  static constexpr size_t kMinOffset = kScaleOffset + kGroups * 16;
  static constexpr size_t kFactorOffset = kMinOffset + kGroups / 2 * 16;
  static constexpr size_t kRecordBytes = kFactorOffset + 2 * 16;  // one quad, one super-block
  static constexpr size_t kBytesPerBlock = 4 * kRecordBytes;      // the panel's scratch per super-block
  static_assert(kRecordBytes % 16 == 0, "records keep 16-byte alignment");

  static const int8x16_t* w(const uint8_t* record) { return reinterpret_cast<const int8x16_t*>(record); }
  static const int32_t* scale(const uint8_t* record, int j) {
    return reinterpret_cast<const int32_t*>(record + kScaleOffset + 16 * j);
  }
  static const int16_t* minPair(const uint8_t* record, int j) {
    return reinterpret_cast<const int16_t*>(record + kMinOffset + 16 * j);
  }
  static const float* d(const uint8_t* record) { return reinterpret_cast<const float*>(record + kFactorOffset); }
  static const float* dmin(const uint8_t* record) { return reinterpret_cast<const float*>(record + kFactorOffset + 16); }
};

// Run m (16 quants) of four rows as W[4m..4m+3].
inline void storeRun(const uint8x16_t v[4], uint8_t* at) {
  uint8x16_t t[4];
  transposeWords(v, t);
  vst1q_u8(at, t[0]);
  vst1q_u8(at + 16, t[1]);
  vst1q_u8(at + 32, t[2]);
  vst1q_u8(at + 48, t[3]);
}

// Chunk c of four rows' super-block b into the record's W.
template <class F, int c>
inline void storeChunk(const typename F::Block* const x[4], uint8_t* record) {
  uint8x16_t v[4][4];  // [row][vector of the chunk]
#pragma GCC unroll 4
  for (int r = 0; r < 4; ++r) F::template chunk<c>(*x[r], v[r]);
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {
    const uint8x16_t run[4] = {v[0][k], v[1][k], v[2][k], v[3][k]};
    storeRun(run, record + 64 * F::run(c, k));
  }
}

// Rows r0..r3's int16 values of 8 groups (one vector per row) as lanes of four rows: out[2p]
// holds groups 2p and 2p+1 as int16x8 (rows 0-3 of group 2p, then of 2p+1).
inline void transposeGroups(const int16x8_t v[4], int16x8_t out[4]) {
  const int16x8_t a = vzip1q_s16(v[0], v[1]), b = vzip2q_s16(v[0], v[1]);  // rows 0,1 interleaved
  const int16x8_t c = vzip1q_s16(v[2], v[3]), e = vzip2q_s16(v[2], v[3]);  // rows 2,3
  const int32x4_t a32 = vreinterpretq_s32_s16(a), b32 = vreinterpretq_s32_s16(b);
  const int32x4_t c32 = vreinterpretq_s32_s16(c), e32 = vreinterpretq_s32_s16(e);
  out[0] = vreinterpretq_s16_s32(vzip1q_s32(a32, c32));  // groups 0, 1
  out[1] = vreinterpretq_s16_s32(vzip2q_s32(a32, c32));  // groups 2, 3
  out[2] = vreinterpretq_s16_s32(vzip1q_s32(b32, e32));  // groups 4, 5
  out[3] = vreinterpretq_s16_s32(vzip2q_s32(b32, e32));  // groups 6, 7
}

// Super-block b of the four rows `rows` into `record`.
template <class F>
inline void rearrangeQuad(const uint8_t* const rows[4], int64_t b, uint8_t* record) {
  using P = KPanel<F>;
  using Block = typename F::Block;
  const Block* x[4];
  for (int r = 0; r < 4; ++r) x[r] = reinterpret_cast<const Block*>(rows[r]) + b;
  storeChunk<F, 0>(x, record);
  storeChunk<F, 1>(x, record);
  storeChunk<F, 2>(x, record);
  storeChunk<F, 3>(x, record);
  int16x8_t scales[2][4], mins[2][4];  // [half of the groups][row]
  float32x4_t factors[4];
#pragma GCC unroll 4
  for (int r = 0; r < 4; ++r) {
    int16x8_t s[2], m[2];
    F::scales(*x[r], s, m);
    scales[0][r] = s[0], scales[1][r] = s[1], mins[0][r] = m[0], mins[1][r] = m[1];
    factors[r] = F::factors(*x[r]);
  }
#pragma GCC unroll 2
  for (int half = 0; half < P::kGroups / 8; ++half) {
    int16x8_t s[4], m[4];
    transposeGroups(scales[half], s);
    transposeGroups(mins[half], m);
#pragma GCC unroll 4
    for (int p = 0; p < 4; ++p) {
      auto* scale = reinterpret_cast<int32_t*>(record + P::kScaleOffset + 16 * (8 * half + 2 * p));
      vst1q_s32(scale, vmovl_s16(vget_low_s16(s[p])));
      vst1q_s32(scale + 4, vmovl_high_s16(s[p]));
      vst1q_s16(reinterpret_cast<int16_t*>(record + P::kMinOffset + 16 * (4 * half + p)), m[p]);
    }
  }
  // d of the four rows, then dmin: lanes 0 and 1 of each row's factors.
  const float64x2_t f01 = vreinterpretq_f64_f32(vzip1q_f32(factors[0], factors[1]));  // d0 d1 dmin0 dmin1
  const float64x2_t f23 = vreinterpretq_f64_f32(vzip1q_f32(factors[2], factors[3]));
  vst1q_f32(reinterpret_cast<float*>(record + P::kFactorOffset), vreinterpretq_f32_f64(vzip1q_f64(f01, f23)));
  vst1q_f32(reinterpret_cast<float*>(record + P::kFactorOffset + 16), vreinterpretq_f32_f64(vzip2q_f64(f01, f23)));
}

// The first `quads` quads of the panel's rows, every super-block, into `panel`: quad q's records
// one after the other from panel + q·nb·kRecordBytes.
template <class F>
inline void rearrangeKPanel(int64_t nb, const uint8_t* const rows[kPanelRows], int quads, const NextPanel& next,
                            uint8_t* panel) {
  for (int64_t b = 0; b < nb; ++b) {
    next.fetch(b);
    for (int q = 0; q < quads; ++q) {
      rearrangeQuad<F>(rows + 4 * q, b, panel + (q * nb + b) * KPanel<F>::kRecordBytes);
    }
  }
}

// The activation side of one super-block for a quad: Σ_g min_g · bsum_g of rows 0-3 (int32
// lanes), from the record's min pairs and the Q8_K block's bsums (paired for 32-groups: bsum of
// group g is then lane g of `sums`).
template <int p>
inline int32x4_t addMinPair(int32x4_t acc, const int16_t* minPairs, const int16x8_t sums[2]) {
  constexpr int g = 2 * p;
  const int16x8_t m = vld1q_s16(minPairs + 8 * p);
  acc = vmlal_laneq_s16(acc, vget_low_s16(m), sums[g / 8], g % 8);
  return vmlal_high_laneq_s16(acc, m, sums[g / 8], (g + 1) % 8);
}

template <class F, int... ps>
inline int32x4_t quadMins(const uint8_t* record, const int16x8_t bsums[2], std::integer_sequence<int, ps...>) {
  const int16_t* minPairs = KPanel<F>::minPair(record, 0);
  int16x8_t sums[2] = {bsums[0], bsums[1]};
  if constexpr (F::kGroup == 32) sums[0] = vpaddq_s16(bsums[0], bsums[1]);
  int32x4_t acc = vdupq_n_s32(0);
  ((acc = addMinPair<ps>(acc, minPairs, sums)), ...);
  return acc;
}

template <class F>
inline int32x4_t quadMins(const uint8_t* record, const int16x8_t bsums[2]) {
  return quadMins<F>(record, bsums, std::make_integer_sequence<int, KPanel<F>::kGroups / 2>());
}

}  // namespace neon
}  // namespace
}  // namespace kernels
