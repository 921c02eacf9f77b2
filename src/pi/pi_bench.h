// Cost of one private inference of a model shape (the `aero pi bench` figures): the secure
// executor's exact per-operator online bytes (each direction), rounds and key bytes from its
// count mode (cost_model.h), compute and key generation estimated from this machine's
// measured integer-GEMM and AES rates, and latency under each network profile.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "pi/cost_model.h"

namespace aero::pi {

struct BenchOptions {
  Scope scope = Scope::blocks;
  bool reveal_logits = false;  // full scope: logits, or only the next token (secure argmax)
  FxSpec spec;                    // softmax variant, widths of the tables, truncation mode
};

struct MachineRates {
  double gemm_macs_per_s = 0;  // int64 multiply-adds per second (this process, all threads)
  double aes_blocks_per_s = 0; // AES-128 blocks per second (OpenSSL, AES-NI)
};
MachineRates measure_machine_rates();

nlohmann::json bench_cost(const model::ModelConfig& cfg, const BenchOptions& o, const MachineRates& rates);

// A real 2PC run of the secure executor (dealer + two parties over loopback TCP, in this
// process) on random weights with `layers` blocks; per-gate bytes / rounds from the sockets,
// key bytes, key generation and online time; blocks-scope figures extrapolated linearly to
// cfg.n_layer blocks (stated in the output). The same program count_cost counts: with all
// layers run, its online bytes, rounds and key bytes equal bench_cost's exactly. Per operator:
// bytes each way and rounds at party 0's socket, party 1's key bytes (dealer side, per tag).
nlohmann::json bench_measured(const model::ModelConfig& cfg, const BenchOptions& o, int layers);

}  // namespace aero::pi
