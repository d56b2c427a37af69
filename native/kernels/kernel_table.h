// The kernel table. A kernel set is what one instruction-set level offers (the scalar references,
// AVX2, AVX-512 VNNI, NEON, ...): a table indexed by tensor type whose entry lists that type's
// kernel for each path of the engine,
//
//   dot         one weight row · one activation row (attention; every other path falls back to it)
//   rows        decode: `count` weight rows · the single activation row of a decode step
//   panel       batches: kPanelRows weight rows · every activation row, the weights rearranged
//               once per batch into per-thread scratch (never a second copy of the model)
//   quantize    float rows into this type, bit-identical to quantizeRow (the activation formats)
//   dequantize  rows of this type to float, bit-identical to dequantizeRow
//
// plus the few kernels not indexed by a type (attention over an fp16 KV cache: scoresF16, roundF16,
// weighF16). Each set
// is one constant table in its ISA's own source file (scalar.cc, x86/avx2.cc, arm/neon.cc, ...),
// and kernel_table.cc lists the sets compiled for the architecture, fastest first. At run time the
// engine takes, for each type and path, the entry of the fastest set this CPU runs that has one
// (bestKernels()); the scalar set comes last and has a dot product for every computable type and
// a quantizer for every activation format, so a type is computable everywhere as soon as it has
// its reference.
//
// A new type: its reference in scalar.cc, its entries in the sets that accelerate it, its cases
// in tools/kernel_check.cc (which walks every set, type and path). A new ISA: its source file with
// its table, one line in kernel_table.cc's list, its compiler flags in binding.gyp and the build
// scripts (cross/build-kernel-check.sh, cross/build-addon-arm64.sh, native/fuzz/build.sh).
//
// The rule for ISA sources: one binary runs on every CPU of its architecture, so nothing outside
// an ISA source is compiled for more than the baseline, and an ISA source must not instantiate
// templates or emit inline functions shared with other files (std containers, inline helpers of
// other headers, the accessors below at run time): the linker keeps one copy of each, and if it
// kept the one built with AVX2, baseline code would run AVX2 instructions on a CPU without them.
// Hence the tables are constexpr data (no code runs to build them) and shared kernel headers
// (x86/q4_0_tile.h, arm/neon_common.h, panel_pass.h) give each includer its own copy.
#pragma once
#include <cstddef>
#include <cstdint>

#include "../gguf/tensor_types.h"

