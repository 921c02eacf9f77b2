// Device helpers shared by the kernel files (kernels.cu, flash_attn.cu).
#pragma once
#include <cstdint>

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

// 16 bytes global -> shared without registers (cp.async, sm_80+); valid = false zero-fills the
// 16 bytes (src is not read but must be a valid address). Both addresses 16-byte aligned.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  const uint32_t d = static_cast<uint32_t>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src),
               "r"(valid ? 16 : 0));
}
// Waits for all of this thread's cp.async copies; their data is then visible to this thread
// (other threads: after a barrier).
__device__ __forceinline__ void cp_async_wait_all() {
  asm volatile("cp.async.wait_all;\n" ::: "memory");
}

// Lets kernel kKernel use `bytes` of dynamic shared memory (more than the 48 KB default) and
// asks for the largest shared-memory carveout, so that several such blocks fit on a
// multiprocessor. Once per process and kernel.
template <auto kKernel>
inline void allow_dynamic_smem(int bytes) {
  static const bool done = [bytes] {
    AERO_CUDA_CHECK(
        cudaFuncSetAttribute(kKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    AERO_CUDA_CHECK(cudaFuncSetAttribute(kKernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                         int(cudaSharedmemCarveoutMaxShared)));
    return true;
  }();
  (void)done;
}

}  // namespace aero::cuda
