#include "napi_common.h"

void registerGguf(Napi::Env env, Napi::Object exports) {}
