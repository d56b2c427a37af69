#pragma once
#include <cstdint>

#include "tensor_types.h"
#include "thread_pool.h"

// Y[nX][rows] = X[nX][cols] · W^T, W a row-major [rows][cols] matrix of type wType.
// Each activation row is converted once into the weight type's dot format.
void matmul(ThreadPool& pool, const uint8_t* W, TensorType wType, int64_t rows, int64_t cols, const float* X, int64_t nX,
            float* Y);
