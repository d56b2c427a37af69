// libFuzzer harness for the SentencePiece tokenizer (tokenizer_spm.cc). The first byte chooses:
//   even: the LLaMA vocabulary from ../shared ($ALPACA_FUZZ_SPM_VOCAB) tokenizes the rest;
//   odd:  a vocabulary made from the input: lines "<type><score><piece>" up to an empty line
//         (type byte % 6 + 1 is the token_type), then the text.
// Bits 1-3 of the first byte: add BOS, parse special tokens, render special tokens.
#include <cstdint>
#include <cstdio>
#include <exception>
#include <stdexcept>

#include "fuzz_common.h"

namespace {

std::unique_ptr<Vocab> vocabFromInput(fuzz::Input& in, fuzz::MemoryFile& file) {
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::vector<int32_t> types;
  std::string line;
  while (pieces.size() < 1024 && in.line(line)) {
    types.push_back(static_cast<uint8_t>(line[0]) % 6 + 1);
    scores.push_back(line.size() > 1 ? static_cast<int8_t>(line[1]) / 4.0f : 0.0f);
    pieces.push_back(line.size() > 2 ? line.substr(2) : std::string());
  }
  fuzz::GgufBuilder b;
  b.string("tokenizer.ggml.model", "llama");
  b.strings("tokenizer.ggml.tokens", pieces);
  b.floats("tokenizer.ggml.scores", scores);
  b.int32s("tokenizer.ggml.token_type", types);
  const uint8_t ids = in.byte();
  if (ids & 1) b.u32("tokenizer.ggml.bos_token_id", ids >> 1);
  if (ids & 2) b.u32("tokenizer.ggml.unknown_token_id", ids >> 2);
  GgufFile gguf(file.write(b.bytes()));
  return Vocab::fromGguf(gguf);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::unique_ptr<Vocab> llama = fuzz::loadVocabFromEnv("ALPACA_FUZZ_SPM_VOCAB", ALPACA_SHARED "/vocab/ggml-vocab-llama-spm.gguf");
  static fuzz::MemoryFile file;
  return fuzz::fuzzTokenizer(data, size, *llama, file, vocabFromInput);
}
