#include "cpu_features.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif

namespace {

#if defined(__x86_64__) || defined(__i386__)
// XCR0 says which register files the OS saves on a context switch; a CPU flag alone is not
// enough (a kernel or hypervisor may leave AVX state off).
unsigned long long readXcr0() {
  unsigned int eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}
#endif

CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  unsigned int eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  const bool fma = ecx & (1u << 12), osxsave = ecx & (1u << 27), avx = ecx & (1u << 28),
             f16c = ecx & (1u << 29);
  if (!osxsave || !avx) return f;
  const unsigned long long xcr0 = readXcr0();
  const bool ymmSaved = (xcr0 & 0x6) == 0x6;         // SSE + AVX state
  const bool zmmSaved = (xcr0 & 0xE6) == 0xE6;       // + opmask, ZMM upper halves, ZMM16-31
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return f;
  const bool avx2 = ebx & (1u << 5);
  const bool avx512f = ebx & (1u << 16), avx512bw = ebx & (1u << 30), avx512vl = ebx & (1u << 31);
  f.avx2Fma = ymmSaved && avx2 && fma && f16c;
  f.avx512 = f.avx2Fma && zmmSaved && avx512f && avx512bw && avx512vl;
  f.avx512Vnni = f.avx512 && (ecx & (1u << 11));
  f.avx512Vbmi = f.avx512Vnni && (ecx & (1u << 1));
#elif defined(__aarch64__)
#if defined(__linux__)
  const unsigned long hwcap = getauxval(AT_HWCAP);
  f.neon = hwcap & HWCAP_ASIMD;
  f.neonDotprod = f.neon && (hwcap & HWCAP_ASIMDDP);
#else
  f.neon = true;  // Advanced SIMD is mandatory in AArch64
#endif
#endif
  return f;
}

}  // namespace

const CpuFeatures& cpuFeatures() {
  static const CpuFeatures features = detect();
  return features;
}
