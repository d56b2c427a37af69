// Vocabulary and tokenizers read from a GGUF file (a model or a vocabulary-only file):
// SentencePiece-style (tokenizer.ggml.model = "llama") and byte-level BPE ("gpt2", Llama 3).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "gguf.h"

// tokenizer.ggml.token_type values
enum class TokenKind : int32_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

class Vocab {
 public:
  enum class Model { Spm, Bpe };

  // Throws GgufError naming the file and key when the tokenizer metadata is missing or malformed.
  static std::unique_ptr<Vocab> fromGguf(const GgufFile& file);
  virtual ~Vocab() = default;

  // Text -> ids. addBos prepends BOS when the vocabulary has one. parseSpecial turns the text of
  // control / user-defined tokens ("<s>", "<|eot_id|>") into those tokens instead of plain text.
  virtual std::vector<int32_t> tokenize(std::string_view text, bool addBos, bool parseSpecial) const = 0;

  // The raw bytes a token stands for in generated text (may be part of a UTF-8 character).
  // Control tokens give "" unless renderSpecial.
  virtual std::string tokenBytes(int32_t id, bool renderSpecial) const = 0;

  Model model() const { return model_; }
  int32_t size() const { return static_cast<int32_t>(pieces_.size()); }
  int32_t bos() const { return bos_; }
  int32_t eos() const { return eos_; }
  bool addBosByDefault() const { return addBos_; }
  bool isEndOfGeneration(int32_t id) const;
  const std::string& piece(int32_t id) const { return pieces_.at(static_cast<size_t>(id)); }
  TokenKind kind(int32_t id) const { return kinds_.at(static_cast<size_t>(id)); }

 protected:
  Model model_ = Model::Spm;
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::vector<TokenKind> kinds_;
  std::unordered_map<std::string, int32_t> pieceToId_;
  std::vector<int32_t> endOfGeneration_;  // eos, eot, eom ...
  int32_t bos_ = -1, eos_ = -1, unk_ = -1, pad_ = -1;
  bool addBos_ = true;
  bool addSpacePrefix_ = true;
};

// Joins token bytes into text without ever emitting half a UTF-8 character: push() returns the
// longest complete prefix so far, finish() whatever is left (invalid bytes become U+FFFD).
class Utf8Stream {
 public:
  std::string push(const std::string& bytes);
  std::string finish();

 private:
  std::string pending_;
};
