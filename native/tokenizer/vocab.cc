// What both tokenizer families share: reading the vocabulary from GGUF metadata, cutting special
// tokens out of the text before the model-specific tokenizer sees it, detokenizing, and the UTF-8
// stream that turns token bytes into whole characters.
#include "vocab.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <stdexcept>

namespace {

const char* kTokensKey = "tokenizer.ggml.tokens";
const char* kScoresKey = "tokenizer.ggml.scores";
const char* kTypesKey = "tokenizer.ggml.token_type";

// An array-valued key with the expected element type and count (count 0: any).
const GgufValue* findArray(const GgufFile& file, const char* key, GgufValueType elemType, uint64_t count) {
  const GgufValue* v = file.find(key);
  if (!v) return nullptr;
  if (v->type != GgufValueType::ARRAY || v->elemType != elemType)
    throw GgufError(file.path() + ": " + key + " must be an array of " + ggufValueTypeName(elemType) + ", found " +
                    ggufValueTypeName(v->type) +
                    (v->type == GgufValueType::ARRAY ? std::string(" of ") + ggufValueTypeName(v->elemType) : ""));
  if (count && v->count != count)
    throw GgufError(file.path() + ": " + key + " has " + std::to_string(v->count) + " entries, but " + kTokensKey +
                    " has " + std::to_string(count));
  return v;
}

// Texts that mark a token as ending a turn; GGUF files rarely say so in metadata, and llama.cpp
// recognises these by text, so generation stops on the same tokens here.
const char* const kEndOfTurnTexts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                       "<EOT>", "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>"};
const char* const kEndOfGenerationTexts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                             "<|eom_id|>", "<EOT>"};

}  // namespace

std::unique_ptr<Vocab> Vocab::fromGguf(const GgufFile& file) {
  const std::string model = file.getString("tokenizer.ggml.model", "");
  if (model.empty()) throw GgufError(file.path() + ": tokenizer.ggml.model is required");
  if (model == "llama") return loadSpmVocab(file);
  if (model == "gpt2") return loadBpeVocab(file);
  throw GgufError(file.path() + ": tokenizer.ggml.model \"" + model +
                  "\" is not supported (supported: \"llama\" SentencePiece, \"gpt2\" byte-level BPE)");
}

