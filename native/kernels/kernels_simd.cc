#include "kernels_simd.h"

#include "kernels.h"

VecDotFn SimdKernelSet::dotFor(TensorType weightType) const {
  switch (weightType) {
    case TensorType::Q4_0: return q4_0;
    case TensorType::Q8_0: return q8_0;
    case TensorType::Q4_1: return q4_1;
    case TensorType::Q4_K: return q4_K;
    case TensorType::Q5_K: return q5_K;
    case TensorType::Q6_K: return q6_K;
    case TensorType::F16: return f16;
    case TensorType::F32: return f32;
    default: return nullptr;
  }
}

SimdKernelSets compiledSimdKernelSets() {
#if defined(__x86_64__)
  static const SimdKernelSet* const sets[] = {&kAvx512VbmiKernels, &kAvx512VnniKernels, &kAvx2Kernels};
  return {sets, 3};
#elif defined(__aarch64__)
  static const SimdKernelSet* const sets[] = {&kNeonDotprodKernels, &kNeonKernels, &kNeonSdotEmulatedKernels};
  return {sets, 3};
#else
  return {nullptr, 0};
#endif
}

namespace {
constexpr TensorType kAcceleratedTypes[] = {TensorType::Q4_0, TensorType::Q8_0, TensorType::Q4_1,
                                            TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K,
                                            TensorType::F16,  TensorType::F32};

// Slowest set first, so that a faster set this CPU runs overwrites the entries it has.
const kernels::KernelRegistration kSimdRegistration{10, [](kernels::DotTable& table) {
  const SimdKernelSets all = compiledSimdKernelSets();
  for (int i = all.count - 1; i >= 0; --i) {
    if (!all.sets[i]->runsHere()) continue;
    for (TensorType t : kAcceleratedTypes) {
      if (VecDotFn fn = all.sets[i]->dotFor(t)) table.set(t, fn);
    }
  }
}};

// The entry `member` of the fastest set this CPU runs that has one, or nullptr.
template <typename Fn>
Fn fastest(Fn SimdKernelSet::*member) {
  const SimdKernelSets all = compiledSimdKernelSets();
  for (int i = 0; i < all.count; ++i) {
    if (all.sets[i]->runsHere() && all.sets[i]->*member) return all.sets[i]->*member;
  }
  return nullptr;
}
}  // namespace

QuantizeRowFn bestSimdQuantizeRowQ8_0() { return fastest(&SimdKernelSet::quantizeRowQ8_0); }

const char* simdKernelSetNameFor(TensorType weightType) {
  const SimdKernelSets all = compiledSimdKernelSets();
  for (int i = 0; i < all.count; ++i) {
    if (all.sets[i]->runsHere() && all.sets[i]->dotFor(weightType)) return all.sets[i]->name;
  }
  return nullptr;
}

DotQ4_0TileFn bestSimdDotQ4_0Tile() { return fastest(&SimdKernelSet::q4_0Tile); }

GemmQ4_0Fn bestSimdGemmQ4_0() { return fastest(&SimdKernelSet::q4_0Panel); }

namespace {
void f16ToF32Scalar(const void* src, float* dst, int64_t n) { dequantizeRow(TensorType::F16, src, dst, n); }
void f32ToF16Scalar(const float* src, void* dst, int64_t n) { quantizeRow(TensorType::F16, src, dst, n); }
}  // namespace

const F16RowKernels& bestF16RowKernels() {
  static const F16RowKernels best = [] {
    const SimdKernelSets all = compiledSimdKernelSets();
    for (int i = 0; i < all.count; ++i) {
      const F16RowKernels& k = all.sets[i]->f16Rows;
      if (all.sets[i]->runsHere() && k.toF32 && k.toF16 && k.weigh) return k;
    }
    return F16RowKernels{f16ToF32Scalar, f32ToF16Scalar, kernels::weighF16Scalar};
  }();
  return best;
}

DotQ4_0RowsFn bestSimdDotQ4_0Rows() { return fastest(&SimdKernelSet::q4_0Rows); }

void q4_0PanelActivationTerms(int64_t n, const void* a, size_t aStride, int64_t nA, int32_t* aBias, float* aScale) {
  const int64_t nb = n / kQK;
  for (int64_t x = 0; x < nA; ++x) {
    const auto* y = reinterpret_cast<const BlockQ8_0*>(static_cast<const uint8_t*>(a) + x * aStride);  // [nb]
    for (int64_t b = 0; b < nb; ++b) {
      int32_t sum = 0;
      for (int j = 0; j < kQK; ++j) sum += y[b].qs[j];
      aBias[x * nb + b] = -8 * sum;
      aScale[x * nb + b] = fp16ToFp32(y[b].d);
    }
  }
}
