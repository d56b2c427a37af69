// kernel_check: walks the kernel table (../kernels/kernel_table.h) and compares every entry of
// every set this CPU runs (each type's dot product, decode rows, panel, quantizer, ...) with the
// scalar references, checks which set the engine takes each path from, and the threaded matmul
// against a naive loop. A plain program (no Node) so that it also runs under
// qemu-aarch64 for the arm64 sets: `-cpu cortex-a72` for NEON (an SDOT there would fault),
// `-cpu max` for NEON+dotprod. Prints `N passed, N failed`; exits 1 on any failure.
//
// What "agree" means:
//  - integer paths exactly: with every scale 1.0 (fp16 0x3C00, Q8_K d = 1) all float arithmetic of
//    both sides is on integers below 2^24, so any difference is an integer-sum error: bit equality.
//  - float paths (real scales, F16, F32): |simd - scalar| <= 1e-5 · Σ|w_i·a_i| + 1e-30, the sum
//    over the dequantized rows, which bounds a different order of float accumulation.
//  - quantizers: byte-identical rows; fp16 row conversions: bit-identical.
//  - batch against decode (kernel_check_batch.cc): for the types that promise it, a panel's
//    results bit-identical to the decode rows kernel's and the dot product's, with real scales.
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../kernels/cpu_features.h"
#include "../kernels/kernel_table.h"
#include "../kernels/matmul.h"
#include "../kernels/thread_pool.h"
#include "kernel_check.h"

