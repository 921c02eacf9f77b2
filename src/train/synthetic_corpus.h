// The built-in synthetic corpus, used when data.dir is empty so that tests and the CPU demo
// run anywhere without downloads. Tokens come from a fixed random sparse bigram model:
// the first A = min(vocab, 256) token ids are active; each active token has 4 possible
// successors with probabilities 0.55, 0.25, 0.12, 0.08 (successors drawn once from a fixed
// seed). Its true next-token entropy is about 1.15 nats, against ln(256) = 5.55 for a
// uniform guess and about 5.4 for the unigram baseline, so a model that learns shows it
// within a few hundred steps. The corpus depends only on the vocabulary size and the split.
#pragma once
#include <cstdint>
#include <string>

#include "text/shard.h"

namespace aero::train {

constexpr uint64_t kSyntheticTrainTokens = uint64_t(1) << 20;
constexpr uint64_t kSyntheticValidTokens = uint64_t(1) << 16;

// split: "train" or "valid" (other names are errors). Token 0 is used as end-of-text id.
text::TokenDataset synthetic_corpus(uint32_t vocab_size, const std::string& split);
// The exact per-token entropy (nats) of the generating bigram chain's successor choice.
double synthetic_corpus_entropy();

}  // namespace aero::train
