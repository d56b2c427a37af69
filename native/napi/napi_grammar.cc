#include "napi_grammar.h"

#include <algorithm>
#include <limits>

#include "../tokenizer/vocab.h"

using napi_common::guarded;

namespace {

const napi_type_tag kGrammarTag = {0x616c7061636100aaULL, 0x6772616d6d617201ULL};

class GrammarWrap : public Napi::ObjectWrap<GrammarWrap> {
 public:
  static thread_local Napi::FunctionReference* constructor;  // one per JavaScript environment (thread)

  static Napi::Function define(Napi::Env env) {
    Napi::Function f = DefineClass(env, "Grammar",
                                   {InstanceAccessor<&GrammarWrap::root>("root"),
                                    InstanceMethod<&GrammarWrap::allowedTokens>("allowedTokens"),
                                    InstanceMethod<&GrammarWrap::forcedTokens>("forcedTokens"),
                                    InstanceMethod<&GrammarWrap::shortestCompletion>("shortestCompletion"),
                                    InstanceMethod<&GrammarWrap::match>("match")});
    constructor = new Napi::FunctionReference(Napi::Persistent(f));
    constructor->SuppressDestruct();
    return f;
  }

  explicit GrammarWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GrammarWrap>(info) {
    if (info.Length() < 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(), "a Grammar comes from model.compileGrammar(gbnf)");
    bundle_ = *info[0].As<Napi::External<std::shared_ptr<const GrammarBundle>>>().Data();
    info.This().As<Napi::Object>().TypeTag(&kGrammarTag);
  }

  const std::shared_ptr<const GrammarBundle>& bundle() const { return bundle_; }

 private:
  Napi::Value root(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), bundle_->root); }

  // A cursor moved over `tokens` (info[0]: absent, an Int32Array or an array of ids).
  std::unique_ptr<GrammarCursor> cursorAfter(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto cursor = std::make_unique<GrammarCursor>(bundle_);
    if (info.Length() < 1 || info[0].IsUndefined()) return cursor;
    std::vector<int32_t> ids;
    if (info[0].IsTypedArray() && info[0].As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
      Napi::Int32Array a = info[0].As<Napi::Int32Array>();
      ids.assign(a.Data(), a.Data() + a.ElementLength());
    } else if (info[0].IsArray()) {
      Napi::Array a = info[0].As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) {
        Napi::Value v = a.Get(i);
        if (!v.IsNumber()) throw Napi::TypeError::New(env, "tokens must be numbers");
        ids.push_back(v.As<Napi::Number>().Int32Value());
      }
    } else {
      throw Napi::TypeError::New(env, "tokens must be an Int32Array or an array of token ids");
    }
    for (size_t i = 0; i < ids.size(); i++)
      if (!guarded(env, [&] { return cursor->accept(ids[i]); }))
        throw Napi::RangeError::New(env, "token " + std::to_string(ids[i]) + " (at " + std::to_string(i) +
                                             ") is not admitted by the grammar there");
    return cursor;
  }

  static Napi::Int32Array idsOf(const Napi::Env& env, const TokenIndex& index, const TokenMask& mask) {
    std::vector<int32_t> ids;
    for (size_t w = 0; w < mask.bits.size(); w++)
      for (uint32_t bits = mask.bits[w]; bits; bits &= bits - 1) ids.push_back(index.ids[w * 32 + __builtin_ctz(bits)]);
    if (mask.endAllowed) ids.insert(ids.end(), index.endOfGeneration.begin(), index.endOfGeneration.end());
    std::sort(ids.begin(), ids.end());
    Napi::Int32Array out = Napi::Int32Array::New(env, ids.size());
    std::copy(ids.begin(), ids.end(), out.Data());
    return out;
  }

  // allowedTokens(tokens?, tokensLeft?) -> Int32Array: what the grammar admits after tokens
  // (forcing aside), closing within tokensLeft when given
  Napi::Value allowedTokens(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto cursor = cursorAfter(info);
    int64_t tokensLeft = -1;
    if (info.Length() > 1 && !info[1].IsUndefined()) {
      const double left = info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : -1;
      if (!(left >= 1 && left <= 1e12 && left == static_cast<double>(static_cast<int64_t>(left))))
        throw Napi::RangeError::New(env, "tokensLeft must be a positive integer");
      tokensLeft = static_cast<int64_t>(left);
    }
    TokenMask mask;
    guarded(env, [&] { return cursor->grammarMask(mask, tokensLeft); });
    return idsOf(env, *bundle_->tokens, mask);
  }

  // shortestCompletion(tokens?) -> the fewest bytes that complete a sentence after tokens
  // (0: it may end there; Infinity: nothing completes it)
  Napi::Value shortestCompletion(const Napi::CallbackInfo& info) {
    auto cursor = cursorAfter(info);
    const uint32_t d = cursor->distance();
    return Napi::Number::New(info.Env(), d == CompiledGrammar::kNoCompletion ? std::numeric_limits<double>::infinity() : static_cast<double>(d));
  }

  // forcedTokens(tokens?) -> Int32Array: the tokens the grammar decides after tokens
  Napi::Value forcedTokens(const Napi::CallbackInfo& info) {
    auto cursor = cursorAfter(info);
    const std::deque<int32_t> forced = guarded(info.Env(), [&] { return cursor->forced(); });
    Napi::Int32Array out = Napi::Int32Array::New(info.Env(), forced.size());
    std::copy(forced.begin(), forced.end(), out.Data());
    return out;
  }

  // match(text | Uint8Array) -> {accepted, complete}
  Napi::Value match(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string bytes;
    if (info.Length() > 0 && info[0].IsString()) bytes = info[0].As<Napi::String>().Utf8Value();
    else if (info.Length() > 0 && info[0].IsTypedArray() && info[0].As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array) {
      Napi::Uint8Array a = info[0].As<Napi::Uint8Array>();
      bytes.assign(reinterpret_cast<const char*>(a.Data()), a.ElementLength());
    } else {
      throw Napi::TypeError::New(env, "text must be a string or a Uint8Array");
    }
    GrammarCursor cursor(bundle_);
    const bool accepted = guarded(env, [&] { return cursor.acceptText(bytes); });
    Napi::Object o = Napi::Object::New(env);
    o.Set("accepted", accepted);
    o.Set("complete", accepted && cursor.mayEnd());
    return o;
  }

  std::shared_ptr<const GrammarBundle> bundle_;
};

