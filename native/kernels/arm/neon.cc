// NEON kernels for ARMv8.0 (Cortex-A72, Raspberry Pi 4), which has no SDOT.
//
// On the A72 the integer multiplies (SMULL/SMLAL) issue on one of its two SIMD pipes only, so
// the design is about how few non-multiply instructions surround them: a 32-element block is
// four multiply(-accumulate)s into one int16x8 (each lane sums 4 products, |4·8·128| < 2^15 for
// Q4_0), widened once per block with SADDLP; four blocks' totals are then gathered into one
// vector, so conversion, fp16 scales and FMA cost a quarter instruction per block. A literal
// SDOT emulation (SMULL + SADALP per 8 products) needs 8 instructions where this needs 5; it is
// kept as the set "neon-sdot-emulated" (never dispatched) for comparisons on a Pi.
#include "neon_attention.h"
#include "neon_common.h"
#include "neon_panel_k.h"
#include "neon_rows.h"

#include "../cpu_features.h"
#include "../kernel_table.h"

namespace kernels {
namespace {

// Precondition of dot32 (see neon_common.h): 4 products per 16-bit lane fit.
struct MullAccumulate16 {
  static inline int32x4_t dot32(int8x16_t x0, int8x16_t a0, int8x16_t x1, int8x16_t a1) {
    int16x8_t p = vmull_s8(vget_low_s8(x0), vget_low_s8(a0));
    p = vmlal_high_s8(p, x0, a0);
    p = vmlal_s8(p, vget_low_s8(x1), vget_low_s8(a1));
    p = vmlal_high_s8(p, x1, a1);
    return vpaddlq_s16(p);
  }
  static inline int32x4_t dot16(int8x16_t x, int8x16_t a) {
    return vpaddlq_s16(vmlal_high_s8(vmull_s8(vget_low_s8(x), vget_low_s8(a)), x, a));
  }
  // Four blocks' totals of unsigned nibbles (0..15) times int8 activations (ql[k], qh[k] against
  // lo[k], hi[k]: block k): a 16-bit lane of a block sums 4 products, two levels of ADDP 16,
  // |16·15·128| < 2^15, and one SADDLP widens all four blocks.
  static inline int32x4_t nibbleTotals4(const int8x16_t ql[4], const int8x16_t lo[4], const int8x16_t qh[4],
                                        const int8x16_t hi[4]) {
    int16x8_t p[4];
    for (int k = 0; k < 4; ++k) {
      p[k] = vmull_s8(vget_low_s8(ql[k]), vget_low_s8(lo[k]));
      p[k] = vmlal_high_s8(p[k], ql[k], lo[k]);
      p[k] = vmlal_s8(p[k], vget_low_s8(qh[k]), vget_low_s8(hi[k]));
      p[k] = vmlal_high_s8(p[k], qh[k], hi[k]);
    }
    return vpaddlq_s16(vpaddq_s16(vpaddq_s16(p[0], p[1]), vpaddq_s16(p[2], p[3])));
  }
  // Full int8 range: one product per 16-bit lane before widening.
  static inline int32x4_t dot32Bytes(int8x16_t x0, int8x16_t a0, int8x16_t x1, int8x16_t a1) {
    int32x4_t s = vpaddlq_s16(vmull_s8(vget_low_s8(x0), vget_low_s8(a0)));
    s = vpadalq_s16(s, vmull_high_s8(x0, a0));
    s = vpadalq_s16(s, vmull_s8(vget_low_s8(x1), vget_low_s8(a1)));
    return vpadalq_s16(s, vmull_high_s8(x1, a1));
  }
  static inline int32x4_t byteTotals4(const int8x16_t x0[4], const int8x16_t lo[4], const int8x16_t x1[4],
                                      const int8x16_t hi[4]) {
    return neon::blockTotals4(dot32Bytes(x0[0], lo[0], x1[0], hi[0]), dot32Bytes(x0[1], lo[1], x1[1], hi[1]),
                              dot32Bytes(x0[2], lo[2], x1[2], hi[2]), dot32Bytes(x0[3], lo[3], x1[3], hi[3]));
  }

