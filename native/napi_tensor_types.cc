#include "napi_common.h"

void registerTensorTypes(Napi::Env env, Napi::Object exports) {}
