// The Q8_0 panel (batch) kernels for x86-64: sixteen weight rows, rearranged once per batch into
// the caller's scratch, against every activation row (kernels::PanelFn). Included by avx2.cc
// (maddubs-free AVX2 kernel) and avx512_vnni.cc (vpdpbusd kernel); everything has internal
// linkage, so each includer compiles its own copy with its own flags (see ../kernel_table.h).
//
// Both sides are signed bytes, -128 included (a file may hold it, kernel_check feeds it), and the
// products must be exact:
//  - AVX2 widens the weights to 16 bits in the panel and multiplies with madd (int16 pairs into
//    int32): maddubs would saturate, its unsigned operand would have to be a weight plus 128.
//  - VNNI feeds the weight plus 128 (0..255) as vpdpbusd's unsigned operand and starts each sum
//    at the activation term −128·Σa: Σ(w+128)·a − 128·Σa = Σw·a, exact in 32 bits.
// Each row's result is y = fma(float(Σw·a), d_w·d_a, y) block by block from 0, the order of the
// decode kernels and the dot product (q8_0_rows.h, avx2.cc): a batch gives the same bits as
// token-by-token decoding. (A last-bit difference is enough to move an fp16 KV entry or an 8-bit
// activation quant of the next layer; the tiny qwen3 shape's logits then differed by 7.6e-3.)
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "../../gguf/tensor_types.h"
#include "../kernel_table.h"
#include "../panel_pass.h"
#include "panel_avx2.h"

namespace {
namespace q8_0_panel {

using kernels::kPanelRows;

inline const BlockQ8_0& blockOf(const uint8_t* row, int64_t b) { return reinterpret_cast<const BlockQ8_0*>(row)[b]; }

// The next panel is the one stretch of 16·wStride bytes after this one: fetched in order, a
// block's share per block unpacked (sixteen rows side by side are streams the hardware
// prefetcher follows poorly).
inline void prefetchNext(const char* next, size_t share, int64_t b) {
  for (size_t off = 0; off < share; off += 64) _mm_prefetch(next + b * share + off, _MM_HINT_T0);
}

// ---- AVX2 ----
//
// Per block: for each pair p (elements 2p, 2p+1) two vectors, rows 0-7 and rows 8-15, whose
// 32-bit lane r holds that row's pair as two int16; then the sixteen rows' scales as floats. An
// activation pair broadcast to every lane multiplies all rows with one madd.
struct alignas(32) Avx2Block {
  __m256i q[16][2];  // [pair][rows 0-7, rows 8-15]
  __m256 d[2];       // scales of rows 0-7, rows 8-15
};
constexpr size_t kAvx2BytesPerBlock = sizeof(Avx2Block);
static_assert(kAvx2BytesPerBlock == 16 * 64 + 64, "the AVX2 Q8_0 panel's block layout");

// 8×8 transpose of 32-bit words: v[k] word p -> v[p] lane k.
inline void transpose8x8(__m256i v[8]) {
  __m256i t[8], u[8];
  for (int k = 0; k < 4; ++k) {
    t[2 * k] = _mm256_unpacklo_epi32(v[2 * k], v[2 * k + 1]);
    t[2 * k + 1] = _mm256_unpackhi_epi32(v[2 * k], v[2 * k + 1]);
  }
  for (int k = 0; k < 2; ++k) {  // rows 4k..4k+3: u[4k + w] holds words w (low lane) and 4+w (high lane)
    u[4 * k + 0] = _mm256_unpacklo_epi64(t[4 * k], t[4 * k + 2]);
    u[4 * k + 1] = _mm256_unpackhi_epi64(t[4 * k], t[4 * k + 2]);
    u[4 * k + 2] = _mm256_unpacklo_epi64(t[4 * k + 1], t[4 * k + 3]);
    u[4 * k + 3] = _mm256_unpackhi_epi64(t[4 * k + 1], t[4 * k + 3]);
  }
  for (int w = 0; w < 4; ++w) {
    v[w] = _mm256_permute2x128_si256(u[w], u[4 + w], 0x20);
    v[4 + w] = _mm256_permute2x128_si256(u[w], u[4 + w], 0x31);
  }
}

// The sixteen rows of a panel into `panel` ([nb] blocks). Rows past nW repeat row nW-1: their
// memory is valid and their lanes are never stored.
inline void unpackAvx2(int64_t nb, const uint8_t* w, size_t wStride, int nW, Avx2Block* panel) {
  const uint8_t* rows[kPanelRows];
  for (int r = 0; r < kPanelRows; ++r) rows[r] = w + (r < nW ? r : nW - 1) * wStride;
  const char* next = reinterpret_cast<const char*>(w + kPanelRows * wStride);
  const size_t share = kPanelRows * wStride / static_cast<size_t>(nb);
  for (int64_t b = 0; b < nb; ++b) {
    prefetchNext(next, share, b);
    for (int h = 0; h < 2; ++h) {
      __m256i lo[8], hi[8];  // [row 8h+k]: pairs 0-7, pairs 8-15 as int16
      for (int k = 0; k < 8; ++k) {
        const int8_t* q = blockOf(rows[8 * h + k], b).qs;
        lo[k] = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q)));
        hi[k] = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 16)));
      }
      transpose8x8(lo);
      transpose8x8(hi);
      for (int p = 0; p < 8; ++p) {
        panel[b].q[p][h] = lo[p];
        panel[b].q[8 + p][h] = hi[p];
      }
    }
    alignas(32) float d[kPanelRows];
    for (int r = 0; r < kPanelRows; ++r) d[r] = _cvtsh_ss(blockOf(rows[r], b).d);
    panel[b].d[0] = _mm256_load_ps(d);
    panel[b].d[1] = _mm256_load_ps(d + 8);
  }
}