  // K super-blocks (neon_rows.h): a 16-bit lane sums one group's products of unsigned quants
  // (2 or 4 of them, |4·63·128| < 2^15), and SMLAL by the group's lane of the int16 scales
  // multiplies and widens them at once.
  struct Scales { int16x8_t v[2]; };
  struct Sums { int32x4_t v[2]; };
  static inline Scales scales(const int16x8_t s[2]) { return {{s[0], s[1]}}; }
  static inline Sums zeroSums() { return {{vdupq_n_s32(0), vdupq_n_s32(0)}}; }
  static inline int16x8_t product1(uint8x16_t u, int8x16_t a) {
    const int8x16_t x = vreinterpretq_s8_u8(u);
    return vmlal_high_s8(vmull_s8(vget_low_s8(x), vget_low_s8(a)), x, a);
  }
  static inline int16x8_t product2(uint8x16_t u0, int8x16_t a0, uint8x16_t u1, int8x16_t a1) {
    const int8x16_t x1 = vreinterpretq_s8_u8(u1);
    return vmlal_high_s8(vmlal_s8(product1(u0, a0), vget_low_s8(x1), vget_low_s8(a1)), x1, a1);
  }
  template <int g>
  static inline void addGroup(Sums& sums, const Scales& scales, int16x8_t p) {
    sums.v[0] = vmlal_laneq_s16(sums.v[0], vget_low_s16(p), scales.v[g / 8], g % 8);
    sums.v[1] = vmlal_high_laneq_s16(sums.v[1], p, scales.v[g / 8], g % 8);
  }
  static inline int32x4_t total(const Sums& sums) { return vaddq_s32(sums.v[0], sums.v[1]); }
};

// What SDOT becomes when emulated instruction for instruction: exact for any int8, 8 products
// per SDOT pair become 2 multiplies + 2 pairwise accumulates. For measuring against the above.
struct EmulatedSdot {
  static inline int32x4_t sdot(int32x4_t acc, int8x16_t x, int8x16_t a) {
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(x), vget_low_s8(a)));
    return vpadalq_s16(acc, vmull_high_s8(x, a));
  }
  static inline int32x4_t dot32(int8x16_t x0, int8x16_t a0, int8x16_t x1, int8x16_t a1) {
    return sdot(sdot(vdupq_n_s32(0), x0, a0), x1, a1);
  }
  static inline int32x4_t dot16(int8x16_t x, int8x16_t a) { return sdot(vdupq_n_s32(0), x, a); }
  static inline int32x4_t dot32Bytes(int8x16_t x0, int8x16_t a0, int8x16_t x1, int8x16_t a1) {
    return dot32(x0, a0, x1, a1);
  }
};

