// Every GPU kernel against a straightforward CPU implementation (double precision) on random
// inputs of awkward sizes, forward and gradients. Gradients of the attention softmax (with
// temperature and entropy regularizer) are checked against central finite differences of the
// CPU forward, so a derivation shared by CPU and GPU code cannot hide a mistake.
// Tolerances: bf16 outputs ~4e-3 relative per element; fp32 outputs 1e-5.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>

#include "cuda/kernels.h"
#include "cuda/lt_gemm.h"
#include "gpu_check.h"

using namespace aero::cuda;
using namespace aero::cuda::test;
using aero::Rng;

namespace {
Checker C;
cudaStream_t S = nullptr;

void test_gemm(cublasHandle_t h, Rng& r) {
  const int M = 37, N = 53, K = 29, batch = 3;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (int f32 = 0; f32 < 2; ++f32) {
        auto A = rand_bf(r, size_t(batch) * M * K), B = rand_bf(r, size_t(batch) * K * N);
        auto D0 = rand_bf(r, size_t(batch) * M * N);
        DevBuf<bf16> dA(to_bf16(A)), dB(to_bf16(B));
        DevBuf<float> dDf(D0);
        DevBuf<bf16> dDb(to_bf16(D0));
        int lda = ta ? M : K, ldb = tb ? K : N;
        float alpha = 0.75f, beta = f32 ? 1.f : 0.f;
        void* D = f32 ? (void*)dDf.p : (void*)dDb.p;
        gemm(h, S, ta, tb, M, N, K, dA.p, lda, dB.p, ldb, D, f32 ? CUDA_R_32F : CUDA_R_16BF, N,
             alpha, beta, batch, (long long)M * K, (long long)K * N, (long long)M * N);
        std::vector<double> ref(size_t(batch) * M * N);
        for (int b = 0; b < batch; ++b)
          for (int i = 0; i < M; ++i)
            for (int j = 0; j < N; ++j) {
              double acc = 0;
              for (int k = 0; k < K; ++k) {
                double a = ta ? A[b * M * K + k * M + i] : A[b * M * K + i * K + k];
                double bb = tb ? B[b * K * N + j * K + k] : B[b * K * N + k * N + j];
                acc += a * bb;
              }
              size_t o = size_t(b) * M * N + i * N + j;
              ref[o] = alpha * acc + beta * D0[o];
            }
        auto got = f32 ? to_d(dDf.down()) : to_d(dDb.down());
        C.close("gemm ta=" + std::to_string(ta) + " tb=" + std::to_string(tb) +
                    (f32 ? " f32 out, beta=1" : " bf16 out") + " batched 3 x 37x53x29",
                got, ref, f32 ? 1e-5 : 6e-3);
      }
  // gemm_dev: alpha and beta from device memory (fp32 output accumulating, as the model's
  // FFN input-gradient product with the FFN scaling's beta), awkward sizes
  for (int ta = 0; ta < 2; ++ta) {
    const int M = 45, N = 67, K = 83;
    auto A = rand_bf(r, size_t(M) * K), B = rand_bf(r, size_t(K) * N);
    auto D0 = rand_f(r, size_t(M) * N);
    const float alpha = 1.25f, beta = -0.6f;
    DevBuf<bf16> dA(to_bf16(A)), dB(to_bf16(B));
    DevBuf<float> dD(D0), dAl(std::vector<float>{alpha}), dBe(std::vector<float>{beta});
    const int lda = ta ? M : K;
    gemm_dev(h, S, ta, false, M, N, K, dA.p, lda, dB.p, N, dD.p, CUDA_R_32F, N, dAl.p, dBe.p);
    // the handle is back in host pointer mode: a plain gemm after it
    DevBuf<float> dD2(D0);
    gemm(h, S, ta, false, M, N, K, dA.p, lda, dB.p, N, dD2.p, CUDA_R_32F, N, alpha, beta);
    std::vector<double> ref(size_t(M) * N);
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < N; ++j) {
        double acc = 0;
        for (int k = 0; k < K; ++k)
          acc += double(ta ? A[size_t(k) * M + i] : A[size_t(i) * K + k]) * B[size_t(k) * N + j];
        ref[size_t(i) * N + j] = alpha * acc + beta * double(D0[size_t(i) * N + j]);
      }
    const std::string nm = " ta=" + std::to_string(ta) + " 45x67x83";
    C.close("gemm_dev (device alpha, beta)" + nm, to_d(dD.down()), ref, 1e-5);
    C.close("gemm after gemm_dev (host scalars)" + nm, to_d(dD2.down()), ref, 1e-5);
  }
}

void test_residual_norm(Rng& r, int d) {  // d % 128 == 0: the 16-byte register path
  const int N = 37;
  for (int variant = 0; variant < 3; ++variant) {
    // 0: LN of a alone (in place); 1: res = beta*a + (b+bias)/alpha then LN; 2: same, no LN
    auto a = rand_f(r, size_t(N) * d, 1.5), b = rand_f(r, size_t(N) * d);
    auto bias = rand_f(r, d, 0.3), w = rand_f(r, d, 0.5), lb = rand_f(r, d, 0.5);
    for (int c = 0; c < d; ++c) a[c] += 3.f;  // a row with a large mean
    float beta = 0.8f, alpha = 1.7f;
    DevBuf<float> dA(a), dB(b), dBias(bias), dW(w), dLb(lb), dBeta(std::vector<float>{beta}),
        dAlpha(std::vector<float>{alpha}), dRes(size_t(N) * d), dMean(N), dRstd(N);
    DevBuf<bf16> dH(size_t(N) * d);
    dH.poison();
    bool ln = variant != 2;
    float* res = variant == 0 ? dA.p : dRes.p;
    if (variant == 0)
      residual_norm_forward(res, dH.p, dMean.p, dRstd.p, dA.p, nullptr, nullptr, nullptr, nullptr,
                            dW.p, dLb.p, N, d, S);
    else
      residual_norm_forward(res, dH.p, dMean.p, dRstd.p, dA.p, dBeta.p, dB.p, dAlpha.p, dBias.p,
                            ln ? dW.p : nullptr, ln ? dLb.p : nullptr, N, d, S);
    std::vector<double> rres(size_t(N) * d), rh(size_t(N) * d);
    for (int n = 0; n < N; ++n) {
      double mean = 0, var = 0;
      for (int c = 0; c < d; ++c) {
        size_t i = size_t(n) * d + c;
        rres[i] = variant == 0 ? a[i] : beta * double(a[i]) + (double(b[i]) + bias[c]) / alpha;
        mean += rres[i];
      }
      mean /= d;
      for (int c = 0; c < d; ++c) var += (rres[n * d + c] - mean) * (rres[n * d + c] - mean);
      var /= d;
      for (int c = 0; c < d; ++c) {
        size_t i = size_t(n) * d + c;
        rh[i] = ln ? (rres[i] - mean) / std::sqrt(var + 1e-5) * w[c] + lb[c] : rres[i];
      }
    }
    std::string nm = "residual_norm_forward variant " + std::to_string(variant) +
                     " (N=37, d=" + std::to_string(d) + ")";
    C.close(nm + " residual", to_d(variant == 0 ? dA.down() : dRes.down()), rres, 1e-6);
    C.close(nm + " output", to_d(dH.down()), rh, 6e-3);
  }
}

double gelu_tanh(double x) {
  const double k = std::sqrt(2.0 / M_PI);
  return 0.5 * x * (1 + std::tanh(k * (x + 0.044715 * x * x * x)));
}
double gelu_tanh_grad(double x) {
  const double k = std::sqrt(2.0 / M_PI), u = k * (x + 0.044715 * x * x * x), t = std::tanh(u);
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x);
}

// A[M,K] W[N,K]^T + bias[N] in double precision
std::vector<double> ref_abt_bias(const std::vector<float>& A, const std::vector<float>& W,
                                 const std::vector<double>& bias, int M, int N, int K) {
  std::vector<double> out(size_t(M) * N);
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      double acc = bias[j];
      for (int k = 0; k < K; ++k) acc += double(A[size_t(i) * K + k]) * W[size_t(j) * K + k];
      out[size_t(i) * N + j] = acc;
    }
  return out;
}

