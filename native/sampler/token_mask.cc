#include "token_mask.h"

#include <algorithm>
#include <cstring>

#include "../tokenizer/vocab.h"

namespace {
constexpr size_t kMaskCacheEntries = 32;
constexpr size_t kMaxForcedBytes = 256;
// Past this the matcher drops every state but the current one (a long, deeply nested output).
constexpr size_t kMatcherCacheBytes = 32u << 20;

// The farthest distance after an admitted token, looked up once per distinct state it ends in
// (tokens that stay inside a string all end in one). A token after which nothing completes is not
// counted: no budget makes room for it.
struct Farthest {
  uint32_t value = 0;
  uint32_t last = GrammarMatcher::kDead;
  void widen(const GrammarMatcher& matcher, uint32_t state) {
    if (state == last) return;
    last = state;
    const uint32_t d = matcher.distance(state);
    if (d > value && d != CompiledGrammar::kNoCompletion) value = d;
  }
};

inline void setBit(uint32_t* bits, size_t i) { bits[i >> 5] |= uint32_t{1} << (i & 31); }

// bits [begin, end)
void setRun(uint32_t* bits, size_t begin, size_t end) {
  if (begin >= end) return;
  const size_t first = begin >> 5, last = (end - 1) >> 5;
  const uint32_t head = ~uint32_t{0} << (begin & 31), tail = ~uint32_t{0} >> (31 - ((end - 1) & 31));
  if (first == last) {
    bits[first] |= head & tail;
    return;
  }
  bits[first] |= head;
  for (size_t w = first + 1; w < last; w++) bits[w] = ~uint32_t{0};
  bits[last] |= tail;
}
}  // namespace

std::shared_ptr<const TokenIndex> TokenIndex::build(const Vocab& vocab) {
  auto index = std::make_shared<TokenIndex>();
  index->nVocab = vocab.size();
  std::vector<std::pair<std::string, int32_t>> texts;
  texts.reserve(static_cast<size_t>(vocab.size()));
  for (int32_t id = 0; id < vocab.size(); id++) {
    if (vocab.isEndOfGeneration(id)) {
      index->endOfGeneration.push_back(id);
      continue;
    }
    const TokenKind kind = vocab.kind(id);
    if (kind == TokenKind::Control || kind == TokenKind::Unknown || kind == TokenKind::Unused) continue;
    std::string bytes = vocab.tokenBytes(id, false);
    if (!bytes.empty()) texts.emplace_back(std::move(bytes), id);
  }
  std::sort(texts.begin(), texts.end());
  index->position.assign(static_cast<size_t>(vocab.size()), UINT32_MAX);
  index->offsets.push_back(0);
  for (size_t i = 0; i < texts.size(); i++) {
    const std::string& t = texts[i].first;
    uint32_t common = 0;
    if (i > 0) {
      const std::string& prev = texts[i - 1].first;
      while (common < t.size() && common < prev.size() && t[common] == prev[common]) common++;
    }
    index->lcp.push_back(common);
    index->ids.push_back(texts[i].second);
    index->position[static_cast<size_t>(texts[i].second)] = static_cast<uint32_t>(i);
    index->bytes += t;
    index->offsets.push_back(static_cast<uint32_t>(index->bytes.size()));
  }
  // Subtrees, from the last token back: a token's subtree takes in the subtrees of the tokens after
  // it that share more with their predecessor than it does with its own.
  const size_t n = index->ids.size();
  index->subtreeEnd.assign(n, 0);
  index->subtreeAscii.assign(2 * n, 0);
  auto addByte = [](uint64_t* bits, uint8_t b) { bits[b < 0x80 ? b >> 6 : 1] |= uint64_t{1} << (b < 0x80 ? b & 63 : 63); };
  struct Open {
    uint32_t lcp, end;
    uint64_t bits[2];  // the subtree's bytes, its own branching byte included
  };
  std::vector<Open> open;
  for (size_t i = n; i-- > 0;) {
    const std::string_view t = index->tokenText(i);
    const uint32_t l = index->lcp[i];
    Open mine{l, static_cast<uint32_t>(i + 1), {0, 0}};
    for (size_t k = l + 1; k < t.size(); k++) addByte(mine.bits, static_cast<uint8_t>(t[k]));
    while (!open.empty() && open.back().lcp > l) {
      mine.bits[0] |= open.back().bits[0];
      mine.bits[1] |= open.back().bits[1];
      mine.end = std::max(mine.end, open.back().end);
      open.pop_back();
    }
    index->subtreeEnd[i] = mine.end;
    index->subtreeAscii[2 * i] = mine.bits[0];
    index->subtreeAscii[2 * i + 1] = mine.bits[1];
    if (l < t.size()) addByte(mine.bits, static_cast<uint8_t>(t[l]));
    open.push_back(mine);
  }
  return index;
}

