// The K formats (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) as NEON sees them, for the decode and panel
// kernels of both arm64 sets. Internal linkage, one copy per including ISA source (see the rule
// in ../kernel_table.h); the bit layouts are those of ../../gguf/k_quants.h.
//
// Every K format is the same thing once unpacked: a super-block of 256 unsigned quants u (0..63 at
// most), an integer scale per group of 16 or 32, an integer min per group, and two fp16 factors:
//
//   weight = d · scale_g · u  −  dmin · min_g
//
// Formats with a fixed offset instead of a min (Q6_K: u − 32, Q3_K: u − 4) have min_g = offset ·
// scale_g and dmin = d. The dot product with a Q8_K row (quants a, float scale da, sums of 16
// quants bsum) is then, per super-block, with exact integer sums as in ggml's,
//
//   da · (d · Σ_g scale_g · Σ u·a  −  dmin · Σ_g min_g · bsum_g)
//
// where bsum_g of a 32-group is the sum of two of Q8_K's. Unsigned quants keep every product
// below 64·128, so four of them fit a 16-bit lane (the A72's multiply-accumulate), and none of
// the offset formats pays a subtraction per quant.
//
// A format gives, per super-block, its quants as 16 vectors of 16 (kChunks calls of chunk<c>,
// four vectors each; vector k of chunk c holds elements 16·run(c, k) ..+15), its scales and mins
// as int16 vectors, and (d, dmin) as floats.
#pragma once
#include <arm_neon.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "../../gguf/tensor_types.h"

namespace kernels {
namespace {
namespace neon {

// v shifted left by s bits (right for s < 0), per byte.
template <int s>
inline uint8x16_t shiftBytes(uint8x16_t v) {
  if constexpr (s > 0) return vshlq_n_u8(v, s);
  else if constexpr (s < 0) return vshrq_n_u8(v, -s);
  else return v;
}

// Bit `from` of every byte of h, moved to bit `to` of the byte of v (whose bit `to` is clear).
template <int from, int to>
inline uint8x16_t insertBit(uint8x16_t v, uint8x16_t h) {
  return vbslq_u8(vdupq_n_u8(1 << to), shiftBytes<to - from>(h), v);
}

// The 16-element runs of chunk c of the formats laid out in halves of 128 elements (Q6_K, Q3_K,
// Q2_K): chunk c = (half h, r) holds positions 16r..16r+15 of the four 32-element rows of half h.
constexpr int runInHalves(int c, int k) { return 8 * (c / 2) + 2 * k + c % 2; }

// Two fp16 values side by side (d, dmin) as floats in lanes 0 and 1 (and again in 2 and 3).
inline float32x4_t loadHalfPair(const uint16_t* p) {
  return vcvt_f32_f16(vreinterpret_f16_u32(vld1_dup_u32(reinterpret_cast<const uint32_t*>(p))));
}

// One fp16 value as a float in every lane: d = dmin of the offset formats. (Two bytes only: their
// d ends the block, and the row may end with it.)
inline float32x4_t loadHalfTwice(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_dup_u16(p))); }

// Q4_K and Q5_K share their scales: 12 bytes hold eight 6-bit scales and eight 6-bit mins.
// Bytes 0-3: scales 0-3 (low 6 bits); 4-7: mins 0-3; 8-11: the low 4 bits of scales 4-7 (low
// nibble) and mins 4-7 (high nibble), whose top 2 bits are the top bits of bytes 0-3 and 4-7.
inline void scalesMinsK4(const uint8_t* packed, int16x8_t* scales, int16x8_t* mins) {
  const uint8x8_t first = vld1_u8(packed);                                                    // bytes 0-7
  const uint8x8_t last = vreinterpret_u8_u32(vld1_dup_u32(reinterpret_cast<const uint32_t*>(packed + 8)));  // 8-11 twice
  const uint8x8_t low = vand_u8(first, vdup_n_u8(63));                                        // scales 0-3, mins 0-3
  const int8x8_t nibbleShift = {0, 0, 0, 0, -4, -4, -4, -4};
  const uint8x8_t nibbles = vand_u8(vshl_u8(last, nibbleShift), vdup_n_u8(0x0F));
  const uint8x8_t high = vorr_u8(nibbles, vshl_n_u8(vshr_n_u8(first, 6), 4));               // scales 4-7, mins 4-7
  const uint32x2_t l = vreinterpret_u32_u8(low), h = vreinterpret_u32_u8(high);
  *scales = vreinterpretq_s16_u16(vmovl_u8(vreinterpret_u8_u32(vzip1_u32(l, h))));
  *mins = vreinterpretq_s16_u16(vmovl_u8(vreinterpret_u8_u32(vzip2_u32(l, h))));
}

// ---------------------------------------------------------------- Q4_K and Q5_K
// qs in chunks of 32 bytes: chunk c holds elements 64c.. in its low nibbles and 64c+32.. in its
// high ones. Q5_K's fifth bit of element 64c + i is bit 2c of qh[i], of 64c + 32 + i bit 2c+1.
template <bool kFifthBit>
struct FormatQ4Q5K {
  using Block = std::conditional_t<kFifthBit, BlockQ5_K, BlockQ4_K>;
  static constexpr int kChunks = 4;
  static constexpr int kGroup = 32;     // elements per scale and per min
  static constexpr int kMaxQuant = kFifthBit ? 31 : 15;
  static constexpr bool kOffset = false;  // a min of its own per group, and dmin
  static constexpr int run(int c, int k) { return 4 * c + k; }