// cuBLASLt epilogues (lt_gemm.h) against double-precision references: bias + GELU with the
// GELU input kept, GELU derivative + bias gradient, bias gradient of A in a weight-gradient
// product (fp32 output, beta 1). M tokens (awkward), N, K features (multiples of 8, which
// cuBLASLt's aux buffer needs). Outputs poisoned first. A product cuBLASLt offers no
// algorithm for is reported (the model then runs its unfused path) and not checked.
void test_lt_gemm(Rng& r, int M, int N, int K) {
  LtGemm* lt = lt_create();
  const std::string sz = " (" + std::to_string(M) + "x" + std::to_string(N) + "x" +
                         std::to_string(K) + ")";
  auto bfround = [](const std::vector<float>& v) {
    std::vector<double> o(v.size());
    auto b = to_bf16(v);
    for (size_t i = 0; i < v.size(); ++i) o[i] = double(__bfloat162float(b[i]));
    return o;
  };
  for (Epi epi : {Epi::gelu_aux_bias, Epi::bias}) {
    // forward: aux = h W^T + b, f = gelu(aux); bias only: D = h W^T + b (bf16 bias and output)
    const bool gelu = epi == Epi::gelu_aux_bias;
    auto A = rand_bf(r, size_t(M) * K), W = rand_bf(r, size_t(N) * K), bias = rand_f(r, N, 0.5);
    DevBuf<bf16> dA(to_bf16(A)), dW(to_bf16(W)), dBias(to_bf16(bias)), dF(size_t(M) * N),
        dAux(size_t(M) * N);
    dF.poison();
    dAux.poison();
    const std::string nm = std::string("lt_gemm ") + (gelu ? "bias+GELU" : "bias") + sz;
    if (!lt_gemm(lt, S, false, true, M, N, K, dA.p, K, dW.p, K, dF.p, CUDA_R_16BF, N, 0.f, epi,
                 dBias.p, gelu ? dAux.p : nullptr, gelu ? N : 0)) {
      std::printf("[info] cuBLASLt: no algorithm for %s\n", nm.c_str());
      continue;
    }
    std::vector<double> ra = ref_abt_bias(A, W, bfround(bias), M, N, K), rf(ra);
    if (gelu) {
      for (auto& x : rf) x = gelu_tanh(x);
      C.close(nm + " aux (GELU input)", to_d(dAux.down()), ra, 6e-3);
    }
    C.close(nm + " output", to_d(dF.down()), rf, 6e-3);
  }
  {  // backward: D = (dm W) * gelu'(pre), bias gradient = column sums of D
    auto A = rand_bf(r, size_t(M) * K), W = rand_bf(r, size_t(K) * N), pre = rand_f(r, size_t(M) * N, 2.0);
    DevBuf<bf16> dA(to_bf16(A)), dW(to_bf16(W)), dPre(to_bf16(pre)), dD(size_t(M) * N), dG(N);
    dD.poison();
    dG.poison();
    auto pb = bfround(pre);
    bool ran = lt_gemm(lt, S, false, false, M, N, K, dA.p, K, dW.p, N, dD.p, CUDA_R_16BF, N, 0.f,
                       Epi::dgelu_bgrad, dG.p, dPre.p, N);
    if (!ran) {
      std::printf("[info] cuBLASLt: no algorithm for DGELU_BGRAD%s\n", sz.c_str());
    } else {
      std::vector<double> rd(size_t(M) * N), rg(N, 0.0);
      for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j) {
          double acc = 0;
          for (int k = 0; k < K; ++k) acc += double(A[size_t(i) * K + k]) * W[size_t(k) * N + j];
          rd[size_t(i) * N + j] = acc * gelu_tanh_grad(pb[size_t(i) * N + j]);
          rg[j] += rd[size_t(i) * N + j];
        }
      C.close("lt_gemm GELU derivative" + sz, to_d(dD.down()), rd, 6e-3);
      C.close("lt_gemm GELU derivative: bias gradient" + sz, to_d(dG.down()), rg, 1e-2);
    }
  }
  {  // weight gradient dW[M,N] += dY^T X (dY stored [K, M]), bias gradient[m] = sum_k dY[k][m]
    auto Y = rand_bf(r, size_t(K) * M), X = rand_bf(r, size_t(K) * N), D0 = rand_f(r, size_t(M) * N);
    DevBuf<bf16> dY(to_bf16(Y)), dX(to_bf16(X));
    DevBuf<float> dD(D0), dG(M);
    dG.poison();
    bool ran = lt_gemm(lt, S, true, false, M, N, K, dY.p, M, dX.p, N, dD.p, CUDA_R_32F, N, 1.f,
                       Epi::bgrad_a, dG.p, nullptr, 0);
    if (!ran) {
      std::printf("[info] cuBLASLt: no algorithm for BGRADB (fp32 output)%s\n", sz.c_str());
    } else {
      std::vector<double> rd(size_t(M) * N), rg(M, 0.0);
      for (int i = 0; i < M; ++i) {
        for (int k = 0; k < K; ++k) rg[i] += Y[size_t(k) * M + i];
        for (int j = 0; j < N; ++j) {
          double acc = D0[size_t(i) * N + j];
          for (int k = 0; k < K; ++k) acc += double(Y[size_t(k) * M + i]) * X[size_t(k) * N + j];
          rd[size_t(i) * N + j] = acc;
        }
      }
      C.close("lt_gemm weight gradient (beta 1)" + sz, to_d(dD.down()), rd, 1e-5);
      C.close("lt_gemm bias gradient of A" + sz, to_d(dG.down()), rg, 1e-5);
    }
  }
  AERO_CUDA_CHECK(cudaStreamSynchronize(S));
  lt_destroy(lt);
}

void test_norm_backward(Rng& r, int d) {  // d % 128 == 0: the 16-byte register path
  const int N = 301;  // N > rows per block * blocks? (4 warps x 256 blocks = 1024): also test big
  for (int big = 0; big < 2; ++big) {
    int n = big ? 2500 : N;
    auto x = rand_f(r, size_t(n) * d, 2.0), dh = rand_f(r, size_t(n) * d);
    auto w = rand_f(r, d, 0.7), dres0 = rand_f(r, size_t(n) * d), dw0 = rand_f(r, d),
         db0 = rand_f(r, d);
    std::vector<float> mean(n), rstd(n);
    for (int i = 0; i < n; ++i) {
      double m = 0, v = 0;
      for (int c = 0; c < d; ++c) m += x[i * d + c];
      m /= d;
      for (int c = 0; c < d; ++c) v += (x[i * d + c] - m) * (x[i * d + c] - m);
      mean[i] = float(m);
      rstd[i] = float(1.0 / std::sqrt(v / d + 1e-5));
    }
    DevBuf<float> dX(x), dDh(dh), dW(w), dRes(dres0), dDw(dw0), dDb(db0), dM(mean), dR(rstd),
        scr(norm_scratch_floats(n, d));
    norm_backward(dRes.p, dDh.p, dX.p, dM.p, dR.p, dW.p, dDw.p, dDb.p, scr.p, n, d, S);
    std::vector<double> rres(dres0.begin(), dres0.end()), rdw(dw0.begin(), dw0.end()),
        rdb(db0.begin(), db0.end());
    for (int i = 0; i < n; ++i) {
      double s1 = 0, s2 = 0;
      for (int c = 0; c < d; ++c) {
        double xn = (x[i * d + c] - mean[i]) * double(rstd[i]);
        double g = double(dh[i * d + c]) * w[c];
        s1 += g;
        s2 += g * xn;
        rdw[c] += double(dh[i * d + c]) * xn;
        rdb[c] += dh[i * d + c];
      }
      s1 /= d;
      s2 /= d;
      for (int c = 0; c < d; ++c) {
        double xn = (x[i * d + c] - mean[i]) * double(rstd[i]);
        double g = double(dh[i * d + c]) * w[c];
        rres[i * d + c] += rstd[i] * (g - s1 - xn * s2);
      }
    }
    std::string nm = "norm_backward N=" + std::to_string(n) + " d=" + std::to_string(d);
    C.close(nm + " dx", to_d(dRes.down()), rres, 1e-5);
    C.close(nm + " dweight", to_d(dDw.down()), rdw, 1e-5);
    C.close(nm + " dbias", to_d(dDb.down()), rdb, 1e-5);
    // no-LN variant: dres += dh
    DevBuf<float> dRes2(dres0);
    norm_backward(dRes2.p, dDh.p, dX.p, nullptr, nullptr, nullptr, nullptr, nullptr, scr.p, n, d, S);
    std::vector<double> r2(size_t(n) * d);
    for (size_t i = 0; i < r2.size(); ++i) r2[i] = double(dres0[i]) + dh[i];
    C.close(nm + " identity norm", to_d(dRes2.down()), r2, 1e-7);
  }
}

void test_layouts(Rng& r, int dk) {
  const int B = 2, T = 7, H = 3, d = H * dk;
  auto qkv = rand_bf(r, size_t(B) * T * 3 * d);
  auto bias = rand_bf(r, 3 * d);
  DevBuf<bf16> dqkv(to_bf16(qkv)), q(size_t(B) * T * d), k(size_t(B) * T * d), v(size_t(B) * T * d),
      back(size_t(B) * T * 3 * d), y(size_t(B) * T * d), yh(size_t(B) * T * d);
  DevBuf<float> db(bias);
  qkv_split(q.p, k.p, v.p, dqkv.p, db.p, B, T, H, dk, S);
  auto hq = to_d(q.down()), hk = to_d(k.down()), hv = to_d(v.down());
  std::vector<double> rq(hq.size()), rk(hq.size()), rv(hq.size()), got(hq.size() * 3),
      ref(hq.size() * 3);
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t)
      for (int col = 0; col < 3 * d; ++col) {
        int which = col / d, hh = (col % d) / dk, c = col % dk;
        double val = bf(qkv[(b * T + t) * 3 * d + col] + bias[col]);
        size_t j = ((size_t(b) * H + hh) * T + t) * dk + c;
        (which == 0 ? rq : which == 1 ? rk : rv)[j] = val;
      }
  for (size_t i = 0; i < hq.size(); ++i) {
    got[i] = hq[i];
    got[hq.size() + i] = hk[i];
    got[2 * hq.size() + i] = hv[i];
    ref[i] = rq[i];
    ref[hq.size() + i] = rk[i];
    ref[2 * hq.size() + i] = rv[i];
  }
  C.close("qkv_split (+bias) B=2 T=7 H=3 dk=" + std::to_string(dk), got, ref, 1e-7);
  qkv_split(q.p, k.p, v.p, dqkv.p, nullptr, B, T, H, dk, S);
  qkv_merge(back.p, q.p, k.p, v.p, B, T, H, dk, S);
  C.close("qkv_merge(qkv_split(x)) == x, dk=" + std::to_string(dk), to_d(back.down()), to_d(to_bf16(qkv)), 0.0);
  auto yy = rand_bf(r, size_t(B) * T * d);
  DevBuf<bf16> dy(to_bf16(yy));
  heads_split(yh.p, dy.p, B, T, H, dk, S);
  heads_merge(y.p, yh.p, B, T, H, dk, S);
  C.close("heads_merge(heads_split(x)) == x, dk=" + std::to_string(dk), to_d(y.down()), to_d(to_bf16(yy)), 0.0);
  auto hyh = to_d(yh.down());
  bool ok = true;
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t)
      for (int c = 0; c < d; ++c)
        ok &= hyh[((size_t(b) * H + c / dk) * T + t) * dk + c % dk] == double(yy[(b * T + t) * d + c]);
  C.expect(ok, "heads_split layout [B,T,H*dk] -> [B,H,T,dk]");
}

