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
  if (c.family != model::Family::gpt2) return no("model.family=pythia");
  if (c.weight_norm.any()) return no("model.weight_norm");
  if (c.spectral_norm.any()) return no("model.spectral_norm");
  if (c.ffn_act == Activation::learnable_leaky_relu) return no("model.ffn_act=learnable_leaky_relu");
  if (c.ffn_act == Activation::gelu_exact) return no("model.ffn_act=gelu_exact");
  if (!c.tie_embeddings) return no("model.tie_embeddings=false");
  if (!c.bias) return no("model.bias=false");
  if (c.parallel_residual) return no("model.parallel_residual");
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

struct LayerOffsets {
  size_t ln1w = kNone, ln1b = kNone, qkvw = kNone, qkvb = kNone, projw = kNone, projb = kNone,
         temp = kNone, ln2w = kNone, ln2b = kNone, fcw = kNone, fcb = kNone, fprojw = kNone,
         fprojb = kNone, fusedw = kNone, fusedb = kNone, alpha = kNone, beta = kNone;
  size_t begin = 0, end = 0;  // arena range (NCCL bucket)
};

struct LayerActs {
  float* res = nullptr;  // input residual res[l] (fp32)
  bf16* h1 = nullptr;
  float *mean1 = nullptr, *rstd1 = nullptr;
  bf16 *q = nullptr, *k = nullptr, *v = nullptr;
  bf16* P = nullptr;
  float *rowE = nullptr, *gE = nullptr, *pen = nullptr;
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
  auto add = [&](const std::string& name, std::vector<int64_t> shape, bool decay) {
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
    lay.size += q.size;
    lay.params.push_back(q);
  };
  // Blocks first, then [ln_f, theta, wte, wpe]: each block is one contiguous range, so data
  // parallel can all-reduce it as soon as its backward is done; the tail goes last.
  for (int l = 0; l < L; ++l) {
    std::string b = "blocks." + std::to_string(l) + ".";
    if (cfg.norm == Norm::layernorm) {
      add(b + "ln1.weight", {d}, false);
      add(b + "ln1.bias", {d}, false);
    }
    add(b + "attn.qkv.weight", {3 * d, d}, true);
    add(b + "attn.qkv.bias", {3 * d}, false);
    add(b + "attn.proj.weight", {d, d}, true);
    add(b + "attn.proj.bias", {d}, false);
    if (cfg.temperature) add(b + "attn.temp", {H, cfg.context}, false);
    if (cfg.has_ffn(l)) {
      if (cfg.norm == Norm::layernorm) {
        add(b + "ln2.weight", {d}, false);
        add(b + "ln2.bias", {d}, false);
      }
      if (cfg.ffn_kind == FfnKind::standard) {
        add(b + "ffn.fc.weight", {dff, d}, true);
        add(b + "ffn.fc.bias", {dff}, false);
        add(b + "ffn.proj.weight", {d, dff}, true);
        add(b + "ffn.proj.bias", {d}, false);
      } else {
        add(b + "ffn.fused.weight", {d, d}, true);
        add(b + "ffn.fused.bias", {d}, false);
      }
      if (cfg.ffn_scaling) {
        add(b + "ffn_scale.alpha", {1}, false);
        add(b + "ffn_scale.beta", {1}, false);
      }
    }
  }
  if (cfg.final_norm) {
    add("ln_f.weight", {d}, false);
    add("ln_f.bias", {d}, false);
  }
  if (cfg.entropy_reg.enabled) add("entropy_theta", {L, H}, false);
  add("wte", {cfg.vocab_size, d}, true);
  add("wpe", {cfg.context, d}, true);
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
  size_t wte = kNone, wpe = kNone, lnfw = kNone, lnfb = kNone, theta = kNone;
  size_t tail_begin = 0;  // [lnf, theta, wte, wpe] bucket
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
  float* scalars = nullptr;  // [0] ce sum, [1] grad norm, [2] clip scale, [3..3+L) pen sums
  int32_t *tok = nullptr, *tgt = nullptr, *btok = nullptr, *bstart = nullptr, *border = nullptr;
  int U = 0;
  std::vector<int32_t> count, ht, hs, idx;  // host scratch of the bucket sort
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
    for (int l = 0; l < L; ++l) {
      auto& o_ = lo[l];
      std::string b = "blocks." + std::to_string(l) + ".";
      o_.ln1w = off(b + "ln1.weight");
      o_.ln1b = off(b + "ln1.bias");
      o_.qkvw = off(b + "attn.qkv.weight");
      o_.qkvb = off(b + "attn.qkv.bias");
      o_.projw = off(b + "attn.proj.weight");
      o_.projb = off(b + "attn.proj.bias");
      o_.temp = off(b + "attn.temp");
      o_.ln2w = off(b + "ln2.weight");
      o_.ln2b = off(b + "ln2.bias");
      o_.fcw = off(b + "ffn.fc.weight");
      o_.fcb = off(b + "ffn.fc.bias");
      o_.fprojw = off(b + "ffn.proj.weight");
      o_.fprojb = off(b + "ffn.proj.bias");
      o_.fusedw = off(b + "ffn.fused.weight");
      o_.fusedb = off(b + "ffn.fused.bias");
      o_.alpha = off(b + "ffn_scale.alpha");
      o_.beta = off(b + "ffn_scale.beta");
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
    tail_begin = lo[L - 1].end;  // [ln_f, theta, wte, wpe] follow the blocks
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
      if (q.decay) std::fill(hm.begin() + q.offset, hm.begin() + q.offset + q.size, 1);
    AERO_CUDA_CHECK(cudaMemcpy(mask, hm.data(), n, cudaMemcpyHostToDevice));
    AERO_CUDA_CHECK(cudaDeviceSynchronize());

    size_t N = size_t(Bmax) * Tmax, BHT = size_t(Bmax) * H * Tmax;
    acts.resize(L);
    bool reg = cfg.entropy_reg.enabled;
    for (int l = 0; l < L; ++l) {
      auto& a = acts[l];
      a.res = dalloc<float>(N * d);
      a.h1 = dalloc<bf16>(N * d);
      a.mean1 = dalloc<float>(N);
      a.rstd1 = dalloc<float>(N);
      a.q = dalloc<bf16>(N * d);
      a.k = dalloc<bf16>(N * d);
      a.v = dalloc<bf16>(N * d);
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
    dP = dalloc<bf16>(BHT * Tmax);
    dqkv = dalloc<bf16>(N * 3 * d);
    dtemp_row = dalloc<float>(BHT);
    scratch_n = std::max({norm_scratch_floats(int(N), d), colsum_scratch_floats(int(N), 3 * d),
                          colsum_scratch_floats(int(N), dff), size_t(H) * Tmax, size_t(4096)});
    scratch = dalloc<float>(scratch_n);
    scalars = dalloc<float>(8 + L);
    tok = dalloc<int32_t>(N);
    tgt = dalloc<int32_t>(N);
    btok = dalloc<int32_t>(N);
    bstart = dalloc<int32_t>(N + 1);
    border = dalloc<int32_t>(N);
    AERO_CUDA_CHECK(cudaDeviceSynchronize());  // the memsets above ran on the legacy stream
  }

  void free_all() {
    auto f = [](void* q) {
      if (q) cudaFree(q);
    };
    for (auto& a : acts)
      for (void* q : {(void*)a.res, (void*)a.h1, (void*)a.mean1, (void*)a.rstd1, (void*)a.q,
                      (void*)a.k, (void*)a.v, (void*)a.P, (void*)a.rowE, (void*)a.gE, (void*)a.pen,
                      (void*)a.y, (void*)a.xhat, (void*)a.h2, (void*)a.mean2, (void*)a.rstd2,
                      (void*)a.pre, (void*)a.f, (void*)a.m})
        f(q);
    for (void* q : {(void*)p, (void*)g, (void*)mom1, (void*)mom2, (void*)p16, (void*)mask,
                    (void*)res_final, (void*)hf, (void*)meanf, (void*)rstdf, (void*)logits,
                    (void*)loss_rows, (void*)qkv, (void*)yh, (void*)o, (void*)m_scratch,
                    (void*)dres, (void*)dh, (void*)dm, (void*)df, (void*)dy, (void*)dyh,
                    (void*)dq, (void*)dkk, (void*)dv, (void*)dP, (void*)dqkv, (void*)dtemp_row,
                    (void*)scratch, (void*)scalars, (void*)tok, (void*)tgt, (void*)btok,
                    (void*)bstart, (void*)border})
      f(q);
    for (auto e : layer_done) cudaEventDestroy(e);
    if (comm_done) cudaEventDestroy(comm_done);
    if (blas) cublasDestroy(blas);
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
      case Activation::leaky_relu: return Act::leaky_relu;
      default: return Act::identity;
    }
  }
  // Weight of one penalty row in L_ent (before lambda).
  double reg_row_weight(int B_, int T_) const {
    double c = 1.0 / (double(L) * H);
    if (cfg.entropy_reg.reduction == model::EntropyReduction::mean) c /= double(B_) * T_;
    return c;
  }