size_t computeTokenMask(GrammarMatcher& matcher, uint32_t state, const TokenIndex& index, TokenMask& out) {
  const size_t n = index.ids.size();
  out.bits.assign((n + 31) / 32, 0);
  out.only = -1;
  out.farthest = 0;
  out.endAllowed = state != GrammarMatcher::kDead && matcher.mayEnd(state);
  uint32_t* mask = out.bits.data();
  if (state == GrammarMatcher::kDead) return 0;
  Farthest farthest;  // kept apart from `out` so that writing mask bits does not reload it
  // states[k]: the grammar state after the first k bytes of the current token
  std::vector<uint32_t> states(64);
  states[0] = state;
  size_t allowed = 0;
  const auto* bytes = reinterpret_cast<const uint8_t*>(index.bytes.data());
  size_t i = 0;
  while (i < n) {
    const uint32_t begin = index.offsets[i], len = index.offsets[i + 1] - begin;
    if (states.size() <= len) states.resize(len + 1);
    uint32_t k = index.lcp[i];
    if (k == len) {  // the same bytes as the token before, which was admitted (else it was skipped)
      setBit(mask, i++);
      allowed++;
      continue;
    }
    uint32_t s = matcher.step(states[k], bytes[begin + k]);  // the byte where token i branches off
    if (s == GrammarMatcher::kDead) {
      i = index.subtreeEnd[i];  // and so does every token below that branch
      continue;
    }
    states[++k] = s;
    const uint64_t* loops = matcher.selfLoops(s);
    if ((index.subtreeAscii[2 * i] & ~loops[0]) == 0 && (index.subtreeAscii[2 * i + 1] & ~loops[1]) == 0) {
      // the grammar stays in s over every later byte of the subtree: all of it is admitted
      const uint32_t end = index.subtreeEnd[i];
      allowed += end - i;
      setRun(mask, i, end);
      farthest.widen(matcher, s);
      i = end;
      continue;
    }
    while (k < len) {
      s = matcher.step(s, bytes[begin + k]);
      if (s == GrammarMatcher::kDead) break;
      states[++k] = s;
    }
    i++;
    if (k == len) {
      setBit(mask, i - 1);
      allowed++;
      farthest.widen(matcher, s);
    } else {
      // every following token that shares the rejected byte is rejected too
      while (i < n && index.lcp[i] > k) i++;
    }
  }
  out.farthest = farthest.value;
  return allowed;
}

