// The aarch64 kernels, written once over the one operation that differs between the A72 and the
// A76: a 32- or 16-element int8 dot product into int32x4 lanes. neon.cc instantiates
// them with 16-bit multiply-accumulate (ARMv8.0, Cortex-A72), neon_dotprod.cc with SDOT
// (ARMv8.2, Cortex-A76). Everything here has internal linkage, so each file keeps its own copy
// compiled with its own flags (a shared copy could carry SDOT into the baseline code).
//
// The 32-element panels' layout and unpacking, shared by both sets' panel kernels, are at the
// end; the K formats are in neon_k_formats.h, neon_rows.h and neon_panel_k.h.
//
// A policy provides, for signed bytes with lanes holding sums of the listed products:
//   dot32(x0, a0, x1, a1)  Σ x0·a0 + x1·a1, where |x| <= 32 or x in 0..31 (4 products per
//                          16-bit lane in the A72 version fit: 4·32·128 = 2^14)
//   dot16(x, a)            Σ x·a, |x| <= 64 (2 products per 16-bit lane)
//   dot32Bytes(...)        as dot32 for any int8 x (Q8_0 weights), -128 included
#pragma once
#include <arm_neon.h>

#include <cstddef>
#include <cstdint>

#include "../kernel_table.h"
#include "../../gguf/tensor_types.h"

namespace kernels {
namespace {
namespace neon {

// Four fp16 fields, one from each of four consecutive blocks, widened to float.
template <typename Block>
inline float32x4_t loadHalves4(const Block* b, size_t fieldOffset) {
  const auto* p = reinterpret_cast<const uint8_t*>(b) + fieldOffset;
  uint16x4_t h = vld1_dup_u16(reinterpret_cast<const uint16_t*>(p));  // no zeroing needed
  h = vld1_lane_u16(reinterpret_cast<const uint16_t*>(p + sizeof(Block)), h, 1);
  h = vld1_lane_u16(reinterpret_cast<const uint16_t*>(p + 2 * sizeof(Block)), h, 2);
  h = vld1_lane_u16(reinterpret_cast<const uint16_t*>(p + 3 * sizeof(Block)), h, 3);
  return vcvt_f32_f16(vreinterpret_f16_u16(h));
}

inline float halfToFloat(uint16_t h) { return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0); }

// Four blocks' int32x4 partial sums -> one vector whose lane k is the total of block k.
inline int32x4_t blockTotals4(int32x4_t s0, int32x4_t s1, int32x4_t s2, int32x4_t s3) {
  return vpaddq_s32(vpaddq_s32(s0, s1), vpaddq_s32(s2, s3));
}

// ---------------------------------------------------------------- 32-element blocks
// Four blocks per iteration: their integer totals land in the four lanes of one vector, so the
// int-to-float conversion, the fp16 scales and the FMA are paid once per four blocks.

template <class Dot>
inline int32x4_t dotQ4_0Block(const BlockQ4_0& x, const BlockQ8_0& y) {
  const uint8x16_t q = vld1q_u8(x.qs);
  const int8x16_t eight = vdupq_n_s8(8);
  const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F))), eight);
  const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), eight);
  return Dot::dot32(lo, vld1q_s8(y.qs), hi, vld1q_s8(y.qs + 16));
}

template <class Dot>
float dotQ4_0Q8_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ4_0*>(w);  // [n / 32]
  const auto* y = static_cast<const BlockQ8_0*>(a);  // [n / 32]
  const int64_t nb = n / kQK;
  float32x4_t acc = vdupq_n_f32(0.0f);
  int64_t i = 0;
  for (; i + 4 <= nb; i += 4) {
    const int32x4_t totals = blockTotals4(dotQ4_0Block<Dot>(x[i], y[i]), dotQ4_0Block<Dot>(x[i + 1], y[i + 1]),
                                          dotQ4_0Block<Dot>(x[i + 2], y[i + 2]), dotQ4_0Block<Dot>(x[i + 3], y[i + 3]));
    const float32x4_t d = vmulq_f32(loadHalves4(x + i, offsetof(BlockQ4_0, d)), loadHalves4(y + i, offsetof(BlockQ8_0, d)));
    acc = vfmaq_f32(acc, vcvtq_f32_s32(totals), d);
  }
  float sum = vaddvq_f32(acc);
  for (; i < nb; ++i) {
    sum += static_cast<float>(vaddvq_s32(dotQ4_0Block<Dot>(x[i], y[i]))) * (halfToFloat(x[i].d) * halfToFloat(y[i].d));
  }
  return sum;
}

