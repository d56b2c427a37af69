// readGguf(path, {full}) → a plain description of a GGUF file: version, layout, metadata and
// the tensor directory. Built on GgufFile, so every check of the reader applies; nothing here
// touches tensor data.
#include <cstring>
#include <limits>
#include <string>

#include "../gguf/gguf.h"
#include "napi_common.h"

namespace {

// Arrays longer than this (the vocabulary, scores, merges) are summarized unless {full: true}:
// listing 32000 tokens is rarely what a caller of readGguf wants.
constexpr uint64_t kSummarizeAbove = 1024;
// Even with {full: true} a JavaScript array of this many elements is refused: a file can
// claim a billion-element array in a few bytes of header plus the data section it overlaps.
constexpr uint64_t kMaxFullArray = uint64_t(1) << 24;
constexpr uint64_t kMaxSafeInteger = (uint64_t(1) << 53) - 1;
// The reader accepts strings up to 1 GiB (they are views into the mapping), but V8 cannot
// make a string over ~512 MiB and would fail with a message that names no file. A chat
// template, the longest real value, is a few kilobytes.
constexpr size_t kMaxJsStringBytes = size_t(1) << 24;

Napi::String stringValue(Napi::Env env, const GgufFile& file, const std::string& key, std::string_view s) {
  if (s.size() > kMaxJsStringBytes)
    throw GgufError(file.path() + ": " + key + " holds a string of " + std::to_string(s.size()) + " bytes, too long to return");
  return Napi::String::New(env, s.data(), s.size());
}

Napi::Value unsignedValue(Napi::Env env, uint64_t u) {
  if (u <= kMaxSafeInteger) return Napi::Number::New(env, static_cast<double>(u));
  return Napi::BigInt::New(env, u);
}

Napi::Value signedValue(Napi::Env env, int64_t i) {
  if (i >= -static_cast<int64_t>(kMaxSafeInteger) && i <= static_cast<int64_t>(kMaxSafeInteger))
    return Napi::Number::New(env, static_cast<double>(i));
  return Napi::BigInt::New(env, i);
}

// One packed array element. p points into the mapping; the reader checked the whole array fits.
Napi::Value elementValue(Napi::Env env, GgufValueType type, const uint8_t* p) {
  switch (type) {
    case GgufValueType::UINT8: return Napi::Number::New(env, *p);
    case GgufValueType::INT8: return Napi::Number::New(env, static_cast<int8_t>(*p));
    case GgufValueType::BOOL: return Napi::Boolean::New(env, *p != 0);
    case GgufValueType::UINT16: { uint16_t x; std::memcpy(&x, p, 2); return Napi::Number::New(env, x); }
    case GgufValueType::INT16: { int16_t x; std::memcpy(&x, p, 2); return Napi::Number::New(env, x); }
    case GgufValueType::UINT32: { uint32_t x; std::memcpy(&x, p, 4); return Napi::Number::New(env, x); }
    case GgufValueType::INT32: { int32_t x; std::memcpy(&x, p, 4); return Napi::Number::New(env, x); }
    case GgufValueType::FLOAT32: { float x; std::memcpy(&x, p, 4); return Napi::Number::New(env, x); }
    case GgufValueType::UINT64: { uint64_t x; std::memcpy(&x, p, 8); return unsignedValue(env, x); }
    case GgufValueType::INT64: { int64_t x; std::memcpy(&x, p, 8); return signedValue(env, x); }
    case GgufValueType::FLOAT64: { double x; std::memcpy(&x, p, 8); return Napi::Number::New(env, x); }
    default: throw std::logic_error("not a packed element type");
  }
}

size_t elementSize(GgufValueType type) {
  switch (type) {
    case GgufValueType::UINT8: case GgufValueType::INT8: case GgufValueType::BOOL: return 1;
    case GgufValueType::UINT16: case GgufValueType::INT16: return 2;
    case GgufValueType::UINT32: case GgufValueType::INT32: case GgufValueType::FLOAT32: return 4;
    default: return 8;
  }
}

Napi::Value metadataValue(Napi::Env env, const GgufFile& file, const std::string& key, const GgufValue& v, bool full) {
  switch (v.type) {
    case GgufValueType::STRING: return stringValue(env, file, key, v.str);
    case GgufValueType::BOOL: return Napi::Boolean::New(env, v.u != 0);
    case GgufValueType::FLOAT32: case GgufValueType::FLOAT64: return Napi::Number::New(env, v.f);
    case GgufValueType::UINT64: return unsignedValue(env, v.u);
    case GgufValueType::ARRAY: break;
    default: return signedValue(env, v.i);  // the smaller integers all fit
  }
  if (!full && v.count > kSummarizeAbove) {
    Napi::Object summary = Napi::Object::New(env);
    summary.Set("array", ggufValueTypeName(v.elemType));
    summary.Set("count", unsignedValue(env, v.count));
    return summary;
  }
  if (v.count > kMaxFullArray)
    throw GgufError(file.path() + ": " + key + " has " + std::to_string(v.count) + " elements, too many to list");
  Napi::Array out = Napi::Array::New(env, static_cast<size_t>(v.count));
  if (v.elemType == GgufValueType::STRING) {
    for (uint32_t i = 0; i < v.count; i++) out.Set(i, stringValue(env, file, key, v.strings[i]));
  } else {
    size_t es = elementSize(v.elemType);
    for (uint32_t i = 0; i < v.count; i++) out.Set(i, elementValue(env, v.elemType, v.elems + i * es));
  }
  return out;
}

Napi::Object tensorInfo(Napi::Env env, const GgufTensor& t) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", t.name);
  o.Set("type", Napi::Number::New(env, static_cast<uint32_t>(t.type)));
  const TypeTraits* traits = typeTraits(static_cast<uint32_t>(t.type));
  o.Set("typeName", traits ? traits->name : "unknown");
  Napi::Array dims = Napi::Array::New(env, t.nDims);
  // the reader bounds each dimension by 2^40, so a double holds it exactly
  for (uint32_t d = 0; d < t.nDims; d++) dims.Set(d, Napi::Number::New(env, static_cast<double>(t.ne[d])));
  o.Set("dims", dims);
  // offset + nbytes lie inside the file, so both are exact as doubles
  o.Set("offset", Napi::Number::New(env, static_cast<double>(t.offset)));
  o.Set("nbytes", Napi::Number::New(env, static_cast<double>(t.nbytes)));
  return o;
}

