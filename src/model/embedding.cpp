// Token (and, for GPT-2, learned position) embeddings. The backward scatters into the token
// table by channel slices so threads never write the same row element.
#include <algorithm>

#include "model/layers.h"

namespace aero::model {

template <typename T>
void embedding_forward(T* out, const int32_t* tokens, const T* wte, const T* wpe, int B, int Tn,
                       int C, int V) {
#pragma omp parallel for if(size_t(B) * Tn * C >= size_t(omp_min_work)) schedule(static)
  for (int n = 0; n < B * Tn; n++) {
    const T* e = wte + size_t(tokens[n]) * C;
    T* o = out + size_t(n) * C;
    if (wpe) {
      const T* p = wpe + size_t(n % Tn) * C;
      for (int i = 0; i < C; i++) o[i] = e[i] + p[i];
    } else {
      std::copy(e, e + C, o);
    }
  }
}

template <typename T>
void embedding_backward(T* dwte, T* dwpe, const T* dout, const int32_t* tokens, int B, int Tn,
                        int C) {
  constexpr int kSlice = 16;
  int nslice = (C + kSlice - 1) / kSlice;
#pragma omp parallel for if(size_t(B) * Tn * C >= size_t(omp_min_work)) schedule(static)
  for (int s = 0; s < nslice; s++) {
    int c0 = s * kSlice, c1 = std::min(C, c0 + kSlice);
    for (int n = 0; n < B * Tn; n++) {
      const T* d = dout + size_t(n) * C;
      T* e = dwte + size_t(tokens[n]) * C;
      for (int i = c0; i < c1; i++) e[i] += d[i];
      if (dwpe) {
        T* p = dwpe + size_t(n % Tn) * C;
        for (int i = c0; i < c1; i++) p[i] += d[i];
      }
    }
  }
}

template void embedding_forward<float>(float*, const int32_t*, const float*, const float*, int, int, int, int);
template void embedding_forward<double>(double*, const int32_t*, const double*, const double*, int, int, int, int);
template void embedding_backward<float>(float*, float*, const float*, const int32_t*, int, int, int);
template void embedding_backward<double>(double*, double*, const double*, const int32_t*, int, int, int);

}  // namespace aero::model
