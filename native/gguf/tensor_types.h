// Tensor element formats of GGUF files: ids, block layouts and conversions. Layouts are the
// published GGUF ones (ggml-common.h); every struct is packed exactly as it sits in the file. The
// kernels that multiply them are ../kernels/kernel_table.h's business.
#pragma once
#include <cstddef>
#include <cstdint>

enum class TensorType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15, BF16 = 30,
};

constexpr int kQK = 32;     // elements per block of the 32-element formats
constexpr int kQK_K = 256;  // elements per super-block of the K formats

#pragma pack(push, 1)
struct BlockQ4_0 { uint16_t d; uint8_t qs[kQK / 2]; };                    // 18 bytes
struct BlockQ4_1 { uint16_t d; uint16_t m; uint8_t qs[kQK / 2]; };        // 20 bytes
struct BlockQ5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[kQK / 2]; };     // 22 bytes: qh bit j = 5th bit of element j
struct BlockQ5_1 { uint16_t d; uint16_t m; uint8_t qh[4]; uint8_t qs[kQK / 2]; };  // 24 bytes
struct BlockQ8_0 { uint16_t d; int8_t qs[kQK]; };                         // 34 bytes
struct BlockQ8_1 { uint16_t d; uint16_t s; int8_t qs[kQK]; };             // 36 bytes: s = d * sum(qs)
struct BlockQ2_K { uint8_t scales[kQK_K / 16]; uint8_t qs[kQK_K / 4]; uint16_t d; uint16_t dmin; };        // 84
struct BlockQ3_K { uint8_t hmask[kQK_K / 8]; uint8_t qs[kQK_K / 4]; uint8_t scales[12]; uint16_t d; };     // 110
struct BlockQ4_K { uint16_t d; uint16_t dmin; uint8_t scales[12]; uint8_t qs[kQK_K / 2]; };                 // 144
struct BlockQ5_K { uint16_t d; uint16_t dmin; uint8_t scales[12]; uint8_t qh[kQK_K / 8]; uint8_t qs[kQK_K / 2]; };  // 176
struct BlockQ6_K { uint8_t ql[kQK_K / 2]; uint8_t qh[kQK_K / 4]; int8_t scales[kQK_K / 16]; uint16_t d; };  // 210
struct BlockQ8_K { float d; int8_t qs[kQK_K]; int16_t bsums[kQK_K / 16]; };                                   // 292
#pragma pack(pop)

static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20, "GGUF block layout");
static_assert(sizeof(BlockQ5_0) == 22 && sizeof(BlockQ5_1) == 24, "GGUF block layout");
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ8_1) == 36, "GGUF block layout");
static_assert(sizeof(BlockQ2_K) == 84 && sizeof(BlockQ3_K) == 110, "GGUF block layout");
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176, "GGUF block layout");
static_assert(sizeof(BlockQ6_K) == 210 && sizeof(BlockQ8_K) == 292, "GGUF block layout");

struct TypeTraits {
  const char* name;     // "q4_0"
  int64_t blockSize;    // elements per block
  size_t blockBytes;    // bytes per block
  bool computable;      // the engine can multiply a weight of this type
  TensorType dotWith;   // the format activations are converted to for its dot product
};

// nullptr for an id this engine does not know.  (BF16 is known but not computable: it can be read
// and converted, not multiplied.)
const TypeTraits* typeTraits(uint32_t type);
inline const TypeTraits& traitsOf(TensorType t) { return *typeTraits(static_cast<uint32_t>(t)); }
// Bytes of a row of n elements (n must be a multiple of the block size; throws std::invalid_argument
// for an unknown type).
size_t rowBytes(TensorType type, int64_t n);

float fp16ToFp32(uint16_t h);
uint16_t fp32ToFp16(float f);  // round to nearest even, as F16C does

// Converts n elements of a row to float. n is a multiple of the block size. Every known type.
void dequantizeRow(TensorType type, const void* src, float* dst, int64_t n);
// Converts n floats into `type` (F32, F16, Q8_0, Q8_1, Q8_K, and Q4_0/Q4_1 for tests and quantize).
void quantizeRow(TensorType type, const float* src, void* dst, int64_t n);
