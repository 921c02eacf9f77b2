// Perplexity under the exact arithmetic of private inference (`aero pi eval`, and what
// `aero eval --pi-sim` reports): each chunk of T+1 tokens runs through the fixed-point
// executor (bit-compatible with the 2PC run) and, beside it, the float executor of the same
// graph; cross-entropy, perplexity and next-token agreement of both.
#pragma once
#include <cstdint>

#include "pi/fixed_point.h"
#include "pi/pi_model.h"
#include "text/shard.h"

namespace aero::pi {

struct PiEvalResult {
  double ce_fixed = 0, ppl_fixed = 0;
  double ce_float = 0, ppl_float = 0;
  double agree_all = 0;    // argmax agreement over every position
  double agree_last = 0;   // ... over the last position of each chunk (the private query)
  double max_logit_err = 0;
  uint64_t chunks = 0, tokens = 0;
  int max_bits = 0;        // widest fixed-point wire seen
  // The secure engine's narrower rings (docs/private_inference.md, "width plan"): logits must
  // fit FxSpec::qk_bits - f - c_frac - 1 bits; with LayerNorm and stochastic truncation, the
  // accumulators of the linears that read a LayerNorm must fit 33 (0 for an LN-free model).
  int logit_bits = 0, ln_linear_acc_bits = 0;
  double seconds = 0;
};

// T: chunk length (<= context); max_chunks 0 = every chunk; float_ref: also run FloatExec.
PiEvalResult pi_evaluate(const PiModel& m, const text::TokenDataset& ds, int T, int64_t max_chunks,
                         const FxSpec& spec, bool float_ref = true);

}  // namespace aero::pi
