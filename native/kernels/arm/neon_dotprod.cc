// NEON kernels with SDOT (ARMv8.2 dotprod: Cortex-A76, Raspberry Pi 5). Only this file is built
// with +dotprod; it runs after getauxval(AT_HWCAP) reported ASIMDDP. SDOT sums four int8
// products straight into each int32 lane, exact for every int8 input, so one SDOT replaces the
// multiply-accumulate-and-widen sequence of the ARMv8.0 kernels. The float kernels and the
// quantizer gain nothing from dotprod and stay those of neon.cc.
#include "neon_common.h"
#include "neon_panel_k.h"
#include "neon_rows.h"

#include "../cpu_features.h"
#include "../kernel_table.h"

namespace kernels {
namespace {

struct Sdot {
  static inline int32x4_t dot32(int8x16_t x0, int8x16_t a0, int8x16_t x1, int8x16_t a1) {
    return vdotq_s32(vdotq_s32(vdupq_n_s32(0), x0, a0), x1, a1);
  }
  static inline int32x4_t dot16(int8x16_t x, int8x16_t a) { return vdotq_s32(vdupq_n_s32(0), x, a); }
  static inline int32x4_t dot32Bytes(int8x16_t x0, int8x16_t a0, int8x16_t x1, int8x16_t a1) {
    return dot32(x0, a0, x1, a1);
  }
  static inline int32x4_t byteTotals4(const int8x16_t x0[4], const int8x16_t lo[4], const int8x16_t x1[4],
                                      const int8x16_t hi[4]) {
    return nibbleTotals4(x0, lo, x1, hi);  // SDOT takes every int8
  }
  // K super-blocks (neon_rows.h): a group's SDOT sums, times its int32 scale by lane.
  struct Scales { int32x4_t v[4]; };
  struct Sums { int32x4_t v[2]; };
  static inline Scales scales(const int16x8_t s[2]) {
    return {{vmovl_s16(vget_low_s16(s[0])), vmovl_high_s16(s[0]), vmovl_s16(vget_low_s16(s[1])), vmovl_high_s16(s[1])}};
  }
  static inline Sums zeroSums() { return {{vdupq_n_s32(0), vdupq_n_s32(0)}}; }
  static inline int32x4_t product1(uint8x16_t u, int8x16_t a) { return dot16(vreinterpretq_s8_u8(u), a); }
  static inline int32x4_t product2(uint8x16_t u0, int8x16_t a0, uint8x16_t u1, int8x16_t a1) {
    return dot32(vreinterpretq_s8_u8(u0), a0, vreinterpretq_s8_u8(u1), a1);
  }
  template <int g>
  static inline void addGroup(Sums& sums, const Scales& scales, int32x4_t p) {
    sums.v[g % 2] = vmlaq_laneq_s32(sums.v[g % 2], p, scales.v[g / 4], g % 4);
  }
  static inline int32x4_t total(const Sums& sums) { return vaddq_s32(sums.v[0], sums.v[1]); }
  static inline int32x4_t nibbleTotals4(const int8x16_t ql[4], const int8x16_t lo[4], const int8x16_t qh[4],
                                        const int8x16_t hi[4]) {
    return neon::blockTotals4(dot32(ql[0], lo[0], qh[0], hi[0]), dot32(ql[1], lo[1], qh[1], hi[1]),
                              dot32(ql[2], lo[2], qh[2], hi[2]), dot32(ql[3], lo[3], qh[3], hi[3]));
  }
};

float dotQ4_0Q8_0NeonDotprod(int64_t n, const void* w, const void* a) { return neon::dotQ4_0Q8_0<Sdot>(n, w, a); }
float dotQ8_0Q8_0NeonDotprod(int64_t n, const void* w, const void* a) { return neon::dotQ8_0Q8_0<Sdot>(n, w, a); }
float dotQ4_1Q8_1NeonDotprod(int64_t n, const void* w, const void* a) { return neon::dotQ4_1Q8_1<Sdot>(n, w, a); }
// The decode kernels (kernels::DotRowsFn, neon_rows.h) and how many rows each takes per pass.
constexpr int kRowsQ4_0 = 8, kRowsQ4_1 = 8, kRowsQ8_0 = 4, kRowsK = 4;
void dotRowsQ4_0NeonDotprod(int64_t n, const void* w, size_t wStride, const void* a, float* out) {
  neon::dotRowsNibbles<Sdot, neon::RowsQ4_0, kRowsQ4_0>(n, w, wStride, a, out);
}
void dotRowsQ4_1NeonDotprod(int64_t n, const void* w, size_t wStride, const void* a, float* out) {
  neon::dotRowsNibbles<Sdot, neon::RowsQ4_1, kRowsQ4_1>(n, w, wStride, a, out);
}
void dotRowsQ8_0NeonDotprod(int64_t n, const void* w, size_t wStride, const void* a, float* out) {
  neon::dotRowsQ8_0<Sdot, kRowsQ8_0>(n, w, wStride, a, out);
}
template <class F>
void dotRowsKNeonDotprod(int64_t n, const void* w, size_t wStride, const void* a, float* out) {
  neon::dotRowsK<Sdot, F, kRowsK>(n, w, wStride, a, out);
}

// ---- The Q4_0 panel product (PanelFn), layout in neon_common.h ----
//
// SDOT by lane: vdotq_laneq_s32(acc, W[g], A, g % 4) adds to lane r of acc the products of row
// r's four nibbles of group g with activation bytes 4g..4g+3, which are word g % 4 of one of the
// activation row's two 16-byte halves: the activation side needs no broadcast at all. The
// nibbles stay unsigned (0..15 is a valid signed byte) and the int32 sums start from aBias.
//
// The unit is one quad (four rows) against up to four activation rows: 8 SDOT per pair and
// block, against 2 SDOT plus the unpacking, pairwise sums and scale gathering of the one-row dot
// product per pair and block. Registers: 4 float accumulators, 4 int32 sums, 8 activation
// halves, the quad's 8 weight vectors (or the four rows they are unpacked from), the scales.

using neon::NextPanel;

// NA activation rows against the four rows `rows` of the panel, unpacked on the way (kUnpacked
// false) or read from their unpacked copy `quad`: out[j][r] = row r against activation row j.
// bias, scale: Q4_0's activation terms (null for Q4_1 and Q8_0, whose d and s come from a).
// out holds separate pointers: rows of one array (out[0] + 4j) let GCC turn the final stores
// into one block copy, and then it kept the accumulators in memory, stored every block. Not
// inlined: one loop per instantiation, to read and count in the disassembly.
template <class K, int NA, bool kUnpacked>
__attribute__((noinline)) void quadRows(int64_t nb, const uint8_t* quad, const uint8_t* const rows[4],
                                        const NextPanel* next, const typename K::Act* const a[NA],
                                        const int32_t* const bias[NA], const float* const scale[NA],
                                        float* const out[NA]) {
  constexpr size_t kRecordBytes = neon::kPanel32RecordBytes<K>;
  float32x4_t acc[NA];
  for (int j = 0; j < NA; ++j) acc[j] = vdupq_n_f32(0.0f);
  for (int64_t b = 0; b < nb; ++b) {
    uint8x16_t w[8];
    float32x4_t dw, mw = vdupq_n_f32(0.0f);
    if (kUnpacked) {
      const uint8_t* record = quad + b * kRecordBytes;
      for (int g = 0; g < 8; ++g) w[g] = vld1q_u8(record + 16 * g);
      dw = vld1q_f32(reinterpret_cast<const float*>(record + 8 * 16));
      if constexpr (K::kMin) mw = vld1q_f32(reinterpret_cast<const float*>(record + 8 * 16 + 16));
    } else {
      if (next) next->fetch(b);
      neon::unpackQuad<K>(rows, b, w);
      dw = neon::quadScales<K>(rows, b);
      if constexpr (K::kMin) mw = neon::quadHalves<K>(rows, b, offsetof(BlockQ4_1, m));
    }
    int32x4_t s[NA];
    int8x16_t lo[NA], hi[NA];
    for (int j = 0; j < NA; ++j) {
      s[j] = K::kOffsetTerms ? vld1q_dup_s32(bias[j] + b) : vdupq_n_s32(0);
      lo[j] = vld1q_s8(a[j][b].qs);
      hi[j] = vld1q_s8(a[j][b].qs + 16);
    }
#define ALPACA_SDOT_GROUP(G, HALF) \
  for (int j = 0; j < NA; ++j) s[j] = vdotq_laneq_s32(s[j], vreinterpretq_s8_u8(w[G]), HALF[j], (G) % 4)
    ALPACA_SDOT_GROUP(0, lo); ALPACA_SDOT_GROUP(1, lo); ALPACA_SDOT_GROUP(2, lo); ALPACA_SDOT_GROUP(3, lo);
    ALPACA_SDOT_GROUP(4, hi); ALPACA_SDOT_GROUP(5, hi); ALPACA_SDOT_GROUP(6, hi); ALPACA_SDOT_GROUP(7, hi);
#undef ALPACA_SDOT_GROUP
    for (int j = 0; j < NA; ++j) {
      const float da = K::kOffsetTerms ? scale[j][b] : neon::halfToFloat(a[j][b].d);
      acc[j] = vfmaq_n_f32(acc[j], vmulq_f32(vcvtq_f32_s32(s[j]), dw), da);
      if constexpr (K::kMin) acc[j] = vfmaq_n_f32(acc[j], mw, neon::halfToFloat(a[j][b].s));
    }
  }
  for (int j = 0; j < NA; ++j) vst1q_f32(out[j], acc[j]);
}

// The panels' ways of rearranging and of taking up to four activation rows against one quad
// (gemmNeonDotprod below).
template <class K>
struct Panel32 {
  using Act = typename K::Act;
  static constexpr size_t kRecordBytes = neon::kPanel32RecordBytes<K>;
  static constexpr int64_t kBlockSize = kQK;
  static constexpr bool kOnTheWay = true;  // a single pass may unpack on the way
  static void rearrange(int64_t nb, const uint8_t* const rows[kPanelRows], int quads, const NextPanel& next,
                        uint8_t* pb) {
    neon::unpackPanel<K>(nb, rows, quads, next, pb);
  }
  template <int NA>
  static void rowsOf(bool onePass, int64_t nb, const uint8_t* quad, const uint8_t* const rows[4], const NextPanel* next,
                     const Act* const a[NA], const int32_t* const bias[NA], const float* const scale[NA],
                     float* const out[NA]) {
    if (onePass) {
      quadRows<K, NA, false>(nb, quad, rows, next, a, bias, scale, out);
    } else {
      quadRows<K, NA, true>(nb, quad, rows, nullptr, a, bias, scale, out);
    }
  }
};

// ---- The K formats' panel product (PanelFn), layout in neon_panel_k.h ----
//
// SDOT by lane as for Q4_0: W[4m + t] times word t of the activation's run m, four SDOTs per run
// and activation row into the group's int32 sums, then a multiply-accumulate by the rows' scales
// per group; per super-block the mins against the bsums and the float factors. One quad against
// up to four activation rows, so that each weight vector loaded serves four rows.
template <class F, int NA>
__attribute__((noinline)) void quadRowsK(int64_t nb, const uint8_t* quad, const BlockQ8_K* const a[NA],
                                         float* const out[NA]) {
  using P = neon::KPanel<F>;
  constexpr int kRuns = F::kGroup / 16;
  float32x4_t acc[NA];
  for (int x = 0; x < NA; ++x) acc[x] = vdupq_n_f32(0.0f);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* record = quad + b * P::kRecordBytes;
    int32x4_t isum[NA];
    for (int x = 0; x < NA; ++x) isum[x] = vdupq_n_s32(0);
#pragma GCC unroll 16
    for (int j = 0; j < P::kGroups; ++j) {
      int32x4_t s[NA];
      for (int x = 0; x < NA; ++x) s[x] = vdupq_n_s32(0);
#pragma GCC unroll 2
      for (int h = 0; h < kRuns; ++h) {
        const int m = kRuns * j + h;
        const int8x16_t* w = P::w(record) + 4 * m;
        const int8x16_t w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
        for (int x = 0; x < NA; ++x) {
          const int8x16_t av = vld1q_s8(a[x][b].qs + 16 * m);
          s[x] = vdotq_laneq_s32(s[x], w0, av, 0);
          s[x] = vdotq_laneq_s32(s[x], w1, av, 1);
          s[x] = vdotq_laneq_s32(s[x], w2, av, 2);
          s[x] = vdotq_laneq_s32(s[x], w3, av, 3);
        }
      }
      const int32x4_t scale = vld1q_s32(P::scale(record, j));
      for (int x = 0; x < NA; ++x) isum[x] = vmlaq_s32(isum[x], s[x], scale);
    }
    const float32x4_t d = vld1q_f32(P::d(record));
    for (int x = 0; x < NA; ++x) {
      const int16x8_t bsums[2] = {vld1q_s16(a[x][b].bsums), vld1q_s16(a[x][b].bsums + 8)};
      const int32x4_t mins = neon::quadMins<F>(record, bsums);
      if constexpr (F::kOffset) {
        acc[x] = vfmaq_f32(acc[x], vcvtq_f32_s32(vsubq_s32(isum[x], mins)), vmulq_n_f32(d, a[x][b].d));
      } else {
        acc[x] = vfmaq_f32(acc[x], vcvtq_f32_s32(isum[x]), vmulq_n_f32(d, a[x][b].d));
        acc[x] = vfmsq_f32(acc[x], vcvtq_f32_s32(mins), vmulq_n_f32(vld1q_f32(P::dmin(record)), a[x][b].d));
      }
    }
  }
  for (int x = 0; x < NA; ++x) vst1q_f32(out[x], acc[x]);
}

template <class F>
struct PanelK {
  using Act = BlockQ8_K;
  static constexpr size_t kRecordBytes = neon::KPanel<F>::kRecordBytes;
  static constexpr int64_t kBlockSize = kQK_K;
  static constexpr bool kOnTheWay = false;
  static void rearrange(int64_t nb, const uint8_t* const rows[kPanelRows], int quads, const NextPanel& next,
                        uint8_t* pb) {
    neon::rearrangeKPanel<F>(nb, rows, quads, next, pb);
  }
  template <int NA>
  static void rowsOf(bool, int64_t nb, const uint8_t* quad, const uint8_t* const*, const NextPanel*,
                     const Act* const a[NA], const int32_t* const*, const float* const*, float* const out[NA]) {
    quadRowsK<F, NA>(nb, quad, a, out);
  }
};

template <class Panel>
void gemmNeonDotprod(int64_t n, const void* w, size_t wStride, int nW, const void* a, size_t aStride,
                     const int32_t* aBias, const float* aScale, int64_t nA, float* y, size_t yStride, void* panel) {
  using Act = typename Panel::Act;
  const int64_t nb = n / Panel::kBlockSize;
  auto* pb = static_cast<uint8_t*>(panel);
  const uint8_t* rows[kPanelRows];
  neon::panelRowPointers(static_cast<const uint8_t*>(w), wStride, nW, rows);
  const NextPanel next(nb, static_cast<const uint8_t*>(w), wStride);
  const int quads = (nW + 3) / 4;
  constexpr int kRows = 4;  // activation rows per pass over a quad
  // One pass (a few running sequences) unpacks on the way where the panel can; more, or a panel
  // that cannot, rearrange once into the scratch.
  const bool onePass = Panel::kOnTheWay && nA <= kRows;
  if (!onePass) Panel::rearrange(nb, rows, quads, next, pb);
  // Quad by quad: a quad stays in L1 while every group of activation rows passes over it.
  for (int q = 0; q < quads; ++q) {
    const uint8_t* quad = pb + q * nb * Panel::kRecordBytes;
    const int count = nW - 4 * q < 4 ? nW - 4 * q : 4;
    const NextPanel* fetch = q == 0 ? &next : nullptr;  // in one pass, while the first quad is read
    for (int64_t x0 = 0; x0 < nA; x0 += kRows) {
      const int na = nA - x0 < kRows ? static_cast<int>(nA - x0) : kRows;
      const Act* rowsA[kRows];
      const int32_t* bias[kRows] = {};
      const float* scale[kRows] = {};
      for (int j = 0; j < na; ++j) {
        rowsA[j] = reinterpret_cast<const Act*>(static_cast<const uint8_t*>(a) + (x0 + j) * aStride);
        if (aBias) bias[j] = aBias + (x0 + j) * nb, scale[j] = aScale + (x0 + j) * nb;
      }
      float results[kRows][4];
      float* const resultRows[kRows] = {results[0], results[1], results[2], results[3]};
      const uint8_t* const* quadRowsOf = rows + 4 * q;
      switch (na) {
        case 1: Panel::template rowsOf<1>(onePass, nb, quad, quadRowsOf, fetch, rowsA, bias, scale, resultRows); break;
        case 2: Panel::template rowsOf<2>(onePass, nb, quad, quadRowsOf, fetch, rowsA, bias, scale, resultRows); break;
        case 3: Panel::template rowsOf<3>(onePass, nb, quad, quadRowsOf, fetch, rowsA, bias, scale, resultRows); break;
        default: Panel::template rowsOf<4>(onePass, nb, quad, quadRowsOf, fetch, rowsA, bias, scale, resultRows); break;
      }
      // Only the panel's rows: y beyond nW belongs to someone else.
      for (int j = 0; j < na; ++j)
        for (int r = 0; r < count; ++r) y[(x0 + j) * yStride + 4 * q + r] = results[j][r];
    }
  }
}

bool dotprodRunsHere() { return cpuFeatures().neonDotprod; }

constexpr KernelSet neonDotprodSet() {
  KernelSet s{"neon-dotprod", dotprodRunsHere};
  s[TensorType::Q4_0] = {dotQ4_0Q8_0NeonDotprod, {dotRowsQ4_0NeonDotprod, kRowsQ4_0},
                         {gemmNeonDotprod<Panel32<neon::Panel32Q4_0>>, q4_0PanelActivationTerms, kQ4_0PanelBytesPerBlock}};
  s[TensorType::Q8_0] = {dotQ8_0Q8_0NeonDotprod, {dotRowsQ8_0NeonDotprod, kRowsQ8_0},
                         {gemmNeonDotprod<Panel32<neon::Panel32Q8_0>>, nullptr, 4 * neon::kPanel32RecordBytes<neon::Panel32Q8_0>}};
  s[TensorType::Q4_1] = {dotQ4_1Q8_1NeonDotprod, {dotRowsQ4_1NeonDotprod, kRowsQ4_1},
                         {gemmNeonDotprod<Panel32<neon::Panel32Q4_1>>, nullptr, 4 * neon::kPanel32RecordBytes<neon::Panel32Q4_1>}};
  s[TensorType::Q2_K] = {neon::dotK<Sdot, neon::FormatQ2K>, {dotRowsKNeonDotprod<neon::FormatQ2K>, kRowsK},
                         {gemmNeonDotprod<PanelK<neon::FormatQ2K>>, nullptr, neon::KPanel<neon::FormatQ2K>::kBytesPerBlock}};
  s[TensorType::Q3_K] = {neon::dotK<Sdot, neon::FormatQ3K>, {dotRowsKNeonDotprod<neon::FormatQ3K>, kRowsK},
                         {gemmNeonDotprod<PanelK<neon::FormatQ3K>>, nullptr, neon::KPanel<neon::FormatQ3K>::kBytesPerBlock}};
  s[TensorType::Q4_K] = {neon::dotK<Sdot, neon::FormatQ4K>, {dotRowsKNeonDotprod<neon::FormatQ4K>, kRowsK},
                         {gemmNeonDotprod<PanelK<neon::FormatQ4K>>, nullptr, neon::KPanel<neon::FormatQ4K>::kBytesPerBlock}};
  s[TensorType::Q5_K] = {neon::dotK<Sdot, neon::FormatQ5K>, {dotRowsKNeonDotprod<neon::FormatQ5K>, kRowsK},
                         {gemmNeonDotprod<PanelK<neon::FormatQ5K>>, nullptr, neon::KPanel<neon::FormatQ5K>::kBytesPerBlock}};
  s[TensorType::Q6_K] = {neon::dotK<Sdot, neon::FormatQ6K>, {dotRowsKNeonDotprod<neon::FormatQ6K>, kRowsK},
                         {gemmNeonDotprod<PanelK<neon::FormatQ6K>>, nullptr, neon::KPanel<neon::FormatQ6K>::kBytesPerBlock}};
  return s;
}

}  // namespace

extern const KernelSet kNeonDotprodKernels;
constexpr KernelSet kNeonDotprodKernels = neonDotprodSet();

}  // namespace kernels