// The fields AttnSoftmaxArgs and FlashFwdArgs share.
template <class Args>
void set_attention(Args& x, int B, int H, int T, double scale, const float* temp, int ctx,
                   TempParam tp, float* rowE) {
  x.B = B;
  x.H = H;
  x.T = T;
  x.scale = float(scale);
  x.temp = temp;
  x.ctx = ctx;
  x.temp_param = tp;
  x.rowE = rowE;
}
// The entropy regularizer's fields of AttnSoftmaxArgs / FlashFwdArgs.
template <class Args>
void set_regularizer(Args& x, const float* theta, double lnT, double tol, double coef, float* pen,
                     float* gE) {
  x.theta = theta;
  x.lnT = float(lnT);
  x.tol = float(tol);
  x.coef = float(coef);
  x.pen = pen;
  x.gE = gE;
}

// CPU attention softmax of one layer, double precision: returns P, rowE, pen.
struct SoftRef {
  std::vector<double> P, E, pen;
};
double temp_of(double s, TempParam p) {
  return p == TempParam::exp ? std::exp(s) : p == TempParam::direct ? s : 1.0 + s;
}
SoftRef soft_ref(const std::vector<double>& Sc, const std::vector<double>& temp, TempParam tp, int B,
                 int H, int T, int ctx, double scale, const std::vector<double>& theta, double lnT,
                 double tol) {
  SoftRef o;
  o.P.assign(Sc.size(), 0.0);
  o.E.assign(size_t(B) * H * T, 0.0);
  o.pen.assign(size_t(B) * H * T, 0.0);
  for (int bh = 0; bh < B * H; ++bh) {
    int hh = bh % H;
    for (int i = 0; i < T; ++i) {
      size_t row = size_t(bh) * T + i;
      double t = temp.empty() ? 1.0 : temp_of(temp[hh * ctx + i], tp);
      double mx = -1e300;
      for (int j = 0; j <= i; ++j) mx = std::max(mx, Sc[row * T + j] * scale / t);
      double sum = 0;
      for (int j = 0; j <= i; ++j) sum += std::exp(Sc[row * T + j] * scale / t - mx);
      double E = 0;
      for (int j = 0; j <= i; ++j) {
        double p = std::exp(Sc[row * T + j] * scale / t - mx) / sum;
        o.P[row * T + j] = p;
        E -= p * std::log(p + 1e-9);
      }
      o.E[row] = E;
      if (!theta.empty()) {
        double delta = E - theta[hh] * lnT;
        o.pen[row] = std::fabs(delta) > tol ? delta * delta : 0.0;
      }
    }
  }
  return o;
}

// CPU attention of one layer in double precision from q, k, v, dO ([B*H, T, 64] each, biases
// already added): the forward of the explicit path and its analytic gradients for the loss
// sum(dO . O) + coef * sum(pen).
struct AttnRef {
  std::vector<double> O, E, pen, lse, dq, dk, dv, dtemp_row;
  double loss = 0;
};
AttnRef attn_ref(const std::vector<double>& q, const std::vector<double>& k,
                 const std::vector<double>& v, const std::vector<double>& dO,
                 const std::vector<double>& temp, TempParam tp, int B, int H, int T, int ctx,
                 double scale, const std::vector<double>& theta, double lnT, double tol,
                 double coef) {
  const int D = 64;
  AttnRef o;
  size_t n = size_t(B) * H * T;
  o.O.assign(n * D, 0.0);
  o.dq = o.dk = o.dv = o.O;
  o.E.assign(n, 0.0);
  o.pen = o.lse = o.dtemp_row = o.E;
  std::vector<double> z(T), a(T);
  for (int bh = 0; bh < B * H; ++bh) {
    int hh = bh % H;
    for (int i = 0; i < T; ++i) {
      size_t row = size_t(bh) * T + i;
      double t = temp.empty() ? 1.0 : temp_of(temp[hh * ctx + i], tp), inv = scale / t;
      double mx = -1e300, sum = 0, E = 0;
      for (int j = 0; j <= i; ++j) {
        double dot = 0;
        for (int c = 0; c < D; ++c) dot += q[row * D + c] * k[(size_t(bh) * T + j) * D + c];
        z[j] = dot * inv;
        mx = std::max(mx, z[j]);
      }
      for (int j = 0; j <= i; ++j) sum += std::exp(z[j] - mx);
      for (int j = 0; j <= i; ++j) {
        a[j] = std::exp(z[j] - mx) / sum;
        E -= a[j] * std::log(a[j] + 1e-9);
        for (int c = 0; c < D; ++c) o.O[row * D + c] += a[j] * v[(size_t(bh) * T + j) * D + c];
      }
      o.E[row] = E;
      o.lse[row] = mx + std::log(sum);
      double gE = 0;
      if (!theta.empty()) {
        double delta = E - theta[hh] * lnT;
        bool on = std::fabs(delta) > tol;
        o.pen[row] = on ? delta * delta : 0.0;
        gE = on ? coef * 2 * delta : 0.0;
        o.loss += coef * o.pen[row];
      }
      for (int c = 0; c < D; ++c) o.loss += dO[row * D + c] * o.O[row * D + c];
      std::vector<double> g(i + 1);
      double dot = 0;
      for (int j = 0; j <= i; ++j) {
        double dp = 0;
        for (int c = 0; c < D; ++c) dp += dO[row * D + c] * v[(size_t(bh) * T + j) * D + c];
        g[j] = dp - gE * (std::log(a[j] + 1e-9) + a[j] / (a[j] + 1e-9));
        dot += a[j] * g[j];
      }
      double dzz = 0;
      for (int j = 0; j <= i; ++j) {
        size_t kr = size_t(bh) * T + j;
        double dz = a[j] * (g[j] - dot), ds = dz * inv;
        dzz += dz * z[j];
        for (int c = 0; c < D; ++c) {
          o.dq[row * D + c] += ds * k[kr * D + c];
          o.dk[kr * D + c] += ds * q[row * D + c];
          o.dv[kr * D + c] += a[j] * dO[row * D + c];
        }
      }
      double dt = -dzz / t;
      o.dtemp_row[row] = tp == TempParam::exp ? dt * t : dt;
    }
  }
  return o;
}

// Visits every element of [B, H, T, 64] with its index hr there, the row start src of its
// (b, t) row in a [B, T, 3d] buffer, its column col = h*64 + c, and bt = b*T + t.
template <class F>
void for_head_elems(int B, int H, int T, F&& fn) {
  const int D = 64, d = H * D;
  for (int b = 0; b < B; ++b)
    for (int hh = 0; hh < H; ++hh)
      for (int t = 0; t < T; ++t)
        for (int c = 0; c < D; ++c)
          fn(((size_t(b) * H + hh) * T + t) * D + c, (size_t(b) * T + t) * 3 * d, hh * D + c,
             size_t(b) * T + t);
}