template <class Dot>
inline int32x4_t dotQ8_0Block(const BlockQ8_0& x, const BlockQ8_0& y) {
  return Dot::dot32Bytes(vld1q_s8(x.qs), vld1q_s8(y.qs), vld1q_s8(x.qs + 16), vld1q_s8(y.qs + 16));
}

template <class Dot>
float dotQ8_0Q8_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ8_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  const int64_t nb = n / kQK;
  float32x4_t acc = vdupq_n_f32(0.0f);
  int64_t i = 0;
  for (; i + 4 <= nb; i += 4) {
    const int32x4_t totals = blockTotals4(dotQ8_0Block<Dot>(x[i], y[i]), dotQ8_0Block<Dot>(x[i + 1], y[i + 1]),
                                          dotQ8_0Block<Dot>(x[i + 2], y[i + 2]), dotQ8_0Block<Dot>(x[i + 3], y[i + 3]));
    const float32x4_t d = vmulq_f32(loadHalves4(x + i, offsetof(BlockQ8_0, d)), loadHalves4(y + i, offsetof(BlockQ8_0, d)));
    acc = vfmaq_f32(acc, vcvtq_f32_s32(totals), d);
  }
  float sum = vaddvq_f32(acc);
  for (; i < nb; ++i) {
    sum += static_cast<float>(vaddvq_s32(dotQ8_0Block<Dot>(x[i], y[i]))) * (halfToFloat(x[i].d) * halfToFloat(y[i].d));
  }
  return sum;
}

// Q4_1: Σ(d·q + m)·(e·a) = d·e·Σq·a + m·s, with s = e·Σa stored in the activation block.
template <class Dot>
inline int32x4_t dotQ4_1Block(const BlockQ4_1& x, const BlockQ8_1& y) {
  const uint8x16_t q = vld1q_u8(x.qs);
  const int8x16_t lo = vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F)));
  const int8x16_t hi = vreinterpretq_s8_u8(vshrq_n_u8(q, 4));
  return Dot::dot32(lo, vld1q_s8(y.qs), hi, vld1q_s8(y.qs + 16));
}

template <class Dot>
float dotQ4_1Q8_1(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ4_1*>(w);
  const auto* y = static_cast<const BlockQ8_1*>(a);
  const int64_t nb = n / kQK;
  float32x4_t acc = vdupq_n_f32(0.0f);
  int64_t i = 0;
  for (; i + 4 <= nb; i += 4) {
    const int32x4_t totals = blockTotals4(dotQ4_1Block<Dot>(x[i], y[i]), dotQ4_1Block<Dot>(x[i + 1], y[i + 1]),
                                          dotQ4_1Block<Dot>(x[i + 2], y[i + 2]), dotQ4_1Block<Dot>(x[i + 3], y[i + 3]));
    const float32x4_t d = vmulq_f32(loadHalves4(x + i, offsetof(BlockQ4_1, d)), loadHalves4(y + i, offsetof(BlockQ8_1, d)));
    acc = vfmaq_f32(acc, vcvtq_f32_s32(totals), d);
    acc = vfmaq_f32(acc, loadHalves4(x + i, offsetof(BlockQ4_1, m)), loadHalves4(y + i, offsetof(BlockQ8_1, s)));
  }
  float sum = vaddvq_f32(acc);
  for (; i < nb; ++i) {
    sum += static_cast<float>(vaddvq_s32(dotQ4_1Block<Dot>(x[i], y[i]))) * (halfToFloat(x[i].d) * halfToFloat(y[i].d)) +
           halfToFloat(x[i].m) * halfToFloat(y[i].s);
  }
  return sum;
}