namespace kernel_check {

int passed = 0, failed = 0;

void report(bool ok, const std::string& what) {
  if (ok) {
    ++passed;
  } else {
    ++failed;
    std::printf("FAIL %s\n", what.c_str());
  }
}

std::mt19937 rng(20240607);

int randomInt(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
float randomFloat(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(rng); }

bool sameFloat(float a, float b) { return std::isnan(a) ? std::isnan(b) : std::memcmp(&a, &b, 4) == 0; }

}  // namespace kernel_check

namespace {

using kernels::KernelSet;
using kernels::Path;
using kernels::TypeKernels;

using kernel_check::randomFloat;
using kernel_check::randomInt;
using kernel_check::report;
using kernel_check::sameFloat;
using kernel_check::rng;
using kernel_check::checkDequantizeF16;
using kernel_check::checkQuantizeF16;
using kernel_check::checkRoundF16;
using kernel_check::checkSoftmaxF16;
using kernel_check::checkScoresF16;
using kernel_check::checkWeighF16;

}  // namespace

namespace kernel_check {

constexpr uint16_t kHalfOne = 0x3C00;

uint16_t randomScale(bool unit) { return unit ? kHalfOne : fp32ToFp16(randomFloat(0.0005f, 0.02f)); }

// A weight row of n elements of type t: random quants over their whole range (the int8 formats
// including -128), and scales either 1.0 (exact mode) or small realistic values.
std::vector<uint8_t> randomWeights(TensorType t, int64_t n, bool unit) {
  std::vector<uint8_t> row(rowBytes(t, n));
  for (uint8_t& b : row) b = static_cast<uint8_t>(randomInt(0, 255));
  const int64_t blocks = n / traitsOf(t).blockSize;
  for (int64_t b = 0; b < blocks; ++b) {
    switch (t) {
      case TensorType::Q4_0: reinterpret_cast<BlockQ4_0*>(row.data())[b].d = randomScale(unit); break;
      case TensorType::Q8_0: reinterpret_cast<BlockQ8_0*>(row.data())[b].d = randomScale(unit); break;
      case TensorType::Q4_1: {
        auto& x = reinterpret_cast<BlockQ4_1*>(row.data())[b];
        x.d = randomScale(unit);
        x.m = unit ? kHalfOne : fp32ToFp16(randomFloat(-0.1f, 0.1f));
        break;
      }
      case TensorType::Q2_K: {  // every 4-bit scale and min, both factors
        auto& x = reinterpret_cast<BlockQ2_K*>(row.data())[b];
        x.d = randomScale(unit);
        x.dmin = randomScale(unit);
        break;
      }
      case TensorType::Q3_K:  // every 6-bit scale (-32..31), every high bit
        reinterpret_cast<BlockQ3_K*>(row.data())[b].d = randomScale(unit);
        break;
      case TensorType::Q4_K: {
        auto& x = reinterpret_cast<BlockQ4_K*>(row.data())[b];
        x.d = randomScale(unit);
        x.dmin = randomScale(unit);
        break;
      }
      case TensorType::Q5_K: {
        auto& x = reinterpret_cast<BlockQ5_K*>(row.data())[b];
        x.d = randomScale(unit);
        x.dmin = randomScale(unit);
        break;
      }
      case TensorType::Q6_K: {
        auto& x = reinterpret_cast<BlockQ6_K*>(row.data())[b];
        x.d = randomScale(unit);
        if (unit) {  // keep exact-mode sums far below 2^24; full-range scales run in scaled mode
          for (int8_t& s : x.scales) s = static_cast<int8_t>(randomInt(-32, 31));
        }
        break;
      }
      default: break;
    }
  }
  if (t == TensorType::F32) {
    auto* f = reinterpret_cast<float*>(row.data());
    for (int64_t i = 0; i < n; ++i) f[i] = randomFloat(-1.0f, 1.0f);
  } else if (t == TensorType::F16) {
    auto* h = reinterpret_cast<uint16_t*>(row.data());
    for (int64_t i = 0; i < n; ++i) h[i] = fp32ToFp16(randomFloat(-1.0f, 1.0f));
  }
  return row;
}

// An activation row in format t: random int8 quants (-128 included), consistent block sums.
std::vector<uint8_t> randomActivations(TensorType t, int64_t n, bool unit) {
  std::vector<uint8_t> row = randomWeights(t, n, unit);  // F32/F16 and the quant bytes
  if (t == TensorType::Q8_0) {
    for (int64_t b = 0; b < n / kQK; ++b) reinterpret_cast<BlockQ8_0*>(row.data())[b].d = randomScale(unit);
  } else if (t == TensorType::Q8_1) {
    for (int64_t b = 0; b < n / kQK; ++b) {
      auto& y = reinterpret_cast<BlockQ8_1*>(row.data())[b];
      y.d = randomScale(unit);
      int sum = 0;
      for (int8_t q : y.qs) sum += q;
      y.s = unit ? fp32ToFp16(static_cast<float>(sum)) : fp32ToFp16(fp16ToFp32(y.d) * sum);
      if (unit && std::fabs(fp16ToFp32(y.s) - sum) > 0) y.s = 0;  // keep exact mode exact (|sum| > 2048)
    }
  } else if (t == TensorType::Q8_K) {
    for (int64_t b = 0; b < n / kQK_K; ++b) {
      auto& y = reinterpret_cast<BlockQ8_K*>(row.data())[b];
      y.d = unit ? 1.0f : randomFloat(0.001f, 0.05f);
      for (int g = 0; g < kQK_K / 16; ++g) {
        int sum = 0;
        for (int i = 0; i < 16; ++i) sum += y.qs[16 * g + i];
        y.bsums[g] = static_cast<int16_t>(sum);
      }
    }
  }
  return row;
}

}  // namespace kernel_check

namespace {

using kernel_check::randomActivations;
using kernel_check::randomWeights;

double absoluteProductSum(TensorType wType, const std::vector<uint8_t>& w, TensorType aType,
                          const std::vector<uint8_t>& a, int64_t n) {
  std::vector<float> wf(n), af(n);
  dequantizeRow(wType, w.data(), wf.data(), n);
  dequantizeRow(aType, a.data(), af.data(), n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::fabs(static_cast<double>(wf[i]) * af[i]);
  return sum;
}

// got against want: exactly in exact mode (unit scales), else within 1e-5 of the row's absolute
// product sum (a different order of float accumulation).
bool agrees(float got, float want, bool unit, TensorType wType, const std::vector<uint8_t>& w, TensorType aType,
            const std::vector<uint8_t>& a, int64_t n) {
  if (unit) return got == want;
  const double bound = 1e-5 * absoluteProductSum(wType, w, aType, a, n) + 1e-30;
  return std::fabs(static_cast<double>(got) - want) <= bound;
}

// Row lengths of the checks: one block, odd block counts (tails of unrolled loops), the 7B rows.
std::vector<int64_t> rowLengths(TensorType t, bool manyRemainders) {
  const int64_t block = traitsOf(t).blockSize;
  std::vector<int64_t> n = {block, 3 * block, 5 * block, 4096, 11008, block == 1 ? 4099 : 4096 + 7 * block};
  if (manyRemainders) {
    for (int64_t k : {2, 4, 7}) n.push_back(k * block);  // every remainder of a four-block step
  }
  std::vector<int64_t> out;
  for (int64_t v : n) {
    if (v % block == 0) out.push_back(v);
  }
  return out;
}

void checkDot(const KernelSet& set, TensorType wType) {
  const TensorType aType = traitsOf(wType).dotWith;
  const kernels::VecDotFn fn = set[wType].dot, reference = kernels::scalarKernels()[wType].dot;
  for (int64_t n : rowLengths(wType, false)) {
    for (int unit = 0; unit < 2; ++unit) {
      if (unit && (wType == TensorType::F32 || wType == TensorType::F16)) continue;
      // Exact mode needs every partial sum below 2^24; random rows of 11008 can pass that.
      if (unit && n > 4096) continue;
      for (int trial = 0; trial < 4; ++trial) {
        const auto w = randomWeights(wType, n, unit);
        const auto a = randomActivations(aType, n, unit);
        const float want = reference(n, w.data(), a.data());
        const float got = fn(n, w.data(), a.data());
        char what[200];
        std::snprintf(what, sizeof what, "%s %s dot n=%lld %s: got %.9g want %.9g", set.name, traitsOf(wType).name,
                      static_cast<long long>(n), unit ? "exact" : "scaled", got, want);
        report(agrees(got, want, unit, wType, w, aType, a, n), what);
      }
    }
  }
}

// The decode rows kernel against the one-row scalar reference: block counts of every remainder
// of a four-block step, strides beyond the row, and the rows ending right at a page the process
// may not read, so that a load past the last row faults here.
void checkRows(const KernelSet& set, TensorType wType) {
  const kernels::RowsKernel rows = set[wType].rows;
  const TensorType aType = traitsOf(wType).dotWith;
  const kernels::VecDotFn reference = kernels::scalarKernels()[wType].dot;
  const long page = sysconf(_SC_PAGESIZE);
  if (rows.count < 1 || kernels::kPanelRows % rows.count != 0) {
    report(false, std::string(set.name) + " " + traitsOf(wType).name + " rows: count does not divide kPanelRows");
    return;
  }
  for (int64_t n : rowLengths(wType, true)) {
    for (int unit = 0; unit < 2; ++unit) {
      if (unit && n > 4096) continue;  // exact mode keeps partial sums below 2^24
      const size_t rowSize = rowBytes(wType, n);
      const size_t wStride = rowSize + traitsOf(wType).blockBytes * randomInt(0, 2);
      const size_t used = (rows.count - 1) * wStride + rowSize;
      const size_t mapped = (used + page - 1) / page * page + page;
      void* map = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (map == MAP_FAILED || mprotect(static_cast<uint8_t*>(map) + mapped - page, page, PROT_NONE) != 0) {
        report(false, std::string(set.name) + " rows: cannot map a guarded buffer");
        return;
      }
      auto* region = static_cast<uint8_t*>(map);
      uint8_t* wAll = region + mapped - page - used;
      std::vector<std::vector<uint8_t>> w(rows.count);
      for (int r = 0; r < rows.count; ++r) {
        w[r] = randomWeights(wType, n, unit);
        std::memcpy(wAll + r * wStride, w[r].data(), rowSize);
      }
      const std::vector<uint8_t> a = randomActivations(aType, n, unit);
      float out[kernels::kPanelRows];
      rows.run(n, wAll, wStride, a.data(), out);
      for (int r = 0; r < rows.count; ++r) {
        const float want = reference(n, w[r].data(), a.data());
        char what[200];
        std::snprintf(what, sizeof what, "%s %s rows n=%lld row %d of %d %s: got %.9g want %.9g", set.name,
                      traitsOf(wType).name, static_cast<long long>(n), r, rows.count, unit ? "exact" : "scaled",
                      out[r], want);
        report(agrees(out[r], want, unit, wType, w[r], aType, a, n), what);
      }
      munmap(region, mapped);
    }
  }
}

// The panel product against the one-row scalar reference, every (weight row, activation row)
// pair: short panels (nW < 16), activation counts around the kernels' passes (x86: eight or four
// rows, arm64 SDOT: four; every remainder, both unpacked on the way and from the panel), strides
// beyond the row, and a y stride beyond nW whose untouched entries must stay as they were.
void checkPanel(const KernelSet& set, TensorType wType) {
  const kernels::PanelKernel panel = set[wType].panel;
  const TensorType aType = traitsOf(wType).dotWith;
  const kernels::VecDotFn reference = kernels::scalarKernels()[wType].dot;
  const int64_t block = traitsOf(wType).blockSize, aBlock = traitsOf(aType).blockSize;
  // Blocks of a row for the 32-element formats and for the K formats (11008 columns: 344 and 43).
  const struct { int64_t blocks, superBlocks; int nW; int64_t nA; } cases[] = {
      {1, 1, 16, 1},  {3, 3, 1, 8},   {5, 5, 5, 9},   {8, 2, 16, 13},  {128, 16, 16, 32}, {128, 16, 11, 3},
      {344, 43, 16, 17}, {2, 2, 15, 40}, {2, 1, 16, 2}, {8, 4, 9, 4}, {5, 5, 16, 6},    {3, 3, 13, 7},
  };
  for (const auto& c : cases) {
    const int64_t n = (block == kQK_K ? c.superBlocks : c.blocks) * block;
    for (int unit = 0; unit < 2; ++unit) {
      if (unit && n > 4096) continue;  // exact mode keeps partial sums below 2^24
      const int64_t nb = n / block;
      const size_t wStride = rowBytes(wType, n) + traitsOf(wType).blockBytes * randomInt(0, 2);
      const size_t aStride = rowBytes(aType, n) + traitsOf(aType).blockBytes * randomInt(0, 2);
      const size_t yStride = static_cast<size_t>(c.nW + randomInt(0, 3));
      std::vector<std::vector<uint8_t>> w(c.nW), a(c.nA);
      std::vector<uint8_t> wAll(c.nW * wStride), aAll(c.nA * aStride);
      for (int r = 0; r < c.nW; ++r) {
        w[r] = randomWeights(wType, n, unit);
        std::memcpy(wAll.data() + r * wStride, w[r].data(), w[r].size());
      }
      for (int64_t j = 0; j < c.nA; ++j) {
        a[j] = randomActivations(aType, n, unit);
        std::memcpy(aAll.data() + j * aStride, a[j].data(), a[j].size());
      }
      std::vector<int32_t> bias(c.nA * (n / aBlock));
      std::vector<float> scale(c.nA * (n / aBlock));
      if (panel.terms) panel.terms(n, aAll.data(), aStride, c.nA, bias.data(), scale.data());
      std::vector<uint8_t> scratch(nb * panel.scratchPerBlock + 64);
      void* aligned = scratch.data() + (64 - reinterpret_cast<uintptr_t>(scratch.data()) % 64) % 64;
      const float kUntouched = -12345.0f;
      std::vector<float> y(c.nA * yStride, kUntouched);
      panel.run(n, wAll.data(), wStride, c.nW, aAll.data(), aStride, panel.terms ? bias.data() : nullptr,
                panel.terms ? scale.data() : nullptr, c.nA, y.data(), yStride, aligned);
      int bad = 0;
      std::string first;
      for (int64_t j = 0; j < c.nA; ++j) {
        for (size_t r = 0; r < yStride; ++r) {
          const float got = y[j * yStride + r];
          const bool inPanel = r < static_cast<size_t>(c.nW);
          const float want = inPanel ? reference(n, w[r].data(), a[j].data()) : kUntouched;
          const bool ok = inPanel ? agrees(got, want, unit, wType, w[r], aType, a[j], n) : got == kUntouched;
          if (!ok && bad++ == 0) {
            char what[160];
            std::snprintf(what, sizeof what, " (first: row %zu act %lld got %.9g want %.9g)", r,
                          static_cast<long long>(j), got, want);
            first = what;
          }
        }
      }
      char what[220];
      std::snprintf(what, sizeof what, "%s %s panel n=%lld nW=%d nA=%lld %s: %d of %lld wrong%s", set.name,
                    traitsOf(wType).name, static_cast<long long>(n), c.nW, static_cast<long long>(c.nA),
                    unit ? "exact" : "scaled", bad, static_cast<long long>(c.nA * yStride), first.c_str());
      report(bad == 0, what);
    }
  }
}

// An activation quantizer (Q8_0, Q8_1, Q8_K) against quantizeRow: byte-identical rows.
void checkQuantize(const KernelSet& set, TensorType t) {
  const int64_t n = 32 * 64;
  for (int trial = 0; trial < 8; ++trial) {
    std::vector<float> x(n);
    for (float& v : x) v = randomFloat(-3.0f, 3.0f) * std::pow(10.0f, randomFloat(-6.0f, 3.0f));
    // Blocks that stress the rounding: exact halves (amax 127 makes id 1), zeros, -0, tiny values.
    for (int j = 0; j < 32; ++j) x[j] = (j - 16) + 0.5f;
    x[0] = 127.0f;
    for (int j = 32; j < 64; ++j) x[j] = 0.0f;
    x[40] = -0.0f;
    // Tiny but normal: below ~3e-39 the inverse scale overflows and the conversion of inf to int8
    // is undefined in the scalar code too (each CPU gives its own byte), so that is not compared.
    for (int j = 64; j < 96; ++j) x[j] = 1e-30f * (j - 80);
    for (int j = 96; j < 128; ++j) x[j] = -127.0f + 0.5f * (j - 96);
    // A whole Q8_K super-block of zeros.
    for (int j = 512; j < 768; ++j) x[j] = 0.0f;
    std::vector<uint8_t> want(rowBytes(t, n)), got(want.size());
    quantizeRow(t, x.data(), want.data(), n);
    set[t].quantize(x.data(), got.data(), n);
    report(want == got, std::string(set.name) + " quantize " + traitsOf(t).name + " bit-identical");
  }
}

constexpr Path kPaths[] = {Path::kDot, Path::kRows, Path::kPanel, Path::kQuantize, Path::kDequantize};
const char* pathName(Path p) {
  switch (p) {
    case Path::kDot: return "dot";
    case Path::kRows: return "rows";
    case Path::kPanel: return "panel";
    case Path::kQuantize: return "quantize";
    case Path::kDequantize: return "dequantize";
  }
  return "?";
}

// Every entry of one set this CPU runs against the scalar references.
void checkSet(const KernelSet& set) {
  for (size_t slot = 0; slot < kernels::kTypeSlots; ++slot) {
    const auto t = static_cast<TensorType>(slot);
    const TypeKernels& k = set[t];
    if (!typeTraits(static_cast<uint32_t>(slot))) {
      report(!k.dot && !k.rows.run && !k.panel.run && !k.quantize && !k.dequantize,
             std::string(set.name) + ": no kernels for unknown type id " + std::to_string(slot));
      continue;
    }
    if (k.dot) checkDot(set, t);
    if (k.rows.run) checkRows(set, t);
    if (k.panel.run) checkPanel(set, t);
    if (k.quantize) t == TensorType::F16 ? checkQuantizeF16(set) : checkQuantize(set, t);
    if (k.dequantize) {
      if (t == TensorType::F16) {
        checkDequantizeF16(set);
      } else {
        report(false, std::string(set.name) + " dequantize " + traitsOf(t).name + ": kernel_check has no case for it");
      }
    }
  }
  if (set.weighF16) checkWeighF16(set);
  if (set.scoresF16) checkScoresF16(set);
  if (set.roundF16) checkRoundF16(set);
  if (set.softmaxF16) checkSoftmaxF16(set);
}

// The scalar set serves every computable type (and the activation formats), and bestKernels()
// took every path of every type from the fastest set this CPU runs that has it.
void checkResolution() {
  const KernelSet& scalar = kernels::scalarKernels();
  for (size_t slot = 0; slot < kernels::kTypeSlots; ++slot) {
    const TypeTraits* traits = typeTraits(static_cast<uint32_t>(slot));
    if (traits && traits->computable) {
      report(scalar[static_cast<TensorType>(slot)].dot != nullptr, std::string("scalar dot for ") + traits->name);
      report(traits->dotWith == TensorType::F32 || scalar[traits->dotWith].quantize != nullptr,
             std::string("scalar quantizer for the activations of ") + traits->name);
    }
  }
  const kernels::KernelSets all = kernels::compiledSets();
  const KernelSet& best = kernels::bestKernels();
  for (size_t slot = 0; slot < kernels::kTypeSlots; ++slot) {
    const auto t = static_cast<TensorType>(slot);
    for (Path path : kPaths) {
      const KernelSet* expected = nullptr;
      for (int i = 0; i < all.count && !expected; ++i) {
        if (all.sets[i]->runsHere() && kernels::hasPath((*all.sets[i])[t], path)) expected = all.sets[i];
      }
      const TypeKernels& got = best[t];
      bool same = !expected ? !kernels::hasPath(got, path) : false;
      if (expected) {
        const TypeKernels& want = (*expected)[t];
        switch (path) {
          case Path::kDot: same = got.dot == want.dot; break;
          case Path::kRows: same = got.rows.run == want.rows.run && got.rows.count == want.rows.count; break;
          case Path::kPanel:
            same = got.panel.run == want.panel.run && got.panel.terms == want.panel.terms &&
                   got.panel.scratchPerBlock == want.panel.scratchPerBlock;
            break;
          case Path::kQuantize: same = got.quantize == want.quantize; break;
          case Path::kDequantize: same = got.dequantize == want.dequantize; break;
        }
      }
      if (!same || expected) {
        report(same, std::string("best ") + pathName(path) + " of type " + std::to_string(slot) + " is " +
                         (expected ? expected->name : "none"));
      }
    }
  }
  kernels::WeighF16Fn weigh = nullptr;
  for (int i = 0; i < all.count && !weigh; ++i) {
    if (all.sets[i]->runsHere()) weigh = all.sets[i]->weighF16;
  }
  report(best.weighF16 == weigh, "best weighF16 is the fastest set's");
  kernels::RoundF16Fn round = nullptr;
  for (int i = 0; i < all.count && !round; ++i) {
    if (all.sets[i]->runsHere()) round = all.sets[i]->roundF16;
  }
  report(best.roundF16 == round && round != nullptr, "best roundF16 is the fastest set's");
  kernels::SoftmaxF16Fn softmax = nullptr;
  for (int i = 0; i < all.count && !softmax; ++i) {
    if (all.sets[i]->runsHere()) softmax = all.sets[i]->softmaxF16;
  }
  report(best.softmaxF16 == softmax && softmax != nullptr, "best softmaxF16 is the fastest set's");
  kernels::ScoresF16Fn scores = nullptr;
  for (int i = 0; i < all.count; ++i) {
    if (all.sets[i]->runsHere() && (*all.sets[i])[TensorType::F16].dot) {
      scores = all.sets[i]->scoresF16;
      break;
    }
  }
  report(best.scoresF16 == scores, "best scoresF16 is from the set of the best f16 dot product");
}

// The table every set fills: for each type, which path each set has (one line per type).
void printTable() {
  const kernels::KernelSets all = kernels::compiledSets();
  for (size_t slot = 0; slot < kernels::kTypeSlots; ++slot) {
    const TypeTraits* traits = typeTraits(static_cast<uint32_t>(slot));
    if (!traits) continue;
    std::string line;
    for (int i = 0; i < all.count; ++i) {
      std::string paths;
      for (Path path : kPaths) {
        if (kernels::hasPath((*all.sets[i])[static_cast<TensorType>(slot)], path)) {
          paths += (paths.empty() ? "" : "+") + std::string(pathName(path));
        }
      }
      if (!paths.empty()) line += std::string("  ") + all.sets[i]->name + ":" + paths;
    }
    if (!line.empty()) std::printf("table %-5s%s\n", traits->name, line.c_str());
  }
}

void checkMatmul() {
  const struct { TensorType type; int64_t rows, cols, nX; } cases[] = {
      {TensorType::Q4_0, 67, 256, 1},  {TensorType::Q4_0, 130, 512, 5}, {TensorType::Q4_K, 40, 512, 3},
      {TensorType::Q4_0, 45, 128, 2},  {TensorType::Q4_0, 36, 64, 39}, {TensorType::Q4_0, 259, 256, 4},
      {TensorType::Q4_0, 16, 96, 8},   {TensorType::Q4_0, 83, 352, 1},
      {TensorType::Q6_K, 33, 256, 2},  {TensorType::Q8_0, 50, 128, 35}, {TensorType::F32, 21, 40, 3},
      {TensorType::F16, 19, 24, 4},    {TensorType::Q4_1, 300, 64, 1},
      // every panel type once with one activation row (the decode kernels) and once with several
      {TensorType::Q4_1, 20, 96, 6},   {TensorType::Q8_0, 35, 64, 1},  {TensorType::Q4_K, 50, 256, 1},
      {TensorType::Q5_K, 40, 512, 1},  {TensorType::Q5_K, 33, 768, 6}, {TensorType::Q6_K, 24, 512, 1},
  };
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (const auto& c : cases) {
      const auto w = randomWeights(c.type, c.rows * c.cols, false);
      std::vector<float> x(c.nX * c.cols), y(c.nX * c.rows, -1.0f);
      for (float& v : x) v = randomFloat(-1.0f, 1.0f);
      matmul(pool, w.data(), c.type, c.rows, c.cols, x.data(), c.nX, y.data());
      // Naive: dequantize, multiply in double. The activations' 8-bit rounding bounds the error.
      std::vector<float> wf(c.rows * c.cols);
      dequantizeRow(c.type, w.data(), wf.data(), c.rows * c.cols);
      bool ok = true;
      for (int64_t i = 0; i < c.nX && ok; ++i) {
        for (int64_t r = 0; r < c.rows && ok; ++r) {
          double want = 0, magnitude = 0;
          for (int64_t k = 0; k < c.cols; ++k) {
            want += static_cast<double>(wf[r * c.cols + k]) * x[i * c.cols + k];
            magnitude += std::fabs(static_cast<double>(wf[r * c.cols + k]) * x[i * c.cols + k]);
          }
          // F32 multiplies as is, F16 rounds activations to 11 bits, the rest to 8 bits.
          const double relative = c.type == TensorType::F32 ? 1e-5 : c.type == TensorType::F16 ? 2e-3 : 2e-2;
          const double tolerance = relative * magnitude + 1e-6;
          if (std::fabs(y[i * c.rows + r] - want) > tolerance) {
            ok = false;
            std::printf("  matmul %s y[%lld][%lld] = %g, naive %g\n", traitsOf(c.type).name,
                        static_cast<long long>(i), static_cast<long long>(r), y[i * c.rows + r], want);
          }
        }
      }
      char what[120];
      std::snprintf(what, sizeof what, "matmul %s %lldx%lld nX=%lld threads=%d", traitsOf(c.type).name,
                    static_cast<long long>(c.rows), static_cast<long long>(c.cols), static_cast<long long>(c.nX),
                    threads);
      report(ok, what);
    }
  }
}

void checkThreadPool() {
  ThreadPool pool(3);
  for (int64_t n : {1, 2, 7, 100, 10000}) {
    std::vector<int> hits(n, 0);
    for (int round = 0; round < 50; ++round) {
      pool.parallelFor(n, [&](int64_t begin, int64_t end, int) {
        for (int64_t i = begin; i < end; ++i) ++hits[i];
      });
    }
    bool ok = true;
    for (int h : hits) ok = ok && h == 50;
    report(ok, "parallelFor covers every index exactly once, n=" + std::to_string(n));
  }
}

}  // namespace

int main() {
  const CpuFeatures& f = cpuFeatures();
  std::printf("cpu: avx2+fma+f16c=%d avx512=%d avx512-vnni=%d avx512-vbmi=%d neon=%d neon-dotprod=%d\n", f.avx2Fma,
              f.avx512, f.avx512Vnni, f.avx512Vbmi, f.neon, f.neonDotprod);
  printTable();
  const kernels::KernelSets all = kernels::compiledSets();
  for (int i = 0; i < all.count; ++i) {
    const KernelSet& set = *all.sets[i];
    if (&set == &kernels::scalarKernels()) continue;  // the reference everything is checked against
    if (!set.runsHere()) {
      std::printf("set %s: not run, this CPU lacks it\n", set.name);
      continue;
    }
    std::printf("set %s: checking\n", set.name);
    checkSet(set);
  }
  checkResolution();
  checkThreadPool();
  checkMatmul();
  kernel_check::checkBatchEqualsDecode();
  std::printf("%d passed, %d failed\n", kernel_check::passed, kernel_check::failed);
  return kernel_check::failed ? 1 : 0;
}