namespace kernels {

// Dot product of one weight row (type w) with one activation row already in traitsOf(w).dotWith;
// n is a multiple of the weight's block size.
using VecDotFn = float (*)(int64_t n, const void* w, const void* a);

// The decode product: out[r] = dot(weight row r, activation row) for the entry's `count` weight
// rows, wStride bytes apart. One activation row has nothing to share but itself, so a rows
// kernel reads several weight rows per pass over each activation block and keeps up with memory.
using DotRowsFn = void (*)(int64_t n, const void* w, size_t wStride, const void* a, float* out);

// The panel product for batches of activation rows (a prompt, several running sequences):
// y[x·yStride + r] = dot(weight row r, activation row x) for r < nW (1..kPanelRows), x < nA;
// weight rows wStride bytes apart, activation rows aStride. `scratch` (the entry's
// scratchPerBlock bytes per weight block of a row, 64-byte aligned, owned by the calling thread)
// takes the panel's rows rearranged so that every activation row costs a few wide products per
// block for all rows at once, and no horizontal sum. aBias and aScale are the entry's per-batch
// activation terms ([nA][n / activation block size], from `terms`), or null when it has none.
// Entries of y past nW are left alone.
using PanelFn = void (*)(int64_t n, const void* w, size_t wStride, int nW, const void* a, size_t aStride,
                         const int32_t* aBias, const float* aScale, int64_t nA, float* y, size_t yStride,
                         void* scratch);
// Per-batch terms of a panel kernel's activation rows, computed once and shared by every thread
// and every matrix that takes the same activations (Q4_0: the nibble offset and the fp16 scale).
using PanelTermsFn = void (*)(int64_t n, const void* a, size_t aStride, int64_t nA, int32_t* bias, float* scale);
constexpr int kPanelRows = 16;

using QuantizeRowFn = void (*)(const float* src, void* dst, int64_t n);
using DequantizeRowFn = void (*)(const void* src, float* dst, int64_t n);

// Attention over an fp16 KV cache works on the m query heads that share one kv head (the heads
// of a group, for every row of a sequence in the batch), so that each cached key and value is
// read and widened once for all of them. A head's results never depend on m or on the heads it
// runs with.
//
// Scores: out[g·outStride + j] = dot(key row j, q_g) · scale for g < m, j < n; key rows `stride`
// bytes apart, each d fp16 values; q [m][d] floats, each exactly an fp16 value (the query rounded
// as the dot product takes it). Each dot is exactly the set's own F16 dot product (its order of
// sums), so the engine takes the scores from the set whose F16 dot it would use.
using ScoresF16Fn = void (*)(int64_t n, const void* keys, size_t stride, int64_t d, const float* q, int64_t m,
                             float scale, float* out, size_t outStride);

// Output: out[g·outStride + i] = Σ_{j < n[g]} p[g·pStride + j] · float(x_j[i]) for g < m, i < d,
// over fp16 rows x_j `stride` bytes apart; each head's sum runs in the order j = 0..n[g]-1 from
// +0, each term added by one fused multiply-add (rounded once), so every set gives the scalar
// reference's bits.
using WeighF16Fn = void (*)(int64_t m, const int64_t* n, const float* p, size_t pStride, const void* rows,
                            size_t stride, int64_t d, float* out, size_t outStride);

// x[i] = float(half(x[i])) for i < n: each float rounded to fp16 (to nearest even) and back, as
// attention's probabilities are before they weigh the fp16 values.
using RoundF16Fn = void (*)(int64_t n, float* x);

// s[0..n) = softmax(s[0..n)), each probability then rounded to fp16 as the values it weighs are
// (n ≥ 1). The scalar reference takes std::exp and a double sum; a SIMD set's exponential may
// differ from it by a few units in the last place of a float, far below the fp16 rounding after.
using SoftmaxF16Fn = void (*)(int64_t n, float* s);

struct RowsKernel {
  DotRowsFn run = nullptr;
  int count = 0;  // weight rows per call; divides kPanelRows
};

struct PanelKernel {
  PanelFn run = nullptr;
  PanelTermsFn terms = nullptr;  // nullptr: the kernel reads all it needs from the activation rows
  size_t scratchPerBlock = 0;    // bytes of scratch per weight block of a row
};

// One type's kernels in one set; nullptr where the set has nothing (the next set's entry, finally
// the scalar reference's, serves).
struct TypeKernels {
  VecDotFn dot = nullptr;
  RowsKernel rows;
  PanelKernel panel;
  QuantizeRowFn quantize = nullptr;
  DequantizeRowFn dequantize = nullptr;
};

// TensorType ids are below 31 (BF16 = 30); one slot per id keeps the lookup a plain index.
constexpr size_t kTypeSlots = 31;

struct KernelSet {
  const char* name;    // "scalar", "avx2", "avx512-vnni", "avx512-vbmi", "neon", "neon-dotprod"
  bool (*runsHere)();  // this CPU (and OS) can execute the set
  TypeKernels types[kTypeSlots] = {};
  WeighF16Fn weighF16 = nullptr;
  ScoresF16Fn scoresF16 = nullptr;  // null: the engine calls the F16 dot per key row
  RoundF16Fn roundF16 = nullptr;
  SoftmaxF16Fn softmaxF16 = nullptr;

  constexpr TypeKernels& operator[](TensorType t) { return types[static_cast<size_t>(t)]; }
  constexpr const TypeKernels& operator[](TensorType t) const { return types[static_cast<size_t>(t)]; }
};

// The sets compiled into this binary for its architecture, fastest first, the scalar set last.
struct KernelSets {
  const KernelSet* const* sets;
  int count;
};
KernelSets compiledSets();

// The scalar references: a dot product for every computable type, the activation quantizers.
const KernelSet& scalarKernels();

// For every type and path, the entry of the fastest set this CPU runs that has one, the fastest
// weighF16 and roundF16, and the scoresF16 of the set that gives the F16 dot (null if that set has
// none); resolved once. Never missing what the scalar set has.
const KernelSet& bestKernels();

// Which entry a path of a type takes from a set (for naming the set that serves it).
enum class Path { kDot, kRows, kPanel, kQuantize, kDequantize };
bool hasPath(const TypeKernels& k, Path path);
// The name of the set bestKernels() took this path of this type from, or nullptr if none has it.
const char* bestSetName(TensorType t, Path path);

// Q4_0 panels' per-batch terms, for every set's Q4_0 panel kernel: per activation block b of row
// x, bias = −8·Σ quants (the offset of the unsigned nibbles) and scale = its fp16 scale as a float.
void q4_0PanelActivationTerms(int64_t n, const void* a, size_t aStride, int64_t nA, int32_t* bias, float* scale);
// Q8_0 panels' per-batch terms (x86): bias = −128·Σ quants of activation block b of row x (the
// offset of VNNI's unsigned weight bytes w+128), scale = its fp16 scale as a float.
void q8_0PanelActivationTerms(int64_t n, const void* a, size_t aStride, int64_t nA, int32_t* bias, float* scale);
// The scratch of a Q4_0 panel per block. x86: [8 groups][16 rows][4 nibbles], [16] scales as
// floats; arm64 orders the same bytes by quads of rows (arm/neon_common.h).
constexpr size_t kQ4_0PanelBytesPerBlock = 8 * 64 + 16 * 4;

}  // namespace kernels
