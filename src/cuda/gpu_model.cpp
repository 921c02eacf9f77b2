// GPU model: parameter arena, activations allocated once, forward and backward that read top to
// bottom like the math (SPEC sections 2-3), AdamW with clipping, checkpoints, data parallel.
#include "cuda/gpu_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdlib>
#include <numeric>

#include "core/rng.h"
#include "core/safetensors.h"
#include "cuda/common.h"
#include "cuda/kernels.h"
#include "cuda/lt_gemm.h"

#ifdef AERO_HAVE_NCCL
#include <nccl.h>
#endif

namespace aero::cuda {

using model::Activation;
using model::FfnKind;
using model::ModelConfig;
using model::Norm;

std::string gpu_unsupported(const ModelConfig& c) {
  auto no = [](const std::string& s) { return "not supported on GPU yet: " + s; };
  if (c.n_layer < 1 || c.d_model % c.n_head != 0) return no("model.n_layer < 1 or d_model % n_head");
  return "";
}

namespace {
constexpr size_t kNone = size_t(-1);

template <typename T>
T* dalloc(size_t n) {
  void* p = nullptr;
  if (n == 0) n = 1;
  AERO_CUDA_CHECK(cudaMalloc(&p, n * sizeof(T)));
  return static_cast<T*>(p);
}

// A linear layer's arena entries and its reparameterization (docs/model.md): the matrix
// products use the bf16 shadow of `weight`, or the effective weight weff recomputed each
// forward under weight / spectral normalization.
struct Lin {
  size_t w = kNone, g = kNone, b = kNone, u = kNone;  // w: weight, or weight_v under WN
  int out = 0, in = 0;
  bool wn = false, sn = false;
  int r0 = 0, r1 = 0;  // WN rows
  int nsub = 1;        // SN sub-matrices (3 for qkv), each out/nsub rows
  bool sn_on[3] = {false, false, false};
  bf16* weff = nullptr;  // WN / SN only
  float* aux = nullptr;  // WN: norms [out]; SN: v [nsub*in], sigma [nsub], W v [out/nsub]
};

struct LayerOffsets {
  size_t ln1w = kNone, ln1b = kNone, temp = kNone, ln2w = kNone, ln2b = kNone, alpha = kNone,
         beta = kNone, slope = kNone;
  Lin qkv, proj, fc, fproj, fused;
  size_t begin = 0, end = 0;  // arena range (NCCL bucket)
};

struct LayerActs {
  float* res = nullptr;  // input residual res[l] (fp32)
  bf16* h1 = nullptr;
  float *mean1 = nullptr, *rstd1 = nullptr;
  bf16 *q = nullptr, *k = nullptr, *v = nullptr;
  bf16* P = nullptr;
  float *rowE = nullptr, *gE = nullptr, *pen = nullptr;
  float* lse = nullptr;  // fused attention: per-row log-sum-exp (P is not kept)
  bf16* y = nullptr;
  float* xhat = nullptr;
  bf16* h2 = nullptr;
  float *mean2 = nullptr, *rstd2 = nullptr;
  bf16 *pre = nullptr, *f = nullptr;
  float* m = nullptr;
};
}  // namespace

GpuLayout gpu_param_layout(const ModelConfig& cfg) {
  GpuLayout lay;
  const int L = cfg.n_layer, H = cfg.n_head, d = cfg.d_model, dff = cfg.d_ff;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, bool decay,
                 bool trainable = true) {
    GpuParam q;
    q.name = name;
    q.shape = shape;
    q.size = 1;
    for (auto s : shape) q.size *= size_t(s);
    // 64-element (128-byte bf16) alignment of every tensor: cuBLAS's fast kernels need 16-byte
    // aligned operands; the gaps stay zero (never written, no gradient, no decay).
    lay.size = (lay.size + 63) / 64 * 64;
    q.offset = lay.size;
    q.decay = decay;
    q.trainable = trainable;
    lay.size += q.size;
    lay.params.push_back(q);
  };
  // A linear: weight (or weight_g + weight_v under weight norm), the spectral-norm buffer u
  // ([nsub, out/nsub], no gradient), bias.
  auto linear = [&](const std::string& nm, int out, int in, bool wn, bool sn, int nsub) {
    if (wn) {
      add(nm + ".weight_g", {out}, false);
      add(nm + ".weight_v", {out, in}, true);
    } else {
      add(nm + ".weight", {out, in}, true);
    }
    if (sn) add(nm + ".sn_u", {nsub, out / nsub}, false, false);
    if (cfg.bias) add(nm + ".bias", {out}, false);
  };
  const auto& wn = cfg.weight_norm;
  const auto& sn = cfg.spectral_norm;
  const bool learn_slope = cfg.ffn_act == Activation::learnable_leaky_relu &&
                           cfg.ffn_kind == FfnKind::standard;
  // Blocks first, then [ffn_slope, ln_f, lm_head, theta, wte, wpe]: each block is one
  // contiguous range, so data parallel can all-reduce it as soon as its backward is done; the
  // tail goes last.
  for (int l = 0; l < L; ++l) {
    std::string b = "blocks." + std::to_string(l) + ".";
    if (cfg.norm == Norm::layernorm) {
      add(b + "ln1.weight", {d}, false);
      add(b + "ln1.bias", {d}, false);
    }
    linear(b + "attn.qkv", 3 * d, d, wn.qk || wn.v, sn.qk || sn.v, 3);
    linear(b + "attn.proj", d, d, wn.o, sn.o, 1);
    if (cfg.temperature) add(b + "attn.temp", {H, cfg.context}, false);
    if (cfg.has_ffn(l)) {
      if (cfg.norm == Norm::layernorm) {
        add(b + "ln2.weight", {d}, false);
        add(b + "ln2.bias", {d}, false);
      }
      if (cfg.ffn_kind == FfnKind::standard) {
        linear(b + "ffn.fc", dff, d, wn.ffn, sn.ffn, 1);
        linear(b + "ffn.proj", d, dff, wn.ffn, sn.ffn, 1);
        if (learn_slope && cfg.slope_scope == model::SlopeScope::per_layer)
          add(b + "ffn.slope", {1}, false);
      } else {
        linear(b + "ffn.fused", d, d, wn.ffn, sn.ffn, 1);
      }
      if (cfg.ffn_scaling) {
        add(b + "ffn_scale.alpha", {1}, false);
        add(b + "ffn_scale.beta", {1}, false);
      }
    }
  }
  if (learn_slope && cfg.slope_scope == model::SlopeScope::global) add("ffn_slope", {1}, false);
  if (cfg.final_norm) {
    add("ln_f.weight", {d}, false);
    add("ln_f.bias", {d}, false);
  }
  // The output head's matrix (lm_head, or wte when tied) is followed by zero rows up to the
  // padded vocabulary ldV = V rounded up to 64: the LM-head products run at ldV (an odd V such
  // as GPT-2's 50257 makes cuBLAS pick slow kernels); the zero rows give zero logits, which
  // the cross-entropy ignores, and zero gradient rows, so the gap stays zero like the others.
  const size_t pad_rows = size_t((cfg.vocab_size + 63) / 64 * 64 - cfg.vocab_size);
  if (!cfg.tie_embeddings) {
    add("lm_head.weight", {cfg.vocab_size, d}, true);
    lay.size += pad_rows * d;
  }
  if (cfg.entropy_reg.enabled) add("entropy_theta", {L, H}, false);
  add("wte", {cfg.vocab_size, d}, true);
  if (cfg.tie_embeddings) lay.size += pad_rows * d;
  if (cfg.has_positions()) add("wpe", {cfg.context, d}, true);
  lay.size = (lay.size + 63) / 64 * 64;
  return lay;
}

struct GpuModel::Impl {
  ModelConfig cfg;
  int Bmax, Tmax, L, H, d, dk, V, ldV, dff;
  int device;
  cudaStream_t stream = nullptr, comm_stream = nullptr;
  cublasHandle_t blas = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  std::vector<GpuParam> params;
  size_t n = 0;
  std::vector<LayerOffsets> lo;
  size_t wte = kNone, wpe = kNone, lnfw = kNone, lnfb = kNone, theta = kNone, lm_head = kNone;
  size_t tail_begin = 0;  // [ffn_slope, lnf, lm_head, theta, wte, wpe] bucket
  int R = 0;              // rotary dims per head (pythia)
  // Fused (flash) attention for head dimension 64 (flash_attn.cu); AERO_GPU_ATTN=plain selects
  // the explicit path (scores and probabilities in [B,H,T,T] buffers). Without rotary the
  // layer's qkv product output is kept ([B,T,3d] in acts.q) and read by the kernels directly.
  // AERO_GPU_ATTN=tiled keeps the tiled kernels (FlashFwdArgs::tiled) also at T <= 128.
  bool flash = false, flash_tiled = false;
  float* Drow = nullptr;  // fused backward: dO . O per row
  float* qkv_bpart = nullptr;  // fused backward: partial column sums of dqkv (qkv bias gradient)
  float *rot_cos = nullptr, *rot_sin = nullptr;  // [Tmax, R/2]
  float* dweff = nullptr;  // dLoss/d effective weight of one WN/SN linear at a time
  // cuBLASLt epilogues (lt_gemm.h): bias + GELU with the GELU input kept (forward), GELU
  // derivative + bias gradient (backward), bias gradients inside the weight-gradient products.
  // AERO_GPU_LT: a comma list of gelu (forward bias + GELU, the default), bias (the fc bias
  // added by the product, the activation kernel then writes f only), dgelu (backward), bgrad
  // (bias gradients in the weight-gradient products); "all", or "off" for none. dgelu and
  // bgrad ran slower than the kernels on the H200 (docs/benchmarks.md), so only gelu is on by
  // default. A product cuBLASLt has no algorithm for runs the unfused path.
  LtGemm* lt = nullptr;
  bool lt_gelu_fwd = false, lt_bias_fwd = false, lt_dgelu = false, lt_bgrad = false;
  float* bgrad = nullptr;    // [max(3d, dff)] fp32 bias gradient of one product
  bf16* bgrad16 = nullptr;   // [dff] bf16 bias gradient of the GELU-derivative product
  bool sn_frozen = false;
  std::vector<void*> extra;  // further device allocations, freed at the end
  float *p = nullptr, *g = nullptr, *mom1 = nullptr, *mom2 = nullptr;
  bf16* p16 = nullptr;
  uint8_t* mask = nullptr;

