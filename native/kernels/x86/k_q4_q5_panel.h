// The Q4_K and Q5_K panel products for x86-64 (kernels::PanelFn): sixteen weight rows, still in
// GGUF's own super-block layout in the mapped file, rearranged once per batch into per-thread
// scratch, then every activation row (Q8_K) multiplied against them. Included by avx2.cc and
// avx512_vnni.cc; everything here has internal linkage, so every including file keeps its own
// copy compiled with its own flags (see the rule in ../kernel_table.h).
//
// Both formats unpack to one shape (as the arm64 K panels do): unsigned quants u (0..15, or 0..31
// with Q5_K's fifth bit) and per sub-block of 32 elements an integer scale s_j and min m_j, so that
// a super-block of weight row r against activation row x is
//
//   d_r·d_x·Σ_j s_j·Σ_{i∈j} u_i·a_i  −  dmin_r·d_x·Σ_j m_j·(bsum_2j + bsum_2j+1)
//
// with the activation's bsums (sums of 16 quants) carrying the mins. The quants of a group of four
// elements of all sixteen rows are one 64-byte vector (32-bit lane r = row r), so the activation
// side of a group is its four bytes broadcast, shared by the sixteen rows: no horizontal sums.
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../../gguf/tensor_types.h"
#include "../kernel_table.h"
#include "../panel_pass.h"
#include "panel_avx2.h"

namespace {
namespace k_panel {

using kernels::kPanelRows;

// One super-block of the panel's sixteen rows. The AVX2 kernels read each 64-byte row of it as
// two halves (rows 0-7, rows 8-15).
struct alignas(64) PanelBlock {
  uint8_t q[64][kPanelRows][4];     // group G: row r's quants of elements 4G..4G+3, unsigned
  int16_t scale[8][kPanelRows][2];  // sub-block j: row r's 6-bit scale, twice (a 16-bit pair)
  int16_t min[8][kPanelRows][2];    // sub-block j: row r's 6-bit min, twice
  float d[kPanelRows];              // row r's super-block scale
  float dmin[kPanelRows];           // and its scale of the mins
};
static_assert(sizeof(PanelBlock) == 5248, "the K panel's block layout");
constexpr size_t kBytesPerBlock = sizeof(PanelBlock);

// Offsets inside a GGUF super-block: d, dmin and the 12 scale bytes are its first 16 bytes in
// both formats; Q5_K's 32 bytes of fifth bits come before the 128 bytes of nibbles.
template <bool kQ5>
struct Format {
  static constexpr size_t kBlockBytes = kQ5 ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
  static constexpr size_t kQh = 16;
  static constexpr size_t kQs = kQ5 ? 48 : 16;
};

// The sixteen weight rows of one panel, rearranged super-block by super-block.
template <bool kQ5>
class PanelSource {
 public:
  // Rows past nW (the last panel of a matrix whose rows are not a multiple of sixteen) repeat
  // row nW-1: their memory is valid, and their lanes are never stored.
  PanelSource(int64_t nb, const uint8_t* w, size_t wStride, int nW) : nb_(nb) {
    for (int r = 0; r < kPanelRows; ++r) rows_[r] = w + (r < nW ? r : nW - 1) * wStride;
  }

