// FFN activations: GELU in GPT-2's tanh approximation (Hendrycks & Gimpel 2016, "gelu_new"),
// the exact erf GELU (GPT-NeoX / Pythia), ReLU, leaky ReLU with a fixed or learnable slope (ReLU's Revival, arXiv 2410.09637), identity.
#include <cmath>

#include "model/fast_math.h"
#include "model/layers.h"

namespace aero::model {

namespace {
constexpr double kGeluC = 0.7978845608028654;  // sqrt(2/pi)
}

template <typename T>
void activation_forward(T* out, const T* inp, size_t n, Act act, T slope) {
  const long N = long(n);
  switch (act) {
    case Act::gelu:
#pragma omp parallel for simd if(N >= omp_min_work) schedule(static)
      for (long i = 0; i < N; i++) {
        T x = inp[i];
        out[i] = T(0.5) * x * (T(1) + vtanh(T(kGeluC) * (x + T(0.044715) * x * x * x)));
      }
      break;
    case Act::gelu_exact:
#pragma omp parallel for if(N >= omp_min_work) schedule(static)
      for (long i = 0; i < N; i++) out[i] = T(0.5) * inp[i] * (T(1) + std::erf(inp[i] * T(M_SQRT1_2)));
      break;
    case Act::relu:
#pragma omp parallel for if(N >= omp_min_work) schedule(static)
      for (long i = 0; i < N; i++) out[i] = inp[i] > 0 ? inp[i] : T(0);
      break;
    case Act::leaky:
#pragma omp parallel for if(N >= omp_min_work) schedule(static)
      for (long i = 0; i < N; i++) out[i] = inp[i] > 0 ? inp[i] : slope * inp[i];
      break;
    case Act::identity:
      if (out != inp)
#pragma omp parallel for if(N >= omp_min_work) schedule(static)
        for (long i = 0; i < N; i++) out[i] = inp[i];
      break;
  }
}

template <typename T>
void activation_backward(T* dinp, const T* dout, const T* inp, size_t n, Act act, T slope,
                         T* dslope) {
  const long N = long(n);
  switch (act) {
    case Act::gelu:
#pragma omp parallel for simd if(N >= omp_min_work) schedule(static)
      for (long i = 0; i < N; i++) {
        T x = inp[i];
        T u = T(kGeluC) * (x + T(0.044715) * x * x * x);
        T th = vtanh(u);
        T du = T(kGeluC) * (T(1) + T(3 * 0.044715) * x * x);
        T g = T(0.5) * (T(1) + th) + T(0.5) * x * (T(1) - th * th) * du;
        dinp[i] = dout[i] * g;
      }
      break;
    case Act::gelu_exact:
      // d/dx x Phi(x) = Phi(x) + x phi(x)
#pragma omp parallel for if(N >= omp_min_work) schedule(static)
      for (long i = 0; i < N; i++) {
        T x = inp[i];
        T cdf = T(0.5) * (T(1) + std::erf(x * T(M_SQRT1_2)));
        T pdf = std::exp(T(-0.5) * x * x) * T(0.3989422804014327);
        dinp[i] = dout[i] * (cdf + x * pdf);
      }
      break;
    case Act::relu:
#pragma omp parallel for if(N >= omp_min_work) schedule(static)
      for (long i = 0; i < N; i++) dinp[i] = inp[i] > 0 ? dout[i] : T(0);
      break;
    case Act::leaky: {
      T ds = 0;
#pragma omp parallel for if(N >= omp_min_work) reduction(+ : ds) schedule(static)
      for (long i = 0; i < N; i++) {
        T x = inp[i], d = dout[i];  // read before writing: dinp may alias dout
        if (x > 0) {
          dinp[i] = d;
        } else {
          dinp[i] = slope * d;
          ds += d * x;
        }
      }
      if (dslope) *dslope += ds;
      break;
    }
    case Act::identity:
      if (dinp != dout)
#pragma omp parallel for if(N >= omp_min_work) schedule(static)
        for (long i = 0; i < N; i++) dinp[i] = dout[i];
      break;
  }
}

template void activation_forward<float>(float*, const float*, size_t, Act, float);
template void activation_forward<double>(double*, const double*, size_t, Act, double);
template void activation_backward<float>(float*, const float*, const float*, size_t, Act, float, float*);
template void activation_backward<double>(double*, const double*, const double*, size_t, Act, double, double*);

}  // namespace aero::model
