// CPU training throughput of the aero trainer, against the machine's own limit.
//
// Measures, in one process:
//  1. the BLAS single-precision GEMM rate (GFLOP/s) on a 1024^3 product and on the model's
//     own shapes (B*T rows x the linear layers and the LM head, all three training products);
//  2. trainer tokens/s: full optimizer steps (zero_grad, forward, backward, clip, AdamW) on
//     the built-in synthetic corpus, after warm-up steps, with per-phase times;
//  3. the limit = GEMM rate / training FLOPs per token, with FLOPs per token
//     6 * N_matmul + 12 * L * T * d (Kaplan et al. 2020 / PaLM appendix B convention:
//     N_matmul = weights used in matrix products, LM head included, embeddings lookups not;
//     attention scores and mixing counted in full), and the achieved share of it.
// Prints a table and writes one JSON object (--json PATH) for bench/run_train_bench.sh.
//
//   OPENBLAS_CORETYPE=SkylakeX build/bench_train --threads 2
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/blas.h"
#include "core/error.h"
#include "core/files.h"
#include "model/config.h"
#include "model/model.h"
#include "train/batcher.h"
#include "train/grad_clip.h"
#include "train/optimizer.h"
#include "train/synthetic_corpus.h"

using Clock = std::chrono::steady_clock;
static double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// GFLOP/s of C[m,n] = A op B over `reps` repetitions (one warm-up call first).
static double gemm_rate(bool ta, bool tb, int m, int n, int k, int reps) {
  std::vector<float> A(size_t(m) * k, 0.01f), B(size_t(k) * n, 0.02f), C(size_t(m) * n);
  auto run = [&] {
    aero::sgemm(ta, tb, m, n, k, 1.0f, A.data(), ta ? m : k, B.data(), tb ? k : n, 0.0f,
                C.data(), n);
  };
  run();
  // Best of 5 trials: on a shared machine other processes only ever slow a trial down, so
  // the fastest one is the closest to what the BLAS can do.
  double best = 0;
  for (int trial = 0; trial < 5; ++trial) {
    auto t0 = Clock::now();
    for (int r = 0; r < reps; ++r) run();
    best = std::max(best, 2.0 * m * n * k * reps / since(t0) / 1e9);
  }
  return best;
}

