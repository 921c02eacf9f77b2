// Evaluation on a split: perplexity = exp(mean cross-entropy) over full chunks of T+1 tokens
// in stream order (CodeParrot style: the last partial chunk is not used), with the mean
// attention entropy per (layer, head) over the same batches (SPEC section 3). The entropy
// regularizer is off: evaluation reports CE alone.
#pragma once
#include <cstdint>
#include <vector>

#include "model/model.h"
#include "text/shard.h"

namespace aero::train {

struct EvalResult {
  double ce = 0, ppl = 0;
  uint64_t chunks = 0, tokens = 0;
  std::vector<std::vector<double>> entropy;  // [L][H] nats, chunk-weighted mean
};

// B: sequences per forward (<= the model's max batch); max_batches 0 = every chunk.
// show_progress draws a live line (aero eval on a large split).
EvalResult evaluate(model::Model& m, const text::TokenDataset& ds, int T, int B,
                    int64_t max_batches, bool show_progress = false);

}  // namespace aero::train