// The fused (flash) attention against attn_ref on the model's layouts: q, k, v read from a
// [B, T, 3d] qkv buffer plus bias, O written into [B, T, d], dq/dk/dv into [B, T, 3d]. The
// reference's own gradients are checked against finite differences once (fd = true).
void test_flash_attn(Rng& r, int B, int H, int T, TempParam tp, bool reg, bool fd) {
  const int D = 64, d = H * D, ctx = T + 5;
  const double scale = 1.0 / 8.0;
  auto qkv = rand_bf(r, size_t(B) * T * 3 * d, 1.1);
  auto bias = rand_f(r, size_t(3) * d, 0.3);
  auto dOf = rand_bf(r, size_t(B) * T * d);
  std::vector<float> temp;
  if (tp != TempParam::none) {
    temp.resize(size_t(H) * ctx);
    for (auto& x : temp) {
      double u = 0.6 + 0.8 * r.uniform();
      x = float(tp == TempParam::exp ? std::log(u) : tp == TempParam::direct ? u : u - 1.0);
    }
  }
  std::vector<float> theta(H);
  for (auto& x : theta) x = float(0.3 + 0.5 * r.uniform());
  const double lnT = std::log(double(std::max(T, 2))), tol = 0.05 * lnT, coef = 0.37;
  // reference inputs in [B*H, T, 64]
  size_t n = size_t(B) * H * T;
  std::vector<double> q(n * D), k(n * D), v(n * D), dO(n * D);
  for_head_elems(B, H, T, [&](size_t hr, size_t src, int col, size_t bt) {
    q[hr] = bf(qkv[src + col] + bias[col]);
    k[hr] = bf(qkv[src + d + col] + bias[d + col]);
    v[hr] = bf(qkv[src + 2 * d + col] + bias[2 * d + col]);
    dO[hr] = dOf[bt * d + col];
  });
  std::vector<double> td(temp.begin(), temp.end()),
      thd = reg ? std::vector<double>(theta.begin(), theta.end()) : std::vector<double>{};
  AttnRef ref = attn_ref(q, k, v, dO, td, tp, B, H, T, ctx, scale, thd, lnT, tol, coef);

  DevBuf<bf16> dqkv(to_bf16(qkv)), dy(size_t(B) * T * d), ddO(to_bf16(dOf)),
      dg(size_t(B) * T * 3 * d);
  DevBuf<float> dbias(bias), dTemp(temp.empty() ? std::vector<float>{0.f} : temp), dTheta(theta),
      dLse(n), dE(n), dPen(n), dGE(n), dDrow(n), dRow(n);
  for (auto* p : {&dLse, &dE, &dPen, &dGE, &dRow}) p->poison();
  dy.poison();
  dg.poison();
  auto view = [&](bf16* p, int ld) { return HeadView{p, (long long)T * ld, D, ld}; };
  FlashFwdArgs f;
  f.q = view(dqkv.p, 3 * d);
  f.k = view(dqkv.p + d, 3 * d);
  f.v = view(dqkv.p + 2 * d, 3 * d);
  f.o = view(dy.p, d);
  f.bq = dbias.p;
  f.bk = dbias.p + d;
  f.bv = dbias.p + 2 * d;
  set_attention(f, B, H, T, scale, temp.empty() ? nullptr : dTemp.p, ctx, tp, dE.p);
  f.lse = dLse.p;
  if (reg) set_regularizer(f, dTheta.p, lnT, tol, coef, dPen.p, dGE.p);
  char nm[160];
  std::snprintf(nm, sizeof nm, "flash attention B=%d H=%d T=%d temp=%d reg=%d", B, H, T, int(tp),
                int(reg));
  std::string name(nm);
  // T <= 128 runs the one-pass kernels by default; there the tiled ones run too, and both are
  // checked against the reference and against each other. The forward's outputs:
  struct Fwd {
    std::vector<double> O, lse, E, pen;
  };
  auto forward = [&](bool tiled, const std::string& nm2) {
    for (auto* p : {&dLse, &dE, &dPen, &dGE}) p->poison();
    dy.poison();
    f.tiled = tiled;
    flash_attn_forward(f, S);
    Fwd r{std::vector<double>(n * D), to_d(dLse.down()), to_d(dE.down()),
          reg ? to_d(dPen.down()) : std::vector<double>{}};
    auto yb = to_d(dy.down());  // O back to [B*H, T, 64]
    for_head_elems(B, H, T, [&](size_t hr, size_t, int col, size_t bt) { r.O[hr] = yb[bt * d + col]; });
    C.close(nm2 + " output O", r.O, ref.O, 1e-2);
    C.close(nm2 + " log-sum-exp", r.lse, ref.lse, 1e-5, 1.0);
    C.close(nm2 + " row entropy", r.E, ref.E, 2e-5, 1e-2);
    if (reg) C.close(nm2 + " penalty", r.pen, ref.pen, 2e-3, 1e-3);
    return r;
  };
  if (T <= 128) {
    const Fwd f2 = forward(true, name + " tiled");
    const Fwd f1 = forward(false, name + " one-pass");  // its outputs feed the backward below
    C.close(name + " one-pass = tiled O", f1.O, f2.O, 4e-3, 1.0);
    C.close(name + " one-pass = tiled lse", f1.lse, f2.lse, 1e-6, 1.0);
    C.close(name + " one-pass = tiled entropy", f1.E, f2.E, 1e-5, 1e-2);
  } else {
    forward(false, name);
  }
  // The backward (one-pass at T <= 128; there the two tiled kernels run too).
  struct Grads {
    std::vector<double> dq, dk, dv, dtemp, dbias;
  };
  auto backward = [&](bool two_kernel) {
    FlashBwdArgs bw;
    bw.f = f;
    bw.gE = reg ? dGE.p : nullptr;
    bw.dO = view(ddO.p, d);
    bw.dq = view(dg.p, 3 * d);
    bw.dk = view(dg.p + d, 3 * d);
    bw.dv = view(dg.p + 2 * d, 3 * d);
    bw.Drow = dDrow.p;
    bw.dtemp_row = temp.empty() ? nullptr : dRow.p;
    bw.f.tiled = two_kernel;
    const int nchunk = flash_bias_partials(B, T);
    DevBuf<float> dPart(size_t(nchunk) * 3 * d), dBsum(std::vector<float>(size_t(3) * d, 0.f));
    dPart.poison();
    dg.poison();
    dRow.poison();
    bw.dbias_part = dPart.p;
    flash_attn_backward(bw, S);
    colsum_partials_final(dBsum.p, dPart.p, nchunk, 3 * d, S);
    Grads gr{std::vector<double>(n * D), std::vector<double>(n * D), std::vector<double>(n * D),
             temp.empty() ? std::vector<double>{} : to_d(dRow.down()), to_d(dBsum.down())};
    auto gb = to_d(dg.down());
    for_head_elems(B, H, T, [&](size_t hr, size_t src, int col, size_t) {
      gr.dq[hr] = gb[src + col];
      gr.dk[hr] = gb[src + d + col];
      gr.dv[hr] = gb[src + 2 * d + col];
    });
    return gr;
  };
  std::vector<double> rb(size_t(3) * d, 0.0);  // the qkv bias gradient
  for_head_elems(B, H, T, [&](size_t hr, size_t, int col, size_t) {
    rb[col] += ref.dq[hr];
    rb[d + col] += ref.dk[hr];
    rb[2 * d + col] += ref.dv[hr];
  });
  auto check = [&](const Grads& gr, const std::string& nm2) {
    // absolute floor: at T = 1 the true dq, dk are 0 (one key) and the result is rounding noise
    C.close(nm2 + " dq", gr.dq, ref.dq, 2e-2, 1.0);
    C.close(nm2 + " dk", gr.dk, ref.dk, 2e-2, 1.0);
    C.close(nm2 + " dv", gr.dv, ref.dv, 2e-2, 1.0);
    if (!temp.empty())  // (floor: 0 at T = 1 as well)
      C.close(nm2 + " dtemp per row", gr.dtemp, ref.dtemp_row, 2e-2, 1.0);
    C.close(nm2 + " qkv bias gradient (partial column sums)", gr.dbias, rb, 2e-2, 1.0);
  };
  const Grads g1 = backward(false);
  check(g1, name + (T <= 128 ? " one-pass" : ""));
  if (T <= 128) {
    const Grads g2 = backward(true);
    check(g2, name + " two-kernel");
    // the same function up to fp32 summation order and bf16 output rounding
    C.close(name + " one-pass = two-kernel dq", g1.dq, g2.dq, 4e-3, 1.0);
    C.close(name + " one-pass = two-kernel dk", g1.dk, g2.dk, 4e-3, 1.0);
    C.close(name + " one-pass = two-kernel dv", g1.dv, g2.dv, 4e-3, 1.0);
    if (!temp.empty())
      C.close(name + " one-pass = two-kernel dtemp", g1.dtemp, g2.dtemp, 1e-3, 1.0);
    C.close(name + " one-pass = two-kernel bias", g1.dbias, g2.dbias, 1e-3, 1.0);
  }
  if (!fd) return;
  // The reference's gradients against central finite differences of its forward.
  auto loss = [&](const std::vector<double>& qx, const std::vector<double>& kx,
                  const std::vector<double>& vx, const std::vector<double>& tx) {
    return attn_ref(qx, kx, vx, dO, tx, tp, B, H, T, ctx, scale, thd, lnT, tol, coef).loss;
  };
  std::vector<double> got, num;
  const double hstep = 1e-5;
  for (int s = 0; s < 30; ++s) {
    size_t idx = r.below(n * D);
    for (int which = 0; which < 3; ++which) {
      auto xp = which == 0 ? q : which == 1 ? k : v, xm = xp;
      xp[idx] += hstep;
      xm[idx] -= hstep;
      double lp = which == 0 ? loss(xp, k, v, td) : which == 1 ? loss(q, xp, v, td) : loss(q, k, xp, td);
      double lm = which == 0 ? loss(xm, k, v, td) : which == 1 ? loss(q, xm, v, td) : loss(q, k, xm, td);
      num.push_back((lp - lm) / (2 * hstep));
      got.push_back(which == 0 ? ref.dq[idx] : which == 1 ? ref.dk[idx] : ref.dv[idx]);
    }
  }
  if (!temp.empty())
    for (int s = 0; s < 10; ++s) {
      int hh = int(r.below(H)), i = int(r.below(T));
      auto tp_ = td, tm = td;
      tp_[hh * ctx + i] += hstep;
      tm[hh * ctx + i] -= hstep;
      num.push_back((loss(q, k, v, tp_) - loss(q, k, v, tm)) / (2 * hstep));
      double acc = 0;
      for (int b = 0; b < B; ++b) acc += ref.dtemp_row[(size_t(b) * H + hh) * T + i];
      got.push_back(acc);
    }
  C.close(name + " reference gradients vs finite differences", got, num, 1e-5);
}