  template <int c>
  static inline void chunk(const Block& x, uint8x16_t v[4]) {
    const uint8x16_t a = vld1q_u8(x.qs + 32 * c), b = vld1q_u8(x.qs + 32 * c + 16);
    const uint8x16_t low4 = vdupq_n_u8(0x0F);
    v[0] = vandq_u8(a, low4);
    v[1] = vandq_u8(b, low4);
    v[2] = vshrq_n_u8(a, 4);
    v[3] = vshrq_n_u8(b, 4);
    if constexpr (kFifthBit) {
      const uint8x16_t h0 = vld1q_u8(x.qh), h1 = vld1q_u8(x.qh + 16);
      v[0] = insertBit<2 * c, 4>(v[0], h0);
      v[1] = insertBit<2 * c, 4>(v[1], h1);
      v[2] = insertBit<2 * c + 1, 4>(v[2], h0);
      v[3] = insertBit<2 * c + 1, 4>(v[3], h1);
    }
  }
  // scales[0]: the 8 scales; mins[0]: the 8 mins (one per 32-group; [1] unused).
  static inline void scales(const Block& x, int16x8_t scales[2], int16x8_t mins[2]) {
    scalesMinsK4(x.scales, &scales[0], &mins[0]);
  }
  static inline float32x4_t factors(const Block& x) { return loadHalfPair(&x.d); }  // d, dmin
};
using FormatQ4K = FormatQ4Q5K<false>;
using FormatQ5K = FormatQ4Q5K<true>;

// ---------------------------------------------------------------- Q6_K
// Half h (128 elements) takes ql[64h..] and qh[32h..]: element 128h + 32k + i has the low
// nibble of ql[64h + i] (k=0), of ql[64h + 32 + i] (k=1), their high nibbles (k=2, 3), and bits
// 2k, 2k+1 of qh[32h + i] on top. Chunk c = (h, r) takes positions i = 16r..16r+15.
struct FormatQ6K {
  using Block = BlockQ6_K;
  static constexpr int kChunks = 4;
  static constexpr int kGroup = 16;
  static constexpr int kMaxQuant = 63;
  static constexpr bool kOffset = true;   // min = 32·scale, dmin = d
  static constexpr int run(int c, int k) { return runInHalves(c, k); }

