// AVX512_VNNI kernels for x86-64 (Ice Lake, Zen 4 and later). This file alone is compiled with
// -mavx512f -mavx512bw -mavx512vl -mavx512vnni on top of AVX2/FMA/F16C; its functions run only
// after cpuFeatures() said so. vpdpbusd does the unsigned×signed byte products and their sum into
// 32 bits in one instruction (maddubs + madd without VNNI), and the EVEX encoding gives 32 vector
// registers. Everything else falls through to the AVX2 set.
// GCC 12's AVX-512 headers start many intrinsics from a deliberately undefined vector
// (`__m512i __Y = __Y;`), which -Wall then reports as uninitialized once inlined.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <cstring>

#include "../cpu_features.h"
#include "../panel_pass.h"
#include "../kernel_table.h"
#include "attention_avx512.h"
#include "avx512_pairs.h"
#include "k_q4_q5_panel.h"
#include "k_q4_q5_rows.h"
#include "q4_0_rows.h"
#include "q4_1_panel.h"
#include "q6_k_panel.h"
#include "q6_k_rows.h"
#include "q8_0_panel.h"
#include "q8_0_rows.h"

namespace kernels {
namespace {

// The four-row decode kernel of q4_0_rows.h on 512-bit vectors, two blocks per step: one
// vpdpbusd/convert/FMA covers 64 elements.
void dotQ4_0Rows4Avx512Vnni(int64_t n, const void* w, size_t wStride, const void* a, float* out) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const BlockQ4_0* x[4];
  for (int r = 0; r < 4; ++r) x[r] = reinterpret_cast<const BlockQ4_0*>(wb + r * wStride);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  const int64_t nb = n / kQK;
  __m512 acc[4];
  for (int r = 0; r < 4; ++r) acc[r] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 1 < nb; i += 2) {
    for (int r = 0; r < 4; ++r) avx2_common::prefetchAhead<avx2_common::kStreamAhead, 2 * sizeof(BlockQ4_0)>(&x[r][i]);
    const __m512i av = loadActivationPair(y[i], y[i + 1]);
    const __m512i bias = activationBiasPair(av);
    const __m512 da = scalePair(y[i].d, y[i + 1].d);
    for (int r = 0; r < 4; ++r) {
      const __m512i u = unpackNibblePair(x[r][i], x[r][i + 1]);
      const __m512 dw = scalePair(x[r][i].d, x[r][i + 1].d);
      const __m512 sum = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(bias, u, av));
      acc[r] = _mm512_fmadd_ps(sum, _mm512_mul_ps(dw, da), acc[r]);
    }
  }
  for (int r = 0; r < 4; ++r) {
    float sum = _mm512_reduce_add_ps(acc[r]);
    if (i < nb) {  // an odd last block
      const BlockQ4_0& b = x[r][i];
      const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
      const __m256 s = _mm256_cvtepi32_ps(
          q4_0_rows::biasedDot(q4_0_rows::activationBias(av), q4_0_rows::unpackNibbles(b.qs), av));
      sum += q4_0_rows::horizontalSum(_mm256_mul_ps(s, _mm256_set1_ps(_cvtsh_ss(b.d) * _cvtsh_ss(y[i].d))));
    }
    out[r] = sum;
  }
}

// ---- The Q4_0 panel product (PanelFn) ----
//
// The panel: for block b, eight vectors g = 0..7 whose 32-bit lane r holds weight row r's four
// nibbles of elements 4g..4g+3 (0..15, unsigned), then the sixteen rows' scales as floats.
// Element order inside a lane is the activation's own order, so the activation side of a group
// is one broadcast 32-bit load: vpdpbusd(acc, W_g, bcast(a[4g..4g+3])) adds 4 products to each
// of the sixteen rows at once. The scales multiply a whole vector of rows, and the result of an
// activation row is one 64-byte store: no horizontal sums anywhere.

// Block b's quants of rows 4L+k (k = 0..3) as 128-bit lane L of vector k; missing rows (nullptr,
// past the end of a short panel) are zeros, and so are their scales: their lanes come out 0.
inline __m512i loadPanelQuants(const uint8_t* const rows[kPanelRows], int64_t b, int k) {
  const auto at = [&](int r) {
    if (!rows[r]) return _mm_setzero_si128();
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const BlockQ4_0*>(rows[r])[b].qs));
  };
  __m512i v = _mm512_castsi128_si512(at(k));
  v = _mm512_inserti32x4(v, at(4 + k), 1);
  v = _mm512_inserti32x4(v, at(8 + k), 2);
  return _mm512_inserti32x4(v, at(12 + k), 3);
}

