// How fast this machine streams the mapped weights: the ceiling of decode.
//
// A decode step reads every weight a token passes through once (all layers and the output
// matrix), and on a CPU the multiply keeps up with memory, so tokens/s cannot exceed the rate at
// which the threads can read those bytes divided by their size. `alpaca bench` measures that rate
// with the same pool and mapping as the forward pass and reports decode as a share of it.
#pragma once
#include <cstddef>

#include "../model/model.h"
#include "thread_pool.h"

struct StreamProbe {
  size_t bytes = 0;     // read once: what one decode step reads of the weights
  double seconds = 0;
};

// Reads every byte of the weights a decode step uses once, split over the pool's threads.
StreamProbe streamDecodeWeights(ThreadPool& pool, const Model& model);
