// Next-token sampling: repetition penalty, top-k, top-p, min-p, temperature, seeded draw.
// Temperature 0 is greedy (ties to the lowest id). Same seed + same settings = same tokens.
#pragma once
#include <cstdint>
#include <deque>
#include <vector>

struct SamplerParams {
  float temperature = 0.8f;
  int32_t topK = 40;          // 0 = off
  float topP = 0.95f;         // 1 = off
  float minP = 0.05f;         // 0 = off
  float repeatPenalty = 1.0f; // 1 = off
  int32_t repeatLastN = 64;
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplerParams& params);
  // Picks the next token from logits [n] and remembers it for the repetition penalty.
  int32_t sample(const float* logits, int64_t n);
  // Adds a token (prompt or forced) to the repetition history without sampling.
  void accept(int32_t token);

 private:
  double uniform();  // [0, 1)

  SamplerParams params_;
  uint64_t state_[4];
  std::deque<int32_t> recent_;
  std::vector<std::pair<float, int32_t>> candidates_;
};
