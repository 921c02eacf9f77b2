// LayerNorm (Ba et al. 2016) forward and backward, eps 1e-5, biased variance, as GPT-2 and
// torch.nn.LayerNorm; mean and 1/std are kept for the backward (llm.c layout).
#include <omp.h>
#include <cmath>

#include "model/layers.h"

namespace aero::model {

template <typename T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* inp, const T* w, const T* b, int N,
                       int C) {
#pragma omp parallel for if(size_t(N) * C >= size_t(omp_min_work)) schedule(static)
  for (int n = 0; n < N; n++) {
    const T* x = inp + size_t(n) * C;
    T m = 0;
    for (int i = 0; i < C; i++) m += x[i];
    m /= C;
    T v = 0;
    for (int i = 0; i < C; i++) v += (x[i] - m) * (x[i] - m);
    v /= C;
    T s = T(1) / std::sqrt(v + T(1e-5));
    T* o = out + size_t(n) * C;
    for (int i = 0; i < C; i++) o[i] = (x[i] - m) * s * w[i] + b[i];
    mean[n] = m;
    rstd[n] = s;
  }
}

template <typename T>
void layernorm_backward(T* dinp, T* dw, T* db, const T* dout, const T* inp, const T* w,
                        const T* mean, const T* rstd, int N, int C) {
  // Input gradient per row in parallel; the gain/bias gradients are column sums, reduced per
  // thread into its own slot and then added in thread order after the loop, so the result does
  // not depend on which thread finishes first (bit-exact resume needs reproducible sums).
  const bool par = size_t(N) * C >= size_t(omp_min_work);
  const int nt = par ? omp_get_max_threads() : 1;
  std::vector<T> part(size_t(nt) * 2 * C, T(0));
#pragma omp parallel if(par) num_threads(nt)
  {
    const int tid = par ? omp_get_thread_num() : 0;
    T* lw = part.data() + size_t(tid) * 2 * C;
    T* lb = lw + C;
#pragma omp for schedule(static)
    for (int n = 0; n < N; n++) {
      const T* x = inp + size_t(n) * C;
      const T* d = dout + size_t(n) * C;
      T m = mean[n], s = rstd[n];
      T dsum = 0, dxsum = 0;
      for (int i = 0; i < C; i++) {
        T xh = (x[i] - m) * s;
        T dn = w[i] * d[i];
        dsum += dn;
        dxsum += dn * xh;
        lb[i] += d[i];
        lw[i] += xh * d[i];
      }
      dsum /= C;
      dxsum /= C;
      T* di = dinp + size_t(n) * C;
      for (int i = 0; i < C; i++) {
        T xh = (x[i] - m) * s;
        di[i] += (w[i] * d[i] - dsum - xh * dxsum) * s;
      }
    }
  }
  for (int t = 0; t < nt; t++) {
    const T* lw = part.data() + size_t(t) * 2 * C;
    for (int i = 0; i < C; i++) {
      dw[i] += lw[i];
      db[i] += lw[C + i];
    }
  }
}

template void layernorm_forward<float>(float*, float*, float*, const float*, const float*, const float*, int, int);
template void layernorm_forward<double>(double*, double*, double*, const double*, const double*, const double*, int, int);
template void layernorm_backward<float>(float*, float*, float*, const float*, const float*, const float*, const float*, const float*, int, int);
template void layernorm_backward<double>(double*, double*, double*, const double*, const double*, const double*, const double*, const double*, int, int);

}  // namespace aero::model
