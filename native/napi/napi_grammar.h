// JavaScript face of the grammar engine (native/sampler/grammar.h, token_mask.h):
//   model.compileGrammar(gbnf, root = "root") / vocab.compileGrammar(…) -> Grammar, or throws an
//   Error named GrammarError with {line, column}
//   grammar.root, grammar.allowedTokens(tokens?) -> Int32Array, grammar.forcedTokens(tokens?) ->
//   Int32Array, grammar.match(text | Uint8Array) -> {accepted, complete}
// A Sampler takes a Grammar in its options ({grammar}) and through setGrammar().
#pragma once
#include <memory>

#include "napi_common.h"
#include "../sampler/token_mask.h"

// What compiles grammars for one vocabulary: builds the vocabulary's token index once, and lets
// grammars outlive the vocabulary safely (detach() when it goes).
class GrammarSource {
 public:
  GrammarSource() : ref_(std::make_shared<VocabRef>()) {}
  ~GrammarSource() { detach(); }
  void attach(const Vocab* vocab) { ref_->vocab = vocab; }
  void detach() {
    ref_->vocab = nullptr;
    index_.reset();
  }
  // compileGrammar(gbnf, root = "root")
  Napi::Value compile(const Napi::CallbackInfo& info);

 private:
  std::shared_ptr<VocabRef> ref_;
  std::shared_ptr<const TokenIndex> index_;
};

// The grammar a JavaScript value holds; nullptr for undefined or null, a TypeError for anything
// but a Grammar.
std::shared_ptr<const GrammarBundle> grammarFromValue(const Napi::Env& env, const Napi::Value& v, const char* what);

void registerGrammar(Napi::Env env, Napi::Object exports);