void Vocab::loadCommon(const GgufFile& file) {
  pre_ = file.getString("tokenizer.ggml.pre", "");

  const GgufValue* tokens = findArray(file, kTokensKey, GgufValueType::STRING, 0);
  if (!tokens) throw GgufError(file.path() + ": " + kTokensKey + " is required");
  if (tokens->count == 0) throw GgufError(file.path() + ": " + kTokensKey + " is empty");
  if (tokens->count > static_cast<uint64_t>(INT32_MAX))
    throw GgufError(file.path() + ": " + kTokensKey + " has too many entries");
  const size_t n = static_cast<size_t>(tokens->count);
  const GgufValue* scores = findArray(file, kScoresKey, GgufValueType::FLOAT32, n);
  const GgufValue* types = findArray(file, kTypesKey, GgufValueType::INT32, n);

  pieces_.resize(n);
  scores_.assign(n, 0.0f);
  kinds_.assign(n, TokenKind::Normal);
  pieceToId_.reserve(n);
  for (size_t i = 0; i < n; i++) {
    std::string text(tokens->strings[i]);
    // An empty piece could never be matched and would break the special-token search.
    if (text.empty()) text = "[EMPTY_" + std::to_string(i) + "]";
    pieceToId_[text] = static_cast<int32_t>(i);
    pieces_[i] = std::move(text);
    // The arrays sit unaligned inside the mapping.
    if (scores) std::memcpy(&scores_[i], scores->elems + 4 * i, 4);
    if (types) {
      int32_t t;
      std::memcpy(&t, types->elems + 4 * i, 4);
      // Undefined types render as nothing, like unused tokens.
      kinds_[i] = (t >= 1 && t <= 6) ? static_cast<TokenKind>(t) : TokenKind::Unused;
    }
  }

  // Model defaults (set by the subclass) hold unless the file names a token that exists; ids past
  // the vocabulary (stories260K stores 4294967295 for "none") keep the default, as in llama.cpp.
  auto clampDefault = [&](int32_t& id) {
    if (id >= static_cast<int32_t>(n)) id = -1;
  };
  auto readSpecial = [&](const char* key, int32_t& id) {
    const int64_t v = file.getInt(key, -1);
    if (v >= 0 && v < static_cast<int64_t>(n)) id = static_cast<int32_t>(v);
  };
  for (int32_t* id : {&bos_, &eos_, &unk_, &pad_, &eot_, &eom_}) clampDefault(*id);
  readSpecial("tokenizer.ggml.bos_token_id", bos_);
  readSpecial("tokenizer.ggml.eos_token_id", eos_);
  readSpecial("tokenizer.ggml.unknown_token_id", unk_);
  readSpecial("tokenizer.ggml.padding_token_id", pad_);
  readSpecial("tokenizer.ggml.eot_token_id", eot_);
  readSpecial("tokenizer.ggml.eom_token_id", eom_);
  addBos_ = file.getInt("tokenizer.ggml.add_bos_token", addBos_ ? 1 : 0) != 0;
  addSpacePrefix_ = file.getInt("tokenizer.ggml.add_space_prefix", addSpacePrefix_ ? 1 : 0) != 0;

  // End of generation: eos, eot, eom, and every token whose text says "end of turn". Those are
  // control tokens whatever the file says (otherwise they would be printed as text).
  auto markControl = [&](int32_t id) { kinds_[static_cast<size_t>(id)] = TokenKind::Control; };
  if (eot_ < 0) {
    for (const char* t : kEndOfTurnTexts)
      if (int32_t id = idOf(t); id >= 0 && eot_ < 0) eot_ = id, markControl(id);
  }
  if (eom_ < 0) {
    if (int32_t id = idOf("<|eom_id|>"); id >= 0) eom_ = id, markControl(id);
  }
  for (const char* t : kEndOfGenerationTexts)
    if (int32_t id = idOf(t); id >= 0) endOfGeneration_.push_back(id), markControl(id);
  for (int32_t id : {eos_, eot_, eom_})
    if (id >= 0) endOfGeneration_.push_back(id);
  std::sort(endOfGeneration_.begin(), endOfGeneration_.end());
  endOfGeneration_.erase(std::unique(endOfGeneration_.begin(), endOfGeneration_.end()), endOfGeneration_.end());

  // Longer special texts are cut out first, so "<|eot_id|>" wins over a shorter token inside it.
  for (size_t i = 0; i < n; i++) {
    TokenKind k = kinds_[i];
    if (k == TokenKind::Control || k == TokenKind::UserDefined || k == TokenKind::Unknown)
      specialTokens_.push_back(static_cast<int32_t>(i));
  }
  std::stable_sort(specialTokens_.begin(), specialTokens_.end(),
                   [&](int32_t a, int32_t b) { return pieces_[a].size() > pieces_[b].size(); });
}

int32_t Vocab::idOf(std::string_view piece) const {
  auto it = pieceToId_.find(std::string(piece));
  return it == pieceToId_.end() ? -1 : it->second;
}

bool Vocab::isEndOfGeneration(int32_t id) const {
  return std::binary_search(endOfGeneration_.begin(), endOfGeneration_.end(), id);
}

