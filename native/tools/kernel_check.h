// What the parts of kernel_check (kernel_check.cc, kernel_check_f16.cc) share: the tally, the
// random inputs and float identity, and the checks each part defines for the other.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "../kernels/kernel_table.h"

namespace kernel_check {

extern int passed, failed;
// Counts a check; prints it when it failed.
void report(bool ok, const std::string& what);
extern std::mt19937 rng;
int randomInt(int lo, int hi);
float randomFloat(float lo, float hi);
// Bit-identical floats, any NaN equal to any NaN.
bool sameFloat(float a, float b);

// kernel_check.cc: a random row of n elements of type t, scales 1.0 (`unit`, exact mode) or
// small realistic values; activation rows (Q8_0, Q8_1, Q8_K) with consistent block sums.
std::vector<uint8_t> randomWeights(TensorType t, int64_t n, bool unit);
std::vector<uint8_t> randomActivations(TensorType t, int64_t n, bool unit);

// kernel_check_batch.cc
void checkBatchEqualsDecode();

// kernel_check_f16.cc
void checkDequantizeF16(const kernels::KernelSet& set);
void checkQuantizeF16(const kernels::KernelSet& set);
void checkWeighF16(const kernels::KernelSet& set);
void checkScoresF16(const kernels::KernelSet& set);
void checkRoundF16(const kernels::KernelSet& set);
void checkSoftmaxF16(const kernels::KernelSet& set);

}  // namespace kernel_check