void test_attn_softmax(Rng& r, int B, int H, int T, TempParam tp, bool reg) {
  const int ctx = T + 3;
  const double scale = 1.0 / std::sqrt(8.0);
  auto S0 = rand_bf(r, size_t(B) * H * T * T, 2.5);
  std::vector<float> temp;
  if (tp != TempParam::none) {
    temp.resize(size_t(H) * ctx);
    for (auto& x : temp) {
      double u = 0.6 + 0.8 * r.uniform();  // t in [0.6, 1.4]
      x = float(tp == TempParam::exp ? std::log(u) : tp == TempParam::direct ? u : u - 1.0);
    }
  }
  std::vector<float> theta(H);
  for (auto& x : theta) x = float(0.2 + 0.6 * r.uniform());
  const double lnT = std::log(double(T)), tol = 0.05 * lnT, coef = 0.37;
  DevBuf<bf16> dP(to_bf16(S0));
  DevBuf<float> dTemp(temp.empty() ? std::vector<float>{0.f} : temp), dTheta(theta),
      dE(size_t(B) * H * T), dPen(size_t(B) * H * T), dGE(size_t(B) * H * T);
  dE.poison();
  AttnSoftmaxArgs a;
  a.P = dP.p;
  set_attention(a, B, H, T, scale, temp.empty() ? nullptr : dTemp.p, ctx, tp, dE.p);
  if (reg) set_regularizer(a, dTheta.p, lnT, tol, coef, dPen.p, dGE.p);
  attn_softmax_forward(a, S);
  std::vector<double> Sd(S0.begin(), S0.end()), td(temp.begin(), temp.end()),
      thd = reg ? std::vector<double>(theta.begin(), theta.end()) : std::vector<double>{};
  SoftRef ref = soft_ref(Sd, td, tp, B, H, T, ctx, scale, thd, lnT, tol);
  char nm[160];
  std::snprintf(nm, sizeof nm, "attn softmax B=%d H=%d T=%d temp=%d reg=%d", B, H, T, int(tp),
                int(reg));
  auto gotP = to_d(dP.down());
  C.close(std::string(nm) + " probs (upper triangle 0)", gotP, ref.P, 6e-3);
  C.close(std::string(nm) + " row entropy", to_d(dE.down()), ref.E, 1e-4, 1e-2);  // entropies are O(1): absolute floor
  if (reg) C.close(std::string(nm) + " penalty", to_d(dPen.down()), ref.pen, 2e-3, 1e-3);

  // Backward: loss(S, temp) = sum G * P + coef * sum pen.  GPU: dP := G, gE from forward.
  auto G = rand_bf(r, S0.size());
  DevBuf<bf16> dG(to_bf16(G)), dPb(to_bf16(std::vector<float>(gotP.begin(), gotP.end())));
  DevBuf<float> dRow(size_t(B) * H * T);
  AttnSoftmaxBwdArgs b;
  b.dP = dG.p;
  b.P = dPb.p;
  b.B = B;
  b.H = H;
  b.T = T;
  b.scale = float(scale);
  b.temp = a.temp;
  b.ctx = ctx;
  b.temp_param = tp;
  b.gE = reg ? dGE.p : nullptr;
  b.dtemp_row = temp.empty() ? nullptr : dRow.p;
  attn_softmax_backward(b, S);
  auto loss = [&](const std::vector<double>& Sx, const std::vector<double>& tx) {
    SoftRef o = soft_ref(Sx, tx, tp, B, H, T, ctx, scale, thd, lnT, tol);
    double l = 0;
    for (size_t i = 0; i < Sx.size(); ++i) l += double(G[i]) * o.P[i];
    for (double p : o.pen) l += coef * p;
    return l;
  };
  auto dS = to_d(dG.down());
  // FD on a sample of score entries (causal ones), all temperature rows.
  std::vector<double> got, fd;
  const double h = 1e-4;
  for (int s = 0; s < 120; ++s) {
    size_t row = r.below(size_t(B) * H * T);
    int i = int(row % T);
    int j = int(r.below(i + 1));
    size_t idx = row * T + j;
    auto Sp = Sd, Sm = Sd;
    Sp[idx] += h;
    Sm[idx] -= h;
    fd.push_back((loss(Sp, td) - loss(Sm, td)) / (2 * h));
    got.push_back(dS[idx]);
  }
  C.close(std::string(nm) + " dscores vs finite differences", got, fd, 2.5e-2);
  bool zeros = true;
  for (size_t row = 0; row < size_t(B) * H * T; ++row)
    for (int j = int(row % T) + 1; j < T; ++j) zeros &= dS[row * T + j] == 0.0;
  C.expect(zeros, std::string(nm) + " dscores zero above the diagonal");
  if (!temp.empty()) {
    // per-row gradients summed over batch = gradient of temp[h, i]
    DevBuf<float> dTempG(std::vector<float>(temp.size(), 0.5f));
    temp_grad_reduce(dTempG.p, dRow.p, B, H, T, ctx, S);
    auto gt = to_d(dTempG.down());
    std::vector<double> g2, f2;
    for (int hh = 0; hh < H; ++hh)
      for (int i = 0; i < T; ++i) {
        size_t idx = size_t(hh) * ctx + i;
        auto tp_ = td, tm_ = td;
        tp_[idx] += h;
        tm_[idx] -= h;
        f2.push_back((loss(Sd, tp_) - loss(Sd, tm_)) / (2 * h));
        g2.push_back(gt[idx] - 0.5);
      }
    C.close(std::string(nm) + " dtemperature vs finite differences", g2, f2, 3e-2);
    bool untouched = true;
    for (int hh = 0; hh < H; ++hh)
      for (int i = T; i < ctx; ++i) untouched &= gt[size_t(hh) * ctx + i] == 0.5;
    C.expect(untouched, std::string(nm) + " dtemperature rows >= T untouched");
  }
  if (reg) {
    // dL/dtheta[h] = -lnT * sum gE: against finite differences of the penalty in theta
    DevBuf<float> dTh(std::vector<float>(H, 0.f));
    DevBuf<float> thScr(size_t(H) * T);
    theta_grad_reduce(dTh.p, dGE.p, B, H, T, float(-lnT), thScr.p, S);
    auto gth = to_d(dTh.down());
    std::vector<double> f3;
    for (int hh = 0; hh < H; ++hh) {
      auto tp_ = thd, tm_ = thd;
      tp_[hh] += 1e-6;
      tm_[hh] -= 1e-6;
      SoftRef op = soft_ref(Sd, td, tp, B, H, T, ctx, scale, tp_, lnT, tol);
      SoftRef om = soft_ref(Sd, td, tp, B, H, T, ctx, scale, tm_, lnT, tol);
      double lp = 0, lm = 0;
      for (double p : op.pen) lp += coef * p;
      for (double p : om.pen) lm += coef * p;
      f3.push_back((lp - lm) / 2e-6);
    }
    C.close(std::string(nm) + " dtheta vs finite differences", gth, f3, 1e-2);
  }
}

