// JavaScript face of the tokenizers:
//   new Vocab(path)                      a GGUF model or vocabulary-only file
//     .tokenize(text, {addBos, parseSpecial}) -> Int32Array
//     .detokenize(ids, {renderSpecial})       -> string (valid UTF-8, U+FFFD for stray bytes)
//     .tokenBytes(id, {renderSpecial})        -> Buffer (may hold part of a character)
//     .piece(id) -> string, .isEndOfGeneration(id) -> boolean, .info() -> {...}
//   new TokenDecoder(vocab, {renderSpecial})  streaming: push(id) -> string, finish() -> string;
//                                             never returns half a UTF-8 character.
#include <cmath>
#include <memory>

#include "napi_common.h"
#include "napi_grammar.h"
#include "../tokenizer/vocab.h"

namespace {

using napi_common::guarded;

// Marks objects made by VocabWrap, so TokenDecoder can tell a real Vocab from any other object.
const napi_type_tag kVocabTag = {0x616c7061636100aaULL, 0x766f636162000001ULL};

// Optional options object at info[i]: absent/undefined -> {}; anything else but an object -> TypeError.
Napi::Object optionsAt(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return Napi::Object::New(info.Env());
  if (!info[i].IsObject()) throw Napi::TypeError::New(info.Env(), "options must be an object");
  return info[i].As<Napi::Object>();
}

bool boolOption(const Napi::Object& options, const char* name, bool fallback) {
  Napi::Value v = options.Get(name);
  if (v.IsUndefined()) return fallback;
  if (!v.IsBoolean()) throw Napi::TypeError::New(options.Env(), std::string("options.") + name + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

// A token id from JavaScript: a number that is an integer inside the vocabulary.
int32_t tokenId(const Napi::Env& env, const Napi::Value& v, const Vocab& vocab, const char* what) {
  if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string(what) + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d) || d < 0 || d >= vocab.size())
    throw Napi::RangeError::New(env, std::string(what) + " " + Napi::Number::New(env, d).ToString().Utf8Value() +
                                         " is not a token id (0.." + std::to_string(vocab.size() - 1) + ")");
  return static_cast<int32_t>(d);
}

// Int32Array, or an array of numbers.
std::vector<int32_t> tokenIds(const Napi::Env& env, const Napi::Value& v, const Vocab& vocab) {
  std::vector<int32_t> ids;
  if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
    Napi::Int32Array a = v.As<Napi::Int32Array>();
    ids.assign(a.Data(), a.Data() + a.ElementLength());
    for (int32_t id : ids)
      if (!vocab.validId(id))
        throw Napi::RangeError::New(env, "token id " + std::to_string(id) + " is not a token id (0.." +
                                             std::to_string(vocab.size() - 1) + ")");
    return ids;
  }
  if (!v.IsArray()) throw Napi::TypeError::New(env, "ids must be an Int32Array or an array of numbers");
  Napi::Array a = v.As<Napi::Array>();
  ids.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) ids.push_back(tokenId(env, a.Get(i), vocab, "token id"));
  return ids;
}

