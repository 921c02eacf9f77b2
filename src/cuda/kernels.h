// The GPU layers as plain forward/backward launch functions over flat device buffers (the
// llm.c habit). Row-major layouts; N = B*T rows. Every reduction is deterministic: block
// partial sums go to a scratch buffer and are added in a fixed order (no float atomics), so two
// runs of the same step are bit-identical. tests/cuda/test_kernels.cu checks each against a
// straightforward CPU implementation on awkward sizes.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cuda/common.h"

namespace aero::cuda {

// gelu: tanh approximation; gelu_exact: x Phi(x) with erf.
enum class Act : int { gelu = 0, relu = 1, leaky_relu = 2, identity = 3, gelu_exact = 4 };
enum class TempParam : int { none = -1, exp = 0, direct = 1, offset = 2 };

// ---- matrix products (cuBLAS, bf16 operands, fp32 accumulation) ----
// Row-major D[M,N] (leading dim ldd, type dt: CUDA_R_16BF or CUDA_R_32F)
//   = alpha * op(A) op(B) + beta * D,
// A stored [M,K] (or [K,M] if ta) with leading dim lda; B stored [K,N] (or [N,K] if tb).
// batch > 1: strided batches with element strides sA, sB, sD.
void gemm(cublasHandle_t h, cudaStream_t s, bool ta, bool tb, int M, int N, int K,
          const bf16* A, int lda, const bf16* B, int ldb, void* D, cudaDataType dt, int ldd,
          float alpha, float beta, int batch = 1, long long sA = 0, long long sB = 0,
          long long sD = 0);
// gemm with alpha and beta read from device memory (each one float) when the product runs:
// D = *alpha op(A) op(B) + *beta D (no batches).
void gemm_dev(cublasHandle_t h, cudaStream_t s, bool ta, bool tb, int M, int N, int K,
              const bf16* A, int lda, const bf16* B, int ldb, void* D, cudaDataType dt, int ldd,
              const float* alpha_dev, const float* beta_dev);

// ---- elementwise / copies ----
void f32_to_bf16(bf16* out, const float* in, size_t n, cudaStream_t s);
void fill_f32(float* out, float v, size_t n, cudaStream_t s);

// ---- embedding ----
// out[n,:] = wte[tok[n],:] + wpe[n % T,:] (wpe may be null)
void embedding_forward(float* out, const int32_t* tok, const float* wte, const float* wpe, int N,
                       int T, int d, cudaStream_t s);
// dwte[tok,:] += sum of dout rows with that token; rows grouped by token on the host:
// bucket u has token bucket_tok[u] and rows order[bucket_start[u] .. bucket_start[u+1]).
// dwpe[t,:] += sum_b dout[b*T+t,:] (dwpe may be null).
void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* bucket_tok,
                        const int32_t* bucket_start, const int32_t* order, int U, int B, int T,
                        int d, cudaStream_t s);

// ---- residual + norm (one pass) ----
// res = ca * a + (b + bias) / cdiv     (b null: res = a; ca, cdiv device scalars, null = 1)
// h   = ln_w ? LayerNorm(res) * ln_w + ln_b : res      (bf16; eps 1e-5; mean/rstd saved)
// res may alias a. d % 128 == 0 with 16-byte aligned rows: 16-byte accesses, row in registers.
void residual_norm_forward(float* res, bf16* h, float* mean, float* rstd, const float* a,
                           const float* ca, const float* b, const float* cdiv, const float* bias,
                           const float* ln_w, const float* ln_b, int N, int d, cudaStream_t s);
// dres += ln_w ? dLN/dx(dh) : dh;  dln_w += sum dh*xhat, dln_b += sum dh (ln_w only).
// scratch: >= norm_scratch_floats(N, d).
void norm_backward(float* dres, const float* dh, const float* x, const float* mean,
                   const float* rstd, const float* ln_w, float* dln_w, float* dln_b,
                   float* scratch, int N, int d, cudaStream_t s);
size_t norm_scratch_floats(int N, int d);

// ---- attention layout ----
// qkv [B,T,3d] (+ bias [3d]) -> q, k, v [B,H,T,dk]
void qkv_split(bf16* q, bf16* k, bf16* v, const bf16* qkv, const float* bias, int B, int T,
               int H, int dk, cudaStream_t s);
// dq, dk, dv [B,H,T,dk] -> dqkv [B,T,3d]
void qkv_merge(bf16* dqkv, const bf16* dq, const bf16* dkey, const bf16* dv, int B, int T, int H,
               int dk, cudaStream_t s);