float dotQ4_0Q8_0Neon(int64_t n, const void* w, const void* a) { return neon::dotQ4_0Q8_0<MullAccumulate16>(n, w, a); }
float dotQ8_0Q8_0Neon(int64_t n, const void* w, const void* a) { return neon::dotQ8_0Q8_0<MullAccumulate16>(n, w, a); }
float dotQ4_1Q8_1Neon(int64_t n, const void* w, const void* a) { return neon::dotQ4_1Q8_1<MullAccumulate16>(n, w, a); }
// The decode kernels (kernels::DotRowsFn, neon_rows.h) and how many rows each takes per pass.
constexpr int kRowsQ4_0 = 8, kRowsQ4_1 = 8, kRowsQ8_0 = 4, kRowsK = 8;
void dotRowsQ4_0Neon(int64_t n, const void* w, size_t wStride, const void* a, float* out) {
  neon::dotRowsNibbles<MullAccumulate16, neon::RowsQ4_0, kRowsQ4_0>(n, w, wStride, a, out);
}
void dotRowsQ4_1Neon(int64_t n, const void* w, size_t wStride, const void* a, float* out) {
  neon::dotRowsNibbles<MullAccumulate16, neon::RowsQ4_1, kRowsQ4_1>(n, w, wStride, a, out);
}
void dotRowsQ8_0Neon(int64_t n, const void* w, size_t wStride, const void* a, float* out) {
  neon::dotRowsQ8_0<MullAccumulate16, kRowsQ8_0>(n, w, wStride, a, out);
}
template <class F>
void dotRowsKNeon(int64_t n, const void* w, size_t wStride, const void* a, float* out) {
  neon::dotRowsK<MullAccumulate16, F, kRowsK>(n, w, wStride, a, out);
}
float dotQ4_0Q8_0NeonSdotEmulated(int64_t n, const void* w, const void* a) {
  return neon::dotQ4_0Q8_0<EmulatedSdot>(n, w, a);
}

float dotF32F32Neon(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const float*>(w);
  const auto* y = static_cast<const float*>(a);
  float32x4_t acc[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    for (int k = 0; k < 4; ++k) acc[k] = vfmaq_f32(acc[k], vld1q_f32(x + i + 4 * k), vld1q_f32(y + i + 4 * k));
  }
  for (; i + 4 <= n; i += 4) acc[0] = vfmaq_f32(acc[0], vld1q_f32(x + i), vld1q_f32(y + i));
  float sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
  for (; i < n; ++i) sum += x[i] * y[i];
  return sum;
}

// Bit-identical to the scalar quantizer: the same float divide, reciprocal and product, and
// FCVTAS rounds to nearest with ties away from zero, which is roundf().
void quantizeRowQ8_0Neon(const float* src, void* dst, int64_t n) {
  auto* out = static_cast<BlockQ8_0*>(dst);
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float* x = src + b * kQK;
    float32x4_t v[8];
    for (int k = 0; k < 8; ++k) v[k] = vld1q_f32(x + 4 * k);
    float32x4_t m = vabsq_f32(v[0]);
    for (int k = 1; k < 8; ++k) m = vmaxq_f32(m, vabsq_f32(v[k]));
    const float amax = vmaxvq_f32(m);
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    // FPCR's default rounding (to nearest even) is what fp32ToFp16 does.
    out[b].d = vget_lane_u16(vreinterpret_u16_f16(vcvt_f16_f32(vdupq_n_f32(d))), 0);
    int16x8_t q16[4];
    for (int k = 0; k < 4; ++k) {
      const int32x4_t lo = vcvtaq_s32_f32(vmulq_n_f32(v[2 * k], id));
      const int32x4_t hi = vcvtaq_s32_f32(vmulq_n_f32(v[2 * k + 1], id));
      q16[k] = vcombine_s16(vqmovn_s32(lo), vqmovn_s32(hi));
    }
    vst1q_s8(out[b].qs, vcombine_s8(vqmovn_s16(q16[0]), vqmovn_s16(q16[1])));
    vst1q_s8(out[b].qs + 16, vcombine_s8(vqmovn_s16(q16[2]), vqmovn_s16(q16[3])));
  }
}

// ---- fp16 rows (attention's kernels and the F16 dot: neon_attention.h) ----
// FCVTL converts exactly; FCVTN rounds to nearest even (the FPCR default), as the scalar
// references do.

void f16ToF32Neon(const void* src, float* dst, int64_t n) {
  const auto* h = static_cast<const uint16_t*>(src);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const float16x8_t v = vreinterpretq_f16_u16(vld1q_u16(h + i));
    vst1q_f32(dst + i, vcvt_f32_f16(vget_low_f16(v)));
    vst1q_f32(dst + i + 4, vcvt_high_f32_f16(v));
  }
  for (; i < n; ++i) dst[i] = neon::halfToFloat(h[i]);
}

