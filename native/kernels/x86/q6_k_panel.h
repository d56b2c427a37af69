// The Q6_K panel (batch) kernels for x86-64: sixteen weight rows, rearranged once per batch into
// the caller's scratch, against every Q8_K activation row (kernels::PanelFn, no per-batch terms:
// the activation blocks carry their sums). Included by avx2.cc and avx512_vnni.cc; everything
// has internal linkage, so each includer compiles its own copy with its own flags (see
// ../kernel_table.h).
//
// A Q6_K weight is d·s_g·(u − 32), u in 0..63, s_g the int8 scale of its sub-block g of sixteen
// elements. u goes into the unsigned operand as it is and the offset is taken off per sub-block
// through the activation's block sum: Σ(u − 32)·a = Σu·a − 32·bsum_g, the same for every row.
//
// The float arithmetic is the decode kernel's and the dot product's (q6_k_rows.h, avx2.cc), so
// that a batch gives every row the same bits as token-by-token decoding: per super-block the exact
// integer T = Σ_g s_g·Σ(u − 32)·a, then y = fma(float(T), d·d_a, y) from y = 0, super-block by
// super-block. (Scaling each sub-block's sum by d·s_g in float instead rounds differently by an
// ulp or so; through the fp16 KV cache and the next layer's 8-bit activations such an ulp can move
// a quant, and the tiny qwen3 shape's logits then differed by up to 0.13.)
// Without VNNI a maddubs pair is at most 2·63·128 and two groups summed in 16 bits 4·63·128 =
// 32256 < 2^15: exact for every int8 activation.
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "../../gguf/tensor_types.h"
#include "../kernel_table.h"
#include "../panel_pass.h"
#include "panel_avx2.h"

namespace {
namespace q6_k_panel {

using kernels::kPanelRows;

// One super-block of the sixteen rows. The 32-bit word of group G and row r is that row's four
// u of elements 4G..4G+3, in element order, so that one activation word broadcast to every lane
// meets all sixteen rows; AVX2 reads a group as rows 0-7 and rows 8-15.
struct alignas(64) SuperBlock {
  uint8_t q[64][kPanelRows][4];  // [group][row][element]: u in 0..63
  int32_t scale[16][kPanelRows]; // [sub-block][row]: s_g
  float d[kPanelRows];           // [row]: the super-block's d as a float
};
constexpr size_t kBytesPerSuperBlock = sizeof(SuperBlock);
static_assert(kBytesPerSuperBlock == 64 * 64 + 16 * 64 + 64, "the Q6_K panel's super-block layout");

inline const BlockQ6_K& blockOf(const uint8_t* row, int64_t b) { return reinterpret_cast<const BlockQ6_K*>(row)[b]; }

// A row's 256 u in element order: per half of 128, ql holds the low nibbles of elements 0-31 and
// 64-95 (low, high nibble of bytes 0-31) and 32-63, 96-127 (bytes 32-63); qh byte l holds the two
// high bits of elements l, 32+l, 64+l, 96+l. The 16-bit shifts move bits across byte edges only
// into positions the 0x30 mask drops.
inline void decodeRow(const BlockQ6_K& x, uint8_t* u) {
  const __m256i nibble = _mm256_set1_epi8(0x0F), bits45 = _mm256_set1_epi8(0x30);
  for (int half = 0; half < 2; ++half) {
    const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.ql + 64 * half));
    const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.ql + 64 * half + 32));
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qh + 32 * half));
    auto* out = reinterpret_cast<__m256i*>(u + 128 * half);
    _mm256_store_si256(out, _mm256_or_si256(_mm256_and_si256(l0, nibble), _mm256_and_si256(_mm256_slli_epi16(h, 4), bits45)));
    _mm256_store_si256(out + 1, _mm256_or_si256(_mm256_and_si256(l1, nibble), _mm256_and_si256(_mm256_slli_epi16(h, 2), bits45)));
    _mm256_store_si256(out + 2, _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), nibble), _mm256_and_si256(h, bits45)));
    _mm256_store_si256(out + 3, _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), nibble),
                                                _mm256_and_si256(_mm256_srli_epi16(h, 2), bits45)));
  }
}

