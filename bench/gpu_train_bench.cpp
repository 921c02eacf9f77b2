// GPU training-step benchmark and data-parallel driver.
//   gpu_train_bench --rung baseline|aero [--batch 256 --seq 128 --steps 30 --warmup 5]
//                   [--vocab 50304] [--layers 12 --heads 12 --dmodel 768] [--gemm] [--json F]
// prints tokens/s of full training steps (forward, backward, clip, AdamW) on random tokens, and
// MFU against the bf16 matrix rate measured in the same process (--gemm: 8192^3 cuBLAS).
//   --curve: a learnable synthetic stream (next token = (a * token + c) mod V) and the loss of
//            every step, for comparing 1-GPU and N-GPU loss curves at the same global batch.
//   --world N --rank R --id-file F: one process per GPU, gradients all-reduced with NCCL during
//            backward; --batch is the per-GPU batch.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "core/rng.h"
#include "cuda/common.h"
#include "cuda/gpu_model.h"
#include "cuda/kernels.h"

#ifdef AERO_HAVE_NCCL
#include <nccl.h>
#endif

using namespace aero::cuda;

namespace {
struct Args {
  std::string rung = "baseline";
  int batch = 256, seq = 128, steps = 30, warmup = 5, vocab = 50304;
  int layers = 12, heads = 12, dmodel = 768;
  bool gemm = false, curve = false, gemm_shapes = false;
  int world = 1, rank = 0;
  std::string id_file, json;
  double lr = 6e-4;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", k.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (k == "--rung") a.rung = next();
    else if (k == "--batch") a.batch = std::stoi(next());
    else if (k == "--seq") a.seq = std::stoi(next());
    else if (k == "--steps") a.steps = std::stoi(next());
    else if (k == "--warmup") a.warmup = std::stoi(next());
    else if (k == "--vocab") a.vocab = std::stoi(next());
    else if (k == "--layers") a.layers = std::stoi(next());
    else if (k == "--heads") a.heads = std::stoi(next());
    else if (k == "--dmodel") a.dmodel = std::stoi(next());
    else if (k == "--lr") a.lr = std::stod(next());
    else if (k == "--gemm") a.gemm = true;
    else if (k == "--gemm-shapes") a.gemm_shapes = true;
    else if (k == "--curve") a.curve = true;
    else if (k == "--profile") setenv("AERO_GPU_PROFILE", "1", 1);
    else if (k == "--world") a.world = std::stoi(next());
    else if (k == "--rank") a.rank = std::stoi(next());
    else if (k == "--id-file") a.id_file = next();
    else if (k == "--json") a.json = next();
    else {
      std::fprintf(stderr, "unknown argument %s\n", k.c_str());
      std::exit(2);
    }
  }
  return a;
}

aero::model::ModelConfig make_config(const Args& a) {
  aero::model::ModelConfig c;
  c.n_layer = a.layers;
  c.n_head = a.heads;
  c.d_model = a.dmodel;
  c.d_ff = 4 * a.dmodel;
  c.context = a.seq;
  c.vocab_size = a.vocab;
  if (a.rung == "aero") {  // EReg(SM(t)+ScFuFFN)
    c.norm = aero::model::Norm::none;
    c.final_norm = false;
    c.ffn_kind = aero::model::FfnKind::fused;
    c.ffn_act = aero::model::Activation::identity;
    c.ffn_scaling = true;
    c.temperature = true;
    c.entropy_reg.enabled = true;
  } else if (a.rung != "baseline") {
    std::fprintf(stderr, "--rung baseline|aero\n");
    std::exit(2);
  }
  return c;
}

// Training FLOPs per token (PaLM, appendix B): 6 N + 12 L T d, N = matrix parameters incl. the
// tied LM head.
double flops_per_token(const aero::model::ModelConfig& c, int T) {
  double d = c.d_model, N = 0;
  for (int l = 0; l < c.n_layer; ++l) {
    N += 4 * d * d;
    if (c.has_ffn(l)) N += c.ffn_kind == aero::model::FfnKind::fused ? d * d : 2 * d * c.d_ff;
  }
  N += double(c.vocab_size) * d;
  return 6 * N + 12.0 * c.n_layer * T * d;
}

