// The Q4_1 panel (batch) kernels for x86-64: sixteen weight rows, rearranged once per batch into
// the caller's scratch, against every Q8_1 activation row (kernels::PanelFn, no per-batch terms:
// the activation blocks carry d and s = d·Σa). Included by avx2.cc and avx512_vnni.cc; internal
// linkage, so each includer compiles its own copy with its own flags (see ../kernel_table.h).
//
// A Q4_1 weight is d·q + m with q an unsigned nibble: Σ(d·q + m)·(e·a) = d·e·Σq·a + m·s. The
// nibbles go into the unsigned operand as they are (no offset to take off); a row's min m meets
// the activation block's s once per block. Without VNNI the eight groups of a block are summed
// in 16 bits: a slot holds 16 products of at most 15·128, 30720 < 2^15.
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "../../gguf/tensor_types.h"
#include "../kernel_table.h"
#include "../panel_pass.h"
#include "panel_avx2.h"

namespace {
namespace q4_1_panel {

using kernels::kPanelRows;

// Per block: eight groups g (elements 4g..4g+3 in the low nibbles of bytes 4g.., 16+4g.. in the
// high ones) whose 32-bit lane r holds row r's four nibbles (0..15), then the rows' d and m as
// floats. AVX2 reads a group as rows 0-7 and rows 8-15.
struct alignas(64) Block {
  uint8_t q[8][kPanelRows][4];  // [group][row][element]
  float d[kPanelRows];
  float m[kPanelRows];
};
constexpr size_t kBytesPerBlock = sizeof(Block);
static_assert(kBytesPerBlock == 8 * 64 + 128, "the Q4_1 panel's block layout");

inline const BlockQ4_1& blockOf(const uint8_t* row, int64_t b) { return reinterpret_cast<const BlockQ4_1*>(row)[b]; }

// The sixteen rows of a panel into `panel` ([nb] blocks). Rows past nW repeat row nW-1: their
// memory is valid and their lanes are never stored.
inline void unpack(int64_t nb, const uint8_t* w, size_t wStride, int nW, Block* panel) {
  const uint8_t* rows[kPanelRows];
  for (int r = 0; r < kPanelRows; ++r) rows[r] = w + (r < nW ? r : nW - 1) * wStride;
  // The next panel is the one stretch of 16·wStride bytes after this one: fetched in order.
  const char* next = reinterpret_cast<const char*>(w + kPanelRows * wStride);
  const size_t share = kPanelRows * wStride / static_cast<size_t>(nb);
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  for (int64_t b = 0; b < nb; ++b) {
    for (size_t off = 0; off < share; off += 64) _mm_prefetch(next + b * share + off, _MM_HINT_T0);
    Block& out = panel[b];
    const auto quants = [&](int r) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(blockOf(rows[r], b).qs)); };
    for (int h = 0; h < 2; ++h) {
      // Rows 8h+k and 8h+4+k in the two 128-bit lanes of v[k], then a 4×4 transpose of 32-bit
      // words inside each lane: t[g] lane i = row 8h+i's bytes 4g..4g+3.
      __m256i v[4];
      for (int k = 0; k < 4; ++k) v[k] = _mm256_inserti128_si256(_mm256_castsi128_si256(quants(8 * h + k)), quants(8 * h + 4 + k), 1);
      const __m256i u0 = _mm256_unpacklo_epi32(v[0], v[1]), u1 = _mm256_unpackhi_epi32(v[0], v[1]);
      const __m256i u2 = _mm256_unpacklo_epi32(v[2], v[3]), u3 = _mm256_unpackhi_epi32(v[2], v[3]);
      const __m256i t[4] = {_mm256_unpacklo_epi64(u0, u2), _mm256_unpackhi_epi64(u0, u2),
                            _mm256_unpacklo_epi64(u1, u3), _mm256_unpackhi_epi64(u1, u3)};
      for (int g = 0; g < 4; ++g) {
        _mm256_store_si256(reinterpret_cast<__m256i*>(out.q[g][8 * h]), _mm256_and_si256(t[g], low4));
        _mm256_store_si256(reinterpret_cast<__m256i*>(out.q[4 + g][8 * h]),
                           _mm256_and_si256(_mm256_srli_epi32(t[g], 4), low4));
      }
    }
    for (int r = 0; r < kPanelRows; ++r) {
      out.d[r] = _cvtsh_ss(blockOf(rows[r], b).d);
      out.m[r] = _cvtsh_ss(blockOf(rows[r], b).m);
    }
  }
}

template <int kMax>
using Pass = RowsPass<BlockQ8_1, kMax>;  // activation rows [x0, x0 + count)

// ---- AVX2 ----

