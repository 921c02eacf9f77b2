// Device helpers shared by the kernel files (kernels.cu, flash_attn.cu).
#pragma once
#include "cuda/kernels.h"

namespace aero::cuda {

// The attention temperature t of row idx from its raw parameter (1 without temperature).
__device__ __forceinline__ float temp_value(const float* temp, TempParam p, int idx) {
  if (temp == nullptr) return 1.f;
  float s = temp[idx];
  switch (p) {
    case TempParam::exp: return expf(s);
    case TempParam::direct: return s;
    case TempParam::offset: return 1.f + s;
    default: return 1.f;
  }
}

}  // namespace aero::cuda