// FCVT rounds to nearest even (Linux leaves the FPCR's rounding mode and flush-to-zero at their
// defaults), as fp32ToFp16 does; subnormal halves included.
void roundF16Neon(int64_t n, float* x) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(x + i, vcvt_f32_f16(vcvt_f16_f32(vld1q_f32(x + i))));
  for (; i < n; ++i) x[i] = fp16ToFp32(fp32ToFp16(x[i]));
}

void f32ToF16Neon(const float* src, void* dst, int64_t n) {
  auto* h = static_cast<uint16_t*>(dst);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const float16x8_t v = vcvt_high_f16_f32(vcvt_f16_f32(vld1q_f32(src + i)), vld1q_f32(src + i + 4));
    vst1q_u16(h + i, vreinterpretq_u16_f16(v));
  }
  for (; i < n; ++i) h[i] = fp32ToFp16(src[i]);
}

// ---- The 32-element panels (PanelFn: Q4_0, Q4_1, Q8_0), layout in neon_common.h ----
//
// The multiplies cannot get fewer: 512 products per block of sixteen rows are 64 SMULL/SMLAL of
// eight, as in the one-row kernel. What the panel removes is the rest: the unpacking (once per
// panel, not per activation row), the pairwise sums of four blocks and the gathering of their
// fp16 scales. W[g] (four rows × four quants) is multiplied by word g of the activation row
// repeated: SMULL on the low halves gives rows 0-1, SMULL2 on the high halves rows 2-3, a 16-bit
// lane per (row, element mod 4). Nibbles: over the eight groups a lane sums 8 products,
// |8·15·128| < 2^14; ADDP adds two lanes (< 2^15), SADDLP the other two into int32, once per
// block and quad. Q8_0's bytes take the whole int8 range, so each product is widened at once
// (SADALP). One DUP of an activation word serves all four quads (8 multiplies).
//
// One activation row at a time, group by group: 8 int16 sums, 4 float accumulators, a repeated
// word and a weight vector at a time. GCC 12 spilled with two rows, and with the quads outer
// (eight repeated words live) under the generic tuning the addon is built with.

using neon::kPanelQuads;

