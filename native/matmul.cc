#include "matmul.h"

#include <vector>

void matmul(ThreadPool& pool, const uint8_t* W, TensorType wType, int64_t rows, int64_t cols, const float* X, int64_t nX,
            float* Y) {
  const TypeTraits& wt = traitsOf(wType);
  const TensorType aType = wt.dotWith;
  const size_t aRowBytes = rowBytes(aType, cols);
  const size_t wRowBytes = rowBytes(wType, cols);
  std::vector<uint8_t> A(aRowBytes * static_cast<size_t>(nX));
  for (int64_t i = 0; i < nX; i++) quantizeRow(aType, X + i * cols, A.data() + i * aRowBytes, cols);
  VecDotFn dot = vecDotFor(wType);
  pool.parallelFor(rows, [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; r++) {
      const uint8_t* w = W + r * wRowBytes;
      for (int64_t i = 0; i < nX; i++) Y[i * rows + r] = dot(cols, w, A.data() + i * aRowBytes);
    }
  });
}