Napi::Value readGguf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = napi_common::requireString(info, 0, "path");
  if (path.empty()) throw Napi::TypeError::New(env, "path must not be empty");
  if (path.find('\0') != std::string::npos) throw Napi::TypeError::New(env, "path must not contain NUL characters");
  bool full = false;
  if (info.Length() > 1 && !info[1].IsUndefined()) {
    if (!info[1].IsObject()) throw Napi::TypeError::New(env, "options must be an object");
    Napi::Value f = info[1].As<Napi::Object>().Get("full");
    if (!f.IsUndefined()) {
      if (!f.IsBoolean()) throw Napi::TypeError::New(env, "options.full must be a boolean");
      full = f.As<Napi::Boolean>().Value();
    }
  }

  return napi_common::guarded(env, [&]() -> Napi::Value {
    GgufFile file(path);
    Napi::Object out = Napi::Object::New(env);
    out.Set("version", Napi::Number::New(env, file.version()));
    out.Set("alignment", Napi::Number::New(env, static_cast<double>(file.alignment())));
    out.Set("dataOffset", Napi::Number::New(env, static_cast<double>(file.dataOffset())));
    out.Set("fileSize", Napi::Number::New(env, static_cast<double>(file.fileSize())));

    // Keys are defined, not assigned: a key named "__proto__" must become a property,
    // not replace the object's prototype.
    Napi::Object metadata = Napi::Object::New(env);
    for (const auto& [key, value] : file.metadata()) {
      Napi::Value js = metadataValue(env, file, key, value, full);
      metadata.DefineProperty(Napi::PropertyDescriptor::Value(
          Napi::String::New(env, key), js, static_cast<napi_property_attributes>(napi_writable | napi_enumerable | napi_configurable)));
    }
    out.Set("metadata", metadata);

    Napi::Array tensors = Napi::Array::New(env, file.tensors().size());
    for (size_t i = 0; i < file.tensors().size(); i++) tensors.Set(static_cast<uint32_t>(i), tensorInfo(env, file.tensors()[i]));
    out.Set("tensors", tensors);
    return out;
  });
}

}  // namespace

void registerGguf(Napi::Env env, Napi::Object exports) {
  exports.Set("readGguf", Napi::Function::New(env, readGguf, "readGguf"));
}