std::vector<int32_t> Vocab::tokenize(std::string_view text, bool addBos, bool parseSpecial, bool atStart,
                                     const std::vector<ByteRange>& textOnly) const {
  std::vector<int32_t> out;
  // Whether [begin, end) overlaps a range the caller marked as typed text.
  auto typed = [&](size_t begin, size_t end) {
    auto it = std::upper_bound(textOnly.begin(), textOnly.end(), begin,
                               [](size_t at, const ByteRange& r) { return at < r.end; });
    return it != textOnly.end() && it->begin < end;
  };
  if (addBos && bos_ >= 0) out.push_back(bos_);

  // Cut special tokens out of the text, one token at a time, longest first (llama.cpp's order, so
  // overlapping special texts resolve the same way). A fragment is either a token or plain text.
  struct Fragment {
    int32_t token;  // -1: plain text text[offset, offset + length)
    size_t offset, length;
  };
  std::vector<Fragment> fragments, next;
  if (!text.empty()) fragments.push_back({-1, 0, text.size()});
  for (int32_t id : specialTokens_) {
    if (!parseSpecial && kinds_[static_cast<size_t>(id)] != TokenKind::UserDefined) continue;
    const std::string& special = pieces_[static_cast<size_t>(id)];
    if (text.find(special) == std::string_view::npos) continue;
    next.clear();
    for (const Fragment& f : fragments) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      size_t pos = f.offset;
      const size_t end = f.offset + f.length;
      for (size_t from = pos;;) {
        const size_t match = text.find(special, from);
        if (match == std::string_view::npos || match + special.size() > end) break;
        if (typed(match, match + special.size())) {
          from = match + 1;
          continue;
        }
        if (match > pos) next.push_back({-1, pos, match - pos});
        next.push_back({id, match, special.size()});
        pos = from = match + special.size();
      }
      if (pos < end) next.push_back({-1, pos, end - pos});
    }
    fragments.swap(next);
  }

  bool afterSpecial = atStart;
  for (const Fragment& f : fragments) {
    if (f.token >= 0) {
      out.push_back(f.token);
      afterSpecial = true;
    } else {
      encodeText(text.substr(f.offset, f.length), afterSpecial, out);
      afterSpecial = false;
    }
  }
  return out;
}

std::string Vocab::detokenize(const std::vector<int32_t>& ids, bool renderSpecial) const {
  std::string bytes;
  bool stripSpace = addSpacePrefix_;
  for (int32_t id : ids) {
    std::string piece = tokenBytes(id, renderSpecial);
    if (stripSpace && !piece.empty()) {
      if (piece[0] == ' ') piece.erase(0, 1);
      stripSpace = false;
    }
    bytes += piece;
  }
  Utf8Stream stream;
  std::string text = stream.push(bytes);
  return text + stream.finish();
}

// ---------------------------------------------------------------------------------------------
// Utf8Stream

namespace {

enum class Utf8Scan { Complete, Incomplete, Invalid };

// Looks at the character starting at p[0] (avail > 0 bytes). Complete/Invalid set `length` to the
// bytes it covers (an invalid stretch is the maximal subpart, as the Unicode standard recommends,
// so one U+FFFD replaces it). Incomplete: a valid start that runs into the end of the input.
Utf8Scan scanUtf8(const unsigned char* p, size_t avail, size_t& length) {
  const unsigned char b0 = p[0];
  if (b0 < 0x80) return length = 1, Utf8Scan::Complete;
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) need = 1;
  else if (b0 >= 0xE0 && b0 <= 0xEF) need = 2, lo = b0 == 0xE0 ? 0xA0 : 0x80, hi = b0 == 0xED ? 0x9F : 0xBF;
  else if (b0 >= 0xF0 && b0 <= 0xF4) need = 3, lo = b0 == 0xF0 ? 0x90 : 0x80, hi = b0 == 0xF4 ? 0x8F : 0xBF;
  else return length = 1, Utf8Scan::Invalid;
  for (size_t k = 1; k <= need; k++) {
    if (k >= avail) return Utf8Scan::Incomplete;
    const unsigned char b = p[k];
    const bool ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (!ok) return length = k, Utf8Scan::Invalid;
  }
  return length = need + 1, Utf8Scan::Complete;
}

const char kReplacementCharacter[] = "\xEF\xBF\xBD";

}  // namespace

std::string Utf8Stream::push(const std::string& bytes) {
  pending_ += bytes;
  std::string out;
  const auto* p = reinterpret_cast<const unsigned char*>(pending_.data());
  size_t i = 0;
  while (i < pending_.size()) {
    size_t length = 0;
    Utf8Scan s = scanUtf8(p + i, pending_.size() - i, length);
    if (s == Utf8Scan::Incomplete) break;
    if (s == Utf8Scan::Complete) out.append(pending_, i, length);
    else out += kReplacementCharacter;
    i += length;
  }
  pending_.erase(0, i);
  return out;
}

std::string Utf8Stream::finish() {
  std::string out = push("");
  // Whatever is still held back is the start of a character that never ended.
  if (!pending_.empty()) out += kReplacementCharacter;
  pending_.clear();
  return out;
}