// 8×8 transpose of 32-bit words (the int32 scales, moved as floats): v[k] element j -> v[j] element k.
inline void transpose8x8(__m256 v[8]) {
  __m256 t[8], u[8];
  for (int k = 0; k < 4; ++k) {
    t[2 * k] = _mm256_unpacklo_ps(v[2 * k], v[2 * k + 1]);
    t[2 * k + 1] = _mm256_unpackhi_ps(v[2 * k], v[2 * k + 1]);
  }
  for (int k = 0; k < 2; ++k) {  // rows 4k..4k+3: u[4k + j] holds elements j (low lane) and 4+j (high lane)
    u[4 * k + 0] = _mm256_shuffle_ps(t[4 * k], t[4 * k + 2], 0x44);
    u[4 * k + 1] = _mm256_shuffle_ps(t[4 * k], t[4 * k + 2], 0xEE);
    u[4 * k + 2] = _mm256_shuffle_ps(t[4 * k + 1], t[4 * k + 3], 0x44);
    u[4 * k + 3] = _mm256_shuffle_ps(t[4 * k + 1], t[4 * k + 3], 0xEE);
  }
  for (int j = 0; j < 4; ++j) {
    v[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
    v[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
  }
}

// The sixteen rows of a panel into `panel` ([nb] super-blocks). Rows past nW repeat row nW-1:
// their memory is valid and their lanes are never stored.
inline void unpack(int64_t nb, const uint8_t* w, size_t wStride, int nW, SuperBlock* panel) {
  const uint8_t* rows[kPanelRows];
  for (int r = 0; r < kPanelRows; ++r) rows[r] = w + (r < nW ? r : nW - 1) * wStride;
  // The next panel is the one stretch of 16·wStride bytes after this one: fetched in order, a
  // super-block's share per super-block unpacked.
  const char* next = reinterpret_cast<const char*>(w + kPanelRows * wStride);
  const size_t share = kPanelRows * wStride / static_cast<size_t>(nb);
  alignas(32) uint8_t u[kPanelRows][256];
  alignas(32) int32_t scales[kPanelRows][16];  // [row][sub-block]: s_g
  for (int64_t b = 0; b < nb; ++b) {
    for (size_t off = 0; off < share; off += 64) _mm_prefetch(next + b * share + off, _MM_HINT_T0);
    SuperBlock& out = panel[b];
    for (int r = 0; r < kPanelRows; ++r) {
      const BlockQ6_K& x = blockOf(rows[r], b);
      decodeRow(x, u[r]);
      out.d[r] = _cvtsh_ss(x.d);
      for (int k = 0; k < 2; ++k) {
        const __m256i s = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(x.scales + 8 * k)));
        _mm256_store_si256(reinterpret_cast<__m256i*>(scales[r] + 8 * k), s);
      }
    }
    for (int rb = 0; rb < 2; ++rb) {  // [row][sub-block] -> [sub-block][row], eight by eight
      for (int gb = 0; gb < 2; ++gb) {
        __m256 v[8];
        for (int k = 0; k < 8; ++k) v[k] = _mm256_load_ps(reinterpret_cast<const float*>(scales[8 * rb + k] + 8 * gb));
        transpose8x8(v);
        for (int j = 0; j < 8; ++j) _mm256_store_ps(reinterpret_cast<float*>(out.scale[8 * gb + j] + 8 * rb), v[j]);
      }
    }
    for (int h = 0; h < 2; ++h) {
      for (int c = 0; c < 16; ++c) {  // elements 16c..16c+15: groups 4c..4c+3
        // Rows 8h+k and 8h+4+k in the two 128-bit lanes of v[k], then a 4×4 transpose of 32-bit
        // words inside each lane: t[g] lane i = row 8h+i's word g.
        __m256i v[4];
        for (int k = 0; k < 4; ++k) {
          v[k] = _mm256_inserti128_si256(
              _mm256_castsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(u[8 * h + k] + 16 * c))),
              _mm_load_si128(reinterpret_cast<const __m128i*>(u[8 * h + 4 + k] + 16 * c)), 1);
        }
        const __m256i u0 = _mm256_unpacklo_epi32(v[0], v[1]), u1 = _mm256_unpackhi_epi32(v[0], v[1]);
        const __m256i u2 = _mm256_unpacklo_epi32(v[2], v[3]), u3 = _mm256_unpackhi_epi32(v[2], v[3]);
        const __m256i t[4] = {_mm256_unpacklo_epi64(u0, u2), _mm256_unpackhi_epi64(u0, u2),
                              _mm256_unpacklo_epi64(u1, u3), _mm256_unpackhi_epi64(u1, u3)};
        for (int g = 0; g < 4; ++g) _mm256_store_si256(reinterpret_cast<__m256i*>(out.q[4 * c + g][8 * h]), t[g]);
      }
    }
  }
}

