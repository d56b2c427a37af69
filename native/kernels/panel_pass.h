// One pass of a panel kernel (kernels::PanelFn) over up to kMax activation rows: where a Q4_0
// pass's quants, activation terms and results are, and the call of a pass's kernel instantiated
// for its row count. Included by each ISA source that has a panel kernel;
// the anonymous namespace gives every including file its own copy, compiled with its own flags
// (see the rule in kernel_table.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "../gguf/tensor_types.h"

namespace {

template <int kMax>
struct PanelPass {
  int count;                 // activation rows in this pass, 1..kMax
  const BlockQ8_0* a[kMax];  // [count] rows of n/32 blocks
  const int32_t* bias[kMax]; // [count] rows of aBias
  const float* scale[kMax];  // [count] rows of aScale
  float* y[kMax];            // [count] result rows (y + x·yStride)

  // Rows x0 .. min(x0 + kMax, nA) of the kernel's arguments.
  PanelPass(int64_t x0, int64_t nA, int64_t nb, const void* activations, size_t aStride, const int32_t* aBias,
            const float* aScale, float* results, size_t yStride)
      : count(static_cast<int>(nA - x0 < kMax ? nA - x0 : kMax)) {
    for (int j = 0; j < count; ++j) {
      a[j] = reinterpret_cast<const BlockQ8_0*>(static_cast<const uint8_t*>(activations) + (x0 + j) * aStride);
      bias[j] = aBias + (x0 + j) * nb;
      scale[j] = aScale + (x0 + j) * nb;
      y[j] = results + (x0 + j) * yStride;
    }
  }
};

// Activation rows [x0, x0 + count) of a panel kernel whose passes need only the rows (of Block:
// BlockQ8_1, BlockQ8_K) and where their results go.
template <class Block, int kMax>
struct RowsPass {
  int count;             // activation rows in this pass, 1..kMax
  const Block* a[kMax];  // [count] activation rows
  float* y[kMax];        // [count] result rows (y + x·yStride)
  RowsPass(int64_t x0, int64_t nA, const void* activations, size_t aStride, float* results, size_t yStride)
      : count(static_cast<int>(nA - x0 < kMax ? nA - x0 : kMax)) {
    for (int j = 0; j < count; ++j) {
      a[j] = reinterpret_cast<const Block*>(static_cast<const uint8_t*>(activations) + (x0 + j) * aStride);
      y[j] = results + (x0 + j) * yStride;
    }
  }
};

// f(std::integral_constant<int, count>{}) for 1 <= count <= kMax (count > kMax: kMax), so that a
// pass over `count` activation rows runs the kernel unrolled for exactly that many: the one
// switch every panel kernel's driver would otherwise write out.
template <int kMax, int N = 1, class F>
inline void withRowCount(int count, F&& f) {
  if constexpr (N == kMax) {
    f(std::integral_constant<int, N>{});
  } else if (count == N) {
    f(std::integral_constant<int, N>{});
  } else {
    withRowCount<kMax, N + 1>(count, f);
  }
}

}  // namespace
