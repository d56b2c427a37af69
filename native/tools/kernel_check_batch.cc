// kernel_check, part three: a batch gives every weight row the same bits as token-by-token
// decoding, for the types whose kernels promise it on this architecture. The panel (batches), the
// decode rows kernel (one activation row) and the dot product (rows past the last whole run) each
// agree with the scalar reference within a float reordering (kernel_check.cc), but within that a
// last-bit difference is enough to move an fp16 KV entry or an 8-bit activation quant in the next
// layer, and a batch's logits then drift from decoding's by 1e-2 and more (tiny qwen3 shape, Q6_K:
// up to 0.13). So here the three paths are compared with each other bit for bit, with real scales
// (the exact mode's unit scales would hide any order of float sums), as the engine would take
// them if each runnable set were the fastest: its own entry, else the next set's that has one.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "../kernels/kernel_table.h"
#include "kernel_check.h"

namespace {

using kernels::KernelSet;
using kernels::Path;

// The types whose batch and decode kernels share one order of float arithmetic.
std::vector<TensorType> batchEqualsDecode() {
#if defined(__x86_64__)
  return {TensorType::Q8_0, TensorType::Q6_K};
#else
  return {};  // none yet on arm64
#endif
}

// The entry of `path` for type t that the engine would take if set `first` were the fastest.
const kernels::TypeKernels* resolve(int first, TensorType t, Path path) {
  const kernels::KernelSets all = kernels::compiledSets();
  for (int i = first; i < all.count; ++i) {
    const kernels::TypeKernels& k = (*all.sets[i])[t];
    if (all.sets[i]->runsHere() && kernels::hasPath(k, path)) return &k;
  }
  return nullptr;
}

bool sameBits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

void checkType(int first, TensorType wType) {
  const kernels::KernelSets all = kernels::compiledSets();
  const char* setName = all.sets[first]->name;
  const kernels::TypeKernels* panelOf = resolve(first, wType, Path::kPanel);
  const kernels::TypeKernels* rowsOf = resolve(first, wType, Path::kRows);
  const kernels::TypeKernels* dotOf = resolve(first, wType, Path::kDot);
  if (!panelOf || !rowsOf || !dotOf) {
    kernel_check::report(false, std::string(setName) + " " + traitsOf(wType).name +
                                    ": batch equals decode, but a panel, rows or dot kernel is missing");
    return;
  }
  const kernels::PanelKernel panel = panelOf->panel;
  const kernels::RowsKernel rows = rowsOf->rows;
  const kernels::VecDotFn dot = dotOf->dot;
  const TensorType aType = traitsOf(wType).dotWith;
  const int64_t block = traitsOf(wType).blockSize, aBlock = traitsOf(aType).blockSize;
  // Row lengths in the type's blocks (one; a few; 11008 columns), panels whole and short,
  // activation counts of one pass, a remainder and several passes.
  const struct { int64_t blocks32, blocksK; int nW; int64_t nA; } cases[] = {
      {1, 1, 16, 6}, {8, 3, 16, 2}, {344, 43, 16, 9}, {24, 3, 12, 17}, {5, 2, 4, 3},
  };
  for (const auto& c : cases) {
    const int64_t n = (block == kQK_K ? c.blocksK : c.blocks32) * block;
    const size_t wStride = rowBytes(wType, n), aStride = rowBytes(aType, n);
    std::vector<uint8_t> wAll(c.nW * wStride), aAll(c.nA * aStride);
    for (int r = 0; r < c.nW; ++r) {
      const auto w = kernel_check::randomWeights(wType, n, false);
      std::memcpy(wAll.data() + r * wStride, w.data(), wStride);
    }
    for (int64_t j = 0; j < c.nA; ++j) {
      const auto a = kernel_check::randomActivations(aType, n, false);
      std::memcpy(aAll.data() + j * aStride, a.data(), aStride);
    }
    std::vector<int32_t> bias(c.nA * (n / aBlock));
    std::vector<float> scale(c.nA * (n / aBlock));
    if (panel.terms) panel.terms(n, aAll.data(), aStride, c.nA, bias.data(), scale.data());
    std::vector<uint8_t> scratch(n / block * panel.scratchPerBlock + 64);
    void* aligned = scratch.data() + (64 - reinterpret_cast<uintptr_t>(scratch.data()) % 64) % 64;
    std::vector<float> y(c.nA * c.nW);
    panel.run(n, wAll.data(), wStride, c.nW, aAll.data(), aStride, panel.terms ? bias.data() : nullptr,
              panel.terms ? scale.data() : nullptr, c.nA, y.data(), c.nW, aligned);
    int badRows = 0, badDot = 0;
    std::string first;
    for (int64_t j = 0; j < c.nA; ++j) {
      const uint8_t* a = aAll.data() + j * aStride;
      for (int r0 = 0; r0 < c.nW; r0 += rows.count) {
        float decoded[kernels::kPanelRows];
        const bool whole = r0 + rows.count <= c.nW;  // the engine runs the rows kernel on whole runs only
        if (whole) rows.run(n, wAll.data() + r0 * wStride, wStride, a, decoded);
        for (int r = r0; r < c.nW && r < r0 + rows.count; ++r) {
          const float batch = y[j * c.nW + r];
          const float one = dot(n, wAll.data() + r * wStride, a);
          const bool rowsOk = !whole || sameBits(batch, decoded[r - r0]);
          badRows += !rowsOk;
          badDot += !sameBits(batch, one);
          if ((!rowsOk || !sameBits(batch, one)) && first.empty()) {
            char what[160];
            std::snprintf(what, sizeof what, " (first: row %d act %lld panel %.9g rows %.9g dot %.9g)", r,
                          static_cast<long long>(j), batch, whole ? decoded[r - r0] : batch, one);
            first = what;
          }
        }
      }
    }
    char what[260];
    std::snprintf(what, sizeof what, "%s %s batch equals decode n=%lld nW=%d nA=%lld: %d differ from rows, %d from dot%s",
                  setName, traitsOf(wType).name, static_cast<long long>(n), c.nW, static_cast<long long>(c.nA),
                  badRows, badDot, first.c_str());
    kernel_check::report(badRows == 0 && badDot == 0, what);
  }
}

}  // namespace

namespace kernel_check {

void checkBatchEqualsDecode() {
  const kernels::KernelSets all = kernels::compiledSets();
  for (int i = 0; i < all.count; ++i) {
    if (all.sets[i] == &kernels::scalarKernels() || !all.sets[i]->runsHere()) continue;
    for (TensorType t : batchEqualsDecode()) {
      // Only sets that bring one of the three paths of t: the others resolve to a set checked already.
      const kernels::TypeKernels& k = (*all.sets[i])[t];
      if (!k.panel.run && !k.rows.run && !k.dot) continue;
      checkType(i, t);
    }
  }
}

}  // namespace kernel_check