size_t computeClosingMask(GrammarMatcher& matcher, uint32_t state, const TokenIndex& index, const TokenMask& base,
                          int64_t limit, TokenMask& out) {
  const size_t n = index.ids.size();
  out.bits.assign(base.bits.size(), 0);
  out.only = -1;
  out.endAllowed = base.endAllowed;
  out.farthest = 0;
  // Every admitted token walked in the trie's order, each from the state after the bytes it shares
  // with the one walked before: (position, distance after it).
  std::vector<std::pair<uint32_t, uint32_t>> after;
  std::vector<uint32_t> states{state};
  const auto* bytes = reinterpret_cast<const uint8_t*>(index.bytes.data());
  uint32_t shared = 0;  // bytes token i shares with the last one walked
  for (size_t i = 0; i < n; i++) {
    shared = std::min(shared, index.lcp[i]);
    if (!((base.bits[i >> 5] >> (i & 31)) & 1)) continue;
    const uint32_t begin = index.offsets[i], len = index.offsets[i + 1] - begin;
    if (states.size() <= len) states.resize(len + 1);
    uint32_t s = states[shared];
    for (uint32_t k = shared; k < len; k++) states[k + 1] = s = matcher.step(s, bytes[begin + k]);
    after.emplace_back(static_cast<uint32_t>(i), matcher.distance(s));
    shared = UINT32_MAX;
  }
  uint32_t nearest = CompiledGrammar::kNoCompletion;
  for (const auto& [i, d] : after) nearest = std::min(nearest, d);
  // Nothing within reach: the grammar's end, or else the nearest the vocabulary allows.
  const int64_t reach = nearest <= limit || base.endAllowed ? limit : nearest;
  size_t allowed = 0;
  for (const auto& [i, d] : after)
    if (d <= reach) {
      setBit(out.bits.data(), i);
      out.farthest = std::max(out.farthest, d);
      allowed++;
    }
  return allowed;
}

GrammarCursor::GrammarCursor(std::shared_ptr<const GrammarBundle> bundle)
    : bundle_(std::move(bundle)),
      matcher_(bundle_->grammar),
      state_(matcher_.start()) {}

const TokenMask& GrammarCursor::mask() {
  const std::deque<int32_t>& f = forced();
  if (ended_ || !f.empty()) {
    single_.bits.assign((bundle_->tokens->ids.size() + 31) / 32, 0);
    single_.endAllowed = false;
    single_.only = ended_ ? -1 : f.front();
    return single_;
  }
  for (auto it = maskCache_.begin(); it != maskCache_.end(); ++it)
    if (it->first == state_) {
      maskCache_.splice(maskCache_.begin(), maskCache_, it);
      return maskCache_.front().second;
    }
  if (maskCache_.size() >= kMaskCacheEntries) {
    maskCache_.splice(maskCache_.begin(), maskCache_, std::prev(maskCache_.end()));
    maskCache_.front().first = state_;
  } else {
    maskCache_.emplace_front(state_, TokenMask{});
  }
  computeTokenMask(matcher_, state_, *bundle_->tokens, maskCache_.front().second);
  return maskCache_.front().second;
}

const TokenMask& GrammarCursor::mask(int64_t tokensLeft) {
  const TokenMask& base = mask();
  closing_ = narrow(base, tokensLeft, closingMask_);
  return closing_ ? closingMask_ : base;
}

size_t GrammarCursor::grammarMask(TokenMask& mask, int64_t tokensLeft) {
  size_t admitted = grammarMask(mask);
  TokenMask narrowed;
  if (narrow(mask, tokensLeft, narrowed)) {
    admitted = 0;
    for (uint32_t w : narrowed.bits) admitted += static_cast<size_t>(__builtin_popcount(w));
    mask = std::move(narrowed);
  }
  return admitted;
}

bool GrammarCursor::narrow(const TokenMask& base, int64_t tokensLeft, TokenMask& out) {
  const int64_t limit = tokensLeft - 2;  // after this token and before end-of-generation
  if (tokensLeft < 0 || base.only >= 0 || ended_ || base.farthest <= limit) return false;
  if (matcher_.distance(state_) == CompiledGrammar::kNoCompletion) return false;  // no end to steer to
  const size_t admitted = computeClosingMask(matcher_, state_, *bundle_->tokens, base, limit, out);
  size_t all = 0;
  for (uint32_t w : base.bits) all += static_cast<size_t>(__builtin_popcount(w));
  return admitted < all;
}

