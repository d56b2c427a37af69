// Entry point of the native addon: each concern registers its own functions.
#include "napi_common.h"

static Napi::Object init(Napi::Env env, Napi::Object exports) {
  registerGguf(env, exports);
  registerTensorTypes(env, exports);
  registerTokenizer(env, exports);
  registerModel(env, exports);
  registerSdNotify(env, exports);
  return exports;
}

NODE_API_MODULE(alpaca, init)