// [B,H,T,dk] <-> [B,T,H*dk]
void heads_merge(bf16* y, const bf16* yh, int B, int T, int H, int dk, cudaStream_t s);
void heads_split(bf16* yh, const bf16* y, int B, int T, int H, int dk, cudaStream_t s);

// ---- rotary embeddings (pythia) ----
// q, k [B*H, T, dk]: the first R dims of every head rotated in GPT-NeoX's rotate_half layout,
// x1 = x[:R/2], x2 = x[R/2:R], angle t * base^(-2f/R) from the tables cos, sin [>= T, R/2]:
// x1' = x1 cos - x2 sin, x2' = x2 cos + x1 sin. inverse: the transpose rotation (backward).
void rotary(bf16* q, bf16* k, const float* cos, const float* sin, int BH, int T, int dk, int R,
            bool inverse, cudaStream_t s);

// ---- causal softmax with learnable temperature, row entropy and the entropy regularizer ----
// P: [B*H, T, T], in = raw scores q.k, out = probabilities (upper triangle written 0).
// logits z_ij = S_ij * scale / t[h,i] (t from the raw parameter temp[h*ctx+i], or 1 when
// temp is null). Per row: entropy E = -sum a ln(a + 1e-9) -> rowE; with theta (regularizer):
// delta = E - theta[h] * lnT, pen = |delta| > tol ? delta^2 : 0 -> pen, and
// gE = dLoss/dE = |delta| > tol ? coef * 2 * delta : 0 -> gE (coef = lambda * reduction).
struct AttnSoftmaxArgs {
  bf16* P = nullptr;
  int B = 0, H = 0, T = 0;
  float scale = 1;
  const float* temp = nullptr;
  int ctx = 0;
  TempParam temp_param = TempParam::none;
  float* rowE = nullptr;
  const float* theta = nullptr;
  float lnT = 0, tol = 0, coef = 0;
  float* pen = nullptr;
  float* gE = nullptr;
};
void attn_softmax_forward(const AttnSoftmaxArgs& a, cudaStream_t s);
// dP [B*H,T,T]: in = dLoss/dP from the product, out = dLoss/dS (scores). Adds the entropy
// regularizer's gradient (gE, may be null). dtemp_row [B*H*T]: d loss / d raw temp parameter
// for each row (null when temp is null).
struct AttnSoftmaxBwdArgs {
  bf16* dP = nullptr;
  const bf16* P = nullptr;
  int B = 0, H = 0, T = 0;
  float scale = 1;
  const float* temp = nullptr;
  int ctx = 0;
  TempParam temp_param = TempParam::none;
  const float* gE = nullptr;
  float* dtemp_row = nullptr;
};
void attn_softmax_backward(const AttnSoftmaxBwdArgs& a, cudaStream_t s);
// dtemp[h*ctx+i] += sum_b row[(b*H+h)*T+i]
void temp_grad_reduce(float* dtemp, const float* row, int B, int H, int T, int ctx,
                      cudaStream_t s);
// dtheta[h] += factor * sum_{b,i} gE[(b*H+h)*T+i]
// scratch >= H*T floats.
void theta_grad_reduce(float* dtheta, const float* gE, int B, int H, int T, float factor,
                       float* scratch, cudaStream_t s);

