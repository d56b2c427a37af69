// SIMD kernel sets, one per instruction-set level, each defined in its own source file compiled
// with that level's flags (kernels_avx2.cc, kernels_neon.cc, kernels_neon_dotprod.cc). Nothing
// outside those files is compiled for a newer CPU than the baseline of the architecture, so one
// binary runs everywhere and picks a set at run time from cpuFeatures().
//
// The sets enter the dispatch table of kernels.h through one registrar in kernels_simd.cc rather
// than one per ISA file: the ISA files are built as static libraries (their own compiler flags),
// and a linker drops a library member that nothing references, static registrar and all.
// Listing the sets here also lets kernel_check test every set the CPU runs, not only the best.
//
// An ISA file must not instantiate templates or inline functions shared with other files (std
// containers, inline helpers of other headers): the linker keeps one copy of each, and if it
// kept the one built with AVX2, baseline code would run AVX2 instructions on a CPU without them.
#pragma once
#include "../gguf/tensor_types.h"

using QuantizeRowFn = void (*)(const float* src, void* dst, int64_t n);
// out[j·4 + r] = dot(Q4_0 weight row r, Q8_0 activation row j) for r < 4 and j < nA (1..4); weight
// rows wStride bytes apart, activation rows aStride. A decode step (nA = 1) shares each
// activation block among four weight rows; a prompt batch also shares each weight block among
// four activation rows.
using DotQ4_0TileFn = void (*)(int64_t n, const void* w, size_t wStride, const void* a, size_t aStride, int nA,
                               float* out);

// The Q4_0 panel product for batches of activation rows (a prompt, several running sequences):
// y[x·yStride + r] = dot(Q4_0 weight row r, Q8_0 activation row x) for r < nW (1..16), x < nA.
// The panel's weight rows are first unpacked once into `panel` (kQ4_0PanelBytesPerBlock bytes per
// block, 64-byte aligned, owned by the caller) in an order where each 32-bit lane of a vector
// belongs to one weight row; every activation row then costs eight byte dot products per block
// for all sixteen rows, and no horizontal sum. aBias and aScale ([nA][n/32]) come from
// q4_0PanelActivationTerms.
using GemmQ4_0Fn = void (*)(int64_t n, const void* w, size_t wStride, int nW, const void* a, size_t aStride,
                            const int32_t* aBias, const float* aScale, int64_t nA, float* y, size_t yStride,
                            void* panel);
constexpr int kQ4_0PanelRows = 16;
// x86: [8 groups][16 rows][4 nibbles], [16] scales; arm64 orders the same bytes by quads of rows
// (kernels_neon_impl.h).
constexpr size_t kQ4_0PanelBytesPerBlock = 8 * 64 + 16 * 4;

// Per activation block b of row x: aBias = −8·Σ quants (the offset of the unsigned nibbles) and
// aScale = its scale as a float. Baseline code, shared by every set's panel kernel.
void q4_0PanelActivationTerms(int64_t n, const void* a, size_t aStride, int64_t nA, int32_t* aBias, float* aScale);

// The decode product: out[r] = dot(Q4_0 weight row r, Q8_0 activation row) for the
// kQ4_0RowsPerCall weight rows wStride bytes apart. One activation row has nothing to share but
// itself, so this is the 4-row tile made lean enough to keep up with memory.
using DotQ4_0RowsFn = void (*)(int64_t n, const void* w, size_t wStride, const void* a, float* out);
constexpr int kQ4_0RowsPerCall = 8;

