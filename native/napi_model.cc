#include "napi_common.h"

void registerModel(Napi::Env env, Napi::Object exports) {}
