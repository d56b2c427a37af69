// The bit packing of the K formats' super-blocks (ggml-common.h), written down once for the
// dequantizers (tensor_types.cc) and the scalar reference dot products (kernels/scalar.cc).
// Baseline code only: the SIMD sources unpack in registers their own way and must not include
// this header (an inline function compiled with their flags could end up shared with baseline
// callers, see kernels/kernel_table.h).
#pragma once
#include <cstdint>

#include "tensor_types.h"

namespace k_quants {

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K super-block.
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

// Q2_K/Q3_K quants: element 128h + 32k + i (k = 0..3, i < 32) is bits 2k..2k+1 of qs[32h + i].
// Q3_K adds a third bit, bit e/32 of hmask[e % 32] for element e: set keeps the two bits (0..3),
// clear takes 4 off them (-4..-1). Writes the 256 quants in element order; hmask is null for Q2_K.
inline void unpackQ2Q3K(const uint8_t* qs, const uint8_t* hmask, int8_t q[kQK_K]) {
  for (int e = 0; e < kQK_K; ++e) {
    const int h = e / 128, k = (e % 128) / 32, i = e % 32;
    int v = (qs[32 * h + i] >> (2 * k)) & 3;
    if (hmask && !((hmask[i] >> (e / 32)) & 1)) v -= 4;
    q[e] = static_cast<int8_t>(v);
  }
}

// Q3_K's sixteen 6-bit scales, each stored plus 32: the low nibble of group g is byte g's low
// nibble (g < 8) or byte g-8's high one, its top two bits are bits 2·(g/4).. of byte 8 + g%4.
inline void unpackScalesQ3K(const uint8_t* packed, int scale[16]) {
  for (int g = 0; g < 16; ++g) {
    const int low = g < 8 ? packed[g] & 0x0F : packed[g - 8] >> 4;
    const int high = (packed[8 + g % 4] >> (2 * (g / 4))) & 3;
    scale[g] = (low | high << 4) - 32;
  }
}

}  // namespace k_quants
