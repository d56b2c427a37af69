// kernel-count: runs one kernel of the table (or, when built with ALPACA_LLAMA_CPP, one of
// llama.cpp's ggml_vec_dot_* functions) `reps` times on fixed random data, for
// cross/count-kernels.sh, which runs it under qemu-aarch64 with the instruction-counting plugin
// at two repetition counts and divides the difference by the work in between. Nothing is timed.
//   kernel-count SET TYPE PATH REPS [N] [NA]
//     SET   a kernel set's name (neon, neon-dotprod, scalar, ...) or llama.cpp
//     TYPE  q4_0, q4_1, q8_0, q2_K, q3_K, q4_K, q5_K, q6_K
//     PATH  dot (one row), rows (the decode kernel: its count of rows), panel (16 rows, NA
//           activation rows)
//     N     columns (default 4096), NA activation rows of a panel (default 16)
// Prints the result's checksum, so that no call can be left out, and for PATH rows the kernel's
// count of rows ("rows N").
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../native/kernels/kernel_table.h"

#if defined(ALPACA_LLAMA_CPP)
// ggml's CPU dot products (ggml/src/ggml-cpu/quants.h): s[0] = row vx · row vy, nrc = 1.
extern "C" {
#define ALPACA_GGML_DOT(name) \
  void name(int n, float* s, size_t bs, const void* vx, size_t bx, const void* vy, size_t by, int nrc);
ALPACA_GGML_DOT(ggml_vec_dot_q4_0_q8_0)
ALPACA_GGML_DOT(ggml_vec_dot_q4_1_q8_1)
ALPACA_GGML_DOT(ggml_vec_dot_q8_0_q8_0)
ALPACA_GGML_DOT(ggml_vec_dot_q2_K_q8_K)
ALPACA_GGML_DOT(ggml_vec_dot_q3_K_q8_K)
ALPACA_GGML_DOT(ggml_vec_dot_q4_K_q8_K)
ALPACA_GGML_DOT(ggml_vec_dot_q5_K_q8_K)
ALPACA_GGML_DOT(ggml_vec_dot_q6_K_q8_K)
#undef ALPACA_GGML_DOT
}
#endif