int main(int argc, char** argv) {
  int L = 4, H = 4, d = 256, T = 128, V = 8192, B = 8, threads = 2, steps = 10, warmup = 3;
  std::string json_path, rung;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) aero::fail("bench_train: ", a, " needs a value");
      return argv[++i];
    };
    if (a == "--layers") L = std::stoi(next());
    else if (a == "--heads") H = std::stoi(next());
    else if (a == "--d") d = std::stoi(next());
    else if (a == "--T") T = std::stoi(next());
    else if (a == "--vocab") V = std::stoi(next());
    else if (a == "--batch") B = std::stoi(next());
    else if (a == "--threads") threads = std::stoi(next());
    else if (a == "--steps") steps = std::stoi(next());
    else if (a == "--warmup") warmup = std::stoi(next());
    else if (a == "--rung") rung = next();
    else if (a == "--json") json_path = next();
    else {
      std::fprintf(stderr,
                   "usage: bench_train [--layers 4 --heads 4 --d 256 --T 128 --vocab 8192 "
                   "--batch 8 --threads 2 --steps 10 --warmup 3 --rung NAME --json PATH]\n");
      return 2;
    }
  }
  try {
    aero::set_num_threads(threads);
    const char* core = std::getenv("OPENBLAS_CORETYPE");
    std::vector<std::string> sets = {
        "model.n_layer=" + std::to_string(L), "model.n_head=" + std::to_string(H),
        "model.d_model=" + std::to_string(d), "model.context=" + std::to_string(T),
        "model.vocab_size=" + std::to_string(V), "train.batch_size=" + std::to_string(B),
        "train.seq_len=" + std::to_string(T)};
    aero::model::RunConfig cfg = aero::model::build_run_config("", "tiny", rung, sets);
    const int N = B * T, F = cfg.model.d_ff;

    // 1. GEMM rates.
    const double square = gemm_rate(false, false, 1024, 1024, 1024, 4);
    // The model's products, forward (x W^T), input grad (dy W), weight grad (dy^T x), with the
    // time-weighted mean rate = total FLOPs / total time.
    struct Shape { int out, in; };
    std::vector<Shape> shapes = {{3 * d, d}, {d, d}, {F, d}, {d, F}, {V, d}};
    double flops = 0, secs = 0;
    for (auto s : shapes) {
      const int reps = 3;
      double f = 2.0 * N * s.out * s.in * reps;
      for (int kind = 0; kind < 3; ++kind) {
        double r = kind == 0 ? gemm_rate(false, true, N, s.out, s.in, reps)
                 : kind == 1 ? gemm_rate(false, false, N, s.in, s.out, reps)
                             : gemm_rate(true, false, s.out, s.in, N, reps);
        flops += f;
        secs += f / (r * 1e9);
      }
    }
    const double model_shapes = flops / secs / 1e9;

    // 2. Trainer steps.
    aero::model::Model m(cfg.model, B, T);
    m.init_weights(1);
    aero::train::AdamW opt(m.params(), {});
    auto ds = aero::train::synthetic_corpus(uint32_t(V), "train");
    aero::train::ChunkBatcher batcher(ds, T, 1);
    std::vector<int32_t> tok(static_cast<size_t>(N)), tgt(static_cast<size_t>(N));
    double t_fwd = 0, t_bwd = 0, t_opt = 0, t_all = 0, loss = 0;
    std::vector<double> step_s;
    for (int s = 0; s < warmup + steps; ++s) {
      batcher.next_batch(B, tok.data(), tgt.data());
      auto t0 = Clock::now();
      m.zero_grad();
      loss = m.forward(tok.data(), tgt.data(), B, T, true).loss;
      auto t1 = Clock::now();
      m.backward();
      auto t2 = Clock::now();
      aero::train::clip_grad_norm(m.params(), 1.0);
      opt.step(1e-3);
      auto t3 = Clock::now();
      if (s >= warmup) {
        t_fwd += std::chrono::duration<double>(t1 - t0).count();
        t_bwd += std::chrono::duration<double>(t2 - t1).count();
        t_opt += std::chrono::duration<double>(t3 - t2).count();
        t_all += std::chrono::duration<double>(t3 - t0).count();
        step_s.push_back(std::chrono::duration<double>(t3 - t0).count());
      }
    }
    const double tok_s = double(N) * steps / t_all;  // mean over the timed steps
    std::sort(step_s.begin(), step_s.end());
    const double tok_s_median = double(N) / step_s[step_s.size() / 2];

    // 3. FLOPs per token and the limit.
    double n_matmul = 0;
    for (auto& p : m.params())
      if (p.trainable && p.shape.size() == 2 && p.name != "wpe" &&
          (p.name != "wte" || cfg.model.tie_embeddings))
        n_matmul += double(p.size);
    const double flops_tok = 6.0 * n_matmul + 12.0 * L * T * d;
    const double limit_square = square * 1e9 / flops_tok, limit_shapes = model_shapes * 1e9 / flops_tok;

    std::printf("config: L=%d H=%d d=%d T=%d V=%d batch=%d threads=%d rung=%s OPENBLAS_CORETYPE=%s\n",
                L, H, d, T, V, B, threads, rung.empty() ? "SM+LN+G" : rung.c_str(), core ? core : "(unset)");
    std::printf("%-44s %12s\n", "measure", "value");
    std::printf("%-44s %12.1f\n", "sgemm 1024^3 GFLOP/s", square);
    std::printf("%-44s %12.1f\n", "sgemm model shapes GFLOP/s", model_shapes);
    std::printf("%-44s %12.3f\n", "training MFLOP per token", flops_tok / 1e6);
    std::printf("%-44s %12.0f\n", "limit tok/s (1024^3 rate)", limit_square);
    std::printf("%-44s %12.0f\n", "limit tok/s (model-shape rate)", limit_shapes);
    std::printf("%-44s %12.0f\n", "aero trainer tok/s", tok_s);
    std::printf("%-44s %12.0f\n", "aero trainer tok/s (median step)", tok_s_median);
    std::printf("%-44s %11.1f%%\n", "share of limit (1024^3 rate)", 100 * tok_s / limit_square);
    std::printf("%-44s %11.1f%%\n", "share of limit (model-shape rate)", 100 * tok_s / limit_shapes);
    std::printf("%-44s %12.1f\n", "ms/step forward", 1e3 * t_fwd / steps);
    std::printf("%-44s %12.1f\n", "ms/step backward", 1e3 * t_bwd / steps);
    std::printf("%-44s %12.1f\n", "ms/step clip + AdamW", 1e3 * t_opt / steps);
    std::printf("%-44s %12.4f\n", "last loss", loss);
    if (!json_path.empty()) {
      nlohmann::json j = {{"L", L}, {"H", H}, {"d", d}, {"T", T}, {"V", V}, {"batch", B},
                          {"threads", threads}, {"openblas_coretype", core ? core : ""},
                          {"sgemm_square_gflops", square}, {"sgemm_model_gflops", model_shapes},
                          {"flops_per_token", flops_tok}, {"limit_square_tok_s", limit_square},
                          {"limit_model_tok_s", limit_shapes}, {"tokens_per_s", tok_s}, {"tokens_per_s_median", tok_s_median},
                          {"ms_forward", 1e3 * t_fwd / steps}, {"ms_backward", 1e3 * t_bwd / steps},
                          {"ms_optimizer", 1e3 * t_opt / steps}, {"steps", steps}};
      aero::write_file_atomic(json_path, j.dump(2) + "\n");
    }
  } catch (const aero::Error& e) {
    std::fprintf(stderr, "bench_train: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
