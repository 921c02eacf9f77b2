// Forward + backward speed of the model alone (no optimizer, no data loading), with a GEMM
// rate probe, for docs/model.md. Not part of the CMake build (the trainer's bench/bench_train
// is the official training benchmark); build and run by hand from the repository root:
//   g++ -O2 -march=native -fopenmp -std=c++20 -Isrc -I/usr/include/x86_64-linux-gnu/openblas-openmp \
//     tests/model/bench/model_step_bench.cpp src/model/*.cpp src/core/blas.cpp src/core/files.cpp \
//     -lopenblas -llzma -lcrypto -o /tmp/model_step_bench
//   PROBE=1 OPENBLAS_CORETYPE=SkylakeX OMP_NUM_THREADS=2 /tmp/model_step_bench \
//     '{"n_layer":4,"n_head":4,"d_model":256,"context":128,"vocab_size":8192}' 10
// Prints the sgemm rate of a 1024x768x256 product (PROBE=1) and tokens/s of B=8, T=128 steps.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include "model/model.h"
#include "core/blas.h"
#include "core/rng.h"
using namespace aero::model;
int main(int argc, char** argv) {
  nlohmann::json j = {{"n_layer",4},{"n_head",4},{"d_model",256},{"context",128},{"vocab_size",8192}};
  if (argc > 1) j = nlohmann::json::parse(argv[1]);
  auto cfg = model_config_from_json(j);
  int B = 8, T = 128;
  Model m(cfg, B, T);
  m.init_weights(1);
  aero::Rng rng(1);
  std::vector<int32_t> tok(B*T), tgt(B*T);
  for (auto& t : tok) t = rng.below(cfg.vocab_size);
  for (auto& t : tgt) t = rng.below(cfg.vocab_size);
  int iters = argc > 2 ? atoi(argv[2]) : 10;
  double tf = 0, tb = 0;
  for (int it = 0; it < iters + 2; it++) {
    auto t0 = std::chrono::steady_clock::now();
    m.zero_grad();
    auto st = m.forward(tok.data(), tgt.data(), B, T, true);
    auto t1 = std::chrono::steady_clock::now();
    m.backward();
    auto t2 = std::chrono::steady_clock::now();
    if (it >= 2) { tf += std::chrono::duration<double>(t1-t0).count(); tb += std::chrono::duration<double>(t2-t1).count(); }
    if (it == 0) printf("loss %.4f\n", st.loss);
  }
  printf("threads %d fwd %.1f ms bwd %.1f ms  tok/s %.0f\n", aero::num_threads(), 1e3*tf/iters, 1e3*tb/iters, B*T*iters/(tf+tb));
}
// gemm rate probe
struct Probe { Probe() {
  if (!getenv("PROBE")) return;
  int M=1024,N=768,K=256; std::vector<float> A(M*K,1.f),B(K*N,1.f),C(M*N);
  for (int w=0;w<3;w++) aero::sgemm(false,true,M,N,K,1,A.data(),K,B.data(),K,0,C.data(),N);
  auto t0=std::chrono::steady_clock::now(); int it=50;
  for (int w=0;w<it;w++) aero::sgemm(false,true,M,N,K,1,A.data(),K,B.data(),K,0,C.data(),N);
  double s=std::chrono::duration<double>(std::chrono::steady_clock::now()-t0).count();
  printf("sgemm %.1f GFLOP/s\n", 2.0*M*N*K*it/s/1e9);
}} probe;