double measure_gemm_tflops() {
  const int n = 8192;
  bf16 *A, *B, *D;
  AERO_CUDA_CHECK(cudaMalloc(&A, size_t(n) * n * 2));
  AERO_CUDA_CHECK(cudaMalloc(&B, size_t(n) * n * 2));
  AERO_CUDA_CHECK(cudaMalloc(&D, size_t(n) * n * 2));
  {
    std::vector<bf16> h(size_t(n) * n);
    aero::Rng r(1);
    for (auto& x : h) x = __float2bfloat16(float(r.normal()));
    AERO_CUDA_CHECK(cudaMemcpy(A, h.data(), h.size() * 2, cudaMemcpyHostToDevice));
    AERO_CUDA_CHECK(cudaMemcpy(B, h.data(), h.size() * 2, cudaMemcpyHostToDevice));
  }
  cublasHandle_t hd;
  AERO_CUBLAS_CHECK(cublasCreate(&hd));
  float one = 1, zero = 0;
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::vector<float> ms;
  for (int i = 0; i < 13; ++i) {
    cudaEventRecord(e0);
    AERO_CUBLAS_CHECK(cublasGemmEx(hd, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, A, CUDA_R_16BF, n,
                                   B, CUDA_R_16BF, n, &zero, D, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F,
                                   CUBLAS_GEMM_DEFAULT));
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float t;
    cudaEventElapsedTime(&t, e0, e1);
    if (i >= 3) ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  cublasDestroy(hd);
  cudaFree(A);
  cudaFree(B);
  cudaFree(D);
  return 2.0 * n * n * n / (ms[ms.size() / 2] * 1e-3) / 1e12;
}

// The model's matrix products at GPT-2 124M, 256 x 128, through aero::cuda::gemm, in isolation
// (diagnostic: which shapes reach the bf16 rate).
void gemm_shapes() {
  const int N = 32768, d = 768;
  std::vector<bf16> h(size_t(N) * 4 * d);
  aero::Rng r(3);
  for (auto& x : h) x = __float2bfloat16(float(r.normal()));
  bf16 *X, *W, *Y;
  float* Yf;
  AERO_CUDA_CHECK(cudaMalloc(&X, h.size() * 2));
  AERO_CUDA_CHECK(cudaMalloc(&W, size_t(4 * d) * 4 * d * 2));
  AERO_CUDA_CHECK(cudaMalloc(&Y, h.size() * 2));
  AERO_CUDA_CHECK(cudaMalloc(&Yf, h.size() * 4));
  AERO_CUDA_CHECK(cudaMemcpy(X, h.data(), h.size() * 2, cudaMemcpyHostToDevice));
  AERO_CUDA_CHECK(cudaMemcpy(W, h.data(), size_t(4 * d) * 4 * d * 2, cudaMemcpyHostToDevice));
  AERO_CUDA_CHECK(cudaMemcpy(Yf, h.data(), h.size() * 2, cudaMemcpyHostToDevice));  // any finite bits
  cublasHandle_t hd;
  AERO_CUBLAS_CHECK(cublasCreate(&hd));
  cudaStream_t st;
  AERO_CUDA_CHECK(cudaStreamCreate(&st));
  struct Shape {
    const char* name;
    bool ta, tb;
    int M, Nn, K;
    bool f32;
    float beta;
    int wofs;  // element offset of the weight pointer (alignment)
  };
  Shape shapes[] = {
      {"fwd qkv  X[N,d] W^T -> [N,3d] bf16", false, true, N, 3 * d, d, false, 0, 0},
      {"fwd qkv, fp32 out", false, true, N, 3 * d, d, true, 0, 0},
      {"fwd fc   X[N,d] W^T -> [N,4d] bf16", false, true, N, 4 * d, d, false, 0, 0},
      {"fwd proj X[N,d] W^T -> [N,d] fp32", false, true, N, d, d, true, 0, 0},
      {"fwd proj, bf16 out", false, true, N, d, d, false, 0, 0},
      {"fwd proj, weight offset 2 elements", false, true, N, d, d, true, 0, 2},
      {"fwd ffn proj [N,4d] W^T -> [N,d] fp32", false, true, N, d, 4 * d, true, 0, 0},
      {"bwd dX qkv [N,3d] W -> [N,d] fp32", false, false, N, d, 3 * d, true, 0, 0},
      {"bwd dW qkv [3d,d] += dY^T X", true, false, 3 * d, d, N, true, 1, 0},
      {"bwd dW proj [d,d] += dY^T X", true, false, d, d, N, true, 1, 0},
      {"bwd dW fc [4d,d] += dY^T X", true, false, 4 * d, d, N, true, 1, 0},
  };
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::printf("\n| product (GPT-2 124M, N = 32768 rows) | ms | TFLOP/s |\n|---|---|---|\n");
  for (auto& sh : shapes) {
    int lda = sh.ta ? sh.M : sh.K, ldb = sh.tb ? sh.K : sh.Nn;
    const bf16* A = sh.ta ? Y : X;  // dY for weight gradients
    const bf16* B = sh.ta ? X : W + sh.wofs;
    void* D = sh.f32 ? (void*)Yf : (void*)Y;
    if (sh.ta) D = Yf;
    std::vector<float> ms;
    for (int i = 0; i < 13; ++i) {
      cudaEventRecord(e0, st);
      aero::cuda::gemm(hd, st, sh.ta, sh.tb, sh.M, sh.Nn, sh.K, A, lda, B, ldb, D,
                       sh.f32 ? CUDA_R_32F : CUDA_R_16BF, sh.Nn, 1.f, sh.beta);
      cudaEventRecord(e1, st);
      cudaEventSynchronize(e1);
      float t;
      cudaEventElapsedTime(&t, e0, e1);
      if (i >= 3) ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    double t = ms[ms.size() / 2];
    std::printf("| %s | %.3f | %.0f |\n", sh.name, t, 2.0 * sh.M * sh.Nn * sh.K / (t * 1e-3) / 1e12);
  }
  cublasDestroy(hd);
  cudaFree(X);
  cudaFree(W);
  cudaFree(Y);
  cudaFree(Yf);
}

void synthetic_batch(const Args& a, int step, bool learnable, std::vector<int32_t>& tok,
                     std::vector<int32_t>& tgt) {
  const int B = a.batch, T = a.seq, V = a.vocab;
  tok.resize(size_t(B) * T);
  tgt.resize(size_t(B) * T);
  for (int b = 0; b < B; ++b) {
    // global sequence index: the same global batch whatever the number of ranks
    uint64_t gseq = uint64_t(step) * B * a.world + uint64_t(a.rank) * B + b;
    aero::Rng r(gseq * 7919 + 13);
    int32_t x = int32_t(r.below(V));
    const int32_t mul = 31, add = 7;
    for (int t = 0; t <= T; ++t) {
      int32_t nx = learnable ? int32_t((int64_t(x) * mul + add) % V) : int32_t(r.below(V));
      if (t < T) tok[size_t(b) * T + t] = x;
      if (t > 0) tgt[size_t(b) * T + t - 1] = x;
      x = nx;
    }
  }
}
}  // namespace

int main(int argc, char** argv) {
  Args a = parse(argc, argv);
  if (device_count() == 0) {
    std::printf("SKIP gpu_train_bench: no CUDA device\n");
    return 0;
  }
  try {
    if (a.gemm_shapes) {
      gemm_shapes();
      return 0;
    }
    void* comm = nullptr;
#ifdef AERO_HAVE_NCCL
    ncclComm_t nc = nullptr;
    if (a.world > 1) {
      AERO_CUDA_CHECK(cudaSetDevice(a.rank));
      ncclUniqueId id;
      if (a.rank == 0) {
        if (ncclGetUniqueId(&id) != ncclSuccess) fail("ncclGetUniqueId failed");
        std::string tmp = a.id_file + ".tmp";
        std::ofstream(tmp, std::ios::binary).write(reinterpret_cast<char*>(&id), sizeof id);
        std::rename(tmp.c_str(), a.id_file.c_str());
      } else {
        for (int i = 0;; ++i) {
          std::ifstream f(a.id_file, std::ios::binary);
          if (f && f.read(reinterpret_cast<char*>(&id), sizeof id)) break;
          if (i > 600) fail("no NCCL id in " + a.id_file);
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
      }
      ncclResult_t r = ncclCommInitRank(&nc, a.world, id, a.rank);
      if (r != ncclSuccess) fail(std::string("ncclCommInitRank: ") + ncclGetErrorString(r));
      comm = nc;
    }
#else
    if (a.world > 1) fail("built without NCCL");
#endif
    double gemm_tf = a.gemm && a.rank == 0 ? measure_gemm_tflops() : 0.0;
    auto cfg = make_config(a);
    GpuModel m(cfg, a.batch, a.seq, a.world > 1 ? a.rank : 0);
    m.init_weights(1234);
    if (comm) m.set_data_parallel(comm, a.world);
    aero::model::TrainConfig tc;
    tc.grad_clip = 1.0;
    tc.beta2 = 0.95;
    std::vector<int32_t> tok, tgt;
    float* dloss = nullptr;
    AERO_CUDA_CHECK(cudaMalloc(&dloss, 4));
    // Loss of the global batch: CE averaged over ranks; L_ent summed over ranks for the sum
    // reduction (it sums over batch rows), averaged for the mean reduction.
    auto allreduce = [&](double local, bool average) {
#ifdef AERO_HAVE_NCCL
      if (!comm) return local;
      float v = float(local);
      AERO_CUDA_CHECK(cudaMemcpy(dloss, &v, 4, cudaMemcpyHostToDevice));
      ncclAllReduce(dloss, dloss, 1, ncclFloat, average ? ncclAvg : ncclSum, nc, nullptr);
      AERO_CUDA_CHECK(cudaDeviceSynchronize());
      AERO_CUDA_CHECK(cudaMemcpy(&v, dloss, 4, cudaMemcpyDeviceToHost));
      return double(v);
#else
      (void)average;
      return local;
#endif
    };
    auto global_loss = [&](const GpuStats& st) {
      double ce = allreduce(st.ce, true);
      bool sum = cfg.entropy_reg.reduction == aero::model::EntropyReduction::sum;
      double ent = cfg.entropy_reg.enabled ? allreduce(st.ent_reg, !sum) : 0.0;
      return ce + cfg.entropy_reg.lambda * ent;
    };
    const int total = a.warmup + a.steps;
    std::vector<double> step_ms, fwd_ms, bwd_ms, opt_ms;
    std::vector<double> losses;
    using clk = std::chrono::steady_clock;
    auto ms = [](clk::time_point x, clk::time_point y) {
      return std::chrono::duration<double, std::milli>(y - x).count();
    };
    for (int s = 0; s < total; ++s) {
      synthetic_batch(a, s, a.curve, tok, tgt);
      m.synchronize();
      if (s == a.warmup) m.profile_reset();  // the profile covers the timed steps only
      auto t0 = clk::now();
      m.zero_grad();
      GpuStats st = m.forward(tok.data(), tgt.data(), a.batch, a.seq, true);  // syncs (loss)
      auto t1 = clk::now();
      m.backward();
      m.synchronize();
      auto t2 = clk::now();
      double gn = m.optimizer_step(tc, a.lr, s + 1);  // syncs (grad norm)
      auto t3 = clk::now();
      if (s >= a.warmup) {
        step_ms.push_back(ms(t0, t3));
        fwd_ms.push_back(ms(t0, t1));
        bwd_ms.push_back(ms(t1, t2));
        opt_ms.push_back(ms(t2, t3));
      }
      double gl = global_loss(st);
      losses.push_back(gl);
      if (a.rank == 0 && (a.curve || s < 3 || s == total - 1))
        std::printf("step %3d loss %.5f ce %.5f ent_reg %.3f grad_norm %.4f ms %.2f\n", s, gl,
                    st.ce, st.ent_reg, gn, ms(t0, t3));
    }
    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v.empty() ? 0.0 : v[v.size() / 2];
    };
    if (a.rank == 0 && std::getenv("AERO_GPU_PROFILE"))
      std::printf("profile over the %d timed steps (ms summed; / %d for ms per step):\n%s",
                  a.steps, a.steps, m.profile_report().c_str());
    if (a.rank == 0)
      std::printf("breakdown (median ms): forward+loss %.2f, backward %.2f, clip+AdamW %.2f\n",
                  median(fwd_ms), median(bwd_ms), median(opt_ms));
    std::sort(step_ms.begin(), step_ms.end());
    double med = step_ms.empty() ? 0 : step_ms[step_ms.size() / 2];
    double tps = double(a.batch) * a.seq * a.world / (med * 1e-3);
    double fpt = flops_per_token(cfg, a.seq);
    if (a.rank == 0) {
      std::printf("\n| rung | world | batch/GPU x T | params | median step ms | tokens/s | model TFLOP/s |");
      std::printf("%s\n", gemm_tf > 0 ? " bf16 GEMM TFLOP/s | MFU |" : "");
      double tf = tps * fpt / 1e12 / a.world;
      std::printf("| %s | %d | %d x %d | %.1fM | %.2f | %.0f | %.1f per GPU |", a.rung.c_str(), a.world,
                  a.batch, a.seq, m.num_parameters() / 1e6, med, tps, tf);
      if (gemm_tf > 0) std::printf(" %.0f | %.1f%% |", gemm_tf, 100 * tf / gemm_tf);
      std::printf("\n");
      if (!a.json.empty()) {
        std::ofstream f(a.json);
        f << "{\"rung\":\"" << a.rung << "\",\"world\":" << a.world << ",\"batch\":" << a.batch
          << ",\"seq\":" << a.seq << ",\"median_step_ms\":" << med << ",\"tokens_per_s\":" << tps
          << ",\"flops_per_token\":" << fpt << ",\"gemm_tflops\":" << gemm_tf << ",\"losses\":[";
        for (size_t i = 0; i < losses.size(); ++i) f << (i ? "," : "") << losses[i];
        f << "]}\n";
      }
    }
    cudaFree(dloss);
#ifdef AERO_HAVE_NCCL
    if (nc) ncclCommDestroy(nc);
#endif
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpu_train_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
