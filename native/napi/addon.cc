// Entry point of the native addon: each concern registers its own functions.
#include "napi_common.h"
#include "napi_grammar.h"

static Napi::Object init(Napi::Env env, Napi::Object exports) {
  registerGguf(env, exports);
  registerTensorTypes(env, exports);
  registerTokenizer(env, exports);
  registerModel(env, exports);
  registerSampler(env, exports);
  registerGrammar(env, exports);
  registerKvStore(env, exports);
  registerSdNotify(env, exports);
  return exports;
}

NODE_API_MODULE(alpaca, init)
