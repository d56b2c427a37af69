// exports.tensorTypes: the tensor formats seen from JavaScript, for tests and for tools (quantize,
// inspect). Every argument is checked here, so that a wrong size is a RangeError, never a read past
// a buffer.
#include <stdexcept>
#include <string>
#include <vector>

#include "../kernels/kernel_table.h"
#include "napi_common.h"
#include "../gguf/tensor_types.h"

namespace {

using napi_common::guarded;

// Rows longer than this are a caller's mistake, not a tensor (the largest rows of 70B models are
// a few tens of thousands of elements).
constexpr double kMaxElements = double(1 << 30);

const TypeTraits& requireType(const Napi::CallbackInfo& info, size_t i, const char* what) {
  const double id = napi_common::requireNumber(info, i, what);
  const TypeTraits* traits = (id >= 0 && id <= 0xFFFFFFFF && id == double(uint32_t(id))) ? typeTraits(uint32_t(id)) : nullptr;
  if (!traits) throw Napi::RangeError::New(info.Env(), std::string(what) + " is not a known tensor type id");
  return *traits;
}

TensorType typeAt(const Napi::CallbackInfo& info, size_t i) {
  return static_cast<TensorType>(info[i].As<Napi::Number>().Uint32Value());
}

// An element count: a non-negative integer, a whole number of blocks of `traits`.
int64_t requireCount(const Napi::CallbackInfo& info, size_t i, const TypeTraits& traits) {
  const double n = napi_common::requireNumber(info, i, "n");
  if (!(n >= 0 && n <= kMaxElements && n == double(int64_t(n))))
    throw Napi::RangeError::New(info.Env(), "n must be an integer between 0 and 2^30");
  if (int64_t(n) % traits.blockSize != 0)
    throw Napi::RangeError::New(info.Env(), "n must be a multiple of " + std::to_string(traits.blockSize) +
                                                " (the block size of " + traits.name + ")");
  return int64_t(n);
}

// The bytes of a Buffer (or any typed array) argument, which must be exactly `bytes` long.
// Copied when they are not 4-byte aligned, so that float rows are read through aligned pointers.
struct Bytes {
  const uint8_t* data = nullptr;
  std::vector<uint8_t> aligned;
};

Bytes requireBytes(const Napi::CallbackInfo& info, size_t i, const char* what, size_t bytes, const char* typeName) {
  if (info.Length() <= i || !info[i].IsTypedArray())
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a Buffer");
  const auto view = info[i].As<Napi::TypedArray>();
  if (view.ByteLength() != bytes)
    throw Napi::RangeError::New(info.Env(), std::string(what) + " holds " + std::to_string(view.ByteLength()) +
                                                " bytes; a row of " + typeName + " of this length takes " +
                                                std::to_string(bytes));
  Bytes out;
  const auto* p = static_cast<const uint8_t*>(view.ArrayBuffer().Data()) + view.ByteOffset();
  if (reinterpret_cast<uintptr_t>(p) % 4 == 0) {
    out.data = p;
  } else {
    out.aligned.assign(p, p + bytes);
    out.data = out.aligned.data();
  }
  return out;
}

Napi::Value types(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array list = Napi::Array::New(env);
  uint32_t count = 0;
  for (uint32_t id = 0; id < 64; ++id) {
    const TypeTraits* t = typeTraits(id);
    if (!t) continue;
    Napi::Object o = Napi::Object::New(env);
    o.Set("id", id);
    o.Set("name", t->name);
    o.Set("blockSize", double(t->blockSize));
    o.Set("blockBytes", double(t->blockBytes));
    o.Set("computable", t->computable);
    o.Set("dotWith", uint32_t(t->dotWith));
    list.Set(count++, o);
  }
  return list;
}

// dequantize(typeId, buffer, n): Float32Array of n elements
Napi::Value dequantize(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const TypeTraits& traits = requireType(info, 0, "typeId");
    const TensorType type = typeAt(info, 0);
    const int64_t n = requireCount(info, 2, traits);
    const Bytes src = requireBytes(info, 1, "buffer", rowBytes(type, n), traits.name);
    Napi::Float32Array out = Napi::Float32Array::New(info.Env(), size_t(n));
    if (n > 0) dequantizeRow(type, src.data, out.Data(), n);
    return out;
  });
}