  std::vector<LayerActs> acts;
  float* res_final = nullptr;
  bf16* hf = nullptr;
  float *meanf = nullptr, *rstdf = nullptr;
  bf16* logits = nullptr;
  float* loss_rows = nullptr;
  bf16 *qkv = nullptr, *yh = nullptr;
  float* o = nullptr;
  float* m_scratch = nullptr;  // FFN output when not kept per layer
  // backward scratch
  float *dres = nullptr, *dh = nullptr;
  bf16 *dm = nullptr, *df = nullptr, *dy = nullptr, *dyh = nullptr, *dq = nullptr, *dkk = nullptr,
       *dv = nullptr, *dP = nullptr, *dqkv = nullptr;
  float* dtemp_row = nullptr;
  float* scratch = nullptr;
  size_t scratch_n = 0;
  float* scalars = nullptr;  // [0] ce sum, [1] grad norm, [2] clip scale, [3] forward_async extra, [8..8+L) pen sums
  // FFN scaling, no LN2: beta applied as the beta of the FFN input-gradient product that
  // accumulates into dres (device scalars: one_dev = 1, the parameter beta) instead of a
  // dres *= beta pass inside ffn_scale_backward. AERO_GPU_FFN_BETA=kernel keeps the pass.
  bool beta_in_gemm = true;
  float* one_dev = nullptr;
  int32_t *tok = nullptr, *tgt = nullptr, *btok = nullptr, *bstart = nullptr, *border = nullptr;
  int U = 0;
  std::vector<int32_t> count;  // host scratch of the bucket sort
  std::vector<const float*> pen_ptrs;  // the layers' penalty rows (loss sums)
  // Pinned host staging of a forward's inputs (tokens, targets, the embedding-backward buckets),
  // so that the copies are asynchronous: a ring of 3, each reused once the copies that read it
  // have run (its event).
  struct Stage {
    int32_t *tok = nullptr, *tgt = nullptr, *btok = nullptr, *bstart = nullptr, *border = nullptr;
    cudaEvent_t copied = nullptr;
  };
  Stage stages[3];
  int stage_next = 0;
  float* hsums = nullptr;  // pinned: the synchronous forward's loss sums
  int* guard = nullptr;    // device: the NaN guard's sticky flag (forward_async, optimizer_step_async)
  std::vector<cudaEvent_t> fences;  // ring of fence events
  uint64_t fence_next = 0;
  std::vector<void*> host_allocs;  // pinned host memory handed out by host_buffer()
  // last forward
  int B = 0, T = 0;
  bool trained_forward = false, has_targets = false;
  float grad_scale = 1.f;
  // data parallel
  void* comm = nullptr;
  int world = 1;
  std::vector<cudaEvent_t> layer_done;
  cudaEvent_t comm_done = nullptr;

  // Optional per-op timing (AERO_GPU_PROFILE=1): events between ops, summed per op name.
  bool prof = false;
  std::vector<std::pair<const char*, cudaEvent_t>> marks;
  size_t nmarks = 0;
  std::map<std::string, double> prof_ms;
  void mark(const char* name) {
    if (!prof) return;
    if (nmarks == marks.size()) {
      cudaEvent_t e;
      AERO_CUDA_CHECK(cudaEventCreate(&e));
      marks.push_back({name, e});
    }
    marks[nmarks].first = name;
    AERO_CUDA_CHECK(cudaEventRecord(marks[nmarks].second, stream));
    ++nmarks;
  }
  void prof_collect() {
    if (!prof) return;
    AERO_CUDA_CHECK(cudaStreamSynchronize(stream));
    for (size_t i = 1; i < nmarks; ++i) {
      float t = 0;
      AERO_CUDA_CHECK(cudaEventElapsedTime(&t, marks[i - 1].second, marks[i].second));
      prof_ms[marks[i].first] += t;
    }
    nmarks = 0;
    mark("start");
  }

  // The fields AttnSoftmaxArgs and FlashFwdArgs share (shape, scale, temperature, rowE).
  template <class Args>
  void set_attention(Args& x, int l, int B, int T) const {
    x.B = B;
    x.H = H;
    x.T = T;
    x.scale = 1.f / std::sqrt(float(dk));
    x.temp = P_(lo[l].temp);
    x.ctx = cfg.context;
    x.temp_param = temp_param();
    x.rowE = acts[l].rowE;
  }
  // The entropy regularizer's fields of AttnSoftmaxArgs / FlashFwdArgs for layer l.
  template <class Args>
  void set_regularizer(Args& x, int l, float lnT, float coef) const {
    x.theta = P_(theta) + size_t(l) * H;
    x.lnT = lnT;
    x.tol = float(cfg.entropy_reg.gamma) * lnT;
    x.coef = coef;
    x.pen = acts[l].pen;
    x.gE = acts[l].gE;
  }
  // [B, H, T, dk] buffer as a HeadView
  HeadView head_major(bf16* p, int T) const {
    return HeadView{p, (long long)H * T * dk, (long long)T * dk, dk};
  }
  // The fused attention's inputs of layer l (q, k, v, output y, biases, temperature, saved
  // statistics); the regularizer's fields are set by the forward.
  FlashFwdArgs flash_args(int l, int B, int T) const {
    const LayerActs& a = acts[l];
    const LayerOffsets& w = lo[l];
    FlashFwdArgs f;
    if (R == 0) {
      const long long sb = (long long)T * 3 * d;
      f.q = HeadView{a.q, sb, dk, 3 * d};
      f.k = HeadView{a.q + d, sb, dk, 3 * d};
      f.v = HeadView{a.q + 2 * d, sb, dk, 3 * d};
      if (w.qkv.b != kNone) {
        f.bq = P_(w.qkv.b);
        f.bk = f.bq + d;
        f.bv = f.bq + 2 * d;
      }
    } else {  // split (bias added) and rotated by qkv_split / rotary
      f.q = head_major(a.q, T);
      f.k = head_major(a.k, T);
      f.v = head_major(a.v, T);
    }
    f.o = HeadView{a.y, (long long)T * d, dk, d};
    set_attention(f, l, B, T);
    f.lse = a.lse;
    f.tiled = flash_tiled;
    return f;
  }

  float* P_(size_t off) const { return off == kNone ? nullptr : p + off; }
  float* G_(size_t off) const { return off == kNone ? nullptr : g + off; }
  bf16* W_(size_t off) const { return off == kNone ? nullptr : p16 + off; }

  void layout() {
    GpuLayout lay = gpu_param_layout(cfg);
    params = lay.params;
    n = lay.size;
    auto off = [&](const std::string& nm) {
      for (auto& q : params)
        if (q.name == nm) return q.offset;
      return kNone;
    };
    lo.resize(L);
    const auto& wn = cfg.weight_norm;
    const auto& sn = cfg.spectral_norm;
    auto lin = [&](Lin& x, const std::string& nm, int out, int in, bool wn_on, int r0, int r1,
                   int nsub, bool s0, bool s1, bool s2) {
      x.w = off(nm + ".weight");
      if (x.w == kNone) x.w = off(nm + ".weight_v");
      if (x.w == kNone) return;  // absent (other FFN kind, pruned layer)
      x.g = off(nm + ".weight_g");
      x.b = off(nm + ".bias");
      x.u = off(nm + ".sn_u");
      x.out = out;
      x.in = in;
      x.wn = wn_on;
      x.r0 = r0;
      x.r1 = r1;
      x.sn = x.u != kNone;
      x.nsub = x.sn ? nsub : 1;
      x.sn_on[0] = s0;
      x.sn_on[1] = s1;
      x.sn_on[2] = s2;
    };
    for (int l = 0; l < L; ++l) {
      auto& o_ = lo[l];
      std::string b = "blocks." + std::to_string(l) + ".";
      o_.ln1w = off(b + "ln1.weight");
      o_.ln1b = off(b + "ln1.bias");
      lin(o_.qkv, b + "attn.qkv", 3 * d, d, wn.qk || wn.v, wn.qk ? 0 : 2 * d, wn.v ? 3 * d : 2 * d,
          3, sn.qk, sn.qk, sn.v);
      lin(o_.proj, b + "attn.proj", d, d, wn.o, 0, d, 1, sn.o, false, false);
      o_.temp = off(b + "attn.temp");
      o_.ln2w = off(b + "ln2.weight");
      o_.ln2b = off(b + "ln2.bias");
      lin(o_.fc, b + "ffn.fc", dff, d, wn.ffn, 0, dff, 1, sn.ffn, false, false);
      lin(o_.fproj, b + "ffn.proj", d, dff, wn.ffn, 0, d, 1, sn.ffn, false, false);
      lin(o_.fused, b + "ffn.fused", d, d, wn.ffn, 0, d, 1, sn.ffn, false, false);
      o_.alpha = off(b + "ffn_scale.alpha");
      o_.beta = off(b + "ffn_scale.beta");
      o_.slope = off(b + "ffn.slope");
      if (o_.slope == kNone) o_.slope = off("ffn_slope");
      // the layer's contiguous arena range (its NCCL bucket)
      o_.begin = n, o_.end = 0;
      for (auto& q : params)
        if (q.name.compare(0, b.size(), b) == 0) {
          o_.begin = std::min(o_.begin, q.offset);
          o_.end = std::max(o_.end, q.offset + q.size);
        }
    }
    lnfw = off("ln_f.weight");
    lnfb = off("ln_f.bias");
    theta = off("entropy_theta");
    wte = off("wte");
    wpe = off("wpe");
    lm_head = off("lm_head.weight");
    tail_begin = lo[L - 1].end;  // the tail follows the blocks
  }

