// AVX512_VNNI kernels for x86-64 (Ice Lake, Zen 4 and later). This file alone is compiled with
// -mavx512f -mavx512bw -mavx512vl -mavx512vnni on top of AVX2/FMA/F16C; its functions run only
// after cpuFeatures() said so. It works on 256-bit vectors: vpdpbusd does the unsigned×signed
// byte products and their sum into 32 bits in one instruction (maddubs + madd without VNNI), and
// the EVEX encoding gives 32 vector registers, enough for the sixteen accumulators of a 4×4 tile.
// Everything else falls through to the AVX2 set.
// GCC 12's AVX-512 headers start many intrinsics from a deliberately undefined vector
// (`__m512i __Y = __Y;`), which -Wall then reports as uninitialized once inlined.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "cpu_features.h"
#include "kernels_simd.h"
#include "kernels_x86_q4_0_tile.h"

namespace {

// Two consecutive blocks of one row in one 512-bit vector, lanes (16 bytes each) in the order
// [block i elements 0-15 | block i+1 elements 0-15 | block i elements 16-31 | block i+1 16-31]:
// the weight side is two 16-byte loads, one shift and one mask.
inline __m512i unpackNibblePair(const BlockQ4_0& b0, const BlockQ4_0& b1) {
  const __m256i packed = _mm256_set_m128i(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b1.qs)),
                                          _mm_loadu_si128(reinterpret_cast<const __m128i*>(b0.qs)));
  const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(packed), _mm256_srli_epi16(packed, 4), 1);
  return _mm512_and_si512(both, _mm512_set1_epi8(0x0F));
}

// The activation quants of two consecutive blocks in the lane order of unpackNibblePair.
inline __m512i loadActivationPair(const BlockQ8_0& b0, const BlockQ8_0& b1) {
  const __m512i in = _mm512_inserti64x4(
      _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b0.qs))),
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b1.qs)), 1);  // [0 lo | 0 hi | 1 lo | 1 hi]
  return _mm512_shuffle_i64x2(in, in, _MM_SHUFFLE(3, 1, 2, 0));
}

// fp16 scales of two blocks as [d0 ×4 | d1 ×4 | d0 ×4 | d1 ×4], matching the lanes above.
inline __m512 scalePair(uint16_t d0, uint16_t d1) {
  return _mm512_mask_blend_ps(0xF0F0, _mm512_set1_ps(_cvtsh_ss(d0)), _mm512_set1_ps(_cvtsh_ss(d1)));
}

// The 4 × NA tile of kernels_x86_q4_0_tile.h on 512-bit vectors, two blocks per step: a prompt
// batch is bound by these products, and one vpdpbusd/convert/FMA now covers 64 elements.
template <int NA>
void tileZmm(int64_t n, const uint8_t* w, size_t wStride, const uint8_t* a, size_t aStride, float* out) {
  const BlockQ4_0* x[4];
  for (int r = 0; r < 4; ++r) x[r] = reinterpret_cast<const BlockQ4_0*>(w + r * wStride);
  const BlockQ8_0* y[NA];
  for (int j = 0; j < NA; ++j) y[j] = reinterpret_cast<const BlockQ8_0*>(a + j * aStride);
  const int64_t nb = n / kQK;
  __m512 acc[NA][4];
  for (int j = 0; j < NA; ++j)
    for (int r = 0; r < 4; ++r) acc[j][r] = _mm512_setzero_ps();
  const char* next = reinterpret_cast<const char*>(w + 4 * wStride);  // see tile(): one stream
  int64_t i = 0;
  for (; i + 1 < nb; i += 2) {
    const char* p = next + i * 4 * sizeof(BlockQ4_0);
    _mm_prefetch(p, _MM_HINT_T0);
    _mm_prefetch(p + 64, _MM_HINT_T0);
    _mm_prefetch(p + 128, _MM_HINT_T0);
    __m512i av[NA], bias[NA];
    __m512 da[NA];
    for (int j = 0; j < NA; ++j) {
      av[j] = loadActivationPair(y[j][i], y[j][i + 1]);
      bias[j] = _mm512_sub_epi32(_mm512_setzero_si512(),
                                 _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(8), av[j]));
      da[j] = scalePair(y[j][i].d, y[j][i + 1].d);
    }
    for (int r = 0; r < 4; ++r) {
      const __m512i u = unpackNibblePair(x[r][i], x[r][i + 1]);
      const __m512 dw = scalePair(x[r][i].d, x[r][i + 1].d);
      for (int j = 0; j < NA; ++j) {
        const __m512 sum = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(bias[j], u, av[j]));
        acc[j][r] = _mm512_fmadd_ps(sum, _mm512_mul_ps(dw, da[j]), acc[j][r]);
      }
    }
  }
  for (int j = 0; j < NA; ++j) {
    for (int r = 0; r < 4; ++r) {
      float sum = _mm512_reduce_add_ps(acc[j][r]);
      if (i < nb) {  // an odd last block
        const BlockQ4_0& b = x[r][i];
        const BlockQ8_0& c = y[j][i];
        const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c.qs));
        const __m256 s = _mm256_cvtepi32_ps(q4_0_tile::biasedDot(q4_0_tile::activationBias(av), q4_0_tile::unpackNibbles(b.qs), av));
        sum += q4_0_tile::tileHorizontalSum(_mm256_mul_ps(s, _mm256_set1_ps(_cvtsh_ss(b.d) * _cvtsh_ss(c.d))));
      }
      out[j * 4 + r] = sum;
    }
  }
}

void dotQ4_0TileAvx512Vnni(int64_t n, const void* w, size_t wStride, const void* a, size_t aStride, int nA, float* out) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* ab = static_cast<const uint8_t*>(a);
  switch (nA) {
    case 1: tileZmm<1>(n, wb, wStride, ab, aStride, out); break;
    case 2: tileZmm<2>(n, wb, wStride, ab, aStride, out); break;
    case 3: tileZmm<3>(n, wb, wStride, ab, aStride, out); break;
    default: tileZmm<4>(n, wb, wStride, ab, aStride, out); break;
  }
}

bool avx512VnniRunsHere() { return cpuFeatures().avx512Vnni; }
}  // namespace

const SimdKernelSet kAvx512VnniKernels = {
    "avx512-vnni", avx512VnniRunsHere, q4_0_tile::dotRow, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
    nullptr,       nullptr,            dotQ4_0TileAvx512Vnni,
};
