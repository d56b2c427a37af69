// AVX512_VNNI kernels for x86-64 (Ice Lake, Zen 4 and later). This file alone is compiled with
// -mavx512f -mavx512bw -mavx512vl -mavx512vnni on top of AVX2/FMA/F16C; its functions run only
// after cpuFeatures() said so. It works on 256-bit vectors: vpdpbusd does the unsigned×signed
// byte products and their sum into 32 bits in one instruction (maddubs + madd without VNNI), and
// the EVEX encoding gives 32 vector registers, enough for the sixteen accumulators of a 4×4 tile.
// Everything else falls through to the AVX2 set.
#include "cpu_features.h"
#include "kernels_simd.h"
#include "kernels_x86_q4_0_tile.h"

namespace {
bool avx512VnniRunsHere() { return cpuFeatures().avx512Vnni; }
}  // namespace

const SimdKernelSet kAvx512VnniKernels = {
    "avx512-vnni", avx512VnniRunsHere, q4_0_tile::dotRow, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
    nullptr,       nullptr,            q4_0_tile::dispatchTile,
};
