// NEON kernels with SDOT (ARMv8.2 dotprod: Cortex-A76, Raspberry Pi 5). Only this file is built
// with +dotprod; it runs after getauxval(AT_HWCAP) reported ASIMDDP. SDOT sums four int8
// products straight into each int32 lane, exact for every int8 input, so one SDOT replaces the
// multiply-accumulate-and-widen sequence of the ARMv8.0 kernels. The float kernels and the
// quantizer gain nothing from dotprod and stay those of kernels_neon.cc.
#include "kernels_neon_impl.h"

#include "cpu_features.h"
#include "kernels_simd.h"

namespace {

struct Sdot {
  static inline int32x4_t dot32(int8x16_t x0, int8x16_t a0, int8x16_t x1, int8x16_t a1) {
    return vdotq_s32(vdotq_s32(vdupq_n_s32(0), x0, a0), x1, a1);
  }
  static inline int32x4_t dot16(int8x16_t x, int8x16_t a) { return vdotq_s32(vdupq_n_s32(0), x, a); }
  static inline int32x4_t dot32Bytes(int8x16_t x0, int8x16_t a0, int8x16_t x1, int8x16_t a1) {
    return dot32(x0, a0, x1, a1);
  }
};

float dotQ4_0Q8_0NeonDotprod(int64_t n, const void* w, const void* a) { return neon::dotQ4_0Q8_0<Sdot>(n, w, a); }
float dotQ8_0Q8_0NeonDotprod(int64_t n, const void* w, const void* a) { return neon::dotQ8_0Q8_0<Sdot>(n, w, a); }
float dotQ4_1Q8_1NeonDotprod(int64_t n, const void* w, const void* a) { return neon::dotQ4_1Q8_1<Sdot>(n, w, a); }
float dotQ4_KQ8_KNeonDotprod(int64_t n, const void* w, const void* a) { return neon::dotQ4_KQ8_K<Sdot>(n, w, a); }
float dotQ5_KQ8_KNeonDotprod(int64_t n, const void* w, const void* a) { return neon::dotQ5_KQ8_K<Sdot>(n, w, a); }
float dotQ6_KQ8_KNeonDotprod(int64_t n, const void* w, const void* a) { return neon::dotQ6_KQ8_K<Sdot>(n, w, a); }

bool dotprodRunsHere() { return cpuFeatures().neonDotprod; }

}  // namespace

const SimdKernelSet kNeonDotprodKernels = {
    "neon-dotprod",         dotprodRunsHere,        dotQ4_0Q8_0NeonDotprod, dotQ8_0Q8_0NeonDotprod,
    dotQ4_1Q8_1NeonDotprod, dotQ4_KQ8_KNeonDotprod, dotQ5_KQ8_KNeonDotprod, dotQ6_KQ8_KNeonDotprod,
    nullptr,                nullptr,                nullptr,                nullptr,
    nullptr,
};
