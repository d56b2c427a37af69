// Where a generation stands in a compiled grammar, and where one more byte takes it.
//
// A parse position is a STACK: the symbol to match next (always a byte set) on top, below it where
// to go on once each enclosing rule is done. Stacks are hash-consed nodes (position, parent), so
// equal stacks are one id and pushing costs one lookup. A grammar STATE is the sorted set of stacks
// an input can be in (ambiguity keeps several); states are interned too, and the transition of a
// state on a byte class is computed once and then read from a table. Walking the vocabulary's
// token trie (token_mask.h) is therefore one table read per byte once the states are known.
//
// State 0 is dead (no stack survives). Node 0 is the empty stack: a state holding it may end.
#pragma once
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "grammar.h"

class GrammarMatcher {
 public:
  static constexpr uint32_t kDead = 0;

  explicit GrammarMatcher(std::shared_ptr<const CompiledGrammar> grammar);

  const CompiledGrammar& grammar() const { return *grammar_; }
  uint32_t start() const { return start_; }

  // The state after one more byte (kDead when the grammar cannot read it).
  uint32_t step(uint32_t state, uint8_t byte) {
    const uint32_t t = transitions_[static_cast<size_t>(state) * nClasses_ + grammar_->byteClass[byte]];
    return t != kUnknown ? t : computeStep(state, grammar_->byteClass[byte]);
  }
  uint32_t stepClass(uint32_t state, uint32_t cls) {
    const uint32_t t = transitions_[static_cast<size_t>(state) * nClasses_ + cls];
    return t != kUnknown ? t : computeStep(state, cls);
  }

  // The grammar may end here (its root rule is complete).
  bool mayEnd(uint32_t state) const { return accepting_[state] != 0; }
  // The fewest bytes from `state` to a complete sentence (0 where it may end; kNoCompletion when
  // dead or nothing completes): the least over its stacks of the shortest rest of every level.
  uint32_t distance(uint32_t state) const { return distance_[state]; }
  // No byte can follow (the state is complete, or dead).
  bool closed(uint32_t state);
  // The one byte every continuation starts with, or -1 when there are none or several.
  int onlyNextByte(uint32_t state);

  // The ASCII bytes that lead from `state` back to itself, as two words (bytes 0-63, 64-127);
  // 0x7F is never in it (token_mask.h lets that bit stand for every byte >= 0x80 too).
  const uint64_t* selfLoops(uint32_t state) {
    if (state >= selfLoopKnown_.size() || !selfLoopKnown_[state]) computeSelfLoops(state);
    return &selfLoops_[2 * static_cast<size_t>(state)];
  }

  // Bytes of memory the caches hold; compact() drops every state but `keep` (renumbered, returned)
  // and every stack node it does not use, so that a long generation cannot grow them without bound.
  size_t cacheBytes() const;
  uint32_t compact(uint32_t keep);
  // Counts states, for tests and benchmarks.
  size_t stateCount() const { return accepting_.size(); }

 private:
  static constexpr uint32_t kUnknown = UINT32_MAX;
  struct Node {
    uint32_t pos;     // index into grammar symbols: a byte set on the top, a continuation below
    uint32_t parent;  // 0 = bottom of the stack
  };

  uint32_t node(uint32_t pos, uint32_t parent);
  // Every stack reached from `pos` over `parent` by expanding rules until a byte set is on top
  // (or the stack is empty), appended to out.
  void expand(uint32_t pos, uint32_t parent, std::vector<uint32_t>& out);
  uint32_t intern(std::vector<uint32_t>& stacks);
  uint32_t computeStep(uint32_t state, uint32_t cls);
  void resetTables();
  void computeSelfLoops(uint32_t state);

  std::shared_ptr<const CompiledGrammar> grammar_;
  uint32_t nClasses_;
  std::vector<Node> nodes_;
  std::vector<uint32_t> nodeDistance_;  // [node]: the shortest rest of the stack it tops
  std::unordered_map<uint64_t, uint32_t> nodeIds_;
  // states: stacks of state s are stateStacks_[stateStart_[s] .. stateStart_[s + 1])
  std::vector<uint32_t> stateStacks_, stateStart_;
  std::vector<uint8_t> accepting_;
  std::vector<uint32_t> distance_;  // [state], see distance()
  std::unordered_multimap<uint64_t, uint32_t> stateIds_;
  std::vector<uint32_t> transitions_;  // [state][byte class]
  std::vector<uint64_t> selfLoops_;     // [state][2], see selfLoops()
  std::vector<uint8_t> selfLoopKnown_;
  uint32_t start_ = 0;
  // scratch
  std::vector<uint32_t> scratch_;
  std::vector<std::pair<uint32_t, uint32_t>> work_;
  std::unordered_map<uint64_t, bool> seen_;
};
