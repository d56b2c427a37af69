// SentencePiece-style tokenizer (tokenizer.ggml.model = "llama": LLaMA 1/2, Alpaca, Mistral,
// TinyLlama, stories260K). It follows llama.cpp's llm_tokenizer_spm step for step, because the
// models were trained on exactly that segmentation and the golden prompts are checked id for id:
//   1. spaces become U+2581 ("▁"), with one in front of the text when add_space_prefix is set;
//   2. the text starts as one symbol per UTF-8 character;
//   3. repeatedly merge the adjacent pair whose concatenation is a token with the highest score
//      (ties: the leftmost pair);
//   4. a symbol that is no token (a character missing from the vocabulary) falls back to its
//      bytes as <0xXX> tokens (byte fallback).
#include <algorithm>
#include <queue>
#include <stdexcept>
#include <unordered_map>

#include "vocab.h"

namespace {

const char kSpaceMarker[] = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space

// Bytes in a UTF-8 character, from its first byte (continuation or invalid bytes count as 1, so
// that every byte of any input lands in some symbol).
size_t utf8Length(unsigned char lead) {
  if (lead < 0xC0) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

// The value of one hex digit, -1 for any other character.
int hexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

class SpmVocab final : public Vocab {
 public:
  explicit SpmVocab(const GgufFile& file) : Vocab(Model::Spm) {
    // llama.cpp's defaults for SentencePiece vocabularies; metadata overrides them.
    bos_ = 1, eos_ = 2, unk_ = 0;
    addBos_ = true;
    addSpacePrefix_ = true;
    loadCommon(file);
    for (int b = 0; b < 256; b++) {
      static const char hex[] = "0123456789ABCDEF";
      const char name[] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
      int32_t id = idOf(name);
      if (id < 0) id = idOf(std::string(1, static_cast<char>(b)));  // vocabularies with raw byte pieces
      byteToken_[b] = id;
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
        std::string out;
        out.reserve(text.size());
        for (size_t i = 0; i < text.size();) {
          if (text.compare(i, 3, kSpaceMarker) == 0) {
            out += ' ';
            i += 3;
          } else {
            out += text[i++];
          }
        }
        return out;
      }
      case TokenKind::Byte: {
        // "<0xXX>" with two hex digits; anything else ("<0xG1>", "<0x-1>") is shown as written
        // rather than guessed at: a vocabulary file is input, not a promise.
        const int high = hexDigit(text.size() == 6 ? text[3] : 0), low = hexDigit(text.size() == 6 ? text[4] : 0);
        if (text.compare(0, 3, "<0x") == 0 && text.size() == 6 && text[5] == '>' && high >= 0 && low >= 0)
          return std::string(1, static_cast<char>(high * 16 + low));
        return text;
      }
      case TokenKind::Unused:
        break;
    }
    return std::string();
  }

 protected:
  void encodeText(std::string_view fragment, bool afterSpecial, std::vector<int32_t>& out) const override {
    std::string text;
    text.reserve(fragment.size() + 3);
    if (addSpacePrefix_ && afterSpecial) text += kSpaceMarker;
    for (char c : fragment) {
      if (c == ' ') text += kSpaceMarker;
      else text += c;
    }
    Merger(*this, text).run(out);
  }

 private:
  // One tokenization: a doubly linked list of symbols over `text` and a queue of candidate merges.
  class Merger {
   public:
    Merger(const SpmVocab& vocab, const std::string& text) : vocab_(vocab), text_(text) {}

    void run(std::vector<int32_t>& out) {
      for (size_t offset = 0; offset < text_.size();) {
        const size_t length = std::min(utf8Length(static_cast<unsigned char>(text_[offset])), text_.size() - offset);
        const int index = static_cast<int>(symbols_.size());
        symbols_.push_back({index - 1, offset + length == text_.size() ? -1 : index + 1, offset, length});
        offset += length;
      }
      for (int i = 1; i < static_cast<int>(symbols_.size()); i++) addCandidate(i - 1, i);

      while (!queue_.empty()) {
        const Candidate c = queue_.top();
        queue_.pop();
        Symbol& left = symbols_[static_cast<size_t>(c.left)];
        Symbol& right = symbols_[static_cast<size_t>(c.right)];
        // Stale: one side was merged away or grew since this pair was queued.
        if (left.length == 0 || right.length == 0 || left.length + right.length != c.length) continue;
        left.length += right.length;
        right.length = 0;
        left.next = right.next;
        if (right.next >= 0) symbols_[static_cast<size_t>(right.next)].prev = c.left;
        addCandidate(left.prev, c.left);
        addCandidate(c.left, left.next);
      }

      if (symbols_.empty()) return;
      for (int i = 0; i != -1; i = symbols_[static_cast<size_t>(i)].next) {
        const Symbol& s = symbols_[static_cast<size_t>(i)];
        emit(std::string_view(text_).substr(s.offset, s.length), out);
      }
    }

   private:
    struct Symbol {
      int prev, next;  // neighbours in the list, -1 at the ends
      size_t offset, length;  // bytes of text_; length 0 once merged into its left neighbour
    };
    struct Candidate {
      int left, right;
      float score;
      size_t length;  // bytes of the merged text, to recognise stale entries
    };
    struct LowerPriority {
      bool operator()(const Candidate& a, const Candidate& b) const {
        return a.score < b.score || (a.score == b.score && a.left > b.left);
      }
    };

    void addCandidate(int left, int right) {
      if (left < 0 || right < 0) return;
      const Symbol& l = symbols_[static_cast<size_t>(left)];
      const Symbol& r = symbols_[static_cast<size_t>(right)];
      const std::string merged = text_.substr(l.offset, l.length + r.length);
      const int32_t id = vocab_.idOf(merged);
      if (id < 0) return;
      queue_.push({left, right, vocab_.score(id), merged.size()});
      splitOf_[merged] = l.length;  // how to undo this merge if the result ever needs resegmenting
    }

    // A final symbol: its token, or the merges that built it, or its bytes.
    void emit(std::string_view piece, std::vector<int32_t>& out) const {
      const int32_t id = vocab_.idOf(piece);
      if (id >= 0) {
        out.push_back(id);
        return;
      }
      auto split = splitOf_.find(std::string(piece));
      if (split != splitOf_.end()) {
        emit(piece.substr(0, split->second), out);
        emit(piece.substr(split->second), out);
        return;
      }
      bool allBytes = true;
      for (char c : piece) allBytes = allBytes && vocab_.byteToken_[static_cast<unsigned char>(c)] >= 0;
      if (allBytes) {
        for (char c : piece) out.push_back(vocab_.byteToken_[static_cast<unsigned char>(c)]);
      } else if (vocab_.unk_ >= 0) {
        out.push_back(vocab_.unk_);  // no byte fallback in this vocabulary: SentencePiece's answer
      } else {
        throw std::runtime_error("tokenizer: \"" + std::string(piece) + "\" has no token, no byte tokens and no <unk>");
      }
    }

    const SpmVocab& vocab_;
    const std::string& text_;
    std::vector<Symbol> symbols_;
    std::priority_queue<Candidate, std::vector<Candidate>, LowerPriority> queue_;
    std::unordered_map<std::string, size_t> splitOf_;  // merged text -> bytes of its left part
  };

  int32_t byteToken_[256];  // <0xXX> token of each byte, -1 when missing
};

}  // namespace

std::unique_ptr<Vocab> loadSpmVocab(const GgufFile& file) { return std::make_unique<SpmVocab>(file); }
