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
// Weight rows per claimed chunk at least: keeps claims rare and the stream long.
constexpr int64_t kMinRowsPerChunk = 16;
// Batches of at least this many activation rows go through the Q4_0 panel kernel. One row
// (decode) streams its weights best through the decode rows kernel (eight rows at a time) or the
// 4-row tile; from two rows on the panel is as fast or faster (7B-shaped Q4_0, 2 threads:
// decode() of 3 rows 131 → 113 ms).
constexpr int64_t kPanelMinActivationRows = 2;

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

// Weight rows [rBegin, rEnd) of t against every activation row, sixteen rows per panel.
void multiplyPanels(GemmQ4_0Fn panel, const MatmulTarget& t, int64_t cols, size_t wRowBytes, const uint8_t* A,
                    size_t aRowBytes, const int32_t* aBias, const float* aScale, int64_t nX, int64_t rBegin,
                    int64_t rEnd) {
  const int64_t nb = cols / kQK;
  // The unpacked panel: 576 bytes per block (72 KB for 4096 columns), in L2 for the whole batch.
  thread_local std::vector<uint8_t> unpacked;
  const size_t bytes = static_cast<size_t>(nb) * kQ4_0PanelBytesPerBlock + 64;
  if (unpacked.size() < bytes) unpacked.resize(bytes);
  void* aligned = unpacked.data() + (64 - reinterpret_cast<uintptr_t>(unpacked.data()) % 64) % 64;
  for (int64_t r = rBegin; r < rEnd; r += kQ4_0PanelRows) {
    const int nW = static_cast<int>(std::min<int64_t>(kQ4_0PanelRows, rEnd - r));
    panel(cols, t.W + r * wRowBytes, wRowBytes, nW, A, aRowBytes, aBias, aScale, nX, t.Y + r,
          static_cast<size_t>(t.rows), aligned);
  }
}

