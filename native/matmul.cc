#include "matmul.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "kernels_simd.h"
#include "thread_pool.h"

namespace {

// Activation rows per pass over a weight row: their quantized rows (≈ 4.5 KB each for 4096
// columns in Q8_0) stay in L2 while the weight rows of a chunk are streamed past them once.
constexpr int64_t kActivationTile = 32;
// Weight rows per claimed chunk at least: keeps the claim counter cold and the stream long.
constexpr int64_t kMinRowsPerChunk = 16;

void convertActivations(ThreadPool& pool, TensorType aType, const float* X, int64_t nX, int64_t cols,
                        uint8_t* A, size_t aRowBytes) {
  QuantizeRowFn fast = aType == TensorType::Q8_0 ? bestSimdQuantizeRowQ8_0() : nullptr;
  auto convertRows = [&](int64_t begin, int64_t end, int) {
    for (int64_t x = begin; x < end; ++x) {
      if (fast) {
        fast(X + x * cols, A + x * aRowBytes, cols);
      } else {
        quantizeRow(aType, X + x * cols, A + x * aRowBytes, cols);
      }
    }
  };
  // One row (decode) is a few microseconds of work: waking the pool would cost more.
  if (nX < 4) {
    convertRows(0, nX, 0);
  } else {
    pool.parallelFor(nX, convertRows);
  }
}

}  // namespace

void matmul(ThreadPool& pool, const uint8_t* W, TensorType wType, int64_t rows, int64_t cols,
            const float* X, int64_t nX, float* Y) {
  const TypeTraits& wTraits = traitsOf(wType);
  if (!wTraits.computable || cols % wTraits.blockSize != 0) {
    throw std::invalid_argument(std::string("matmul: cannot multiply ") + wTraits.name + " rows of " +
                                std::to_string(cols));
  }
  const TensorType aType = wTraits.dotWith;
  const VecDotFn dot = vecDotFor(wType);
  const size_t wRowBytes = rowBytes(wType, cols);
  const size_t aRowBytes = rowBytes(aType, cols);

  // A[nX][aRowBytes]: the activations in the weight's dotWith format. F32 weights use X as is.
  const uint8_t* A = reinterpret_cast<const uint8_t*>(X);
  thread_local std::vector<uint8_t> scratch;
  if (aType != TensorType::F32) {
    scratch.resize(static_cast<size_t>(nX) * aRowBytes);
    convertActivations(pool, aType, X, nX, cols, scratch.data(), aRowBytes);
    A = scratch.data();
  }

  pool.parallelFor(rows, [&](int64_t begin, int64_t end, int) {
    for (int64_t x0 = 0; x0 < nX; x0 += kActivationTile) {
      const int64_t x1 = std::min(nX, x0 + kActivationTile);
      for (int64_t r = begin; r < end; ++r) {
        const uint8_t* w = W + r * wRowBytes;  // [wRowBytes]
        if (r + 1 < end) {
          // The next row's first lines: the hardware prefetcher starts each stream late.
          __builtin_prefetch(w + wRowBytes);
          __builtin_prefetch(w + wRowBytes + 64);
        }
        for (int64_t x = x0; x < x1; ++x) Y[x * rows + r] = dot(cols, w, A + x * aRowBytes);
      }
    }
  }, kMinRowsPerChunk);
}
