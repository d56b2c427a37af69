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

// An optional integer option of an options object, within [min, max]; fallback when absent.
inline int optionalInt(const Napi::Object& o, const char* key, int fallback, int min, int max) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= min && d <= max) || d != static_cast<double>(static_cast<int64_t>(d)))
    throw Napi::RangeError::New(o.Env(), std::string(key) + " must be an integer from " + std::to_string(min) + " to " +
                                             std::to_string(max));
  return static_cast<int>(d);
}

// An optional number option of an options object; fallback when absent.
inline double optionalNumber(const Napi::Object& o, const char* key, double fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

}  // namespace napi_common

// Each concern registers its functions on the exports object.
void registerGguf(Napi::Env env, Napi::Object exports);
void registerTensorTypes(Napi::Env env, Napi::Object exports);
void registerTokenizer(Napi::Env env, Napi::Object exports);
void registerModel(Napi::Env env, Napi::Object exports);
void registerSampler(Napi::Env env, Napi::Object exports);
void registerKvStore(Napi::Env env, Napi::Object exports);
void registerSdNotify(Napi::Env env, Napi::Object exports);