// One activation row against blocks [0, nb) of the four quads of the unpacked panel (quads
// quadStride bytes apart), added to sums[r] for row r in block order, as if in one pass. bias
// and scale: Q4_0's activation terms (null for the others, which read d and s from a).
// (Not inlined: one loop, to read and count in the disassembly.)
template <class K>
__attribute__((noinline)) void panelRow(int64_t nb, const uint8_t* panel, size_t quadStride, const typename K::Act* a,
                                        const int32_t* bias, const float* scale, float* sums) {
  constexpr size_t kRecordBytes = neon::kPanel32RecordBytes<K>;
  float32x4_t acc[kPanelQuads];
  for (int q = 0; q < kPanelQuads; ++q) acc[q] = vld1q_f32(sums + 4 * q);
  for (int64_t b = 0; b < nb; ++b) {
    const auto* record = reinterpret_cast<const int8_t*>(panel + b * kRecordBytes);
    const int32x4_t lo = vreinterpretq_s32_s8(vld1q_s8(a[b].qs));
    const int32x4_t hi = vreinterpretq_s32_s8(vld1q_s8(a[b].qs + 16));
    const int32x4_t offset = vdupq_n_s32(K::kOffsetTerms ? bias[b] : 0);
    int16x8_t p0[kPanelQuads], p1[kPanelQuads];  // nibbles, per quad: rows 0-1, rows 2-3
    int32x4_t w0[kPanelQuads], w1[kPanelQuads];  // bytes, the same widened
    // Group G: word G % 4 of the activation half repeated, times W[G] of each quad. The first
    // group multiplies, the others accumulate.
#define ALPACA_PANEL_GROUP(G, HALF)                                                            \
  {                                                                                            \
    const int8x16_t word = vreinterpretq_s8_s32(vdupq_laneq_s32(HALF, (G) % 4));               \
    for (int q = 0; q < kPanelQuads; ++q) {                                                    \
      const int8x16_t w = vld1q_s8(record + q * quadStride + 16 * (G));                        \
      if constexpr (!K::kNibbles) {                                                            \
        const int16x8_t l = vmull_s8(vget_low_s8(w), vget_low_s8(word));                       \
        const int16x8_t h = vmull_high_s8(w, word);                                            \
        w0[q] = (G) == 0 ? vpaddlq_s16(l) : vpadalq_s16(w0[q], l);                             \
        w1[q] = (G) == 0 ? vpaddlq_s16(h) : vpadalq_s16(w1[q], h);                             \
      } else if ((G) == 0) {                                                                   \
        p0[q] = vmull_s8(vget_low_s8(w), vget_low_s8(word));                                   \
        p1[q] = vmull_high_s8(w, word);                                                        \
      } else {                                                                                 \
        p0[q] = vmlal_s8(p0[q], vget_low_s8(w), vget_low_s8(word));                            \
        p1[q] = vmlal_high_s8(p1[q], w, word);                                                 \
      }                                                                                        \
    }                                                                                          \
  }
    ALPACA_PANEL_GROUP(0, lo) ALPACA_PANEL_GROUP(1, lo) ALPACA_PANEL_GROUP(2, lo) ALPACA_PANEL_GROUP(3, lo)
    ALPACA_PANEL_GROUP(4, hi) ALPACA_PANEL_GROUP(5, hi) ALPACA_PANEL_GROUP(6, hi) ALPACA_PANEL_GROUP(7, hi)
#undef ALPACA_PANEL_GROUP
    const float da = K::kOffsetTerms ? scale[b] : neon::halfToFloat(a[b].d);
    for (int q = 0; q < kPanelQuads; ++q) {
      int32x4_t s;
      if constexpr (K::kNibbles) {
        s = vpaddlq_s16(vpaddq_s16(p0[q], p1[q]));
      } else {
        s = vpaddq_s32(w0[q], w1[q]);
      }
      if constexpr (K::kOffsetTerms) s = vaddq_s32(s, offset);
      const float* factors = reinterpret_cast<const float*>(record + q * quadStride + 8 * 16);
      acc[q] = vfmaq_n_f32(acc[q], vmulq_f32(vcvtq_f32_s32(s), vld1q_f32(factors)), da);
      if constexpr (K::kMin) acc[q] = vfmaq_n_f32(acc[q], vld1q_f32(factors + 4), neon::halfToFloat(a[b].s));
    }
  }
  for (int q = 0; q < kPanelQuads; ++q) vst1q_f32(sums + 4 * q, acc[q]);
}

