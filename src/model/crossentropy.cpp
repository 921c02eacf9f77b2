// Softmax cross-entropy over the LM head's logits. The forward keeps only the log-sum-exp per
// row (the logits stay readable); the backward turns the logits into their gradient in place.
#include <cmath>

#include "model/fast_math.h"
#include "model/layers.h"

namespace aero::model {

template <typename T>
double crossentropy_forward(T* lse, const T* logits, const int32_t* targets, int N, int V,
                            int* count) {
  double loss = 0;
  int cnt = 0;
#pragma omp parallel for if(size_t(N) * V >= size_t(omp_min_work)) reduction(+ : loss, cnt) schedule(static)
  for (int n = 0; n < N; n++) {
    const T* z = logits + size_t(n) * V;
    T m = z[0];
#pragma omp simd reduction(max : m)
    for (int v = 1; v < V; v++) m = z[v] > m ? z[v] : m;
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (int v = 0; v < V; v++) s += vexp(z[v] - m);
    T l = m + std::log(s);
    lse[n] = l;
    if (targets && targets[n] >= 0) {
      loss += double(l - z[targets[n]]);
      cnt++;
    }
  }
  if (count) *count = cnt;
  return loss;
}

template <typename T>
void crossentropy_backward(T* logits, const T* lse, const int32_t* targets, int N, int V,
                           T scale) {
#pragma omp parallel for if(size_t(N) * V >= size_t(omp_min_work)) schedule(static)
  for (int n = 0; n < N; n++) {
    T* z = logits + size_t(n) * V;
    if (targets[n] < 0) {
      for (int v = 0; v < V; v++) z[v] = 0;
      continue;
    }
    T l = lse[n];
#pragma omp simd
    for (int v = 0; v < V; v++) z[v] = vexp(z[v] - l) * scale;
    z[targets[n]] -= scale;
  }
}

template double crossentropy_forward<float>(float*, const float*, const int32_t*, int, int, int*);
template double crossentropy_forward<double>(double*, const double*, const int32_t*, int, int, int*);
template void crossentropy_backward<float>(float*, const float*, const int32_t*, int, int, float);
template void crossentropy_backward<double>(double*, const double*, const int32_t*, int, int, double);

}  // namespace aero::model
