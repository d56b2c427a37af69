// Shared pieces of the N-API layer: argument checks that throw clear TypeErrors, and the
// translation of C++ exceptions into JavaScript errors (never a crash, never a stack trace
// from native code).
#pragma once
#include <napi.h>

#include <string>

namespace napi_common {

inline std::string requireString(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsString())
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

inline double requireNumber(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsNumber())
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

inline bool optionalBool(const Napi::CallbackInfo& info, size_t i, bool fallback) {
  if (info.Length() <= i || info[i].IsUndefined()) return fallback;
  if (!info[i].IsBoolean()) throw Napi::TypeError::New(info.Env(), "expected a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

// Runs fn; a std::exception becomes a JavaScript Error with its message.
template <typename Fn>
auto guarded(const Napi::Env& env, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

}  // namespace napi_common

// Each concern registers its functions on the exports object.
void registerGguf(Napi::Env env, Napi::Object exports);
void registerTensorTypes(Napi::Env env, Napi::Object exports);
void registerTokenizer(Napi::Env env, Napi::Object exports);
void registerModel(Napi::Env env, Napi::Object exports);
void registerKvStore(Napi::Env env, Napi::Object exports);
void registerSdNotify(Napi::Env env, Napi::Object exports);