// ---------------------------------------------------------------- the 32-element panels (PanelFn)
// The rearranged panel of the arm64 panel kernels for Q4_0, Q4_1 and Q8_0, in the caller's
// scratch: four quads of four rows, each nb records, so that a quad is one sequential stream
// (Q4_0: 18 KB for 4096 columns: it stays in L1 while groups of activation rows pass over it).
// Record b of quad q: eight vectors W[g] whose 32-bit lane r holds row 4q+r's quants of
// elements 4g..4g+3 (nibbles 0..15 unsigned, or Q8_0's bytes, in element order), then the four
// rows' d as floats (and Q4_1's m). The lanes are those of the x86 panel: an SDOT by lane, or a
// widening multiply by the same four activation bytes repeated, adds four products into each of
// four rows at once, and a row's sum never crosses lanes.
//
// A block of all sixteen rows is 32 vectors, the whole register file, hence quads: a quad's
// block is 8 vectors, which leaves room for the accumulators of several activation rows.
//
// A kind of panel (Panel32Q4_0, ...) names its weight and activation blocks and whether its
// quants are nibbles, it has a min m (times the activation's s = d·Σa), and its activation terms
// carry Q4_0's offset −8·Σa.
struct Panel32Q4_0 {
  using Block = BlockQ4_0;
  using Act = BlockQ8_0;
  static constexpr bool kNibbles = true, kMin = false, kOffsetTerms = true;
};
struct Panel32Q4_1 {
  using Block = BlockQ4_1;
  using Act = BlockQ8_1;
  static constexpr bool kNibbles = true, kMin = true, kOffsetTerms = false;
};
struct Panel32Q8_0 {
  using Block = BlockQ8_0;
  using Act = BlockQ8_0;
  static constexpr bool kNibbles = false, kMin = false, kOffsetTerms = false;
};
template <class K>
constexpr size_t kPanel32RecordBytes = 8 * 16 + (K::kMin ? 8 : 4) * sizeof(float);
constexpr size_t kPanelQuadRecordBytes = kPanel32RecordBytes<Panel32Q4_0>;
constexpr int kPanelQuads = kPanelRows / 4;
static_assert(kPanelQuads * kPanelQuadRecordBytes == kQ4_0PanelBytesPerBlock, "the quads fill the caller's block size");

// The rows of a panel; those past nW repeat the last one, so the kernels compute every lane
// without a special case and only the stores look at nW.
inline void panelRowPointers(const uint8_t* w, size_t wStride, int nW, const uint8_t* rows[kPanelRows]) {
  for (int r = 0; r < kPanelRows; ++r) rows[r] = w + (r < nW ? r : nW - 1) * wStride;
}

// Four rows' vectors (32-bit words 0..3 each) as vectors of word g of every row: a 4×4 transpose.
inline void transposeWords(const uint8x16_t v[4], uint8x16_t t[4]) {
  const int32x4_t r0 = vreinterpretq_s32_u8(v[0]), r1 = vreinterpretq_s32_u8(v[1]);
  const int32x4_t r2 = vreinterpretq_s32_u8(v[2]), r3 = vreinterpretq_s32_u8(v[3]);
  const int64x2_t u0 = vreinterpretq_s64_s32(vtrn1q_s32(r0, r1)), u1 = vreinterpretq_s64_s32(vtrn2q_s32(r0, r1));
  const int64x2_t u2 = vreinterpretq_s64_s32(vtrn1q_s32(r2, r3)), u3 = vreinterpretq_s64_s32(vtrn2q_s32(r2, r3));
  t[0] = vreinterpretq_u8_s64(vtrn1q_s64(u0, u2));
  t[1] = vreinterpretq_u8_s64(vtrn1q_s64(u1, u3));
  t[2] = vreinterpretq_u8_s64(vtrn2q_s64(u0, u2));
  t[3] = vreinterpretq_u8_s64(vtrn2q_s64(u1, u3));
}

