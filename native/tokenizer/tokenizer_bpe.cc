// Byte-level BPE tokenizer (tokenizer.ggml.model = "gpt2": Llama 3, Qwen2/2.5/3). It reproduces
// llama.cpp's llm_tokenizer_bpe for the pre-tokenizers of the table below (tokenizer.ggml.pre):
//   1. split the text into words with the pre-tokenizer's rule, over code points;
//   2. write each word's bytes in GPT-2's byte-to-character alphabet (every byte a printable
//      character, so a space is "Ġ");
//   3. a word that is itself a token is taken whole where the pre-tokenizer says so (Llama 3's
//      ignore_merges);
//   4. otherwise start from one symbol per character and repeatedly apply the merge with the
//      lowest rank (its position in tokenizer.ggml.merges; ties: the leftmost pair).
// Other pre-tokenizer names are split with the Llama 3 rule: it is the nearest of the common
// ones, and a slightly different split still yields valid tokens for the model.
#include <queue>
#include <stdexcept>
#include <unordered_map>

#include "unicode_tables.h"
#include "vocab.h"

namespace {

using unicode_tables::isLetter;
using unicode_tables::isNumber;
using unicode_tables::isWhitespace;

// ---------------------------------------------------------------------------------------------
// Text as code points, remembering where each one sits in the bytes.

struct CodepointText {
  std::vector<uint32_t> cps;
  std::vector<size_t> byteOffset;  // byteOffset[i]: where cps[i] starts; byteOffset[n] = text size
};

// Invalid UTF-8 cannot come from JavaScript strings, but C++ callers might pass any bytes: each
// invalid byte becomes one U+FFFD "character" for classification while its own byte is kept.
CodepointText decodeUtf8(std::string_view text) {
  CodepointText t;
  t.cps.reserve(text.size());
  t.byteOffset.reserve(text.size() + 1);
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    const unsigned char b0 = p[i];
    size_t len = b0 < 0x80 ? 1 : b0 >= 0xC2 && b0 <= 0xDF ? 2 : b0 >= 0xE0 && b0 <= 0xEF ? 3 : b0 >= 0xF0 && b0 <= 0xF4 ? 4 : 0;
    uint32_t cp = len == 1 ? b0 : len == 2 ? (b0 & 0x1Fu) : len == 3 ? (b0 & 0x0Fu) : (b0 & 0x07u);
    for (size_t k = 1; k < len; k++) {
      if (i + k >= n || (p[i + k] & 0xC0) != 0x80) {
        len = 0;
        break;
      }
      cp = (cp << 6) | (p[i + k] & 0x3Fu);
    }
    if (len == 0) cp = 0xFFFD, len = 1;
    t.cps.push_back(cp);
    t.byteOffset.push_back(i);
    i += len;
  }
  t.byteOffset.push_back(n);
  return t;
}

uint32_t asciiLower(uint32_t cp) { return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp; }

// ---------------------------------------------------------------------------------------------
// The pre-tokenizers: how text is split into words before the merges, by tokenizer.ggml.pre.

struct PreTokenizer {
  const char* const* names;  // tokenizer.ggml.pre values (nullptr-terminated)
  size_t maxDigits;          // the longest run of digits one word holds: \p{N}{1,3} or \p{N}
  bool ignoreMerges;         // a word that is a token is taken whole
  bool addBos;               // the vocabulary's default for tokenizer.ggml.add_bos_token
};

const char* const kLlama3Names[] = {"llama3", "llama-v3", "llama-bpe", "falcon3", nullptr};
const char* const kQwen2Names[] = {"qwen2", "deepseek-r1-qwen", nullptr};

// Llama 3:  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// Qwen2:    the same with \p{N} for \p{N}{1,3} (every digit a word), and no ignore_merges.
const PreTokenizer kPreTokenizers[] = {
    {kLlama3Names, 3, true, true},
    {kQwen2Names, 1, false, false},
};
// Any other name: Llama 3's split, without its BOS default (llama.cpp would refuse the file).
const char* const kNoNames[] = {nullptr};
const PreTokenizer kFallbackPreTokenizer = {kNoNames, 3, true, false};

const PreTokenizer& preTokenizerNamed(const std::string& pre) {
  for (const PreTokenizer& p : kPreTokenizers)
    for (const char* const* n = p.names; *n; n++)
      if (pre == *n) return p;
  return kFallbackPreTokenizer;
}