  void allocate() {
    p = dalloc<float>(n);
    g = dalloc<float>(n);
    mom1 = dalloc<float>(n);
    mom2 = dalloc<float>(n);
    p16 = dalloc<bf16>(n);
    mask = dalloc<uint8_t>(n);
    AERO_CUDA_CHECK(cudaMemset(g, 0, n * sizeof(float)));
    AERO_CUDA_CHECK(cudaMemset(mom1, 0, n * sizeof(float)));
    AERO_CUDA_CHECK(cudaMemset(mom2, 0, n * sizeof(float)));
    std::vector<uint8_t> hm(n, 0);
    for (auto& q : params)
      if (q.decay && q.trainable) std::fill(hm.begin() + q.offset, hm.begin() + q.offset + q.size, 1);
    AERO_CUDA_CHECK(cudaMemcpy(mask, hm.data(), n, cudaMemcpyHostToDevice));
    AERO_CUDA_CHECK(cudaDeviceSynchronize());

    size_t N = size_t(Bmax) * Tmax, BHT = size_t(Bmax) * H * Tmax;
    // model::ModelConfig::rotary_dims (config.cpp is not part of the standalone build)
    R = cfg.family == model::Family::pythia ? int(dk * cfg.rotary_pct) : 0;
    R -= R % 2;
    const char* attn_env = std::getenv("AERO_GPU_ATTN");
    flash = flash_attn_supported(dk) && !(attn_env && std::string(attn_env) == "plain");
    flash_tiled = attn_env && std::string(attn_env) == "tiled";
    acts.resize(L);
    bool reg = cfg.entropy_reg.enabled;
    for (int l = 0; l < L; ++l) {
      auto& a = acts[l];
      a.res = dalloc<float>(N * d);
      a.h1 = dalloc<bf16>(N * d);
      a.mean1 = dalloc<float>(N);
      a.rstd1 = dalloc<float>(N);
      if (flash && R == 0) {
        a.q = dalloc<bf16>(N * 3 * d);  // the layer's qkv [B,T,3d] (bias added on load)
      } else {
        a.q = dalloc<bf16>(N * d);
        a.k = dalloc<bf16>(N * d);
        a.v = dalloc<bf16>(N * d);
      }
      if (flash)
        a.lse = dalloc<float>(BHT);
      else
        a.P = dalloc<bf16>(BHT * Tmax);
      a.rowE = dalloc<float>(BHT);
      if (reg) {
        a.gE = dalloc<float>(BHT);
        a.pen = dalloc<float>(BHT);
      }
      a.y = dalloc<bf16>(N * d);
      if (cfg.has_ffn(l)) {
        a.xhat = dalloc<float>(N * d);
        a.h2 = dalloc<bf16>(N * d);
        a.mean2 = dalloc<float>(N);
        a.rstd2 = dalloc<float>(N);
        if (cfg.ffn_kind == FfnKind::standard) {
          a.pre = dalloc<bf16>(N * dff);
          a.f = dalloc<bf16>(N * dff);
        }
        if (cfg.ffn_scaling) a.m = dalloc<float>(N * d);
      }
    }
    res_final = dalloc<float>(N * d);
    hf = dalloc<bf16>(N * d);
    meanf = dalloc<float>(N);
    rstdf = dalloc<float>(N);
    logits = dalloc<bf16>(N * ldV);
    loss_rows = dalloc<float>(N);
    qkv = dalloc<bf16>(N * 3 * d);
    yh = dalloc<bf16>(N * d);
    o = dalloc<float>(N * d);
    m_scratch = dalloc<float>(N * d);
    dres = dalloc<float>(N * d);
    dh = dalloc<float>(N * d);
    dm = dalloc<bf16>(N * d);
    if (cfg.ffn_kind == FfnKind::standard) df = dalloc<bf16>(N * dff);
    dy = dalloc<bf16>(N * d);
    dyh = dalloc<bf16>(N * d);
    dq = dalloc<bf16>(N * d);
    dkk = dalloc<bf16>(N * d);
    dv = dalloc<bf16>(N * d);
    if (flash) {
      Drow = dalloc<float>(BHT);
      if (R == 0) {
        qkv_bpart = dalloc<float>(size_t(flash_bias_partials(Bmax, Tmax)) * 3 * d);
        extra.push_back(qkv_bpart);
      }
    } else {
      dP = dalloc<bf16>(BHT * Tmax);
    }
    dqkv = dalloc<bf16>(N * 3 * d);
    dtemp_row = dalloc<float>(BHT);
    // weight / spectral normalization: effective weights, their statistics, one dW scratch
    size_t dweff_n = 0;
    for (auto& w : lo)
      for (Lin* x : {&w.qkv, &w.proj, &w.fc, &w.fproj, &w.fused}) {
        if (x->w == kNone || (!x->wn && !x->sn)) continue;
        x->weff = dalloc<bf16>(size_t(x->out) * x->in);
        size_t na = x->wn ? size_t(x->out) : size_t(x->nsub) * x->in + x->nsub + x->out / x->nsub;
        x->aux = dalloc<float>(na);
        extra.push_back(x->weff);
        extra.push_back(x->aux);
        dweff_n = std::max(dweff_n, size_t(x->out) * x->in);
      }
    if (dweff_n) dweff = dalloc<float>(dweff_n);
    if (R > 0) {
      // cos/sin of t * base^(-2f/R) in double, rounded (as the CPU model's table)
      const int half = R / 2;
      std::vector<float> hc(size_t(Tmax) * half), hs_(size_t(Tmax) * half);
      for (int t = 0; t < Tmax; ++t)
        for (int f = 0; f < half; ++f) {
          double inv = std::pow(cfg.rotary_base, -2.0 * f / R);
          hc[size_t(t) * half + f] = float(std::cos(t * inv));
          hs_[size_t(t) * half + f] = float(std::sin(t * inv));
        }
      rot_cos = dalloc<float>(hc.size());
      rot_sin = dalloc<float>(hs_.size());
      AERO_CUDA_CHECK(cudaMemcpy(rot_cos, hc.data(), hc.size() * 4, cudaMemcpyHostToDevice));
      AERO_CUDA_CHECK(cudaMemcpy(rot_sin, hs_.data(), hs_.size() * 4, cudaMemcpyHostToDevice));
    }
    scratch_n = std::max({norm_scratch_floats(int(N), d), colsum_scratch_floats(int(N), 3 * d),
                          colsum_scratch_floats(int(N), dff), size_t(H) * Tmax, size_t(4096),
                          ffn_scale_scratch_floats(int(N), d),
                          sum_f32_segs_scratch_floats(std::min(L, 16))});
    scratch = dalloc<float>(scratch_n);
    const std::string lt_env = std::getenv("AERO_GPU_LT") ? std::getenv("AERO_GPU_LT") : "gelu";
    auto lt_on = [&](const char* what) {
      return lt_env == "all" || ("," + lt_env + ",").find(std::string(",") + what + ",") !=
                                    std::string::npos;
    };
    lt_gelu_fwd = lt_on("gelu");
    lt_bias_fwd = lt_on("bias");
    lt_dgelu = lt_on("dgelu");
    lt_bgrad = lt_on("bgrad");
    if (lt_gelu_fwd || lt_bias_fwd || lt_dgelu || lt_bgrad) {
      lt = lt_create();
      bgrad = dalloc<float>(std::max(3 * d, dff));
      bgrad16 = dalloc<bf16>(std::max(dff, 8));
      extra.push_back(bgrad);
      extra.push_back(bgrad16);
    }
    scalars = dalloc<float>(8 + L);
    {
      const char* fb = std::getenv("AERO_GPU_FFN_BETA");
      beta_in_gemm = !(fb && std::string(fb) == "kernel");
      one_dev = dalloc<float>(1);
      extra.push_back(one_dev);
      const float one = 1.f;
      AERO_CUDA_CHECK(cudaMemcpy(one_dev, &one, sizeof(float), cudaMemcpyHostToDevice));
    }
    tok = dalloc<int32_t>(N);
    tgt = dalloc<int32_t>(N);
    btok = dalloc<int32_t>(N);
    bstart = dalloc<int32_t>(N + 1);
    border = dalloc<int32_t>(N);
    for (auto& st : stages) {
      void* q = nullptr;
      AERO_CUDA_CHECK(cudaMallocHost(&q, (5 * N + 1) * sizeof(int32_t)));
      host_allocs.push_back(q);
      st.tok = static_cast<int32_t*>(q);
      st.tgt = st.tok + N;
      st.btok = st.tgt + N;
      st.border = st.btok + N;
      st.bstart = st.border + N;  // N + 1
      AERO_CUDA_CHECK(cudaEventCreateWithFlags(&st.copied, cudaEventDisableTiming));
    }
    {
      void* q = nullptr;
      AERO_CUDA_CHECK(cudaMallocHost(&q, (8 + L) * sizeof(float)));
      host_allocs.push_back(q);
      hsums = static_cast<float*>(q);
    }
    guard = dalloc<int>(1);
    AERO_CUDA_CHECK(cudaMemset(guard, 0, sizeof(int)));
    fences.resize(16);
    for (auto& e : fences) AERO_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    AERO_CUDA_CHECK(cudaDeviceSynchronize());  // the memsets above ran on the legacy stream
  }

  void free_all() {
    auto f = [](void* q) {
      if (q) cudaFree(q);
    };
    for (auto& a : acts)
      for (void* q : {(void*)a.res, (void*)a.h1, (void*)a.mean1, (void*)a.rstd1, (void*)a.q,
                      (void*)a.k, (void*)a.v, (void*)a.P, (void*)a.rowE, (void*)a.gE, (void*)a.pen,
                      (void*)a.lse, (void*)a.y, (void*)a.xhat, (void*)a.h2, (void*)a.mean2, (void*)a.rstd2,
                      (void*)a.pre, (void*)a.f, (void*)a.m})
        f(q);
    for (void* q : {(void*)p, (void*)g, (void*)mom1, (void*)mom2, (void*)p16, (void*)mask,
                    (void*)res_final, (void*)hf, (void*)meanf, (void*)rstdf, (void*)logits,
                    (void*)loss_rows, (void*)qkv, (void*)yh, (void*)o, (void*)m_scratch,
                    (void*)dres, (void*)dh, (void*)dm, (void*)df, (void*)dy, (void*)dyh,
                    (void*)dq, (void*)dkk, (void*)dv, (void*)dP, (void*)Drow, (void*)dqkv, (void*)dtemp_row,
                    (void*)scratch, (void*)scalars, (void*)tok, (void*)tgt, (void*)btok,
                    (void*)bstart, (void*)border, (void*)dweff, (void*)rot_cos, (void*)rot_sin,
                    (void*)guard})
      f(q);
    for (void* q : extra) f(q);
    for (void* q : host_allocs) cudaFreeHost(q);
    for (auto& st : stages)
      if (st.copied) cudaEventDestroy(st.copied);
    for (auto e : fences) cudaEventDestroy(e);
    for (auto e : layer_done) cudaEventDestroy(e);
    if (comm_done) cudaEventDestroy(comm_done);
    if (blas) cublasDestroy(blas);
    lt_destroy(lt);
    f(workspace);
    if (stream) cudaStreamDestroy(stream);
    if (comm_stream) cudaStreamDestroy(comm_stream);
  }