// The sixteen weight rows of one panel, unpacked block by block into registers.
class PanelSource {
 public:
  PanelSource(int64_t nb, const uint8_t* w, size_t wStride, int nW)
      : w_(w),
        rowMask_(static_cast<__mmask16>((1u << nW) - 1)),
        offsets_(_mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                    _mm512_set1_epi32(static_cast<int32_t>(wStride)))),
        next_(reinterpret_cast<const char*>(w + kPanelRows * wStride)),
        share_(kPanelRows * wStride / static_cast<size_t>(nb)) {
    for (int r = 0; r < kPanelRows; ++r) rows_[r] = r < nW ? w + r * wStride : nullptr;
  }

  __mmask16 rowMask() const { return rowMask_; }  // lanes of the panel's real rows

  // Block b: wq[g] lane r = row r's nibbles of elements 4g..4g+3, dw lane r = row r's scale.
  inline void block(int64_t b, __m512i wq[8], __m512* dw) const {
    // Sixteen rows read side by side are sixteen streams, which the hardware prefetcher follows
    // poorly; the next panel is the one stretch of 16·wStride bytes right after this one, so it
    // is fetched here in order, a block's share (16·18 bytes) per block unpacked.
    for (size_t off = 0; off < share_; off += 64) _mm_prefetch(next_ + b * share_ + off, _MM_HINT_T0);
    const __m512i a0 = loadPanelQuants(rows_, b, 0), a1 = loadPanelQuants(rows_, b, 1);
    const __m512i a2 = loadPanelQuants(rows_, b, 2), a3 = loadPanelQuants(rows_, b, 3);
    // A 4×4 transpose of 32-bit words inside each 128-bit lane: t_g lane r = row r's word g,
    // that is bytes 4g..4g+3: nibbles of elements 4g.. (low) and 16+4g.. (high).
    const __m512i u0 = _mm512_unpacklo_epi32(a0, a1), u1 = _mm512_unpackhi_epi32(a0, a1);
    const __m512i u2 = _mm512_unpacklo_epi32(a2, a3), u3 = _mm512_unpackhi_epi32(a2, a3);
    const __m512i t[4] = {_mm512_unpacklo_epi64(u0, u2), _mm512_unpackhi_epi64(u0, u2),
                          _mm512_unpacklo_epi64(u1, u3), _mm512_unpackhi_epi64(u1, u3)};
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    for (int g = 0; g < 4; ++g) {
      wq[g] = _mm512_and_si512(t[g], low4);
      wq[4 + g] = _mm512_and_si512(_mm512_srli_epi32(t[g], 4), low4);
    }
    // The fp16 scales, the low half of the word at each row's block start (lane r: byte offset
    // r·wStride), gathered: sixteen scalar loads cost more. Lanes of missing rows stay zero.
    const __m512i d = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), rowMask_, offsets_, w_ + b * sizeof(BlockQ4_0), 1);
    *dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(d));
  }

 private:
  const uint8_t* w_;
  const uint8_t* rows_[kPanelRows];
  __mmask16 rowMask_;
  __m512i offsets_;
  const char* next_;
  size_t share_;
};

// The whole panel into `panel` (kQ4_0PanelBytesPerBlock per block), for batches that pass over
// it more than once.
void unpackPanel(int64_t nb, const PanelSource& source, uint8_t* panel) {
  for (int64_t b = 0; b < nb; ++b) {
    __m512i wq[8];
    __m512 dw;
    source.block(b, wq, &dw);
    auto* out = reinterpret_cast<__m512i*>(panel + b * kQ4_0PanelBytesPerBlock);  // [8] then scales
    for (int g = 0; g < 8; ++g) _mm512_store_si512(out + g, wq[g]);
    _mm512_store_ps(reinterpret_cast<float*>(out + 8), dw);
  }
}

inline __m512i broadcastQuads(const int8_t* q) {
  int32_t v;
  std::memcpy(&v, q, 4);
  return _mm512_set1_epi32(v);
}

