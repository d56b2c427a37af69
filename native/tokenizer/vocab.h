// Vocabulary and tokenizers read from a GGUF file (a model or a vocabulary-only file):
// SentencePiece-style (tokenizer.ggml.model = "llama") and byte-level BPE ("gpt2", Llama 3).
// Both reproduce llama.cpp's tokenization id for id; see tokenizer_spm.cc and tokenizer_bpe.cc.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../gguf/gguf.h"

// tokenizer.ggml.token_type values
enum class TokenKind : int32_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

class Vocab {
 public:
  enum class Model { Spm, Bpe };

  // Throws GgufError naming the file and key when the tokenizer metadata is missing or malformed.
  static std::unique_ptr<Vocab> fromGguf(const GgufFile& file);
  virtual ~Vocab() = default;

  // A byte range [begin, end) of a text to tokenize.
  struct ByteRange {
    size_t begin, end;
  };

  // Text -> ids. addBos prepends BOS when the vocabulary has one. parseSpecial turns the text of
  // control / unknown tokens ("<s>", "<|eot_id|>") into those tokens instead of plain text;
  // user-defined tokens ("<think>") are always matched, as llama.cpp and Hugging Face do.
  std::vector<int32_t> tokenize(std::string_view text, bool addBos, bool parseSpecial) const {
    return tokenize(text, addBos, parseSpecial, true, {});
  }
  // The same, but no special token of any kind is matched where its text overlaps one of the
  // textOnly ranges (ascending, apart): they hold what a user typed into a rendered chat template.
  std::vector<int32_t> tokenize(std::string_view text, bool addBos, bool parseSpecial,
                                const std::vector<ByteRange>& textOnly) const {
    return tokenize(text, addBos, parseSpecial, true, textOnly);
  }
  // Text that continues generated text (a grammar's forced output): no BOS, no SentencePiece space
  // prefix, special-token text not parsed (user-defined tokens are still matched).
  std::vector<int32_t> tokenizeContinuation(std::string_view text) const { return tokenize(text, false, false, false, {}); }
  // Control, user-defined and unknown tokens: the texts tokenize() may cut out, longest first.
  const std::vector<int32_t>& specialTokens() const { return specialTokens_; }

  // The raw bytes a token stands for in generated text (may be part of a UTF-8 character).
  // Control and unknown tokens give "" unless renderSpecial. Throws std::out_of_range for a bad id.
  virtual std::string tokenBytes(int32_t id, bool renderSpecial) const = 0;

  // Ids -> text, always valid UTF-8 (stray bytes become U+FFFD). The one space the SentencePiece
  // tokenizer puts in front of a text is taken off the first piece that renders anything.
  std::string detokenize(const std::vector<int32_t>& ids, bool renderSpecial) const;

  Model model() const { return model_; }
  const char* modelName() const { return model_ == Model::Spm ? "llama" : "gpt2"; }
  const std::string& preTokenizer() const { return pre_; }
  int32_t size() const { return static_cast<int32_t>(pieces_.size()); }
  bool validId(int32_t id) const { return id >= 0 && id < size(); }
  int32_t bos() const { return bos_; }  // -1 when the vocabulary has none
  int32_t eos() const { return eos_; }
  int32_t unk() const { return unk_; }
  bool addBosByDefault() const { return addBos_; }
  bool addSpacePrefix() const { return addSpacePrefix_; }
  bool isEndOfGeneration(int32_t id) const;
  const std::vector<int32_t>& endOfGenerationIds() const { return endOfGeneration_; }
  const std::string& piece(int32_t id) const { return pieces_.at(static_cast<size_t>(id)); }
  TokenKind kind(int32_t id) const { return kinds_.at(static_cast<size_t>(id)); }
  float score(int32_t id) const { return scores_.at(static_cast<size_t>(id)); }
  int32_t idOf(std::string_view piece) const;  // -1 when no token has exactly this text

 protected:
  explicit Vocab(Model model) : model_(model) {}
  // Reads what both tokenizers share: pieces, scores, kinds, special ids, add_bos, end-of-generation.
  // Subclasses set their model defaults (bos_, eos_, unk_, addBos_) before calling it.
  void loadCommon(const GgufFile& file);
  // Tokenizes one stretch of plain text (special tokens already cut out). afterSpecial: the
  // stretch starts the text or follows a special token (SentencePiece adds its space prefix then).
  virtual void encodeText(std::string_view text, bool afterSpecial, std::vector<int32_t>& out) const = 0;
  // atStart: the text starts a prompt (SentencePiece puts its space prefix in front).
  std::vector<int32_t> tokenize(std::string_view text, bool addBos, bool parseSpecial, bool atStart,
                                const std::vector<ByteRange>& textOnly) const;

  Model model_ = Model::Spm;
  std::string pre_;  // tokenizer.ggml.pre ("" when absent)
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::vector<TokenKind> kinds_;
  std::unordered_map<std::string, int32_t> pieceToId_;
  std::vector<int32_t> endOfGeneration_;  // eos, eot, eom ...
  std::vector<int32_t> specialTokens_;    // control / user-defined / unknown, longest text first
  int32_t bos_ = -1, eos_ = -1, unk_ = -1, pad_ = -1, eot_ = -1, eom_ = -1;
  bool addBos_ = true;
  bool addSpacePrefix_ = true;
};

// Joins token bytes into text without ever emitting half a UTF-8 character: push() returns the
// longest complete prefix so far, finish() whatever is left (invalid bytes become U+FFFD).
// Bytes that can never start or continue a character are replaced at once, not held back.
class Utf8Stream {
 public:
  std::string push(const std::string& bytes);
  std::string finish();

 private:
  std::string pending_;
};

// Internal: the two tokenizer families, built by Vocab::fromGguf.
std::unique_ptr<Vocab> loadSpmVocab(const GgufFile& file);
std::unique_ptr<Vocab> loadBpeVocab(const GgufFile& file);
