#include "sampler.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <unordered_map>

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

Sampler::Sampler(const SamplerParams& params) : params_(params) {
  // xoshiro256** seeded through splitmix64: the same on every platform and compiler.
  uint64_t s = params.seed;
  for (uint64_t& w : state_) w = splitmix64(s);
}

double Sampler::uniform() {
  const uint64_t result = rotl(state_[1] * 5, 7) * 9;
  const uint64_t t = state_[1] << 17;
  state_[2] ^= state_[0];
  state_[3] ^= state_[1];
  state_[1] ^= state_[2];
  state_[0] ^= state_[3];
  state_[2] ^= t;
  state_[3] = rotl(state_[3], 45);
  return static_cast<double>(result >> 11) * 0x1.0p-53;
}

bool Sampler::setGrammar(std::shared_ptr<const GrammarBundle> grammar, std::string_view consumed) {
  grammar_.reset();
  if (!grammar) return true;
  auto cursor = std::make_unique<GrammarCursor>(std::move(grammar));
  if (!cursor->acceptText(consumed)) return false;
  grammar_ = std::move(cursor);
  return true;
}

std::vector<int32_t> Sampler::takeForced() {
  std::vector<int32_t> taken;
  if (!grammar_) return taken;
  for (;;) {
    const std::deque<int32_t>& f = grammar_->forced();
    if (f.empty()) return taken;
    const int32_t token = f.front();
    if (!grammar_->accept(token)) throw std::logic_error("grammar: a forced token was refused");
    remember(token);
    taken.push_back(token);
    produced_++;
  }
}

void Sampler::accept(int32_t token) { remember(token); }

void Sampler::remember(int32_t token) {
  if (params_.repeatLastN <= 0) return;
  recent_.push_back(token);
  while (recent_.size() > static_cast<size_t>(params_.repeatLastN)) recent_.pop_front();
}

int32_t Sampler::sample(const float* logits, int64_t n, int32_t draft) {
  // this token included
  const int64_t tokensLeft = params_.maxTokens < 0 ? -1 : std::max<int64_t>(params_.maxTokens - produced_, 1);
  produced_++;
  if (grammar_) {
    // A forced token needs no logits and no draw (takeForced() takes the same tokens).
    const std::deque<int32_t>& f = grammar_->forced();
    if (!f.empty()) {
      const int32_t token = f.front();
      grammar_->accept(token);
      remember(token);
      return token;
    }
  }
  candidates_.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i++) candidates_[i] = {logits[i], static_cast<int32_t>(i)};

  // ---- repetition penalty: each recent token once, positive logits divided, negative multiplied
  if (params_.repeatPenalty != 1.0f && !recent_.empty()) {
    std::unordered_map<int32_t, bool> seen;
    for (int32_t tok : recent_) {
      if (tok < 0 || tok >= n || seen[tok]) continue;
      seen[tok] = true;
      float& v = candidates_[tok].first;
      v = v > 0 ? v / params_.repeatPenalty : v * params_.repeatPenalty;
    }
  }

  // ---- grammar: only the tokens it admits here (end-of-generation only where it may end)
  if (grammar_) {
    const TokenMask& mask = grammar_->mask(tokensLeft);
    if (grammar_->closing()) closingTokens_++;
    const TokenIndex& index = grammar_->tokens();
    size_t kept = 0;
    for (size_t i = 0; i < candidates_.size(); i++) {
      const int32_t id = candidates_[i].second;
      if (id < index.nVocab && mask.allows(index, id)) candidates_[kept++] = candidates_[i];
    }
    candidates_.resize(kept);
    if (kept == 0) throw std::runtime_error("the grammar admits no token of this vocabulary here");
    if (kept == 1) {
      const int32_t token = candidates_[0].second;
      grammar_->accept(token);
      remember(token);
      return token;
    }
  }

  // Highest logit first, ties to the lowest id.
  auto better = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };

  int32_t chosen;
  if (params_.temperature <= 0.0f) {
    chosen = std::min_element(candidates_.begin(), candidates_.end(), better)->second;
  } else {
    // ---- top-k
    size_t k = candidates_.size();
    if (params_.topK > 0 && static_cast<size_t>(params_.topK) < k) k = static_cast<size_t>(params_.topK);
    std::partial_sort(candidates_.begin(), candidates_.begin() + k, candidates_.end(), better);
    candidates_.resize(k);
    // ---- softmax over the survivors (before temperature, as top-p/min-p see it)
    std::vector<double> p(k);
    const float maxLogit = candidates_[0].first;
    double sum = 0;
    for (size_t i = 0; i < k; i++) sum += p[i] = std::exp(static_cast<double>(candidates_[i].first - maxLogit));
    for (double& v : p) v /= sum;
    // ---- top-p: the smallest prefix whose mass reaches top_p
    if (params_.topP < 1.0f) {
      double cum = 0;
      size_t keep = k;
      for (size_t i = 0; i < k; i++) {
        cum += p[i];
        if (cum >= params_.topP) { keep = i + 1; break; }
      }
      k = keep;
    }
    // ---- min-p: drop tokens less likely than min_p × the best one
    if (params_.minP > 0.0f) {
      size_t keep = 1;
      while (keep < k && p[keep] >= params_.minP * p[0]) keep++;
      k = keep;
    }
    // ---- temperature and the draw
    std::vector<double> w(k);
    double total = 0;
    for (size_t i = 0; i < k; i++)
      total += w[i] = std::exp(static_cast<double>(candidates_[i].first - maxLogit) / params_.temperature);
    // a draft is kept with its probability; otherwise it leaves the draw, which takes the rest
    size_t drafted = k;
    for (size_t i = 0; draft >= 0 && i < k; i++)
      if (candidates_[i].second == draft) drafted = i;
    if (drafted < k) {
      if (uniform() * total < w[drafted]) {
        chosen = draft;
        if (grammar_ && !grammar_->accept(chosen)) throw std::logic_error("grammar: the sampled token was refused");
        remember(chosen);
        return chosen;
      }
      total -= w[drafted];
      w[drafted] = 0;
    }
    double r = uniform() * total;
    chosen = candidates_[k - 1].second;
    for (size_t i = 0; i < k; i++) {
      r -= w[i];
      if (r < 0) { chosen = candidates_[i].second; break; }
    }
    if (chosen == draft && k > 1) {  // rounding left r ≥ 0 to the end and the draft is last: take the last other
      for (size_t i = k; i-- > 0;)
        if (i != drafted) { chosen = candidates_[i].second; break; }
    }
  }
  if (grammar_ && !grammar_->accept(chosen)) throw std::logic_error("grammar: the sampled token was refused");
  remember(chosen);
  return chosen;
}
