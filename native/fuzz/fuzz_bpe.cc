// libFuzzer harness for the byte-level BPE tokenizer (tokenizer_bpe.cc). The first byte chooses:
//   even: the Llama 3 vocabulary from ../shared ($ALPACA_FUZZ_BPE_VOCAB) tokenizes the rest;
//   odd:  a vocabulary made from the input: lines "<type><piece>" up to an empty line, merges
//         "<left> <right>" up to the next empty line, then the text; a pre-tokenizer is chosen
//         by the next byte.
// Bits 1-3 of the first byte: add BOS, parse special tokens, render special tokens.
#include <cstdint>
#include <cstdio>
#include <exception>
#include <stdexcept>

#include "fuzz_common.h"

namespace {

const char* const kPreTokenizers[] = {"llama-bpe", "default", "", "gpt-2", "qwen2", "falcon3", "unknown-pre"};

std::unique_ptr<Vocab> vocabFromInput(fuzz::Input& in, fuzz::MemoryFile& file) {
  std::vector<std::string> pieces, merges;
  std::vector<int32_t> types;
  std::string line;
  while (pieces.size() < 1024 && in.line(line)) {
    types.push_back(static_cast<uint8_t>(line[0]) % 6 + 1);
    pieces.push_back(line.substr(1));
  }
  while (merges.size() < 1024 && in.line(line)) merges.push_back(line);
  fuzz::GgufBuilder b;
  b.string("tokenizer.ggml.model", "gpt2");
  b.string("tokenizer.ggml.pre", kPreTokenizers[in.byte() % (sizeof kPreTokenizers / sizeof *kPreTokenizers)]);
  b.strings("tokenizer.ggml.tokens", pieces);
  b.int32s("tokenizer.ggml.token_type", types);
  b.strings("tokenizer.ggml.merges", merges);
  const uint8_t ids = in.byte();
  if (ids & 1) b.u32("tokenizer.ggml.bos_token_id", ids >> 1);
  if (ids & 2) b.u32("tokenizer.ggml.eos_token_id", ids >> 2);
  GgufFile gguf(file.write(b.bytes()));
  return Vocab::fromGguf(gguf);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::unique_ptr<Vocab> llama3 = fuzz::loadVocabFromEnv("ALPACA_FUZZ_BPE_VOCAB", ALPACA_SHARED "/vocab/ggml-vocab-llama-bpe.gguf");
  static fuzz::MemoryFile file;
  return fuzz::fuzzTokenizer(data, size, *llama3, file, vocabFromInput);
}