template <int NA>
inline void panelRowsAvx2(int64_t nb, const Avx2Block* panel, const BlockQ8_0* const a[NA],
                          const float* const scale[NA], float* const y[NA], int nW) {
  __m256 acc0[NA], acc1[NA];  // rows 0-7, rows 8-15
  for (int j = 0; j < NA; ++j) acc0[j] = acc1[j] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const Avx2Block& p = panel[b];
#pragma GCC unroll 4
    for (int j = 0; j < NA; ++j) {
      const int8_t* q = a[j][b].qs;
      // Two chains per half panel, eight madds each.
      __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
      for (int c = 0; c < 4; ++c) {  // elements 8c..8c+7: pairs 4c..4c+3
        const __m256i a8 = _mm256_broadcastsi128_si256(
            _mm_cvtepi8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + 8 * c))));
        const __m256i ap[4] = {_mm256_shuffle_epi32(a8, 0x00), _mm256_shuffle_epi32(a8, 0x55),
                               _mm256_shuffle_epi32(a8, 0xAA), _mm256_shuffle_epi32(a8, 0xFF)};
        for (int k = 0; k < 4; k += 2) {
          s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(p.q[4 * c + k][0], ap[k]));
          s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(p.q[4 * c + k][1], ap[k]));
          s2 = _mm256_add_epi32(s2, _mm256_madd_epi16(p.q[4 * c + k + 1][0], ap[k + 1]));
          s3 = _mm256_add_epi32(s3, _mm256_madd_epi16(p.q[4 * c + k + 1][1], ap[k + 1]));
        }
      }
      const __m256 da = _mm256_set1_ps(scale[j][b]);
      acc0[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(s0, s2)), _mm256_mul_ps(p.d[0], da), acc0[j]);
      acc1[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(s1, s3)), _mm256_mul_ps(p.d[1], da), acc1[j]);
    }
  }
  for (int j = 0; j < NA; ++j) panel_avx2::storeRow(y[j], acc0[j], acc1[j], nW);
}