// NA activation rows against the panel, read from its unpacked copy (panel) or, in a single
// pass, unpacked on the way (source); their results go to y[x·yStride + 0..nW).
template <int NA, bool kUnpacked>
void panelRows(int64_t nb, const PanelSource& source, const uint8_t* panel, const BlockQ8_0* const a[NA],
               const int32_t* const bias[NA], const float* const scale[NA], float* const y[NA], __mmask16 rowMask) {
  __m512 acc[NA];
  for (int j = 0; j < NA; ++j) acc[j] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    __m512i wq[8];
    __m512 dw;
    if (kUnpacked) {
      const auto* p = reinterpret_cast<const __m512i*>(panel + b * kQ4_0PanelBytesPerBlock);
      for (int g = 0; g < 8; ++g) wq[g] = _mm512_load_si512(p + g);
      dw = _mm512_load_ps(reinterpret_cast<const float*>(p + 8));
    } else {
      source.block(b, wq, &dw);
    }
    for (int j = 0; j < NA; ++j) {
      const int8_t* q = a[j][b].qs;
      // Two chains of four for latency; both start from the nibble offset, so subtract one.
      __m512i s0 = _mm512_set1_epi32(bias[j][b]), s1 = _mm512_setzero_si512();
      for (int g = 0; g < 4; ++g) {
        s0 = _mm512_dpbusd_epi32(s0, wq[g], broadcastQuads(q + 4 * g));
        s1 = _mm512_dpbusd_epi32(s1, wq[4 + g], broadcastQuads(q + 16 + 4 * g));
      }
      const __m512 sum = _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1));
      acc[j] = _mm512_fmadd_ps(sum, _mm512_mul_ps(dw, _mm512_set1_ps(scale[j][b])), acc[j]);
    }
  }
  for (int j = 0; j < NA; ++j) _mm512_mask_storeu_ps(y[j], rowMask, acc[j]);
}

void gemmQ4_0Avx512Vnni(int64_t n, const void* w, size_t wStride, int nW, const void* a, size_t aStride,
                        const int32_t* aBias, const float* aScale, int64_t nA, float* y, size_t yStride,
                        void* panel) {
  const int64_t nb = n / kQK;
  auto* pb = static_cast<uint8_t*>(panel);
  const PanelSource source(nb, static_cast<const uint8_t*>(w), wStride, nW);
  const __mmask16 rowMask = source.rowMask();
  constexpr int kRows = 8;  // activation rows per pass: 8 accumulators + 8 weight vectors in registers
  // One pass (a few running sequences) unpacks on the way; more unpack once into the panel.
  const bool onePass = nA <= kRows;
  if (!onePass) unpackPanel(nb, source, pb);
  for (int64_t x0 = 0; x0 < nA; x0 += kRows) {
    const PanelPass<kRows> p(x0, nA, nb, a, aStride, aBias, aScale, y, yStride);
    withRowCount<kRows>(p.count, [&](auto rows) {
      constexpr int kCount = decltype(rows)::value;
      if (onePass) {
        panelRows<kCount, false>(nb, source, pb, p.a, p.bias, p.scale, p.y, rowMask);
      } else {
        panelRows<kCount, true>(nb, source, pb, p.a, p.bias, p.scale, p.y, rowMask);
      }
    });
  }
}

bool avx512VnniRunsHere() { return cpuFeatures().avx512Vnni; }

constexpr KernelSet avx512VnniSet() {
  KernelSet s{"avx512-vnni", avx512VnniRunsHere};
  s[TensorType::Q4_0] = {q4_0_rows::dotRow, {dotQ4_0Rows4Avx512Vnni, 4},
                         {gemmQ4_0Avx512Vnni, q4_0PanelActivationTerms, kQ4_0PanelBytesPerBlock}};
  s[TensorType::Q4_1].panel = {q4_1_panel::gemmVnni, nullptr, q4_1_panel::kBytesPerBlock};
  s[TensorType::Q6_K].panel = {q6_k_panel::gemmVnni, nullptr, q6_k_panel::kBytesPerSuperBlock};
  s[TensorType::Q6_K].rows = {q6_k_rows::dotRows4Vnni, 4};
  s[TensorType::Q8_0].panel = {q8_0_panel::gemmVnni, q8_0PanelActivationTerms, q8_0_panel::kVnniBytesPerBlock};
  s[TensorType::Q8_0].rows = {q8_0_rows::dotRows4Vnni, 4};
  s[TensorType::Q4_K].panel = {k_panel::gemm<false>, nullptr, k_panel::kBytesPerBlock};
  s[TensorType::Q5_K].panel = {k_panel::gemm<true>, nullptr, k_panel::kBytesPerBlock};
  s[TensorType::Q4_K].rows = {k_rows::dotRows4<false>, 4};
  s[TensorType::Q5_K].rows = {k_rows::dotRows4<true>, 4};
  // The AVX2 F16 dot product, whose sums the scores here repeat (the scores come with the dot).
  s[TensorType::F16].dot = attention_avx2::dotF16F16;
  s.scoresF16 = attention_avx512::scoresF16;
  s.weighF16 = attention_avx512::weighF16;
  return s;
}

}  // namespace

extern const KernelSet kAvx512VnniKernels;
constexpr KernelSet kAvx512VnniKernels = avx512VnniSet();

}  // namespace kernels
