// Next-token sampling: repetition penalty, grammar mask, top-k, top-p, min-p, temperature, seeded
// draw. Temperature 0 is greedy (ties to the lowest id). Same seed + same settings = same tokens.
// Under a grammar a token the grammar alone decides is taken without a draw (token_mask.h).
#pragma once
#include <cstdint>
#include <deque>
#include <memory>
#include <string_view>
#include <vector>

#include "token_mask.h"

struct SamplerParams {
  float temperature = 0.8f;
  int32_t topK = 40;          // 0 = off
  float topP = 0.95f;         // 1 = off
  float minP = 0.05f;         // 0 = off
  float repeatPenalty = 1.0f; // 1 = off
  int32_t repeatLastN = 64;
  uint64_t seed = 0;
  // The tokens this sampler may still produce (max_tokens), or -1: under a grammar the answer is
  // closed within them (GrammarCursor::mask(tokensLeft)).
  int64_t maxTokens = -1;
};

class Sampler {
 public:
  explicit Sampler(const SamplerParams& params);
  // Picks the next token from logits [n] and remembers it for the repetition penalty.
  // With a draft (a token proposed by speculation, >= 0): greedy picks as without one; with a
  // temperature the draft is kept with its probability p(draft) under every setting here, and
  // otherwise the token is drawn from the others in proportion to their probabilities, so that
  // each token still comes out with exactly its probability (speculative sampling's rule for a
  // proposer that is certain of its one token).
  int32_t sample(const float* logits, int64_t n, int32_t draft = -1);
  // Adds a token (prompt or forced) to the repetition history without sampling.
  void accept(int32_t token);

  // Switches a grammar on (from its start rule, after reading `consumed`) or off (nullptr).
  // Returns false, leaving the grammar off, when the grammar does not admit `consumed`.
  bool setGrammar(std::shared_ptr<const GrammarBundle> grammar, std::string_view consumed = {});
  bool hasGrammar() const { return grammar_ != nullptr; }
  // The tokens the grammar decides from here, taken as sample() would take them one by one.
  std::vector<int32_t> takeForced();
  // The grammar admits nothing more (generation is over).
  bool grammarComplete() const { return grammar_ && grammar_->complete(); }
  // Tokens chosen among fewer than the grammar admits so that the answer ends within maxTokens.
  int64_t closingTokens() const { return closingTokens_; }

 private:
  double uniform();  // [0, 1)
  void remember(int32_t token);

  SamplerParams params_;
  uint64_t state_[4];
  std::deque<int32_t> recent_;
  std::vector<std::pair<float, int32_t>> candidates_;
  std::unique_ptr<GrammarCursor> grammar_;
  int64_t produced_ = 0;  // tokens returned by sample() and takeForced()
  int64_t closingTokens_ = 0;
};