// ---- The K formats' panel product (PanelFn), layout in neon_panel_k.h ----
//
// As the Q4_0 panel: word t of the activation run repeated times W of each quad (SMULL on the
// low halves: rows 0-1, SMULL2: rows 2-3), a 16-bit lane per (row, element mod 4) summing the
// group's 4 or 8 products, |8·31·128| < 2^15. Then per group and quad SADDLP, ADDP (or ADDP
// first where twice the sum fits 16 bits) and a multiply-accumulate by the rows' scales; per
// super-block the mins against the bsums and the float factors.
template <class F>
__attribute__((noinline)) void panelRowK(int64_t nb, const uint8_t* panel, size_t quadStride, const BlockQ8_K* a,
                                         float* sums) {
  using P = neon::KPanel<F>;
  constexpr int kRuns = F::kGroup / 16;  // runs of 16 quants (4 words) per group
  constexpr bool kPairFirst = 2 * 4 * kRuns * F::kMaxQuant * 128 < 32768;
  float32x4_t acc[kPanelQuads];
  for (int q = 0; q < kPanelQuads; ++q) acc[q] = vld1q_f32(sums + 4 * q);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* record = panel + b * P::kRecordBytes;
    const uint8_t* quad[kPanelQuads];
    for (int q = 0; q < kPanelQuads; ++q) quad[q] = record + q * quadStride;
    int32x4_t isum[kPanelQuads];
    for (int q = 0; q < kPanelQuads; ++q) isum[q] = vdupq_n_s32(0);
#pragma GCC unroll 16
    for (int j = 0; j < P::kGroups; ++j) {
      int16x8_t p0[kPanelQuads], p1[kPanelQuads];  // per quad: rows 0-1, rows 2-3
#pragma GCC unroll 2
      for (int h = 0; h < kRuns; ++h) {
        const int m = kRuns * j + h;
        const int32x4_t av = vreinterpretq_s32_s8(vld1q_s8(a[b].qs + 16 * m));
        const int8x16_t word[4] = {vreinterpretq_s8_s32(vdupq_laneq_s32(av, 0)), vreinterpretq_s8_s32(vdupq_laneq_s32(av, 1)),
                                   vreinterpretq_s8_s32(vdupq_laneq_s32(av, 2)), vreinterpretq_s8_s32(vdupq_laneq_s32(av, 3))};
        for (int t = 0; t < 4; ++t) {
          for (int q = 0; q < kPanelQuads; ++q) {
            const int8x16_t w = vld1q_s8(reinterpret_cast<const int8_t*>(quad[q] + 64 * m + 16 * t));
            if (h == 0 && t == 0) {
              p0[q] = vmull_s8(vget_low_s8(w), vget_low_s8(word[t]));
              p1[q] = vmull_high_s8(w, word[t]);
            } else {
              p0[q] = vmlal_s8(p0[q], vget_low_s8(w), vget_low_s8(word[t]));
              p1[q] = vmlal_high_s8(p1[q], w, word[t]);
            }
          }
        }
      }
      for (int q = 0; q < kPanelQuads; ++q) {
        const int32x4_t s = kPairFirst ? vpaddlq_s16(vpaddq_s16(p0[q], p1[q]))
                                       : vpaddq_s32(vpaddlq_s16(p0[q]), vpaddlq_s16(p1[q]));
        isum[q] = vmlaq_s32(isum[q], s, vld1q_s32(P::scale(quad[q], j)));
      }
    }
    const int16x8_t bsums[2] = {vld1q_s16(a[b].bsums), vld1q_s16(a[b].bsums + 8)};
    for (int q = 0; q < kPanelQuads; ++q) {
      const int32x4_t mins = neon::quadMins<F>(quad[q], bsums);
      const float32x4_t d = vmulq_n_f32(vld1q_f32(P::d(quad[q])), a[b].d);
      if constexpr (F::kOffset) {
        acc[q] = vfmaq_f32(acc[q], vcvtq_f32_s32(vsubq_s32(isum[q], mins)), d);
      } else {
        acc[q] = vfmaq_f32(acc[q], vcvtq_f32_s32(isum[q]), d);
        acc[q] = vfmsq_f32(acc[q], vcvtq_f32_s32(mins), vmulq_n_f32(vld1q_f32(P::dmin(quad[q])), a[b].d));
      }
    }
  }
  for (int q = 0; q < kPanelQuads; ++q) vst1q_f32(sums + 4 * q, acc[q]);
}