thread_local Napi::FunctionReference* GrammarWrap::constructor = nullptr;

Napi::Error grammarError(const Napi::Env& env, const std::string& message, int line, int column) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("name", Napi::String::New(env, "GrammarError"));
  err.Set("line", Napi::Number::New(env, line));
  err.Set("column", Napi::Number::New(env, column));
  return err;
}

bool validRootName(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return true;
}

}  // namespace

Napi::Value GrammarSource::compile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string text = napi_common::requireString(info, 0, "grammar");
  std::string root = "root";
  if (info.Length() > 1 && !info[1].IsUndefined()) root = napi_common::requireString(info, 1, "root");
  if (!validRootName(root)) throw Napi::TypeError::New(env, "root must be a rule name (letters, digits and -)");
  if (!ref_->vocab) throw Napi::Error::New(env, "the vocabulary is closed");
  auto bundle = std::make_shared<GrammarBundle>();
  try {
    bundle->grammar = std::make_shared<const CompiledGrammar>(compileGbnf(text, root));
  } catch (const GrammarError& e) {
    throw grammarError(env, e.what(), e.line, e.column);
  }
  if (!index_) index_ = guarded(env, [&] { return TokenIndex::build(*ref_->vocab); });
  bundle->tokens = index_;
  bundle->vocab = ref_;
  bundle->root = root;
  // The start state is computed now, so that a grammar too ambiguous to follow fails here.
  try {
    GrammarCursor(bundle).mayEnd();
  } catch (const std::exception& e) {
    throw grammarError(env, "line 1, column 1: " + std::string(e.what()), 1, 1);
  }
  auto holder = std::make_shared<const GrammarBundle>(*bundle);
  return GrammarWrap::constructor->New({Napi::External<std::shared_ptr<const GrammarBundle>>::New(env, &holder)});
}

std::shared_ptr<const GrammarBundle> grammarFromValue(const Napi::Env& env, const Napi::Value& v, const char* what) {
  if (v.IsUndefined() || v.IsNull()) return nullptr;
  if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&kGrammarTag))
    throw Napi::TypeError::New(env, std::string(what) + " must be a Grammar (from compileGrammar) or null");
  return GrammarWrap::Unwrap(v.As<Napi::Object>())->bundle();
}

void registerGrammar(Napi::Env env, Napi::Object exports) { exports.Set("Grammar", GrammarWrap::define(env)); }