double act_ref(double x, Act a, double slope) {
  switch (a) {
    case Act::gelu: return 0.5 * x * (1 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
    case Act::relu: return x > 0 ? x : 0;
    case Act::leaky_relu: return x > 0 ? x : slope * x;
    case Act::gelu_exact: return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
    default: return x;
  }
}

void test_act(Rng& r, int F) {
  const int N = 29;
  const char* names[] = {"gelu", "relu", "leaky_relu", "identity", "gelu_exact"};
  for (int ai = 0; ai < 5; ++ai) {
    Act act = Act(ai);
    auto pre = rand_bf(r, size_t(N) * F, 2.0), bias = rand_f(r, F, 0.5), dout = rand_bf(r, size_t(N) * F);
    DevBuf<bf16> dPre(to_bf16(pre)), dOut(size_t(N) * F), dDo(to_bf16(dout)), dDp(size_t(N) * F);
    DevBuf<float> dBias(bias);
    bias_act_forward(dPre.p, dOut.p, dBias.p, N, F, act, 0.03f, S);
    auto hpre = to_d(dPre.down());
    std::vector<double> rpre(pre.size()), rout(pre.size()), rd(pre.size()), fd(pre.size());
    for (size_t i = 0; i < pre.size(); ++i) {
      rpre[i] = pre[i] + bias[i % F];
      double x = hpre[i];  // backward uses the stored (bf16) pre-activation
      rout[i] = act_ref(x, act, 0.03);
      fd[i] = dout[i] * (act_ref(x + 1e-6, act, 0.03) - act_ref(x - 1e-6, act, 0.03)) / 2e-6;
    }
    C.close(std::string("bias_act_forward ") + names[ai] + " F=" + std::to_string(F) + " pre", hpre, rpre, 6e-3);
    C.close(std::string("bias_act_forward ") + names[ai] + " out", to_d(dOut.down()), rout, 6e-3);
    act_backward(dDp.p, dDo.p, dPre.p, N, F, act, 0.03f, S);
    C.close(std::string("act_backward ") + names[ai] + " vs finite differences", to_d(dDp.down()),
            fd, 8e-3);
  }
}

// The producer passes fused with the bias gradient's column sums (act_backward_bias in place,
// as the model calls it, and cast_colsum) against CPU references; dbias accumulates. N > 256
// rows (two row chunks, the second partial), F not a multiple of 256.
void test_fused_colsum(Rng& r, int N, int F) {
  const std::string sz = " N=" + std::to_string(N) + " F=" + std::to_string(F);
  for (Act act : {Act::gelu, Act::relu}) {
    auto pre = rand_bf(r, size_t(N) * F, 2.0), dout = rand_bf(r, size_t(N) * F), b0 = rand_f(r, F);
    DevBuf<bf16> dPre(to_bf16(pre)), dDo(to_bf16(dout));
    DevBuf<float> dB(b0), scr(colsum_scratch_floats(N, F));
    act_backward_bias(dDo.p, dDo.p, dPre.p, dB.p, N, F, act, 0.03f, scr.p, S);
    std::vector<double> rd(pre.size()), rb(b0.begin(), b0.end());
    for (size_t i = 0; i < pre.size(); ++i) {
      const double x = pre[i];
      rd[i] = dout[i] * (act_ref(x + 1e-6, act, 0.03) - act_ref(x - 1e-6, act, 0.03)) / 2e-6;
      rb[i % F] += rd[i];
    }
    const std::string nm = std::string("act_backward_bias ") + (act == Act::gelu ? "gelu" : "relu") + sz;
    C.close(nm + " dpre (in place)", to_d(dDo.down()), rd, 8e-3);
    C.close(nm + " bias gradient (accumulating)", to_d(dB.down()), rb, 1e-2);
  }
  auto x = rand_f(r, size_t(N) * F), b0 = rand_f(r, F);
  DevBuf<float> dX(x), dB(b0), scr(colsum_scratch_floats(N, F));
  DevBuf<bf16> dOut(size_t(N) * F);
  dOut.poison();
  cast_colsum(dOut.p, dX.p, dB.p, N, F, scr.p, S);
  std::vector<double> rb(b0.begin(), b0.end());
  for (size_t i = 0; i < x.size(); ++i) rb[i % F] += x[i];
  C.close("cast_colsum out" + sz, to_d(dOut.down()), to_d(x), 6e-3);
  C.close("cast_colsum bias gradient (accumulating)" + sz, to_d(dB.down()), rb, 1e-5);
}

// Learnable leaky ReLU: the slope read from device memory, and its gradient.
void test_learnable_slope(Rng& r) {
  const int N = 23, F = 37;
  auto pre = rand_bf(r, size_t(N) * F, 2.0), dout = rand_bf(r, size_t(N) * F);
  const float slope = 0.17f;
  DevBuf<bf16> dPre(to_bf16(pre)), dOut(size_t(N) * F), dDo(to_bf16(dout)), dDp(size_t(N) * F);
  DevBuf<float> dSl(std::vector<float>{slope}), dGs(std::vector<float>{0.5f}), scr(4096);
  bias_act_forward(dPre.p, dOut.p, nullptr, N, F, Act::leaky_relu, 0.9f, S, dSl.p);
  leaky_slope_grad(dGs.p, dDo.p, dPre.p, size_t(N) * F, scr.p, S);
  act_backward(dDp.p, dDo.p, dPre.p, N, F, Act::leaky_relu, 0.9f, S, dSl.p);
  std::vector<double> rout(pre.size()), rd(pre.size());
  double gs = 0.5;
  for (size_t i = 0; i < pre.size(); ++i) {
    rout[i] = pre[i] > 0 ? pre[i] : slope * pre[i];
    rd[i] = pre[i] > 0 ? dout[i] : slope * dout[i];
    gs += pre[i] < 0 ? double(dout[i]) * pre[i] : 0.0;
  }
  C.close("learnable leaky ReLU forward (slope from device)", to_d(dOut.down()), rout, 6e-3);
  C.close("learnable leaky ReLU backward", to_d(dDp.down()), rd, 6e-3);
  C.close("learnable leaky ReLU slope gradient (accumulated)", to_d(dGs.down()), {gs}, 1e-5);
}

// Rotary: forward against the rotate_half formula, inverse(forward(x)) == x.
void test_rotary(Rng& r) {
  const int BH = 5, T = 19, dk = 14, R = 10, half = R / 2;
  auto q = rand_bf(r, size_t(BH) * T * dk), k = rand_bf(r, size_t(BH) * T * dk);
  std::vector<float> cs(size_t(T) * half), sn(size_t(T) * half);
  for (int t = 0; t < T; ++t)
    for (int f = 0; f < half; ++f) {
      double a = t * std::pow(10000.0, -2.0 * f / R);
      cs[t * half + f] = float(std::cos(a));
      sn[t * half + f] = float(std::sin(a));
    }
  DevBuf<bf16> dq(to_bf16(q)), dkk(to_bf16(k));
  DevBuf<float> dc(cs), ds(sn);
  rotary(dq.p, dkk.p, dc.p, ds.p, BH, T, dk, R, false, S);
  std::vector<double> rq(q.begin(), q.end()), rk(k.begin(), k.end());
  for (auto* v : {&rq, &rk})
    for (int row = 0; row < BH * T; ++row) {
      int t = row % T;
      double* x = v->data() + size_t(row) * dk;
      for (int f = 0; f < half; ++f) {
        double a = t * std::pow(10000.0, -2.0 * f / R), x1 = x[f], x2 = x[f + half];
        x[f] = x1 * std::cos(a) - x2 * std::sin(a);
        x[f + half] = x2 * std::cos(a) + x1 * std::sin(a);
      }
    }
  C.close("rotary forward q (R=10 of dk=14)", to_d(dq.down()), rq, 6e-3);
  C.close("rotary forward k", to_d(dkk.down()), rk, 6e-3);
  rotary(dq.p, dkk.p, dc.p, ds.p, BH, T, dk, R, true, S);
  C.close("rotary inverse undoes forward", to_d(dq.down()), std::vector<double>(q.begin(), q.end()),
          8e-3);
}

// Weight norm forward/backward (rows [r0, r1) normalized) and spectral norm (power iteration,
// sigma, effective weight, gradient) against double-precision loops.
void test_weight_spectral_norm(Rng& r) {
  const int O = 45, I = 29, r0 = 15, r1 = 45;
  auto v = rand_f(r, size_t(O) * I), g = rand_f(r, O), G = rand_f(r, size_t(O) * I);
  DevBuf<float> dv(v), dg(g), dG(G), norms(O), gg(std::vector<float>(O, 0.f)),
      gv(std::vector<float>(size_t(O) * I, 0.f));
  DevBuf<bf16> weff(size_t(O) * I);
  weight_norm_forward(weff.p, norms.p, dg.p, dv.p, O, I, r0, r1, S);
  weight_norm_backward(gg.p, gv.p, dG.p, dg.p, dv.p, norms.p, O, I, r0, r1, S);
  std::vector<double> rw(v.size()), rgg(O, 0.0), rgv(v.size());
  for (int o = 0; o < O; ++o) {
    double ss = 0, gvd = 0;
    for (int i = 0; i < I; ++i) {
      ss += double(v[o * I + i]) * v[o * I + i];
      gvd += double(G[o * I + i]) * v[o * I + i];
    }
    double n = std::sqrt(ss);
    bool on = o >= r0 && o < r1;
    if (on) rgg[o] = gvd / n;
    for (int i = 0; i < I; ++i) {
      rw[o * I + i] = on ? g[o] * v[o * I + i] / n : v[o * I + i];
      rgv[o * I + i] = on ? g[o] / n * (G[o * I + i] - gvd / (n * n) * v[o * I + i]) : G[o * I + i];
    }
  }
  C.close("weight_norm_forward (rows 15..44 of 45)", to_d(weff.down()), rw, 6e-3);
  C.close("weight_norm_backward dg", to_d(gg.down()), rgg, 1e-5);
  C.close("weight_norm_backward dv", to_d(gv.down()), rgv, 1e-5);

  const int h = 37;
  auto W = rand_f(r, size_t(h) * I), u0 = rand_f(r, h), Gs = rand_f(r, size_t(h) * I);
  for (int iterate = 0; iterate < 2; ++iterate) {
    DevBuf<float> dW(W), du(u0), dvv(I), sig(1), wv(h), dGs(Gs),
        dWg(std::vector<float>(size_t(h) * I, 0.f)), scr(4096);
    DevBuf<bf16> we(size_t(h) * I);
    spectral_norm_forward(we.p, du.p, dvv.p, sig.p, wv.p, dW.p, h, I, iterate, S);
    spectral_norm_backward(dWg.p, dGs.p, dW.p, du.p, dvv.p, sig.p, h, I, scr.p, S);
    std::vector<double> vv(I, 0.0), Wv(h, 0.0), u(u0.begin(), u0.end());
    for (int rr = 0; rr < h; ++rr)
      for (int i = 0; i < I; ++i) vv[i] += double(W[rr * I + i]) * u[rr];
    double nv = 0;
    for (double x : vv) nv += x * x;
    for (double& x : vv) x /= std::sqrt(nv);
    for (int rr = 0; rr < h; ++rr)
      for (int i = 0; i < I; ++i) Wv[rr] += double(W[rr * I + i]) * vv[i];
    if (iterate) {
      double nu = 0;
      for (double x : Wv) nu += x * x;
      for (int rr = 0; rr < h; ++rr) u[rr] = Wv[rr] / std::sqrt(nu);
    }
    double sigma = 0, gw = 0;
    for (int rr = 0; rr < h; ++rr) sigma += u[rr] * Wv[rr];
    std::vector<double> rwe(W.size()), rdw(W.size());
    for (size_t i = 0; i < W.size(); ++i) {
      rwe[i] = W[i] / sigma;
      gw += double(Gs[i]) * W[i];
    }
    for (int rr = 0; rr < h; ++rr)
      for (int i = 0; i < I; ++i)
        rdw[rr * I + i] = Gs[rr * I + i] / sigma - gw / (sigma * sigma) * u[rr] * vv[i];
    std::string tag = iterate ? " (power iteration)" : " (u fixed)";
    C.close("spectral_norm_forward sigma" + tag, to_d(sig.down()), {sigma}, 1e-5);
    C.close("spectral_norm_forward u" + tag, to_d(du.down()), u, 1e-5);
    C.close("spectral_norm_forward v" + tag, to_d(dvv.down()), vv, 1e-5);
    C.close("spectral_norm_forward W/sigma" + tag, to_d(we.down()), rwe, 6e-3);
    C.close("spectral_norm_backward dW" + tag, to_d(dWg.down()), rdw, 1e-5);
  }
}

void test_ffn_scale(Rng& r, int N, int d) {  // d % 8 == 0: the 16-byte path
  auto dres = rand_f(r, size_t(N) * d), xhat = rand_f(r, size_t(N) * d), m = rand_f(r, size_t(N) * d),
       bm = rand_f(r, d);
  float alpha = 1.3f, beta = 0.7f;
  DevBuf<float> dRes(dres), dX(xhat), dM(m), dBm(bm), dA(std::vector<float>{alpha}),
      dB(std::vector<float>{beta}), gA(std::vector<float>{0.25f}), gB(std::vector<float>{-0.5f}),
      scr(ffn_scale_scratch_floats(N, d));
  auto b0 = rand_f(r, d);
  DevBuf<float> dBias(b0);
  DevBuf<bf16> dm(size_t(N) * d);
  dm.poison();
  ffn_scale_backward(dm.p, dRes.p, dX.p, dM.p, dBm.p, dA.p, dB.p, gA.p, gB.p, scr.p, N, d, S,
                     dBias.p);
  std::vector<double> rdm(dres.size()), rres(dres.size()), rbias(b0.begin(), b0.end());
  double ra = 0.25, rb = -0.5;
  for (size_t i = 0; i < dres.size(); ++i) {
    rdm[i] = dres[i] / double(alpha);
    rbias[i % d] += rdm[i];
    rres[i] = dres[i] * double(beta);
    rb += double(dres[i]) * xhat[i];
    ra += -double(dres[i]) * (double(m[i]) + bm[i % d]) / (double(alpha) * alpha);
  }
  const std::string sz = " (N=" + std::to_string(N) + ", d=" + std::to_string(d) + ")";
  C.close("ffn_scale_backward dm" + sz, to_d(dm.down()), rdm, 6e-3);
  C.close("ffn_scale_backward dxhat" + sz, to_d(dRes.down()), rres, 1e-6);
  C.close("ffn_scale_backward dalpha" + sz, to_d(gA.down()), {ra}, 5e-5);
  C.close("ffn_scale_backward dbeta" + sz, to_d(gB.down()), {rb}, 5e-5);
  // the 16-byte path sums the fp32 dm values; the scalar path (d % 8 != 0) column-sums the
  // bf16-rounded dm, as the model did before (bf16 rounding level: 1.6e-3 measured at d = 45)
  C.close("ffn_scale_backward bias gradient (accumulating)" + sz, to_d(dBias.down()), rbias,
          d % 8 == 0 ? 1e-4 : 6e-3);
  // scale_dres false (beta applied by the next product): dres unchanged, the rest the same
  {
    DevBuf<float> dRes2(dres), gA2(std::vector<float>{0.25f}), gB2(std::vector<float>{-0.5f}),
        dBias2(b0);
    DevBuf<bf16> dm2(size_t(N) * d);
    dm2.poison();
    ffn_scale_backward(dm2.p, dRes2.p, dX.p, dM.p, dBm.p, dA.p, dB.p, gA2.p, gB2.p, scr.p, N, d,
                       S, dBias2.p, false);
    C.close("ffn_scale_backward (dres kept) dm" + sz, to_d(dm2.down()), rdm, 6e-3);
    C.close("ffn_scale_backward (dres kept) dres unchanged" + sz, to_d(dRes2.down()), to_d(dres),
            0.0);
    C.close("ffn_scale_backward (dres kept) dalpha" + sz, to_d(gA2.down()), {ra}, 5e-5);
    C.close("ffn_scale_backward (dres kept) dbeta" + sz, to_d(gB2.down()), {rb}, 5e-5);
    C.close("ffn_scale_backward (dres kept) bias gradient" + sz, to_d(dBias2.down()), rbias,
            d % 8 == 0 ? 1e-4 : 6e-3);
  }
  // without the bias gradient (the cuBLASLt bias-gradient epilogue's case): dalpha, dbeta only
  {
    DevBuf<float> dRes3(dres), gA3(std::vector<float>{0.25f}), gB3(std::vector<float>{-0.5f});
    DevBuf<bf16> dm3(size_t(N) * d);
    ffn_scale_backward(dm3.p, dRes3.p, dX.p, dM.p, dBm.p, dA.p, dB.p, gA3.p, gB3.p, scr.p, N, d,
                       S, nullptr);
    C.close("ffn_scale_backward (no bias) dalpha" + sz, to_d(gA3.down()), {ra}, 5e-5);
    C.close("ffn_scale_backward (no bias) dbeta" + sz, to_d(gB3.down()), {rb}, 5e-5);
  }
}

void test_colsum(Rng& r, int N, int Cc) {
  auto x = rand_bf(r, size_t(N) * Cc);
  auto o0 = rand_f(r, Cc);
  DevBuf<bf16> dx(to_bf16(x));
  DevBuf<float> out(o0), scr(colsum_scratch_floats(N, Cc));
  colsum(out.p, dx.p, N, Cc, scr.p, S);
  std::vector<double> ref(o0.begin(), o0.end());
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < Cc; ++c) ref[c] += x[size_t(n) * Cc + c];
  C.close("colsum N=" + std::to_string(N) + " C=" + std::to_string(Cc) + " (accumulating)",
          to_d(out.down()), ref, 1e-6);
}

