// The grammar meets the vocabulary: which tokens may come next, and which the grammar alone decides.
//
// TokenIndex sorts every token's bytes once per vocabulary; consecutive tokens share prefixes
// (`lcp`), so walking them in order is walking the token trie: the grammar state after each prefix
// is kept on a small stack, a token costs only the bytes it does not share with the one before, and
// a prefix the grammar rejects skips every token that starts with it.
//
// GrammarCursor is one generation's place in a grammar: the allowed-token mask (cached per grammar
// state: inside a JSON string the state repeats and the mask is computed once), advancing over a
// token, and the FORCED tokens: where the grammar admits exactly one continuation text, the tokens
// the tokenizer gives for that text. The cursor admits only the next forced token while there are
// any, and the sampler takes it without drawing a random number, so feeding forced tokens one per
// step or all in one batch produces the same output.
#pragma once
#include <algorithm>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "grammar_matcher.h"

class Vocab;

// A vocabulary that may go away (a model closed from JavaScript) while grammars compiled against it
// live on: the owner clears `vocab`, and forcing stops instead of reading freed memory.
struct VocabRef {
  const Vocab* vocab = nullptr;
};

struct TokenIndex {
  static std::shared_ptr<const TokenIndex> build(const Vocab& vocab);

  int32_t nVocab = 0;
  std::vector<int32_t> ids;        // tokens with text, sorted by their bytes
  std::vector<uint32_t> offsets;   // bytes of ids[i]: bytes[offsets[i] .. offsets[i + 1])
  std::string bytes;
  std::vector<uint32_t> lcp;       // bytes ids[i] shares with ids[i - 1]
  // The trie node where ids[i] leaves the one before (its first lcp[i] + 1 bytes) roots a subtree:
  // tokens i .. subtreeEnd[i] - 1. subtreeAscii[2i], [2i + 1]: every byte those tokens have past
  // that node, as a set of ASCII bytes (bit 0x7F also stands for any byte >= 0x80). Where the
  // grammar loops on all of them (inside a JSON string), the whole subtree is admitted unwalked.
  std::vector<uint32_t> subtreeEnd;
  std::vector<uint64_t> subtreeAscii;
  std::vector<int32_t> endOfGeneration;
  std::vector<uint32_t> position;  // token id -> index in ids (UINT32_MAX: no text)

  std::string_view tokenText(size_t i) const { return {bytes.data() + offsets[i], offsets[i + 1] - offsets[i]}; }
  bool isEndOfGeneration(int32_t id) const {
    return std::binary_search(endOfGeneration.begin(), endOfGeneration.end(), id);
  }
};

// The tokens allowed at one point of a generation: one bit per token in the index's sorted order
// (so that a subtree of the trie is a run of bits), end-of-generation apart; or one forced token.
struct TokenMask {
  std::vector<uint32_t> bits;
  bool endAllowed = false;
  int32_t only = -1;
  // The greatest distance to a complete sentence (GrammarMatcher::distance) after any admitted
  // token that leaves one: while the tokens left exceed it by two, the budget leaves this mask as
  // it is.
  uint32_t farthest = 0;

  bool allows(const TokenIndex& index, int32_t id) const {
    if (only >= 0) return id == only;
    const uint32_t p = index.position[static_cast<size_t>(id)];
    if (p == UINT32_MAX) return endAllowed && index.isEndOfGeneration(id);
    return (bits[p >> 5] >> (p & 31)) & 1;
  }
};

// A compiled grammar ready for generation: the grammar, the vocabulary's index, the vocabulary.
struct GrammarBundle {
  std::shared_ptr<const CompiledGrammar> grammar;
  std::shared_ptr<const TokenIndex> tokens;
  std::shared_ptr<VocabRef> vocab;
  std::string root;
};

// The tokens the grammar admits from `state`, end-of-generation where it may end. Returns how many
// tokens with text it admits.
size_t computeTokenMask(GrammarMatcher& matcher, uint32_t state, const TokenIndex& index, TokenMask& mask);
// The tokens of `base` (admitted from `state`) after which a complete sentence is at most `limit`
// bytes away, end-of-generation as base has it; when no token comes that near and the grammar may
// not end, those after which it is nearest. Returns how many tokens with text it admits.
size_t computeClosingMask(GrammarMatcher& matcher, uint32_t state, const TokenIndex& index, const TokenMask& base,
                          int64_t limit, TokenMask& out);

class GrammarCursor {
 public:
  explicit GrammarCursor(std::shared_ptr<const GrammarBundle> bundle);

  // Allowed tokens now; while forced tokens wait, only the next one.
  const TokenMask& mask();
  // The same with `tokensLeft` tokens still to come, this one included (< 0: no limit). Closing in
  // budget: when a token the grammar admits would leave a complete sentence farther than the
  // tokens after it can reach (one byte each, then end-of-generation), only the tokens that keep it
  // within reach. Each step keeps that so, as a single-byte token on a shortest completion always
  // shortens it by one; at the edge every admitted token shortens it, and end-of-generation is all
  // that is left once it is complete. A budget that never comes that near changes nothing.
  const TokenMask& mask(int64_t tokensLeft);
  // The last mask(tokensLeft) left out tokens the grammar admits, to end within the budget.
  bool closing() const { return closing_; }
  // The fewest bytes to a complete sentence from here (0: it may end; kNoCompletion: none).
  uint32_t distance() const { return ended_ ? 0 : matcher_.distance(state_); }
  // What the grammar admits now, forcing aside; returns the count of tokens with text.
  size_t grammarMask(TokenMask& mask) {
    return computeTokenMask(matcher_, ended_ ? GrammarMatcher::kDead : state_, *bundle_->tokens, mask);
  }
  // ... narrowed to close within `tokensLeft` tokens, as mask(tokensLeft) narrows it.
  size_t grammarMask(TokenMask& mask, int64_t tokensLeft);
  const TokenIndex& tokens() const { return *bundle_->tokens; }
  // Advances over a token (or an end-of-generation token where the grammar may end); false, and
  // nothing changes, when the grammar does not admit it.
  bool accept(int32_t token);
  // Advances over text (a trigger already generated); false when the grammar does not admit it.
  bool acceptText(std::string_view text);
  // The forced tokens from here (empty when the next token is the model's choice).
  const std::deque<int32_t>& forced();
  // The grammar admits nothing more: generation is over.
  bool complete();
  bool mayEnd() const { return ended_ || matcher_.mayEnd(state_); }

 private:
  void refreshForced();
  // Fills `out` and returns true when closing within tokensLeft leaves out tokens `base` admits.
  bool narrow(const TokenMask& base, int64_t tokensLeft, TokenMask& out);
  void afterAdvance();

  std::shared_ptr<const GrammarBundle> bundle_;
  GrammarMatcher matcher_;
  uint32_t state_;
  bool ended_ = false;          // an end-of-generation token was accepted
  bool forcedFresh_ = false;    // forced_ was computed for this state
  std::deque<int32_t> forced_;
  TokenMask single_;  // a forced token, or nothing after the end
  TokenMask closingMask_;
  bool closing_ = false;
  // masks by state, most recently used first
  std::list<std::pair<uint32_t, TokenMask>> maskCache_;
};