  template <int c>
  static inline void chunk(const Block& x, uint8x16_t v[4]) {
    constexpr int h = c / 2, r = c % 2;
    const uint8x16_t l0 = vld1q_u8(x.ql + 64 * h + 16 * r), l1 = vld1q_u8(x.ql + 64 * h + 32 + 16 * r);
    const uint8x16_t hh = vld1q_u8(x.qh + 32 * h + 16 * r), hh2 = vshrq_n_u8(hh, 2);
    const uint8x16_t bits01 = vdupq_n_u8(0x03), bits45 = vdupq_n_u8(0x30);
    // Shift-and-insert: one nibble of l, the two high bits from h beside it.
    v[0] = vsliq_n_u8(l0, vandq_u8(hh, bits01), 4);
    v[1] = vsliq_n_u8(l1, vandq_u8(hh2, bits01), 4);
    v[2] = vsriq_n_u8(vandq_u8(hh, bits45), l0, 4);
    v[3] = vsriq_n_u8(vandq_u8(hh2, bits45), l1, 4);
  }
  // Signed 8-bit scales, one per 16; the offset 32 as min = 32 · scale.
  static inline void scales(const Block& x, int16x8_t scales[2], int16x8_t mins[2]) {
    const int8x16_t s = vld1q_s8(x.scales);
    scales[0] = vmovl_s8(vget_low_s8(s));
    scales[1] = vmovl_high_s8(s);
    mins[0] = vshlq_n_s16(scales[0], 5);
    mins[1] = vshlq_n_s16(scales[1], 5);
  }
  static inline float32x4_t factors(const Block& x) { return loadHalfTwice(&x.d); }  // d, d
};

// ---------------------------------------------------------------- Q3_K
// Element 128h + 32j + i: bits 2j, 2j+1 of qs[32h + i] low, bit 4h + j of hmask[i] as its third
// bit (ggml: set +0, clear −4; here u = low | hbit·4 and the offset is 4). Sixteen 6-bit scales,
// each minus 32: their low nibbles in bytes 0-7, their top two bits in bytes 8-11.
struct FormatQ3K {
  using Block = BlockQ3_K;
  static constexpr int kChunks = 4;
  static constexpr int kGroup = 16;
  static constexpr int kMaxQuant = 7;
  static constexpr bool kOffset = true;   // min = 4·scale, dmin = d
  static constexpr int run(int c, int k) { return runInHalves(c, k); }