// The split both rules share; tokenizer.json writes it as a regex and llama.cpp matches it by
// hand, alternative by alternative at each position. This does the same walk, so that the corner
// cases (what a lone space before punctuation joins, where a run of blanks ends) come out as in
// llama.cpp. Returns word boundaries as code point indices.
std::vector<size_t> splitWords(const std::vector<uint32_t>& cps, size_t maxDigits) {
  const size_t n = cps.size();
  std::vector<size_t> ends;
  auto letterAt = [&](size_t p) { return p < n && isLetter(cps[p]); };
  auto numberAt = [&](size_t p) { return p < n && isNumber(cps[p]); };
  auto spaceAt = [&](size_t p) { return p < n && isWhitespace(cps[p]); };
  auto newlineAt = [&](size_t p) { return p < n && (cps[p] == '\r' || cps[p] == '\n'); };
  // Not \s, \p{L} or \p{N}; past the end counts as such too (llama.cpp's rule for " " at the end).
  auto otherAt = [&](size_t p) { return p >= n || !(isWhitespace(cps[p]) || isLetter(cps[p]) || isNumber(cps[p])); };
  auto cut = [&](size_t end) {
    if (ends.empty() ? end > 0 : end > ends.back()) ends.push_back(end);
  };

  for (size_t pos = 0; pos < n;) {
    const uint32_t cp = cps[pos];

    // (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if (cp == '\'' && pos + 1 < n) {
      const uint32_t c1 = asciiLower(cps[pos + 1]);
      if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
        cut(pos += 2);
        continue;
      }
      if (pos + 2 < n) {
        const uint32_t c2 = asciiLower(cps[pos + 2]);
        if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
          cut(pos += 3);
          continue;
        }
      }
    }

    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (!(cp == '\r' || cp == '\n' || isNumber(cp)) && (isLetter(cp) || letterAt(pos + 1))) {
      pos++;
      while (letterAt(pos)) pos++;
      cut(pos);
      continue;
    }

    // \p{N}{1,maxDigits}
    if (isNumber(cp)) {
      size_t start = pos;
      while (numberAt(pos)) {
        if (++pos - start >= maxDigits) {
          cut(pos);
          start = pos;
        }
      }
      cut(pos);
      continue;
    }

    // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
    if (otherAt(cp == ' ' ? pos + 1 : pos)) {
      if (cp == ' ') pos++;
      while (pos < n && otherAt(pos)) pos++;
      while (newlineAt(pos)) pos++;
      cut(pos);
      continue;
    }

    // \s*[\r\n]+ | \s+(?!\S) | \s+
    size_t blanks = 0, afterLastNewline = 0;
    while (spaceAt(pos + blanks)) {
      if (newlineAt(pos + blanks)) afterLastNewline = pos + blanks + 1;
      blanks++;
    }
    if (afterLastNewline > 0) {
      cut(pos = afterLastNewline);
      continue;
    }
    if (blanks > 1 && pos + blanks < n) {  // leave the last blank to the word after it
      cut(pos += blanks - 1);
      continue;
    }
    if (blanks > 0) {
      cut(pos += blanks);
      continue;
    }
    cut(++pos);  // matches nothing: a word of its own
  }
  return ends;
}

// ---------------------------------------------------------------------------------------------

class BpeVocab final : public Vocab {
 public:
  explicit BpeVocab(const GgufFile& file)
      : Vocab(Model::Bpe), preTokenizer_(preTokenizerNamed(file.getString("tokenizer.ggml.pre", ""))) {
    // llama.cpp's defaults for byte-level BPE; metadata overrides them.
    bos_ = 11, eos_ = 11, unk_ = -1;
    addSpacePrefix_ = false;
    addBos_ = preTokenizer_.addBos;
    loadCommon(file);

    const GgufValue* merges = file.find("tokenizer.ggml.merges");
    if (!merges) throw GgufError(file.path() + ": tokenizer.ggml.merges is required for a gpt2 tokenizer");
    if (merges->type != GgufValueType::ARRAY || merges->elemType != GgufValueType::STRING)
      throw GgufError(file.path() + ": tokenizer.ggml.merges must be an array of strings");
    mergeRank_.reserve(merges->strings.size());
    for (size_t i = 0; i < merges->strings.size(); i++) {
      const std::string_view m = merges->strings[i];
      const size_t space = m.find(' ', 1);  // the left part may itself be a lone space
      if (space == std::string_view::npos) continue;
      mergeRank_.emplace(std::string(m), static_cast<int32_t>(i));  // the first listing wins
    }

    // GPT-2's alphabet: printable Latin-1 bytes stand for themselves, the other 68 bytes take the
    // code points from U+0100 upwards in byte order.
    uint32_t next = 256;
    for (int b = 0; b < 256; b++) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const uint32_t cp = printable ? static_cast<uint32_t>(b) : next++;
      byteChar_[b] = cp < 0x80 ? std::string(1, static_cast<char>(cp))
                               : std::string{static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
      charByte_[cp] = static_cast<uint8_t>(b);
    }
  }