  void block(int64_t b, PanelBlock* out) const {
    // Sixteen side-by-side streams, which the hardware prefetcher follows poorly, read while
    // the batch's activations stream through the caches: each row's super-block kAhead further
    // on is fetched here. (Fetching the next panel instead, as the Q4_0 panels do, left the
    // loads of this one waiting on memory: the activations evict it before its turn.)
    if (b + kAhead < nb_) {
      const size_t ahead = static_cast<size_t>(b + kAhead) * Format<kQ5>::kBlockBytes;
      for (int r = 0; r < kPanelRows; ++r) {
        const char* p = reinterpret_cast<const char*>(rows_[r] + ahead);
        for (size_t off = 0; off < Format<kQ5>::kBlockBytes; off += 64) _mm_prefetch(p + off, _MM_HINT_T0);
        _mm_prefetch(p + Format<kQ5>::kBlockBytes - 1, _MM_HINT_T0);  // the block may end in a further line
      }
    }
    const size_t base = static_cast<size_t>(b) * Format<kQ5>::kBlockBytes;
    for (int h = 0; h < 2; ++h) {
      __m256i t[4];
      words(h, base, t);  // t[0]: d | dmin << 16, t[1..3]: scale bytes 0-3, 4-7, 8-11
      scalesAndMins(h, t, out);
      __m256i hw[8];  // Q5_K: hw[k] lane r = row r's fifth-bit bytes 4k..4k+3
      if (kQ5) {
        words(h, base + Format<kQ5>::kQh, hw);
        words(h, base + Format<kQ5>::kQh + 16, hw + 4);
      }
      const __m256i low4 = _mm256_set1_epi8(0x0F), bit0 = _mm256_set1_epi8(1);
      for (int k16 = 0; k16 < 8; ++k16) {  // 16 bytes of nibbles: words 4·k16 .. 4·k16+3
        words(h, base + Format<kQ5>::kQs + 16 * k16, t);
        const int c = k16 / 2;  // the 32-byte chunk: sub-blocks 2c (low nibbles) and 2c+1 (high)
        for (int g = 0; g < 4; ++g) {
          const int k = 4 * (k16 % 2) + g;  // word k of chunk c: elements 64c+4k.. and 64c+32+4k..
          __m256i lo = _mm256_and_si256(t[g], low4);
          __m256i hi = _mm256_and_si256(_mm256_srli_epi32(t[g], 4), low4);
          if (kQ5) {
            // Bit 2c of byte i of qh is the fifth bit of element 64c+i, bit 2c+1 that of 64c+32+i;
            // the 32-bit shifts carry bits across bytes only into positions the mask drops.
            lo = _mm256_or_si256(lo, _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(hw[k], 2 * c), bit0), 4));
            hi = _mm256_or_si256(hi, _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(hw[k], 2 * c + 1), bit0), 4));
          }
          _mm256_store_si256(reinterpret_cast<__m256i*>(out->q[16 * c + k][8 * h]), lo);
          _mm256_store_si256(reinterpret_cast<__m256i*>(out->q[16 * c + 8 + k][8 * h]), hi);
        }
      }
    }
  }

 private:
  // t[g] lane e = row 8h+e's 32-bit word at byte offset off + 4g of its row: rows 8h+k and
  // 8h+4+k in the two 128-bit lanes of a[k], then a 4×4 transpose of words inside each lane.
  void words(int h, size_t off, __m256i t[4]) const {
    __m256i a[4];
    for (int k = 0; k < 4; ++k) {
      a[k] = _mm256_inserti128_si256(_mm256_castsi128_si256(load16(rows_[8 * h + k] + off)),
                                     load16(rows_[8 * h + 4 + k] + off), 1);
    }
    const __m256i u0 = _mm256_unpacklo_epi32(a[0], a[1]), u1 = _mm256_unpackhi_epi32(a[0], a[1]);
    const __m256i u2 = _mm256_unpacklo_epi32(a[2], a[3]), u3 = _mm256_unpackhi_epi32(a[2], a[3]);
    t[0] = _mm256_unpacklo_epi64(u0, u2);
    t[1] = _mm256_unpackhi_epi64(u0, u2);
    t[2] = _mm256_unpacklo_epi64(u1, u3);
    t[3] = _mm256_unpackhi_epi64(u1, u3);
  }

  static __m128i load16(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }

  // The eight 6-bit scales and mins of rows 8h..8h+7 (k_quants.h's unpackScaleMinK4, lane-wise)
  // as 16-bit pairs, and d, dmin as floats.
  static void scalesAndMins(int h, const __m256i t[4], PanelBlock* out) {
    const __m256i six = _mm256_set1_epi32(63), four = _mm256_set1_epi32(0x0F), two = _mm256_set1_epi32(3);
    const auto pair = [](__m256i v) { return _mm256_or_si256(v, _mm256_slli_epi32(v, 16)); };
    const auto put = [&](int16_t (*dst)[kPanelRows][2], int j, __m256i v) {
      _mm256_store_si256(reinterpret_cast<__m256i*>(dst[j][8 * h]), pair(v));
    };
    for (int j = 0; j < 4; ++j) {
      const int s = 8 * j;
      put(out->scale, j, _mm256_and_si256(_mm256_srli_epi32(t[1], s), six));
      put(out->min, j, _mm256_and_si256(_mm256_srli_epi32(t[2], s), six));
      put(out->scale, 4 + j,
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(t[3], s), four),
                          _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(t[1], s + 6), two), 4)));
      put(out->min, 4 + j,
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(t[3], s + 4), four),
                          _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(t[2], s + 6), two), 4)));
    }
    // Per 128-bit lane: the four d halves into bytes 0-7, the dmin halves into bytes 8-15; the
    // permute then puts the eight d in the low lane and the eight dmin in the high one.
    const __m256i split = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15,
                                           0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
    const __m256i halves = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(t[0], split), _MM_SHUFFLE(3, 1, 2, 0));
    _mm256_store_ps(out->d + 8 * h, _mm256_cvtph_ps(_mm256_castsi256_si128(halves)));
    _mm256_store_ps(out->dmin + 8 * h, _mm256_cvtph_ps(_mm256_extracti128_si256(halves, 1)));
  }

  static constexpr int64_t kAhead = 2;  // super-blocks
  const uint8_t* rows_[kPanelRows];
  int64_t nb_;
};