void test_reductions(Rng& r) {
  {  // the temperature and theta gradient sums over the batch (awkward B, H*T not / 32)
    const int B = 37, H = 3, T = 70, ctx = 75;
    auto row = rand_f(r, size_t(B) * H * T);
    auto t0 = rand_f(r, size_t(H) * ctx);
    DevBuf<float> dRow(row), dT(t0), dTh(std::vector<float>{0.5f, -0.25f, 1.f}), scr(size_t(H) * T);
    scr.poison();
    temp_grad_reduce(dT.p, dRow.p, B, H, T, ctx, S);
    theta_grad_reduce(dTh.p, dRow.p, B, H, T, -1.5f, scr.p, S);
    std::vector<double> rt(t0.begin(), t0.end()), rth{0.5, -0.25, 1.0};
    for (int b = 0; b < B; ++b)
      for (int hh = 0; hh < H; ++hh)
        for (int i = 0; i < T; ++i) {
          const double v = row[(size_t(b) * H + hh) * T + i];
          rt[size_t(hh) * ctx + i] += v;
          rth[hh] += -1.5 * v;
        }
    C.close("temp_grad_reduce B=37 H=3 T=70 (accumulating)", to_d(dT.down()), rt, 1e-6);
    C.close("theta_grad_reduce B=37 H=3 T=70 (accumulating)", to_d(dTh.down()), rth, 1e-5);
  }
  test_colsum(r, 1000, 264);  // 16-byte vector path, C not a multiple of 256
  test_colsum(r, 77, 8);
  const int N = 1000, Cc = 77;
  auto x = rand_bf(r, size_t(N) * Cc);
  auto o0 = rand_f(r, Cc);
  DevBuf<bf16> dx(to_bf16(x));
  DevBuf<float> out(o0), scr(colsum_scratch_floats(N, Cc));
  colsum(out.p, dx.p, N, Cc, scr.p, S);
  std::vector<double> ref(o0.begin(), o0.end());
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < Cc; ++c) ref[c] += x[n * Cc + c];
  C.close("colsum N=1000 C=77 (accumulating)", to_d(out.down()), ref, 1e-6);

  auto y = rand_f(r, 100003);
  DevBuf<float> dy(y), s1(1), nrm(1), sc(1), scr2(4096);
  sum_f32(s1.p, dy.p, y.size(), scr2.p, S);
  double rs = 0, rq = 0;
  for (float v : y) {
    rs += v;
    rq += double(v) * v;
  }
  C.close("sum_f32 n=100003", to_d(s1.down()), {rs}, 1e-4);
  {  // several arrays at once (19: two groups of launches), bit-identical to sum_f32 on each
    const int cnt = 19;
    const size_t n = 4099;
    std::vector<std::vector<float>> xs;
    std::vector<std::unique_ptr<DevBuf<float>>> dxs;
    std::vector<const float*> ptrs;
    for (int j = 0; j < cnt; ++j) {
      xs.push_back(rand_f(r, n));
      dxs.push_back(std::make_unique<DevBuf<float>>(xs[j]));
      ptrs.push_back(dxs.back()->p);
    }
    DevBuf<float> outs(cnt), one(1), scr3(sum_f32_segs_scratch_floats(16));
    outs.poison();
    sum_f32_segs(outs.p, ptrs.data(), cnt, n, scr3.p, S);
    const auto got = outs.down();
    std::vector<double> ref(cnt, 0.0);
    for (int j = 0; j < cnt; ++j)
      for (float v : xs[j]) ref[j] += v;
    C.close("sum_f32_segs 19 x 4099", to_d(got), ref, 1e-4);
    bool same = true;
    for (int j = 0; j < cnt; ++j) {
      sum_f32(one.p, ptrs[j], n, scr3.p, S);
      same = same && one.down()[0] == got[j];
    }
    C.close("sum_f32_segs bit-identical to sum_f32", {same ? 1.0 : 0.0}, {1.0}, 0.0);
  }
  grad_norm(nrm.p, sc.p, dy.p, y.size(), 1.0f, scr2.p, S);
  C.close("grad_norm n=100003", to_d(nrm.down()), {std::sqrt(rq)}, 1e-6);
  C.close("grad_norm clip scale", to_d(sc.down()), {1.0 / (std::sqrt(rq) + 1e-6)}, 1e-5);
  grad_norm(nrm.p, sc.p, dy.p, y.size(), 1e9f, scr2.p, S);
  C.close("grad_norm no clip when under max", to_d(sc.down()), {1.0}, 0.0);
}