// The panels' ways of rearranging and of taking one activation row (gemmNeon below).
template <class K>
struct Panel32 {
  static constexpr size_t kRecordBytes = neon::kPanel32RecordBytes<K>;
  static constexpr int64_t kChunkBlocks = 32;  // Q4_0: 18 KB of the four quads
  static constexpr int64_t kBlockSize = kQK;
  static void rearrange(int64_t nb, const uint8_t* const rows[kPanelRows], const neon::NextPanel& next, uint8_t* pb) {
    neon::unpackPanel<K>(nb, rows, kPanelQuads, next, pb);
  }
  static void row(int64_t blocks, const uint8_t* panel, size_t quadStride, const uint8_t* a, int64_t b0,
                  const int32_t* bias, const float* scale, float* sums) {
    panelRow<K>(blocks, panel, quadStride, reinterpret_cast<const typename K::Act*>(a) + b0, bias ? bias + b0 : nullptr,
                scale ? scale + b0 : nullptr, sums);
  }
};

template <class F>
struct PanelK {
  static constexpr size_t kRecordBytes = neon::KPanel<F>::kRecordBytes;
  static constexpr int64_t kChunkBlocks = 4;  // ≈ 20-23 KB of the four quads
  static constexpr int64_t kBlockSize = kQK_K;
  static void rearrange(int64_t nb, const uint8_t* const rows[kPanelRows], const neon::NextPanel& next, uint8_t* pb) {
    neon::rearrangeKPanel<F>(nb, rows, kPanelQuads, next, pb);
  }
  static void row(int64_t blocks, const uint8_t* panel, size_t quadStride, const uint8_t* a, int64_t b0,
                  const int32_t*, const float*, float* sums) {
    panelRowK<F>(blocks, panel, quadStride, reinterpret_cast<const BlockQ8_K*>(a) + b0, sums);
  }
};

// Always through the rearranged panel: matmul sends batches of two or more activation rows, and
// with one row per pass, unpacking on the way would repeat the unpacking (≈164 instructions a
// block of sixteen rows for Q4_0) for every row instead of once.
template <class Panel>
void gemmNeon(int64_t n, const void* w, size_t wStride, int nW, const void* a, size_t aStride, const int32_t* aBias,
              const float* aScale, int64_t nA, float* y, size_t yStride, void* panel) {
  const int64_t nb = n / Panel::kBlockSize;
  auto* pb = static_cast<uint8_t*>(panel);
  const uint8_t* rows[kPanelRows];
  neon::panelRowPointers(static_cast<const uint8_t*>(w), wStride, nW, rows);
  // All four quads even of a short panel (the last of a matrix at most): one loop for all.
  Panel::rearrange(nb, rows, neon::NextPanel(nb, static_cast<const uint8_t*>(w), wStride), pb);
  const size_t quadStride = static_cast<size_t>(nb) * Panel::kRecordBytes;
  // Every activation row reads the whole panel (Q4_0: 72 KB for 4096 columns), more than the
  // A72's 32 KB L1: so the rows of a group take turns over a chunk of blocks before the next,
  // and the panel comes from L2 once per group instead of once per row. Their running sums wait
  // here between chunks; the order of the additions is that of one pass.
  constexpr int64_t kGroupRows = 32;
  for (int64_t x0 = 0; x0 < nA; x0 += kGroupRows) {
    const int64_t x1 = nA - x0 < kGroupRows ? nA : x0 + kGroupRows;
    float sums[kGroupRows][kPanelRows] = {};
    for (int64_t b0 = 0; b0 < nb; b0 += Panel::kChunkBlocks) {
      const int64_t blocks = nb - b0 < Panel::kChunkBlocks ? nb - b0 : Panel::kChunkBlocks;
      for (int64_t x = x0; x < x1; ++x) {
        Panel::row(blocks, pb + b0 * Panel::kRecordBytes, quadStride, static_cast<const uint8_t*>(a) + x * aStride, b0,
                   aBias ? aBias + x * nb : nullptr, aScale ? aScale + x * nb : nullptr, sums[x - x0]);
      }
    }
    // Only the panel's rows: y beyond nW belongs to someone else.
    for (int64_t x = x0; x < x1; ++x)
      for (int r = 0; r < nW; ++r) y[x * yStride + r] = sums[x - x0][r];
  }
}