// fp16 rows, the KV cache's default type: attention converts every query head to fp16, stores
// every new key and value, and weighs every value row of the context into its output, so at a
// few hundred cells these loops cost as much as a weight matrix. The conversions are
// bit-identical to fp16ToFp32 / fp32ToFp16 for every value but a signalling NaN (which the
// hardware quiets). weigh is attention's output for one head: out[i] = Σ_j p[j] · float(x_j[i])
// over n fp16 rows x_j, `stride` bytes apart, i < d; the sum runs in the order j = 0..n-1 from
// +0, each term multiplied then added, so it equals the loop of axpys it replaces bit for bit,
// with out held in registers instead of loaded and stored per row.
using F16ToF32Fn = void (*)(const void* src, float* dst, int64_t n);
using F32ToF16Fn = void (*)(const float* src, void* dst, int64_t n);
using WeighF16Fn = void (*)(int64_t n, const float* p, const void* rows, size_t stride, int64_t d, float* out);
struct F16RowKernels {
  F16ToF32Fn toF32;
  F32ToF16Fn toF16;
  WeighF16Fn weigh;
};

struct SimdKernelSet {
  const char* name;      // "avx512-vbmi", "avx512-vnni", "avx2", "neon", "neon-dotprod"
  bool (*runsHere)();    // this CPU (and OS) can execute the set
  // Dot products, same contract as VecDotFn; nullptr where the set has nothing faster than the
  // set below it (the dispatcher then falls through to the next set, finally to scalar).
  VecDotFn q4_0;   // Q4_0 · Q8_0
  VecDotFn q8_0;   // Q8_0 · Q8_0
  VecDotFn q4_1;   // Q4_1 · Q8_1
  VecDotFn q4_K;   // Q4_K · Q8_K
  VecDotFn q5_K;   // Q5_K · Q8_K
  VecDotFn q6_K;   // Q6_K · Q8_K
  VecDotFn f16;    // F16 · F16
  VecDotFn f32;    // F32 · F32
  // Bit-identical to the scalar quantizeRow(Q8_0, ...).
  QuantizeRowFn quantizeRowQ8_0;
  DotQ4_0TileFn q4_0Tile;  // nullptr: none (matmul then takes one row at a time)
  GemmQ4_0Fn q4_0Panel;    // nullptr: none (matmul then uses the tile for batches too)
  F16RowKernels f16Rows;   // all nullptr: none (the scalar references then)
  DotQ4_0RowsFn q4_0Rows;  // nullptr: none (matmul then uses the tile for decode)

  VecDotFn dotFor(TensorType weightType) const;
};

// The sets compiled into this binary for its architecture, fastest first (may be empty).
struct SimdKernelSets { const SimdKernelSet* const* sets; int count; };
SimdKernelSets compiledSimdKernelSets();

// The fastest SIMD Q8_0 quantizer this CPU runs, or nullptr (then use quantizeRow).
QuantizeRowFn bestSimdQuantizeRowQ8_0();
// The name of the set whose dot product the engine uses for weights of this type on this CPU
// ("avx512-vnni", "avx2", "neon-dotprod", "neon"), or nullptr when it uses the scalar reference.
const char* simdKernelSetNameFor(TensorType weightType);
// The fastest Q4_0 tile kernel this CPU runs, or nullptr.
DotQ4_0TileFn bestSimdDotQ4_0Tile();
// The fastest Q4_0 panel kernel this CPU runs, or nullptr.
GemmQ4_0Fn bestSimdGemmQ4_0();
// The fastest Q4_0 decode kernel (eight rows, one activation row) this CPU runs, or nullptr.
DotQ4_0RowsFn bestSimdDotQ4_0Rows();
// The fp16 row kernels of the fastest set that has them, else the scalar references; never null.
const F16RowKernels& bestF16RowKernels();

#if defined(__x86_64__)
extern const SimdKernelSet kAvx512VbmiKernels;  // the Q4_0 decode rows only
extern const SimdKernelSet kAvx512VnniKernels;  // Q4_0 tile only; the rest falls through to AVX2
extern const SimdKernelSet kAvx2Kernels;
#endif
#if defined(__aarch64__)
extern const SimdKernelSet kNeonKernels;
extern const SimdKernelSet kNeonDotprodKernels;
extern const SimdKernelSet kNeonSdotEmulatedKernels;  // Q4_0 only; checked, never the fastest
#endif
