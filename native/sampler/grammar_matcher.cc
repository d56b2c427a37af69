#include "grammar_matcher.h"

#include <algorithm>
#include <stdexcept>

namespace {
// A state with more stacks than this is a grammar so ambiguous that every byte would cost
// milliseconds; it is refused instead of slowing every other request down.
constexpr size_t kMaxStacksPerState = 4096;
constexpr size_t kMaxExpansionSteps = 1u << 20;

uint64_t hashStacks(const uint32_t* s, size_t n) {
  uint64_t h = 1469598103934665603ull ^ n;
  for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
  return h;
}
}  // namespace

GrammarMatcher::GrammarMatcher(std::shared_ptr<const CompiledGrammar> grammar)
    : grammar_(std::move(grammar)), nClasses_(grammar_->nByteClasses) {
  nodes_.push_back({0, 0});  // node 0: the empty stack
  nodeDistance_.push_back(0);
  resetTables();
  std::vector<uint32_t> stacks;
  for (uint32_t alt : grammar_->ruleAlternatives[grammar_->root]) expand(alt, 0, stacks);
  start_ = intern(stacks);
}

void GrammarMatcher::resetTables() {
  stateStacks_.clear();
  stateStart_.assign(1, 0);
  accepting_.clear();
  distance_.clear();
  stateIds_.clear();
  transitions_.clear();
  selfLoops_.clear();
  selfLoopKnown_.clear();
  // state 0: dead, every transition back to itself
  stateStart_.push_back(0);
  accepting_.push_back(0);
  distance_.push_back(CompiledGrammar::kNoCompletion);
  transitions_.assign(nClasses_, kDead);
}

uint32_t GrammarMatcher::node(uint32_t pos, uint32_t parent) {
  const uint64_t key = (static_cast<uint64_t>(pos) << 32) | parent;
  auto [it, fresh] = nodeIds_.emplace(key, static_cast<uint32_t>(nodes_.size()));
  if (fresh) {
    nodes_.push_back({pos, parent});
    const uint64_t d = uint64_t{grammar_->shortest[pos]} + nodeDistance_[parent];
    nodeDistance_.push_back(static_cast<uint32_t>(std::min<uint64_t>(d, CompiledGrammar::kNoCompletion)));
  }
  return it->second;
}

void GrammarMatcher::expand(uint32_t pos, uint32_t parent, std::vector<uint32_t>& out) {
  const CompiledGrammar& g = *grammar_;
  work_.clear();
  seen_.clear();
  work_.push_back({pos, parent});
  size_t steps = 0;
  while (!work_.empty()) {
    auto [p, par] = work_.back();
    work_.pop_back();
    if (!seen_.emplace((static_cast<uint64_t>(p) << 32) | par, true).second) continue;
    if (++steps > kMaxExpansionSteps) throw std::runtime_error("the grammar is too ambiguous to follow (too many parses at once)");
    const GrammarSymbol s = g.symbols[p];
    if (s.kind == GrammarSymbol::Bytes) {
      out.push_back(node(p, par));
    } else if (s.kind == GrammarSymbol::End) {
      if (par == 0) out.push_back(0);
      else work_.push_back({nodes_[par].pos, nodes_[par].parent});
    } else {
      // The continuation after the reference; when the reference ends its alternative, the rule's
      // own parent is the continuation (no node: `x*` does not deepen the stack).
      const uint32_t cont = g.symbols[p + 1].kind == GrammarSymbol::End ? par : node(p + 1, par);
      const auto& alts = g.ruleAlternatives[s.value];
      for (auto it = alts.rbegin(); it != alts.rend(); ++it) work_.push_back({*it, cont});
    }
  }
}