bool neonRunsHere() { return cpuFeatures().neon; }

constexpr KernelSet neonSet() {
  KernelSet s{"neon", neonRunsHere};
  s[TensorType::Q4_0] = {dotQ4_0Q8_0Neon, {dotRowsQ4_0Neon, kRowsQ4_0},
                         {gemmNeon<Panel32<neon::Panel32Q4_0>>, q4_0PanelActivationTerms, kQ4_0PanelBytesPerBlock}};
  s[TensorType::Q8_0] = {dotQ8_0Q8_0Neon, {dotRowsQ8_0Neon, kRowsQ8_0},
                         {gemmNeon<Panel32<neon::Panel32Q8_0>>, nullptr, 4 * neon::kPanel32RecordBytes<neon::Panel32Q8_0>},
                         quantizeRowQ8_0Neon};
  s[TensorType::Q4_1] = {dotQ4_1Q8_1Neon, {dotRowsQ4_1Neon, kRowsQ4_1},
                         {gemmNeon<Panel32<neon::Panel32Q4_1>>, nullptr, 4 * neon::kPanel32RecordBytes<neon::Panel32Q4_1>}};
  s[TensorType::Q2_K] = {neon::dotK<MullAccumulate16, neon::FormatQ2K>, {dotRowsKNeon<neon::FormatQ2K>, kRowsK},
                         {gemmNeon<PanelK<neon::FormatQ2K>>, nullptr, neon::KPanel<neon::FormatQ2K>::kBytesPerBlock}};
  s[TensorType::Q3_K] = {neon::dotK<MullAccumulate16, neon::FormatQ3K>, {dotRowsKNeon<neon::FormatQ3K>, kRowsK},
                         {gemmNeon<PanelK<neon::FormatQ3K>>, nullptr, neon::KPanel<neon::FormatQ3K>::kBytesPerBlock}};
  s[TensorType::Q4_K] = {neon::dotK<MullAccumulate16, neon::FormatQ4K>, {dotRowsKNeon<neon::FormatQ4K>, kRowsK},
                         {gemmNeon<PanelK<neon::FormatQ4K>>, nullptr, neon::KPanel<neon::FormatQ4K>::kBytesPerBlock}};
  s[TensorType::Q5_K] = {neon::dotK<MullAccumulate16, neon::FormatQ5K>, {dotRowsKNeon<neon::FormatQ5K>, kRowsK},
                         {gemmNeon<PanelK<neon::FormatQ5K>>, nullptr, neon::KPanel<neon::FormatQ5K>::kBytesPerBlock}};
  s[TensorType::Q6_K] = {neon::dotK<MullAccumulate16, neon::FormatQ6K>, {dotRowsKNeon<neon::FormatQ6K>, kRowsK},
                         {gemmNeon<PanelK<neon::FormatQ6K>>, nullptr, neon::KPanel<neon::FormatQ6K>::kBytesPerBlock}};
  s[TensorType::F16] = {attention_neon::dotF16F16, {}, {}, f32ToF16Neon, f16ToF32Neon};
  s[TensorType::F32].dot = dotF32F32Neon;
  s.weighF16 = attention_neon::weighF16;
  s.scoresF16 = attention_neon::scoresF16;
  s.roundF16 = roundF16Neon;
  s.softmaxF16 = attention_neon::softmaxF16;
  return s;
}

constexpr KernelSet neonSdotEmulatedSet() {
  KernelSet s{"neon-sdot-emulated", neonRunsHere};
  s[TensorType::Q4_0].dot = dotQ4_0Q8_0NeonSdotEmulated;
  return s;
}

}  // namespace

extern const KernelSet kNeonKernels;
constexpr KernelSet kNeonKernels = neonSet();
extern const KernelSet kNeonSdotEmulatedKernels;
constexpr KernelSet kNeonSdotEmulatedKernels = neonSdotEmulatedSet();

}  // namespace kernels
