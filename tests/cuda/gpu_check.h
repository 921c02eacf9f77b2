// A small check harness for the GPU test programs (GPU machines have no GoogleTest): named
// checks with their measured error, a non-zero exit when any fails, SKIP (exit 0) without GPU.
#pragma once
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/rng.h"
#include "cuda/common.h"

namespace aero::cuda::test {

struct Checker {
  int checks = 0, fails = 0;
  void expect(bool ok, const std::string& what) {
    ++checks;
    if (!ok) ++fails;
    std::printf("%s %s\n", ok ? "[ ok ]" : "[FAIL]", what.c_str());
    std::fflush(stdout);
  }
  // ||a - ref|| / ||ref|| (absolute when ||ref|| < floor) must be <= tol; NaN never passes.
  void close(const std::string& what, const std::vector<double>& a, const std::vector<double>& ref,
             double tol, double floor = 1e-12) {
    double num = 0, den = 0;
    bool finite = a.size() == ref.size();
    for (size_t i = 0; i < a.size() && i < ref.size(); ++i) {
      if (!std::isfinite(a[i])) finite = false;
      num += (a[i] - ref[i]) * (a[i] - ref[i]);
      den += ref[i] * ref[i];
    }
    double err = std::sqrt(num) / std::max(std::sqrt(den), floor);
    char buf[256];
    std::snprintf(buf, sizeof buf, "%s: rel err %.3e (tol %.1e, |ref| %.3e, n %zu)",
                  what.c_str(), err, tol, std::sqrt(den), ref.size());
    expect(finite && err <= tol, buf);
  }
  int finish(const char* prog) {
    std::printf("%s: %d checks, %d failed\n", prog, checks, fails);
    return fails == 0 ? 0 : 1;
  }
};

inline bool skip_without_gpu(const char* prog) {
  if (device_count() > 0) return false;
  std::printf("SKIP %s: no CUDA device\n", prog);
  return true;
}

template <typename T>
struct DevBuf {
  T* p = nullptr;
  size_t n = 0;
  explicit DevBuf(size_t n_) : n(n_) { AERO_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(T))); }
  DevBuf(const std::vector<T>& h) : DevBuf(h.size()) { up(h); }
  ~DevBuf() { cudaFree(p); }
  DevBuf(const DevBuf&) = delete;
  void up(const std::vector<T>& h) {
    AERO_CUDA_CHECK(cudaMemcpy(p, h.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> down() const {
    std::vector<T> h(n);
    AERO_CUDA_CHECK(cudaDeviceSynchronize());
    AERO_CUDA_CHECK(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }
  void poison() { AERO_CUDA_CHECK(cudaMemset(p, 0xff, n * sizeof(T))); }  // NaN for floats
};

inline float bf(float x) { return __bfloat162float(__float2bfloat16(x)); }
inline std::vector<bf16> to_bf16(const std::vector<float>& x) {
  std::vector<bf16> o(x.size());
  for (size_t i = 0; i < x.size(); ++i) o[i] = __float2bfloat16(x[i]);
  return o;
}
inline std::vector<double> to_d(const std::vector<bf16>& x) {
  std::vector<double> o(x.size());
  for (size_t i = 0; i < x.size(); ++i) o[i] = __bfloat162float(x[i]);
  return o;
}
inline std::vector<double> to_d(const std::vector<float>& x) {
  return std::vector<double>(x.begin(), x.end());
}
// Random values already representable in bf16 (so CPU and GPU see the same inputs).
inline std::vector<float> rand_bf(Rng& r, size_t n, double sd = 1.0) {
  std::vector<float> v(n);
  for (auto& x : v) x = bf(float(r.normal() * sd));
  return v;
}
inline std::vector<float> rand_f(Rng& r, size_t n, double sd = 1.0) {
  std::vector<float> v(n);
  for (auto& x : v) x = float(r.normal() * sd);
  return v;
}

}  // namespace aero::cuda::test