// ---- fused causal attention (FlashAttention-2 style, src/cuda/flash_attn.cu) ----
// Same function as qkv_split (+bias) -> QK^T -> attn_softmax_forward -> PV -> heads_merge, and
// the backward of that chain, without [B,H,T,T] buffers: probabilities are recomputed from the
// saved per-row log-sum-exp. Head dimension 64 only (flash_attn_supported); bf16 tensor cores
// (mma.sync m16n8k16), fp32 accumulation and softmax statistics.
// A strided view of [B, H, T, 64] bf16: element (b, h, t, c) at p[b*sb + h*sh + t*st + c]
// (q of a [B,T,3d] qkv buffer: p = qkv, sb = T*3d, sh = 64, st = 3d; k: p = qkv + d, ...).
struct HeadView {
  bf16* p = nullptr;
  long long sb = 0, sh = 0, st = 0;
};
struct FlashFwdArgs {
  HeadView q, k, v, o;  // o: output
  const float *bq = nullptr, *bk = nullptr, *bv = nullptr;  // [H*64] biases added on load (null: none)
  int B = 0, H = 0, T = 0;
  float scale = 1;
  const float* temp = nullptr;  // as AttnSoftmaxArgs
  int ctx = 0;
  TempParam temp_param = TempParam::none;
  float* lse = nullptr;   // [B*H*T] out: log-sum-exp of the row's logits (saved for backward)
  float* rowE = nullptr;  // [B*H*T] out: row entropy
  const float* theta = nullptr;  // regularizer (as AttnSoftmaxArgs): pen, gE out
  float lnT = 0, tol = 0, coef = 0;
  float* pen = nullptr;
  float* gE = nullptr;
  // T <= 128 runs one block per (batch, head) with the whole sequence in shared memory (the
  // backward in one kernel; Drow then unused); true forces the tiled kernels of longer
  // sequences (forward by 64-row tiles, backward in two kernels): tests, A/B timing.
  bool tiled = false;
};
// dk must be 64, every view's p 16-byte aligned and strides multiples of 8 elements.
bool flash_attn_supported(int dk);
void flash_attn_forward(const FlashFwdArgs& a, cudaStream_t s);
struct FlashBwdArgs {
  FlashFwdArgs f;           // the forward's inputs (q, k, v, o, biases, temp, lse, rowE)
  const float* gE = nullptr;  // regularizer dLoss/dE per row (null: none)
  HeadView dO;              // dLoss/dO
  HeadView dq, dk, dv;      // outputs (written, not accumulated)
  float* Drow = nullptr;    // [B*H*T] scratch: dO . O per row
  float* dtemp_row = nullptr;  // [B*H*T] out as AttnSoftmaxBwdArgs (null when temp is null)
  // [B * ceil(T/64)][3 H 64] out (null: none): per (batch, 64-row tile) column sums of dq, dk,
  // dv in the [B,T,3d] qkv column order, i.e. partials of the qkv bias gradient
  // (colsum_partials_final adds them up; flash_bias_partials gives the row count).
  float* dbias_part = nullptr;
};
inline int flash_bias_partials(int B, int T) { return B * ((T + 63) / 64); }
void flash_attn_backward(const FlashBwdArgs& a, cudaStream_t s);

// ---- FFN ----
// pre += bias (in place, bias may be null); out = act(pre). slope_dev (learnable leaky ReLU):
// the slope is read from device memory instead of `slope`.
void bias_act_forward(bf16* pre, bf16* out, const float* bias, int N, int F, Act act,
                      float slope, cudaStream_t s, const float* slope_dev = nullptr);
// dpre = dout * act'(pre)  (dpre may alias dout)
void act_backward(bf16* dpre, const bf16* dout, const bf16* pre, int N, int F, Act act,
                  float slope, cudaStream_t s, const float* slope_dev = nullptr);
// act_backward and (dbias non-null) dbias[c] += sum_n dpre[n, c] in one pass over the data
// (F % 8 == 0 and 16-byte aligned rows; otherwise act_backward then colsum). scratch >=
// colsum_scratch_floats(N, F).
void act_backward_bias(bf16* dpre, const bf16* dout, const bf16* pre, float* dbias, int N, int F,
                       Act act, float slope, float* scratch, cudaStream_t s,
                       const float* slope_dev = nullptr);
// out = bf16(in) [N, C] and (dbias non-null) dbias[c] += sum_n in[n, c], one pass.
void cast_colsum(bf16* out, const float* in, float* dbias, int N, int C, float* scratch,
                 cudaStream_t s);
// Learnable leaky ReLU: *dslope += sum_i dout_i * min(pre_i, 0) over n elements (call before
// act_backward when dpre aliases dout). scratch >= 256 floats.
void leaky_slope_grad(float* dslope, const bf16* dout, const bf16* pre, size_t n, float* scratch,
                      cudaStream_t s);
// FFN scaling x_out = beta * xhat + (m + bm) / alpha, backward:
// dm = dres / alpha (bf16), dbeta += sum dres*xhat, dalpha += -sum dres*(m+bm)/alpha^2,
// then dres *= beta (it becomes d loss / d xhat); dbias (optional): += column sums of dm (the
// FFN output bias's gradient), in the same pass when d % 8 == 0 (16-byte path).
// scale_dres false: dres is left as it is (read only; the caller applies beta, e.g. as the
// beta of the next product that accumulates into dres: gemm_dev).
// scratch >= ffn_scale_scratch_floats(N, d).
void ffn_scale_backward(bf16* dm, float* dres, const float* xhat, const float* m,
                        const float* bm, const float* alpha, const float* beta, float* dalpha,
                        float* dbeta, float* scratch, int N, int d, cudaStream_t s,
                        float* dbias = nullptr, bool scale_dres = true);
