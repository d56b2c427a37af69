// What the CPU we run on can execute, read once at start. One binary per architecture runs on
// every CPU of it (a Pi 4 and a Pi 5 share the arm64 build); kernels are chosen from these flags.
#pragma once

struct CpuFeatures {
  // x86-64: AVX2, FMA and F16C together, with the OS saving YMM registers (XGETBV).
  bool avx2Fma = false;
  // x86-64: AVX-512 F/BW/VL with the OS saving ZMM state.
  bool avx512 = false;
  // x86-64: the above plus AVX512_VNNI (vpdpbusd; Ice Lake, Zen 4 and later).
  bool avx512Vnni = false;
  // x86-64: the above plus AVX512_VBMI (vpermb; Ice Lake, Zen 4 and later, not Cascade Lake).
  bool avx512Vbmi = false;
  // aarch64: Advanced SIMD, part of ARMv8.0 (Cortex-A72, Pi 4).
  bool neon = false;
  // aarch64: SDOT/UDOT (ARMv8.2 dotprod; Cortex-A76, Pi 5). Absent on the A72.
  bool neonDotprod = false;
};

const CpuFeatures& cpuFeatures();