  TempParam temp_param() const {
    if (!cfg.temperature) return TempParam::none;
    switch (cfg.temperature_param) {
      case model::TemperatureParam::exp: return TempParam::exp;
      case model::TemperatureParam::direct: return TempParam::direct;
      default: return TempParam::offset;
    }
  }
  Act act() const {
    switch (cfg.ffn_act) {
      case Activation::gelu: return Act::gelu;
      case Activation::relu: return Act::relu;
      case Activation::leaky_relu:
      case Activation::learnable_leaky_relu: return Act::leaky_relu;
      case Activation::gelu_exact: return Act::gelu_exact;
      default: return Act::identity;
    }
  }
  // learnable leaky ReLU: the slope parameter of layer w (device), else null
  const float* slope_dev(const LayerOffsets& w) const {
    return cfg.ffn_act == Activation::learnable_leaky_relu ? P_(w.slope) : nullptr;
  }

  // ---- linears under weight / spectral normalization ----
  bf16* Wl(const Lin& x) const { return x.weff ? x.weff : W_(x.w); }
  // dW of a linear's product: straight into the gradient (accumulating), or into dweff
  // (overwritten) for finish() to map onto weight_g / weight_v / weight.
  float* dWl(const Lin& x) const { return x.weff ? dweff : G_(x.w); }
  float dWbeta(const Lin& x) const { return x.weff ? 0.f : 1.f; }
  // dLoss/dW of a linear (out x in) from its output gradient dY [N, out] (bf16) and input X
  // [N, in], and (bias_too) its bias gradient, the column sums of dY: inside the product
  // (cuBLASLt bias-gradient epilogue) when offered, else a column-sum kernel.
  void dw_product(const Lin& x, int N, int out, int in, const bf16* dY, const bf16* X,
                  bool bias_too) {
    cudaStream_t s = stream;
    bias_too = bias_too && x.b != kNone;
    if (bias_too && lt_bgrad &&
        lt_gemm(lt, s, true, false, out, in, N, dY, out, X, in, dWl(x), CUDA_R_32F, in,
                dWbeta(x), Epi::bgrad_a, bgrad, nullptr, 0)) {
      add_f32(G_(x.b), bgrad, size_t(out), s);
    } else {
      if (bias_too) colsum(G_(x.b), dY, N, out, scratch, s);
      gemm(blas, s, true, false, out, in, N, dY, out, X, in, dWl(x), CUDA_R_32F, in, 1.f,
           dWbeta(x));
    }
    finish(x);
  }
  // the GELU (tanh) FFN whose bias and activation can run in cuBLASLt epilogues
  bool lt_gelu(const LayerOffsets& w) const {
    return lt && act() == Act::gelu && w.fc.b != kNone && !slope_dev(w) && dff % 8 == 0;
  }
  void prepare(Lin& x, bool iterate) {
    if (!x.weff) return;
    cudaStream_t s = stream;
    if (x.wn) {
      weight_norm_forward(x.weff, x.aux, P_(x.g), P_(x.w), x.out, x.in, x.r0, x.r1, s);
      return;
    }
    const int h = x.out / x.nsub;
    for (int k = 0; k < x.nsub; ++k) {
      const size_t o = size_t(k) * h * x.in;
      if (x.sn_on[k])
        spectral_norm_forward(x.weff + o, P_(x.u) + size_t(k) * h, x.aux + size_t(k) * x.in,
                              x.aux + size_t(x.nsub) * x.in + k,
                              x.aux + size_t(x.nsub) * x.in + x.nsub, P_(x.w) + o, h, x.in,
                              iterate, s);
      else
        f32_to_bf16(x.weff + o, P_(x.w) + o, size_t(h) * x.in, s);
    }
  }
  void finish(const Lin& x) {
    if (!x.weff) return;
    cudaStream_t s = stream;
    if (x.wn) {
      weight_norm_backward(G_(x.g), G_(x.w), dweff, P_(x.g), P_(x.w), x.aux, x.out, x.in, x.r0,
                           x.r1, s);
      return;
    }
    const int h = x.out / x.nsub;
    for (int k = 0; k < x.nsub; ++k) {
      const size_t o = size_t(k) * h * x.in;
      if (x.sn_on[k])
        spectral_norm_backward(G_(x.w) + o, dweff + o, P_(x.w) + o, P_(x.u) + size_t(k) * h,
                               x.aux + size_t(k) * x.in, x.aux + size_t(x.nsub) * x.in + k, h,
                               x.in, scratch, s);
      else
        add_f32(G_(x.w) + o, dweff + o, size_t(h) * x.in, s);
    }
  }
  // Weight of one penalty row in L_ent (before lambda).
  double reg_row_weight(int B_, int T_) const {
    double c = 1.0 / (double(L) * H);
    if (cfg.entropy_reg.reduction == model::EntropyReduction::mean) c /= double(B_) * T_;
    return c;
  }