bool GrammarCursor::accept(int32_t token) {
  if (ended_) return false;
  const TokenIndex& index = *bundle_->tokens;
  if (token < 0 || token >= index.nVocab) return false;
  if (index.isEndOfGeneration(token)) {
    if (!matcher_.mayEnd(state_)) return false;
    ended_ = true;
    forced_.clear();
    return true;
  }
  const uint32_t at = index.position[static_cast<size_t>(token)];
  if (at == UINT32_MAX) return false;
  const bool wasForced = forcedFresh_ && !forced_.empty();
  if (wasForced && forced_.front() != token) return false;
  uint32_t s = state_;
  for (unsigned char b : index.tokenText(at)) {
    s = matcher_.step(s, b);
    if (s == GrammarMatcher::kDead) return false;
  }
  state_ = s;
  if (wasForced) forced_.pop_front();  // the rest of the forced run stays decided
  else forcedFresh_ = false;
  if (forced_.empty()) forcedFresh_ = false;
  afterAdvance();
  return true;
}

bool GrammarCursor::acceptText(std::string_view text) {
  if (ended_) return text.empty();
  uint32_t s = state_;
  for (unsigned char b : text) {
    s = matcher_.step(s, b);
    if (s == GrammarMatcher::kDead) return false;
  }
  state_ = s;
  forced_.clear();
  forcedFresh_ = false;
  afterAdvance();
  return true;
}

void GrammarCursor::afterAdvance() {
  if (matcher_.cacheBytes() > kMatcherCacheBytes) {
    state_ = matcher_.compact(state_);
    maskCache_.clear();
  }
}

bool GrammarCursor::complete() { return ended_ || (matcher_.mayEnd(state_) && matcher_.closed(state_)); }

const std::deque<int32_t>& GrammarCursor::forced() {
  if (!forcedFresh_) refreshForced();
  return forced_;
}

// The text the grammar admits alone from here, tokenized as the tokenizer would; the last token is
// left to the model when some token that begins with it runs on past the decided text (`":` where
// `": "` could follow), so that forcing never takes a choice away from the model.
void GrammarCursor::refreshForced() {
  forcedFresh_ = true;
  forced_.clear();
  const Vocab* vocab = bundle_->vocab ? bundle_->vocab->vocab : nullptr;
  if (ended_ || !vocab) return;
  std::string text;
  uint32_t s = state_;
  while (text.size() < kMaxForcedBytes && !matcher_.mayEnd(s)) {
    const int b = matcher_.onlyNextByte(s);
    if (b < 0) break;
    text += static_cast<char>(b);
    s = matcher_.step(s, static_cast<uint8_t>(b));
  }
  if (text.empty()) return;
  std::vector<int32_t> tokens = vocab->tokenizeContinuation(text);
  const TokenIndex& index = *bundle_->tokens;
  std::string joined;
  for (int32_t t : tokens) {
    const uint32_t at = t >= 0 && t < index.nVocab ? index.position[static_cast<size_t>(t)] : UINT32_MAX;
    if (at == UINT32_MAX) return;  // a token with no text (unknown): do not force
    joined += index.tokenText(at);
  }
  if (joined != text || tokens.empty()) return;
  // Does a token that starts with the last one reach past the decided text, admitted by the grammar?
  const int32_t last = tokens.back();
  const uint32_t at = index.position[static_cast<size_t>(last)];
  const size_t lastLen = index.tokenText(at).size();
  // (tokens that begin with it sort right after it; tokens with the same bytes cannot reach further)
  bool open = false;
  for (size_t i = at + 1; !open && i < index.ids.size() && index.lcp[i] >= lastLen; i++) {
    const std::string_view u = index.tokenText(i);
    if (u.size() <= lastLen) continue;
    uint32_t us = s;  // the state after the whole decided text
    size_t k = lastLen;
    for (; k < u.size(); k++) {
      us = matcher_.step(us, static_cast<uint8_t>(u[k]));
      if (us == GrammarMatcher::kDead) break;
    }
    open = k == u.size();
  }
  if (open) tokens.pop_back();
  forced_.assign(tokens.begin(), tokens.end());
}
