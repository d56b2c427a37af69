// Minimal traits table; the full formats come with the scalar kernels.
#include "tensor_types.h"

const TypeTraits* typeTraits(uint32_t type) {
  static const TypeTraits f32{"f32", 1, 4, true, TensorType::F32};
  static const TypeTraits f16{"f16", 1, 2, true, TensorType::F16};
  static const TypeTraits q4_0{"q4_0", 32, 18, true, TensorType::Q8_0};
  static const TypeTraits q8_0{"q8_0", 32, 34, true, TensorType::Q8_0};
  switch (static_cast<TensorType>(type)) {
    case TensorType::F32: return &f32;
    case TensorType::F16: return &f16;
    case TensorType::Q4_0: return &q4_0;
    case TensorType::Q8_0: return &q8_0;
    default: return nullptr;
  }
}