  // ---------------------------------------------------------------------------------------
  GpuStats forward(const int32_t* tokens, const int32_t* targets, int B_, int T_, bool training,
                   float gscale) {
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
    AERO_CUDA_CHECK(cudaMemcpyAsync(tok, tokens, N * 4, cudaMemcpyHostToDevice, s));
    if (targets) AERO_CUDA_CHECK(cudaMemcpyAsync(tgt, targets, N * 4, cudaMemcpyHostToDevice, s));
    if (trained_forward) {
      // Group rows by token for the deterministic embedding backward (counting sort, rows of
      // one token in increasing order).
      count.assign(size_t(V) + 1, 0);
      for (int i = 0; i < N; ++i) ++count[size_t(tokens[i]) + 1];
      ht.clear();
      hs.clear();
      for (int v = 0; v < V; ++v) {
        if (count[v + 1] > 0) {
          ht.push_back(v);
          hs.push_back(count[v]);
        }
        count[v + 1] += count[v];
      }
      hs.push_back(N);
      idx.resize(N);
      for (int i = 0; i < N; ++i) idx[count[tokens[i]]++] = i;
      U = int(ht.size());
      // Pageable sources are staged before these return; stream order keeps them behind the
      // previous step's backward, which still reads the old buckets.
      AERO_CUDA_CHECK(cudaMemcpyAsync(btok, ht.data(), U * 4, cudaMemcpyHostToDevice, s));
      AERO_CUDA_CHECK(cudaMemcpyAsync(bstart, hs.data(), (U + 1) * 4, cudaMemcpyHostToDevice, s));
      AERO_CUDA_CHECK(cudaMemcpyAsync(border, idx.data(), N * 4, cudaMemcpyHostToDevice, s));
    }
    const bool reg = trained_forward && cfg.entropy_reg.enabled;
    const float lnT = std::log(float(T));
    const double rw = reg_row_weight(B, T) * (cfg.entropy_reg.reduction ==
                                                      model::EntropyReduction::sum
                                                  ? world
                                                  : 1);
    const float coef = float(cfg.entropy_reg.lambda * rw) * gscale;

    nmarks = 0;
    mark("start");
    embedding_forward(acts[0].res, tok, P_(wte), P_(wpe), N, T, d, s);
    residual_norm_forward(acts[0].res, acts[0].h1, acts[0].mean1, acts[0].rstd1, acts[0].res,
                          nullptr, nullptr, nullptr, nullptr, P_(lo[0].ln1w), P_(lo[0].ln1b), N,
                          d, s);
    mark("embedding + norm");
    for (int l = 0; l < L; ++l) {
      auto& a = acts[l];
      auto& w = lo[l];
      gemm(blas, s, false, true, N, 3 * d, d, a.h1, d, W_(w.qkvw), d, qkv, CUDA_R_16BF, 3 * d,
           1.f, 0.f);
      mark("fwd gemm qkv");
      qkv_split(a.q, a.k, a.v, qkv, P_(w.qkvb), B, T, H, dk, s);
      mark("fwd qkv split");
      const long long sQ = (long long)T * dk, sP = (long long)T * T;
      gemm(blas, s, false, true, T, T, dk, a.q, dk, a.k, dk, a.P, CUDA_R_16BF, T, 1.f, 0.f, B * H,
           sQ, sQ, sP);
      mark("fwd gemm QK^T");
      AttnSoftmaxArgs sa;
      sa.P = a.P;
      sa.B = B;
      sa.H = H;
      sa.T = T;
      sa.scale = 1.f / std::sqrt(float(dk));
      sa.temp = P_(w.temp);
      sa.ctx = cfg.context;
      sa.temp_param = temp_param();
      sa.rowE = a.rowE;
      if (reg) {
        sa.theta = P_(theta) + size_t(l) * H;
        sa.lnT = lnT;
        sa.tol = float(cfg.entropy_reg.gamma) * lnT;
        sa.coef = coef;
        sa.pen = a.pen;
        sa.gE = a.gE;
      }
      attn_softmax_forward(sa, s);
      mark("fwd softmax+entropy");
      gemm(blas, s, false, false, T, dk, T, a.P, T, a.v, dk, yh, CUDA_R_16BF, dk, 1.f, 0.f, B * H,
           sP, sQ, sQ);
      mark("fwd gemm PV");
      heads_merge(a.y, yh, B, T, H, dk, s);
      mark("fwd heads merge");
      gemm(blas, s, false, true, N, d, d, a.y, d, W_(w.projw), d, o, CUDA_R_32F, d, 1.f, 0.f);
      mark("fwd gemm proj");

      const bool last = l + 1 == L;
      float* res_next = last ? res_final : acts[l + 1].res;
      bf16* h_next = last ? hf : acts[l + 1].h1;
      float* mean_next = last ? meanf : acts[l + 1].mean1;
      float* rstd_next = last ? rstdf : acts[l + 1].rstd1;
      const float* lnw_next = last ? P_(lnfw) : P_(lo[l + 1].ln1w);
      const float* lnb_next = last ? P_(lnfb) : P_(lo[l + 1].ln1b);
      if (cfg.has_ffn(l)) {
        residual_norm_forward(a.xhat, a.h2, a.mean2, a.rstd2, a.res, nullptr, o, nullptr,
                              P_(w.projb), P_(w.ln2w), P_(w.ln2b), N, d, s);
        mark("fwd residual+norm");
        float* m = a.m ? a.m : m_scratch;
        const float* mb;
        if (cfg.ffn_kind == FfnKind::standard) {
          gemm(blas, s, false, true, N, dff, d, a.h2, d, W_(w.fcw), d, a.pre, CUDA_R_16BF, dff,
               1.f, 0.f);
          mark("fwd gemm fc");
          bias_act_forward(a.pre, a.f, P_(w.fcb), N, dff, act(), float(cfg.leaky_slope), s);
          mark("fwd bias+act");
          gemm(blas, s, false, true, N, d, dff, a.f, dff, W_(w.fprojw), dff, m, CUDA_R_32F, d,
               1.f, 0.f);
          mark("fwd gemm ffn proj");
          mb = P_(w.fprojb);
        } else {
          gemm(blas, s, false, true, N, d, d, a.h2, d, W_(w.fusedw), d, m, CUDA_R_32F, d, 1.f,
               0.f);
          mark("fwd gemm fused ffn");
          mb = P_(w.fusedb);
        }
        residual_norm_forward(res_next, h_next, mean_next, rstd_next, a.xhat, P_(w.beta), m,
                              P_(w.alpha), mb, lnw_next, lnb_next, N, d, s);
        mark("fwd residual+norm");
      } else {
        residual_norm_forward(res_next, h_next, mean_next, rstd_next, a.res, nullptr, o, nullptr,
                              P_(w.projb), lnw_next, lnb_next, N, d, s);
        mark("fwd residual+norm");
      }
    }
    gemm(blas, s, false, true, N, V, d, hf, d, W_(wte), d, logits, CUDA_R_16BF, ldV, 1.f, 0.f);
    mark("fwd gemm lm head");
    GpuStats st;
    if (!has_targets) return st;
    cross_entropy_forward_backward(logits, loss_rows, tgt, N, V, ldV, gscale / float(N),
                                   trained_forward, s);
    mark("cross-entropy (fused fwd+bwd)");
    sum_f32(scalars, loss_rows, N, scratch, s);
    if (reg)
      for (int l = 0; l < L; ++l) sum_f32(scalars + 8 + l, acts[l].pen, size_t(B) * H * T, scratch, s);
    std::vector<float> h(8 + L, 0.f);
    AERO_CUDA_CHECK(cudaMemcpyAsync(h.data(), scalars, h.size() * 4, cudaMemcpyDeviceToHost, s));
    AERO_CUDA_CHECK(cudaStreamSynchronize(s));
    mark("loss sums");
    prof_collect();
    st.ce = double(h[0]) / N;
    if (reg) {
      double pen = 0;
      for (int l = 0; l < L; ++l) pen += h[8 + l];
      st.ent_reg = pen * reg_row_weight(B, T);
    }
    st.loss = st.ce + cfg.entropy_reg.lambda * st.ent_reg;
    return st;
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
    // LM head (tied): logits = hf wte^T
    gemm(blas, s, false, false, N, d, V, logits, ldV, W_(wte), d, dh, CUDA_R_32F, d, 1.f, 0.f);
    gemm(blas, s, true, false, V, d, N, logits, ldV, hf, d, G_(wte), CUDA_R_32F, d, 1.f, 1.f);
    mark("bwd gemm lm head (2)");
    AERO_CUDA_CHECK(cudaMemsetAsync(dres, 0, size_t(N) * d * 4, s));
    norm_backward(dres, dh, res_final, meanf, rstdf, P_(lnfw), G_(lnfw), G_(lnfb), scratch, N, d,
                  s);
    mark("bwd final norm");
    const float lnT = std::log(float(T));
    for (int l = L - 1; l >= 0; --l) {
      auto& a = acts[l];
      auto& w = lo[l];
      if (cfg.has_ffn(l)) {
        if (cfg.ffn_scaling)
          ffn_scale_backward(dm, dres, a.xhat, a.m, P_(cfg.ffn_kind == FfnKind::standard ? w.fprojb : w.fusedb),
                             P_(w.alpha), P_(w.beta), G_(w.alpha), G_(w.beta), scratch, N, d, s);
        else
          f32_to_bf16(dm, dres, size_t(N) * d, s);
        mark("bwd ffn scale / cast");
        if (cfg.ffn_kind == FfnKind::standard) {
          colsum(G_(w.fprojb), dm, N, d, scratch, s);
          mark("bwd bias sums");
          gemm(blas, s, true, false, d, dff, N, dm, d, a.f, dff, G_(w.fprojw), CUDA_R_32F, dff,
               1.f, 1.f);
          gemm(blas, s, false, false, N, dff, d, dm, d, W_(w.fprojw), dff, df, CUDA_R_16BF, dff,
               1.f, 0.f);
          mark("bwd gemm ffn proj (2)");
          act_backward(df, df, a.pre, N, dff, act(), float(cfg.leaky_slope), s);
          mark("bwd act");
          colsum(G_(w.fcb), df, N, dff, scratch, s);
          mark("bwd bias sums");
          gemm(blas, s, true, false, dff, d, N, df, dff, a.h2, d, G_(w.fcw), CUDA_R_32F, d, 1.f,
               1.f);
          gemm(blas, s, false, false, N, d, dff, df, dff, W_(w.fcw), d, dh, CUDA_R_32F, d, 1.f,
               0.f);
          mark("bwd gemm fc (2)");
        } else {
          colsum(G_(w.fusedb), dm, N, d, scratch, s);
          mark("bwd bias sums");
          gemm(blas, s, true, false, d, d, N, dm, d, a.h2, d, G_(w.fusedw), CUDA_R_32F, d, 1.f,
               1.f);
          gemm(blas, s, false, false, N, d, d, dm, d, W_(w.fusedw), d, dh, CUDA_R_32F, d, 1.f,
               0.f);
          mark("bwd gemm fused ffn (2)");
        }
        norm_backward(dres, dh, a.xhat, a.mean2, a.rstd2, P_(w.ln2w), G_(w.ln2w), G_(w.ln2b),
                      scratch, N, d, s);
        mark("bwd norm");
      }
      // attention output projection: xhat = res + y Wo^T + bo
      f32_to_bf16(dm, dres, size_t(N) * d, s);
      colsum(G_(w.projb), dm, N, d, scratch, s);
      mark("bwd cast + bias sums");
      gemm(blas, s, true, false, d, d, N, dm, d, a.y, d, G_(w.projw), CUDA_R_32F, d, 1.f, 1.f);
      gemm(blas, s, false, false, N, d, d, dm, d, W_(w.projw), d, dy, CUDA_R_16BF, d, 1.f, 0.f);
      mark("bwd gemm proj (2)");
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
      if (w.temp != kNone) temp_grad_reduce(G_(w.temp), dtemp_row, B, H, T, cfg.context, s);
      if (cfg.entropy_reg.enabled)
        theta_grad_reduce(G_(theta) + size_t(l) * H, a.gE, B, H, T, -lnT, scratch, s);
      mark("bwd temp/theta sums");
      gemm(blas, s, false, false, T, dk, T, dP, T, a.k, dk, dq, CUDA_R_16BF, dk, 1.f, 0.f, B * H,
           sP, sQ, sQ);
      gemm(blas, s, true, false, T, dk, T, dP, T, a.q, dk, dkk, CUDA_R_16BF, dk, 1.f, 0.f, B * H,
           sP, sQ, sQ);
      mark("bwd gemm dQ, dK");
      qkv_merge(dqkv, dq, dkk, dv, B, T, H, dk, s);
      mark("bwd qkv merge");
      colsum(G_(w.qkvb), dqkv, N, 3 * d, scratch, s);
      mark("bwd bias sums");
      gemm(blas, s, true, false, 3 * d, d, N, dqkv, 3 * d, a.h1, d, G_(w.qkvw), CUDA_R_32F, d,
           1.f, 1.f);
      gemm(blas, s, false, false, N, d, 3 * d, dqkv, 3 * d, W_(w.qkvw), d, dh, CUDA_R_32F, d, 1.f,
           0.f);
      mark("bwd gemm qkv (2)");
      norm_backward(dres, dh, a.res, a.mean1, a.rstd1, P_(w.ln1w), G_(w.ln1w), G_(w.ln1b),
                    scratch, N, d, s);
      mark("bwd norm");
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
size_t GpuModel::num_parameters() const { return impl_->n; }

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
    if (q.decay) {
      double sd = (ends("attn.proj.weight") || ends("ffn.proj.weight") || ends("ffn.fused.weight"))
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
    }  // biases stay 0
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
    st.tensors[prefix + q.name] = StTensor::from_f32(arena.data() + q.offset, q.shape);
  return st;
}
void arena_from_safetensors(const std::vector<GpuParam>& ps, std::vector<float>& arena,
                            const std::string& prefix, const SafeTensors& st,
                            const std::string& path) {
  for (auto& q : ps) {
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