// Weight rows [rBegin, rEnd) of t against every activation row: eight rows at a time through the
// decode kernel (given only when nX is 1) where there is one, four at a time through the tile
// kernel where there is one, then one by one.
void multiplyRows(VecDotFn dot, DotQ4_0TileFn tile, DotQ4_0RowsFn decodeRows, const MatmulTarget& t, int64_t cols,
                  size_t wRowBytes, const uint8_t* A, size_t aRowBytes, int64_t nX, int64_t rBegin, int64_t rEnd) {
  for (int64_t x0 = 0; x0 < nX; x0 += kActivationTile) {
    const int64_t x1 = std::min(nX, x0 + kActivationTile);
    int64_t r = rBegin;
    if (decodeRows) {
      for (; r + kQ4_0RowsPerCall <= rEnd; r += kQ4_0RowsPerCall) {
        float out[kQ4_0RowsPerCall];
        decodeRows(cols, t.W + r * wRowBytes, wRowBytes, A + x0 * aRowBytes, out);
        for (int k = 0; k < kQ4_0RowsPerCall; k++) t.Y[x0 * t.rows + r + k] = out[k];
      }
    }
    if (tile) {
      // Four weight rows at a time against every activation row of the tile, four by four.
      for (; r + 4 <= rEnd; r += 4) {
        const uint8_t* w = t.W + r * wRowBytes;  // [4][wRowBytes]
        for (int64_t x = x0; x < x1; x += 4) {
          const int nA = static_cast<int>(std::min<int64_t>(4, x1 - x));
          float out[16];  // [nA][4]
          tile(cols, w, wRowBytes, A + x * aRowBytes, aRowBytes, nA, out);
          for (int j = 0; j < nA; j++)
            for (int k = 0; k < 4; k++) t.Y[(x + j) * t.rows + r + k] = out[j * 4 + k];
        }
      }
    }
    for (; r < rEnd; ++r) {
      const uint8_t* w = t.W + r * wRowBytes;  // [wRowBytes]
      if (r + 1 < rEnd) {
        // The next row's first lines: the hardware prefetcher starts each stream late.
        __builtin_prefetch(w + wRowBytes);
        __builtin_prefetch(w + wRowBytes + 64);
      }
      for (int64_t x = x0; x < x1; ++x) t.Y[x * t.rows + r] = dot(cols, w, A + x * aRowBytes);
    }
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
  const DotQ4_0RowsFn dotQ4_0Rows = nX == 1 ? bestSimdDotQ4_0Rows() : nullptr;
  const GemmQ4_0Fn gemmQ4_0 = nX >= kPanelMinActivationRows ? bestSimdGemmQ4_0() : nullptr;
  struct Prepared {
    VecDotFn dot;
    DotQ4_0TileFn tile; // four weight rows × up to four activation rows, or nullptr
    DotQ4_0RowsFn rows; // eight weight rows × the one activation row of a decode step, or nullptr
    GemmQ4_0Fn panel;   // sixteen weight rows × every activation row, or nullptr
    size_t wRowBytes, aRowBytes;
    const uint8_t* A;   // [nX][aRowBytes]: the activations in this weight's dotWith format
    int64_t firstUnit;  // of this target in the group's unit space
  } prepared[kMaxTargets];

  // One converted copy of X per distinct dot format (F32 weights use X as is).
  thread_local std::vector<uint8_t> scratch[kMaxTargets];
  TensorType converted[kMaxTargets];
  const uint8_t* convertedRows[kMaxTargets];
  int nConverted = 0;
  bool anyPanel = false;
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
    p.rows = t.type == TensorType::Q4_0 ? dotQ4_0Rows : nullptr;
    p.panel = t.type == TensorType::Q4_0 ? gemmQ4_0 : nullptr;
    anyPanel = anyPanel || p.panel;
    p.wRowBytes = rowBytes(t.type, cols);
    p.aRowBytes = rowBytes(aType, cols);
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

  // The panel kernel's per-block activation terms, once for all its targets (they share the Q8_0 rows).
  thread_local std::vector<int32_t> panelBias;
  thread_local std::vector<float> panelScale;
  const int32_t* aBias = nullptr;  // pointers, not the thread_locals: the workers have their own
  const float* aScale = nullptr;
  if (anyPanel) {
    const int64_t nb = cols / kQK;
    panelBias.resize(static_cast<size_t>(nX * nb));
    panelScale.resize(static_cast<size_t>(nX * nb));
    const Prepared* q = nullptr;
    for (int i = 0; i < count && !q; i++) q = prepared[i].panel ? &prepared[i] : nullptr;
    q4_0PanelActivationTerms(cols, q->A, q->aRowBytes, nX, panelBias.data(), panelScale.data());
    aBias = panelBias.data();
    aScale = panelScale.data();
  }

  // The threads claim units: single rows, or with a panel target in the group whole panels of
  // sixteen rows (for every target, so that no panel is split between threads).
  const int64_t rowsPerUnit = anyPanel ? kQ4_0PanelRows : 1;
  int64_t totalUnits = 0;
  for (int i = 0; i < count; i++) {
    prepared[i].firstUnit = totalUnits;
    totalUnits += (targets[i].rows + rowsPerUnit - 1) / rowsPerUnit;
  }
  pool.parallelFor(totalUnits, [&](int64_t begin, int64_t end, int) {
    // The chunk may span targets: walk it target by target.
    for (int i = 0; i < count; i++) {
      const Prepared& p = prepared[i];
      const MatmulTarget& t = targets[i];
      const int64_t uBegin = std::max(begin, p.firstUnit) - p.firstUnit;
      const int64_t uEnd = std::min(end - p.firstUnit, (t.rows + rowsPerUnit - 1) / rowsPerUnit);
      if (uBegin >= uEnd) continue;
      const int64_t rBegin = uBegin * rowsPerUnit, rEnd = std::min(t.rows, uEnd * rowsPerUnit);
      if (p.panel) {
        multiplyPanels(p.panel, t, cols, p.wRowBytes, p.A, p.aRowBytes, aBias, aScale, nX, rBegin, rEnd);
      } else {
        multiplyRows(p.dot, p.tile, p.rows, t, cols, p.wRowBytes, p.A, p.aRowBytes, nX, rBegin, rEnd);
      }
    }
  }, anyPanel ? 1 : kMinRowsPerChunk);
}
