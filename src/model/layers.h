// The layers of the model as plain forward/backward function pairs over flat row-major
// buffers (llm.c style). Every function is a template on the scalar type T (float for
// training, double for the finite-difference gradient checks), explicitly instantiated for
// both in the .cpp files. Backward functions ACCUMULATE into parameter gradients; input
// gradients are overwritten unless the argument is called `accumulate`.
//
// Shapes: N = B*T rows, C = d_model, H heads of size D = C/H, F = d_ff, V = vocab.
#pragma once
#include <cstdint>
#include <vector>

namespace aero::model {

// Loops with less work than this (elements touched) run on the calling thread: waking the
// thread team costs more than the loop for tiny models, B=1 generation and the tests.
// Tests set it to 0 to run every threaded path on small inputs.
inline long omp_min_work = 1L << 15;

// C[m x n] = alpha op(A) op(B) + beta C through the BLAS (sgemm / dgemm), row-major.
template <typename T>
void gemm(bool ta, bool tb, int m, int n, int k, T alpha, const T* A, int lda, const T* B,
          int ldb, T beta, T* C, int ldc);

// ---- embedding: x[b,t] = wte[tok] (+ wpe[t]) ----
template <typename T>
void embedding_forward(T* out, const int32_t* tokens, const T* wte, const T* wpe, int B, int Tn,
                       int C, int V);
template <typename T>
void embedding_backward(T* dwte, T* dwpe, const T* dout, const int32_t* tokens, int B, int Tn,
                        int C);

// ---- linear: out[N, O] = inp[N, I] W[O, I]^T + bias ----
template <typename T>
void linear_forward(T* out, const T* inp, const T* W, const T* bias, int N, int I, int O);
// dinp (if non-null) = dout W (or += when accumulate); dW += dout^T inp; dbias += colsum dout.
template <typename T>
void linear_backward(T* dinp, T* dW, T* dbias, const T* dout, const T* inp, const T* W, int N,
                     int I, int O, bool accumulate);

// ---- LayerNorm (eps 1e-5, biased variance) ----
template <typename T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* inp, const T* w, const T* b, int N,
                       int C);
// dinp += ..., dw += ..., db += ...
template <typename T>
void layernorm_backward(T* dinp, T* dw, T* db, const T* dout, const T* inp, const T* w,
                        const T* mean, const T* rstd, int N, int C);

// ---- FFN activations (elementwise over n values) ----
enum class Act { gelu, relu, leaky, identity, gelu_exact };
template <typename T>
void activation_forward(T* out, const T* inp, size_t n, Act act, T slope);
// dinp = dout * act'(inp); for leaky, *dslope += sum dout * min(inp, 0) (if dslope non-null).
template <typename T>
void activation_backward(T* dinp, const T* dout, const T* inp, size_t n, Act act, T slope,
                         T* dslope);

// ---- rotary position embedding (RoFormer, Su et al. 2021; GPT-NeoX rotate_half layout) ----
// Rotates the first R dims of every head of q and k inside qkv [N, 3C] in place.
// cos/sin tables: [max_T, R/2]. inverse=true applies the transpose (the backward).
template <typename T>
void rotary_apply(T* qkv, const T* cos, const T* sin, int B, int Tn, int C, int H, int R,
                  bool inverse);

// ---- entropy regularizer arguments (SPEC section 3), per layer ----
template <typename T>
struct EntropyRegArgs {
  const T* theta = nullptr;  // [H] learnable threshold fractions of this layer
  double e_max = 0;          // ln T
  double tol = 0;            // gamma * ln T
  double weight = 0;         // lambda / (L H) for sum, lambda / (L H B T) for mean
  T* coef = nullptr;         // [B, H, T] out: dLoss/dE_row (0 inside the band)
  double penalty = 0;        // out: sum of delta^2 over the rows outside the band
};

// ---- causal multi-head attention ----
// qkv [N, 3C] (q heads, k heads, v heads); scale [H, max_T] per (head, query) multiplier of
// q.k (1 / (t sqrt(D))); probs [B, H, Tn, Tn] out (upper triangle 0); out [N, C].
// ent (optional) computes the regularizer's penalty and row coefficients.
template <typename T>
void attention_forward(T* out, T* probs, const T* qkv, const T* scale, int scale_ld, int B,
                       int Tn, int C, int H, EntropyRegArgs<T>* ent);
// dqkv = ...; dscale (optional, [B, H, Tn]) = d loss / d scale per row; dtheta (optional, [H])
// += from ent coefficients.
template <typename T>
void attention_backward(T* dqkv, T* dscale, T* dtheta, const T* dout, const T* qkv,
                        const T* probs, const T* scale, int scale_ld, int B, int Tn, int C,
                        int H, const EntropyRegArgs<T>* ent);

// ---- cross-entropy over logits [N, V]; targets < 0 are ignored ----
// Returns the summed loss; lse [N] out (log-sum-exp per row); count = number of targets.
template <typename T>
double crossentropy_forward(T* lse, const T* logits, const int32_t* targets, int N, int V,
                            int* count);
// In place: logits <- (softmax(logits) - onehot) * scale (rows with ignored targets -> 0).
template <typename T>
void crossentropy_backward(T* logits, const T* lse, const int32_t* targets, int N, int V,
                           T scale);

// ---- weight normalization (Salimans & Kingma 2016), per output row, rows [r0, r1) ----
// w_eff rows in [r0, r1) = g v / ||v||, other rows = v; norms [O] out.
template <typename T>
void weight_norm_forward(T* w_eff, T* norms, const T* g, const T* v, int O, int I, int r0, int r1);
template <typename T>
void weight_norm_backward(T* dg, T* dv, const T* dw_eff, const T* g, const T* v,
                          const T* norms, int O, int I, int r0, int r1);

// ---- spectral normalization (Miyato et al. 2018), one sub-matrix W [h, I] ----
// Training: v = normalize(W^T u); u <- normalize(W v). Otherwise v = normalize(W^T u).
// sigma = u^T W v; w_eff = W / sigma. v_out [I] keeps v for the backward.
template <typename T>
T spectral_norm_forward(T* w_eff, T* u, T* v_out, const T* W, int h, int I, bool iterate);
// dW += dw_eff / sigma - (sum(dw_eff .* W) / sigma^2) u v^T   (u, v held constant).
template <typename T>
void spectral_norm_backward(T* dW, const T* dw_eff, const T* W, const T* u, const T* v, T sigma,
                            int h, int I);

}  // namespace aero::model
