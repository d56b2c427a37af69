// N-API surface of the sampler: new Sampler(options), sample(logits, offset, n, draft), and the
// grammar that constrains it (setGrammar, takeForced, grammarState, closingTokens).
#include <memory>
#include <string>
#include <vector>

#include "napi_common.h"
#include "napi_grammar.h"
#include "../sampler/sampler.h"

using napi_common::guarded;
using napi_common::optionalInt;
using napi_common::optionalNumber;

namespace {

class SamplerWrap : public Napi::ObjectWrap<SamplerWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "Sampler",
                       {InstanceMethod("sample", &SamplerWrap::sample), InstanceMethod("accept", &SamplerWrap::accept),
                        InstanceMethod("setGrammar", &SamplerWrap::setGrammar),
                        InstanceMethod("takeForced", &SamplerWrap::takeForced),
                        InstanceMethod("grammarState", &SamplerWrap::grammarState),
                        InstanceMethod("closingTokens", &SamplerWrap::closingTokens)});
  }
  // new Sampler({temperature, topK, topP, minP, repeatPenalty, repeatLastN, seed, maxTokens, grammar})
  SamplerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SamplerWrap>(info) {
    Napi::Env env = info.Env();
    Napi::Object o = info.Length() > 0 && info[0].IsObject() ? info[0].As<Napi::Object>() : Napi::Object::New(env);
    SamplerParams p;
    p.temperature = static_cast<float>(optionalNumber(o, "temperature", p.temperature));
    p.topK = optionalInt(o, "topK", p.topK, 0, 1 << 30);
    p.topP = static_cast<float>(optionalNumber(o, "topP", p.topP));
    p.minP = static_cast<float>(optionalNumber(o, "minP", p.minP));
    p.repeatPenalty = static_cast<float>(optionalNumber(o, "repeatPenalty", p.repeatPenalty));
    p.repeatLastN = optionalInt(o, "repeatLastN", p.repeatLastN, 0, 1 << 20);
    p.maxTokens = optionalInt(o, "maxTokens", -1, 1, 1 << 30);
    double seed = optionalNumber(o, "seed", 0);
    if (!(p.temperature >= 0) || !(p.topP > 0 && p.topP <= 1) || !(p.minP >= 0 && p.minP <= 1) || !(p.repeatPenalty > 0) ||
        !(seed >= 0 && seed <= 9007199254740991.0))
      throw Napi::RangeError::New(env, "sampler settings out of range");
    p.seed = static_cast<uint64_t>(seed);
    sampler_ = std::make_unique<Sampler>(p);
    sampler_->setGrammar(grammarFromValue(env, o.Get("grammar"), "grammar"));
  }

 private:
  // sample(logits: Float32Array, offset = 0, n = length - offset) -> token id
  Napi::Value sample(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      throw Napi::TypeError::New(env, "logits must be a Float32Array");
    Napi::Float32Array logits = info[0].As<Napi::Float32Array>();
    size_t len = logits.ElementLength();
    double offset = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : 0;
    double n = info.Length() > 2 && info[2].IsNumber() ? info[2].As<Napi::Number>().DoubleValue() : len - offset;
    if (!(offset >= 0 && n >= 1 && offset + n <= len)) throw Napi::RangeError::New(env, "logits slice out of range");
    const double draft = info.Length() > 3 && info[3].IsNumber() ? info[3].As<Napi::Number>().DoubleValue() : -1;
    if (!(draft >= -1 && draft < n)) throw Napi::RangeError::New(env, "draft token out of range");
    return Napi::Number::New(env, guarded(env, [&] {
      return sampler_->sample(logits.Data() + static_cast<size_t>(offset), static_cast<int64_t>(n), static_cast<int32_t>(draft));
    }));
  }
  // setGrammar(grammar | null, consumed?: string | Uint8Array) -> false when the grammar does not
  // admit `consumed` (the grammar is then off)
  Napi::Value setGrammar(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto grammar = grammarFromValue(env, info.Length() > 0 ? info[0] : env.Undefined(), "grammar");
    std::string consumed;
    if (info.Length() > 1 && info[1].IsString()) consumed = info[1].As<Napi::String>().Utf8Value();
    else if (info.Length() > 1 && info[1].IsTypedArray() && info[1].As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array) {
      Napi::Uint8Array a = info[1].As<Napi::Uint8Array>();
      consumed.assign(reinterpret_cast<const char*>(a.Data()), a.ElementLength());
    } else if (info.Length() > 1 && !info[1].IsUndefined()) {
      throw Napi::TypeError::New(env, "consumed must be a string or a Uint8Array");
    }
    return Napi::Boolean::New(env, guarded(env, [&] { return sampler_->setGrammar(grammar, consumed); }));
  }
  // takeForced() -> number[]: the tokens the grammar decides from here, taken as if sampled
  Napi::Value takeForced(const Napi::CallbackInfo& info) {
    const std::vector<int32_t> forced = guarded(info.Env(), [&] { return sampler_->takeForced(); });
    Napi::Array out = Napi::Array::New(info.Env(), forced.size());
    for (size_t i = 0; i < forced.size(); i++) out.Set(static_cast<uint32_t>(i), forced[i]);
    return out;
  }
  // grammarState() -> "none" | "open" | "complete"
  Napi::Value grammarState(const Napi::CallbackInfo& info) {
    const char* state = !sampler_->hasGrammar() ? "none" : guarded(info.Env(), [&] { return sampler_->grammarComplete(); }) ? "complete" : "open";
    return Napi::String::New(info.Env(), state);
  }
  // closingTokens() -> tokens chosen among fewer than the grammar admits, to end within maxTokens
  Napi::Value closingTokens(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(sampler_->closingTokens()));
  }
  Napi::Value accept(const Napi::CallbackInfo& info) {
    sampler_->accept(static_cast<int32_t>(napi_common::requireNumber(info, 0, "token id")));
    return info.Env().Undefined();
  }
  std::unique_ptr<Sampler> sampler_;
};

}  // namespace

void registerSampler(Napi::Env env, Napi::Object exports) { exports.Set("Sampler", SamplerWrap::define(env)); }
