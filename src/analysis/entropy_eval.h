// Attention entropy of a trained model over a data sample (what `aero entropy` runs): the
// model's attention probabilities of each batch go through EntropyAccumulator (entropy.h),
// so the statistics are computed here from the probabilities, independently of the model's
// own head_entropy(), and non-finite values are counted instead of aborting.
#pragma once
#include <cstdint>
#include <string>

#include "analysis/entropy.h"
#include "model/model.h"
#include "text/shard.h"

namespace aero::analysis {

struct EntropyMeasurement {
  EntropySummary summary;
  double ce = 0;             // mean cross-entropy over the same chunks (NaN if non-finite)
  uint64_t chunks = 0;       // sequences of T tokens evaluated
  std::string nonfinite;     // the model's first non-finite finding, "" if none
};

// Chunks of T+1 tokens in stream order, B per forward, at most max_batches forwards
// (0 = every chunk of the split).
EntropyMeasurement measure_entropy(model::Model& m, const text::TokenDataset& ds, int T, int B,
                                   int64_t max_batches, bool show_progress = false);

}  // namespace aero::analysis