// The whole panel into scratch, nb super-blocks.
template <bool kQ5>
void unpackPanel(int64_t nb, const void* w, size_t wStride, int nW, PanelBlock* panel) {
  const PanelSource<kQ5> source(nb, static_cast<const uint8_t*>(w), wStride, nW);
  for (int64_t b = 0; b < nb; ++b) source.block(b, panel + b);
}

inline int32_t load32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)

// NA activation rows against the panel, on 512-bit vectors: per sub-block the eight group vectors
// stay in registers while every activation row takes eight vpdpbusd (exact: 32-bit sums), then
// one multiply by the scales; the mins go through vpdpwssd against the activation's bsum pairs.
template <int NA>
void panelRows(int64_t nb, const PanelBlock* panel, const BlockQ8_K* const a[NA], float* const y[NA], __mmask16 rowMask) {
  __m512 acc[NA];
  for (int x = 0; x < NA; ++x) acc[x] = _mm512_setzero_ps();
  const __m512i low16 = _mm512_set1_epi32(0xFFFF);
  for (int64_t b = 0; b < nb; ++b) {
    const PanelBlock& p = panel[b];
    __m512i isum[NA];
    for (int x = 0; x < NA; ++x) isum[x] = _mm512_setzero_si512();
    for (int j = 0; j < 8; ++j) {
      __m512i wq[8];
      for (int g = 0; g < 8; ++g) wq[g] = _mm512_load_si512(p.q[8 * j + g]);
      const __m512i scale = _mm512_and_si512(_mm512_load_si512(p.scale[j]), low16);
#pragma GCC unroll 8
      for (int x = 0; x < NA; ++x) {
        const int8_t* q = a[x][b].qs + 32 * j;
        __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
        for (int g = 0; g < 4; ++g) {
          s0 = _mm512_dpbusd_epi32(s0, wq[g], _mm512_set1_epi32(load32(q + 4 * g)));
          s1 = _mm512_dpbusd_epi32(s1, wq[4 + g], _mm512_set1_epi32(load32(q + 16 + 4 * g)));
        }
        isum[x] = _mm512_add_epi32(isum[x], _mm512_mullo_epi32(_mm512_add_epi32(s0, s1), scale));
      }
    }
    const __m512 d = _mm512_load_ps(p.d), dmin = _mm512_load_ps(p.dmin);
#pragma GCC unroll 8
    for (int x = 0; x < NA; ++x) {
      const BlockQ8_K& ax = a[x][b];
      __m512i imin = _mm512_setzero_si512();
      for (int j = 0; j < 8; ++j) {
        imin = _mm512_dpwssd_epi32(imin, _mm512_load_si512(p.min[j]), _mm512_set1_epi32(load32(ax.bsums + 2 * j)));
      }
      const __m512 da = _mm512_set1_ps(ax.d);
      acc[x] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[x]), _mm512_mul_ps(d, da), acc[x]);
      acc[x] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(imin), _mm512_mul_ps(dmin, da), acc[x]);
    }
  }
  for (int x = 0; x < NA; ++x) _mm512_mask_storeu_ps(y[x], rowMask, acc[x]);
}

template <bool kQ5>
void gemm(int64_t n, const void* w, size_t wStride, int nW, const void* a, size_t aStride, const int32_t*,
          const float*, int64_t nA, float* y, size_t yStride, void* scratch) {
  const int64_t nb = n / kQK_K;
  auto* panel = static_cast<PanelBlock*>(scratch);
  unpackPanel<kQ5>(nb, w, wStride, nW, panel);
  const __mmask16 rowMask = static_cast<__mmask16>((1u << nW) - 1);
  constexpr int kRows = 8;  // activation rows per pass: 8 sums, 8 accumulators, 8 group vectors
  for (int64_t x0 = 0; x0 < nA; x0 += kRows) {
    const RowsPass<BlockQ8_K, kRows> p(x0, nA, a, aStride, y, yStride);
    withRowCount<kRows>(p.count, [&](auto n) { panelRows<decltype(n)::value>(nb, panel, p.a, p.y, rowMask); });
  }
}

