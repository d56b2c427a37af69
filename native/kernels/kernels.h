// Internal dispatch of the dot products: one table indexed by weight type. The scalar references
// fill it first; each SIMD source (kernels_avx2.cc, kernels_neon.cc, ...) registers a function that
// checks the CPU it runs on and overwrites the entries it accelerates. The table is built once, on
// the first vecDotFor call, so a SIMD source needs no edit anywhere else: it only adds
//
//   static const kernels::KernelRegistration kAvx2{10, [](kernels::DotTable& t) {
//     if (cpuHasAvx2Fma()) t.set(TensorType::Q4_0, dotQ4_0Q8_0Avx2);
//   }};
//
// Higher priorities run later and so win (NEON+dotprod over plain NEON).
#pragma once
#include <cstddef>
#include <cstdint>

#include "../gguf/tensor_types.h"

namespace kernels {

// TensorType ids are below 31 (BF16 = 30); one slot per id keeps the lookup a plain index.
constexpr size_t kTypeSlots = 31;

struct DotTable {
  VecDotFn byType[kTypeSlots] = {};
  void set(TensorType t, VecDotFn fn) { byType[static_cast<size_t>(t)] = fn; }
  VecDotFn get(TensorType t) const {
    const auto i = static_cast<size_t>(t);
    return i < kTypeSlots ? byType[i] : nullptr;
  }
};

using KernelRegistrar = void (*)(DotTable& table);

// Declared as a namespace-scope static in a SIMD source; the constructor only records the
// registrar (static initialisation order across files does not matter).
struct KernelRegistration {
  KernelRegistration(int priority, KernelRegistrar registrar);
};

// The table of the scalar references alone (what vecDotScalar reads).
const DotTable& scalarTable();
// The scalar table overwritten by every registrar in priority order (what vecDotFor reads).
const DotTable& bestTable();

// The scalar references (kernels_scalar.cc). n is a multiple of the weight's block size; `a` is
// the activation row already converted to traitsOf(weight).dotWith.
float dotF32F32Scalar(int64_t n, const void* w, const void* a);
float dotF16F16Scalar(int64_t n, const void* w, const void* a);
float dotQ4_0Q8_0Scalar(int64_t n, const void* w, const void* a);
float dotQ4_1Q8_1Scalar(int64_t n, const void* w, const void* a);
float dotQ5_0Q8_0Scalar(int64_t n, const void* w, const void* a);
float dotQ5_1Q8_1Scalar(int64_t n, const void* w, const void* a);
float dotQ8_0Q8_0Scalar(int64_t n, const void* w, const void* a);
float dotQ4_KQ8_KScalar(int64_t n, const void* w, const void* a);
float dotQ5_KQ8_KScalar(int64_t n, const void* w, const void* a);
float dotQ6_KQ8_KScalar(int64_t n, const void* w, const void* a);
// The reference of F16RowKernels::weigh: out[i] = Σ_j p[j] · x_j[i] over n fp16 rows `stride`
// bytes apart, i < d, in the order j = 0..n-1 from +0, each term multiplied then added.
void weighF16Scalar(int64_t n, const float* p, const void* rows, size_t stride, int64_t d, float* out);

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K super-block; shared by the
// dequantizer and the dot products so the packing is written down once.
inline void unpackScaleMinK4(int j, const uint8_t* packed, uint8_t* scale, uint8_t* min) {
  if (j < 4) {
    // bytes 0-3 hold the scales of sub-blocks 0-3, bytes 4-7 their mins (low 6 bits each)
    *scale = packed[j] & 63;
    *min = packed[j + 4] & 63;
  } else {
    // bytes 8-11 hold the low 4 bits of sub-blocks 4-7; the high 2 bits sit in the top bits of
    // bytes 0-3 (scales) and 4-7 (mins)
    *scale = (packed[j + 4] & 0x0F) | ((packed[j - 4] >> 6) << 4);
    *min = (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4);
  }
}

// Q4_K/Q5_K quants: qs is read in chunks of 32 bytes; chunk c holds sub-block 2c in its low
// nibbles and 2c+1 in its high nibbles. Q5_K's 5th bit of element 64c + i (i < 32) is bit 2c of
// qh[i], that of element 64c + 32 + i is bit 2c+1. Writes the 256 quants (0..31) in element order;
// qh is null for Q4_K.
inline void unpackQ4Q5K(const uint8_t* qs, const uint8_t* qh, int8_t q[kQK_K]) {
  for (int c = 0; c < kQK_K / 64; ++c) {
    for (int i = 0; i < 32; ++i) {
      const uint8_t byte = qs[32 * c + i];
      q[64 * c + i] = byte & 0x0F;
      q[64 * c + 32 + i] = byte >> 4;
      if (qh) {
        q[64 * c + i] |= ((qh[i] >> (2 * c)) & 1) << 4;
        q[64 * c + 32 + i] |= ((qh[i] >> (2 * c + 1)) & 1) << 4;
      }
    }
  }
}

// Q6_K quants: each half h of 128 elements uses 64 bytes of ql and 32 of qh. Element
// 128h + 32k + i (k = 0..3, i < 32) takes the low nibble of ql[64h + i] (k=0), of ql[64h + 32 + i]
// (k=1), their high nibbles (k=2, 3), and bits 2k..2k+1 of qh[32h + i] as its top two bits.
inline void unpackQ6K(const BlockQ6_K& x, int8_t q[kQK_K]) {
  for (int h = 0; h < 2; ++h) {
    const uint8_t* ql = x.ql + 64 * h;
    const uint8_t* qh = x.qh + 32 * h;
    for (int i = 0; i < 32; ++i) {
      const int low[4] = {ql[i] & 0x0F, ql[i + 32] & 0x0F, ql[i] >> 4, ql[i + 32] >> 4};
      for (int k = 0; k < 4; ++k) {
        q[128 * h + 32 * k + i] = static_cast<int8_t>((low[k] | ((qh[i] >> (2 * k)) & 3) << 4) - 32);
      }
    }
  }
}

}  // namespace kernels