size_t ffn_scale_scratch_floats(int N, int d);

// ---- weight / spectral normalization of a linear's weight [O, I] (docs/model.md) ----
// Weight norm, rows r0 <= o < r1: w_eff = g_o v_o / ||v_o||, norms[o] = ||v_o||; other rows
// w_eff = v (norms 0). w_eff in bf16 for the matrix products.
void weight_norm_forward(bf16* w_eff, float* norms, const float* g, const float* v, int O, int I,
                         int r0, int r1, cudaStream_t s);
// G = dLoss/dw_eff: rows in [r0, r1): dg_o += G_o.v_o/|v_o|, dv_o += (g_o/|v_o|)(G_o -
// (G_o.v_o/|v_o|^2) v_o); other rows dv += G.
void weight_norm_backward(float* dg, float* dv, const float* G, const float* g, const float* v,
                          const float* norms, int O, int I, int r0, int r1, cudaStream_t s);
// Spectral norm of W [h, I] with the power-iteration vector u [h]: v = normalize(W^T u)
// (-> v [I]); iterate: u = normalize(W v) (u updated in place); sigma = u^T W v (-> *sigma);
// w_eff = bf16(W * (1/sigma)). wv: scratch [h].
void spectral_norm_forward(bf16* w_eff, float* u, float* v, float* sigma, float* wv,
                           const float* W, int h, int I, bool iterate, cudaStream_t s);
// dW += G/sigma - (sum G.W / sigma^2) u v^T. scratch >= 257 floats.
void spectral_norm_backward(float* dW, const float* G, const float* W, const float* u,
                            const float* v, const float* sigma, int h, int I, float* scratch,
                            cudaStream_t s);
// dst += src (n floats)
void add_f32(float* dst, const float* src, size_t n, cudaStream_t s);
// dst += float(src) (n elements; a bf16 bias gradient into the fp32 gradient)
void add_bf16_f32(float* dst, const bf16* src, int n, cudaStream_t s);

// ---- reductions ----
// out[c] += scale * sum_n in[n*C + c]; scratch >= colsum_scratch_floats(N, C).
void colsum(float* out, const bf16* in, int N, int C, float* scratch, cudaStream_t s);
size_t colsum_scratch_floats(int N, int C);
// out[c] += sum_k partials[k * C + c], k < nchunk (fixed order)
void colsum_partials_final(float* out, const float* partials, int nchunk, int C, cudaStream_t s);
// *out = sum in[0..n) (block partials, then a fixed-order sum); scratch >= 256 floats.
void sum_f32(float* out, const float* in, size_t n, float* scratch, cudaStream_t s);
// out[j] = sum in[j][0..n) for j < count (as sum_f32 on each, bit-identical; two launches per
// 16 arrays); scratch >= sum_f32_segs_scratch_floats(count).
void sum_f32_segs(float* out, const float* const* in, int count, size_t n, float* scratch,
                  cudaStream_t s);
size_t sum_f32_segs_scratch_floats(int count);
// out = sqrt(sum x^2) over n; clip (if max_norm > 0): *scale_out = min(1, max_norm/(norm+1e-6))
// scratch >= 1024 floats.
void grad_norm(float* norm_out, float* scale_out, const float* g, size_t n, float max_norm,
               float* scratch, cudaStream_t s);

// ---- loss ----
// logits [N, ldV] (first V columns used); in place -> dlogits = (softmax - onehot) * dscale
// when want_grad (columns V..ldV zeroed). loss_row[n] = logsumexp - z[target].
void cross_entropy_forward_backward(bf16* logits, float* loss_row, const int32_t* targets,
                                    int N, int V, int ldV, float dscale, bool want_grad,
                                    cudaStream_t s);

// ---- optimizer ----
// AdamW (decoupled decay, bias-corrected) on the whole arena; decay_mask[i] = 1 for decayed
// elements; grads are multiplied by *grad_scale (clip) first. Writes the bf16 shadow too.
// skip (optional, device): when *skip != 0 the kernel changes nothing (the NaN guard).
void adamw(float* p, bf16* p16, const float* g, float* m, float* v, const uint8_t* decay_mask,
           size_t n, float lr, float beta1, float beta2, float eps, float wd, int step,
           const float* grad_scale, cudaStream_t s, const int* skip = nullptr);
// *flag = 1 if any of x[0..n) is not finite (else *flag is left as it is: a sticky flag).
void flag_nonfinite(int* flag, const float* x, int n, cudaStream_t s);

}  // namespace aero::cuda
