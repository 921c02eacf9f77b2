// Shared pieces of the CUDA backend: error checks that name the failing call, the bf16 type,
// and the GPU-present probe used by the tests to skip cleanly on machines without a GPU.
#pragma once
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace aero::cuda {

using bf16 = __nv_bfloat16;

struct CudaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] inline void fail(const std::string& what) { throw CudaError(what); }

#define AERO_CUDA_CHECK(x)                                                                   \
  do {                                                                                       \
    cudaError_t e_ = (x);                                                                    \
    if (e_ != cudaSuccess)                                                                   \
      ::aero::cuda::fail(std::string(#x) + ": " + cudaGetErrorString(e_) + " (" + __FILE__ + \
                         ":" + std::to_string(__LINE__) + ")");                              \
  } while (0)

#define AERO_CUBLAS_CHECK(x)                                                        \
  do {                                                                              \
    cublasStatus_t s_ = (x);                                                        \
    if (s_ != CUBLAS_STATUS_SUCCESS)                                                \
      ::aero::cuda::fail(std::string(#x) + ": cuBLAS status " + std::to_string(s_) + \
                         " (" + __FILE__ + ":" + std::to_string(__LINE__) + ")");   \
  } while (0)

// After every launch: catches bad launch configurations at the call that made them.
#define AERO_LAUNCH_CHECK() AERO_CUDA_CHECK(cudaGetLastError())

// Number of usable CUDA devices (0 when there is no driver or no GPU; never throws).
inline int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

}  // namespace aero::cuda
