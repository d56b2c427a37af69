// The forward pass of a model of the architecture table over a batch of tokens from one or more
// sequences.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "kv_cache.h"
#include "model.h"
#include "residency.h"
#include "../kernels/thread_pool.h"

struct BatchToken {
  int32_t token;
  int32_t pos;       // position in its sequence
  int32_t seq;       // sequence slot in the KV cache
  bool wantLogits;   // compute the next-token logits after this token
};

struct ContextParams {
  int nCtx = 512;
  int nSeq = 1;
  int threads = 1;
  TensorType kvType = TensorType::F16;
};

class InferenceContext {
 public:
  InferenceContext(const Model& model, const ContextParams& params);

  // Runs the batch through the model. Within a sequence, tokens must come in order at the
  // positions kv().length(seq), +1, … . Returns the logits [nOut][nVocab] of the tokens
  // marked wantLogits, in batch order. Throws std::invalid_argument on a malformed batch.
  const std::vector<float>& decode(const std::vector<BatchToken>& batch);

  KvCache& kv() { return kv_; }
  const Model& model() const { return model_; }
  ThreadPool& pool() { return pool_; }
  const ContextParams& params() const { return params_; }
  // Streams and releases layers around each layer's compute; null: the kernel decides (unmanaged).
  void setResidency(ResidencyManager* residency) { residency_ = residency; }

 private:
  void validate(const std::vector<BatchToken>& batch) const;
  void attention(int layer, const std::vector<BatchToken>& batch);  // attention.cc

  const Model& model_;
  ContextParams params_;
  KvCache kv_;
  ThreadPool pool_;
  ResidencyManager* residency_ = nullptr;
  // scratch, sized for the largest batch seen
  std::vector<float> x_, xb_, q_, k_, v_, att_, gate_, up_, logits_;
  std::vector<float> scores_, attnQ_, attnOut_;  // attention's per-thread scratch (attention.cc)
  std::vector<int64_t> attnLen_;
  std::vector<uint16_t> qHalf_;
};