namespace {

[[noreturn]] void fail(const std::string& message) {
  std::fprintf(stderr, "kernel-count: %s\n", message.c_str());
  std::exit(2);
}

TensorType typeNamed(const std::string& name) {
  for (uint32_t id = 0; id < kernels::kTypeSlots; ++id) {
    const TypeTraits* t = typeTraits(id);
    if (t && name == t->name) return static_cast<TensorType>(id);
  }
  fail("unknown type " + name);
}

const kernels::KernelSet& setNamed(const std::string& name) {
  const kernels::KernelSets all = kernels::compiledSets();
  for (int i = 0; i < all.count; ++i) {
    if (name == all.sets[i]->name) {
      if (!all.sets[i]->runsHere()) fail("this CPU does not run the set " + name);
      return *all.sets[i];
    }
  }
  fail("no kernel set " + name);
}

// Random bytes with every fp16 factor a small normal number, and consistent Q8_K/Q8_1 sums, so
// that no kernel meets a NaN on its way.
std::vector<uint8_t> randomRows(TensorType t, int64_t n, int64_t count, std::mt19937& rng) {
  std::vector<uint8_t> bytes(rowBytes(t, n) * count);
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
  const TypeTraits& traits = traitsOf(t);
  const int64_t blocks = n / traits.blockSize * count;
  const uint16_t small = fp32ToFp16(0.01f);
  auto half = [&](int64_t b, size_t offset) { std::memcpy(&bytes[b * traits.blockBytes + offset], &small, 2); };
  for (int64_t b = 0; b < blocks; ++b) {
    switch (t) {
      case TensorType::Q4_0: half(b, offsetof(BlockQ4_0, d)); break;
      case TensorType::Q4_1: half(b, offsetof(BlockQ4_1, d)), half(b, offsetof(BlockQ4_1, m)); break;
      case TensorType::Q8_0: half(b, offsetof(BlockQ8_0, d)); break;
      case TensorType::Q8_1: half(b, offsetof(BlockQ8_1, d)), half(b, offsetof(BlockQ8_1, s)); break;
      case TensorType::Q2_K: half(b, offsetof(BlockQ2_K, d)), half(b, offsetof(BlockQ2_K, dmin)); break;
      case TensorType::Q3_K: half(b, offsetof(BlockQ3_K, d)); break;
      case TensorType::Q4_K: half(b, offsetof(BlockQ4_K, d)), half(b, offsetof(BlockQ4_K, dmin)); break;
      case TensorType::Q5_K: half(b, offsetof(BlockQ5_K, d)), half(b, offsetof(BlockQ5_K, dmin)); break;
      case TensorType::Q6_K: half(b, offsetof(BlockQ6_K, d)); break;
      case TensorType::Q8_K: {
        auto& y = reinterpret_cast<BlockQ8_K*>(bytes.data())[b];
        y.d = 0.01f;
        for (int g = 0; g < kQK_K / 16; ++g) {
          int sum = 0;
          for (int i = 0; i < 16; ++i) sum += y.qs[16 * g + i];
          y.bsums[g] = static_cast<int16_t>(sum);
        }
        break;
      }
      default: break;
    }
  }
  return bytes;
}

#if defined(ALPACA_LLAMA_CPP)
using GgmlDot = void (*)(int, float*, size_t, const void*, size_t, const void*, size_t, int);
GgmlDot ggmlDot(TensorType t) {
  switch (t) {
    case TensorType::Q4_0: return ggml_vec_dot_q4_0_q8_0;
    case TensorType::Q4_1: return ggml_vec_dot_q4_1_q8_1;
    case TensorType::Q8_0: return ggml_vec_dot_q8_0_q8_0;
    case TensorType::Q2_K: return ggml_vec_dot_q2_K_q8_K;
    case TensorType::Q3_K: return ggml_vec_dot_q3_K_q8_K;
    case TensorType::Q4_K: return ggml_vec_dot_q4_K_q8_K;
    case TensorType::Q5_K: return ggml_vec_dot_q5_K_q8_K;
    case TensorType::Q6_K: return ggml_vec_dot_q6_K_q8_K;
    default: fail("llama.cpp has no dot product counted here for this type");
  }
}
#endif

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) fail("usage: kernel-count SET TYPE PATH REPS [N] [NA]");
  const std::string setName = argv[1], path = argv[3];
  const TensorType type = typeNamed(argv[2]);
  const long reps = std::atol(argv[4]);
  const int64_t n = argc > 5 ? std::atoll(argv[5]) : 4096;
  const int64_t nA = argc > 6 ? std::atoll(argv[6]) : 16;
  const TypeTraits& traits = traitsOf(type);
  if (n <= 0 || n % traits.blockSize != 0 || nA <= 0) fail("N must be a positive multiple of the block size, NA positive");
  const TensorType aType = traits.dotWith;
  std::mt19937 rng(20240607);
  const int64_t wRows = path == "panel" ? kernels::kPanelRows : path == "rows" ? kernels::kPanelRows : 1;
  const auto w = randomRows(type, n, wRows, rng);
  const auto a = randomRows(aType, n, nA, rng);
  const size_t wStride = rowBytes(type, n), aStride = rowBytes(aType, n);
  std::vector<float> y(kernels::kPanelRows * nA);
  double checksum = 0;

  if (setName == "llama.cpp") {
#if defined(ALPACA_LLAMA_CPP)
    if (path != "dot") fail("llama.cpp: only dot is counted");
    const GgmlDot dot = ggmlDot(type);
    for (long rep = 0; rep < reps; ++rep) {
      float s = 0;
      dot(static_cast<int>(n), &s, 0, w.data(), 0, a.data(), 0, 1);
      checksum += s;
    }
#else
    fail("built without llama.cpp (cross/count-kernels.sh --llama-cpp DIR)");
#endif
  } else {
    const kernels::TypeKernels& k = setNamed(setName)[type];
    if (path == "dot") {
      if (!k.dot) fail(setName + " has no dot for " + traits.name);
      for (long rep = 0; rep < reps; ++rep) checksum += k.dot(n, w.data(), a.data());
    } else if (path == "rows") {
      if (!k.rows.run) fail(setName + " has no rows kernel for " + traits.name);
      std::printf("rows %d\n", k.rows.count);
      for (long rep = 0; rep < reps; ++rep) {
        k.rows.run(n, w.data(), wStride, a.data(), y.data());
        checksum += y[0];
      }
    } else if (path == "panel") {
      if (!k.panel.run) fail(setName + " has no panel kernel for " + traits.name);
      const int64_t aBlocks = n / traitsOf(aType).blockSize;
      std::vector<int32_t> bias(nA * aBlocks);
      std::vector<float> scale(nA * aBlocks);
      if (k.panel.terms) k.panel.terms(n, a.data(), aStride, nA, bias.data(), scale.data());
      std::vector<uint8_t> scratch(n / traits.blockSize * k.panel.scratchPerBlock + 64);
      void* aligned = scratch.data() + (64 - reinterpret_cast<uintptr_t>(scratch.data()) % 64) % 64;
      for (long rep = 0; rep < reps; ++rep) {
        k.panel.run(n, w.data(), wStride, kernels::kPanelRows, a.data(), aStride, k.panel.terms ? bias.data() : nullptr,
                    k.panel.terms ? scale.data() : nullptr, nA, y.data(), kernels::kPanelRows, aligned);
        checksum += y[0];
      }
    } else {
      fail("unknown path " + path);
    }
  }
  std::printf("checksum %g\n", checksum);
  return 0;
}