  // ---------------------------------------------------------------------------------------
  // Everything of a forward up to the loss sums in `scalars` ([0] CE sum, [8 + l] penalty sum
  // of layer l); nothing waits for the GPU. Returns false when there are no targets (no loss).
  bool enqueue_forward(const int32_t* tokens, const int32_t* targets, int B_, int T_,
                       bool training, float gscale) {
    if (B_ < 1 || B_ > Bmax || T_ < 1 || T_ > Tmax)
      fail("GpuModel::forward: batch " + std::to_string(B_) + " x " + std::to_string(T_) +
           " exceeds the allocated " + std::to_string(Bmax) + " x " + std::to_string(Tmax));
    B = B_;
    T = T_;
    has_targets = targets != nullptr;
    trained_forward = training && has_targets;
    grad_scale = gscale;
    const int N = B * T;
    cudaStream_t s = stream;
    for (int i = 0; i < N; ++i)
      if (tokens[i] < 0 || tokens[i] >= V || (targets && (targets[i] < 0 || targets[i] >= V)))
        fail("GpuModel::forward: token id out of range [0, " + std::to_string(V) + ")");
    // Inputs through a pinned staging slot (asynchronous copies; the slot is reused only once
    // the copies of its previous forward have run).
    Stage& sg = stages[stage_next];
    stage_next = (stage_next + 1) % 3;
    AERO_CUDA_CHECK(cudaEventSynchronize(sg.copied));
    std::memcpy(sg.tok, tokens, size_t(N) * 4);
    AERO_CUDA_CHECK(cudaMemcpyAsync(tok, sg.tok, N * 4, cudaMemcpyHostToDevice, s));
    if (targets) {
      std::memcpy(sg.tgt, targets, size_t(N) * 4);
      AERO_CUDA_CHECK(cudaMemcpyAsync(tgt, sg.tgt, N * 4, cudaMemcpyHostToDevice, s));
    }
    if (trained_forward) {
      // Group rows by token for the deterministic embedding backward (counting sort, rows of
      // one token in increasing order).
      count.assign(size_t(V) + 1, 0);
      for (int i = 0; i < N; ++i) ++count[size_t(tokens[i]) + 1];
      int u = 0;
      for (int v = 0; v < V; ++v) {
        if (count[v + 1] > 0) {
          sg.btok[u] = v;
          sg.bstart[u] = count[v];
          ++u;
        }
        count[v + 1] += count[v];
      }
      sg.bstart[u] = N;
      for (int i = 0; i < N; ++i) sg.border[count[tokens[i]]++] = i;
      U = u;
      // Stream order keeps these behind the previous step's backward, which still reads the
      // old buckets.
      AERO_CUDA_CHECK(cudaMemcpyAsync(btok, sg.btok, U * 4, cudaMemcpyHostToDevice, s));
      AERO_CUDA_CHECK(cudaMemcpyAsync(bstart, sg.bstart, (U + 1) * 4, cudaMemcpyHostToDevice, s));
      AERO_CUDA_CHECK(cudaMemcpyAsync(border, sg.border, N * 4, cudaMemcpyHostToDevice, s));
    }
    AERO_CUDA_CHECK(cudaEventRecord(sg.copied, s));
    const bool reg = trained_forward && cfg.entropy_reg.enabled;
    const float lnT = std::log(float(T));
    const double rw = reg_row_weight(B, T) * (cfg.entropy_reg.reduction ==
                                                      model::EntropyReduction::sum
                                                  ? world
                                                  : 1);
    const float coef = float(cfg.entropy_reg.lambda * rw) * gscale;

    nmarks = 0;
    mark("start");
    for (auto& w : lo)
      for (Lin* x : {&w.qkv, &w.proj, &w.fc, &w.fproj, &w.fused}) prepare(*x, training && !sn_frozen);
    if (dweff) mark("weight / spectral norm");
    embedding_forward(acts[0].res, tok, P_(wte), P_(wpe), N, T, d, s);
    residual_norm_forward(acts[0].res, acts[0].h1, acts[0].mean1, acts[0].rstd1, acts[0].res,
                          nullptr, nullptr, nullptr, nullptr, P_(lo[0].ln1w), P_(lo[0].ln1b), N,
                          d, s);
    mark("embedding + norm");
    for (int l = 0; l < L; ++l) {
      auto& a = acts[l];
      auto& w = lo[l];
      const bool keep_qkv = flash && R == 0;  // the kernels read q, k, v from the product
      gemm(blas, s, false, true, N, 3 * d, d, a.h1, d, Wl(w.qkv), d, keep_qkv ? a.q : qkv,
           CUDA_R_16BF, 3 * d, 1.f, 0.f);
      mark("fwd gemm qkv");
      if (!keep_qkv) {
        qkv_split(a.q, a.k, a.v, qkv, P_(w.qkv.b), B, T, H, dk, s);
        if (R > 0) rotary(a.q, a.k, rot_cos, rot_sin, B * H, T, dk, R, false, s);
        mark("fwd qkv split");
      }
      if (flash) {
        FlashFwdArgs fa = flash_args(l, B, T);
        if (reg) set_regularizer(fa, l, lnT, coef);
        flash_attn_forward(fa, s);
        mark("fwd flash attention");
      } else {
        const long long sQ = (long long)T * dk, sP = (long long)T * T;
        gemm(blas, s, false, true, T, T, dk, a.q, dk, a.k, dk, a.P, CUDA_R_16BF, T, 1.f, 0.f, B * H,
             sQ, sQ, sP);
        mark("fwd gemm QK^T");
        AttnSoftmaxArgs sa;
        sa.P = a.P;
        set_attention(sa, l, B, T);
        if (reg) set_regularizer(sa, l, lnT, coef);
        attn_softmax_forward(sa, s);
        mark("fwd softmax+entropy");
        gemm(blas, s, false, false, T, dk, T, a.P, T, a.v, dk, yh, CUDA_R_16BF, dk, 1.f, 0.f, B * H,
             sP, sQ, sQ);
        mark("fwd gemm PV");
        heads_merge(a.y, yh, B, T, H, dk, s);
        mark("fwd heads merge");
      }
      gemm(blas, s, false, true, N, d, d, a.y, d, Wl(w.proj), d, o, CUDA_R_32F, d, 1.f, 0.f);
      mark("fwd gemm proj");

      const bool last = l + 1 == L;
      float* res_next = last ? res_final : acts[l + 1].res;
      bf16* h_next = last ? hf : acts[l + 1].h1;
      float* mean_next = last ? meanf : acts[l + 1].mean1;
      float* rstd_next = last ? rstdf : acts[l + 1].rstd1;
      const float* lnw_next = last ? P_(lnfw) : P_(lo[l + 1].ln1w);
      const float* lnb_next = last ? P_(lnfb) : P_(lo[l + 1].ln1b);
      if (cfg.has_ffn(l)) {
        if (cfg.parallel_residual) {
          // FFN input LN2(x) of the block input; x_hat = x + proj (its bf16 copy unused: yh)
          residual_norm_forward(a.res, a.h2, a.mean2, a.rstd2, a.res, nullptr, nullptr, nullptr,
                                nullptr, P_(w.ln2w), P_(w.ln2b), N, d, s);
          residual_norm_forward(a.xhat, yh, nullptr, nullptr, a.res, nullptr, o, nullptr,
                                P_(w.proj.b), nullptr, nullptr, N, d, s);
        } else {
          residual_norm_forward(a.xhat, a.h2, a.mean2, a.rstd2, a.res, nullptr, o, nullptr,
                                P_(w.proj.b), P_(w.ln2w), P_(w.ln2b), N, d, s);
        }
        mark("fwd residual+norm");
        float* m = a.m ? a.m : m_scratch;
        const float* mb;
        if (cfg.ffn_kind == FfnKind::standard) {
          // f = gelu(h2 Wfc^T + b), the GELU input kept in pre, in one cuBLASLt product
          if (!(lt_gelu_fwd && lt_gelu(w) && lt_gemm(lt, s, false, true, N, dff, d, a.h2, d, Wl(w.fc), d, a.f,
                                      CUDA_R_16BF, dff, 0.f, Epi::gelu_aux_bias, W_(w.fc.b),
                                      a.pre, dff))) {
            // the bias added by the product (bf16 bias): the activation pass writes f only
            const bool pb = lt_bias_fwd && w.fc.b != kNone && dff % 8 == 0 &&
                            lt_gemm(lt, s, false, true, N, dff, d, a.h2, d, Wl(w.fc), d, a.pre,
                                    CUDA_R_16BF, dff, 0.f, Epi::bias, W_(w.fc.b), nullptr, 0);
            if (!pb)
              gemm(blas, s, false, true, N, dff, d, a.h2, d, Wl(w.fc), d, a.pre, CUDA_R_16BF, dff,
                   1.f, 0.f);
            mark("fwd gemm fc");
            bias_act_forward(a.pre, a.f, pb ? nullptr : P_(w.fc.b), N, dff, act(),
                             float(cfg.leaky_slope), s, slope_dev(w));
          }
          mark("fwd gemm fc + bias+act");
          gemm(blas, s, false, true, N, d, dff, a.f, dff, Wl(w.fproj), dff, m, CUDA_R_32F, d,
               1.f, 0.f);
          mark("fwd gemm ffn proj");
          mb = P_(w.fproj.b);
        } else {
          gemm(blas, s, false, true, N, d, d, a.h2, d, Wl(w.fused), d, m, CUDA_R_32F, d, 1.f,
               0.f);
          mark("fwd gemm fused ffn");
          mb = P_(w.fused.b);
        }
        residual_norm_forward(res_next, h_next, mean_next, rstd_next, a.xhat, P_(w.beta), m,
                              P_(w.alpha), mb, lnw_next, lnb_next, N, d, s);
        mark("fwd residual+norm");
      } else {
        residual_norm_forward(res_next, h_next, mean_next, rstd_next, a.res, nullptr, o, nullptr,
                              P_(w.proj.b), lnw_next, lnb_next, N, d, s);
        mark("fwd residual+norm");
      }
    }
    const size_t head = lm_head != kNone ? lm_head : wte;  // tied: the embedding
    // over the padded vocabulary (zero rows after the head matrix: zero logits V..ldV)
    gemm(blas, s, false, true, N, ldV, d, hf, d, W_(head), d, logits, CUDA_R_16BF, ldV, 1.f, 0.f);
    mark("fwd gemm lm head");
    if (!has_targets) return false;
    cross_entropy_forward_backward(logits, loss_rows, tgt, N, V, ldV, gscale / float(N),
                                   trained_forward, s);
    mark("cross-entropy (fused fwd+bwd)");
    sum_f32(scalars, loss_rows, N, scratch, s);
    if (reg) {  // all layers' penalty sums in one pair of launches (per 16 layers)
      pen_ptrs.resize(L);
      for (int l = 0; l < L; ++l) pen_ptrs[l] = acts[l].pen;
      sum_f32_segs(scalars + 8, pen_ptrs.data(), L, size_t(B) * H * T, scratch, s);
    }
    return true;
  }

  // The loss of the sums of a forward (enqueue_forward's layout) over B_ x T_ rows.
  GpuStats stats_from_sums(const float* h, int B_, int T_, bool reg) const {
    GpuStats st;
    st.ce = double(h[0]) / (B_ * T_);
    if (reg) {
      double pen = 0;
      for (int l = 0; l < L; ++l) pen += h[8 + l];
      st.ent_reg = pen * reg_row_weight(B_, T_);
    }
    st.loss = st.ce + cfg.entropy_reg.lambda * st.ent_reg;
    return st;
  }

  GpuStats forward(const int32_t* tokens, const int32_t* targets, int B_, int T_, bool training,
                   float gscale) {
    if (!enqueue_forward(tokens, targets, B_, T_, training, gscale)) return GpuStats{};
    cudaStream_t s = stream;
    AERO_CUDA_CHECK(cudaMemcpyAsync(hsums, scalars, (8 + L) * 4, cudaMemcpyDeviceToHost, s));
    AERO_CUDA_CHECK(cudaStreamSynchronize(s));
    mark("loss sums");
    prof_collect();
    return stats_from_sums(hsums, B, T, trained_forward && cfg.entropy_reg.enabled);
  }

  // The training forward without waiting: the loss sums (all-reduced over the data-parallel
  // ranks first) land in `out`; the NaN guard's flag is set when they are not finite.
  void forward_async(const int32_t* tokens, const int32_t* targets, int B_, int T_, float gscale,
                     float* out, float extra) {
    if (!targets) fail("GpuModel::forward_async: a training forward needs targets");
    enqueue_forward(tokens, targets, B_, T_, /*training=*/true, gscale);
    cudaStream_t s = stream;
    const bool reg = cfg.entropy_reg.enabled;
    fill_f32(scalars + 3, extra, 1, s);
#ifdef AERO_HAVE_NCCL
    if (comm) {
      auto nc = static_cast<ncclComm_t>(comm);
      auto ok = [](ncclResult_t r) {
        if (r != ncclSuccess) fail(std::string("ncclAllReduce (loss): ") + ncclGetErrorString(r));
      };
      ok(ncclGroupStart());
      ok(ncclAllReduce(scalars, scalars, 1, ncclFloat, ncclSum, nc, s));
      ok(ncclAllReduce(scalars + 3, scalars + 3, 1, ncclFloat, ncclSum, nc, s));
      if (reg) ok(ncclAllReduce(scalars + 8, scalars + 8, L, ncclFloat, ncclSum, nc, s));
      ok(ncclGroupEnd());
    }
#endif
    flag_nonfinite(guard, scalars, 1, s);
    if (reg) flag_nonfinite(guard, scalars + 8, L, s);
    AERO_CUDA_CHECK(cudaMemcpyAsync(out, scalars, (8 + L) * 4, cudaMemcpyDeviceToHost, s));
    mark("loss sums");
    prof_collect();
  }

  void allreduce_range(size_t begin, size_t end, cudaEvent_t ready) {
#ifdef AERO_HAVE_NCCL
    if (!comm || end <= begin) return;
    AERO_CUDA_CHECK(cudaEventRecord(ready, stream));
    AERO_CUDA_CHECK(cudaStreamWaitEvent(comm_stream, ready, 0));
    ncclResult_t r = ncclAllReduce(g + begin, g + begin, end - begin, ncclFloat, ncclAvg,
                                   static_cast<ncclComm_t>(comm), comm_stream);
    if (r != ncclSuccess) fail(std::string("ncclAllReduce: ") + ncclGetErrorString(r));
#else
    (void)begin;
    (void)end;
    (void)ready;
#endif
  }