template <int NA>
inline void panelRowsAvx2(int64_t nb, const Block* panel, const BlockQ8_1* const a[NA], float* const y[NA], int nW) {
  __m256 acc0[NA], acc1[NA];  // rows 0-7, rows 8-15
  for (int j = 0; j < NA; ++j) acc0[j] = acc1[j] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < nb; ++b) {
    const Block& p = panel[b];
#pragma GCC unroll 4
    for (int j = 0; j < NA; ++j) {
      __m256i aq[8];
      panel_avx2::broadcastGroups(a[j][b].qs, aq);
      const __m256 e = _mm256_set1_ps(_cvtsh_ss(a[j][b].d)), s = _mm256_set1_ps(_cvtsh_ss(a[j][b].s));
      const auto half = [&](int h, __m256 acc) {
        __m256i m[8];
        for (int g = 0; g < 8; ++g) {
          m[g] = _mm256_maddubs_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(p.q[g][8 * h])), aq[g]);
        }
        const __m256i sum16 = _mm256_add_epi16(_mm256_add_epi16(_mm256_add_epi16(m[0], m[1]), _mm256_add_epi16(m[2], m[3])),
                                               _mm256_add_epi16(_mm256_add_epi16(m[4], m[5]), _mm256_add_epi16(m[6], m[7])));
        const __m256 sum = _mm256_cvtepi32_ps(_mm256_madd_epi16(sum16, ones));
        acc = _mm256_fmadd_ps(sum, _mm256_mul_ps(_mm256_load_ps(p.d + 8 * h), e), acc);
        return _mm256_fmadd_ps(_mm256_load_ps(p.m + 8 * h), s, acc);
      };
      acc0[j] = half(0, acc0[j]);
      acc1[j] = half(1, acc1[j]);
    }
  }
  for (int j = 0; j < NA; ++j) panel_avx2::storeRow(y[j], acc0[j], acc1[j], nW);
}

// kernels::PanelFn (no activation terms).
inline void gemmAvx2(int64_t n, const void* w, size_t wStride, int nW, const void* a, size_t aStride,
                     const int32_t*, const float*, int64_t nA, float* y, size_t yStride, void* scratch) {
  const int64_t nb = n / kQK;
  auto* panel = static_cast<Block*>(scratch);
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
inline void panelRowsVnni(int64_t nb, const Block* panel, const BlockQ8_1* const a[NA], float* const y[NA],
                          __mmask16 rowMask) {
  __m512 acc[NA];
  for (int j = 0; j < NA; ++j) acc[j] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const Block& p = panel[b];
    __m512i wq[8];
    for (int g = 0; g < 8; ++g) wq[g] = _mm512_load_si512(p.q[g]);
    const __m512 dw = _mm512_load_ps(p.d), mw = _mm512_load_ps(p.m);
    for (int j = 0; j < NA; ++j) {
      const int8_t* q = a[j][b].qs;
      __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
      for (int g = 0; g < 4; ++g) {
        s0 = _mm512_dpbusd_epi32(s0, wq[g], broadcastQuads(q + 4 * g));
        s1 = _mm512_dpbusd_epi32(s1, wq[4 + g], broadcastQuads(q + 16 + 4 * g));
      }
      const __m512 sum = _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1));
      acc[j] = _mm512_fmadd_ps(sum, _mm512_mul_ps(dw, _mm512_set1_ps(_cvtsh_ss(a[j][b].d))), acc[j]);
      acc[j] = _mm512_fmadd_ps(mw, _mm512_set1_ps(_cvtsh_ss(a[j][b].s)), acc[j]);
    }
  }
  for (int j = 0; j < NA; ++j) _mm512_mask_storeu_ps(y[j], rowMask, acc[j]);
}

// kernels::PanelFn (no activation terms).
inline void gemmVnni(int64_t n, const void* w, size_t wStride, int nW, const void* a, size_t aStride,
                     const int32_t*, const float*, int64_t nA, float* y, size_t yStride, void* scratch) {
  const int64_t nb = n / kQK;
  auto* panel = static_cast<Block*>(scratch);
  unpack(nb, static_cast<const uint8_t*>(w), wStride, nW, panel);
  const __mmask16 rowMask = static_cast<__mmask16>((1u << nW) - 1);
  constexpr int kRows = 8;  // activation rows per pass: 8 accumulators + 8 weight vectors
  for (int64_t x0 = 0; x0 < nA; x0 += kRows) {
    const Pass<kRows> p(x0, nA, a, aStride, y, yStride);
    withRowCount<kRows>(p.count, [&](auto rows) { panelRowsVnni<decltype(rows)::value>(nb, panel, p.a, p.y, rowMask); });
  }
}
#endif  // __AVX512VNNI__

}  // namespace q4_1_panel
}  // namespace