// Block b of four rows as W[0..7] of the layout above. Nibbles: a transpose of the 16 quant
// bytes (word g of a row holds elements 4g.. low and 16+4g.. high), then the two nibbles apart.
// LD4 to one lane would transpose while loading, but GCC 12 copies its register quadruple
// through the stack when registers are short, as they are in a kernel that unpacks on the way.
template <class K>
inline void unpackQuad(const uint8_t* const rows[4], int64_t b, uint8x16_t w[8]) {
  const auto block = [&](int r) -> const typename K::Block& {
    return reinterpret_cast<const typename K::Block*>(rows[r])[b];
  };
  if constexpr (K::kNibbles) {
    const uint8x16_t q[4] = {vld1q_u8(block(0).qs), vld1q_u8(block(1).qs), vld1q_u8(block(2).qs), vld1q_u8(block(3).qs)};
    uint8x16_t t[4];
    transposeWords(q, t);
    const uint8x16_t low4 = vdupq_n_u8(0x0F);
    for (int g = 0; g < 4; ++g) {
      w[g] = vandq_u8(t[g], low4);
      w[4 + g] = vshrq_n_u8(t[g], 4);
    }
  } else {
    for (int half = 0; half < 2; ++half) {
      const auto quants = [&](int r) { return vld1q_u8(reinterpret_cast<const uint8_t*>(block(r).qs) + 16 * half); };
      const uint8x16_t q[4] = {quants(0), quants(1), quants(2), quants(3)};
      transposeWords(q, w + 4 * half);
    }
  }
}

// An fp16 field of block b of four rows, as floats.
template <class K>
inline float32x4_t quadHalves(const uint8_t* const rows[4], int64_t b, size_t fieldOffset) {
  const auto field = [&](int r) {
    return reinterpret_cast<const uint16_t*>(rows[r] + b * sizeof(typename K::Block) + fieldOffset);
  };
  uint16x4_t h = vld1_dup_u16(field(0));
  h = vld1_lane_u16(field(1), h, 1);
  h = vld1_lane_u16(field(2), h, 2);
  h = vld1_lane_u16(field(3), h, 3);
  return vcvt_f32_f16(vreinterpret_f16_u16(h));
}
template <class K>
inline float32x4_t quadScales(const uint8_t* const rows[4], int64_t b) {
  return quadHalves<K>(rows, b, offsetof(typename K::Block, d));
}

// Sixteen rows read side by side are sixteen short streams; the next panel is the one stretch
// of 16·wStride bytes after this one, so it is fetched in order, a block's share per block
// unpacked (the reasoning of the x86 panel; not measured on a Pi).
class NextPanel {
 public:
  NextPanel(int64_t nb, const uint8_t* w, size_t wStride)
      : next_(w + kPanelRows * wStride), share_(kPanelRows * wStride / static_cast<size_t>(nb)) {}
  inline void fetch(int64_t b) const {
    for (size_t off = 0; off < share_; off += 64) __builtin_prefetch(next_ + b * share_ + off);
  }

 private:
  const uint8_t* next_;
  size_t share_;
};

// The first `quads` quads of the panel into `panel` (kPanel32RecordBytes<K> per block and quad),
// for batches that pass over it more than once.
template <class K>
inline void unpackPanel(int64_t nb, const uint8_t* const rows[kPanelRows], int quads, const NextPanel& next,
                        uint8_t* panel) {
  for (int64_t b = 0; b < nb; ++b) {
    next.fetch(b);
    for (int q = 0; q < quads; ++q) {
      uint8_t* out = panel + (q * nb + b) * kPanel32RecordBytes<K>;
      uint8x16_t w[8];
      unpackQuad<K>(rows + 4 * q, b, w);
      for (int g = 0; g < 8; ++g) vst1q_u8(out + 16 * g, w[g]);
      vst1q_f32(reinterpret_cast<float*>(out + 8 * 16), quadScales<K>(rows + 4 * q, b));
      if constexpr (K::kMin) {
        vst1q_f32(reinterpret_cast<float*>(out + 8 * 16 + 16), quadHalves<K>(rows + 4 * q, b, offsetof(BlockQ4_1, m)));
      }
    }
  }
}

}  // namespace neon
}  // namespace
}  // namespace kernels
