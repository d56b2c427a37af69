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
  const MatmulTarget target{W, wType, rows, Y};
  matmulGroup(pool, &target, 1, cols, X, nX);
}

void matmulGroup(ThreadPool& pool, const MatmulTarget* targets, int count, int64_t cols, const float* X, int64_t nX) {
  constexpr int kMaxTargets = 4;
  if (count < 1 || count > kMaxTargets) throw std::invalid_argument("matmulGroup: 1 to 4 targets");
  const DotQ4_0TileFn dotQ4_0Tile = bestSimdDotQ4_0Tile();
  struct Prepared {
    VecDotFn dot;
    DotQ4_0TileFn tile; // four weight rows × up to four activation rows, or nullptr
    size_t wRowBytes, aRowBytes;
    const uint8_t* A;   // [nX][aRowBytes]: the activations in this weight's dotWith format
    int64_t firstRow;   // of this target in the group's row space
  } prepared[kMaxTargets];

  // One converted copy of X per distinct dot format (F32 weights use X as is).
  thread_local std::vector<uint8_t> scratch[kMaxTargets];
  TensorType converted[kMaxTargets];
  const uint8_t* convertedRows[kMaxTargets];
  int nConverted = 0;
  int64_t totalRows = 0;
  for (int i = 0; i < count; i++) {
    const MatmulTarget& t = targets[i];
    const TypeTraits& wTraits = traitsOf(t.type);
    if (!wTraits.computable || cols % wTraits.blockSize != 0) {
      throw std::invalid_argument(std::string("matmul: cannot multiply ") + wTraits.name + " rows of " +
                                  std::to_string(cols));
    }
    const TensorType aType = wTraits.dotWith;
    Prepared& p = prepared[i];
    p.dot = vecDotFor(t.type);
    p.tile = t.type == TensorType::Q4_0 ? dotQ4_0Tile : nullptr;
    p.wRowBytes = rowBytes(t.type, cols);
    p.aRowBytes = rowBytes(aType, cols);
    p.firstRow = totalRows;
    totalRows += t.rows;
    p.A = reinterpret_cast<const uint8_t*>(X);
    if (aType == TensorType::F32) continue;
    int k = 0;
    while (k < nConverted && converted[k] != aType) k++;
    if (k == nConverted) {
      scratch[k].resize(static_cast<size_t>(nX) * p.aRowBytes);
      convertActivations(pool, aType, X, nX, cols, scratch[k].data(), p.aRowBytes);
      converted[k] = aType;
      convertedRows[k] = scratch[k].data();
      nConverted++;
    }
    p.A = convertedRows[k];
  }

  pool.parallelFor(totalRows, [&](int64_t begin, int64_t end, int) {
    // The chunk may span targets: walk it target by target.
    for (int i = 0; i < count; i++) {
      const Prepared& p = prepared[i];
      const MatmulTarget& t = targets[i];
      const int64_t rBegin = std::max(begin, p.firstRow) - p.firstRow;
      const int64_t rEnd = std::min(end, p.firstRow + t.rows) - p.firstRow;
      for (int64_t x0 = 0; x0 < nX; x0 += kActivationTile) {
        const int64_t x1 = std::min(nX, x0 + kActivationTile);
        int64_t r = rBegin;
        if (p.tile) {
          // Four weight rows at a time against every activation row of the tile, four by four.
          for (; r + 4 <= rEnd; r += 4) {
            const uint8_t* w = t.W + r * p.wRowBytes;  // [4][wRowBytes]
            for (int64_t x = x0; x < x1; x += 4) {
              const int nA = static_cast<int>(std::min<int64_t>(4, x1 - x));
              float out[16];  // [nA][4]
              p.tile(cols, w, p.wRowBytes, p.A + x * p.aRowBytes, p.aRowBytes, nA, out);
              for (int j = 0; j < nA; j++)
                for (int k = 0; k < 4; k++) t.Y[(x + j) * t.rows + r + k] = out[j * 4 + k];
            }
          }
        }
        for (; r < rEnd; ++r) {
          const uint8_t* w = t.W + r * p.wRowBytes;  // [wRowBytes]
          if (r + 1 < rEnd) {
            // The next row's first lines: the hardware prefetcher starts each stream late.
            __builtin_prefetch(w + p.wRowBytes);
            __builtin_prefetch(w + p.wRowBytes + 64);
          }
          for (int64_t x = x0; x < x1; ++x) t.Y[x * t.rows + r] = p.dot(cols, w, p.A + x * p.aRowBytes);
        }
      }
    }
  }, kMinRowsPerChunk);
}