void test_cross_entropy(Rng& r, int V, int ldV, int N = 7) {
  std::vector<float> lg(size_t(N) * ldV, 0.f);
  auto rnd = rand_bf(r, lg.size(), 3.0);
  for (int n = 0; n < N; ++n)
    for (int j = 0; j < V; ++j) lg[n * ldV + j] = rnd[n * ldV + j];
  for (int n = 0; n < N; ++n)
    for (int j = V; j < ldV; ++j) lg[n * ldV + j] = 1e4f;  // padding must be ignored
  std::vector<int32_t> tg(N);
  for (auto& t : tg) t = int32_t(r.below(V));
  DevBuf<bf16> dL(to_bf16(lg));
  DevBuf<float> loss(N);
  DevBuf<int32_t> dT(tg);
  const float dscale = 1.f / N;
  cross_entropy_forward_backward(dL.p, loss.p, dT.p, N, V, ldV, dscale, true, S);
  std::vector<double> rl(N), rg(lg.size(), 0.0);
  for (int n = 0; n < N; ++n) {
    double mx = -1e300, s = 0;
    for (int j = 0; j < V; ++j) mx = std::max(mx, double(lg[n * ldV + j]));
    for (int j = 0; j < V; ++j) s += std::exp(lg[n * ldV + j] - mx);
    double lse = mx + std::log(s);
    rl[n] = lse - lg[n * ldV + tg[n]];
    for (int j = 0; j < V; ++j)
      rg[n * ldV + j] = (std::exp(lg[n * ldV + j] - lse) - (j == tg[n])) * dscale;
  }
  C.close("cross_entropy N=" + std::to_string(N) + " V=" + std::to_string(V) + " ldV=" +
              std::to_string(ldV) + " loss",
          to_d(loss.down()), rl, 1e-5);
  C.close("cross_entropy dlogits (padding zeroed)", to_d(dL.down()), rg, 6e-3);
}

void test_embedding(Rng& r) {
  const int B = 3, T = 5, d = 37, V = 11, N = B * T;
  auto wte = rand_f(r, size_t(V) * d), wpe = rand_f(r, size_t(T + 2) * d);
  std::vector<int32_t> tok(N);
  for (auto& t : tok) t = int32_t(r.below(4));  // many repeats
  DevBuf<float> dWte(wte), dWpe(wpe), out(size_t(N) * d);
  DevBuf<int32_t> dTok(tok);
  embedding_forward(out.p, dTok.p, dWte.p, dWpe.p, N, T, d, S);
  std::vector<double> ref(size_t(N) * d);
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < d; ++c) ref[n * d + c] = double(wte[tok[n] * d + c]) + wpe[(n % T) * d + c];
  C.close("embedding_forward", to_d(out.down()), ref, 1e-7);
  // backward with host buckets
  auto dout = rand_f(r, size_t(N) * d);
  std::vector<int32_t> order(N);
  for (int i = 0; i < N; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return tok[a] < tok[b]; });
  std::vector<int32_t> bt, bs;
  for (int i = 0; i < N; ++i)
    if (i == 0 || tok[order[i]] != tok[order[i - 1]]) {
      bt.push_back(tok[order[i]]);
      bs.push_back(i);
    }
  bs.push_back(N);
  DevBuf<float> dDout(dout), gW(wte), gP(wpe);
  DevBuf<int32_t> dbt(bt), dbs(bs), dor(order);
  embedding_backward(gW.p, gP.p, dDout.p, dbt.p, dbs.p, dor.p, int(bt.size()), B, T, d, S);
  std::vector<double> rw(wte.begin(), wte.end()), rp(wpe.begin(), wpe.end());
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < d; ++c) {
      rw[tok[n] * d + c] += dout[n * d + c];
      rp[(n % T) * d + c] += dout[n * d + c];
    }
  C.close("embedding_backward dwte (accumulating)", to_d(gW.down()), rw, 1e-6);
  C.close("embedding_backward dwpe", to_d(gP.down()), rp, 1e-6);
}

void test_adamw(Rng& r) {
  const size_t n = 5003;
  auto p = rand_f(r, n), g = rand_f(r, n), m = rand_f(r, n, 0.1), v = rand_f(r, n, 0.1);
  for (auto& x : v) x = std::fabs(x);
  std::vector<uint8_t> mask(n);
  for (auto& x : mask) x = uint8_t(r.below(2));
  const float lr = 0.01f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f, gs = 0.37f;
  const int step = 3;
  DevBuf<float> dp(p), dg(g), dm(m), dv(v), dgs(std::vector<float>{gs});
  DevBuf<uint8_t> dmask(mask);
  DevBuf<bf16> p16(n);
  adamw(dp.p, p16.p, dg.p, dm.p, dv.p, dmask.p, n, lr, b1, b2, eps, wd, step, dgs.p, S);
  std::vector<double> rp(n), rm(n), rv(n), r16(n);
  for (size_t i = 0; i < n; ++i) {
    double gi = double(g[i]) * gs;
    rm[i] = b1 * double(m[i]) + (1 - b1) * gi;
    rv[i] = b2 * double(v[i]) + (1 - b2) * gi * gi;
    double pi = p[i];
    if (mask[i]) pi *= 1 - double(lr) * wd;
    pi -= lr * (rm[i] / (1 - std::pow(double(b1), step))) /
          (std::sqrt(rv[i] / (1 - std::pow(double(b2), step))) + eps);
    rp[i] = pi;
    r16[i] = bf(float(pi));
  }
  C.close("adamw params (decay mask, clip scale)", to_d(dp.down()), rp, 1e-6);
  C.close("adamw m", to_d(dm.down()), rm, 1e-6);
  C.close("adamw v", to_d(dv.down()), rv, 1e-6);
  C.close("adamw bf16 shadow", to_d(p16.down()), r16, 1e-2);
}
}  // namespace

int main() {
  if (skip_without_gpu("test_gpu_kernels")) return 0;
  try {
    AERO_CUDA_CHECK(cudaStreamCreate(&S));
    cublasHandle_t h;
    AERO_CUBLAS_CHECK(cublasCreate(&h));
    Rng r(20261128);
    test_gemm(h, r);
    test_residual_norm(r, 83);
    test_residual_norm(r, 384);
    test_lt_gemm(r, 37, 72, 40);
    test_lt_gemm(r, 131, 264, 88);
    test_norm_backward(r, 83);
    test_norm_backward(r, 384);
    test_layouts(r, 5);
    test_layouts(r, 8);  // 16-byte vector path
    test_attn_softmax(r, 2, 3, 37, TempParam::exp, true);
    test_attn_softmax(r, 1, 2, 1, TempParam::exp, true);  // T = 1
    test_attn_softmax(r, 2, 2, 70, TempParam::none, false);
    test_attn_softmax(r, 1, 2, 130, TempParam::direct, true);
    test_attn_softmax(r, 1, 1, 300, TempParam::offset, true);
    test_flash_attn(r, 2, 3, 37, TempParam::exp, true, true);
    test_flash_attn(r, 1, 2, 1, TempParam::exp, true, false);  // T = 1
    test_flash_attn(r, 2, 2, 64, TempParam::none, false, false);
    test_flash_attn(r, 1, 2, 70, TempParam::direct, true, false);
    // T <= 128: one-pass backward (and the two-kernel one beside it)
    test_flash_attn(r, 2, 2, 7, TempParam::offset, false, false);
    test_flash_attn(r, 1, 3, 37, TempParam::none, true, false);
    test_flash_attn(r, 2, 1, 64, TempParam::exp, true, false);
    test_flash_attn(r, 1, 2, 100, TempParam::offset, true, false);
    test_flash_attn(r, 2, 2, 127, TempParam::direct, false, false);
    test_flash_attn(r, 3, 2, 128, TempParam::exp, true, false);
    test_flash_attn(r, 1, 1, 128, TempParam::none, false, false);
    test_flash_attn(r, 1, 2, 1, TempParam::none, false, false);
    test_flash_attn(r, 2, 2, 100, TempParam::exp, false, false);
    test_flash_attn(r, 2, 1, 130, TempParam::offset, true, false);
    test_flash_attn(r, 1, 2, 300, TempParam::exp, true, false);
    test_flash_attn(r, 1, 1, 1000, TempParam::exp, false, false);
    test_act(r, 131);
    test_act(r, 136);  // 16-byte vector path
    test_fused_colsum(r, 300, 136);
    test_fused_colsum(r, 37, 264);
    test_ffn_scale(r, 77, 45);
    test_ffn_scale(r, 300, 264);  // 16-byte path, two row chunks
    test_learnable_slope(r);
    test_rotary(r);
    test_weight_spectral_norm(r);
    test_reductions(r);
    test_cross_entropy(r, 1001, 1024);     // row in shared memory
    test_cross_entropy(r, 50257, 50304);   // GPT-2's padded head, shared memory
    test_cross_entropy(r, 60001, 60008, 3);  // row too long for it: 16-byte two-pass path
    test_cross_entropy(r, 1001, 1003);     // scalar path
    test_embedding(r);
    test_adamw(r);
    AERO_CUDA_CHECK(cudaDeviceSynchronize());
    cublasDestroy(h);
  } catch (const std::exception& e) {
    C.expect(false, std::string("exception: ") + e.what());
  }
  return C.finish("test_gpu_kernels");
}
