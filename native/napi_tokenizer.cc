#include "napi_common.h"

void registerTokenizer(Napi::Env env, Napi::Object exports) {}
