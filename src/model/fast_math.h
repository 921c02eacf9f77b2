// Vectorizable exp and tanh for the float model (softmax, cross-entropy, GELU): glibc's expf /
// tanhf are scalar calls that cost as much as a third of a training step's non-GEMM time.
// exp: Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, then a degree-6 Taylor
// polynomial of e^r (truncation error < 1.3e-7 relative, about 1 ulp), times 2^n built in the
// exponent bits. The double model keeps std::exp / std::tanh (it is the checking reference).
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>

namespace aero::model {

inline float fast_expf(float x0) {
  // Clamp for the arithmetic, then restore IEEE behaviour at the ends: NaN stays NaN (the
  // model's NaN detection depends on it), large x gives inf, very negative x gives 0.
  float x = x0 < -87.0f ? -87.0f : (x0 > 88.3f ? 88.3f : x0);
  // n = round(x / ln2) by the 1.5 * 2^23 shifter (no float->int conversion, which would keep
  // GCC from vectorizing under -ftrapping-math); its integer sits in the low mantissa bits.
  const float shifter = 12582912.0f;
  float t = x * 1.44269504088896341f + shifter;
  float n = t - shifter;
  int32_t ni = std::bit_cast<int32_t>(t) - std::bit_cast<int32_t>(shifter);
  float r = x - n * 0.693145751953125f;  // ln2 split in two for exact n*ln2_hi
  r = r - n * 1.428606765330187045e-06f;
  float p = 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  float res = p * std::bit_cast<float>((ni + 127) << 23);
  res = x0 > 88.3f ? INFINITY : res;
  res = x0 < -87.0f ? 0.0f : res;
  return x0 != x0 ? x0 : res;
}
// tanh(u) = 1 - 2 / (e^{2u} + 1): absolute error ~1e-7 (what GELU's 0.5 x (1 + tanh) needs).
inline float fast_tanhf(float u) { return 1.0f - 2.0f / (fast_expf(2.0f * u) + 1.0f); }

template <typename T>
inline T vexp(T x) { return std::exp(x); }
template <>
inline float vexp<float>(float x) { return fast_expf(x); }
template <typename T>
inline T vtanh(T x) { return std::tanh(x); }
template <>
inline float vtanh<float>(float x) { return fast_tanhf(x); }

}  // namespace aero::model
