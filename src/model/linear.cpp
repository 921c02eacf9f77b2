// Linear layers and their reparameterizations: y = x W^T + b through the BLAS, weight
// normalization (Salimans & Kingma, NeurIPS 2016: w = g v / ||v|| per output row, PyTorch
// weight_norm dim 0) and spectral normalization (Miyato et al., ICLR 2018: W / sigma_max with
// one power iteration per training step, u and v held constant in the gradient, as
// torch.nn.utils.spectral_norm).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/blas.h"
#include "model/layers.h"

namespace aero::model {

template <>
void gemm<float>(bool ta, bool tb, int m, int n, int k, float alpha, const float* A, int lda,
                 const float* B, int ldb, float beta, float* C, int ldc) {
  sgemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
template <>
void gemm<double>(bool ta, bool tb, int m, int n, int k, double alpha, const double* A, int lda,
                  const double* B, int ldb, double beta, double* C, int ldc) {
  dgemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <typename T>
void linear_forward(T* out, const T* inp, const T* W, const T* bias, int N, int I, int O) {
  // Bias first, then one GEMM with beta = 1: no second pass over the output.
  if (bias) {
#pragma omp parallel for if(size_t(N) * O >= size_t(omp_min_work)) schedule(static)
    for (int n = 0; n < N; n++) std::copy(bias, bias + O, out + size_t(n) * O);
  }
  gemm<T>(false, true, N, O, I, T(1), inp, I, W, I, bias ? T(1) : T(0), out, O);
}

template <typename T>
void linear_backward(T* dinp, T* dW, T* dbias, const T* dout, const T* inp, const T* W, int N,
                     int I, int O, bool accumulate) {
  if (dinp) gemm<T>(false, false, N, I, O, T(1), dout, O, W, I, accumulate ? T(1) : T(0), dinp, I);
  if (dW) gemm<T>(true, false, O, I, N, T(1), dout, O, inp, I, T(1), dW, I);
  if (dbias) {
    // Column sums: each thread owns a block of columns and streams over the rows.
    constexpr int kBlock = 64;
    int nblk = (O + kBlock - 1) / kBlock;
#pragma omp parallel for if(size_t(N) * O >= size_t(omp_min_work)) schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
      int o0 = blk * kBlock, o1 = std::min(O, o0 + kBlock);
      T acc[kBlock] = {};
      for (int n = 0; n < N; n++) {
        const T* r = dout + size_t(n) * O;
        for (int o = o0; o < o1; o++) acc[o - o0] += r[o];
      }
      for (int o = o0; o < o1; o++) dbias[o] += acc[o - o0];
    }
  }
}

template <typename T>
void weight_norm_forward(T* w_eff, T* norms, const T* g, const T* v, int O, int I, int r0, int r1) {
#pragma omp parallel for if(size_t(O) * I >= size_t(omp_min_work)) schedule(static)
  for (int o = 0; o < O; o++) {
    const T* vr = v + size_t(o) * I;
    T* wr = w_eff + size_t(o) * I;
    if (o < r0 || o >= r1) {
      std::copy(vr, vr + I, wr);
      norms[o] = 0;
      continue;
    }
    T ss = 0;
    for (int i = 0; i < I; i++) ss += vr[i] * vr[i];
    T nrm = std::sqrt(ss);
    norms[o] = nrm;
    T s = g[o] / nrm;
    for (int i = 0; i < I; i++) wr[i] = s * vr[i];
  }
}

template <typename T>
void weight_norm_backward(T* dg, T* dv, const T* dw_eff, const T* g, const T* v,
                          const T* norms, int O, int I, int r0, int r1) {
  // w = g v/|v|: dg = G.v/|v|; dv = (g/|v|) (G - (G.v/|v|^2) v).
#pragma omp parallel for if(size_t(O) * I >= size_t(omp_min_work)) schedule(static)
  for (int o = 0; o < O; o++) {
    const T* vr = v + size_t(o) * I;
    const T* G = dw_eff + size_t(o) * I;
    T* dvr = dv + size_t(o) * I;
    if (o < r0 || o >= r1) {
      for (int i = 0; i < I; i++) dvr[i] += G[i];
      continue;
    }
    T nrm = norms[o], gv = 0;
    for (int i = 0; i < I; i++) gv += G[i] * vr[i];
    dg[o] += gv / nrm;
    T s = g[o] / nrm, c = gv / (nrm * nrm);
    for (int i = 0; i < I; i++) dvr[i] += s * (G[i] - c * vr[i]);
  }
}

namespace {
// torch.nn.functional.normalize: x / max(||x||, 1e-12).
template <typename T>
void normalize(T* x, int n) {
  T ss = 0;
  for (int i = 0; i < n; i++) ss += x[i] * x[i];
  T s = T(1) / std::max(std::sqrt(ss), T(1e-12));
  for (int i = 0; i < n; i++) x[i] *= s;
}
}  // namespace

template <typename T>
T spectral_norm_forward(T* w_eff, T* u, T* v_out, const T* W, int h, int I, bool iterate) {
  // Matrix-vector products in double accumulation order (small, once per step).
  std::vector<T> Wv(h);
  for (int i = 0; i < I; i++) v_out[i] = 0;
  for (int r = 0; r < h; r++)
    for (int i = 0; i < I; i++) v_out[i] += W[size_t(r) * I + i] * u[r];
  normalize(v_out, I);
  for (int r = 0; r < h; r++) {
    T acc = 0;
    for (int i = 0; i < I; i++) acc += W[size_t(r) * I + i] * v_out[i];
    Wv[r] = acc;
  }
  if (iterate) {
    for (int r = 0; r < h; r++) u[r] = Wv[r];
    normalize(u, h);
  }
  T sigma = 0;
  for (int r = 0; r < h; r++) sigma += u[r] * Wv[r];
  T inv = T(1) / sigma;
#pragma omp parallel for if(size_t(h) * I >= size_t(omp_min_work)) schedule(static)
  for (int r = 0; r < h; r++)
    for (int i = 0; i < I; i++) w_eff[size_t(r) * I + i] = W[size_t(r) * I + i] * inv;
  return sigma;
}

template <typename T>
void spectral_norm_backward(T* dW, const T* dw_eff, const T* W, const T* u, const T* v, T sigma,
                            int h, int I) {
  T gw = 0;
#pragma omp parallel for if(size_t(h) * I >= size_t(omp_min_work)) reduction(+ : gw) schedule(static)
  for (int r = 0; r < h; r++) {
    T acc = 0;
    for (int i = 0; i < I; i++) acc += dw_eff[size_t(r) * I + i] * W[size_t(r) * I + i];
    gw += acc;
  }
  T inv = T(1) / sigma, c = gw / (sigma * sigma);
#pragma omp parallel for if(size_t(h) * I >= size_t(omp_min_work)) schedule(static)
  for (int r = 0; r < h; r++)
    for (int i = 0; i < I; i++)
      dW[size_t(r) * I + i] += dw_eff[size_t(r) * I + i] * inv - c * u[r] * v[i];
}

#define AERO_INSTANTIATE(T)                                                                   \
  template void linear_forward<T>(T*, const T*, const T*, const T*, int, int, int);           \
  template void linear_backward<T>(T*, T*, T*, const T*, const T*, const T*, int, int, int,   \
                                   bool);                                                     \
  template void weight_norm_forward<T>(T*, T*, const T*, const T*, int, int, int, int);       \
  template void weight_norm_backward<T>(T*, T*, const T*, const T*, const T*, const T*, int,  \
                                        int, int, int);                                       \
  template T spectral_norm_forward<T>(T*, T*, T*, const T*, int, int, bool);                  \
  template void spectral_norm_backward<T>(T*, const T*, const T*, const T*, const T*, T, int, int);
AERO_INSTANTIATE(float)
AERO_INSTANTIATE(double)

}  // namespace aero::model
