#include "train/batcher.h"

#include <numeric>

#include "core/error.h"
#include "core/rng.h"

namespace aero::train {

ChunkBatcher::ChunkBatcher(const text::TokenDataset& ds, int T, uint64_t seed, bool shuffle)
    : ds_(ds), T_(T), seed_(seed), shuffle_(shuffle), n_chunks_(ds.num_chunks(T)) {
  AERO_CHECK(T >= 1, "train.seq_len must be >= 1, got ", T);
  AERO_CHECK(n_chunks_ > 0, "the dataset has ", ds.size(), " tokens: not one full chunk of ",
             T + 1, " tokens (train.seq_len ", T, ")");
  buf_.resize(size_t(T) + 1);
}

void ChunkBatcher::build_order() {
  order_.resize(n_chunks_);
  std::iota(order_.begin(), order_.end(), uint64_t(0));
  if (shuffle_) {
    // Fisher-Yates with a generator derived from (seed, epoch) only, so the order of any
    // epoch can be rebuilt on resume without storing it.
    Rng rng(seed_ * 0x9e3779b97f4a7c15ULL + pos_.epoch + 1);
    for (uint64_t i = n_chunks_ - 1; i > 0; --i) std::swap(order_[i], order_[rng.below(i + 1)]);
  }
  order_epoch_ = pos_.epoch;
}

void ChunkBatcher::set_position(Position p) {
  AERO_CHECK(p.index <= n_chunks_, "data position ", p.index, " is past the ", n_chunks_,
             " chunks of the dataset (was it resumed with other data or seq_len?)");
  pos_ = p;
}

void ChunkBatcher::next_batch(int B, int32_t* tokens, int32_t* targets) {
  for (int b = 0; b < B; ++b) {
    if (pos_.index >= n_chunks_) {
      ++pos_.epoch;
      pos_.index = 0;
    }
    if (order_epoch_ != pos_.epoch) build_order();
    ds_.chunk(order_[pos_.index++], T_, buf_.data());
    std::copy(buf_.begin(), buf_.begin() + T_, tokens + size_t(b) * T_);
    std::copy(buf_.begin() + 1, buf_.end(), targets + size_t(b) * T_);
  }
}

}  // namespace aero::train