  std::string tokenBytes(int32_t id, bool renderSpecial) const override {
    if (!validId(id))
      throw std::out_of_range("token id " + std::to_string(id) + " is out of range (vocabulary has " +
                              std::to_string(size()) + " tokens)");
    const std::string& text = pieces_[static_cast<size_t>(id)];
    switch (kinds_[static_cast<size_t>(id)]) {
      case TokenKind::Control:
      case TokenKind::Unknown:
        return renderSpecial ? text : std::string();
      case TokenKind::UserDefined:
        return text;
      case TokenKind::Normal: {
        // Undo the GPT-2 alphabet; a character outside it is passed through as written.
        std::string out;
        const CodepointText t = decodeUtf8(text);
        for (size_t i = 0; i < t.cps.size(); i++) {
          auto b = charByte_.find(t.cps[i]);
          if (b != charByte_.end()) out += static_cast<char>(b->second);
          else out.append(text, t.byteOffset[i], t.byteOffset[i + 1] - t.byteOffset[i]);
        }
        return out;
      }
      default:
        return std::string();
    }
  }

 protected:
  void encodeText(std::string_view text, bool /*afterSpecial*/, std::vector<int32_t>& out) const override {
    const CodepointText t = decodeUtf8(text);
    size_t start = 0;
    std::string word;
    for (size_t end : splitWords(t.cps, preTokenizer_.maxDigits)) {
      word.clear();
      for (size_t b = t.byteOffset[start]; b < t.byteOffset[end]; b++) word += byteChar_[static_cast<unsigned char>(text[b])];
      encodeWord(word, out);
      start = end;
    }
  }

 private:
  void encodeWord(const std::string& word, std::vector<int32_t>& out) const {
    if (int32_t id = idOf(word); id >= 0 && preTokenizer_.ignoreMerges) {  // a whole-word token wins outright
      out.push_back(id);
      return;
    }
    struct Symbol {
      int prev, next;
      size_t offset, length;  // bytes of word; length 0 once merged into its left neighbour
    };
    struct Candidate {
      int left, right;
      int32_t rank;
      size_t leftLength, rightLength;  // at queueing time, to recognise stale entries
    };
    struct LowerPriority {
      bool operator()(const Candidate& a, const Candidate& b) const {
        return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
      }
    };
    std::vector<Symbol> symbols;
    for (size_t offset = 0; offset < word.size();) {
      // The alphabet has only 1- and 2-byte characters.
      const size_t length = std::min<size_t>(static_cast<unsigned char>(word[offset]) >= 0xC0 ? 2 : 1, word.size() - offset);
      const int index = static_cast<int>(symbols.size());
      symbols.push_back({index - 1, offset + length == word.size() ? -1 : index + 1, offset, length});
      offset += length;
    }
    std::priority_queue<Candidate, std::vector<Candidate>, LowerPriority> queue;
    std::string key;
    auto addCandidate = [&](int left, int right) {
      if (left < 0 || right < 0) return;
      const Symbol& l = symbols[static_cast<size_t>(left)];
      const Symbol& r = symbols[static_cast<size_t>(right)];
      key.assign(word, l.offset, l.length);
      key += ' ';
      key.append(word, r.offset, r.length);
      auto it = mergeRank_.find(key);
      if (it != mergeRank_.end()) queue.push({left, right, it->second, l.length, r.length});
    };
    for (int i = 1; i < static_cast<int>(symbols.size()); i++) addCandidate(i - 1, i);

    while (!queue.empty()) {
      const Candidate c = queue.top();
      queue.pop();
      Symbol& left = symbols[static_cast<size_t>(c.left)];
      Symbol& right = symbols[static_cast<size_t>(c.right)];
      if (left.length != c.leftLength || right.length != c.rightLength || left.next != c.right) continue;
      left.length += right.length;
      right.length = 0;
      left.next = right.next;
      if (right.next >= 0) symbols[static_cast<size_t>(right.next)].prev = c.left;
      addCandidate(left.prev, c.left);
      addCandidate(c.left, left.next);
    }

    for (int i = 0; i != -1 && !symbols.empty(); i = symbols[static_cast<size_t>(i)].next) {
      const Symbol& s = symbols[static_cast<size_t>(i)];
      const std::string piece = word.substr(s.offset, s.length);
      if (int32_t id = idOf(piece); id >= 0) {
        out.push_back(id);
        continue;
      }
      // Not a token (a merge list that does not match its vocabulary): llama.cpp keeps whichever
      // single bytes happen to be tokens and drops the rest; do the same.
      for (char c : piece)
        if (int32_t id = idOf(std::string(1, c)); id >= 0) out.push_back(id);
    }
  }

  const PreTokenizer& preTokenizer_;
  std::unordered_map<std::string, int32_t> mergeRank_;  // "left right" -> position in the merge list
  std::string byteChar_[256];                            // byte -> its character, UTF-8
  std::unordered_map<uint32_t, uint8_t> charByte_;       // character -> byte
};

}  // namespace

std::unique_ptr<Vocab> loadBpeVocab(const GgufFile& file) { return std::make_unique<BpeVocab>(file); }
