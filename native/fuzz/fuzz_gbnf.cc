// libFuzzer harness for the grammar engine (native/sampler/grammar*.cc, token_mask.cc). The input
// is GBNF text, then a NUL byte, then bytes to feed: the grammar is compiled (a GrammarError is a
// correct answer), then the bytes are read one at a time as far as the grammar admits them, and at
// the start, half way and at the end the token mask and the forced tokens are computed against the
// LLaMA SentencePiece vocabulary ($ALPACA_FUZZ_SPM_VOCAB). A runtime_error (a grammar too ambiguous
// to follow) is a correct answer too; anything else, a crash or a sanitizer report is a bug.
#include <cstdint>
#include <cstdio>
#include <exception>
#include <stdexcept>

#include "fuzz_common.h"
#include "../sampler/token_mask.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::unique_ptr<Vocab> vocab = fuzz::loadVocabFromEnv("ALPACA_FUZZ_SPM_VOCAB", ALPACA_SHARED "/vocab/ggml-vocab-llama-spm.gguf");
  static std::shared_ptr<const TokenIndex> index = TokenIndex::build(*vocab);
  static auto ref = [] {
    auto r = std::make_shared<VocabRef>();
    r->vocab = vocab.get();
    return r;
  }();
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view gbnf = input.substr(0, nul);
  const std::string_view text = nul == std::string_view::npos ? std::string_view() : input.substr(nul + 1);
  auto bundle = std::make_shared<GrammarBundle>();
  try {
    bundle->grammar = std::make_shared<const CompiledGrammar>(compileGbnf(gbnf, "root"));
  } catch (const GrammarError& e) {
    if (e.line < 1 || e.column < 1) abort();  // every refusal says where
    return 0;
  }
  bundle->tokens = index;
  bundle->vocab = ref;
  bundle->root = "root";
  try {
    GrammarCursor cursor(bundle);
    TokenMask mask;
    const auto probe = [&] {
      cursor.grammarMask(mask);
      cursor.forced();
      cursor.mask();
      cursor.complete();
    };
    probe();
    for (size_t i = 0; i < text.size(); i++) {
      if (!cursor.acceptText(text.substr(i, 1))) break;
      if (i == text.size() / 2) probe();
    }
    probe();
    // the forced tokens are admitted one after another, as the sampler takes them
    for (int k = 0; k < 64; k++) {
      const auto& f = cursor.forced();
      if (f.empty()) break;
      if (!cursor.accept(f.front())) abort();
    }
  } catch (const std::logic_error& e) {
    std::fprintf(stderr, "logic_error: %s\n", e.what());
    abort();
  } catch (const std::runtime_error&) {
  }
  return 0;
}
