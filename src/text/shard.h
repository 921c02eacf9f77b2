// Token shards: the on-disk form of a tokenized corpus (docs/formats.md).
//
// A shard is a 64-byte little-endian header followed by the tokens:
//   off  size  field
//     0     8  magic "AEROTOK\0"
//     8     4  version (1)
//    12     4  token width in bytes (2 = uint16, 4 = uint32)
//    16     8  token count
//    24     8  tokenizer hash (identifies the vocabulary; 0 = unknown)
//    32     4  vocabulary size (every token id is below it)
//    36     4  end-of-text id (separator between documents)
//    40     8  FNV-1a 64 of the payload bytes
//    48    16  reserved, zero
// A split of a corpus is the files DIR/<split>-NNNNN.tok read in name order, as one stream.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace aero::text {

struct ShardInfo {
  uint32_t token_bytes = 2;
  uint64_t n_tokens = 0;
  uint64_t tokenizer_hash = 0;
  uint32_t vocab_size = 0;
  uint32_t eot_id = 0;
};

// Writes a whole shard atomically (temp file + rename). token_bytes chosen from vocab_size.
void write_shard(const std::string& path, const std::vector<uint32_t>& tokens,
                 uint64_t tokenizer_hash, uint32_t vocab_size, uint32_t eot_id);

// A read-only, memory-mapped shard. open() validates magic, version, width, size and
// checksum and refuses a truncated, corrupt or mismatched file with a message naming it.
class TokenShard {
 public:
  static std::unique_ptr<TokenShard> open(const std::string& path, bool verify_checksum = true);
  ~TokenShard();
  const ShardInfo& info() const { return info_; }
  const std::string& path() const { return path_; }
  uint64_t size() const { return info_.n_tokens; }
  uint32_t operator[](uint64_t i) const;
  void copy(uint64_t off, uint64_t n, int32_t* out) const;

 private:
  TokenShard() = default;
  std::string path_;
  ShardInfo info_;
  const uint8_t* map_ = nullptr;
  size_t map_size_ = 0;
  const uint8_t* payload_ = nullptr;
};

// All shards of one split as a single token stream.
class TokenDataset {
 public:
  // expected_tokenizer_hash = 0 accepts any; otherwise a mismatch is an error.
  static TokenDataset open(const std::string& dir, const std::string& split,
                           uint64_t expected_tokenizer_hash = 0);
  uint64_t size() const { return total_; }
  uint32_t vocab_size() const { return vocab_; }
  uint32_t eot_id() const { return eot_; }
  uint64_t tokenizer_hash() const { return hash_; }
  // Copies tokens [off, off+n) of the stream (may span shards).
  void copy(uint64_t off, uint64_t n, int32_t* out) const;
  // CodeParrot-style full-length chunks: number of non-overlapping windows of T+1 tokens
  // (inputs and next-token targets) that fit in the stream; chunk i starts at i*T.
  uint64_t num_chunks(int T) const { return total_ > uint64_t(T) ? (total_ - 1) / uint64_t(T) : 0; }
  void chunk(uint64_t i, int T, int32_t* out_T_plus_1) const { copy(i * uint64_t(T), uint64_t(T) + 1, out_T_plus_1); }
  // In-memory dataset (tests, synthetic corpora).
  static TokenDataset from_tokens(std::vector<uint32_t> tokens, uint32_t vocab_size, uint32_t eot_id);

 private:
  std::vector<std::shared_ptr<TokenShard>> shards_;
  std::vector<uint64_t> starts_;
  std::shared_ptr<std::vector<uint32_t>> mem_;
  uint64_t total_ = 0;
  uint32_t vocab_ = 0, eot_ = 0;
  uint64_t hash_ = 0;
};

}  // namespace aero::text
