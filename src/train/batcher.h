// Training batches from a token dataset: CodeParrot-style full chunks of T+1 tokens (inputs
// and next-token targets; no partial chunk is ever used), visited in a fixed-seed shuffled
// order, one fresh permutation per epoch. The position (epoch, index in the permutation) is
// part of the trainer state, so a resumed run sees exactly the batches it would have seen.
#pragma once
#include <cstdint>
#include <vector>

#include "text/shard.h"

namespace aero::train {

class ChunkBatcher {
 public:
  struct Position {
    uint64_t epoch = 0, index = 0;
  };
  // shuffle=false visits chunks in stream order (evaluation).
  ChunkBatcher(const text::TokenDataset& ds, int T, uint64_t seed, bool shuffle = true);

  uint64_t num_chunks() const { return n_chunks_; }
  int seq_len() const { return T_; }
  // Fills tokens and targets ([B*T] each) with the next B chunks, wrapping into a new epoch.
  void next_batch(int B, int32_t* tokens, int32_t* targets);
  Position position() const { return pos_; }
  void set_position(Position p);

 private:
  void build_order();  // the permutation of epoch pos_.epoch
  const text::TokenDataset& ds_;
  int T_;
  uint64_t seed_;
  bool shuffle_;
  uint64_t n_chunks_;
  Position pos_;
  uint64_t order_epoch_ = UINT64_MAX;
  std::vector<uint64_t> order_;
  std::vector<int32_t> buf_;
};

}  // namespace aero::train
