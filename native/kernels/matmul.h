// The matrix product of the forward pass: every weight matrix times a batch of activations.
#pragma once
#include <cstdint>

#include "../gguf/tensor_types.h"

class ThreadPool;

// Y[nX][rows] = X[nX][cols] · W^T, with W[rows][cols] in wType (rows of rowBytes(wType, cols)).
// Each activation row is converted once to traitsOf(wType).dotWith; the weight rows are split
// over the pool's threads, and each weight row is used for all activation rows (a whole prompt
// batch, or every running sequence) while it is in cache. cols is a multiple of wType's block.
void matmul(ThreadPool& pool, const uint8_t* W, TensorType wType, int64_t rows, int64_t cols,
            const float* X, int64_t nX, float* Y);

// One weight matrix of a group that shares its input.
struct MatmulTarget {
  const uint8_t* W;   // [rows][cols] in type
  TensorType type;
  int64_t rows;
  float* Y;           // [nX][rows]
};

// Y_i = X · W_i^T for every target in one pass of the pool (q, k and v; gate and up): the input
// is converted once per dot format, and the threads split the rows of all targets together, so
// a decode step waits at one barrier instead of one per matrix.
void matmulGroup(ThreadPool& pool, const MatmulTarget* targets, int count, int64_t cols, const float* X, int64_t nX);