uint32_t GrammarMatcher::intern(std::vector<uint32_t>& stacks) {
  std::sort(stacks.begin(), stacks.end());
  stacks.erase(std::unique(stacks.begin(), stacks.end()), stacks.end());
  if (stacks.empty()) return kDead;
  if (stacks.size() > kMaxStacksPerState) throw std::runtime_error("the grammar is too ambiguous to follow (too many parses at once)");
  const uint64_t h = hashStacks(stacks.data(), stacks.size());
  auto range = stateIds_.equal_range(h);
  for (auto it = range.first; it != range.second; ++it) {
    const uint32_t s = it->second;
    const uint32_t n = stateStart_[s + 1] - stateStart_[s];
    if (n == stacks.size() && std::equal(stacks.begin(), stacks.end(), stateStacks_.begin() + stateStart_[s])) return s;
  }
  const auto id = static_cast<uint32_t>(accepting_.size());
  stateStacks_.insert(stateStacks_.end(), stacks.begin(), stacks.end());
  stateStart_.push_back(static_cast<uint32_t>(stateStacks_.size()));
  accepting_.push_back(stacks[0] == 0 ? 1 : 0);
  uint32_t nearest = CompiledGrammar::kNoCompletion;
  for (uint32_t n : stacks) nearest = std::min(nearest, nodeDistance_[n]);
  distance_.push_back(nearest);
  transitions_.resize(transitions_.size() + nClasses_, kUnknown);
  stateIds_.emplace(h, id);
  return id;
}

uint32_t GrammarMatcher::computeStep(uint32_t state, uint32_t cls) {
  const CompiledGrammar& g = *grammar_;
  const uint8_t byte = g.classByte[cls];
  std::vector<uint32_t> next;
  for (uint32_t i = stateStart_[state]; i < stateStart_[state + 1]; i++) {
    const uint32_t n = stateStacks_[i];
    if (n == 0) continue;
    const Node top = nodes_[n];
    if (g.matches(g.symbols[top.pos].value, byte)) expand(top.pos + 1, top.parent, next);
  }
  const uint32_t to = intern(next);
  transitions_[static_cast<size_t>(state) * nClasses_ + cls] = to;
  return to;
}

void GrammarMatcher::computeSelfLoops(uint32_t state) {
  if (selfLoopKnown_.size() <= state) {
    selfLoopKnown_.resize(state + 1, 0);
    selfLoops_.resize(2 * (static_cast<size_t>(state) + 1), 0);
  }
  uint64_t bits[2] = {0, 0};
  for (int b = 0; b < 0x7F; b++)
    if (stepClass(state, grammar_->byteClass[b]) == state) bits[b >> 6] |= uint64_t{1} << (b & 63);
  selfLoops_[2 * static_cast<size_t>(state)] = bits[0];
  selfLoops_[2 * static_cast<size_t>(state) + 1] = bits[1];
  selfLoopKnown_[state] = 1;
}

bool GrammarMatcher::closed(uint32_t state) {
  for (uint32_t c = 0; c < nClasses_; c++)
    if (stepClass(state, c) != kDead) return false;
  return true;
}

int GrammarMatcher::onlyNextByte(uint32_t state) {
  int found = -1;
  for (uint32_t c = 0; c < nClasses_; c++) {
    if (stepClass(state, c) == kDead) continue;
    if (found >= 0 || grammar_->classSize[c] != 1) return -1;
    found = grammar_->classByte[c];
  }
  return found;
}

size_t GrammarMatcher::cacheBytes() const {
  return transitions_.size() * 4 + stateStacks_.size() * 4 + nodes_.size() * (sizeof(Node) + 24) +
         stateIds_.size() * 24;
}

uint32_t GrammarMatcher::compact(uint32_t keep) {
  std::vector<uint32_t> stacks(stateStacks_.begin() + stateStart_[keep], stateStacks_.begin() + stateStart_[keep + 1]);
  // Copy the stacks of `keep` into a fresh node table, parents first.
  std::vector<Node> oldNodes;
  oldNodes.swap(nodes_);
  nodeIds_.clear();
  nodes_.push_back({0, 0});
  nodeDistance_.assign(1, 0);
  std::unordered_map<uint32_t, uint32_t> moved{{0, 0}};
  for (uint32_t& top : stacks) {
    std::vector<uint32_t> chain;
    for (uint32_t n = top; !moved.count(n); n = oldNodes[n].parent) chain.push_back(n);
    for (auto it = chain.rbegin(); it != chain.rend(); ++it)
      moved[*it] = node(oldNodes[*it].pos, moved.at(oldNodes[*it].parent));
    top = moved.at(top);
  }
  resetTables();
  const uint32_t kept = intern(stacks);
  // the start state is needed again only by a grammar switched on anew, which makes a new matcher
  start_ = kept;
  return kept;
}