// kernels::PanelFn; aScale from kernels::q8_0PanelActivationTerms (aBias is not needed here).
inline void gemmAvx2(int64_t n, const void* w, size_t wStride, int nW, const void* a, size_t aStride,
                     const int32_t* aBias, const float* aScale, int64_t nA, float* y, size_t yStride, void* scratch) {
  const int64_t nb = n / kQK;
  auto* panel = static_cast<Avx2Block*>(scratch);
  unpackAvx2(nb, static_cast<const uint8_t*>(w), wStride, nW, panel);
  constexpr int kRows = 4;  // activation rows per pass: eight accumulators
  for (int64_t x0 = 0; x0 < nA; x0 += kRows) {
    const PanelPass<kRows> p(x0, nA, nb, a, aStride, aBias, aScale, y, yStride);
    withRowCount<kRows>(p.count, [&](auto rows) {
      panelRowsAvx2<decltype(rows)::value>(nb, panel, p.a, p.scale, p.y, nW);
    });
  }
}

#if defined(__AVX512VNNI__)
// ---- AVX-512 VNNI ----
//
// The layout of the Q4_0 panel (kQ4_0PanelBytesPerBlock): per block eight vectors g whose 32-bit
// lane r holds row r's bytes 4g..4g+3 plus 128 (unsigned), then the sixteen rows' scales as
// floats. Activation side of a group: one broadcast 32-bit load shared by all sixteen rows.
constexpr size_t kVnniBytesPerBlock = 8 * 64 + 64;

class VnniSource {
 public:
  VnniSource(int64_t nb, const uint8_t* w, size_t wStride, int nW)
      : w_(w),
        rowMask_(static_cast<__mmask16>((1u << nW) - 1)),
        offsets_(_mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                    _mm512_set1_epi32(static_cast<int32_t>(wStride)))),
        next_(reinterpret_cast<const char*>(w + kPanelRows * wStride)),
        share_(kPanelRows * wStride / static_cast<size_t>(nb)) {
    for (int r = 0; r < kPanelRows; ++r) rows_[r] = r < nW ? w + r * wStride : nullptr;
  }

  __mmask16 rowMask() const { return rowMask_; }

  // Block b: wq[g] lane r = row r's bytes 4g..4g+3 plus 128, dw lane r = row r's scale; rows
  // past nW have zero scales.
  inline void block(int64_t b, __m512i wq[8], __m512* dw) const {
    prefetchNext(next_, share_, b);
    for (int h = 0; h < 2; ++h) {  // elements 16h..16h+15
      // Vector k: rows 4L+k's sixteen bytes in 128-bit lane L; then a 4×4 transpose of 32-bit
      // words inside each lane leaves t[g] lane r = row r's word g.
      __m512i v[4];
      for (int k = 0; k < 4; ++k) {
        v[k] = _mm512_castsi128_si512(quants(k, b, h));
        v[k] = _mm512_inserti32x4(v[k], quants(4 + k, b, h), 1);
        v[k] = _mm512_inserti32x4(v[k], quants(8 + k, b, h), 2);
        v[k] = _mm512_inserti32x4(v[k], quants(12 + k, b, h), 3);
      }
      const __m512i u0 = _mm512_unpacklo_epi32(v[0], v[1]), u1 = _mm512_unpackhi_epi32(v[0], v[1]);
      const __m512i u2 = _mm512_unpacklo_epi32(v[2], v[3]), u3 = _mm512_unpackhi_epi32(v[2], v[3]);
      const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
      wq[4 * h + 0] = _mm512_xor_si512(_mm512_unpacklo_epi64(u0, u2), flip);
      wq[4 * h + 1] = _mm512_xor_si512(_mm512_unpackhi_epi64(u0, u2), flip);
      wq[4 * h + 2] = _mm512_xor_si512(_mm512_unpacklo_epi64(u1, u3), flip);
      wq[4 * h + 3] = _mm512_xor_si512(_mm512_unpackhi_epi64(u1, u3), flip);
    }
    // The fp16 scale is the low half of the word at each row's block start (lane r: r·wStride).
    const __m512i d = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), rowMask_, offsets_, w_ + b * sizeof(BlockQ8_0), 1);
    *dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(d));
  }

 private:
  __m128i quants(int r, int64_t b, int h) const {
    if (!rows_[r]) return _mm_setzero_si128();
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(blockOf(rows_[r], b).qs + 16 * h));
  }

  const uint8_t* w_;
  const uint8_t* rows_[kPanelRows];
  __mmask16 rowMask_;
  __m512i offsets_;
  const char* next_;
  size_t share_;
};

