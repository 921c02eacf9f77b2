// Byte-level BPE (Sennrich et al. 2016; the byte-level form of GPT-2, Radford et al. 2019):
// text is split by the GPT-2 pre-tokenizer (text/unicode.h), each piece is taken as its UTF-8
// bytes, and merges are applied by rank exactly as GPT-2's encoder.py does: repeatedly find
// the adjacent pair with the lowest merge rank and merge every occurrence of it, left to
// right. One class serves GPT-2's own files (encoder.json + vocab.bpe) and tokenizer.json files
// (Hugging Face format, ByteLevel BPE) written by aero's trainer.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "text/tokenizer.h"

namespace aero::text {

// GPT-2's bytes_to_unicode(): each byte to a printable code point (bytes 33-126, 161-172 and
// 174-255 map to themselves, the rest to 256, 257, ... in byte order).
uint32_t byte_to_unicode(uint8_t b);
// The UTF-8 form of a byte string under that mapping, and back (fails on a character that
// is not the image of a byte; `what` names the source in the error).
std::string bytes_to_unicode_string(std::string_view bytes);
std::string unicode_string_to_bytes(std::string_view s, const std::string& what);

class ByteLevelBpe : public Tokenizer {
 public:
  // tokens[i] = bytes of token i (the special token's entry holds its text); merges in rank
  // order as pairs of token ids; the result of merge (a, b) is the token with bytes a+b.
  ByteLevelBpe(std::string name, std::vector<std::string> tokens,
               std::vector<std::pair<uint32_t, uint32_t>> merges, uint32_t eot_id);
  ~ByteLevelBpe() override;

  static std::unique_ptr<ByteLevelBpe> load_gpt2_dir(const std::string& dir);
  static std::unique_ptr<ByteLevelBpe> load_hf_json(const std::string& path);
  // Writes the Hugging Face tokenizer.json form (ByteLevel pre-tokenizer and decoder, BPE
  // model, <|endoftext|> as an added special token).
  void save_hf_json(const std::string& path) const;

  std::vector<uint32_t> encode(std::string_view text) const override;
  // Appends the ids of text to out (no allocation once the word cache is warm).
  void encode_append(std::string_view text, std::vector<uint32_t>& out) const;
  std::string decode(const std::vector<uint32_t>& ids) const override;
  uint32_t vocab_size() const override { return uint32_t(tokens_.size()); }
  uint32_t eot_id() const override { return eot_; }
  uint64_t hash() const override { return hash_; }
  std::string name() const override { return name_; }

  const std::string& token_bytes(uint32_t id) const { return tokens_.at(id); }
  const std::vector<std::pair<uint32_t, uint32_t>>& merges() const { return merges_; }
  // BPE of one pre-token without the cache (appends to out).
  void bpe_word(std::string_view piece, std::vector<uint32_t>& out) const;

 private:
  struct MergeTable;
  std::string name_;
  std::vector<std::string> tokens_;
  std::vector<std::pair<uint32_t, uint32_t>> merges_;
  uint32_t eot_ = 0;
  uint64_t hash_ = 0;
  uint64_t serial_ = 0;  // identifies this instance to the per-thread word caches
  uint32_t byte_id_[256];
  MergeTable* table_ = nullptr;
};

}  // namespace aero::text