  void backward(bool sync) {
    if (!trained_forward) fail("GpuModel::backward: the last forward was not a training forward");
    const int N = B * T;
    cudaStream_t s = stream;
    const bool dp = comm && sync;
    if (dp) AERO_CUDA_CHECK(cudaStreamWaitEvent(s, comm_done, 0));  // last step's reductions
    nmarks = 0;
    mark("start");
    // LM head: logits = hf W^T, W = wte (tied) or lm_head
    const size_t head = lm_head != kNone ? lm_head : wte;
    // padded vocabulary: dlogits columns V..ldV are zero (cross-entropy), so are the weight
    // rows there; their gradient rows stay zero
    // Where a linear reads the residual stream itself (no norm), its input gradient is added
    // into dres by the product (beta 1) instead of a separate dres += dh pass.
    gemm(blas, s, false, false, N, d, ldV, logits, ldV, W_(head), d, lnfw == kNone ? dres : dh,
         CUDA_R_32F, d, 1.f, 0.f);
    gemm(blas, s, true, false, ldV, d, N, logits, ldV, hf, d, G_(head), CUDA_R_32F, d, 1.f, 1.f);
    mark("bwd gemm lm head (2)");
    if (lnfw != kNone) {
      AERO_CUDA_CHECK(cudaMemsetAsync(dres, 0, size_t(N) * d * 4, s));
      norm_backward(dres, dh, res_final, meanf, rstdf, P_(lnfw), G_(lnfw), G_(lnfb), scratch, N,
                    d, s);
      mark("bwd final norm");
    }
    const float lnT = std::log(float(T));
    for (int l = L - 1; l >= 0; --l) {
      auto& a = acts[l];
      auto& w = lo[l];
      // the FFN's / qkv's input gradient straight into dres (no LN2 / LN1 to differentiate)
      const bool direct2 = !cfg.parallel_residual && w.ln2w == kNone, direct1 = w.ln1w == kNone;
      float* dx2 = direct2 ? dres : dh;
      const float beta2 = direct2 ? 1.f : 0.f;
      if (cfg.has_ffn(l)) {
        const size_t ffn_out_b = cfg.ffn_kind == FfnKind::standard ? w.fproj.b : w.fused.b;
        // the FFN output bias's gradient (column sums of dm) comes from the scaling backward or
        // the cast, in the same pass, unless the cuBLASLt bias-gradient epilogue does it
        const bool out_b_left = lt_bgrad;
        // dres = d loss / d x_out; d loss / d xhat = beta * dres + the FFN's input gradient:
        // with no LN2 the product below applies beta (device scalar) while accumulating
        const bool beta_gemm = cfg.ffn_scaling && direct2 && beta_in_gemm;
        // the FFN's input-gradient product into dx2 (dres: accumulating, times beta first
        // when beta_gemm)
        auto dx_product = [&](const bf16* A, int K, const Lin& wl) {
          if (beta_gemm)
            gemm_dev(blas, s, false, false, N, d, K, A, K, Wl(wl), d, dx2, CUDA_R_32F, d,
                     one_dev, P_(w.beta));
          else
            gemm(blas, s, false, false, N, d, K, A, K, Wl(wl), d, dx2, CUDA_R_32F, d, 1.f,
                 beta2);
        };
        if (cfg.ffn_scaling)
          ffn_scale_backward(dm, dres, a.xhat, a.m, P_(ffn_out_b), P_(w.alpha), P_(w.beta),
                             G_(w.alpha), G_(w.beta), scratch, N, d, s,
                             lt_bgrad ? nullptr : G_(ffn_out_b), !beta_gemm);
        else
          // the cast with the FFN output bias's gradient (column sums) in the same pass
          cast_colsum(dm, dres, lt_bgrad ? nullptr : G_(ffn_out_b), N, d, scratch, s);
        mark("bwd ffn scale / cast");
        if (cfg.ffn_kind == FfnKind::standard) {
          dw_product(w.fproj, N, d, dff, dm, a.f, out_b_left);
          mark("bwd gemm ffn proj dW + bias");
          // df = (dm Wfproj) * gelu'(pre) and the fc bias gradient in one cuBLASLt product
          const bool fused_act =
              lt_dgelu && lt_gelu(w) &&
              lt_gemm(lt, s, false, false, N, dff, d, dm, d, Wl(w.fproj), dff, df,
                                    CUDA_R_16BF, dff, 0.f, Epi::dgelu_bgrad, bgrad16, a.pre, dff);
          if (fused_act) {
            add_bf16_f32(G_(w.fc.b), bgrad16, dff, s);
          } else {
            gemm(blas, s, false, false, N, dff, d, dm, d, Wl(w.fproj), dff, df, CUDA_R_16BF, dff,
                 1.f, 0.f);
            if (slope_dev(w))  // before act_backward overwrites df
              leaky_slope_grad(G_(w.slope), df, a.pre, size_t(N) * dff, scratch, s);
            // with the fc bias's gradient (column sums of df) in the same pass
            act_backward_bias(df, df, a.pre, lt_bgrad ? nullptr : G_(w.fc.b), N, dff, act(),
                              float(cfg.leaky_slope), scratch, s, slope_dev(w));
          }
          mark("bwd gemm ffn proj dX + act");
          dw_product(w.fc, N, dff, d, df, a.h2, !fused_act && lt_bgrad);
          mark("bwd gemm fc dW + bias");
          dx_product(df, dff, w.fc);
          mark("bwd gemm fc dX");
        } else {
          dw_product(w.fused, N, d, d, dm, a.h2, out_b_left);
          mark("bwd gemm fused ffn dW + bias");
          dx_product(dm, d, w.fused);
          mark("bwd gemm fused ffn dX");
        }
        // sequential: LN2 read x_hat; parallel: LN2 read the block input, added below after
        // d x_hat has gone through the attention projection
        if (!cfg.parallel_residual && !direct2) {
          norm_backward(dres, dh, a.xhat, a.mean2, a.rstd2, P_(w.ln2w), G_(w.ln2w), G_(w.ln2b),
                        scratch, N, d, s);
          mark("bwd norm");
        }
      }
      // attention output projection: xhat = res + y Wo^T + bo
      cast_colsum(dm, dres, lt_bgrad ? nullptr : G_(w.proj.b), N, d, scratch, s);
      mark("bwd cast + bias sums");
      dw_product(w.proj, N, d, d, dm, a.y, lt_bgrad);
      mark("bwd gemm proj dW + bias");
      gemm(blas, s, false, false, N, d, d, dm, d, Wl(w.proj), d, dy, CUDA_R_16BF, d, 1.f, 0.f);
      mark("bwd gemm proj dX");
      if (cfg.has_ffn(l) && cfg.parallel_residual) {
        norm_backward(dres, dh, a.res, a.mean2, a.rstd2, P_(w.ln2w), G_(w.ln2w), G_(w.ln2b),
                      scratch, N, d, s);
        mark("bwd norm");
      }
      if (flash) {
        FlashBwdArgs fb;
        fb.f = flash_args(l, B, T);
        fb.gE = cfg.entropy_reg.enabled ? a.gE : nullptr;
        fb.dO = HeadView{dy, (long long)T * d, dk, d};
        if (R == 0) {
          fb.dq = HeadView{dqkv, (long long)T * 3 * d, dk, 3 * d};
          fb.dk = HeadView{dqkv + d, (long long)T * 3 * d, dk, 3 * d};
          fb.dv = HeadView{dqkv + 2 * d, (long long)T * 3 * d, dk, 3 * d};
        } else {
          fb.dq = head_major(dq, T);
          fb.dk = head_major(dkk, T);
          fb.dv = head_major(dv, T);
        }
        fb.Drow = Drow;
        fb.dtemp_row = w.temp != kNone ? dtemp_row : nullptr;
        // the qkv bias gradient's column sums from the kernels' accumulators (no pass over dqkv)
        if (R == 0 && w.qkv.b != kNone && !lt_bgrad) fb.dbias_part = qkv_bpart;
        flash_attn_backward(fb, s);
        if (fb.dbias_part)
          colsum_partials_final(G_(w.qkv.b), qkv_bpart, flash_bias_partials(B, T), 3 * d, s);
        mark("bwd flash attention");
      } else {
        heads_split(dyh, dy, B, T, H, dk, s);
        mark("bwd heads split");
        const long long sQ = (long long)T * dk, sP = (long long)T * T;
        gemm(blas, s, false, true, T, T, dk, dyh, dk, a.v, dk, dP, CUDA_R_16BF, T, 1.f, 0.f, B * H,
             sQ, sQ, sP);
        gemm(blas, s, true, false, T, dk, T, a.P, T, dyh, dk, dv, CUDA_R_16BF, dk, 1.f, 0.f, B * H,
             sP, sQ, sQ);
        mark("bwd gemm dP, dV");
        AttnSoftmaxBwdArgs sb;
        sb.dP = dP;
        sb.P = a.P;
        sb.B = B;
        sb.H = H;
        sb.T = T;
        sb.scale = 1.f / std::sqrt(float(dk));
        sb.temp = P_(w.temp);
        sb.ctx = cfg.context;
        sb.temp_param = temp_param();
        sb.gE = cfg.entropy_reg.enabled ? a.gE : nullptr;
        sb.dtemp_row = w.temp != kNone ? dtemp_row : nullptr;
        attn_softmax_backward(sb, s);
        mark("bwd softmax");
        gemm(blas, s, false, false, T, dk, T, dP, T, a.k, dk, dq, CUDA_R_16BF, dk, 1.f, 0.f, B * H,
             sP, sQ, sQ);
        gemm(blas, s, true, false, T, dk, T, dP, T, a.q, dk, dkk, CUDA_R_16BF, dk, 1.f, 0.f, B * H,
             sP, sQ, sQ);
        mark("bwd gemm dQ, dK");
      }
      if (w.temp != kNone) temp_grad_reduce(G_(w.temp), dtemp_row, B, H, T, cfg.context, s);
      if (cfg.entropy_reg.enabled)
        theta_grad_reduce(G_(theta) + size_t(l) * H, a.gE, B, H, T, -lnT, scratch, s);
      mark("bwd temp/theta sums");
      if (!flash || R > 0) {
        if (R > 0) rotary(dq, dkk, rot_cos, rot_sin, B * H, T, dk, R, true, s);
        qkv_merge(dqkv, dq, dkk, dv, B, T, H, dk, s);
        mark("bwd qkv merge");
      }
      dw_product(w.qkv, N, 3 * d, d, dqkv, a.h1, !(flash && R == 0 && !lt_bgrad));
      mark("bwd gemm qkv dW + bias");
      gemm(blas, s, false, false, N, d, 3 * d, dqkv, 3 * d, Wl(w.qkv), d, direct1 ? dres : dh,
           CUDA_R_32F, d, 1.f, direct1 ? 1.f : 0.f);
      mark("bwd gemm qkv dX");
      if (!direct1) {
        norm_backward(dres, dh, a.res, a.mean1, a.rstd1, P_(w.ln1w), G_(w.ln1w), G_(w.ln1b),
                      scratch, N, d, s);
        mark("bwd norm");
      }
      if (dp) allreduce_range(w.begin, w.end, layer_done[l]);
    }
    embedding_backward(G_(wte), G_(wpe), dres, btok, bstart, border, U, B, T, d, s);
    mark("bwd embedding");
    if (dp) {
      allreduce_range(tail_begin, n, layer_done[L]);
      AERO_CUDA_CHECK(cudaEventRecord(comm_done, comm_stream));
      AERO_CUDA_CHECK(cudaStreamWaitEvent(s, comm_done, 0));
    }
    mark("bwd data-parallel wait");
    prof_collect();
  }
};