class VocabWrap : public Napi::ObjectWrap<VocabWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "Vocab",
                       {
                           InstanceMethod<&VocabWrap::tokenize>("tokenize"),
                           InstanceMethod<&VocabWrap::detokenize>("detokenize"),
                           InstanceMethod<&VocabWrap::tokenBytes>("tokenBytes"),
                           InstanceMethod<&VocabWrap::piece>("piece"),
                           InstanceMethod<&VocabWrap::isEndOfGeneration>("isEndOfGeneration"),
                           InstanceMethod<&VocabWrap::info>("info"),
                           InstanceMethod<&VocabWrap::compileGrammar>("compileGrammar"),
                       });
  }

  explicit VocabWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<VocabWrap>(info) {
    const std::string path = napi_common::requireString(info, 0, "path");
    guarded(info.Env(), [&] {
      // The vocabulary copies what it needs, so the mapping is released when the file goes.
      GgufFile file(path);
      vocab_ = Vocab::fromGguf(file);
    });
    grammars_.attach(vocab_.get());
    info.This().As<Napi::Object>().TypeTag(&kVocabTag);
  }

  const Vocab& vocab() const { return *vocab_; }

 private:
  Napi::Value tokenize(const Napi::CallbackInfo& info) {
    const std::string text = napi_common::requireString(info, 0, "text");
    Napi::Object options = optionsAt(info, 1);
    const bool addBos = boolOption(options, "addBos", vocab_->addBosByDefault());
    const bool parseSpecial = boolOption(options, "parseSpecial", false);
    std::vector<int32_t> ids = guarded(info.Env(), [&] { return vocab_->tokenize(text, addBos, parseSpecial); });
    Napi::Int32Array out = Napi::Int32Array::New(info.Env(), ids.size());
    std::copy(ids.begin(), ids.end(), out.Data());
    return out;
  }

  Napi::Value detokenize(const Napi::CallbackInfo& info) {
    if (info.Length() < 1) throw Napi::TypeError::New(info.Env(), "ids must be an Int32Array or an array of numbers");
    const std::vector<int32_t> ids = tokenIds(info.Env(), info[0], *vocab_);
    const bool renderSpecial = boolOption(optionsAt(info, 1), "renderSpecial", false);
    return Napi::String::New(info.Env(), guarded(info.Env(), [&] { return vocab_->detokenize(ids, renderSpecial); }));
  }

  Napi::Value tokenBytes(const Napi::CallbackInfo& info) {
    const int32_t id = tokenId(info.Env(), info[0], *vocab_, "id");
    const bool renderSpecial = boolOption(optionsAt(info, 1), "renderSpecial", false);
    const std::string bytes = guarded(info.Env(), [&] { return vocab_->tokenBytes(id, renderSpecial); });
    return Napi::Buffer<char>::Copy(info.Env(), bytes.data(), bytes.size());
  }

  Napi::Value piece(const Napi::CallbackInfo& info) {
    const int32_t id = tokenId(info.Env(), info[0], *vocab_, "id");
    return Napi::String::New(info.Env(), vocab_->piece(id));
  }

  Napi::Value isEndOfGeneration(const Napi::CallbackInfo& info) {
    const int32_t id = tokenId(info.Env(), info[0], *vocab_, "id");
    return Napi::Boolean::New(info.Env(), vocab_->isEndOfGeneration(id));
  }

  Napi::Value info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto idOrNull = [&](int32_t id) -> Napi::Value { return id >= 0 ? Napi::Number::New(env, id) : env.Null(); };
    Napi::Object out = Napi::Object::New(env);
    out.Set("model", vocab_->modelName());
    out.Set("pre", vocab_->preTokenizer());
    out.Set("size", vocab_->size());
    out.Set("bos", idOrNull(vocab_->bos()));
    out.Set("eos", idOrNull(vocab_->eos()));
    out.Set("unk", idOrNull(vocab_->unk()));
    out.Set("addBos", vocab_->addBosByDefault());
    out.Set("addSpacePrefix", vocab_->addSpacePrefix());
    const auto& eog = vocab_->endOfGenerationIds();
    Napi::Array eogArray = Napi::Array::New(env, eog.size());
    for (uint32_t i = 0; i < eog.size(); i++) eogArray.Set(i, eog[i]);
    out.Set("eog", eogArray);
    return out;
  }

  // compileGrammar(gbnf, root = "root") -> Grammar (napi_grammar.h)
  Napi::Value compileGrammar(const Napi::CallbackInfo& info) { return grammars_.compile(info); }

  std::unique_ptr<Vocab> vocab_;
  GrammarSource grammars_;  // declared after vocab_: detached before the vocabulary goes
};

class TokenDecoderWrap : public Napi::ObjectWrap<TokenDecoderWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "TokenDecoder",
                       {
                           InstanceMethod<&TokenDecoderWrap::push>("push"),
                           InstanceMethod<&TokenDecoderWrap::finish>("finish"),
                       });
  }

  explicit TokenDecoderWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TokenDecoderWrap>(info) {
    if (info.Length() < 1 || !info[0].IsObject() || !info[0].As<Napi::Object>().CheckTypeTag(&kVocabTag))
      throw Napi::TypeError::New(info.Env(), "vocab must be a Vocab");
    Napi::Object vocabObject = info[0].As<Napi::Object>();
    vocab_ = &VocabWrap::Unwrap(vocabObject)->vocab();
    vocabRef_ = Napi::Persistent(vocabObject);  // keeps the Vocab alive as long as this decoder
    renderSpecial_ = boolOption(optionsAt(info, 1), "renderSpecial", false);
  }

 private:
  Napi::Value push(const Napi::CallbackInfo& info) {
    const int32_t id = tokenId(info.Env(), info[0], *vocab_, "id");
    return Napi::String::New(info.Env(), guarded(info.Env(), [&] {
      return stream_.push(vocab_->tokenBytes(id, renderSpecial_));
    }));
  }

  Napi::Value finish(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), stream_.finish()); }

  const Vocab* vocab_ = nullptr;
  Napi::ObjectReference vocabRef_;
  bool renderSpecial_ = false;
  Utf8Stream stream_;
};

}  // namespace

void registerTokenizer(Napi::Env env, Napi::Object exports) {
  exports.Set("Vocab", VocabWrap::define(env));
  exports.Set("TokenDecoder", TokenDecoderWrap::define(env));
}
