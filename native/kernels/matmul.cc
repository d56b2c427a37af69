#include "matmul.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "kernel_table.h"
#include "thread_pool.h"

namespace {

using kernels::kPanelRows;

// Activation rows per pass over a weight row: their quantized rows (≈ 4.5 KB each for 4096
// columns in Q8_0) stay in L2 while the weight rows of a chunk are streamed past them once.
constexpr int64_t kActivationTile = 32;
// Weight rows per claimed chunk at least: keeps claims rare and the stream long.
constexpr int64_t kMinRowsPerChunk = 16;
// Batches of at least this many activation rows go through a type's panel kernel. One row
// (decode) streams its weights best through the decode rows kernel; from two rows on the panel
// is as fast or faster (7B-shaped Q4_0, 2 threads: decode() of 3 rows 131 → 113 ms).
constexpr int64_t kPanelMinActivationRows = 2;

// What one target of a group runs with.
struct Prepared {
  kernels::VecDotFn dot;
  kernels::RowsKernel rows;    // given only for one activation row (decode)
  kernels::PanelKernel panel;  // given only for kPanelMinActivationRows and more
  size_t wRowBytes, aRowBytes;
  const uint8_t* A;            // [nX][aRowBytes]: the activations in this weight's dotWith format
  const int32_t* aBias;        // the panel's per-batch terms, or null
  const float* aScale;
  int64_t firstUnit;           // of this target in the group's unit space
};

void convertActivations(ThreadPool& pool, kernels::QuantizeRowFn quantize, const float* X, int64_t nX, int64_t cols,
                        uint8_t* A, size_t aRowBytes) {
  auto convertRows = [&](int64_t begin, int64_t end, int) {
    for (int64_t x = begin; x < end; ++x) quantize(X + x * cols, A + x * aRowBytes, cols);
  };
  // One row (decode) is a few microseconds of work: waking the pool would cost more.
  if (nX < 4) {
    convertRows(0, nX, 0);
  } else {
    pool.parallelFor(nX, convertRows);
  }
}

// Weight rows [rBegin, rEnd) of t against every activation row, kPanelRows rows per panel.
void multiplyPanels(const Prepared& p, const MatmulTarget& t, int64_t cols, int64_t nX, int64_t rBegin, int64_t rEnd) {
  const int64_t nb = cols / traitsOf(t.type).blockSize;
  // The rearranged panel (Q4_0: 576 bytes per block, 72 KB for 4096 columns), in L2 for the whole batch.
  thread_local std::vector<uint8_t> scratch;
  const size_t bytes = static_cast<size_t>(nb) * p.panel.scratchPerBlock + 64;
  if (scratch.size() < bytes) scratch.resize(bytes);
  void* aligned = scratch.data() + (64 - reinterpret_cast<uintptr_t>(scratch.data()) % 64) % 64;
  for (int64_t r = rBegin; r < rEnd; r += kPanelRows) {
    const int nW = static_cast<int>(std::min<int64_t>(kPanelRows, rEnd - r));
    p.panel.run(cols, t.W + r * p.wRowBytes, p.wRowBytes, nW, p.A, p.aRowBytes, p.aBias, p.aScale, nX, t.Y + r,
                static_cast<size_t>(t.rows), aligned);
  }
}

// Weight rows [rBegin, rEnd) of t against every activation row: `rows.count` at a time through
// the decode kernel where there is one (one activation row only), the rest one by one.
void multiplyRows(const Prepared& p, const MatmulTarget& t, int64_t cols, int64_t nX, int64_t rBegin, int64_t rEnd) {
  int64_t r = rBegin;
  if (p.rows.run) {
    // The kernel's `count` rows are taken `lane` rows apart: lane k walks its own stretch
    // [rBegin + k·lane, rBegin + (k+1)·lane) row after row, so each lane is one sequential stream
    // over memory. Adjacent rows read side by side share 4 KB pages at different offsets, which
    // the hardware prefetcher does not follow (one thread reads such rows ~35 % slower).
    const int count = p.rows.count;
    const int64_t lane = (rEnd - rBegin) / count;
    for (int64_t i = 0; i < lane; ++i) {
      float out[kPanelRows];
      p.rows.run(cols, t.W + (rBegin + i) * p.wRowBytes, static_cast<size_t>(lane) * p.wRowBytes, p.A, out);
      for (int k = 0; k < count; k++) t.Y[rBegin + i + k * lane] = out[k];
    }
    r = rBegin + count * lane;
  }
  const int64_t rFirst = r;
  for (int64_t x0 = 0; x0 < nX; x0 += kActivationTile) {
    const int64_t x1 = std::min(nX, x0 + kActivationTile);
    for (r = rFirst; r < rEnd; ++r) {
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

}  // namespace

void matmul(ThreadPool& pool, const uint8_t* W, TensorType wType, int64_t rows, int64_t cols,
            const float* X, int64_t nX, float* Y) {
  const MatmulTarget target{W, wType, rows, Y};
  matmulGroup(pool, &target, 1, cols, X, nX);
}

void matmulGroup(ThreadPool& pool, const MatmulTarget* targets, int count, int64_t cols, const float* X, int64_t nX) {
  constexpr int kMaxTargets = 4;
  if (count < 1 || count > kMaxTargets) throw std::invalid_argument("matmulGroup: 1 to 4 targets");
  const kernels::KernelSet& best = kernels::bestKernels();
  Prepared prepared[kMaxTargets];

  // One converted copy of X per distinct dot format (F32 weights use X as is), and one set of
  // panel terms per distinct terms function (the targets of a group share their activations).
  thread_local std::vector<uint8_t> scratch[kMaxTargets];
  thread_local std::vector<int32_t> panelBias[kMaxTargets];
  thread_local std::vector<float> panelScale[kMaxTargets];
  TensorType converted[kMaxTargets];
  const uint8_t* convertedRows[kMaxTargets];
  int nConverted = 0;
  bool multiRow = false;  // a target takes whole runs of rows: its panel or decode kernel
  for (int i = 0; i < count; i++) {
    const MatmulTarget& t = targets[i];
    const TypeTraits& wTraits = traitsOf(t.type);
    if (!wTraits.computable || cols % wTraits.blockSize != 0) {
      throw std::invalid_argument(std::string("matmul: cannot multiply ") + wTraits.name + " rows of " +
                                  std::to_string(cols));
    }
    const TensorType aType = wTraits.dotWith;
    const kernels::TypeKernels& k = best[t.type];
    Prepared& p = prepared[i];
    p = Prepared{k.dot, nX == 1 ? k.rows : kernels::RowsKernel{},
                 nX >= kPanelMinActivationRows ? k.panel : kernels::PanelKernel{},
                 rowBytes(t.type, cols), rowBytes(aType, cols), reinterpret_cast<const uint8_t*>(X), nullptr, nullptr, 0};
    multiRow = multiRow || p.panel.run || p.rows.run;
    if (aType == TensorType::F32) continue;
    int c = 0;
    while (c < nConverted && converted[c] != aType) c++;
    if (c == nConverted) {
      scratch[c].resize(static_cast<size_t>(nX) * p.aRowBytes);
      convertActivations(pool, best[aType].quantize, X, nX, cols, scratch[c].data(), p.aRowBytes);
      converted[c] = aType;
      convertedRows[c] = scratch[c].data();
      nConverted++;
    }
    p.A = convertedRows[c];
    if (!p.panel.terms) continue;
    int same = 0;
    while (same < i && !(prepared[same].panel.terms == p.panel.terms && prepared[same].A == p.A)) same++;
    if (same < i) {
      p.aBias = prepared[same].aBias;
      p.aScale = prepared[same].aScale;
    } else {
      // Pointers, not the thread_locals: the workers have their own.
      const size_t terms = static_cast<size_t>(nX * (cols / traitsOf(aType).blockSize));
      panelBias[i].resize(terms);
      panelScale[i].resize(terms);
      p.panel.terms(cols, p.A, p.aRowBytes, nX, panelBias[i].data(), panelScale[i].data());
      p.aBias = panelBias[i].data();
      p.aScale = panelScale[i].data();
    }
  }

  // The threads claim units: single rows, or with a panel or decode kernel in the group whole
  // runs of kPanelRows rows (for every target, so that no panel or run is split between threads).
  const int64_t rowsPerUnit = multiRow ? kPanelRows : 1;
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
      if (p.panel.run) {
        multiplyPanels(p, t, cols, nX, rBegin, rEnd);
      } else {
        multiplyRows(p, t, cols, nX, rBegin, rEnd);
      }
    }
  }, multiRow ? 1 : kMinRowsPerChunk);
}