template <int kMax>
using Pass = RowsPass<BlockQ8_K, kMax>;  // activation rows [x0, x0 + count)

// ---- AVX2 ----

template <int NA>
inline void panelRowsAvx2(int64_t nb, const SuperBlock* panel, const BlockQ8_K* const a[NA], float* const y[NA],
                          int nW) {
  __m256 acc0[NA], acc1[NA];  // rows 0-7, rows 8-15
  for (int j = 0; j < NA; ++j) acc0[j] = acc1[j] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < nb; ++b) {
    const SuperBlock& p = panel[b];
    for (int j = 0; j < NA; ++j) {
      const BlockQ8_K& ab = a[j][b];
      __m256i t0 = _mm256_setzero_si256(), t1 = t0;  // T of rows 0-7, rows 8-15
      for (int g = 0; g < 16; ++g) {
        const __m256i a16 = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ab.qs + 16 * g)));
        const __m256i aq[4] = {_mm256_shuffle_epi32(a16, 0x00), _mm256_shuffle_epi32(a16, 0x55),
                               _mm256_shuffle_epi32(a16, 0xAA), _mm256_shuffle_epi32(a16, 0xFF)};
        const __m256i offset = _mm256_set1_epi32(-32 * ab.bsums[g]);
        const auto half = [&](int h) {
          const auto wq = [&](int k) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(p.q[4 * g + k][8 * h])); };
          const __m256i m01 = _mm256_add_epi16(_mm256_maddubs_epi16(wq(0), aq[0]), _mm256_maddubs_epi16(wq(1), aq[1]));
          const __m256i m23 = _mm256_add_epi16(_mm256_maddubs_epi16(wq(2), aq[2]), _mm256_maddubs_epi16(wq(3), aq[3]));
          const __m256i s = _mm256_add_epi32(offset, _mm256_add_epi32(_mm256_madd_epi16(m01, ones), _mm256_madd_epi16(m23, ones)));
          return _mm256_mullo_epi32(s, _mm256_load_si256(reinterpret_cast<const __m256i*>(p.scale[g] + 8 * h)));
        };
        t0 = _mm256_add_epi32(t0, half(0));
        t1 = _mm256_add_epi32(t1, half(1));
      }
      const __m256 da = _mm256_set1_ps(ab.d);
      acc0[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t0), _mm256_mul_ps(_mm256_load_ps(p.d), da), acc0[j]);
      acc1[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t1), _mm256_mul_ps(_mm256_load_ps(p.d + 8), da), acc1[j]);
    }
  }
  for (int j = 0; j < NA; ++j) panel_avx2::storeRow(y[j], acc0[j], acc1[j], nW);
}