  template <int c>
  static inline void chunk(const Block& x, uint8x16_t v[4]) {
    constexpr int h = c / 2, r = c % 2;
    const uint8x16_t q = vld1q_u8(x.qs + 32 * h + 16 * r), hm = vld1q_u8(x.hmask + 16 * r);
    const uint8x16_t bits01 = vdupq_n_u8(0x03);
    v[0] = insertBit<4 * h + 0, 2>(vandq_u8(q, bits01), hm);
    v[1] = insertBit<4 * h + 1, 2>(vandq_u8(vshrq_n_u8(q, 2), bits01), hm);
    v[2] = insertBit<4 * h + 2, 2>(vandq_u8(vshrq_n_u8(q, 4), bits01), hm);
    v[3] = insertBit<4 * h + 3, 2>(vshrq_n_u8(q, 6), hm);
  }
  // ggml's unpacking on 32-bit words, done per byte (its masks keep each byte's own bits):
  // scales 0-3: low nibbles of bytes 0-3, bits 0-1 of bytes 8-11 on top; 4-7: low nibbles of
  // bytes 4-7, bits 2-3; 8-11: high nibbles of 0-3, bits 4-5; 12-15: high nibbles of 4-7, bits 6-7.
  static inline void scales(const Block& x, int16x8_t scales[2], int16x8_t mins[2]) {
    const uint8x8_t first = vld1_u8(x.scales);
    const uint8x8_t last = vreinterpret_u8_u32(vld1_dup_u32(reinterpret_cast<const uint32_t*>(x.scales + 8)));
    const uint8x8_t bits01 = vdup_n_u8(0x03);
    const int8x8_t shiftLow = {0, 0, 0, 0, -2, -2, -2, -2}, shiftHigh = {-4, -4, -4, -4, -6, -6, -6, -6};
    const uint8x8_t low = vorr_u8(vand_u8(first, vdup_n_u8(0x0F)), vshl_n_u8(vand_u8(vshl_u8(last, shiftLow), bits01), 4));
    const uint8x8_t high = vorr_u8(vshr_n_u8(first, 4), vshl_n_u8(vand_u8(vshl_u8(last, shiftHigh), bits01), 4));
    const int8x8_t offset = vdup_n_s8(32);
    scales[0] = vmovl_s8(vsub_s8(vreinterpret_s8_u8(low), offset));
    scales[1] = vmovl_s8(vsub_s8(vreinterpret_s8_u8(high), offset));
    mins[0] = vshlq_n_s16(scales[0], 2);
    mins[1] = vshlq_n_s16(scales[1], 2);
  }
  static inline float32x4_t factors(const Block& x) { return loadHalfTwice(&x.d); }  // d, d
};

// ---------------------------------------------------------------- Q2_K
// Element 128h + 32j + i: bits 2j, 2j+1 of qs[32h + i]. Scale byte g: scale in its low nibble,
// min in its high one.
struct FormatQ2K {
  using Block = BlockQ2_K;
  static constexpr int kChunks = 4;
  static constexpr int kGroup = 16;
  static constexpr int kMaxQuant = 3;
  static constexpr bool kOffset = false;
  static constexpr int run(int c, int k) { return runInHalves(c, k); }

  template <int c>
  static inline void chunk(const Block& x, uint8x16_t v[4]) {
    constexpr int h = c / 2, r = c % 2;
    const uint8x16_t q = vld1q_u8(x.qs + 32 * h + 16 * r);
    const uint8x16_t bits01 = vdupq_n_u8(0x03);
    v[0] = vandq_u8(q, bits01);
    v[1] = vandq_u8(vshrq_n_u8(q, 2), bits01);
    v[2] = vandq_u8(vshrq_n_u8(q, 4), bits01);
    v[3] = vshrq_n_u8(q, 6);
  }
  static inline void scales(const Block& x, int16x8_t scales[2], int16x8_t mins[2]) {
    const uint8x16_t s = vld1q_u8(x.scales);
    const uint8x16_t sc = vandq_u8(s, vdupq_n_u8(0x0F)), mn = vshrq_n_u8(s, 4);
    scales[0] = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(sc)));
    scales[1] = vreinterpretq_s16_u16(vmovl_high_u8(sc));
    mins[0] = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(mn)));
    mins[1] = vreinterpretq_s16_u16(vmovl_high_u8(mn));
  }
  static inline float32x4_t factors(const Block& x) { return loadHalfPair(&x.d); }  // d, dmin
};

// Σ_g min_g · bsum_g of one super-block as int32 lanes (their total is the sum): the mins of
// format F against the 16 bsums of a Q8_K block. 32-groups pair the bsums first.
template <class F>
inline int32x4_t minsTimesBsums(const int16x8_t mins[2], const int16x8_t bsums[2]) {
  if constexpr (F::kGroup == 32) {
    const int16x8_t pairs = vpaddq_s16(bsums[0], bsums[1]);
    return vmlal_high_s16(vmull_s16(vget_low_s16(mins[0]), vget_low_s16(pairs)), mins[0], pairs);
  } else {
    int32x4_t s = vmull_s16(vget_low_s16(mins[0]), vget_low_s16(bsums[0]));
    s = vmlal_high_s16(s, mins[0], bsums[0]);
    s = vmlal_s16(s, vget_low_s16(mins[1]), vget_low_s16(bsums[1]));
    return vmlal_high_s16(s, mins[1], bsums[1]);
  }
}

}  // namespace neon
}  // namespace
}  // namespace kernels