inline __m512i broadcastQuads(const int8_t* q) {
  int32_t v;
  __builtin_memcpy(&v, q, 4);
  return _mm512_set1_epi32(v);
}

// NA activation rows against the panel, from its unpacked copy (kUnpacked) or unpacked on the way.
template <int NA, bool kUnpacked>
inline void panelRowsVnni(int64_t nb, const VnniSource& source, const uint8_t* panel, const BlockQ8_0* const a[NA],
                          const int32_t* const bias[NA], const float* const scale[NA], float* const y[NA],
                          __mmask16 rowMask) {
  __m512 acc[NA];
  for (int j = 0; j < NA; ++j) acc[j] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    __m512i wq[8];
    __m512 dw;
    if (kUnpacked) {
      const auto* p = reinterpret_cast<const __m512i*>(panel + b * kVnniBytesPerBlock);
      for (int g = 0; g < 8; ++g) wq[g] = _mm512_load_si512(p + g);
      dw = _mm512_load_ps(reinterpret_cast<const float*>(p + 8));
    } else {
      source.block(b, wq, &dw);
    }
    for (int j = 0; j < NA; ++j) {
      const int8_t* q = a[j][b].qs;
      __m512i s0 = _mm512_set1_epi32(bias[j][b]), s1 = _mm512_setzero_si512();  // −128·Σa, once
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

// kernels::PanelFn with kernels::q8_0PanelActivationTerms.
inline void gemmVnni(int64_t n, const void* w, size_t wStride, int nW, const void* a, size_t aStride,
                     const int32_t* aBias, const float* aScale, int64_t nA, float* y, size_t yStride, void* scratch) {
  const int64_t nb = n / kQK;
  auto* panel = static_cast<uint8_t*>(scratch);
  const VnniSource source(nb, static_cast<const uint8_t*>(w), wStride, nW);
  constexpr int kRows = 8;  // activation rows per pass: 8 accumulators + 8 weight vectors
  // One pass (a few running sequences) unpacks on the way; more unpack once into the panel.
  const bool onePass = nA <= kRows;
  if (!onePass) {
    for (int64_t b = 0; b < nb; ++b) {
      __m512i wq[8];
      __m512 dw;
      source.block(b, wq, &dw);
      auto* out = reinterpret_cast<__m512i*>(panel + b * kVnniBytesPerBlock);
      for (int g = 0; g < 8; ++g) _mm512_store_si512(out + g, wq[g]);
      _mm512_store_ps(reinterpret_cast<float*>(out + 8), dw);
    }
  }
  for (int64_t x0 = 0; x0 < nA; x0 += kRows) {
    const PanelPass<kRows> p(x0, nA, nb, a, aStride, aBias, aScale, y, yStride);
    const __mmask16 m = source.rowMask();
    withRowCount<kRows>(p.count, [&](auto rows) {
      constexpr int kCount = decltype(rows)::value;
      if (onePass) {
        panelRowsVnni<kCount, false>(nb, source, panel, p.a, p.bias, p.scale, p.y, m);
      } else {
        panelRowsVnni<kCount, true>(nb, source, panel, p.a, p.bias, p.scale, p.y, m);
      }
    });
  }
}
#endif  // __AVX512VNNI__

}  // namespace q8_0_panel
}  // namespace