// kernels::PanelFn (no activation terms).
inline void gemmAvx2(int64_t n, const void* w, size_t wStride, int nW, const void* a, size_t aStride,
                     const int32_t*, const float*, int64_t nA, float* y, size_t yStride, void* scratch) {
  const int64_t nb = n / kQK_K;
  auto* panel = static_cast<SuperBlock*>(scratch);
  unpack(nb, static_cast<const uint8_t*>(w), wStride, nW, panel);
  constexpr int kRows = 4;
  for (int64_t x0 = 0; x0 < nA; x0 += kRows) {
    const Pass<kRows> p(x0, nA, a, aStride, y, yStride);
    withRowCount<kRows>(p.count, [&](auto rows) { panelRowsAvx2<decltype(rows)::value>(nb, panel, p.a, p.y, nW); });
  }
}

#if defined(__AVX512VNNI__)
// ---- AVX-512 VNNI: a group of sixteen rows is one vector, one vpdpbusd per activation word ----

inline __m512i broadcastQuads(const int8_t* q) {
  int32_t v;
  __builtin_memcpy(&v, q, 4);
  return _mm512_set1_epi32(v);
}

template <int NA>
inline void panelRowsVnni(int64_t nb, const SuperBlock* panel, const BlockQ8_K* const a[NA], float* const y[NA],
                          __mmask16 rowMask) {
  __m512 acc[NA];
  for (int j = 0; j < NA; ++j) acc[j] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const SuperBlock& p = panel[b];
    alignas(64) int32_t offset[NA][16];  // −32·bsum_g of each activation row
    __m512i t[NA];                       // T of the sixteen rows
    for (int j = 0; j < NA; ++j) {
      const __m512i sums = _mm512_cvtepi16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[j][b].bsums)));
      _mm512_store_si512(offset[j], _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sums, 5)));
      t[j] = _mm512_setzero_si512();
    }
    for (int g = 0; g < 16; ++g) {
      __m512i wq[4];
      for (int k = 0; k < 4; ++k) wq[k] = _mm512_load_si512(p.q[4 * g + k]);
      const __m512i scale = _mm512_load_si512(p.scale[g]);
      for (int j = 0; j < NA; ++j) {
        const int8_t* q = a[j][b].qs + 16 * g;
        __m512i s = _mm512_set1_epi32(offset[j][g]);
        for (int k = 0; k < 4; ++k) s = _mm512_dpbusd_epi32(s, wq[k], broadcastQuads(q + 4 * k));
        t[j] = _mm512_add_epi32(t[j], _mm512_mullo_epi32(s, scale));
      }
    }
    const __m512 d = _mm512_load_ps(p.d);
    for (int j = 0; j < NA; ++j) {
      acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t[j]), _mm512_mul_ps(d, _mm512_set1_ps(a[j][b].d)), acc[j]);
    }
  }
  for (int j = 0; j < NA; ++j) _mm512_mask_storeu_ps(y[j], rowMask, acc[j]);
}

// kernels::PanelFn (no activation terms).
inline void gemmVnni(int64_t n, const void* w, size_t wStride, int nW, const void* a, size_t aStride,
                     const int32_t*, const float*, int64_t nA, float* y, size_t yStride, void* scratch) {
  const int64_t nb = n / kQK_K;
  auto* panel = static_cast<SuperBlock*>(scratch);
  unpack(nb, static_cast<const uint8_t*>(w), wStride, nW, panel);
  const __mmask16 rowMask = static_cast<__mmask16>((1u << nW) - 1);
  constexpr int kRows = 8;  // activation rows per pass: 8 float and 8 integer accumulators, 5 panel vectors
  for (int64_t x0 = 0; x0 < nA; x0 += kRows) {
    const Pass<kRows> p(x0, nA, a, aStride, y, yStride);
    withRowCount<kRows>(p.count, [&](auto rows) { panelRowsVnni<decltype(rows)::value>(nb, panel, p.a, p.y, rowMask); });
  }
}
#endif  // __AVX512VNNI__

}  // namespace q6_k_panel
}  // namespace