// quantize(typeId, Float32Array): Buffer holding one row of the type
Napi::Value quantize(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const TypeTraits& traits = requireType(info, 0, "typeId");
    const TensorType type = typeAt(info, 0);
    if (info.Length() <= 1 || !info[1].IsTypedArray() ||
        info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      throw Napi::TypeError::New(info.Env(), "values must be a Float32Array");
    const auto values = info[1].As<Napi::Float32Array>();
    const auto n = int64_t(values.ElementLength());
    if (n % traits.blockSize != 0)
      throw Napi::RangeError::New(info.Env(), "the number of values must be a multiple of " +
                                                  std::to_string(traits.blockSize) + " (the block size of " +
                                                  traits.name + ")");
    const std::vector<float> src(values.Data(), values.Data() + n);  // aligned, and safe from aliasing
    std::vector<uint8_t> dst(rowBytes(type, n));
    try {
      quantizeRow(type, src.data(), dst.data(), n);
    } catch (const std::invalid_argument& e) {  // a format with no quantizer
      throw Napi::RangeError::New(info.Env(), e.what());
    }
    return Napi::Buffer<uint8_t>::Copy(info.Env(), dst.data(), dst.size());
  });
}

// dot(weightTypeId, weights, activations, n, variant = 'best'): the activations are already in
// the weight type's dotWith format
Napi::Value dot(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const TypeTraits& traits = requireType(info, 0, "weightTypeId");
    const TensorType type = typeAt(info, 0);
    if (!traits.computable)
      throw Napi::RangeError::New(info.Env(), std::string("no dot product for ") + traits.name + " weights");
    const int64_t n = requireCount(info, 3, traits);
    std::string variant = "best";
    if (info.Length() > 4 && !info[4].IsUndefined()) variant = napi_common::requireString(info, 4, "variant");
    if (variant != "best" && variant != "scalar")
      throw Napi::RangeError::New(info.Env(), "variant must be 'scalar' or 'best'");
    const TypeTraits& activationTraits = traitsOf(traits.dotWith);
    const Bytes w = requireBytes(info, 1, "weights", rowBytes(type, n), traits.name);
    const Bytes a = requireBytes(info, 2, "activations", rowBytes(traits.dotWith, n), activationTraits.name);
    const kernels::VecDotFn fn = (variant == "scalar" ? kernels::scalarKernels() : kernels::bestKernels())[type].dot;
    if (!fn) throw Napi::RangeError::New(info.Env(), std::string("no dot product for ") + traits.name + " weights");
    return Napi::Number::New(info.Env(), n == 0 ? 0.0 : fn(n, w.data, a.data));
  });
}

// kernelFor(weightTypeId): which dot product the engine runs for such weights on this CPU:
// "avx2", "neon-dotprod", "neon" or "scalar".
Napi::Value kernelFor(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const TypeTraits& traits = requireType(info, 0, "weightTypeId");
    if (!traits.computable) return info.Env().Null();
    const char* name = kernels::bestSetName(typeAt(info, 0), kernels::Path::kDot);
    return Napi::String::New(info.Env(), name ? name : "scalar");
  });
}

Napi::Value fp16ToFp32Js(const Napi::CallbackInfo& info) {
  const double h = napi_common::requireNumber(info, 0, "bits");
  if (!(h >= 0 && h <= 0xFFFF && h == double(uint32_t(h))))
    throw Napi::RangeError::New(info.Env(), "bits must be an integer between 0 and 65535");
  return Napi::Number::New(info.Env(), fp16ToFp32(uint16_t(h)));
}

Napi::Value fp32ToFp16Js(const Napi::CallbackInfo& info) {
  const double f = napi_common::requireNumber(info, 0, "value");
  return Napi::Number::New(info.Env(), fp32ToFp16(static_cast<float>(f)));
}

}  // namespace

void registerTensorTypes(Napi::Env env, Napi::Object exports) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("types", Napi::Function::New(env, types, "types"));
  o.Set("dequantize", Napi::Function::New(env, dequantize, "dequantize"));
  o.Set("quantize", Napi::Function::New(env, quantize, "quantize"));
  o.Set("dot", Napi::Function::New(env, dot, "dot"));
  o.Set("kernelFor", Napi::Function::New(env, kernelFor, "kernelFor"));
  o.Set("fp16ToFp32", Napi::Function::New(env, fp16ToFp32Js, "fp16ToFp32"));
  o.Set("fp32ToFp16", Napi::Function::New(env, fp32ToFp16Js, "fp32ToFp16"));
  exports.Set("tensorTypes", o);
}
