#include "train/synthetic_corpus.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/rng.h"

namespace aero::train {

namespace {
constexpr std::array<double, 4> kSuccessorProb = {0.55, 0.25, 0.12, 0.08};
}

double synthetic_corpus_entropy() {
  double h = 0;
  for (double p : kSuccessorProb) h -= p * std::log(p);
  return h;
}

text::TokenDataset synthetic_corpus(uint32_t vocab, const std::string& split) {
  AERO_CHECK(vocab >= 2, "synthetic corpus: vocab_size must be >= 2, got ", vocab);
  uint64_t n, stream_seed;
  if (split == "train") {
    n = kSyntheticTrainTokens;
    stream_seed = 101;
  } else if (split == "valid") {
    n = kSyntheticValidTokens;
    stream_seed = 202;
  } else {
    fail("synthetic corpus has splits 'train' and 'valid', not '", split, "'");
  }
  const uint32_t A = std::min<uint32_t>(vocab, 256);
  // The chain is the same for both splits (fixed seed); only the sampled stream differs.
  Rng chain_rng(20261128);
  std::vector<std::array<uint32_t, 4>> succ(A);
  for (auto& s : succ)
    for (auto& t : s) t = uint32_t(chain_rng.below(A));
  Rng rng(stream_seed);
  std::vector<uint32_t> toks(n);
  uint32_t cur = uint32_t(rng.below(A));
  for (uint64_t i = 0; i < n; ++i) {
    toks[i] = cur;
    double u = rng.uniform(), c = 0;
    int k = 0;
    for (; k < 3; ++k) {
      c += kSuccessorProb[size_t(k)];
      if (u < c) break;
    }
    cur = succ[cur][size_t(k)];
  }
  return text::TokenDataset::from_tokens(std::move(toks), vocab, 0);
}

}  // namespace aero::train
