// Autoregressive sampling from a model: temperature scaling, optional top-k truncation
// (Fan et al., "Hierarchical Neural Story Generation", ACL 2018), seeded and reproducible.
// Each new token runs the model on the last max_seq tokens (no KV cache: generation here is
// for inspecting small models, not for speed).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "core/rng.h"
#include "model/model.h"

namespace aero::train {

struct SampleOptions {
  int tokens = 64;           // how many tokens to generate
  double temperature = 1.0;  // 0 = greedy (argmax)
  int top_k = 0;             // 0 = the whole vocabulary
  uint64_t seed = 1234;
};

// Picks the next token from one row of logits [V].
uint32_t sample_next(const float* logits, int V, const SampleOptions& o, Rng& rng);

// Returns the generated tokens (not including the prompt). max_seq: the longest input the
// model was built for. on_token (optional) sees each token as it is made.
std::vector<uint32_t> generate(model::Model& m, const std::vector<uint32_t>& prompt,
                               int max_seq, const SampleOptions& o,
                               const std::function<void(uint32_t)>& on_token = {});

}  // namespace aero::train