// =============================================================================================
GpuModel::GpuModel(const ModelConfig& cfg, int max_batch, int max_seq, int device)
    : impl_(std::make_unique<Impl>()) {
  std::string why = gpu_unsupported(cfg);
  if (!why.empty()) fail(why);
  if (max_seq > cfg.context)
    fail("GpuModel: max_seq " + std::to_string(max_seq) + " > model.context " +
         std::to_string(cfg.context));
  if (device_count() == 0) fail("GpuModel: no CUDA device");
  auto& m = *impl_;
  m.cfg = cfg;
  m.Bmax = max_batch;
  m.Tmax = max_seq;
  m.L = cfg.n_layer;
  m.H = cfg.n_head;
  m.d = cfg.d_model;
  m.dk = cfg.d_head();
  m.V = cfg.vocab_size;
  m.ldV = (m.V + 63) / 64 * 64;
  m.dff = cfg.d_ff;
  m.device = device;
  AERO_CUDA_CHECK(cudaSetDevice(device));
  AERO_CUDA_CHECK(cudaStreamCreateWithFlags(&m.stream, cudaStreamNonBlocking));
  AERO_CUDA_CHECK(cudaStreamCreateWithFlags(&m.comm_stream, cudaStreamNonBlocking));
  AERO_CUBLAS_CHECK(cublasCreate(&m.blas));
  // Deterministic results: no atomics-based algorithms; tensor-op math in bf16.
  AERO_CUBLAS_CHECK(cublasSetAtomicsMode(m.blas, CUBLAS_ATOMICS_NOT_ALLOWED));
  // A fixed, generous workspace: lets cuBLAS pick its fast Hopper kernels, and keeps the
  // algorithm choice (hence the bits) the same from run to run.
  m.workspace_bytes = size_t(64) << 20;
  AERO_CUDA_CHECK(cudaMalloc(&m.workspace, m.workspace_bytes));
  AERO_CUBLAS_CHECK(cublasSetStream(m.blas, m.stream));  // set once: gemm() keeps it
  AERO_CUBLAS_CHECK(cublasSetWorkspace(m.blas, m.workspace, m.workspace_bytes));
  m.prof = std::getenv("AERO_GPU_PROFILE") != nullptr;
  m.layout();
  m.allocate();
  m.layer_done.resize(m.L + 1);
  for (auto& e : m.layer_done)
    AERO_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  AERO_CUDA_CHECK(cudaEventCreateWithFlags(&m.comm_done, cudaEventDisableTiming));
  AERO_CUDA_CHECK(cudaEventRecord(m.comm_done, m.comm_stream));
  init_weights(1234);
}

GpuModel::~GpuModel() {
  if (impl_) {
    cudaDeviceSynchronize();
    impl_->free_all();
  }
}

const ModelConfig& GpuModel::config() const { return impl_->cfg; }
const std::vector<GpuParam>& GpuModel::params() const { return impl_->params; }
const GpuParam& GpuModel::param(const std::string& name) const {
  for (auto& q : impl_->params)
    if (q.name == name) return q;
  fail("GpuModel: no parameter named '" + name + "'");
}
size_t GpuModel::num_parameters() const {
  size_t k = 0;
  for (auto& q : impl_->params) k += q.size;
  return k;
}

void GpuModel::init_weights(uint64_t seed) {
  auto& m = *impl_;
  std::vector<float> h(m.n, 0.f);
  aero::Rng rng(seed);
  const double proj_std = m.cfg.init_std / std::sqrt(2.0 * m.L);
  for (auto& q : m.params) {
    float* x = h.data() + q.offset;
    const std::string& nm = q.name;
    auto ends = [&](const char* suf) {
      size_t k = std::strlen(suf);
      return nm.size() >= k && nm.compare(nm.size() - k, k, suf) == 0;
    };
    auto is_out_proj = [&](const char* lin) {
      return ends((std::string(lin) + ".weight").c_str()) ||
             ends((std::string(lin) + ".weight_v").c_str());
    };
    if (q.decay) {
      double sd = (is_out_proj("attn.proj") || is_out_proj("ffn.proj") || is_out_proj("ffn.fused"))
                      ? proj_std
                      : m.cfg.init_std;
      for (size_t i = 0; i < q.size; ++i) x[i] = float(rng.normal() * sd);
    } else if (ends("ln1.weight") || ends("ln2.weight") || ends("ln_f.weight")) {
      std::fill(x, x + q.size, 1.f);
    } else if (ends("attn.temp")) {
      double v = m.cfg.temperature_init;
      if (m.cfg.temperature_param == model::TemperatureParam::exp) v = std::log(v);
      std::fill(x, x + q.size, float(v));
    } else if (nm == "entropy_theta") {
      std::fill(x, x + q.size, float(m.cfg.entropy_reg.theta_init));
    } else if (ends("ffn_scale.alpha")) {
      std::fill(x, x + q.size, float(m.cfg.ffn_alpha_init));
    } else if (ends("ffn_scale.beta")) {
      std::fill(x, x + q.size, float(m.cfg.ffn_beta_init));
    } else if (ends("ffn.slope") || nm == "ffn_slope") {
      std::fill(x, x + q.size, float(m.cfg.leaky_slope));
    } else if (ends(".sn_u")) {  // random unit rows
      const size_t rows = size_t(q.shape[0]), len = size_t(q.shape[1]);
      for (size_t r = 0; r < rows; ++r) {
        double ss = 0;
        for (size_t i = 0; i < len; ++i) {
          double v = rng.normal();
          x[r * len + i] = float(v);
          ss += v * v;
        }
        const double sc = 1.0 / std::max(std::sqrt(ss), 1e-12);
        for (size_t i = 0; i < len; ++i) x[r * len + i] = float(x[r * len + i] * sc);
      }
    }  // biases stay 0; weight_g below
  }
  // weight_g = ||weight_v|| per row: the initial effective weight is v
  for (auto& q : m.params) {
    const std::string& nm = q.name;
    if (nm.size() < 9 || nm.compare(nm.size() - 9, 9, ".weight_g") != 0) continue;
    const GpuParam& v = m.params[&q - m.params.data() + 1];  // weight_v follows weight_g
    const size_t len = size_t(v.shape[1]);
    for (size_t r = 0; r < q.size; ++r) {
      double ss = 0;
      for (size_t i = 0; i < len; ++i) {
        double e = h[v.offset + r * len + i];
        ss += e * e;
      }
      h[q.offset + r] = float(std::sqrt(ss));
    }
  }
  set_weights(h);
}

void GpuModel::set_weights(const std::vector<float>& host) {
  auto& m = *impl_;
  if (host.size() != m.n)
    fail("GpuModel::set_weights: " + std::to_string(host.size()) + " values, expected " +
         std::to_string(m.n));
  synchronize();
  AERO_CUDA_CHECK(cudaMemcpyAsync(m.p, host.data(), m.n * 4, cudaMemcpyHostToDevice, m.stream));
  f32_to_bf16(m.p16, m.p, m.n, m.stream);
  AERO_CUDA_CHECK(cudaStreamSynchronize(m.stream));
}
std::vector<float> GpuModel::weights() const {
  std::vector<float> h(impl_->n);
  synchronize();
  AERO_CUDA_CHECK(cudaMemcpy(h.data(), impl_->p, h.size() * 4, cudaMemcpyDeviceToHost));
  return h;
}
std::vector<float> GpuModel::grads() const {
  std::vector<float> h(impl_->n);
  synchronize();
  AERO_CUDA_CHECK(cudaMemcpy(h.data(), impl_->g, h.size() * 4, cudaMemcpyDeviceToHost));
  return h;
}

GpuStats GpuModel::forward(const int32_t* tokens, const int32_t* targets, int B, int T,
                           bool training, float grad_scale) {
  return impl_->forward(tokens, targets, B, T, training, grad_scale);
}
void GpuModel::backward(bool sync) { impl_->backward(sync); }
void GpuModel::zero_grad() {
  auto& m = *impl_;
  AERO_CUDA_CHECK(cudaStreamWaitEvent(m.stream, m.comm_done, 0));
  AERO_CUDA_CHECK(cudaMemsetAsync(m.g, 0, m.n * 4, m.stream));
}

