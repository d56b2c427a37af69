// The list of kernel sets compiled for this architecture, and the resolution of the table the
// engine runs: per type and path, the fastest set this CPU runs that has an entry.
#include "kernel_table.h"

namespace kernels {

// Each defined in its own source, compiled with its ISA's flags.
extern const KernelSet kScalarKernels;  // scalar.cc
#if defined(__x86_64__)
extern const KernelSet kAvx512VbmiKernels;  // x86/avx512_vbmi.cc
extern const KernelSet kAvx512VnniKernels;  // x86/avx512_vnni.cc
extern const KernelSet kAvx2Kernels;        // x86/avx2.cc
#endif
#if defined(__aarch64__)
extern const KernelSet kNeonDotprodKernels;       // arm/neon_dotprod.cc
extern const KernelSet kNeonKernels;              // arm/neon.cc
extern const KernelSet kNeonSdotEmulatedKernels;  // arm/neon.cc: checked, never the fastest
#endif

KernelSets compiledSets() {
  static const KernelSet* const sets[] = {
#if defined(__x86_64__)
      &kAvx512VbmiKernels, &kAvx512VnniKernels, &kAvx2Kernels,
#endif
#if defined(__aarch64__)
      &kNeonDotprodKernels, &kNeonKernels, &kNeonSdotEmulatedKernels,
#endif
      &kScalarKernels,
  };
  return {sets, static_cast<int>(sizeof sets / sizeof sets[0])};
}

const KernelSet& scalarKernels() { return kScalarKernels; }

bool hasPath(const TypeKernels& k, Path path) {
  switch (path) {
    case Path::kDot: return k.dot != nullptr;
    case Path::kRows: return k.rows.run != nullptr;
    case Path::kPanel: return k.panel.run != nullptr;
    case Path::kQuantize: return k.quantize != nullptr;
    case Path::kDequantize: return k.dequantize != nullptr;
  }
  return false;
}

namespace {

// The fastest set this CPU runs whose entry for t has the path, or nullptr.
const KernelSet* fastestWith(TensorType t, Path path) {
  const KernelSets all = compiledSets();
  for (int i = 0; i < all.count; ++i) {
    if (all.sets[i]->runsHere() && hasPath((*all.sets[i])[t], path)) return all.sets[i];
  }
  return nullptr;
}

KernelSet resolve() {
  KernelSet best{"best", [] { return true; }};
  for (size_t slot = 0; slot < kTypeSlots; ++slot) {
    const auto t = static_cast<TensorType>(slot);
    TypeKernels& k = best[t];
    if (const KernelSet* s = fastestWith(t, Path::kDot)) k.dot = (*s)[t].dot;
    if (const KernelSet* s = fastestWith(t, Path::kRows)) k.rows = (*s)[t].rows;
    if (const KernelSet* s = fastestWith(t, Path::kPanel)) k.panel = (*s)[t].panel;
    if (const KernelSet* s = fastestWith(t, Path::kQuantize)) k.quantize = (*s)[t].quantize;
    if (const KernelSet* s = fastestWith(t, Path::kDequantize)) k.dequantize = (*s)[t].dequantize;
  }
  const KernelSets all = compiledSets();
  for (int i = 0; i < all.count; ++i) {
    if (!all.sets[i]->runsHere()) continue;
    if (!best.weighF16) best.weighF16 = all.sets[i]->weighF16;
    if (!best.roundF16) best.roundF16 = all.sets[i]->roundF16;
    if (!best.softmaxF16) best.softmaxF16 = all.sets[i]->softmaxF16;
  }
  // The scores are the F16 dot product row by row: both from one set, so that they agree exactly.
  if (const KernelSet* s = fastestWith(TensorType::F16, Path::kDot)) best.scoresF16 = s->scoresF16;
  return best;
}

}  // namespace

const KernelSet& bestKernels() {
  static const KernelSet best = resolve();
  return best;
}

const char* bestSetName(TensorType t, Path path) {
  if (static_cast<size_t>(t) >= kTypeSlots) return nullptr;
  const KernelSet* s = fastestWith(t, path);
  return s ? s->name : nullptr;
}

void q4_0PanelActivationTerms(int64_t n, const void* a, size_t aStride, int64_t nA, int32_t* bias, float* scale) {
  const int64_t nb = n / kQK;
  for (int64_t x = 0; x < nA; ++x) {
    const auto* y = reinterpret_cast<const BlockQ8_0*>(static_cast<const uint8_t*>(a) + x * aStride);  // [nb]
    for (int64_t b = 0; b < nb; ++b) {
      int32_t sum = 0;
      for (int j = 0; j < kQK; ++j) sum += y[b].qs[j];
      bias[x * nb + b] = -8 * sum;
      scale[x * nb + b] = fp16ToFp32(y[b].d);
    }
  }
}

void q8_0PanelActivationTerms(int64_t n, const void* a, size_t aStride, int64_t nA, int32_t* bias, float* scale) {
  const int64_t nb = n / kQK;
  for (int64_t x = 0; x < nA; ++x) {
    const auto* y = reinterpret_cast<const BlockQ8_0*>(static_cast<const uint8_t*>(a) + x * aStride);  // [nb]
    for (int64_t b = 0; b < nb; ++b) {
      int32_t sum = 0;
      for (int j = 0; j < kQK; ++j) sum += y[b].qs[j];
      bias[x * nb + b] = -128 * sum;
      scale[x * nb + b] = fp16ToFp32(y[b].d);
    }
  }
}

}  // namespace kernels
