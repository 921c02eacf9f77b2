// Cost model of the private-inference engine: the secure executor itself (SecureExec,
// secure_exec.h) walked over the model graph in COUNT mode. Every operator goes through the
// same gate decomposition as the real 2PC run (the same SRound rounds, gate widths, fused
// openings, truncation mode and softmax variant); each gate charges the exact key bytes its
// dealer side writes to each party's stream (the src/mpc *_key_bytes functions, gate markers
// included) and each opening / one-way message the exact frame bytes the sockets carry
// (40-byte header + packed payload), counted by a replica of mpc::Meter's round rule. So the
// figures are those of `aero pi bench --measure` on the same shape, byte for byte, without
// cryptography, weights or sockets (tests/pi/test_cost.cpp checks equality per operator);
// only the compute and key-generation times are estimates (from measured machine rates).
// Operator tags are the engine's metering tags (the innermost mpc::OpScope): e.g. the
// openings of a linear layer's product are "matmul_w", its truncation the layer's tag
// ("attn.qkv"), LayerNorm's row sums "quad_rows", its rsqrt and product "ln1".
#pragma once
#include <map>
#include <string>
#include <vector>

#include "pi/fixed_point.h"
#include "pi/graph.h"
#include "pi/secure_exec.h"

namespace aero::pi {

// Totals of one counted run, with the same conventions as bench_measured: online figures
// exclude the one-time model setup (the masked weights, tag "weights"); rounds are the larger
// of the two parties' counters minus party 0's setup rounds; keys per party are whole streams.
struct CostCount {
  GateCounter counter;
  double online_bytes = 0;  // both directions, party 0's socket, setup excluded
  double bytes_sent = 0, bytes_recv = 0;  // party 0, setup excluded
  double rounds = 0;
  double key_bytes[2] = {0, 0};
  double setup_bytes = 0;
  double gemm_macs = 0, fss_blocks = 0;
};

// Runs the graph of `cfg` (shapes only) through SecureExec's count mode: SIGMA's scope (the
// blocks on a client-input embedded sequence, output revealed to the client) or full scope
// (embedding, blocks, final norm, LM head on the last position, logits revealed), exactly the
// programs bench_measured runs.
// Full scope reveals the logits, or with reveal_logits = false only the next token (secure
// argmax, SecureExec::argmax).
CostCount count_cost(const model::ModelConfig& cfg, Scope scope, const FxSpec& spec, bool reveal_logits = true);

// SPEC 6 network profiles and latency = compute + bytes_per_direction / bandwidth +
// rounds x one-way delay.
struct NetProfile {
  const char* name;
  double gbit_per_s;
  double rtt_ms;
};
const std::vector<NetProfile>& net_profiles();
double latency_s(const NetProfile& p, double compute_s, double online_bytes_both, double rounds);

}  // namespace aero::pi