double GpuModel::optimizer_step(const model::TrainConfig& tc, double lr, int step) {
  auto& m = *impl_;
  AERO_CUDA_CHECK(cudaStreamWaitEvent(m.stream, m.comm_done, 0));
  grad_norm(m.scalars + 1, m.scalars + 2, m.g, m.n, float(tc.grad_clip), m.scratch, m.stream);
  adamw(m.p, m.p16, m.g, m.mom1, m.mom2, m.mask, m.n, float(lr), float(tc.beta1),
        float(tc.beta2), float(tc.eps), float(tc.weight_decay), step, m.scalars + 2, m.stream);
  float nrm = 0;
  AERO_CUDA_CHECK(cudaMemcpyAsync(&nrm, m.scalars + 1, 4, cudaMemcpyDeviceToHost, m.stream));
  AERO_CUDA_CHECK(cudaStreamSynchronize(m.stream));
  return nrm;
}

// ---- the asynchronous training path (aero-gpu) ------------------------------------------------
void GpuModel::forward_async(const int32_t* tokens, const int32_t* targets, int B, int T,
                             float grad_scale, float* sums_out, float extra) {
  impl_->forward_async(tokens, targets, B, T, grad_scale, sums_out, extra);
}
int GpuModel::loss_sums_size() const { return 8 + impl_->L; }
GpuStats GpuModel::stats_from_sums(const float* sums, int B, int T) const {
  return impl_->stats_from_sums(sums, B, T, impl_->cfg.entropy_reg.enabled);
}
void GpuModel::optimizer_step_async(const model::TrainConfig& tc, double lr, int step,
                                    float* norm_out) {
  auto& m = *impl_;
  AERO_CUDA_CHECK(cudaStreamWaitEvent(m.stream, m.comm_done, 0));
  grad_norm(m.scalars + 1, m.scalars + 2, m.g, m.n, float(tc.grad_clip), m.scratch, m.stream);
  flag_nonfinite(m.guard, m.scalars + 1, 1, m.stream);
  adamw(m.p, m.p16, m.g, m.mom1, m.mom2, m.mask, m.n, float(lr), float(tc.beta1),
        float(tc.beta2), float(tc.eps), float(tc.weight_decay), step, m.scalars + 2, m.stream,
        m.guard);
  AERO_CUDA_CHECK(cudaMemcpyAsync(norm_out, m.scalars + 1, 4, cudaMemcpyDeviceToHost, m.stream));
}
void GpuModel::reset_guard() {
  AERO_CUDA_CHECK(cudaMemsetAsync(impl_->guard, 0, sizeof(int), impl_->stream));
}
uint64_t GpuModel::fence() {
  auto& m = *impl_;
  AERO_CUDA_CHECK(cudaEventRecord(m.fences[m.fence_next % m.fences.size()], m.stream));
  return m.fence_next++;
}
void GpuModel::wait_fence(uint64_t f) {
  // A slot re-recorded by a later fence makes this wait longer, never shorter.
  auto& m = *impl_;
  AERO_CUDA_CHECK(cudaEventSynchronize(m.fences[f % m.fences.size()]));
}
float* GpuModel::host_buffer(size_t n) {
  void* q = nullptr;
  AERO_CUDA_CHECK(cudaMallocHost(&q, std::max<size_t>(n, 1) * sizeof(float)));
  impl_->host_allocs.push_back(q);
  std::memset(q, 0, std::max<size_t>(n, 1) * sizeof(float));
  return static_cast<float*>(q);
}
void GpuModel::allreduce_sum(std::vector<double>& v) {
  auto& m = *impl_;
  if (!m.comm || v.empty()) return;
#ifdef AERO_HAVE_NCCL
  synchronize();
  double* dv = dalloc<double>(v.size());
  AERO_CUDA_CHECK(cudaMemcpy(dv, v.data(), v.size() * 8, cudaMemcpyHostToDevice));
  ncclResult_t r = ncclAllReduce(dv, dv, v.size(), ncclDouble, ncclSum,
                                 static_cast<ncclComm_t>(m.comm), m.stream);
  if (r != ncclSuccess) {
    cudaFree(dv);
    fail(std::string("ncclAllReduce: ") + ncclGetErrorString(r));
  }
  AERO_CUDA_CHECK(cudaStreamSynchronize(m.stream));
  AERO_CUDA_CHECK(cudaMemcpy(v.data(), dv, v.size() * 8, cudaMemcpyDeviceToHost));
  cudaFree(dv);
#endif
}

std::vector<std::vector<double>> GpuModel::head_entropy() const {
  auto& m = *impl_;
  synchronize();
  std::vector<std::vector<double>> out(m.L, std::vector<double>(m.H, 0.0));
  size_t rows = size_t(m.B) * m.H * m.T;
  std::vector<float> h(rows);
  for (int l = 0; l < m.L; ++l) {
    AERO_CUDA_CHECK(cudaMemcpy(h.data(), m.acts[l].rowE, rows * 4, cudaMemcpyDeviceToHost));
    for (size_t r = 0; r < rows; ++r) out[l][(r / m.T) % m.H] += h[r];
    for (auto& x : out[l]) x /= double(m.B) * m.T;
  }
  return out;
}

std::string GpuModel::profile_report() const {
  auto& m = *impl_;
  if (!m.prof) return "";
  double tot = 0;
  for (auto& [k, v] : m.prof_ms) tot += v;
  std::vector<std::pair<double, std::string>> rows;
  for (auto& [k, v] : m.prof_ms) rows.push_back({v, k});
  std::sort(rows.rbegin(), rows.rend());
  std::string out = "| op (all layers, summed over profiled steps) | ms | share |\n|---|---|---|\n";
  char buf[160];
  for (auto& [v, k] : rows) {
    std::snprintf(buf, sizeof buf, "| %s | %.2f | %.1f%% |\n", k.c_str(), v, 100 * v / tot);
    out += buf;
  }
  return out;
}

void GpuModel::profile_reset() { impl_->prof_ms.clear(); }

void GpuModel::set_spectral_norm_frozen(bool frozen) { impl_->sn_frozen = frozen; }

void GpuModel::synchronize() const { AERO_CUDA_CHECK(cudaDeviceSynchronize()); }

void GpuModel::set_data_parallel(void* nccl_comm, int world_size) {
#ifndef AERO_HAVE_NCCL
  if (nccl_comm) fail("GpuModel: built without NCCL (data parallel unavailable)");
#endif
  impl_->comm = nccl_comm;
  impl_->world = world_size;
}

// ---- checkpoints ----------------------------------------------------------------------------
SafeTensors arena_to_safetensors(const std::vector<GpuParam>& ps, const std::vector<float>& arena,
                                 const std::string& prefix) {
  SafeTensors st;
  for (auto& q : ps)
    if (prefix.empty() || q.trainable)
      st.tensors[prefix + q.name] = StTensor::from_f32(arena.data() + q.offset, q.shape);
  return st;
}
void arena_from_safetensors(const std::vector<GpuParam>& ps, std::vector<float>& arena,
                            const std::string& prefix, const SafeTensors& st,
                            const std::string& path) {
  for (auto& q : ps) {
    if (!prefix.empty() && !q.trainable) continue;  // buffers have no moments
    const StTensor& t = st.at(prefix + q.name);
    if (t.shape != q.shape)
      fail(path + ": tensor '" + prefix + q.name + "' has the wrong shape for this model");
    auto v = t.to_f32(prefix + q.name);
    std::copy(v.begin(), v.end(), arena.begin() + q.offset);
  }
}
void write_weights_file(const std::string& path, const std::vector<GpuParam>& ps,
                        const std::vector<float>& arena,
                        std::map<std::string, std::string> metadata) {
  SafeTensors st = arena_to_safetensors(ps, arena, "");
  st.metadata = std::move(metadata);
  st.metadata["format"] = "aero-ckpt-1";
  st.save(path);
}
std::vector<float> read_weights_file(const std::string& path, const GpuLayout& lay) {
  SafeTensors st = SafeTensors::load(path);
  std::vector<float> h(lay.size, 0.f);
  arena_from_safetensors(lay.params, h, "", st, path);
  return h;
}

void GpuModel::save_weights(const std::string& path,
                            std::map<std::string, std::string> metadata) const {
  write_weights_file(path, impl_->params, weights(), std::move(metadata));
}
void GpuModel::save_optimizer_state(const std::string& path,
                                    std::map<std::string, std::string> metadata) const {
  auto& m = *impl_;
  synchronize();
  std::vector<float> h1(m.n), h2(m.n);
  AERO_CUDA_CHECK(cudaMemcpy(h1.data(), m.mom1, m.n * 4, cudaMemcpyDeviceToHost));
  AERO_CUDA_CHECK(cudaMemcpy(h2.data(), m.mom2, m.n * 4, cudaMemcpyDeviceToHost));
  SafeTensors st = arena_to_safetensors(m.params, h1, "m.");
  SafeTensors s2 = arena_to_safetensors(m.params, h2, "v.");
  st.tensors.merge(s2.tensors);
  st.metadata = std::move(metadata);
  st.save(path);
}
void GpuModel::load_weights(const std::string& path) {
  GpuLayout lay{impl_->params, impl_->n};
  set_weights(read_weights_file(path, lay));
}
std::map<std::string, std::string> GpuModel::load_optimizer_state(const std::string& path) {
  auto& m = *impl_;
  SafeTensors st = SafeTensors::load(path);
  std::vector<float> h1(m.n, 0.f), h2(m.n, 0.f);
  arena_from_safetensors(m.params, h1, "m.", st, path);
  arena_from_safetensors(m.params, h2, "v.", st, path);
  synchronize();
  AERO_CUDA_CHECK(cudaMemcpyAsync(m.mom1, h1.data(), m.n * 4, cudaMemcpyHostToDevice, m.stream));
  AERO_CUDA_CHECK(cudaMemcpyAsync(m.mom2, h2.data(), m.n * 4, cudaMemcpyHostToDevice, m.stream));
  AERO_CUDA_CHECK(cudaStreamSynchronize(m.stream));
  return st.metadata;
}

}  // namespace aero::cuda
