// N-API surface of the prompt cache's files that needs no model: reading a file's header, for
// the daemon's index at start and for `alpaca cache ls`.
#include "../model/kv_store.h"
#include "napi_common.h"

namespace {

// readKvFile(path) -> {meta, tokens: Int32Array, nLayer, rowBytes, kvType, fileBytes}; throws an
// Error saying what is wrong with the file (truncated, damaged, not a cache file).
Napi::Value readKvFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = napi_common::requireString(info, 0, "path");
  return napi_common::guarded(env, [&]() -> Napi::Value {
    const KvFileHeader h = readKvFileHeader(path);
    Napi::Object o = Napi::Object::New(env);
    o.Set("meta", h.meta);
    Napi::Int32Array tokens = Napi::Int32Array::New(env, h.tokens.size());
    std::copy(h.tokens.begin(), h.tokens.end(), tokens.Data());
    o.Set("tokens", tokens);
    o.Set("nLayer", h.nLayer);
    o.Set("rowBytes", static_cast<double>(h.rowBytes));
    o.Set("kvType", traitsOf(h.kvType).name);
    o.Set("fileBytes", static_cast<double>(h.fileBytes));
    return o;
  });
}

}  // namespace

void registerKvStore(Napi::Env env, Napi::Object exports) {
  exports.Set("readKvFile", Napi::Function::New(env, readKvFile, "readKvFile"));
}