#else

// One super-block of one activation row against the panel, into acc (rows 0-7, rows 8-15).
// maddubs leaves two products of a row in each 16-bit half of its lane; a sub-block's eight groups
// are summed in 16 bits (Q4_K: 16 products of at most 15·128, 30720 < 2^15) before the madd by the
// scale pair widens them; Q5_K's quants reach 31, so its groups go to the madd four at a time
// (8·31·128 = 31744).
template <bool kQ5>
inline void superBlock(const PanelBlock& p, const BlockQ8_K& ax, __m256 acc[2]) {
  __m256i isum[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
  for (int j = 0; j < 8; ++j) {
    __m256i aq[8];
    panel_avx2::broadcastGroups(ax.qs + 32 * j, aq);
    for (int h = 0; h < 2; ++h) {
      __m256i m[8];
      for (int g = 0; g < 8; ++g) {
        m[g] = _mm256_maddubs_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(p.q[8 * j + g][8 * h])), aq[g]);
      }
      const __m256i scale = _mm256_load_si256(reinterpret_cast<const __m256i*>(p.scale[j][8 * h]));
      const __m256i s0 = _mm256_add_epi16(_mm256_add_epi16(m[0], m[1]), _mm256_add_epi16(m[2], m[3]));
      const __m256i s1 = _mm256_add_epi16(_mm256_add_epi16(m[4], m[5]), _mm256_add_epi16(m[6], m[7]));
      if (kQ5) {
        isum[h] = _mm256_add_epi32(isum[h], _mm256_add_epi32(_mm256_madd_epi16(s0, scale), _mm256_madd_epi16(s1, scale)));
      } else {
        isum[h] = _mm256_add_epi32(isum[h], _mm256_madd_epi16(_mm256_add_epi16(s0, s1), scale));
      }
    }
  }
  const __m256 da = _mm256_set1_ps(ax.d);
  for (int h = 0; h < 2; ++h) {
    __m256i imin = _mm256_setzero_si256();
    for (int j = 0; j < 8; ++j) {
      const __m256i mins = _mm256_load_si256(reinterpret_cast<const __m256i*>(p.min[j][8 * h]));
      imin = _mm256_add_epi32(imin, _mm256_madd_epi16(mins, _mm256_set1_epi32(load32(ax.bsums + 2 * j))));
    }
    acc[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[h]), _mm256_mul_ps(_mm256_load_ps(p.d + 8 * h), da), acc[h]);
    acc[h] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(imin), _mm256_mul_ps(_mm256_load_ps(p.dmin + 8 * h), da), acc[h]);
  }
}

template <bool kQ5>
void gemm(int64_t n, const void* w, size_t wStride, int nW, const void* a, size_t aStride, const int32_t*,
          const float*, int64_t nA, float* y, size_t yStride, void* scratch) {
  const int64_t nb = n / kQK_K;
  auto* panel = static_cast<PanelBlock*>(scratch);
  unpackPanel<kQ5>(nb, w, wStride, nW, panel);
  // Activation rows per pass: each super-block of the panel (5 KB) is read from L1 by all of them.
  constexpr int kRows = 4;
  for (int64_t x0 = 0; x0 < nA; x0 += kRows) {
    const int count = static_cast<int>(nA - x0 < kRows ? nA - x0 : kRows);
    const BlockQ8_K* rows[kRows];
    __m256 acc[kRows][2];
    for (int x = 0; x < count; ++x) {
      rows[x] = reinterpret_cast<const BlockQ8_K*>(static_cast<const uint8_t*>(a) + (x0 + x) * aStride);
      acc[x][0] = acc[x][1] = _mm256_setzero_ps();
    }
    for (int64_t b = 0; b < nb; ++b) {
      for (int x = 0; x < count; ++x) superBlock<kQ5>(panel[b], rows[x][b], acc[x]);
    }
    for (int x = 0; x < count; ++x) panel_avx2::storeRow(y + (x0 + x) * yStride, acc[x][0], acc[x][1], nW);
  }
}

#endif

}  // namespace k_panel
}  // namespace
